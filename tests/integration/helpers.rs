//! Test harness: start the real `tarn` binary on a free port with a fresh data
//! directory, and talk to it over raw HTTP/1.1 so that every byte of the request
//! (path, headers, framing) is under the test's control.
//!
//! Requests are signed with `aws-sigv4` (path-style, region us-east-1, service s3).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
    SigningSettings, UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use base64::Engine;
use md5::Digest as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const REGION: &str = "us-east-1";
pub const MIB: usize = 1024 * 1024;

/// A running server. Killed when dropped.
pub struct TestApp {
    pub addr: SocketAddr,
    pub access_key: String,
    pub secret_key: String,
    pub data_dir: Arc<tempfile::TempDir>,
    config: Option<Arc<tempfile::NamedTempFile>>,
    child: Child,
    /// The server's stderr, when started with [`Launch::capture_logs`].
    pub logs: Arc<std::sync::Mutex<String>>,
    /// How it was started, so that [`TestApp::restart`] starts it the same way.
    launched_with: Launch,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn random_hex(n: usize) -> String {
    (0..n)
        .map(|_| char::from_digit(rand::random::<u32>() % 16, 16).unwrap_or('0'))
        .collect()
}

/// Starts a server with a fresh data directory and random root credentials.
pub async fn spawn_app() -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let access = format!("AK{}", random_hex(18).to_uppercase());
    let secret = random_hex(40);
    start(dir, access, secret, None)
}

/// Starts a server with the product's zone defaults (see [`Launch::product_zones`]).
pub async fn spawn_app_with_zones() -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let (access, secret) = new_credentials();
    launch(
        dir,
        access,
        secret,
        None,
        &Launch {
            product_zones: true,
            ..Launch::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Starts a server with a configuration file holding `toml`.
pub async fn spawn_app_with_config(toml: &str) -> TestApp {
    use std::io::Write;
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let mut f = tempfile::NamedTempFile::new().expect("config file");
    f.write_all(toml.as_bytes()).expect("write config");
    let access = format!("AK{}", random_hex(18).to_uppercase());
    let secret = random_hex(40);
    start(dir, access, secret, Some(Arc::new(f)))
}

fn start(
    dir: Arc<tempfile::TempDir>,
    access: String,
    secret: String,
    config: Option<Arc<tempfile::NamedTempFile>>,
) -> TestApp {
    launch(dir, access, secret, config, &Launch::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// Extra ways to start the server, for the operations tests.
#[derive(Default, Clone)]
pub struct Launch {
    /// Arguments after `serve` replacing `--listen 127.0.0.1:0 --data-dir <dir>`.
    pub args: Option<Vec<String>>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Keep the server's stderr (logs) in [`TestApp::logs`].
    pub capture_logs: bool,
    /// Root credentials come from the environment unless this is set.
    pub no_root_env: bool,
    /// Keep the product's zone defaults (S3-created buckets land in the write-once raw
    /// zone; raw, transformed and curated exist from the start). Without it, test
    /// servers put new buckets in `transformed`, which has plain S3 semantics, and
    /// create no zone buckets, so the S3 conformance tests see S3 behaviour.
    pub product_zones: bool,
}

/// Starts a server as [`Launch`] says. Returns the error text (with the server's stderr)
/// if it exits or does not print its listening line.
pub fn launch(
    dir: Arc<tempfile::TempDir>,
    access: String,
    secret: String,
    config: Option<Arc<tempfile::NamedTempFile>>,
    opts: &Launch,
) -> Result<TestApp, String> {
    let log = std::env::var_os("TEST_LOG").is_some();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tarn"));
    cmd.arg("serve");
    match &opts.args {
        Some(args) => {
            cmd.args(args);
        }
        None => {
            cmd.arg("--listen")
                .arg("127.0.0.1:0")
                .arg("--data-dir")
                .arg(dir.path());
        }
    }
    if !opts.no_root_env {
        cmd.env("TARN_ROOT_ACCESS_KEY", &access)
            .env("TARN_ROOT_SECRET_KEY", &secret);
    }
    if !opts.product_zones {
        cmd.env("TARN__ZONES__DEFAULT_ZONE", "transformed")
            .env("TARN__ZONES__CREATE_ZONE_BUCKETS", "false");
    }
    for (k, v) in &opts.env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(if opts.capture_logs {
            Stdio::piped()
        } else if log {
            Stdio::inherit()
        } else {
            Stdio::null()
        });
    if let Some(c) = &config {
        cmd.arg("--config").arg(c.path());
    }
    if log && std::env::var_os("TARN_LOG").is_none() {
        cmd.env("TARN_LOG", "debug");
    }
    let mut child = cmd.spawn().expect("spawn tarn");
    let logs = Arc::new(std::sync::Mutex::new(String::new()));
    if let Some(stderr) = child.stderr.take() {
        let logs = logs.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut line = String::new();
            while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
                if let Ok(mut l) = logs.lock() {
                    l.push_str(&line);
                }
                line.clear();
            }
        });
    }
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let mut sent = false;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let rest = line.trim();
                    let addr = rest
                        .strip_prefix("tarn listening on http://")
                        .or_else(|| rest.strip_prefix("tarn listening on https://"));
                    if !sent && let Some(a) = addr {
                        let _ = tx.send(a.to_string());
                        sent = true;
                    }
                }
            }
        }
    });
    let addr = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(a) => a.parse().expect("listen address"),
        Err(_) => {
            let status = child.try_wait();
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
            let text = logs.lock().map(|l| l.clone()).unwrap_or_default();
            return Err(format!(
                "tarn did not print its listening line (exit status: {status:?}); stderr:\n{text}"
            ));
        }
    };
    Ok(TestApp {
        addr,
        access_key: access,
        secret_key: secret,
        data_dir: dir,
        config,
        child,
        logs,
        launched_with: opts.clone(),
    })
}

/// Fresh random root credentials.
pub fn new_credentials() -> (String, String) {
    (
        format!("AK{}", random_hex(18).to_uppercase()),
        random_hex(40),
    )
}

/// A configuration file holding `toml`.
pub fn config_file(toml: &str) -> Arc<tempfile::NamedTempFile> {
    use std::io::Write;
    let mut f = tempfile::NamedTempFile::new().expect("config file");
    f.write_all(toml.as_bytes()).expect("write config");
    Arc::new(f)
}

/// How the request is authenticated.
#[derive(Clone, Debug)]
pub enum Payload {
    /// Signed, with the real SHA-256 of the body in x-amz-content-sha256.
    Sha256,
    /// Signed, with UNSIGNED-PAYLOAD.
    Unsigned,
    /// Signed, with this value as the payload hash (e.g. a wrong hash, or STREAMING-...).
    Precomputed(String),
    /// No authentication at all.
    Anonymous,
}

/// A request being built; `send()` signs and sends it.
pub struct Req<'a> {
    app: &'a TestApp,
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub payload: Payload,
    pub time: Option<SystemTime>,
    pub creds: Option<(String, String)>,
    pub content_length: Option<String>,
}

impl<'a> Req<'a> {
    pub fn header(mut self, k: &str, v: impl Into<String>) -> Self {
        self.headers.push((k.to_string(), v.into()));
        self
    }
    pub fn headers(mut self, hs: &[(&str, &str)]) -> Self {
        for (k, v) in hs {
            self.headers.push((k.to_string(), v.to_string()));
        }
        self
    }
    pub fn body(mut self, b: impl Into<Vec<u8>>) -> Self {
        self.body = b.into();
        self
    }
    pub fn payload(mut self, p: Payload) -> Self {
        self.payload = p;
        self
    }
    pub fn anonymous(self) -> Self {
        self.payload(Payload::Anonymous)
    }
    pub fn time(mut self, t: SystemTime) -> Self {
        self.time = Some(t);
        self
    }
    pub fn creds(mut self, access: &str, secret: &str) -> Self {
        self.creds = Some((access.to_string(), secret.to_string()));
        self
    }
    pub fn content_length(mut self, v: &str) -> Self {
        self.content_length = Some(v.to_string());
        self
    }

    /// The headers the request is sent with, signature included.
    pub fn signed_headers(&self) -> Vec<(String, String)> {
        let mut headers = Vec::new();
        if !self
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("host"))
        {
            headers.push(("host".to_string(), self.app.host()));
        }
        headers.extend(self.headers.iter().cloned());
        let payload_hash = match &self.payload {
            Payload::Anonymous => return headers,
            Payload::Sha256 => sha256_hex(&self.body),
            Payload::Unsigned => "UNSIGNED-PAYLOAD".to_string(),
            Payload::Precomputed(h) => h.clone(),
        };
        let (access, secret) = self
            .creds
            .clone()
            .unwrap_or_else(|| (self.app.access_key.clone(), self.app.secret_key.clone()));
        let time = self.time.unwrap_or_else(SystemTime::now);
        let (extra, _sig) = sign_request(
            &self.method,
            &self.app.url(&self.path),
            &headers,
            &payload_hash,
            &access,
            &secret,
            time,
        );
        headers.extend(extra);
        headers
    }

    /// The request line and headers, signed, ending with the blank line.
    pub fn head_bytes(&self) -> Vec<u8> {
        let headers = self.signed_headers();
        let cl = self
            .content_length
            .clone()
            .unwrap_or_else(|| self.body.len().to_string());
        let mut head = format!("{} {} HTTP/1.1\r\n", self.method, self.path);
        for (k, v) in &headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        let has_cl = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
        if !has_cl
            && (self.content_length.is_some()
                || !self.body.is_empty()
                || !matches!(self.method.as_str(), "GET" | "HEAD"))
        {
            head.push_str(&format!("content-length: {cl}\r\n"));
        }
        head.push_str("connection: close\r\n\r\n");
        head.into_bytes()
    }

    pub async fn send(self) -> Response {
        let head = self.head_bytes();
        exchange(self.app.addr, head, self.body, self.method == "HEAD").await
    }
}

/// Signs a request with SigV4 in the Authorization header. Returns the headers to add
/// and the signature (the seed signature for aws-chunked bodies).
pub fn sign_request(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    payload_hash: &str,
    access: &str,
    secret: &str,
    time: SystemTime,
) -> (Vec<(String, String)>, String) {
    let identity: Identity = Credentials::new(access, secret, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("s3")
        .time(time)
        .settings(settings)
        .build()
        .expect("signing params")
        .into();
    let signable = SignableRequest::new(
        method,
        url,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Precomputed(payload_hash.to_string()),
    )
    .expect("signable request");
    let out = sign(signable, &params).expect("sign");
    let (instructions, signature) = out.into_parts();
    let (hs, _) = instructions.into_parts();
    (
        hs.into_iter()
            .map(|h| (h.name().to_string(), h.value().to_string()))
            .collect(),
        signature,
    )
}

impl TestApp {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }

    pub fn data_path(&self) -> PathBuf {
        self.data_dir.path().to_path_buf()
    }

    /// A request builder (signed with the real payload hash unless changed).
    pub fn req(&self, method: &str, path_and_query: &str) -> Req<'_> {
        Req {
            app: self,
            method: method.to_string(),
            path: path_and_query.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            payload: Payload::Sha256,
            time: None,
            creds: None,
            content_length: None,
        }
    }

    /// A signed request (payload hash = SHA-256 of the body).
    pub async fn request(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: impl Into<Vec<u8>>,
    ) -> Response {
        self.req(method, path_and_query)
            .headers(headers)
            .body(body)
            .send()
            .await
    }

    pub async fn create_bucket(&self, bucket: &str) {
        let r = self.request("PUT", &format!("/{bucket}"), &[], "").await;
        assert_eq!(r.status, 200, "create bucket {bucket}: {}", r.text());
    }

    pub async fn put(&self, bucket: &str, key: &str, body: impl Into<Vec<u8>>) -> Response {
        self.request("PUT", &obj(bucket, key), &[], body).await
    }

    pub async fn put_ok(&self, bucket: &str, key: &str, body: impl Into<Vec<u8>>) -> String {
        let r = self.put(bucket, key, body).await;
        assert_eq!(r.status, 200, "put {key:?}: {}", r.text());
        r.header("etag").expect("etag").to_string()
    }

    pub async fn get(&self, bucket: &str, key: &str) -> Response {
        self.request("GET", &obj(bucket, key), &[], "").await
    }

    pub async fn head(&self, bucket: &str, key: &str) -> Response {
        self.request("HEAD", &obj(bucket, key), &[], "").await
    }

    /// A presigned URL (SigV4 query) for `path_and_query`, signed at `time`.
    pub fn presign(
        &self,
        method: &str,
        path_and_query: &str,
        expires: u64,
        time: SystemTime,
    ) -> String {
        let identity: Identity = Credentials::new(
            self.access_key.as_str(),
            self.secret_key.as_str(),
            None,
            None,
            "test",
        )
        .into();
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(Duration::from_secs(expires));
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(REGION)
            .name("s3")
            .time(time)
            .settings(settings)
            .build()
            .expect("signing params")
            .into();
        let url = self.url(path_and_query);
        let host = self.host();
        let signable = SignableRequest::new(
            method,
            url.as_str(),
            std::iter::once(("host", host.as_str())),
            SignableBody::UnsignedPayload,
        )
        .expect("signable");
        let (instructions, _) = sign(signable, &params).expect("presign").into_parts();
        let (_, query) = instructions.into_parts();
        let mut out = url.clone();
        let mut sep = if url.contains('?') { '&' } else { '?' };
        for (k, v) in query {
            out.push(sep);
            out.push_str(&format!("{}={}", k, uri_encode(&v, true)));
            sep = '&';
        }
        out
    }

    /// Kills the server (SIGKILL) and starts a new one on the same data directory.
    pub fn restart(mut self) -> TestApp {
        let _ = self.child.kill();
        let _ = self.child.wait();
        launch(
            self.data_dir.clone(),
            self.access_key.clone(),
            self.secret_key.clone(),
            self.config.clone(),
            &self.launched_with,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The server's process id.
    pub fn child_id(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server with SIGTERM and waits for it to exit; returns its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").arg("-TERM").arg(&pid).status();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("tarn did not exit after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Files in `<data>/tmp/`.
    pub fn tmp_files(&self) -> Vec<PathBuf> {
        list_dir(&self.data_path().join("tmp"))
    }
}

pub fn list_dir(p: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(p)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

/// A response read to the end.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// Text of the first element `name`.
    pub fn xml(&self, name: &str) -> Option<String> {
        xml_all(&self.text(), name).into_iter().next()
    }
    /// Texts of every element `name`.
    pub fn xml_all(&self, name: &str) -> Vec<String> {
        xml_all(&self.text(), name)
    }
    pub fn code(&self) -> Option<String> {
        self.xml("Code")
    }
}

/// Inner text (unescaped) of every `<name>` element in `doc`, in order.
pub fn xml_all(doc: &str, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let open = format!("<{name}");
    let close = format!("</{name}>");
    let mut rest = doc;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(c) = after.chars().next() else { break };
        if c != '>' && c != ' ' && c != '/' {
            rest = after;
            continue;
        }
        let Some(gt) = after.find('>') else { break };
        if after[..gt].ends_with('/') {
            out.push(String::new());
            rest = &after[gt + 1..];
            continue;
        }
        let content = &after[gt + 1..];
        let Some(end) = content.find(&close) else {
            break;
        };
        let raw = &content[..end];
        out.push(
            quick_xml::escape::unescape(raw)
                .map(|c| c.into_owned())
                .unwrap_or_else(|_| raw.to_string()),
        );
        rest = &content[end + close.len()..];
    }
    out
}

/// Raw inner XML of every `<name>` element (for sections like Contents).
pub fn xml_sections(doc: &str, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let mut rest = doc;
    while let Some(i) = rest.find(&open) {
        let content = &rest[i + open.len()..];
        let Some(end) = content.find(&close) else {
            break;
        };
        out.push(content[..end].to_string());
        rest = &content[end + close.len()..];
    }
    out
}

/// Asserts an S3 error: status, Code, and the standard elements.
#[track_caller]
pub fn assert_err(r: &Response, status: u16, code: &str) {
    assert_eq!(
        r.status,
        status,
        "expected {status} {code}, got {} {}",
        r.status,
        r.text()
    );
    assert_eq!(r.code().as_deref(), Some(code), "body: {}", r.text());
    let body = r.text();
    assert!(body.contains("<Message>"), "no Message: {body}");
    assert!(body.contains("<Resource>"), "no Resource: {body}");
    let rid = r.xml("RequestId").expect("RequestId element");
    assert!(!rid.is_empty());
    assert_eq!(
        r.header("x-amz-request-id"),
        Some(rid.as_str()),
        "RequestId header/body mismatch"
    );
}

/// Sends raw bytes, reads the response to EOF (the request must ask for
/// `connection: close`). The body is written concurrently so an early answer is
/// not lost.
pub async fn exchange(addr: SocketAddr, head: Vec<u8>, body: Vec<u8>, is_head: bool) -> Response {
    let fut = async move {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (mut rd, mut wr) = stream.into_split();
        let writer = tokio::spawn(async move {
            let _ = wr.write_all(&head).await;
            let _ = wr.write_all(&body).await;
            let _ = wr.flush().await;
            wr
        });
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match rd.read(&mut chunk).await {
                Ok(0) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(_) => break,
            }
        }
        let _ = writer.await;
        parse_response(&buf, is_head)
    };
    tokio::time::timeout(Duration::from_secs(120), fut)
        .await
        .expect("request timed out")
}

/// Sends raw bytes on a fresh connection and returns what comes back (parsed).
pub async fn raw_send(addr: SocketAddr, bytes: &[u8]) -> Response {
    exchange(addr, bytes.to_vec(), Vec::new(), false).await
}

pub fn parse_response(mut buf: &[u8], is_head: bool) -> Response {
    // Skip interim (1xx) responses such as 100 Continue.
    while buf.starts_with(b"HTTP/1.1 1") || buf.starts_with(b"HTTP/1.0 1") {
        match buf.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(e) => buf = &buf[e + 4..],
            None => break,
        }
    }
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        panic!(
            "incomplete response ({} bytes): {:?}",
            buf.len(),
            String::from_utf8_lossy(buf)
        );
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let raw = &buf[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    let body = if is_head || status == 204 || status == 304 {
        Vec::new()
    } else if chunked {
        dechunk(raw)
    } else {
        raw.to_vec()
    };
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") {
        let line = String::from_utf8_lossy(&raw[..eol]);
        let size =
            usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        raw = &raw[eol + 2..];
        if size == 0 || raw.len() < size {
            break;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[(size + 2).min(raw.len())..];
    }
    out
}

// ---------------------------------------------------------------------------------
// Encoding and hashing helpers

/// S3 URI encoding: everything but unreserved characters (and `/` unless `slash`).
pub fn uri_encode(s: &str, slash: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b'/' if !slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The path of an object.
pub fn obj(bucket: &str, key: &str) -> String {
    format!("/{bucket}/{}", uri_encode(key, false))
}

/// A query value, encoded.
pub fn q(v: &str) -> String {
    uri_encode(v, true)
}

pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

pub fn md5_hex(b: &[u8]) -> String {
    hex::encode(md5::Md5::digest(b))
}

pub fn md5_b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(b))
}

pub fn quoted_md5(b: &[u8]) -> String {
    format!("\"{}\"", md5_hex(b))
}

/// Deterministic pseudo-random bytes.
pub fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Decodes `%XX` and `+` (as a form decoder does, the way SDKs read encoding-type=url).
pub fn url_decode_plus(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz");
                match u8::from_str_radix(h, 16) {
                    Ok(v) => out.push(v),
                    Err(_) => out.extend_from_slice(&b[i..i + 3]),
                }
                i += 3;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Waits until `f` is true, up to `secs` seconds.
pub async fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if f() {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The HTTP date of `t`.
pub fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

pub fn parse_http_date(s: &str) -> SystemTime {
    httpdate::parse_http_date(s).expect("http date")
}
