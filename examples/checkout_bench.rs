//! Checkout benchmark (not a test): cart checkout of datasets of 10,000 and 100,000
//! objects, end to end over HTTP.
//!
//! `cargo build --release && cargo run --release --example checkout_bench [-- ROUNDS]`
//!
//! Loads the objects (100-byte inline objects with real ETags, through the same
//! `Db::put_object` the S3 handlers commit with) into a fresh data directory, then
//! starts the release `tarn` binary on it (`TARN_BIN`, default `target/release/tarn`)
//! and, for each size and format, puts the dataset in root's cart and checks out:
//! time to the response headers (the manifest is committed), to the first body
//! chunk, and to the last byte, plus `GET /manifests/{id}?format=urls`. Each figure
//! is the median of ROUNDS (default 3). A sample of links is downloaded and checked.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use tarn::catalog::{self, NewDataset};
use tarn::meta::{Db, ObjectHeaders, ObjectMeta, WriteCondition, ZoneRules};

const ROOT_AK: &str = "BENCHROOTKEY";
const ROOT_SK: &str = "bench-root-secret-0123456789";

fn signed(method: &str, url: &str, body: &[u8]) -> Vec<(String, String)> {
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body));
    let identity: Identity = Credentials::new(ROOT_AK, ROOT_SK, None, None, "bench").into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .expect("params")
        .into();
    let host = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or("")
        .to_string();
    let headers = [("host".to_string(), host)];
    let req = SignableRequest::new(
        method,
        url,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Precomputed(hash),
    )
    .expect("signable");
    let (instr, _) = sign(req, &params).expect("sign").into_parts();
    let (hs, _) = instr.into_parts();
    hs.into_iter()
        .map(|h| (h.name().to_string(), h.value().to_string()))
        .collect()
}

/// Loads `n` inline objects under `prefix` of bucket `transformed` and registers a
/// dataset over them; returns its id.
async fn load(db: &Db, name: &str, prefix: &str, n: usize) -> i64 {
    let ds = catalog::datasets::create(
        db,
        NewDataset {
            name: name.into(),
            bucket: "transformed".into(),
            prefix: prefix.into(),
            description: String::new(),
            owner: None,
            tags: BTreeMap::new(),
            metadata: Default::default(),
            format: None,
        },
        "root",
    )
    .await
    .expect("dataset");
    let t = Instant::now();
    let mut pending = Vec::with_capacity(4096);
    for i in 0..n {
        let db = db.clone();
        let body = format!("{prefix}{i:08}:{}\n", "x".repeat(80)).into_bytes();
        let obj = ObjectMeta {
            key: format!("{prefix}year={}/part-{i:08}.csv", 2000 + i % 20),
            size: body.len() as u64,
            etag: hex::encode(<md5::Md5 as md5::Digest>::digest(&body)),
            last_modified: 1_700_000_000_000 + i as i64,
            segments: Vec::new(),
            inline: true,
            parts_count: None,
            headers: ObjectHeaders::default(),
            checksum: None,
            tags: None,
        };
        pending.push(tokio::spawn(async move {
            db.put_object(
                "transformed".into(),
                obj,
                Some(bytes::Bytes::from(body)),
                WriteCondition::None,
                ZoneRules::Enforce,
            )
            .await
        }));
        if pending.len() == 4096 {
            for p in pending.drain(..) {
                p.await.expect("task").expect("put");
            }
        }
    }
    for p in pending.drain(..) {
        p.await.expect("task").expect("put");
    }
    println!(
        "loaded {n} objects under {prefix} in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    ds.id
}

struct Timing {
    headers_ms: f64,
    first_byte_ms: f64,
    total_ms: f64,
    bytes: usize,
}

/// Sends a signed request and reads the streamed answer, timing it.
async fn timed(c: &reqwest::Client, method: &str, url: &str, body: &str) -> (Timing, Vec<u8>) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut r = c.request(m, url).header("content-type", "application/json");
    for (k, v) in signed(method, url, body.as_bytes()) {
        r = r.header(k, v);
    }
    let t = Instant::now();
    let mut resp = r.body(body.to_string()).send().await.expect("send");
    let headers_ms = t.elapsed().as_secs_f64() * 1000.0;
    let status = resp.status().as_u16();
    let mut out = Vec::new();
    let mut first_byte_ms = None;
    while let Some(chunk) = resp.chunk().await.expect("body") {
        first_byte_ms.get_or_insert(t.elapsed().as_secs_f64() * 1000.0);
        out.extend_from_slice(&chunk);
    }
    assert!(
        status == 200 || status == 201,
        "{method} {url}: {status} {}",
        String::from_utf8_lossy(&out)
    );
    let total_ms = t.elapsed().as_secs_f64() * 1000.0;
    (
        Timing {
            headers_ms,
            first_byte_ms: first_byte_ms.unwrap_or(total_ms),
            total_ms,
            bytes: out.len(),
        },
        out,
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(&dir.path().join("tarn.db")).expect("db");
    db.bootstrap_zones("us-east-1".into()).await.expect("zones");
    let sizes = [(10_000usize, "k10/"), (100_000, "k100/")];
    let mut datasets = Vec::new();
    for (n, prefix) in sizes {
        datasets.push((n, load(&db, &format!("bench{n}"), prefix, n).await));
    }
    db.close().await;
    drop(db);

    let bin = std::env::var("TARN_BIN").unwrap_or_else(|_| "target/release/tarn".into());
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("TARN_ROOT_ACCESS_KEY", ROOT_AK)
        .env("TARN_ROOT_SECRET_KEY", ROOT_SK)
        .env("TARN_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tarn");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listening line");
    let base = line
        .trim()
        .strip_prefix("tarn listening on ")
        .expect("listening")
        .to_string();
    let api = format!("{base}/api/v1");
    let c = reqwest::Client::new();
    println!("median of {rounds} rounds; times in ms from sending the request");
    println!(
        "{:<8} {:<30} {:>8} {:>11} {:>8} {:>7}",
        "objects", "request", "headers", "first byte", "total", "MiB"
    );
    for (n, ds) in datasets {
        for format in ["signed-url", "bucket-key"] {
            let mut rows: Vec<(&str, Vec<Timing>)> =
                vec![("checkout", Vec::new()), ("GET ?format=urls", Vec::new())];
            for _ in 0..rounds {
                let item = format!("{{\"dataset\": {ds}}}");
                let (t, _) = timed(&c, "POST", &format!("{api}/cart"), &item).await;
                assert!(t.bytes > 0);
                let body = format!("{{\"format\": \"{format}\", \"expires_in\": 3600}}");
                let (t, doc) = timed(&c, "POST", &format!("{api}/cart/checkout"), &body).await;
                let m: serde_json::Value = serde_json::from_slice(&doc).expect("manifest JSON");
                let entries = m["entries"].as_array().expect("entries");
                assert_eq!(entries.len(), n);
                if format == "signed-url" {
                    // A sample of links, downloaded and checked.
                    for e in entries.iter().step_by(n / 5) {
                        let url = e["url"].as_str().expect("url");
                        let got = c.get(url).send().await.expect("get");
                        assert_eq!(got.status().as_u16(), 200, "{url}");
                        let bytes = got.bytes().await.expect("bytes");
                        assert_eq!(
                            hex::encode(<md5::Md5 as md5::Digest>::digest(&bytes)),
                            e["etag"].as_str().unwrap_or("")
                        );
                    }
                }
                rows[0].1.push(t);
                let id = m["id"].as_i64().expect("id");
                let (t, urls) =
                    timed(&c, "GET", &format!("{api}/manifests/{id}?format=urls"), "").await;
                assert_eq!(urls.iter().filter(|b| **b == b'\n').count(), n);
                rows[1].1.push(t);
            }
            for (what, ts) in rows {
                println!(
                    "{:<8} {:<30} {:>8.0} {:>11.0} {:>8.0} {:>7.1}",
                    n,
                    format!("{what} ({format})"),
                    median(ts.iter().map(|t| t.headers_ms).collect()),
                    median(ts.iter().map(|t| t.first_byte_ms).collect()),
                    median(ts.iter().map(|t| t.total_ms).collect()),
                    ts[0].bytes as f64 / (1024.0 * 1024.0),
                );
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}
