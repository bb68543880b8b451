//! Request bodies: from the wire (raw, signed or aws-chunked) to payload bytes.

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};

use super::Ctx;
use super::auth::{AuthError, PayloadMode};
use super::error::{Code, S3Error};

/// Maps an authentication failure to its S3 error.
pub fn auth_error(e: AuthError) -> S3Error {
    match e {
        AuthError::MissingAuth => S3Error::new(Code::AccessDenied),
        AuthError::InvalidAccessKeyId => S3Error::new(Code::InvalidAccessKeyId),
        AuthError::SignatureDoesNotMatch => S3Error::new(Code::SignatureDoesNotMatch),
        AuthError::RequestTimeTooSkewed => S3Error::new(Code::RequestTimeTooSkewed),
        AuthError::Expired => S3Error::msg(Code::AccessDenied, "Request has expired"),
        AuthError::AuthorizationHeaderMalformed(m) => {
            S3Error::msg(Code::AuthorizationHeaderMalformed, m)
        }
        AuthError::AuthorizationQueryParametersError(m) => {
            S3Error::msg(Code::AuthorizationQueryParametersError, m)
        }
        AuthError::InvalidArgument(m) => S3Error::msg(Code::InvalidArgument, m),
        AuthError::ContentSha256Mismatch => S3Error::new(Code::XAmzContentSHA256Mismatch),
        AuthError::IncompleteBody => S3Error::new(Code::IncompleteBody),
        AuthError::MalformedChunk(m) => S3Error::msg(Code::InvalidRequest, m),
        AuthError::BadDigest(m) => S3Error::msg(Code::BadDigest, m),
        AuthError::HeadersNotSigned(name) => S3Error::msg(
            Code::AccessDenied,
            "There were headers present in the request which were not signed",
        )
        .detail("HeadersNotSigned", name),
        AuthError::Body(_) => S3Error::new(Code::IncompleteBody),
    }
}

/// What must still be checked once a streamed payload has been read.
pub struct PayloadCheck {
    /// The signed SHA-256 of the payload, to compare with what was hashed.
    pub sha256: Option<[u8; 32]>,
    /// Trailing headers of an aws-chunked body, available once the stream ended.
    pub trailers: Option<super::auth::Trailers>,
}

fn wire_stream(body: Body) -> impl Stream<Item = Result<Bytes, S3Error>> + Send {
    body.into_data_stream()
        .map(|r| r.map_err(|_| S3Error::new(Code::IncompleteBody)))
}

/// Ends a body stream with `RequestTimeout` when no bytes arrive for `idle`.
fn with_idle_timeout<S>(stream: S, idle: std::time::Duration) -> PayloadStream
where
    S: Stream<Item = Result<Bytes, S3Error>> + Send + 'static,
{
    Box::pin(futures_util::stream::unfold(
        (Box::pin(stream), false),
        move |(mut s, failed)| async move {
            if failed {
                return None;
            }
            match tokio::time::timeout(idle, s.next()).await {
                Ok(Some(item)) => Some((item, (s, false))),
                Ok(None) => None,
                Err(_) => Some((Err(S3Error::new(Code::RequestTimeout)), (s, true))),
            }
        },
    ))
}

/// A request payload as a stream of verified-so-far bytes.
pub type PayloadStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, S3Error>> + Send>>;

/// The payload of a request as a stream, plus what to verify after it ends.
pub fn payload(ctx: &Ctx, body: Body) -> (PayloadStream, PayloadCheck) {
    let idle = std::time::Duration::from_secs(ctx.app.settings.server.request_timeout_secs);
    let (stream, check) = payload_untimed(ctx, body);
    (with_idle_timeout(stream, idle), check)
}

fn payload_untimed(ctx: &Ctx, body: Body) -> (PayloadStream, PayloadCheck) {
    match ctx.verified.as_ref().map(|v| &v.payload) {
        Some(PayloadMode::Sha256(h)) => (
            Box::pin(wire_stream(body)),
            PayloadCheck {
                sha256: Some(*h),
                trailers: None,
            },
        ),
        Some(mode @ PayloadMode::Streaming(_)) => {
            let (stream, trailers) = super::auth::decode_body(body.into_data_stream(), mode);
            (
                Box::pin(stream.map(|r| r.map_err(auth_error))),
                PayloadCheck {
                    sha256: None,
                    trailers: Some(trailers),
                },
            )
        }
        Some(PayloadMode::Unsigned) | None => (
            Box::pin(wire_stream(body)),
            PayloadCheck {
                sha256: None,
                trailers: None,
            },
        ),
    }
}

/// Reads a small request body (an XML document) entirely, up to `limit` bytes,
/// verifying its signed hash.
pub async fn read_small(ctx: &Ctx, body: Body, limit: usize) -> Result<Bytes, S3Error> {
    let (mut stream, check) = payload(ctx, body);
    let mut buf = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if buf.len() + chunk.len() > limit {
            return Err(S3Error::new(Code::MaxMessageLengthExceeded));
        }
        buf.extend_from_slice(&chunk);
    }
    if let Some(expected) = check.sha256 {
        let got: [u8; 32] = Sha256::digest(&buf).into();
        if got != expected {
            return Err(S3Error::new(Code::XAmzContentSHA256Mismatch));
        }
    }
    Ok(buf.freeze())
}

/// Discards a body that the operation does not use (still bounded).
pub async fn drain(body: Body) {
    let _ = http_body_util::Limited::new(body, 1 << 20).collect().await;
}
