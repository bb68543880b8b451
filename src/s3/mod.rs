//! The S3 protocol layer: authenticate, route, dispatch, and turn every error into the
//! S3 XML error document in one place ([`serve`]).

pub mod access;
pub mod auth;
pub mod body;
pub mod checksum;
pub mod endpoint;
pub mod error;
pub mod form;
mod handlers;
pub(crate) mod names;
pub mod range;
pub mod xml;
pub mod zones;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::extract::State;
use http::{HeaderName, HeaderValue, Request, Response, header};

use crate::app::AppState;
use auth::{SecretLookup, Verified};
use endpoint::{Endpoint, Query, Route};
use error::{Code, S3Error};

/// Everything a handler needs about the request besides its body.
pub struct Ctx {
    pub app: AppState,
    pub request_id: Arc<str>,
    pub route: Route,
    pub query: Query,
    pub parts: http::request::Parts,
    pub verified: Option<Verified>,
    /// The user behind `verified` (absent only for PostObject before its form is read).
    pub principal: Option<crate::iam::Principal>,
}

impl Ctx {
    /// The routed bucket (handlers for bucket operations are only reached with one).
    pub fn bucket(&self) -> Result<&str, S3Error> {
        self.route
            .bucket
            .as_deref()
            .ok_or_else(|| S3Error::new(Code::InvalidRequest))
    }

    /// The routed key.
    pub fn key(&self) -> Result<&str, S3Error> {
        self.route
            .key
            .as_deref()
            .ok_or_else(|| S3Error::new(Code::InvalidRequest))
    }

    /// The authenticated caller (every handler but PostObject's form reader has one).
    pub fn principal(&self) -> Result<&crate::iam::Principal, S3Error> {
        self.principal
            .as_ref()
            .ok_or_else(|| S3Error::new(Code::AccessDenied))
    }

    /// A request header as a string, if present and valid.
    pub fn header<K: http::header::AsHeaderName>(&self, name: K) -> Option<&str> {
        self.parts.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A new request id: a per-process random prefix and a counter, as hex.
pub fn new_request_id() -> Arc<str> {
    static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(rand::random);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    request_id(prefix, n)
}

/// `{prefix:08X}{n:08X}`, written without the formatter (it runs on every request).
fn request_id(prefix: u32, n: u64) -> Arc<str> {
    let mut buf = [b'0'; 24];
    let n_digits = (16 - n.leading_zeros() as usize / 4).max(8);
    let len = 8 + n_digits;
    for (i, slot) in buf.iter_mut().take(len).enumerate().rev() {
        let (value, shift) = if i < 8 {
            (u64::from(prefix), (7 - i) * 4)
        } else {
            (n, (len - 1 - i) * 4)
        };
        *slot = b"0123456789ABCDEF"[((value >> shift) & 0xf) as usize];
    }
    Arc::from(std::str::from_utf8(buf.get(..len).unwrap_or_default()).unwrap_or_default())
}

/// `x-amz-request-id`, the request id on every S3 answer.
pub const X_AMZ_REQUEST_ID: HeaderName = HeaderName::from_static("x-amz-request-id");
/// `x-amz-id-2`, which S3 clients log beside the request id.
const X_AMZ_ID_2: HeaderName = HeaderName::from_static("x-amz-id-2");

/// What the S3 layer reports about a request it answered, for the log line, the
/// metrics and the audit record.
pub struct Served {
    /// The S3 operation (`GetObject`), or `Unknown` when the request did not route.
    pub op: &'static str,
    /// The caller whose signature verified.
    pub principal: Option<crate::iam::Principal>,
    /// What the request was about: `bucket/key`, the bucket, or else the path.
    pub resource: String,
}

/// The S3 entry point: answers a request that is not for the REST API or health,
/// turning every error into its XML document, and reports what it served.
pub async fn serve(
    app: AppState,
    request_id: Arc<str>,
    req: Request<Body>,
) -> (Response<Body>, Served) {
    let (parts, body) = req.into_parts();
    // A clone shares the bytes: the path is only copied if it becomes the audit resource.
    let uri = parts.uri.clone();
    let head = parts.method == http::Method::HEAD;
    let mut principal = None;
    let mut audited = None;
    let result = dispatch(
        app,
        request_id.clone(),
        parts,
        body,
        &mut principal,
        &mut audited,
    )
    .await;
    let (mut resp, op) = match result {
        Ok(ok) => ok,
        Err((e, op)) => {
            if e.code.status().is_server_error() {
                tracing::warn!(op, code = e.code.as_str(), "request failed");
            } else {
                tracing::debug!(op, code = e.code.as_str(), message = %e.message, "request refused");
            }
            (error_response(&e, uri.path(), &request_id, head), op)
        }
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert(X_AMZ_REQUEST_ID, v.clone());
        h.insert(X_AMZ_ID_2, v);
    }
    h.insert(header::SERVER, HeaderValue::from_static("Tarn"));
    let served = Served {
        op,
        principal,
        resource: audited.unwrap_or_else(|| uri.path().to_string()),
    };
    (resp, served)
}

/// [`serve`] as an axum handler (the router's fallback): takes the request id from
/// the request and leaves the report in the response's extensions.
pub async fn handle(State(app): State<AppState>, req: Request<Body>) -> Response<Body> {
    let request_id = req
        .extensions()
        .get::<crate::app::RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_else(new_request_id);
    let (mut resp, served) = serve(app, request_id, req).await;
    let ext = resp.extensions_mut();
    ext.insert(crate::app::OpName(served.op));
    if let Some(p) = served.principal {
        ext.insert(p);
    }
    ext.insert(crate::audit::AuditResource(served.resource));
    resp
}

/// The answer when `server.max_concurrent_requests` are already being served.
pub fn overloaded(resource: &str, request_id: &str) -> Response<Body> {
    let mut resp = error_response(&S3Error::new(Code::SlowDown), resource, request_id, false);
    resp.extensions_mut().insert(crate::app::OpName("SlowDown"));
    resp
}

/// Whether a `/metrics` request carries the metrics bearer token or a valid signature.
pub fn authorized_for_metrics(app: &AppState, parts: &http::request::Parts) -> bool {
    use subtle::ConstantTimeEq;
    if let (Some(token), Some(given)) = (
        app.settings.server.metrics_token.as_deref(),
        parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ")),
    ) {
        return bool::from(token.as_bytes().ct_eq(given.trim().as_bytes()));
    }
    let secrets: &dyn SecretLookup = app.iam.as_ref();
    let Ok(v) = auth::verify(
        &parts.method,
        parts.uri.path(),
        parts.uri.query().unwrap_or(""),
        &parts.headers,
        secrets,
        std::time::SystemTime::now(),
    ) else {
        return false;
    };
    app.iam
        .principal_for_key(&v.access_key_id)
        .is_some_and(|p| p.is_admin())
}

/// Renders an error (no body for HEAD, as S3 does).
fn error_response(e: &S3Error, resource: &str, request_id: &str, head: bool) -> Response<Body> {
    let status = e.code.status();
    let mut builder = Response::builder().status(status);
    for (name, value) in &e.headers {
        builder = builder.header(*name, value.as_str());
    }
    let no_body = head || status == http::StatusCode::NOT_MODIFIED;
    let resp = if no_body {
        builder.body(Body::empty())
    } else {
        builder
            .header(header::CONTENT_TYPE, "application/xml")
            .body(Body::from(e.to_xml(resource, request_id)))
    };
    resp.unwrap_or_else(|_| Response::new(Body::empty()))
}

type Outcome = Result<(Response<Body>, &'static str), (S3Error, &'static str)>;

async fn dispatch(
    app: AppState,
    request_id: Arc<str>,
    parts: http::request::Parts,
    body: Body,
    principal: &mut Option<crate::iam::Principal>,
    audited: &mut Option<String>,
) -> Outcome {
    let header_bytes: usize = parts
        .headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    let max_header_bytes = app.settings.server.max_header_bytes;
    if header_bytes > max_header_bytes {
        return Err((
            S3Error::msg(
                Code::RequestHeaderSectionTooLarge,
                "Your request header section exceeds the maximum allowed size.",
            )
            .detail("MaxSizeAllowed", max_header_bytes.to_string()),
            "Unknown",
        ));
    }
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let query = Query::parse(&raw_query);
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()));
    let domain = Some(app.settings.s3.domain.as_str()).filter(|d| !d.is_empty());
    let is_form_post = parts.method == http::Method::POST
        && parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("multipart/form-data"));
    let route = endpoint::route(
        &parts.method,
        host,
        domain,
        parts.uri.path(),
        &query,
        parts.headers.contains_key(names::X_AMZ_COPY_SOURCE),
        is_form_post,
    )
    .map_err(|e| (e, "Unknown"))?;
    let op = route.endpoint.name();
    *audited = Some(match (&route.bucket, &route.key) {
        (Some(b), Some(k)) => format!("{b}/{k}"),
        (Some(b), None) => b.clone(),
        _ => String::new(),
    });

    // Authentication: every request is signed, except a browser form POST, whose
    // signature is inside the form and checked by its handler.
    let verified = if route.endpoint == Endpoint::PostObject {
        None
    } else {
        let secrets: &dyn SecretLookup = app.iam.as_ref();
        let v2_prefix = route
            .bucket
            .as_ref()
            .filter(|_| route.virtual_host)
            .map(|b| format!("/{b}"));
        let v = auth::verify_with(
            &parts.method,
            parts.uri.path(),
            &raw_query,
            &parts.headers,
            secrets,
            std::time::SystemTime::now(),
            &auth::VerifyOptions {
                v2_resource_prefix: v2_prefix.as_deref(),
                body_sha256: None,
            },
        )
        .map_err(|e| (body::auth_error(e), op))?;
        Some(v)
    };
    let who = match &verified {
        Some(v) => Some(
            app.iam
                .principal_for_key(&v.access_key_id)
                .ok_or_else(|| (S3Error::new(Code::InvalidAccessKeyId), op))?,
        ),
        None => None,
    };
    principal.clone_from(&who);

    let mut ctx = Ctx {
        app,
        request_id,
        route,
        query,
        parts,
        verified,
        principal: who,
    };
    match &ctx.principal {
        // A checkout manifest's credential: its own, narrower rules.
        Some(who) if who.manifest.is_some() => {
            let who = who.clone();
            crate::checkout::access::authorize_link(&mut ctx, &who)
                .await
                .map_err(|e| (e, op))?
        }
        Some(who) => access::authorize(&ctx, who).await.map_err(|e| (e, op))?,
        None => {}
    }
    let iam = (route_deletes_grants(&ctx.route.endpoint)).then(|| ctx.app.iam.clone());
    let resp = handlers::dispatch(ctx, body).await.map_err(|e| (e, op))?;
    if let Some(iam) = iam {
        // The bucket's grants went with it (FK cascade); drop them from the cache
        // before answering, so a bucket re-created under that name starts bare.
        if let Err(e) = iam.reload().await {
            tracing::warn!(error = %e, "reloading principals after DeleteBucket failed");
        }
    }
    Ok((resp, op))
}

/// Whether the operation deletes rows that grants reference.
fn route_deletes_grants(e: &Endpoint) -> bool {
    matches!(e, Endpoint::DeleteBucket)
}

#[cfg(test)]
mod tests {
    /// The hand-written hex is what the formatter would write.
    #[test]
    fn request_ids_are_the_prefix_and_counter_in_hex() {
        for (prefix, n) in [
            (0, 0),
            (0xDEAD_BEEF, 1),
            (7, 0xFFFF_FFFF),
            (u32::MAX, 0x1_0000_0000),
            (1, u64::MAX),
        ] {
            assert_eq!(
                &*super::request_id(prefix, n),
                format!("{prefix:08X}{n:08X}"),
                "{prefix} {n}"
            );
        }
    }
}
