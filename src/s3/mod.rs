//! The S3 protocol layer: authenticate, route, dispatch, and turn every error into the
//! S3 XML error document in one place ([`handle`]).

pub mod auth;
pub mod body;
pub mod checksum;
pub mod endpoint;
pub mod error;
pub mod form;
mod handlers;
pub mod range;
pub mod xml;
pub mod zones;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::extract::State;
use http::{HeaderValue, Request, Response, header};

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

    /// A request header as a string, if present and valid.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.parts.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A new request id: a per-process random prefix and a counter, as hex.
pub fn new_request_id() -> Arc<str> {
    static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(rand::random);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    Arc::from(format!("{prefix:08X}{n:08X}"))
}

/// The S3 entry point: every request that is not for the REST API or health lands here.
pub async fn handle(State(app): State<AppState>, req: Request<Body>) -> Response<Body> {
    let request_id = new_request_id();
    let (parts, body) = req.into_parts();
    let resource = parts.uri.path().to_string();
    let method = parts.method.clone();
    let result = dispatch(app, request_id.clone(), parts, body).await;
    let (mut resp, op) = match result {
        Ok(ok) => ok,
        Err((e, op)) => {
            let status = e.code.status();
            if status.is_server_error() {
                tracing::warn!(request_id = %request_id, op, code = e.code.as_str(), "request failed");
            } else {
                tracing::debug!(request_id = %request_id, op, code = e.code.as_str(), message = %e.message, "request refused");
            }
            (
                error_response(&e, &resource, &request_id, method == http::Method::HEAD),
                op,
            )
        }
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("x-amz-request-id", v.clone());
        h.insert("x-amz-id-2", v);
    }
    h.insert(header::SERVER, HeaderValue::from_static("Tarn"));
    tracing::debug!(request_id = %request_id, op, status = resp.status().as_u16(), "s3 request");
    resp
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

/// Largest header section accepted, as in S3 (8 KiB, user metadata included).
const MAX_HEADER_BYTES: usize = 8 * 1024;

type Outcome = Result<(Response<Body>, &'static str), (S3Error, &'static str)>;

async fn dispatch(
    app: AppState,
    request_id: Arc<str>,
    parts: http::request::Parts,
    body: Body,
) -> Outcome {
    let header_bytes: usize = parts
        .headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Err((
            S3Error::msg(
                Code::RequestHeaderSectionTooLarge,
                "Your request header section exceeds the maximum allowed size.",
            )
            .detail("MaxSizeAllowed", MAX_HEADER_BYTES.to_string()),
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
        parts.headers.contains_key("x-amz-copy-source"),
        is_form_post,
    )
    .map_err(|e| (e, "Unknown"))?;
    let op = route.endpoint.name();

    // Authentication: every request is signed, except a browser form POST, whose
    // signature is inside the form and checked by its handler.
    let verified = if route.endpoint == Endpoint::PostObject {
        None
    } else {
        let secrets: &dyn SecretLookup = app.credentials.as_ref();
        let v2_prefix = route
            .bucket
            .as_ref()
            .filter(|_| route.virtual_host)
            .map(|b| format!("/{b}"));
        let v = auth::verify_with_v2_prefix(
            &parts.method,
            parts.uri.path(),
            &raw_query,
            &parts.headers,
            secrets,
            std::time::SystemTime::now(),
            v2_prefix.as_deref(),
        )
        .map_err(|e| (body::auth_error(e), op))?;
        Some(v)
    };

    let ctx = Ctx {
        app,
        request_id,
        route,
        query,
        parts,
        verified,
    };
    handlers::dispatch(ctx, body)
        .await
        .map(|r| (r, op))
        .map_err(|e| (e, op))
}
