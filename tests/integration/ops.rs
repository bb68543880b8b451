//! Running it for real: configuration precedence and errors, TLS, health and metrics,
//! request ids in logs, limits, the free-space floor, graceful shutdown, thread
//! scheduling, and the container's command line.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

fn tmp() -> Arc<tempfile::TempDir> {
    Arc::new(tempfile::tempdir().expect("tempdir"))
}

fn start_with(toml: Option<&str>, opts: Launch) -> Result<TestApp, String> {
    let (a, s) = new_credentials();
    launch(tmp(), a, s, toml.map(config_file), &opts)
}

async fn body_of(app: &TestApp, path: &str) -> Response {
    app.req("GET", path).send().await
}

#[tokio::test]
async fn config_precedence_defaults_file_env_flags() {
    // The file asks for port 1 (unusable), a region and a size limit; the environment
    // overrides the region; the --listen flag overrides the port.
    let toml =
        "[server]\nlisten = \"127.0.0.1:1\"\n[s3]\nregion = \"eu-west-1\"\nmax_object_size = 100\n";
    let dir = tmp();
    let (a, s) = new_credentials();
    let args = vec![
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--data-dir".into(),
        dir.path().display().to_string(),
    ];
    let app = launch(
        dir,
        a,
        s,
        Some(config_file(toml)),
        &Launch {
            args: Some(args),
            env: vec![("TARN__S3__REGION".into(), "ap-south-1".into())],
            ..Launch::default()
        },
    )
    .expect("start");
    assert_ne!(app.addr.port(), 1, "the flag must win over the file");
    assert_eq!(app.request("PUT", "/prec", &[], "").await.status, 200);
    let loc = app.request("GET", "/prec?location", &[], "").await;
    assert!(
        loc.text().contains(">ap-south-1<"),
        "env must win: {}",
        loc.text()
    );
    let big = app.put("prec", "k", vec![7u8; 200]).await;
    assert_err(&big, 400, "EntityTooLarge");
    assert_eq!(app.put("prec", "k", vec![7u8; 100]).await.status, 200);
}

#[tokio::test]
async fn invalid_configuration_fails_at_start_naming_the_key() {
    type Case<'a> = (Option<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (Some("[s3]\nbogus = 1\n"), vec![], "bogus"),
        (Some("[nosuchsection]\nx = 1\n"), vec![], "nosuchsection"),
        (
            None,
            vec![("TARN__SERVER__MAX_HEADER_BYTES", "lots")],
            "max_header_bytes",
        ),
        (
            Some("[server]\nmax_concurrent_requests = 0\n"),
            vec![],
            "server.max_concurrent_requests",
        ),
        (
            Some("[tls]\ncert = \"/nonexistent/cert.pem\"\n"),
            vec![],
            "tls.key",
        ),
        (
            Some("[tls]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n"),
            vec![],
            "tls.cert",
        ),
        (Some("[server]\nscheduling = \"fifo\"\n"), vec![], "fifo"),
        (Some("[s3\nregion = 1"), vec![], "invalid config file"),
    ];
    for (toml, env, needle) in cases {
        let opts = Launch {
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            capture_logs: true,
            ..Launch::default()
        };
        match start_with(toml, opts) {
            Ok(_) => panic!("server started with invalid config {toml:?} {env:?}"),
            Err(e) => assert!(
                e.contains(needle),
                "error for {toml:?} {env:?} should name {needle}: {e}"
            ),
        }
    }
}

/// A self-signed certificate for localhost and 127.0.0.1, written as PEM files.
fn test_cert(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    let key = rcgen::KeyPair::generate().expect("key");
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("params");
    let cert = params.self_signed(&key).expect("self-signed");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    (cert_path, key_path, cert.der().to_vec())
}

#[tokio::test]
async fn tls_serves_https_and_refuses_plain_http() {
    let certs = tmp();
    let (cert, key, der) = test_cert(certs.path());
    let toml = format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let app = start_with(Some(&toml), Launch::default()).expect("start with TLS");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(der.into()).expect("trust test cert");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");

    // A signed ListBuckets over TLS.
    let req = app.req("GET", "/");
    let head = req.head_bytes();
    let tcp = TcpStream::connect(app.addr).await.expect("connect");
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    tls.write_all(&head).await.expect("write");
    let mut buf = Vec::new();
    let _ = tls.read_to_end(&mut buf).await;
    let resp = parse_response(&buf, false);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.text().contains("ListAllMyBucketsResult"));

    // Plain HTTP on the TLS port gets no HTTP answer (a TLS alert, then close).
    let mut plain = TcpStream::connect(app.addr).await.expect("connect");
    plain
        .write_all(b"GET /health/live HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut answer)).await;
    assert!(
        !answer.starts_with(b"HTTP/"),
        "plain HTTP was served on the TLS port"
    );
}

#[tokio::test]
async fn health_and_metrics_reflect_traffic() {
    let app = start_with(
        Some("[server]\nmetrics_token = \"scrape-me\"\n"),
        Launch::default(),
    )
    .expect("start");
    app.create_bucket("met").await;
    app.put_ok("met", "a", "hello").await;
    assert_eq!(app.get("met", "a").await.status, 200);
    assert_eq!(app.get("met", "missing").await.status, 404);

    let live = raw_send(
        app.addr,
        b"GET /health/live HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(live.status, 200);
    let ready = raw_send(
        app.addr,
        b"GET /health/ready HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(ready.status, 200, "{}", ready.text());

    let anon = raw_send(
        app.addr,
        b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(anon.status, 403, "metrics must not be public");
    let wrong = raw_send(
        app.addr,
        b"GET /metrics HTTP/1.1\r\nhost: x\r\nauthorization: Bearer nope\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(wrong.status, 403);

    let bearer = raw_send(
        app.addr,
        b"GET /metrics HTTP/1.1\r\nhost: x\r\nauthorization: Bearer scrape-me\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(bearer.status, 200);
    let signed = body_of(&app, "/metrics").await;
    assert_eq!(signed.status, 200);
    let text = signed.text();
    for needle in [
        "tarn_requests_total{op=\"PutObject\",status=\"200\"} 1",
        "tarn_requests_total{op=\"GetObject\",status=\"200\"} 1",
        "tarn_requests_total{op=\"GetObject\",status=\"404\"} 1",
        "tarn_request_duration_seconds_count{op=\"PutObject\"} 1",
        "tarn_bytes_in_total{op=\"PutObject\"} 5",
        "tarn_bytes_out_total{op=\"GetObject\"} 5",
        "tarn_bucket_objects{bucket=\"met\"} 1",
        "tarn_bucket_bytes{bucket=\"met\"} 5",
        "tarn_zone_objects{zone=\"transformed\"} 1",
        "tarn_zone_bytes{zone=\"transformed\"} 5",
        "tarn_requests_in_flight 1",
        "tarn_disk_free_bytes ",
        "tarn_audit_queue_depth ",
    ] {
        assert!(text.contains(needle), "metrics lack {needle:?}:\n{text}");
    }
}

#[tokio::test]
async fn request_ids_are_in_headers_and_json_logs_without_secrets() {
    let dir = tmp();
    let (a, s) = new_credentials();
    let app = launch(
        dir.clone(),
        a,
        s.clone(),
        None,
        &Launch {
            args: Some(vec![
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--data-dir".into(),
                dir.path().display().to_string(),
                "--log-format".into(),
                "json".into(),
            ]),
            env: vec![("TARN_LOG".into(), "info".into())],
            capture_logs: true,
            ..Launch::default()
        },
    )
    .expect("start");
    app.create_bucket("logs").await;
    let put = app.put("logs", "k", "v").await;
    let id = put
        .header("x-amz-request-id")
        .expect("request id header")
        .to_string();
    let found = eventually(10, || {
        app.logs
            .lock()
            .map(|l| {
                l.lines()
                    .any(|line| line.contains(&id) && line.contains("PutObject"))
            })
            .unwrap_or(false)
    })
    .await;
    let logs = app.logs.lock().map(|l| l.clone()).unwrap_or_default();
    assert!(
        found,
        "no log line with request id {id} and PutObject:\n{logs}"
    );
    for line in logs.lines().filter(|l| l.contains(&id)) {
        let v: serde_json::Value = serde_json::from_str(line).expect("log lines are JSON");
        assert_eq!(v["fields"]["status"], 200, "{line}");
        assert!(v["fields"]["latency_ms"].is_number(), "{line}");
        assert_eq!(v["fields"]["principal"], app.access_key.as_str(), "{line}");
    }
    assert!(!logs.contains(&s), "the secret key appears in the logs");
    assert!(
        !logs.contains("Signature="),
        "a signature appears in the logs"
    );
}

#[tokio::test]
async fn oversized_headers_get_the_s3_error() {
    let app = spawn_app().await;
    app.create_bucket("hdr").await;
    let pad = "p".repeat(9000);
    let r = app.req("GET", "/hdr/x").header("x-pad", pad).send().await;
    assert_err(&r, 400, "RequestHeaderSectionTooLarge");
}

#[tokio::test]
async fn idle_upload_is_cut_off_with_request_timeout() {
    let app = start_with(
        Some("[server]\nrequest_timeout_secs = 1\n"),
        Launch::default(),
    )
    .expect("start");
    app.create_bucket("slow").await;
    let req = app
        .req("PUT", "/slow/k")
        .payload(Payload::Unsigned)
        .content_length("100");
    let head = req.head_bytes();
    let mut tcp = TcpStream::connect(app.addr).await.expect("connect");
    tcp.write_all(&head).await.expect("head");
    tcp.write_all(&[1u8; 10]).await.expect("some body");
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the server kept waiting for the body");
    let resp = parse_response(&buf, false);
    assert_err(&resp, 400, "RequestTimeout");
    assert_eq!(app.head("slow", "k").await.status, 404);
    assert!(
        eventually(5, || app.tmp_files().is_empty()).await,
        "staging file left behind"
    );
}

#[tokio::test]
async fn requests_over_the_concurrency_limit_get_slow_down() {
    let app = start_with(
        Some("[server]\nmax_concurrent_requests = 1\n"),
        Launch::default(),
    )
    .expect("start");
    app.create_bucket("busy").await;
    // Hold the only permit with an upload whose body is still coming.
    let req = app
        .req("PUT", "/busy/k")
        .payload(Payload::Unsigned)
        .content_length("20");
    let head = req.head_bytes();
    let mut tcp = TcpStream::connect(app.addr).await.expect("connect");
    tcp.write_all(&head).await.expect("head");
    tcp.write_all(&[1u8; 10]).await.expect("half body");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let other = app.get("busy", "k").await;
    assert_err(&other, 503, "SlowDown");
    tcp.write_all(&[1u8; 10]).await.expect("rest of body");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut buf)).await;
    assert_eq!(parse_response(&buf, false).status, 200);
    assert_eq!(app.get("busy", "k").await.body, vec![1u8; 20]);
}

#[tokio::test]
async fn writes_stop_below_the_free_space_floor_and_resume_after() {
    let dir = tmp();
    let (a, s) = new_credentials();
    let normal =
        launch(dir.clone(), a.clone(), s.clone(), None, &Launch::default()).expect("start");
    normal.create_bucket("full").await;
    normal.put_ok("full", "kept", "precious").await;
    drop(normal);

    // Simulate a full disk: demand more free space than any disk has.
    let full = launch(
        dir.clone(),
        a.clone(),
        s.clone(),
        Some(config_file(
            "[storage]\nmin_free_bytes = 1000000000000000000\n",
        )),
        &Launch::default(),
    )
    .expect("start");
    let put = full.put("full", "new", "data").await;
    assert_err(&put, 507, "InsufficientStorage");
    let mpu = full.request("POST", "/full/big?uploads", &[], "").await;
    assert_eq!(mpu.status, 200, "starting an upload writes no bytes");
    let get = full.get("full", "kept").await;
    assert_eq!(get.body, b"precious", "stored data stays readable");
    let ready = raw_send(
        full.addr,
        b"GET /health/ready HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(ready.status, 503, "not ready while the disk is full");
    assert_eq!(full.head("full", "new").await.status, 404);
    assert!(full.tmp_files().is_empty());
    drop(full);

    let again = launch(dir, a, s, None, &Launch::default()).expect("start");
    assert_eq!(again.put("full", "new", "data").await.status, 200);
    assert_eq!(again.get("full", "kept").await.body, b"precious");
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish() {
    let mut app = spawn_app().await;
    app.create_bucket("drain").await;
    let req = app
        .req("PUT", "/drain/k")
        .payload(Payload::Unsigned)
        .content_length("20");
    let head = req.head_bytes();
    let mut tcp = TcpStream::connect(app.addr).await.expect("connect");
    tcp.write_all(&head).await.expect("head");
    tcp.write_all(&[5u8; 10]).await.expect("half body");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pid = app.child_id().to_string();
    assert!(
        std::process::Command::new("kill")
            .arg("-TERM")
            .arg(&pid)
            .status()
            .expect("kill")
            .success()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    // New connections are no longer accepted...
    assert!(
        TcpStream::connect(app.addr).await.is_err(),
        "still accepting after SIGTERM"
    );
    // ...but the request in flight completes.
    tcp.write_all(&[5u8; 10]).await.expect("rest of body");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut buf)).await;
    assert_eq!(parse_response(&buf, false).status, 200);
    let status = app.terminate();
    assert!(status.success(), "exit status {status:?}");
    let app = app.restart();
    assert_eq!(app.get("drain", "k").await.body, vec![5u8; 20]);
}

#[tokio::test]
async fn the_container_command_line_serves() {
    // The Dockerfile's CMD and compose environment, with a temporary directory standing in
    // for the /data volume and port 0 for 9000.
    let dir = tmp();
    let (a, s) = new_credentials();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/tarn.toml");
    let mut app = launch(
        dir.clone(),
        a,
        s,
        None,
        &Launch {
            args: Some(vec![
                "--config".into(),
                config.into(),
                "--listen".into(),
                "0.0.0.0:0".into(),
                "--data-dir".into(),
                dir.path().display().to_string(),
            ]),
            env: vec![
                (
                    "TARN__SERVER__PUBLIC_URL".into(),
                    "http://localhost:9000".into(),
                ),
                ("TARN_LOG".into(), "info".into()),
            ],
            ..Launch::default()
        },
    )
    .expect("start with the container's command line");
    app.addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    let live = raw_send(
        app.addr,
        b"GET /health/live HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(live.status, 200);
    app.create_bucket("box").await;
    app.put_ok("box", "k", "v").await;
    assert_eq!(app.get("box", "k").await.body, b"v");
    assert!(dir.path().join("tarn.db").exists());
}

/// A small tmpfs mounted for one test, unmounted when dropped. Needs root, as CI has.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn mount(size: &str) -> SmallFs {
        let dir = tempfile::tempdir().expect("mount point");
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            st.success(),
            "mounting a tmpfs failed: the disk-full test needs root (CI runs as root)"
        );
        SmallFs { dir }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test]
async fn a_really_full_disk_fails_writes_cleanly_and_recovers() {
    let fs = SmallFs::mount("24m");
    let data = fs.dir.path().join("data");
    // Something else on the same filesystem, removed later to give space back.
    let ballast = fs.dir.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; 6 * MIB]).expect("ballast");
    let (a, s) = new_credentials();
    // No free-space floor: the writes run into ENOSPC for real.
    let toml = "[storage]\nmin_free_bytes = 0\n[zones]\ndefault_zone = \"transformed\"\n";
    let opts = Launch {
        args: Some(vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--data-dir".into(),
            data.display().to_string(),
        ]),
        ..Launch::default()
    };
    let app = launch(tmp(), a.clone(), s.clone(), Some(config_file(toml)), &opts).expect("start");
    app.create_bucket("fill").await;
    let mut stored = Vec::new();
    let mut refused = None;
    for i in 0..64 {
        let body = bytes(MIB, i);
        let r = app.put("fill", &format!("obj-{i}"), body.clone()).await;
        if r.status == 200 {
            stored.push((format!("obj-{i}"), body));
        } else {
            refused = Some(r);
            break;
        }
    }
    let refused = refused.expect("24 MiB filled up without an error");
    assert_err(&refused, 507, "InsufficientStorage");
    assert!(stored.len() >= 5, "only {} objects fitted", stored.len());
    assert!(
        list_dir(&data.join("tmp")).is_empty(),
        "the failed write left a staging file"
    );
    for (k, body) in &stored {
        assert_eq!(&app.get("fill", k).await.body, body, "{k} damaged");
    }
    // Space returns (another file on the filesystem goes away): writes work again, and
    // so do deletes.
    std::fs::remove_file(&ballast).expect("remove ballast");
    let again = bytes(MIB, 999);
    assert_eq!(app.put("fill", "after", again.clone()).await.status, 200);
    for (k, _) in stored.iter().take(3) {
        assert_eq!(
            app.request("DELETE", &obj("fill", k), &[], "").await.status,
            204
        );
    }
    stored.drain(..3);
    // Everything survives a restart.
    let app = app.restart();
    for (k, body) in &stored {
        assert_eq!(&app.get("fill", k).await.body, body, "{k} after restart");
    }
    assert_eq!(app.get("fill", "after").await.body, again);
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let app = start_with(
        Some("[server]\nrequest_timeout_secs = 1\n"),
        Launch::default(),
    )
    .expect("start");
    let mut tcp = TcpStream::connect(app.addr).await.expect("connect");
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "an idle connection stayed open: {closed:?}"
    );
}

#[tokio::test]
async fn abandoned_multipart_uploads_are_cleaned_after_the_configured_age() {
    let app = start_with(
        Some("[s3]\nabandoned_upload_age_secs = 1\nupload_gc_interval_secs = 1\n"),
        Launch::default(),
    )
    .expect("start");
    app.create_bucket("gcb").await;
    let created = app.request("POST", "/gcb/big?uploads", &[], "").await;
    assert_eq!(created.status, 200);
    let upload_id = created.xml("UploadId").expect("upload id");
    let part = app
        .request(
            "PUT",
            &format!("/gcb/big?partNumber=1&uploadId={upload_id}"),
            &[],
            vec![3u8; 1000],
        )
        .await;
    assert_eq!(part.status, 200);
    let blobs = |app: &TestApp| -> usize {
        list_dir(&app.data_path().join("blobs"))
            .iter()
            .map(|shard| list_dir(shard).len())
            .sum()
    };
    assert_eq!(blobs(&app), 1, "the part is stored as one blob");
    let cleaned = eventually(15, || blobs(&app) == 0).await;
    assert!(cleaned, "the abandoned upload's part was not deleted");
    let list = app.request("GET", "/gcb?uploads", &[], "").await;
    assert!(list.xml("UploadId").is_none(), "{}", list.text());
    let parts = app
        .request("GET", &format!("/gcb/big?uploadId={upload_id}"), &[], "")
        .await;
    assert_err(&parts, 404, "NoSuchUpload");
}

/// A second server on the same data directory refuses to start, naming the reason;
/// once the first has gone, a server starts there again.
#[tokio::test]
async fn one_server_per_data_directory() {
    let dir = tmp();
    let (a, s) = new_credentials();
    let first =
        launch(dir.clone(), a.clone(), s.clone(), None, &Launch::default()).expect("first server");
    let opts = Launch {
        capture_logs: true,
        ..Launch::default()
    };
    let err = match launch(dir.clone(), a.clone(), s.clone(), None, &opts) {
        Ok(_) => panic!("a second server started on the same data directory"),
        Err(e) => e,
    };
    assert!(
        err.contains("another tarn server uses the data directory"),
        "{err}"
    );
    first.create_bucket("still-serving").await;
    let again = first.restart();
    again.create_bucket("after-restart").await;
}

/// (thread name, scheduling policy) of every thread of process `pid`, from
/// `/proc/<pid>/task/<tid>/stat` (the policy is the 41st field).
fn thread_policies(pid: u32) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("task list");
    for t in tasks {
        let path = t.expect("task").path();
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue; // the thread ended meanwhile
        };
        // The name is in parentheses and may hold spaces; fields after it are plain.
        let (head, rest) = stat.rsplit_once(')').expect("stat format");
        let name = head.split_once('(').expect("stat format").1.to_string();
        let policy = rest.split_whitespace().nth(38).expect("policy field");
        out.push((name, policy.parse().expect("policy number")));
    }
    out
}

/// Policies of the runtime's threads (workers and blocking pool) of process `pid`.
fn runtime_policies(pid: u32) -> Vec<u32> {
    thread_policies(pid)
        .into_iter()
        .filter(|(n, _)| n == "tokio-rt-worker")
        .map(|t| t.1)
        .collect()
}

/// `SCHED_BATCH` and `SCHED_OTHER` as `/proc` shows them.
const BATCH: u32 = 3;
const NORMAL: u32 = 0;

#[tokio::test]
async fn request_threads_run_sched_batch_unless_configured_normal() {
    let app = start_with(None, Launch::default()).expect("start");
    // Some work first, so that blocking-pool threads exist too.
    app.create_bucket("sched").await;
    assert_eq!(app.put("sched", "k", vec![7u8; 3 * MIB]).await.status, 200);
    let threads = thread_policies(app.pid());
    let workers = runtime_policies(app.pid());
    assert!(workers.len() >= 2, "{threads:?}");
    assert!(workers.iter().all(|&p| p == BATCH), "{threads:?}");
    // The metadata writer, which every write waits for, keeps the normal policy.
    assert!(
        threads.contains(&("tarn-db-writer".to_string(), NORMAL)),
        "{threads:?}"
    );

    let opts = Launch {
        env: vec![("TARN__SERVER__SCHEDULING".into(), "normal".into())],
        ..Launch::default()
    };
    let app = start_with(None, opts).expect("start");
    app.create_bucket("sched").await;
    assert_eq!(app.put("sched", "k", vec![7u8; 3 * MIB]).await.status, 200);
    let threads = thread_policies(app.pid());
    assert!(threads.iter().all(|t| t.1 == NORMAL), "{threads:?}");
}

#[tokio::test]
async fn the_md5_thread_of_a_large_upload_runs_normal_then_returns_to_batch() {
    let app = start_with(None, Launch::default()).expect("start");
    app.create_bucket("sched").await;
    assert!(runtime_policies(app.pid()).iter().all(|&p| p == BATCH));
    // A 4 MiB upload, stopped half way: its MD5 runs on a thread of its own.
    let body: Vec<u8> = (0..4 * MIB).map(|i| (i * 7 % 251) as u8).collect();
    let req = app
        .req("PUT", "/sched/big")
        .payload(Payload::Unsigned)
        .content_length(&body.len().to_string());
    let mut tcp = TcpStream::connect(app.addr).await.expect("connect");
    tcp.write_all(&req.head_bytes()).await.expect("head");
    tcp.write_all(&body[..2 * MIB])
        .await
        .expect("half the body");
    assert!(
        eventually(5, || runtime_policies(app.pid()).contains(&NORMAL)).await,
        "no thread at the normal policy while hashing: {:?}",
        thread_policies(app.pid())
    );
    tcp.write_all(&body[2 * MIB..]).await.expect("the rest");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
        .await
        .expect("an answer")
        .expect("read");
    let resp = parse_response(&buf[..n], false);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.header("etag"),
        Some(format!("\"{}\"", md5_hex(&body)).as_str())
    );
    assert!(
        eventually(5, || runtime_policies(app.pid())
            .iter()
            .all(|&p| p == BATCH))
        .await,
        "the hashing thread did not return to SCHED_BATCH: {:?}",
        thread_policies(app.pid())
    );
}
