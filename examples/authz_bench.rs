//! Overhead of authorization and auditing on small objects (not a test).
//!
//! `cargo build --release && cargo run --release --example authz_bench [-- SECONDS CONCURRENCY ROUNDS]`
//!
//! The configurations are interleaved for ROUNDS rounds and each figure is the
//! median over the rounds, so that load from other processes hits all alike.
//!
//! Starts the release `tarn` binary (`TARN_BIN`, default `target/release/tarn`) on a
//! fresh data directory for each configuration and drives signed 4 KiB PUTs, then
//! 4 KiB GETs, from `CONCURRENCY` keep-alive connections for `SECONDS` each:
//! 1. root (admin) with auditing off: the baseline (an admin's check is one branch);
//! 2. root with auditing on: the audit record of every request;
//! 3. a member whose only grant is on a dataset, auditing on: the dataset-prefix
//!    resolution (one indexed read per request) plus the audit record.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

const ROOT_AK: &str = "BENCHROOTKEY";
const ROOT_SK: &str = "bench-root-secret-0123456789";

fn signed(method: &str, url: &str, body: &[u8], ak: &str, sk: &str) -> Vec<(String, String)> {
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(body));
    let identity: Identity = Credentials::new(ak, sk, None, None, "bench").into();
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

struct Server {
    child: std::process::Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(audit: bool) -> Server {
    let bin = std::env::var("TARN_BIN").unwrap_or_else(|_| "target/release/tarn".into());
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("TARN_ROOT_ACCESS_KEY", ROOT_AK)
        .env("TARN_ROOT_SECRET_KEY", ROOT_SK)
        .env("TARN__AUDIT__ENABLED", if audit { "true" } else { "false" })
        .env("TARN__ZONES__DEFAULT_ZONE", "transformed")
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
    Server {
        child,
        base,
        _dir: dir,
    }
}

async fn send(
    c: &reqwest::Client,
    method: &str,
    url: &str,
    body: Vec<u8>,
    ak: &str,
    sk: &str,
) -> (u16, bytes::Bytes) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut r = c.request(m, url);
    for (k, v) in signed(method, url, &body, ak, sk) {
        r = r.header(k, v);
    }
    let resp = r.body(body).send().await.expect("send");
    let st = resp.status().as_u16();
    (st, resp.bytes().await.unwrap_or_default())
}

/// Runs `op` from `conc` tasks for `secs`; returns ops/s and p50/p99 in ms.
async fn load(
    secs: u64,
    conc: usize,
    op: Arc<
        dyn Fn(reqwest::Client, u64) -> futures_util::future::BoxFuture<'static, u16> + Send + Sync,
    >,
) -> (f64, f64, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let started = Instant::now();
    for _ in 0..conc {
        let (stop, counter, op) = (stop.clone(), counter.clone(), op.clone());
        tasks.push(tokio::spawn(async move {
            let c = reqwest::Client::new();
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                let st = op(c.clone(), n).await;
                assert!(st == 200, "status {st}");
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            lat
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    (all.len() as f64 / elapsed, pct(0.50), pct(0.99))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10);
    let conc: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(16);
    let rounds: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(3);
    println!("4 KiB objects, {conc} connections, {secs} s per phase, median of {rounds} rounds");
    println!(
        "{:<34} {:>10} {:>8} {:>8} {:>10} {:>8} {:>8}",
        "configuration", "PUT op/s", "p50 ms", "p99 ms", "GET op/s", "p50 ms", "p99 ms"
    );
    let configs = [
        ("admin, audit off (baseline)", false, false),
        ("admin, audit on", true, false),
        ("member via dataset grant, audit on", true, true),
    ];
    let mut results: Vec<Vec<[f64; 6]>> = vec![Vec::new(); configs.len()];
    for _ in 0..rounds {
        for (ci, (_, audit, member)) in configs.iter().copied().enumerate() {
            let srv = start(audit);
            let c = reqwest::Client::new();
            let base = srv.base.clone();
            let (st, _) = send(
                &c,
                "PUT",
                &format!("{base}/bench"),
                vec![],
                ROOT_AK,
                ROOT_SK,
            )
            .await;
            assert_eq!(st, 200);
            let (ak, sk) = if member {
                let api = |m: &'static str, p: &str, b: serde_json::Value| {
                    let (c, url) = (c.clone(), format!("{base}/api/v1{p}"));
                    async move {
                        let (st, body) =
                            send(&c, m, &url, b.to_string().into_bytes(), ROOT_AK, ROOT_SK).await;
                        assert!(st < 300, "{m} {url}: {st} {body:?}");
                        serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default()
                    }
                };
                api(
                    "POST",
                    "/users",
                    serde_json::json!({"name": "m", "role": "member"}),
                )
                .await;
                let d = api(
                "POST",
                "/datasets",
                serde_json::json!({"name": "d", "bucket": "bench", "prefix": "d/", "owner": "root"}),
            )
            .await;
                api(
                "POST",
                "/grants",
                serde_json::json!({"principal": "user:m", "resource": format!("dataset:{}", d["id"]), "permission": "write"}),
            )
            .await;
                let k = send(
                    &c,
                    "POST",
                    &format!("{base}/api/v1/users/m/keys"),
                    vec![],
                    ROOT_AK,
                    ROOT_SK,
                )
                .await;
                let k: serde_json::Value = serde_json::from_slice(&k.1).unwrap_or_default();
                (
                    k["access_key_id"].as_str().unwrap_or_default().to_string(),
                    k["secret_access_key"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            } else {
                (ROOT_AK.to_string(), ROOT_SK.to_string())
            };
            let body = vec![b'x'; 4096];
            let (b1, ak1, sk1) = (base.clone(), ak.clone(), sk.clone());
            let put = load(
                secs,
                conc,
                Arc::new(move |c, n| {
                    let (url, ak, sk, body) = (
                        format!("{b1}/bench/d/k{}", n % 1000),
                        ak1.clone(),
                        sk1.clone(),
                        body.clone(),
                    );
                    Box::pin(async move { send(&c, "PUT", &url, body, &ak, &sk).await.0 })
                }),
            )
            .await;
            let (b2, ak2, sk2) = (base.clone(), ak.clone(), sk.clone());
            let get = load(
                secs,
                conc,
                Arc::new(move |c, n| {
                    let (url, ak, sk) = (
                        format!("{b2}/bench/d/k{}", n % 1000),
                        ak2.clone(),
                        sk2.clone(),
                    );
                    Box::pin(async move { send(&c, "GET", &url, vec![], &ak, &sk).await.0 })
                }),
            )
            .await;
            results[ci].push([put.0, put.1, put.2, get.0, get.1, get.2]);
        }
    }
    for (ci, (name, _, _)) in configs.iter().enumerate() {
        let med = |i: usize| {
            let mut v: Vec<f64> = results[ci].iter().map(|r| r[i]).collect();
            v.sort_by(|a, b| a.total_cmp(b));
            v[v.len() / 2]
        };
        println!(
            "{:<34} {:>10.0} {:>8.2} {:>8.2} {:>10.0} {:>8.2} {:>8.2}",
            name,
            med(0),
            med(1),
            med(2),
            med(3),
            med(4),
            med(5)
        );
    }
}
