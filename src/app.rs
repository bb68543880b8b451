//! Building and running the server: state, router, listener, background tasks.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, StatusCode, header};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;
use tracing::Instrument;

use crate::audit::Audit;
use crate::config::Settings;
use crate::credentials::Credentials;
use crate::iam::{Iam, MasterKey};
use crate::meta::Db;
use crate::metrics::Metrics;
use crate::storage::BlobStore;

/// Shared state of every request: a handle to [`Shared`], cloned with one reference
/// count (a request used to clone a dozen `Arc`s several times over).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What every request shares: settings, database, blob store, principals, audit.
pub struct Shared {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub blobs: BlobStore,
    /// Users, keys, tokens and grants (cached in memory).
    pub iam: Arc<crate::iam::Iam>,
    /// The audit trail writer.
    pub audit: crate::audit::Audit,
    pub metrics: Arc<Metrics>,
    /// Permits for concurrent requests (`server.max_concurrent_requests`).
    pub limiter: Arc<Semaphore>,
    /// The in-memory search index over the catalog (loaded at start, kept fresh by
    /// every search).
    pub search: Arc<crate::catalog::SearchIndex>,
    /// The open lock file that keeps a second server off this data directory, held
    /// for as long as the server runs (see [`lock_data_dir`]).
    pub data_dir_lock: Arc<std::fs::File>,
}

/// The request id, assigned by the outermost middleware and echoed as `x-amz-request-id`.
#[derive(Clone)]
pub struct RequestId(pub Arc<str>);

/// The operation name a handler served, for logs and metrics (a response extension).
#[derive(Clone, Copy)]
pub struct OpName(pub &'static str);

/// Errors that stop the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::Error),
    #[error("cannot prepare data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("metadata database: {0}")]
    Db(#[from] crate::meta::Error),
    #[error("master key: {0}")]
    MasterKey(#[from] crate::iam::crypto::KeyError),
    #[error("principals: {0}")]
    Iam(#[from] crate::iam::Error),
    #[error("blob store: {0}")]
    Storage(#[from] crate::storage::Error),
    #[error(transparent)]
    Tls(#[from] crate::server::TlsError),
    #[error(
        "another tarn server uses the data directory {path} (one server per data directory; \
         `tarn admin` may run beside it)"
    )]
    DataDirInUse { path: std::path::PathBuf },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Takes an exclusive `flock` on `<data_dir>/tarn.lock`, or fails if another server
/// holds it. The search index and the object cache assume that every write to the
/// database comes from this process (or announces itself, as `tarn admin` does); a
/// second server would silently break that. The kernel releases the lock when the
/// process ends, however it ends.
fn lock_data_dir(data_dir: &std::path::Path) -> Result<std::fs::File, StartError> {
    use std::os::fd::AsRawFd;
    let path = data_dir.join("tarn.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| StartError::DataDir {
            path: path.clone(),
            source,
        })?;
    // SAFETY: the descriptor belongs to `file`, alive for the call; no memory is passed.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let err = std::io::Error::last_os_error();
        return Err(if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            StartError::DataDirInUse {
                path: data_dir.to_path_buf(),
            }
        } else {
            StartError::DataDir { path, source: err }
        });
    }
    Ok(file)
}

/// A built server: bound, migrated, cleaned, ready to run.
pub struct App {
    listener: TcpListener,
    state: AppState,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl App {
    /// Prepares the data directory, opens the database, removes what a crash left
    /// behind, and binds the listener.
    pub async fn build(settings: Settings) -> Result<App, StartError> {
        settings.validate()?;
        let data_dir = settings.storage.data_dir.clone();
        std::fs::create_dir_all(&data_dir).map_err(|source| StartError::DataDir {
            path: data_dir.clone(),
            source,
        })?;
        let lock = lock_data_dir(&data_dir)?;
        let credentials = match (
            &settings.auth.root_access_key,
            &settings.auth.root_secret_key,
        ) {
            (Some(a), Some(s)) => Credentials::new(a.clone(), s.clone()),
            _ => {
                let (c, generated) =
                    Credentials::load_or_generate(&data_dir).map_err(|source| {
                        StartError::DataDir {
                            path: data_dir.clone(),
                            source,
                        }
                    })?;
                if generated {
                    // Printed once, on the terminal only (never in logs).
                    println!(
                        "tarn: generated root credentials (stored in {}):\n  access key: {}\n  secret key: {}",
                        data_dir.join("root-credentials.json").display(),
                        c.access_key_id,
                        c.secret()
                    );
                }
                c
            }
        };
        let db = Db::open(&data_dir.join("tarn.db"))?;
        let master = MasterKey::load(settings.auth.master_key.as_deref(), &data_dir)?;
        // The root credential is the bootstrap admin: a key of the admin user `root`.
        let (m, root) = (master.clone(), credentials.clone());
        db.write(move |conn| {
            crate::iam::store::ensure_root(conn, &m, &root.access_key_id, root.secret()).map_err(
                |e| match e {
                    crate::iam::Error::Db(e) => e,
                    other => crate::meta::Error::Corrupt(other.to_string()),
                },
            )
        })
        .await?;
        let iam = Arc::new(Iam::open(db.clone(), master).await?);
        let audit = Audit::start(
            db.clone(),
            settings.audit.enabled,
            settings.audit.queue_capacity,
        );
        if settings.zones.create_zone_buckets {
            db.bootstrap_zones(settings.s3.region.clone()).await?;
        }
        let blobs = BlobStore::open(&data_dir, settings.storage.fsync)?;
        let (db2, blobs2) = (db.clone(), blobs.clone());
        let (tmp, orphans) = tokio::task::spawn_blocking(move || {
            let referenced = db2.referenced_blobs_blocking()?;
            Ok::<_, StartError>(blobs2.remove_orphans(&referenced)?)
        })
        .await
        .map_err(|e| StartError::DataDir {
            path: data_dir.clone(),
            source: std::io::Error::other(e),
        })??;
        if tmp + orphans > 0 {
            tracing::info!(tmp, orphans, "removed leftovers of interrupted writes");
        }
        let tls = match (&settings.tls.cert, &settings.tls.key) {
            (Some(c), Some(k)) => Some(Arc::new(crate::server::load_tls(c, k)?)),
            _ => None,
        };
        let addr = settings.server.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let limiter = Arc::new(Semaphore::new(settings.server.max_concurrent_requests));
        Ok(App {
            listener,
            tls,
            state: AppState(Arc::new(Shared {
                settings: Arc::new(settings),
                db,
                blobs,
                iam,
                audit,
                metrics: Arc::new(Metrics::default()),
                limiter,
                search: Arc::new(crate::catalog::SearchIndex::new()),
                data_dir_lock: Arc::new(lock),
            })),
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Whether the server speaks HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests
    /// finish within `server.shutdown_grace_secs`, and closes the database cleanly.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let state = self.state.clone();
        // Load the search index now rather than on the first search.
        let (db, index) = (state.db.clone(), state.search.clone());
        tokio::spawn(async move {
            if let Err(e) = db.read(move |conn| index.refresh(conn)).await {
                tracing::warn!(error = %e, "search index not loaded at start");
            }
        });
        let gc = tokio::spawn(upload_gc(state.clone()));
        let trim = tokio::spawn(crate::memory::return_free_memory(state.metrics.clone()));
        let iam_task = tokio::spawn(state.iam.clone().maintain(Duration::from_secs(2)));
        let audit_cfg = &state.settings.audit;
        let retention = (audit_cfg.retention_secs > 0).then(|| {
            tokio::spawn(crate::audit::retain(
                state.db.clone(),
                Duration::from_secs(audit_cfg.retention_secs),
                Duration::from_secs(audit_cfg.purge_interval_secs.max(1)),
            ))
        });
        let server = &state.settings.server;
        let opts = crate::server::ServeOptions {
            tls: self.tls.clone(),
            header_read_timeout: Duration::from_secs(server.request_timeout_secs),
            max_header_bytes: server.max_header_bytes,
            shutdown_grace: Duration::from_secs(server.shutdown_grace_secs),
        };
        crate::server::serve(self.listener, Front::new(state.clone()), opts, shutdown).await;
        gc.abort();
        trim.abort();
        iam_task.abort();
        if let Some(t) = retention {
            t.abort();
        }
        // Every request has been answered: write the audit records still queued.
        state.audit.flush().await;
        if let Err(e) = state.iam.tick().await {
            tracing::warn!(error = %e, "recording access key use failed");
        }
        // Every write that was acknowledged is committed; fold the WAL back in.
        state.db.close().await;
        Ok(())
    }
}

/// The front door of the listener. Every request passes [`observe`] (request id,
/// concurrency limit, log line, metrics, audit record); S3 requests then go straight
/// to the S3 handler, which routes by itself, and the rest (health, metrics, the REST
/// API) through the axum router. Cheap to clone.
#[derive(Clone)]
pub struct Front {
    state: AppState,
    routes: Router,
}

impl Front {
    /// The front door over `state`.
    pub fn new(state: AppState) -> Front {
        let routes = Router::new()
            .route("/health/live", get(|| async { "ok" }))
            .route("/health/ready", get(ready))
            .route("/metrics", get(metrics))
            .nest("/api/v1", crate::api::router(state.clone()))
            .fallback(crate::s3::handle)
            .with_state(state.clone());
        Front { state, routes }
    }

    /// Serves one request that came from `peer`.
    pub async fn call(&self, req: Request, peer: SocketAddr) -> Response {
        observe(self, req, peer).await
    }

    /// The handler's answer to `req`, with S3's report when S3 answered directly.
    /// Paths the router claims go through it; every other path is S3's (the router's
    /// fallback is S3 as well, so the two agree).
    async fn route(
        &self,
        mut req: Request,
        request_id: &Arc<str>,
    ) -> (Response, Option<crate::s3::Served>) {
        if routed_path(req.uri().path()) {
            req.extensions_mut().insert(RequestId(request_id.clone()));
            match self.routes.clone().oneshot(req).await {
                Ok(resp) => (resp, None),
                Err(never) => match never {},
            }
        } else {
            let (resp, served) =
                crate::s3::serve(self.state.clone(), request_id.clone(), req).await;
            (resp, Some(served))
        }
    }
}

/// Whether `path` is one of the router's (health, metrics, the REST API), not S3's.
fn routed_path(path: &str) -> bool {
    path == "/metrics"
        || path.starts_with("/health/")
        || path
            .strip_prefix("/api/v1")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Around every request: request id, concurrency limit, one log line, the metrics and
/// the audit record.
async fn observe(front: &Front, req: Request, peer: SocketAddr) -> Response {
    let state = &front.state;
    let request_id = crate::s3::new_request_id();
    let started = std::time::Instant::now();
    let _in_flight = state.metrics.start();
    let method = req.method().clone();
    // A clone of the URI shares its bytes (no copy); its path names the resource of
    // requests no handler claimed.
    let uri = req.uri().clone();
    let path = uri.path();
    let bytes_in = content_length(req.headers());
    let expects_continue = req
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let span = tracing::info_span!("request", request_id = %request_id, %method);
    // What the audit record needs of the request, taken before the handler owns it.
    let audited = state.audit.enabled() && !path.starts_with("/health/") && path != "/metrics";
    let audit_req = audited.then(|| AuditRequest::of(req.headers()));
    let permit = state.limiter.clone().try_acquire_owned();
    let (mut resp, mut served) = match permit {
        Ok(_permit) => front.route(req, &request_id).instrument(span.clone()).await,
        Err(_) => (crate::s3::overloaded(path, &request_id), None),
    };
    if served.is_none() {
        // Answered by the router (or refused here): S3's fallback reports through the
        // response's extensions.
        let ext = resp.extensions_mut();
        if let Some(OpName(op)) = ext.remove::<OpName>() {
            served = Some(crate::s3::Served {
                op,
                principal: ext.remove::<crate::iam::Principal>(),
                resource: ext
                    .remove::<crate::audit::AuditResource>()
                    .map(|r| r.0)
                    .unwrap_or_else(|| path.to_string()),
            });
        }
    }
    let op = served.as_ref().map(|s| s.op).unwrap_or(match path {
        "/metrics" => "Metrics",
        p if p.starts_with("/health/") => "Health",
        p if p.starts_with("/api/") => "RestApi",
        _ => "Other",
    });
    if !resp.headers().contains_key(crate::s3::X_AMZ_REQUEST_ID)
        && let Ok(v) = HeaderValue::from_str(&request_id)
    {
        resp.headers_mut().insert(crate::s3::X_AMZ_REQUEST_ID, v);
    }
    // hyper sends `100 Continue` only when a body is read. A request that expected it
    // but was answered without (an empty body, or refused early) leaves some clients
    // (botocore before 1.x's fix, used by aws-cli v1) misreading the next response on
    // the connection, so such connections are closed after the answer.
    if expects_continue && (bytes_in == 0 || !resp.status().is_success()) {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let status = resp.status().as_u16();
    let elapsed = started.elapsed();
    let bytes_out = content_length(resp.headers());
    state
        .metrics
        .record(op, status, elapsed, bytes_in, bytes_out);
    let ext = resp.extensions();
    let principal = match &served {
        Some(s) => s.principal.as_ref(),
        // The REST API leaves its caller in the response's extensions.
        None => ext.get::<crate::iam::Principal>(),
    };
    span.in_scope(|| {
        tracing::info!(
            op,
            status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            principal = principal
                .and_then(|p| p.access_key_id.as_deref())
                .unwrap_or("-"),
            user = principal.map(|p| p.name()).unwrap_or("-"),
            "served"
        );
    });
    if let Some(a) = audit_req {
        let action = match ext.get::<crate::audit::RouteName>() {
            Some(r) => Cow::Owned(format!("{method} {}", r.0)),
            None => Cow::Borrowed(op),
        };
        let (principal, resource) = match served {
            Some(s) => (s.principal, s.resource),
            None => (
                ext.get::<crate::iam::Principal>().cloned(),
                path.to_string(),
            ),
        };
        let time_ms = a.time_ms;
        let (claimed_key, user_agent) = a.finish(principal.is_some(), uri);
        state.audit.record(crate::audit::Entry {
            time_ms,
            request_id,
            principal,
            claimed_key,
            action,
            resource,
            status,
            bytes_in,
            bytes_out,
            source: Some(peer.ip()),
            user_agent,
        });
    }
    resp
}

/// What the audit record keeps of a request, taken before the handler owns it.
struct AuditRequest {
    /// Copied: see [`crate::audit::Entry`] on why nothing may share the request's bytes.
    user_agent: Option<Box<str>>,
    /// Names the access key id if the request does not authenticate (shared with the
    /// request, and dropped with it).
    authorization: Option<HeaderValue>,
    time_ms: i64,
}

impl AuditRequest {
    fn of(headers: &http::HeaderMap) -> AuditRequest {
        AuditRequest {
            user_agent: headers
                .get(header::USER_AGENT)
                .and_then(crate::audit::user_agent),
            // Only signatures name a key; a bearer token is a secret and is not kept.
            authorization: headers
                .get(header::AUTHORIZATION)
                .filter(|v| !v.as_bytes().starts_with(b"Bearer "))
                .cloned(),
            time_ms: crate::meta::now_millis(),
        }
    }

    /// The claimed access key id (only when the request did not authenticate) and the
    /// user agent, both owned, so that the record outlives the request without holding
    /// any of its bytes.
    fn finish(self, authenticated: bool, uri: http::Uri) -> (Option<String>, Option<Box<str>>) {
        let claim = crate::audit::Claim {
            authorization: self.authorization,
            uri,
        };
        let claimed_key = if authenticated {
            None
        } else {
            claim.access_key_id()
        };
        (claimed_key, self.user_agent)
    }
}

fn content_length(h: &http::HeaderMap) -> u64 {
    h.get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `/metrics` in the Prometheus text format. Requires the root credential (SigV4) or,
/// when `server.metrics_token` is set, `Authorization: Bearer <token>`.
async fn metrics(State(state): State<AppState>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    if !crate::s3::authorized_for_metrics(&state, &parts) {
        return (StatusCode::FORBIDDEN, "metrics require authentication\n").into_response();
    }
    let buckets = state.db.bucket_usage().await.unwrap_or_default();
    let free = crate::metrics::free_bytes(&state.settings.storage.data_dir);
    let body = state
        .metrics
        .render(&buckets, free, state.audit.queue_depth());
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        Body::from(body),
    )
        .into_response()
}

/// Ready when the database answers a write and the data directory is writable with
/// more than `storage.min_free_bytes` free.
async fn ready(State(state): State<AppState>) -> (StatusCode, String) {
    if let Err(e) = state.db.write(|_| Ok(())).await {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("database unavailable: {e}\n"),
        );
    }
    let dir = state.settings.storage.data_dir.clone();
    let probe = tokio::task::spawn_blocking(move || {
        let p = dir.join("tmp").join(".ready-probe");
        std::fs::write(&p, b"ok").and_then(|()| std::fs::remove_file(&p))
    })
    .await;
    if !matches!(probe, Ok(Ok(()))) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "data directory not writable\n".into(),
        );
    }
    match crate::metrics::free_bytes(&state.settings.storage.data_dir) {
        Some(free) if free < state.settings.storage.min_free_bytes => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("low disk space: {free} bytes free\n"),
        ),
        _ => (StatusCode::OK, "ready\n".into()),
    }
}

/// Aborts multipart uploads older than the configured age, periodically.
async fn upload_gc(state: AppState) {
    let s3 = &state.settings.s3;
    let mut tick = tokio::time::interval(Duration::from_secs(s3.upload_gc_interval_secs.max(1)));
    loop {
        tick.tick().await;
        let cutoff = crate::meta::now_millis() - (s3.abandoned_upload_age_secs as i64) * 1000;
        match state.db.expire_uploads(cutoff).await {
            Ok((0, _)) => {}
            Ok((n, blobs)) => {
                tracing::info!(uploads = n, "aborted abandoned multipart uploads");
                state.blobs.delete_later(blobs);
            }
            Err(e) => tracing::warn!(error = %e, "abandoned upload cleanup failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{AuditRequest, routed_path};

    /// hyper parses headers in place: values and the URI share its read buffer. What
    /// the audit record keeps must not, or every queued record holds a buffer alive
    /// and the connection allocates a new one per request (it did: 8 KiB each).
    #[test]
    fn the_audit_record_keeps_no_bytes_of_the_request() {
        let raw = bytes::Bytes::from(
            b"/b/k?X-Amz-Credential=CLAIMED%2F20250101%2Fus-east-1%2Fs3%2Faws4_request\
              aws-cli/2.15 Python/3.11\
              AWS4-HMAC-SHA256 Credential=SIGNER/20250101/us-east-1/s3/aws4_request"
                .to_vec(),
        );
        let (uri_end, ua_end) = (72, 96);
        let shared = |a: usize, b: usize| {
            http::HeaderValue::from_maybe_shared(raw.slice(a..b)).expect("header value")
        };
        for authenticated in [false, true] {
            let mut headers = http::HeaderMap::new();
            headers.insert(http::header::USER_AGENT, shared(uri_end, ua_end));
            headers.insert(http::header::AUTHORIZATION, shared(ua_end, raw.len()));
            let uri = http::Uri::from_maybe_shared(raw.slice(..uri_end)).expect("uri");
            let audit = AuditRequest::of(&headers);
            drop(headers);
            let (claimed, user_agent) = audit.finish(authenticated, uri);
            assert!(raw.is_unique(), "the record shares the request's buffer");
            let expected = (!authenticated).then_some("SIGNER");
            assert_eq!(claimed.as_deref(), expected);
            assert_eq!(user_agent.as_deref(), Some("aws-cli/2.15 Python/3.11"));
        }
    }

    /// Only the router's own paths go to the router; every other path stays S3's (a
    /// bucket may well be named `health` or `metrics2`).
    #[test]
    fn the_router_claims_only_its_own_paths() {
        for p in [
            "/metrics",
            "/health/live",
            "/health/ready",
            "/api/v1",
            "/api/v1/",
            "/api/v1/datasets",
        ] {
            assert!(routed_path(p), "{p}");
        }
        for p in [
            "/",
            "/metrics2",
            "/metrics/x",
            "/health",
            "/api",
            "/api/v1x",
            "/api/v2/datasets",
            "/bucket/api/v1",
        ] {
            assert!(!routed_path(p), "{p}");
        }
    }
}
