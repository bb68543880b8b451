//! Catalog benchmark (not a test): search latency at 100,000 datasets and dataset
//! statistics latency with 1,000,000 objects under one dataset's prefix.
//!
//! `cargo run --release --example catalog_bench [-- DATASETS OBJECTS]`
//!
//! Runs against the library (the same `Db` and catalog code the HTTP handlers call)
//! on a fresh database in a temporary directory, so the figures are the server-side
//! cost without HTTP and JSON encoding.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tarn::catalog::search::{self, SearchQuery};
use tarn::catalog::{self, NewDataset};
use tarn::meta::{Db, ObjectHeaders, ObjectMeta, WriteCondition, ZoneRules};

const DOMAINS: [&str; 10] = [
    "finance",
    "sales",
    "marketing",
    "web",
    "logistics",
    "hr",
    "product",
    "support",
    "risk",
    "legal",
];
const ENTITIES: [&str; 40] = [
    "orders",
    "customers",
    "invoices",
    "payments",
    "sessions",
    "clicks",
    "shipments",
    "returns",
    "employees",
    "tickets",
    "products",
    "prices",
    "inventory",
    "campaigns",
    "leads",
    "accounts",
    "contracts",
    "claims",
    "transactions",
    "events",
    "devices",
    "users",
    "stores",
    "suppliers",
    "forecasts",
    "budgets",
    "refunds",
    "subscriptions",
    "reviews",
    "quotes",
    "routes",
    "carriers",
    "warehouses",
    "regions",
    "channels",
    "segments",
    "experiments",
    "alerts",
    "audits",
    "policies",
];

/// A deterministic pseudo-random generator (xorshift), so runs are comparable.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

/// A synthetic vocabulary of 5,000 words for descriptions and metadata.
fn word(i: u64) -> String {
    const SYL: [&str; 16] = [
        "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "qu", "de", "fo", "gi", "ha",
        "jo",
    ];
    let i = i % 5000;
    format!(
        "{}{}{}",
        SYL[(i % 16) as usize],
        SYL[((i / 16) % 16) as usize],
        SYL[((i / 256) % 16) as usize]
    )
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// Queries per class.
const ROUNDS: usize = 300;

/// A member who owns some datasets and may read one zone.
fn member(r: &mut Rng) -> tarn::authz::Visibility {
    tarn::authz::Visibility {
        restricted: Some(tarn::authz::VisibleSet {
            zones: vec![tarn::meta::Zone::Raw],
            owner: format!("owner{}", r.next() % 50),
            ..Default::default()
        }),
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let n_datasets: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let n_objects: usize = args
        .get(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    // CATALOG_BENCH_DIR keeps the database between runs: a second run with the same
    // sizes skips loading and only measures.
    let tmp = tempfile::tempdir()?;
    let dir = match std::env::var_os("CATALOG_BENCH_DIR") {
        Some(d) => std::path::PathBuf::from(d),
        None => tmp.path().to_path_buf(),
    };
    std::fs::create_dir_all(&dir)?;
    let db = Db::open(&dir.join("tarn.db"))?;
    db.bootstrap_zones("us-east-1".into()).await?;
    println!("data dir {}", dir.display());
    let (have_objects, have_datasets): (i64, i64) = db
        .read(|conn| {
            Ok(conn.query_row(
                "SELECT (SELECT COUNT(*) FROM objects), (SELECT COUNT(*) FROM datasets)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?)
        })
        .await?;
    let loaded = have_objects as usize == n_objects && have_datasets as usize == n_datasets + 1;
    if !loaded && (have_objects > 0 || have_datasets > 0) {
        return Err(format!(
            "{} holds {have_objects} objects and {have_datasets} datasets; use an empty directory",
            dir.display()
        )
        .into());
    }

    // --- 1M objects under one dataset ------------------------------------------
    let ds_id = if loaded {
        db.read(|conn| {
            Ok(
                conn.query_row("SELECT id FROM datasets WHERE name = 'big'", [], |r| {
                    r.get::<_, i64>(0)
                })?,
            )
        })
        .await?
    } else {
        let ds = catalog::datasets::create(
            &db,
            NewDataset {
                name: "big".into(),
                bucket: "transformed".into(),
                prefix: "big/".into(),
                description: "one million objects".into(),
                owner: Some("bench".into()),
                tags: BTreeMap::new(),
                metadata: Default::default(),
                format: None,
            },
            "bench",
        )
        .await?;
        let t = Instant::now();
        let mut pending = Vec::with_capacity(4096);
        for i in 0..n_objects {
            let db = db.clone();
            let obj = ObjectMeta {
                key: format!("big/year={}/part-{i:08}.parquet", 2000 + i % 20),
                size: 1000 + (i as u64 % 1000),
                etag: "d41d8cd98f00b204e9800998ecf8427e".into(),
                last_modified: 1_700_000_000_000 + i as i64,
                segments: Vec::new(),
                inline: false,
                parts_count: None,
                headers: ObjectHeaders::default(),
                checksum: None,
                tags: None,
            };
            pending.push(tokio::spawn(async move {
                db.put_object(
                    "transformed".into(),
                    obj,
                    None,
                    WriteCondition::None,
                    ZoneRules::Enforce,
                )
                .await
            }));
            if pending.len() == 4096 {
                for p in pending.drain(..) {
                    p.await??;
                }
            }
        }
        for p in pending.drain(..) {
            p.await??;
        }
        let load = t.elapsed();
        println!(
            "loaded {n_objects} objects in {:.1} s ({:.0} objects/s, stats maintained on every write)",
            load.as_secs_f64(),
            n_objects as f64 / load.as_secs_f64()
        );
        ds.id
    };
    let mut lat = Vec::new();
    let mut last = None;
    for _ in 0..2000 {
        let t = Instant::now();
        let d = catalog::datasets::get(&db, ds_id).await?;
        lat.push(t.elapsed());
        last = Some(d.stats);
    }
    println!(
        "dataset stats (GET dataset, {n_objects} objects): p50 {} ms p99 {} ms -> {:?}",
        ms(percentile(&mut lat, 0.5)),
        ms(percentile(&mut lat, 0.99)),
        last
    );
    // What a range aggregate over the objects index would cost instead.
    let mut scan = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let (n, bytes): (i64, i64) = db
            .read(|conn| {
                Ok(conn.query_row(
                    "SELECT COUNT(*), SUM(size) FROM objects o JOIN buckets b ON b.id = o.bucket_id
                     WHERE b.name = 'transformed' AND key >= 'big/' AND key < 'big0'",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?)
            })
            .await?;
        scan.push(t.elapsed());
        assert_eq!(n as usize, n_objects);
        let _ = bytes;
    }
    println!(
        "for comparison, range aggregate over objects(bucket_id, key): p50 {} ms",
        ms(percentile(&mut scan, 0.5))
    );

    // --- 100k datasets ------------------------------------------------------------
    if !loaded {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let t = Instant::now();
        let buckets = ["raw", "transformed", "curated"];
        let mut pending = Vec::new();
        for i in 0..n_datasets {
            let domain = rng.pick(&DOMAINS);
            let entity = rng.pick(&ENTITIES);
            let desc: Vec<String> = (0..12).map(|_| word(rng.next())).collect();
            let mut tags = BTreeMap::new();
            tags.insert("domain".to_string(), domain.to_string());
            tags.insert(
                "pii".to_string(),
                if rng.next().is_multiple_of(5) {
                    "yes"
                } else {
                    "no"
                }
                .to_string(),
            );
            tags.insert("tier".to_string(), format!("t{}", rng.next() % 3));
            let mut metadata = serde_json::Map::new();
            metadata.insert("source".into(), serde_json::Value::String(word(rng.next())));
            let req = NewDataset {
                name: format!("{domain}_{entity}_{i}"),
                bucket: buckets[i % 3].into(),
                prefix: format!("ds/{i}/"),
                description: format!("{} {entity} for {domain}", desc.join(" ")),
                owner: Some(format!("owner{}", rng.next() % 50)),
                tags,
                metadata,
                format: Some(["csv", "jsonl", "parquet"][(rng.next() % 3) as usize].into()),
            };
            let db = db.clone();
            pending.push(tokio::spawn(async move {
                catalog::datasets::create(&db, req, "bench").await
            }));
            if pending.len() == 2048 {
                for p in pending.drain(..) {
                    p.await??;
                }
            }
        }
        for p in pending.drain(..) {
            p.await??;
        }
        println!(
            "registered {n_datasets} datasets in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    // Queries draw from their own generator, so they are the same whether or not
    // this run loaded the data.
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);

    type MakeQuery = Box<dyn Fn(&mut Rng) -> SearchQuery>;
    let classes: Vec<(&str, MakeQuery)> = vec![
        (
            "one entity word (~2.5% match)",
            Box::new(|r: &mut Rng| SearchQuery {
                q: Some(r.pick(&ENTITIES).to_string()),
                limit: 20,
                ..Default::default()
            }),
        ),
        (
            "domain + entity (~0.25%)",
            Box::new(|r: &mut Rng| SearchQuery {
                q: Some(format!("{} {}", r.pick(&DOMAINS), r.pick(&ENTITIES))),
                limit: 20,
                ..Default::default()
            }),
        ),
        (
            "description word (~0.25%)",
            Box::new(|r: &mut Rng| SearchQuery {
                q: Some(word(r.next())),
                limit: 20,
                ..Default::default()
            }),
        ),
        (
            "prefix query",
            Box::new(|r: &mut Rng| SearchQuery {
                q: Some(format!("{}*", &r.pick(&ENTITIES)[..4])),
                limit: 20,
                ..Default::default()
            }),
        ),
        (
            "entity + zone/tag filters",
            Box::new(|r: &mut Rng| SearchQuery {
                q: Some(r.pick(&ENTITIES).to_string()),
                zone: Some(tarn::meta::Zone::Curated),
                tags: vec![("pii".into(), "no".into())],
                limit: 20,
                ..Default::default()
            }),
        ),
        (
            "entity word, member (zone grant + own)",
            Box::new(|r: &mut Rng| SearchQuery {
                q: Some(r.pick(&ENTITIES).to_string()),
                limit: 20,
                visibility: member(r),
                ..Default::default()
            }),
        ),
        (
            "domain word, member (zone grant + own)",
            Box::new(|r: &mut Rng| SearchQuery {
                q: Some(r.pick(&DOMAINS).to_string()),
                limit: 20,
                visibility: member(r),
                ..Default::default()
            }),
        ),
        (
            "domain word (10% match, worst case)",
            Box::new(|r: &mut Rng| SearchQuery {
                q: Some(r.pick(&DOMAINS).to_string()),
                limit: 20,
                ..Default::default()
            }),
        ),
        (
            "no query, zone filter (listing by name)",
            Box::new(|r: &mut Rng| SearchQuery {
                zone: Some(tarn::meta::Zone::ALL[r.next() as usize % 3]),
                limit: 20,
                ..Default::default()
            }),
        ),
        (
            "no query, member (listing by name)",
            Box::new(|r: &mut Rng| SearchQuery {
                limit: 20,
                visibility: member(r),
                ..Default::default()
            }),
        ),
    ];
    // Each query runs on the in-memory index and on the SQL implementation (FTS5
    // bm25 over every match), alternating which goes first, so both see the same
    // machine load; the results must agree. The SQL path gets its own handle (its
    // own read connections and page caches).
    let index = std::sync::Arc::new(tarn::catalog::SearchIndex::new());
    let rss_before = rss_mib();
    let t = Instant::now();
    let idx = index.clone();
    db.read(move |conn| idx.refresh(conn)).await?;
    println!(
        "search index load: {} ms, process RSS {rss_before} -> {} MiB",
        t.elapsed().as_millis(),
        rss_mib()
    );
    let db_ref = Db::open(&dir.join("tarn.db"))?;
    let mut all = [Vec::new(), Vec::new()];
    println!("search: in-memory index | SQL (p50 / p99 over {ROUNDS} queries per class)");
    for (name, make) in &classes {
        let mut lat = [Vec::new(), Vec::new()];
        let mut hits = 0u64;
        for i in 0..ROUNDS {
            let q = make(&mut rng);
            let mut res = [None, None];
            for k in [i % 2, 1 - i % 2] {
                let t = Instant::now();
                let r = if k == 0 {
                    search::search(&db, &index, q.clone()).await?
                } else {
                    search::search_sql(&db_ref, q.clone()).await?
                };
                lat[k].push(t.elapsed());
                res[k] = Some(r);
            }
            let [Some(a), Some(b)] = res else {
                unreachable!()
            };
            let ids = |r: &search::SearchResult| {
                r.results.iter().map(|h| h.dataset.id).collect::<Vec<_>>()
            };
            assert_eq!(a.total, b.total, "{name}: totals differ");
            assert_eq!(ids(&a), ids(&b), "{name}: pages differ");
            assert_eq!(
                serde_json::to_value(&a.facets)?,
                serde_json::to_value(&b.facets)?,
                "{name}: facets differ"
            );
            hits += a.total;
        }
        for k in 0..2 {
            all[k].extend(lat[k].iter().copied());
        }
        println!(
            "search [{name}]: {} / {} | {} / {} ms (avg {} matches)",
            ms(percentile(&mut lat[0], 0.5)),
            ms(percentile(&mut lat[0], 0.99)),
            ms(percentile(&mut lat[1], 0.5)),
            ms(percentile(&mut lat[1], 0.99)),
            hits / ROUNDS as u64
        );
    }
    println!(
        "search, all {} queries: {} / {} | {} / {} ms",
        all[0].len(),
        ms(percentile(&mut all[0], 0.5)),
        ms(percentile(&mut all[0], 0.99)),
        ms(percentile(&mut all[1], 0.5)),
        ms(percentile(&mut all[1], 0.99)),
    );
    Ok(())
}

/// This process's resident set size in MiB (0 where /proc is missing).
fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}
