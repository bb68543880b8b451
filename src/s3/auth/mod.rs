//! Request authentication for the S3 API.
//!
//! [`verify`] checks AWS Signature Version 4 (header and presigned query) and the legacy
//! Signature Version 2 (header and presigned query) and reports who signed the request and how
//! its body has to be decoded or verified ([`PayloadMode`]). The body itself is handled by the
//! adaptors in [`chunked`]: [`chunked::decode_body`] turns the raw request body into payload bytes
//! according to the [`PayloadMode`], checking chunk signatures, the declared SHA-256 and decoded
//! length along the way. Browser form uploads (PostObject) carry their signature in the form
//! instead; [`post_policy`] verifies it and the POST policy it signs.
//!
//! Everything in here treats the request as hostile: no input can make it panic.

pub mod chunked;
pub mod post_policy;
mod sigv2;
mod sigv4;
mod util;

#[cfg(test)]
mod tests;

use std::time::SystemTime;

pub use chunked::{ChunkedDecoder, Trailers, decode_body, decode_stream, verify_sha256_stream};

/// Looks up the secret for an access key id (the server implements this over its key table).
pub trait SecretLookup {
    /// The secret access key for `access_key_id`, or `None` if the key is unknown or disabled.
    fn secret_for(&self, access_key_id: &str) -> Option<std::sync::Arc<str>>;
}

/// Boxed error of the underlying body stream.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request failed authentication or its body failed verification.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header and no presigned query (S3 `AccessDenied`).
    #[error("request carries no authentication")]
    MissingAuth,
    /// The access key id is unknown (S3 `InvalidAccessKeyId`).
    #[error("the access key id does not exist")]
    InvalidAccessKeyId,
    /// The signature is wrong (S3 `SignatureDoesNotMatch`).
    #[error("the request signature does not match")]
    SignatureDoesNotMatch,
    /// Request time is more than 15 minutes away from the server time (S3 `RequestTimeTooSkewed`).
    #[error("the difference between the request time and the server time is too large")]
    RequestTimeTooSkewed,
    /// Presigned request past its expiry (S3 `AccessDenied`, "Request has expired").
    #[error("request has expired")]
    Expired,
    /// Malformed `Authorization` header or credential scope (S3 `AuthorizationHeaderMalformed`).
    #[error("authorization header is malformed: {0}")]
    AuthorizationHeaderMalformed(String),
    /// Malformed presigned query (S3 `AuthorizationQueryParametersError`).
    #[error("authorization query parameters error: {0}")]
    AuthorizationQueryParametersError(String),
    /// Otherwise invalid request (S3 `InvalidArgument`, or `InvalidRequest` where noted).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// `x-amz-*` headers present but not signed (S3 `AccessDenied`, "There were headers present
    /// in the request which were not signed").
    #[error("headers present in the request were not signed: {0}")]
    HeadersNotSigned(String),
    /// `x-amz-content-sha256` is malformed or does not match the body (S3
    /// `XAmzContentSHA256Mismatch`).
    #[error("x-amz-content-sha256 does not match the payload")]
    ContentSha256Mismatch,
    /// The body ended early (S3 `IncompleteBody`).
    #[error("the request body ended before it was complete")]
    IncompleteBody,
    /// aws-chunked framing error (S3 `InvalidRequest`/`IncompleteBody`).
    #[error("malformed aws-chunked body: {0}")]
    MalformedChunk(String),
    /// Trailer checksum mismatch (S3 `BadDigest`); raised by the object-write code.
    #[error("bad digest: {0}")]
    BadDigest(String),
    /// Reading the underlying body failed (client went away, etc.).
    #[error("error reading the request body: {0}")]
    Body(#[source] BoxError),
}

/// How the request was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    /// SigV4 `Authorization` header.
    V4Header,
    /// SigV4 presigned query.
    V4Presigned,
    /// SigV2 `Authorization` header.
    V2Header,
    /// SigV2 presigned query.
    V2Presigned,
}

/// What the caller proved, and how the body must be decoded/verified.
#[derive(Debug)]
pub struct Verified {
    /// The access key id whose secret produced the signature.
    pub access_key_id: String,
    /// How the request body has to be handled.
    pub payload: PayloadMode,
    /// Which signing scheme was used.
    pub kind: AuthKind,
    /// Region from the SigV4 credential scope (`None` for SigV2).
    pub region: Option<String>,
}

/// How the request body must be decoded and verified.
#[derive(Debug)]
pub enum PayloadMode {
    /// Body is taken as is (UNSIGNED-PAYLOAD, presigned, SigV2, or no body).
    Unsigned,
    /// Body must hash to this SHA-256 (see [`chunked::verify_sha256_stream`]).
    Sha256([u8; 32]),
    /// Body is `aws-chunked` encoded (see [`chunked::decode_stream`]).
    Streaming(StreamingParams),
}

/// Everything needed to decode and verify an `aws-chunked` body.
#[derive(Clone)]
pub struct StreamingParams {
    /// Chunk signatures are present and verified (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD*`).
    pub signed: bool,
    /// Trailing headers follow the final chunk (`*-TRAILER`).
    pub trailer: bool,
    /// Value of `x-amz-decoded-content-length`, if sent.
    pub decoded_content_length: Option<u64>,
    /// Lowercased header names announced in `x-amz-trailer`.
    pub declared_trailers: Vec<String>,
    pub(crate) seed_signature: [u8; 32],
    pub(crate) signing_key: [u8; 32],
    pub(crate) scope: String,
    pub(crate) amz_date: String,
}

impl std::fmt::Debug for StreamingParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingParams")
            .field("signed", &self.signed)
            .field("trailer", &self.trailer)
            .field("decoded_content_length", &self.decoded_content_length)
            .field("declared_trailers", &self.declared_trailers)
            .field("scope", &self.scope)
            .field("amz_date", &self.amz_date)
            .finish_non_exhaustive()
    }
}

/// Verify a request signed with SigV4 or SigV2 (path-style SigV2 resource).
///
/// `path` is the raw (still percent-encoded, as received) URI path, `query` the raw query string
/// (without `?`), `headers` as received (for HTTP/2 the caller must add `host` from the
/// `:authority`). Any non-empty region in a SigV4 scope is accepted; the service must be `s3`.
pub fn verify(
    method: &http::Method,
    path: &str,
    query: &str,
    headers: &http::HeaderMap,
    secrets: &dyn SecretLookup,
    now: SystemTime,
) -> Result<Verified, AuthError> {
    verify_with(
        method,
        path,
        query,
        headers,
        secrets,
        now,
        &VerifyOptions::default(),
    )
}

/// What the caller knows beyond the request head.
#[derive(Debug, Default, Clone, Copy)]
pub struct VerifyOptions<'a> {
    /// SigV2 signs `/bucket/key`; for virtual-hosted requests (`bucket.host/key`) pass
    /// `Some("/bucket")` so the resource becomes `/bucket` + `path`. Ignored for SigV4.
    pub v2_resource_prefix: Option<&'a str>,
    /// Hex SHA-256 of the body, when the caller already holds the whole body (the REST
    /// API). Generic SigV4 signers sign it without sending `x-amz-content-sha256`.
    pub body_sha256: Option<&'a str>,
}

/// Like [`verify`], with [`VerifyOptions`].
pub fn verify_with(
    method: &http::Method,
    path: &str,
    query: &str,
    headers: &http::HeaderMap,
    secrets: &dyn SecretLookup,
    now: SystemTime,
    opts: &VerifyOptions<'_>,
) -> Result<Verified, AuthError> {
    let v2_resource_prefix = opts.v2_resource_prefix;
    let params = util::parse_query(query);
    let has = |name: &str| params.iter().any(|p| p.name == name.as_bytes());
    let v4_query = has("X-Amz-Algorithm") || has("X-Amz-Signature") || has("X-Amz-Credential");
    let v2_query = has("AWSAccessKeyId") || (has("Signature") && has("Expires"));

    let mut auth_values = headers.get_all(http::header::AUTHORIZATION).iter();
    let auth = auth_values.next();
    if auth_values.next().is_some() {
        return Err(AuthError::InvalidArgument(
            "multiple Authorization headers".into(),
        ));
    }
    let now = util::unix_seconds(now);

    let req = util::Request {
        method,
        path,
        headers,
        params: &params,
        raw_query: query,
        now,
        body_sha256: opts.body_sha256,
    };

    match auth {
        Some(value) => {
            if v4_query || v2_query {
                return Err(AuthError::InvalidArgument(
                    "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, \
                     Signature query string parameter or the Authorization header should be \
                     specified"
                        .into(),
                ));
            }
            let value = value.as_bytes();
            if let Some(rest) = value.strip_prefix(b"AWS4-HMAC-SHA256 ") {
                sigv4::verify_header(&req, rest, secrets)
            } else if let Some(rest) = value.strip_prefix(b"AWS ") {
                sigv2::verify_header(&req, rest, secrets, v2_resource_prefix)
            } else {
                Err(AuthError::InvalidArgument(
                    "Unsupported Authorization Type".into(),
                ))
            }
        }
        None if v4_query && v2_query => Err(AuthError::InvalidArgument(
            "Only one auth mechanism allowed".into(),
        )),
        None if v4_query => sigv4::verify_presigned(&req, secrets),
        None if v2_query => sigv2::verify_presigned(&req, secrets, v2_resource_prefix),
        None => Err(AuthError::MissingAuth),
    }
}
