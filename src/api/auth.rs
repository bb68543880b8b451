//! Authentication of every REST request, and the middleware that renders errors.
//!
//! The REST API accepts what the S3 API accepts, SigV4 (or SigV2) signed with an
//! enabled access key, e.g. `curl --aws-sigv4 "aws:amz:us-east-1:s3" --user KEY:SECRET`,
//! and bearer tokens (`Authorization: Bearer tarn_...`, from `POST /api/v1/tokens`).
//! The body is buffered (REST bodies are small) so that a signed payload hash can be
//! checked before any handler runs. Nothing under `/api/v1` is reachable without
//! authentication. The principal rides on the request (for handlers) and on the
//! response (for the audit record and the log line).

use axum::body::Body;
use axum::extract::{OriginalUri, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::HeaderValue;
use sha2::Digest;

use super::Error;
use crate::app::AppState;
use crate::s3::auth::{self, AuthError, PayloadMode, SecretLookup};

/// Largest REST request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

pub use crate::iam::Principal;

/// The id of the request, for logs and error bodies.
#[derive(Debug, Clone)]
pub struct RequestId(pub std::sync::Arc<str>);

fn auth_error(e: AuthError) -> Error {
    match e {
        AuthError::MissingAuth => Error::Unauthenticated(
            "authentication required: sign the request with SigV4 \
             (curl --aws-sigv4 \"aws:amz:us-east-1:s3\" --user KEY:SECRET)"
                .into(),
        ),
        AuthError::InvalidAccessKeyId => {
            Error::AccessDenied("the access key id does not exist".into())
        }
        AuthError::SignatureDoesNotMatch => {
            Error::AccessDenied("the request signature does not match".into())
        }
        AuthError::RequestTimeTooSkewed => Error::AccessDenied(
            "the difference between the request time and the server time is too large".into(),
        ),
        AuthError::Expired => Error::AccessDenied("request has expired".into()),
        e @ (AuthError::AuthorizationHeaderMalformed(_)
        | AuthError::AuthorizationQueryParametersError(_)
        | AuthError::InvalidArgument(_)
        | AuthError::HeadersNotSigned(_)) => Error::AccessDenied(e.to_string()),
        AuthError::ContentSha256Mismatch => {
            Error::AccessDenied("x-amz-content-sha256 does not match the payload".into())
        }
        e @ (AuthError::IncompleteBody
        | AuthError::MalformedChunk(_)
        | AuthError::BadDigest(_)
        | AuthError::Body(_)) => Error::field("body", e.to_string()),
    }
}

async fn authenticate(app: &AppState, req: Request) -> Result<(Request, Principal), Error> {
    let (mut parts, body) = req.into_parts();
    if let Some(token) = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        let who = app.iam.principal_for_token(token.trim()).ok_or_else(|| {
            Error::Unauthenticated("the bearer token is unknown or has expired".into())
        })?;
        parts.extensions.insert(who.clone());
        return Ok((Request::from_parts(parts, body), who));
    }
    // Inside `nest`, the URI is stripped of `/api/v1`; the signature covers the full path.
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map(|o| o.0.clone())
        .unwrap_or_else(|| parts.uri.clone());
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| Error::PayloadTooLarge)?;
    // SigV4 always signs the payload hash; S3 clients also send it as
    // x-amz-content-sha256, but generic signers (curl --aws-sigv4 for a non-S3 API)
    // may not. The hash of the body we hold is then what they signed.
    let body_sha256 = hex::encode(sha2::Sha256::digest(&bytes));
    let secrets: &dyn SecretLookup = app.iam.as_ref();
    let verified = auth::verify_with(
        &parts.method,
        uri.path(),
        uri.query().unwrap_or(""),
        &parts.headers,
        secrets,
        std::time::SystemTime::now(),
        &auth::VerifyOptions {
            v2_resource_prefix: None,
            body_sha256: Some(&body_sha256),
        },
    )
    .map_err(auth_error)?;
    match verified.payload {
        PayloadMode::Unsigned => {}
        PayloadMode::Sha256(want) => {
            let got: [u8; 32] = sha2::Sha256::digest(&bytes).into();
            if got != want {
                return Err(auth_error(AuthError::ContentSha256Mismatch));
            }
        }
        PayloadMode::Streaming(_) => {
            return Err(Error::field(
                "x-amz-content-sha256",
                "aws-chunked bodies are not accepted by the REST API",
            ));
        }
    }
    let who = app
        .iam
        .principal_for_key(&verified.access_key_id)
        .ok_or_else(|| auth_error(AuthError::InvalidAccessKeyId))?;
    if who.manifest.is_some() {
        // Least privilege: a manifest's credential only downloads its objects (S3).
        return Err(Error::AccessDenied(
            "a manifest's credential may only download the objects the manifest lists".into(),
        ));
    }
    parts.extensions.insert(who.clone());
    Ok((Request::from_parts(parts, Body::from(bytes)), who))
}

/// The middleware around every REST route: request id, authentication, and the
/// rendering of every error (handler errors, rejections, 404/405) as JSON.
pub async fn middleware(State(app): State<AppState>, req: Request, next: Next) -> Response {
    // One id per request: the one the outermost middleware assigned.
    let request_id = req
        .extensions()
        .get::<crate::app::RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_else(crate::s3::new_request_id);
    let method = req.method().clone();
    let mut resp = match authenticate(&app, req).await {
        Ok((mut req, who)) => {
            req.extensions_mut().insert(RequestId(request_id.clone()));
            let mut resp = next.run(req).await;
            resp.extensions_mut().insert(who);
            resp
        }
        Err(e) => e.into_response(),
    };
    let err = resp.extensions_mut().remove::<Error>().or_else(|| {
        (resp.status() == http::StatusCode::METHOD_NOT_ALLOWED).then_some(Error::MethodNotAllowed)
    });
    if let Some(e) = err {
        resp = super::error::render(&e, &request_id);
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    tracing::debug!(request_id = %request_id, %method, status = resp.status().as_u16(), "api request");
    resp
}
