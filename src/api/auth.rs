//! Authentication of every REST request, and the middleware that renders errors.
//!
//! Until users and bearer tokens land, the REST API accepts exactly what the S3 API
//! accepts: SigV4 (or SigV2) signed with a known access key, e.g.
//! `curl --aws-sigv4 "aws:amz:us-east-1:s3" --user KEY:SECRET`. The body is buffered
//! (REST bodies are small) so that a signed payload hash can be checked before any
//! handler runs. Nothing under `/api/v1` is reachable without a valid signature.

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

/// Who is calling, as established by the signature.
#[derive(Debug, Clone)]
pub struct Principal {
    pub access_key_id: String,
    /// Admins manage zones and governance and may override zone rules.
    pub admin: bool,
}

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

async fn authenticate(app: &AppState, req: Request) -> Result<Request, Error> {
    let (mut parts, body) = req.into_parts();
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
    let secrets: &dyn SecretLookup = app.credentials.as_ref();
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
    let admin = app.credentials.is_admin(&verified.access_key_id);
    parts.extensions.insert(Principal {
        access_key_id: verified.access_key_id,
        admin,
    });
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// The middleware around every REST route: request id, authentication, and the
/// rendering of every error (handler errors, rejections, 404/405) as JSON.
pub async fn middleware(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let request_id = crate::s3::new_request_id();
    let method = req.method().clone();
    let mut resp = match authenticate(&app, req).await {
        Ok(mut req) => {
            req.extensions_mut().insert(RequestId(request_id.clone()));
            next.run(req).await
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
