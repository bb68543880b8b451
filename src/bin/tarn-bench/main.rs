//! `tarn-bench`: the load generator of issue 7. It starts the release `tarn` (and the
//! `s3s-fs` peer, when installed) on temporary data directories, or targets any S3
//! endpoint, drives them with SigV4-signed requests over many connections, checks what
//! it reads back, measures this machine's own limits for context, and prints a table
//! plus JSON lines. Targets are interleaved round by round (alternating which goes
//! first), and the table shows medians over the rounds.
//!
//! Run it with `scripts/bench` (builds the release binaries first); `--help` lists the
//! knobs, `--quick` takes about a minute.

mod client;
mod limits;
mod servers;
mod workloads;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use client::Result;
use servers::Target;
use workloads::{Amount, Measure, SmallOp};

#[derive(Parser, Debug)]
#[command(
    name = "tarn-bench",
    about = "Benchmark Tarn against its peers and this machine"
)]
struct Args {
    /// Rounds of every workload (medians are reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Keys the small-object GETs read in turn (written once, untimed). The default
    /// fits Tarn's object cache; more keys measure reads that miss it.
    #[arg(long, default_value_t = 2000)]
    small_keys: usize,
    /// Seconds of every closed-loop measurement (small PUT/GET, HEAD, the minimal
    /// handler), after a short untimed warm-up.
    #[arg(long, default_value_t = 1.0)]
    secs: f64,
    /// Size of the small objects, bytes.
    #[arg(long, default_value_t = 4096)]
    small_size: usize,
    /// Size of the large single PUT/GET and of the multipart object, MiB.
    #[arg(long, default_value_t = 1024)]
    large_mib: u64,
    /// Multipart part size, MiB.
    #[arg(long, default_value_t = 16)]
    part_mib: u64,
    /// Parts uploaded at once.
    #[arg(long, default_value_t = 4)]
    part_concurrency: usize,
    /// Keys for the ListObjectsV2 workloads.
    #[arg(long, default_value_t = 10_000)]
    list_keys: usize,
    /// Full walks of the listing per round.
    #[arg(long, default_value_t = 3)]
    list_walks: usize,
    /// Keys for HEAD and for DeleteObjects (at most 1000 for DeleteObjects).
    #[arg(long, default_value_t = 1000)]
    head_keys: usize,
    /// Workload groups to run (comma-separated): limits, small, head, delete, list, large;
    /// also `http` (only the minimal-handler part of `limits`) and `get` (only the GETs
    /// of `small`, their keys written untimed). Whenever the minimal handler and GETs
    /// both run, it is measured inside each GET round, interleaved with the targets, so
    /// that the ratio to it holds up on a noisy machine.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "limits,small,head,delete,list,large"
    )]
    only: Vec<String>,
    /// A quick run (about a minute): shorter measurements and 128 MiB large objects.
    #[arg(long)]
    quick: bool,
    /// The tarn executable (default: `tarn` beside this program).
    #[arg(long)]
    tarn_bin: Option<PathBuf>,
    /// A second tarn executable measured beside the first as target `base` (A/B
    /// comparisons against a baseline build, interleaved round by round).
    #[arg(long)]
    baseline_bin: Option<PathBuf>,
    /// Concurrencies of the small-object and minimal-handler workloads (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    conc: Vec<usize>,
    /// Do not start Tarn (measure only --endpoint and/or the peer).
    #[arg(long)]
    no_tarn: bool,
    /// The s3s-fs executable (default: `s3s-fs` on PATH; skipped if absent).
    #[arg(long)]
    peer_bin: Option<PathBuf>,
    /// Do not start s3s-fs.
    #[arg(long)]
    no_peer: bool,
    /// An external S3 endpoint to measure as well (http://host:port).
    #[arg(long)]
    endpoint: Option<String>,
    #[arg(long, default_value = "external")]
    endpoint_name: String,
    #[arg(long, env = "AWS_ACCESS_KEY_ID", default_value = "")]
    access_key: String,
    #[arg(
        long,
        env = "AWS_SECRET_ACCESS_KEY",
        default_value = "",
        hide_env_values = true
    )]
    secret_key: String,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Bucket used on every target (created if missing).
    #[arg(long, default_value = "tarn-bench")]
    bucket: String,
    /// Scratch directory for the servers' data and the disk limits (default: a new
    /// directory under the system temp dir, removed at the end).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Also write the JSON lines to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Threads of the load generator's runtime (it shares the machine with the servers).
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Internal: run the minimal HTTP handler used for the loopback ceiling.
    #[arg(long, hide = true)]
    minimal_server: bool,
}

/// Results in order of first appearance: workload -> unit, target -> per-round measures.
#[derive(Default)]
struct Results {
    order: Vec<(String, &'static str)>,
    /// (workload, machine limit) measured in the same rounds, round for round.
    paired: Vec<(String, String)>,
    data: BTreeMap<String, BTreeMap<String, Vec<Measure>>>,
    json: Vec<String>,
}

impl Results {
    fn add(&mut self, workload: &str, unit: &'static str, target: &str, round: usize, m: Measure) {
        if !self.order.iter().any(|(w, _)| w == workload) {
            self.order.push((workload.to_string(), unit));
        }
        let mut line = serde_json::json!({
            "workload": workload, "target": target, "round": round, "unit": unit,
            "value": round3(m.value),
        });
        for (k, v) in &m.extra {
            line[*k] = serde_json::json!(round3(*v));
        }
        eprintln!(
            "  {workload:<22} {target:<10} round {round}: {:>10.1} {unit}{}",
            m.value,
            m.extra
                .iter()
                .map(|(k, v)| format!("  {k}={v:.2}"))
                .collect::<String>()
        );
        self.json.push(line.to_string());
        self.data
            .entry(workload.to_string())
            .or_default()
            .entry(target.to_string())
            .or_default()
            .push(m);
    }

    fn median(&self, workload: &str, target: &str) -> Option<f64> {
        let v = self.data.get(workload)?.get(target)?;
        median(v.iter().map(|m| m.value).collect())
    }

    /// How `target` on `workload` compares with the machine limit `limit`. When the limit
    /// was measured inside the same rounds (the minimal handler within the GET rounds),
    /// the median of the per-round ratios: each pair ran seconds apart, so the ratio
    /// holds up when the machine's speed drifts over minutes. Otherwise the ratio of
    /// the medians.
    fn fraction_of(&self, workload: &str, target: &str, limit: &str) -> Option<f64> {
        let lim = self.data.get(limit)?.get(MACHINE)?;
        let ours = self.data.get(workload)?.get(target)?;
        if self
            .paired
            .contains(&(workload.to_string(), limit.to_string()))
            && ours.len() == lim.len()
        {
            return median(
                ours.iter()
                    .zip(lim)
                    .filter(|(_, l)| l.value > 0.0)
                    .map(|(m, l)| m.value / l.value)
                    .collect(),
            );
        }
        Some(self.median(workload, target)? / self.median(limit, MACHINE).filter(|l| *l > 0.0)?)
    }

    fn median_extra(&self, workload: &str, target: &str, key: &str) -> Option<f64> {
        let v = self.data.get(workload)?.get(target)?;
        median(
            v.iter()
                .filter_map(|m| m.extra.iter().find(|(k, _)| *k == key).map(|(_, x)| *x))
                .collect(),
        )
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

const MACHINE: &str = "machine";

fn main() -> std::process::ExitCode {
    let mut args = Args::parse();
    if args.minimal_server {
        return match limits::minimal_server(args.small_size) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("minimal server: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    if args.quick {
        args.small_keys = args.small_keys.min(400);
        args.secs = args.secs.min(0.25);
        args.large_mib = args.large_mib.min(128);
        args.list_walks = 1;
        args.head_keys = args.head_keys.min(400);
    }
    let work = args
        .work_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("tarn-bench-{}", std::process::id())));
    let remove_work = args.work_dir.is_none();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .enable_all()
        .build();
    let outcome = rt
        .map_err(Into::into)
        .and_then(|rt| rt.block_on(run(&args, work.clone())));
    if remove_work {
        let _ = std::fs::remove_dir_all(&work);
    }
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tarn-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn start_targets(args: &Args, work: &std::path::Path) -> Result<Vec<Target>> {
    let mut targets = Vec::new();
    if !args.no_tarn {
        let bin = match &args.tarn_bin {
            Some(b) => b.clone(),
            None => std::env::current_exe()?.with_file_name("tarn"),
        };
        targets.push(servers::start_tarn(&bin, &work.join("tarn"))?);
        if let Some(base) = &args.baseline_bin {
            let mut t = servers::start_tarn(base, &work.join("tarn-base"))?;
            t.name = "base".into();
            targets.push(t);
        }
    }
    if !args.no_peer {
        match args.peer_bin.clone().or_else(|| servers::which("s3s-fs")) {
            Some(bin) => targets.push(servers::start_s3s_fs(&bin, &work.join("s3s-fs"))?),
            None => eprintln!(
                "note: s3s-fs not found (install it, see README, or pass --peer-bin); measuring without the peer"
            ),
        }
    }
    if let Some(url) = &args.endpoint {
        targets.push(servers::external(
            &args.endpoint_name,
            url,
            &args.access_key,
            &args.secret_key,
            &args.region,
        )?);
    }
    if targets.is_empty() {
        return Err("no target to measure".into());
    }
    Ok(targets)
}

/// Targets in the order of round `r`: alternating, so neither always goes first.
fn order(targets: &[Target], r: usize) -> Vec<&Target> {
    let mut v: Vec<&Target> = targets.iter().collect();
    if r % 2 == 1 {
        v.reverse();
    }
    v
}

async fn run(args: &Args, work: PathBuf) -> Result<()> {
    std::fs::create_dir_all(&work)?;
    let groups = |g: &str| args.only.iter().any(|o| o == g);
    let targets = start_targets(args, &work)?;
    let bucket = args.bucket.as_str();
    let rounds = args.rounds.max(1);
    eprintln!("tarn-bench: work dir {}", work.display());
    for t in &targets {
        eprintln!("  target {:<8} {}  fsync: {}", t.name, t.ep.addr, t.fsync);
        workloads::create_bucket(&t.ep, bucket).await?;
    }
    let small_n = args.small_keys.max(args.head_keys).max(1);
    let bodies = Arc::new(workloads::small_bodies(small_n, args.small_size));
    let mut res = Results::default();

    // When GETs run, the minimal handler is measured inside each GET round instead, so
    // that the ratio of the two holds up on a noisy machine (see `--only`).
    let http_with_get = (groups("http") || groups("limits")) && (groups("get") || groups("small"));
    if groups("limits") || (groups("http") && !http_with_get) {
        eprintln!("machine limits");
        let minimal = if http_with_get {
            None
        } else {
            Some(minimal_server(args.small_size)?)
        };
        let disk_mib = args.large_mib.min(1024) as usize;
        for r in 0..rounds {
            if let Some((_, ep)) = &minimal {
                for &conc in &args.conc {
                    let m = minimal_round(ep, args, bucket, conc, &bodies).await?;
                    res.add(&format!("http_minimal_c{conc}"), "ops/s", MACHINE, r, m);
                }
            }
            if !groups("limits") {
                continue;
            }
            let (w, rd) = limits::disk_write_read(&work, disk_mib)?;
            res.add(
                "disk_write_fsync",
                "MiB/s",
                MACHINE,
                r,
                Measure {
                    value: w,
                    extra: vec![],
                },
            );
            let wb = limits::disk_write_behind(&work, disk_mib)?;
            res.add(
                "disk_write_behind_fsync",
                "MiB/s",
                MACHINE,
                r,
                Measure {
                    value: wb,
                    extra: vec![],
                },
            );
            res.add(
                "page_cache_read",
                "MiB/s",
                MACHINE,
                r,
                Measure {
                    value: rd,
                    extra: vec![],
                },
            );
            res.add(
                "md5_one_core",
                "MiB/s",
                MACHINE,
                r,
                Measure {
                    value: limits::md5_one_core(256),
                    extra: vec![],
                },
            );
            for threads in [1, 16] {
                let n = if threads == 1 { 200 } else { 1000 };
                let v = limits::small_files(&work, n, threads, args.small_size)?;
                res.add(
                    &format!("small_file_fsync_t{threads}"),
                    "files/s",
                    MACHINE,
                    r,
                    Measure {
                        value: v,
                        extra: vec![],
                    },
                );
            }
        }
    }

    if groups("small") {
        eprintln!("small objects ({} bytes)", args.small_size);
        for &conc in &args.conc {
            for r in 0..rounds {
                for t in order(&targets, r) {
                    let prefix = format!("put/c{conc}/r{r}");
                    let m = timed_loop(&t.ep, args, bucket, &prefix, SmallOp::Put, conc, &bodies)
                        .await?;
                    res.add(&format!("put_small_c{conc}"), "ops/s", &t.name, r, m);
                    workloads::settle().await;
                }
            }
        }
    }
    // The GET and HEAD keys: written once per target, untimed, then read once, untimed,
    // so that every round measures reads of objects read before (page cache, object
    // cache) rather than the first round alone paying for the first reads.
    let read_prefix = "read";
    if groups("small") || groups("get") || groups("head") {
        for t in &targets {
            for op in [SmallOp::Put, SmallOp::Get] {
                workloads::closed_loop(
                    &t.ep,
                    bucket,
                    read_prefix,
                    op,
                    16,
                    Amount::EachKey(small_n),
                    &bodies,
                )
                .await?;
            }
        }
    }
    if groups("small") || groups("get") {
        let minimal = if http_with_get {
            Some(minimal_server(args.small_size)?)
        } else {
            None
        };
        for &conc in &args.conc {
            if minimal.is_some() {
                res.paired.push((
                    format!("get_small_c{conc}"),
                    format!("http_minimal_c{conc}"),
                ));
            }
            for r in 0..rounds {
                // The minimal handler takes its turn among the targets, its place
                // rotating from round to round like theirs: always measuring it last
                // (as before session 8) tied it to whatever ran before it.
                let mut slots: Vec<Option<&Target>> =
                    order(&targets, r).into_iter().map(Some).collect();
                if minimal.is_some() {
                    slots.push(None);
                    let n = slots.len();
                    slots.rotate_left(r % n);
                }
                for slot in slots {
                    match (slot, &minimal) {
                        (Some(t), _) => {
                            let m = timed_loop(
                                &t.ep,
                                args,
                                bucket,
                                read_prefix,
                                SmallOp::Get,
                                conc,
                                &bodies,
                            )
                            .await?;
                            res.add(&format!("get_small_c{conc}"), "ops/s", &t.name, r, m);
                        }
                        (None, Some((_, ep))) => {
                            let m = minimal_round(ep, args, bucket, conc, &bodies).await?;
                            res.add(&format!("http_minimal_c{conc}"), "ops/s", MACHINE, r, m);
                        }
                        (None, None) => {}
                    }
                }
            }
        }
    }
    if groups("head") {
        eprintln!("HEAD");
        for r in 0..rounds {
            for t in order(&targets, r) {
                let m = workloads::closed_loop(
                    &t.ep,
                    bucket,
                    read_prefix,
                    SmallOp::Head,
                    16,
                    timed(args, args.head_keys),
                    &bodies,
                )
                .await?;
                res.add(
                    &format!("head_{}_c16", args.head_keys),
                    "ops/s",
                    &t.name,
                    r,
                    m,
                );
            }
        }
    }
    if groups("delete") {
        eprintln!("DeleteObjects");
        let n = args.head_keys.min(1000);
        for r in 0..rounds {
            let keys: Vec<String> = (0..n).map(|i| format!("del/r{r}/{i:05}")).collect();
            let keys = Arc::new(keys);
            for t in &targets {
                workloads::put_empty(&t.ep, bucket, keys.clone()).await?;
            }
            workloads::settle().await;
            for t in order(&targets, r) {
                let m = workloads::delete_objects(&t.ep, bucket, &keys).await?;
                res.add(&format!("delete_objects_{n}"), "keys/s", &t.name, r, m);
            }
        }
    }
    if groups("list") {
        eprintln!("ListObjectsV2 ({} keys; setup untimed)", args.list_keys);
        let keys = Arc::new(workloads::list_keys("list", args.list_keys, 100));
        for t in &targets {
            let start = std::time::Instant::now();
            workloads::put_empty(&t.ep, bucket, keys.clone()).await?;
            eprintln!(
                "  {}: {} empty objects in {:.1}s",
                t.name,
                keys.len(),
                start.elapsed().as_secs_f64()
            );
        }
        workloads::settle().await;
        for r in 0..rounds {
            for t in order(&targets, r) {
                let m = workloads::list_flat(&t.ep, bucket, "list", keys.len(), args.list_walks)
                    .await?;
                res.add("list_v2_1000_per_page", "pages/s", &t.name, r, m);
            }
        }
        for r in 0..rounds {
            for t in order(&targets, r) {
                let m =
                    workloads::list_delimited(&t.ep, bucket, "list", keys.len(), args.list_walks)
                        .await?;
                res.add("list_v2_delimiter_walk", "pages/s", &t.name, r, m);
            }
        }
    }
    if groups("large") {
        let size = args.large_mib << 20;
        let part = args.part_mib << 20;
        eprintln!(
            "large objects ({} MiB; hashing the payload for the signatures first)",
            args.large_mib
        );
        let pat = Arc::new(workloads::Pattern::new());
        pat.hashes(0, size);
        for r in 0..rounds {
            for t in order(&targets, r) {
                let key = format!("large/r{r}");
                let m = workloads::put_large(t, bucket, &key, size, &pat).await?;
                res.add("put_large", "MiB/s", &t.name, r, m);
                workloads::settle().await;
                let m = workloads::get_large(t, bucket, &key, size, &pat).await?;
                res.add("get_large", "MiB/s", &t.name, r, m);
                workloads::delete(&t.ep, bucket, &key).await?;
                workloads::settle().await;
            }
        }
        for r in 0..rounds {
            for t in order(&targets, r) {
                let key = format!("mpu/r{r}");
                let m =
                    workloads::multipart(t, bucket, &key, size, part, args.part_concurrency, &pat)
                        .await?;
                res.add("multipart_put", "MiB/s", &t.name, r, m);
                workloads::delete(&t.ep, bucket, &key).await?;
                workloads::settle().await;
            }
        }
    }

    report(args, &targets, &res)?;
    Ok(())
}

/// The machine limit a workload is compared with, if any.
fn limit_of(workload: &str) -> Option<&'static str> {
    Some(match workload {
        "get_small_c1" => "http_minimal_c1",
        "get_small_c16" => "http_minimal_c16",
        "get_small_c64" => "http_minimal_c64",
        "put_small_c1" => "small_file_fsync_t1",
        "put_small_c16" | "put_small_c64" => "small_file_fsync_t16",
        // The faster way to get bytes durably onto this disk, not the naive one.
        "put_large" | "multipart_put" => "disk_write_behind_fsync",
        "get_large" => "page_cache_read",
        _ => return None,
    })
}

fn fmt_val(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
        None => "-".into(),
    }
}

fn report(args: &Args, targets: &[Target], res: &Results) -> Result<()> {
    let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    let mut out = String::new();
    out.push_str(&format!(
        "\ntarn-bench: medians of {} rounds; small objects {} B, large {} MiB, parts {} MiB\n",
        args.rounds.max(1),
        args.small_size,
        args.large_mib,
        args.part_mib
    ));
    for t in targets {
        out.push_str(&format!("  {:<8} fsync: {}\n", t.name, t.fsync));
    }
    let mut header = format!("{:<24} {:<8}", "workload", "unit");
    for n in &names {
        header.push_str(&format!(" {n:>10} {:>15}", "(p50/p99 ms)"));
    }
    for n in names.iter().skip(1) {
        header.push_str(&format!(" {:>11}", format!("{}/{n}", names[0])));
    }
    header.push_str(&format!(
        " {:>14}  details",
        format!("{}/machine", names[0])
    ));
    out.push_str(&header);
    out.push('\n');
    for (w, unit) in &res.order {
        let mut line = format!("{w:<24} {unit:<8}");
        // Machine limits are the workloads measured on the machine itself.
        if res.median(w, MACHINE).is_some() {
            line.push_str(&format!(
                " {:>10} {:>15}",
                fmt_val(res.median(w, MACHINE)),
                ""
            ));
            if let (Some(p50), Some(p99)) = (
                res.median_extra(w, MACHINE, "p50_ms"),
                res.median_extra(w, MACHINE, "p99_ms"),
            ) {
                line.push_str(&format!("  machine limit (p50 {p50:.2} / p99 {p99:.2} ms)"));
            } else {
                line.push_str("  machine limit");
            }
            out.push_str(&line);
            out.push('\n');
            continue;
        }
        let mut details = Vec::new();
        for n in &names {
            let lat = match (
                res.median_extra(w, n, "p50_ms"),
                res.median_extra(w, n, "p99_ms"),
            ) {
                (Some(a), Some(b)) => format!("{a:.2}/{b:.2}"),
                _ => String::new(),
            };
            line.push_str(&format!(" {:>10} {lat:>15}", fmt_val(res.median(w, n))));
            for key in [
                "peak_rss_mib",
                "peak_rss_since_start_mib",
                "complete_ms",
                "latency_ms",
                "keys_per_s",
            ] {
                if let Some(v) = res.median_extra(w, n, key) {
                    details.push(format!("{n} {key}={v:.1}"));
                }
            }
        }
        let first = res.median(w, names[0]);
        for n in names.iter().skip(1) {
            let ratio = match (first, res.median(w, n)) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
                _ => "-".into(),
            };
            line.push_str(&format!(" {ratio:>11}"));
        }
        let vs = limit_of(w)
            .and_then(|l| {
                Some(format!(
                    "{:.0}% of {l}",
                    100.0 * res.fraction_of(w, names[0], l)?
                ))
            })
            .unwrap_or_default();
        line.push_str(&format!(" {vs:>14}  {}", details.join(", ")));
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes())?;
    writeln!(stdout)?;
    // Summary lines: medians and ratios, after the per-round lines.
    let mut json = res.json.clone();
    for (w, unit) in &res.order {
        let mut s = serde_json::json!({"summary": true, "workload": w, "unit": unit});
        for n in names.iter().copied().chain([MACHINE]) {
            if let Some(v) = res.median(w, n) {
                s[n] = serde_json::json!(round3(v));
            }
        }
        if let Some(a) = res.median(w, names[0]) {
            for n in names.iter().skip(1) {
                if let Some(b) = res.median(w, n).filter(|b| *b > 0.0) {
                    s[format!("ratio_{}_{}", names[0], n)] = serde_json::json!(round3(a / b));
                }
            }
            if let Some(f) = limit_of(w).and_then(|l| res.fraction_of(w, names[0], l)) {
                s["fraction_of_machine_limit"] = serde_json::json!(round3(f));
            }
        }
        json.push(s.to_string());
    }
    for l in &json {
        writeln!(stdout, "{l}")?;
    }
    if let Some(p) = &args.json {
        std::fs::write(p, json.join("\n") + "\n")?;
    }
    Ok(())
}

/// One measurement of the minimal handler (GETs of any key) at concurrency `conc`.
async fn minimal_round(
    ep: &client::Ep,
    args: &Args,
    bucket: &str,
    conc: usize,
    bodies: &Arc<Vec<workloads::SmallBody>>,
) -> Result<Measure> {
    timed_loop(ep, args, bucket, "x", SmallOp::GetAny, conc, bodies).await
}

/// A closed loop of `op` over the small-object keys under `prefix`, for `--secs`.
async fn timed_loop(
    ep: &client::Ep,
    args: &Args,
    bucket: &str,
    prefix: &str,
    op: SmallOp,
    conc: usize,
    bodies: &Arc<Vec<workloads::SmallBody>>,
) -> Result<Measure> {
    let amount = timed(args, args.small_keys);
    workloads::closed_loop(ep, bucket, prefix, op, conc, amount, bodies).await
}

/// A closed-loop measurement of `--secs` over `keys` keys.
fn timed(args: &Args, keys: usize) -> Amount {
    Amount::For(Duration::from_secs_f64(args.secs.max(0.01)), keys)
}

/// Starts the minimal HTTP server (the machine's ceiling) and an endpoint for it.
fn minimal_server(small_size: usize) -> Result<(limits::MinimalServer, client::Ep)> {
    let http = limits::MinimalServer::start(small_size)?;
    let ep: client::Ep = Arc::new(client::Endpoint::new(
        &http.url,
        servers::ACCESS_KEY,
        servers::SECRET_KEY,
        "us-east-1",
    )?);
    Ok((http, ep))
}
