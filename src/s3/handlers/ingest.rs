//! Taking an object body in: stream to a blob while hashing, then check every digest
//! the client sent (Content-MD5, x-amz-checksum-*, trailer checksums, signed SHA-256).
//! Shared by PutObject, UploadPart and PostObject.

use axum::body::Body;
use bytes::Bytes;
use futures_util::Stream;

use super::super::Ctx;
use super::super::body::{self, PayloadCheck};
use super::super::checksum::{self, BodyDigests, BodyHashers};
use super::super::error::{Code, S3Error};
use crate::meta::{ChecksumAlgorithm, ObjectHeaders, Tags};
use crate::storage::{PublishedBlob, WriteError};

/// Most user metadata S3 accepts (names + values of `x-amz-meta-*`).
const MAX_USER_METADATA: usize = 2048;

/// The checksum a client asked for on an upload.
#[derive(Debug, Clone, Default)]
pub struct ChecksumRequest {
    pub algorithm: Option<ChecksumAlgorithm>,
    /// The value given in a header; `None` if it comes in a trailer or not at all.
    pub value: Option<String>,
}

/// A body written to a blob, with its digests verified.
pub struct Ingested {
    pub blob: PublishedBlob,
    pub size: u64,
    pub md5_hex: String,
    pub checksum: Option<(ChecksumAlgorithm, String)>,
}

/// Reads the checksum request from headers (`x-amz-checksum-*`, `x-amz-trailer`,
/// `x-amz-sdk-checksum-algorithm`).
pub fn checksum_request(ctx: &Ctx) -> Result<ChecksumRequest, S3Error> {
    checksum_request_from(|name| ctx.header(name))
}

/// [`checksum_request`] over any lookup of (lowercase) names: request headers or form fields.
pub fn checksum_request_from<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
) -> Result<ChecksumRequest, S3Error> {
    let mut found: Option<(ChecksumAlgorithm, String)> = None;
    for a in ChecksumAlgorithm::ALL {
        if let Some(v) = get(a.header()) {
            if found.is_some() {
                return Err(S3Error::msg(
                    Code::InvalidRequest,
                    "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
                ));
            }
            found = Some((a, v.trim().to_string()));
        }
    }
    if let Some((a, v)) = found {
        return Ok(ChecksumRequest {
            algorithm: Some(a),
            value: Some(v),
        });
    }
    if let Some(t) = get("x-amz-trailer") {
        let name = t.trim().to_ascii_lowercase();
        let algo = ChecksumAlgorithm::ALL
            .into_iter()
            .find(|a| a.header() == name)
            .ok_or_else(|| {
                S3Error::msg(Code::InvalidRequest, format!("unsupported trailer {name}"))
            })?;
        return Ok(ChecksumRequest {
            algorithm: Some(algo),
            value: None,
        });
    }
    let algo = get("x-amz-sdk-checksum-algorithm")
        .or_else(|| get("x-amz-checksum-algorithm"))
        .map(|a| {
            ChecksumAlgorithm::parse(a.trim()).ok_or_else(|| {
                S3Error::msg(
                    Code::InvalidRequest,
                    format!("unsupported checksum algorithm {a}"),
                )
            })
        })
        .transpose()?;
    Ok(ChecksumRequest {
        algorithm: algo,
        value: None,
    })
}

/// The stored headers of a new object, from the request (`x-amz-meta-*` limited to
/// 2 KiB as in S3).
pub fn object_headers(ctx: &Ctx) -> Result<ObjectHeaders, S3Error> {
    let mut user = Vec::new();
    for (name, value) in &ctx.parts.headers {
        if let Some(meta) = name.as_str().strip_prefix("x-amz-meta-") {
            let v = value.to_str().map_err(|_| {
                S3Error::msg(Code::InvalidArgument, "metadata values must be ASCII")
            })?;
            user.push((meta, v));
        }
    }
    object_headers_from(|name| ctx.header(name), user)
}

/// [`object_headers`] over any lookup of (lowercase) names, with the `x-amz-meta-*` entries
/// given as (name without the prefix, value).
pub fn object_headers_from<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
    user_meta: Vec<(&str, &str)>,
) -> Result<ObjectHeaders, S3Error> {
    let h = |name: &str| get(name).map(str::to_string);
    let size: usize = user_meta.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > MAX_USER_METADATA {
        return Err(S3Error::new(Code::MetadataTooLarge).detail("MaxSizeAllowed", "2048"));
    }
    let user = user_meta
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Ok(ObjectHeaders {
        content_type: h("content-type"),
        content_encoding: h("content-encoding")
            .map(|v| strip_aws_chunked(&v))
            .filter(|v| !v.is_empty()),
        content_disposition: h("content-disposition"),
        content_language: h("content-language"),
        cache_control: h("cache-control"),
        expires: h("expires"),
        user,
    })
}

/// `aws-chunked` in Content-Encoding describes the transfer, not the object.
fn strip_aws_chunked(v: &str) -> String {
    v.split(',')
        .map(str::trim)
        .filter(|p| !p.eq_ignore_ascii_case("aws-chunked") && !p.is_empty())
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses an `x-amz-tagging` header (URL query form) or a tag set, applying S3's limits.
pub fn parse_tagging_header(value: &str) -> Result<Tags, S3Error> {
    let q = super::super::endpoint::Query::parse(value);
    let tags: Tags = q.pairs().to_vec();
    validate_tags(&tags)?;
    Ok(tags)
}

/// S3's tag limits: at most 10, keys 1–128 chars, values up to 256, keys unique.
pub fn validate_tags(tags: &Tags) -> Result<(), S3Error> {
    if tags.len() > 10 {
        return Err(S3Error::msg(
            Code::InvalidTag,
            "Object tags cannot be greater than 10",
        ));
    }
    for (i, (k, v)) in tags.iter().enumerate() {
        if k.is_empty() || k.chars().count() > 128 {
            return Err(S3Error::msg(
                Code::InvalidTag,
                "The TagKey you have provided is invalid",
            ));
        }
        if v.chars().count() > 256 {
            return Err(S3Error::msg(
                Code::InvalidTag,
                "The TagValue you have provided is invalid",
            ));
        }
        if tags[..i].iter().any(|(k2, _)| k2 == k) {
            return Err(S3Error::msg(
                Code::InvalidTag,
                "Cannot provide multiple Tags with the same key",
            ));
        }
    }
    Ok(())
}

/// The Content-MD5 header, decoded; `InvalidDigest` if it is not 16 base64 bytes.
pub fn content_md5(ctx: &Ctx) -> Result<Option<[u8; 16]>, S3Error> {
    decode_content_md5(ctx.header("content-md5"))
}

/// Decodes a Content-MD5 value; `InvalidDigest` if it is not 16 base64 bytes.
pub fn decode_content_md5(value: Option<&str>) -> Result<Option<[u8; 16]>, S3Error> {
    match value {
        None => Ok(None),
        Some(v) => checksum::decode_b64(v)
            .and_then(|b| <[u8; 16]>::try_from(b.as_slice()).ok())
            .map(Some)
            .ok_or_else(|| S3Error::new(Code::InvalidDigest)),
    }
}

/// Refuses a write when the data directory's filesystem is nearly full, so that what is
/// stored stays intact and deletes can still commit.
pub fn ensure_space(ctx: &Ctx) -> Result<(), S3Error> {
    match crate::metrics::free_bytes(&ctx.app.settings.storage.data_dir) {
        Some(free) if free < ctx.app.settings.storage.min_free_bytes => {
            Err(S3Error::new(Code::InsufficientStorage))
        }
        _ => Ok(()),
    }
}

/// Objects up to this size are kept inline in the metadata database: their bytes commit
/// in the writer's group commit with their row, instead of costing a file fsync and a
/// directory fsync each (and a read is one database lookup, no file open). Bodies of this
/// size are buffered, so at most `max_concurrent_requests` times this is held at once.
pub const INLINE_MAX: u64 = 32 * 1024;

/// Bodies from this size on are hashed on two threads (see [`crate::storage::BlobStore::write`]).
pub const PARALLEL_HASH_MIN: u64 = 1 << 20;

/// A small body held in memory, with its digests verified.
pub struct InlineIngested {
    pub data: Bytes,
    pub md5_hex: String,
    pub checksum: Option<(ChecksumAlgorithm, String)>,
}

/// The payload length the request declares (decoded length for aws-chunked bodies).
fn declared_len(ctx: &Ctx) -> Option<u64> {
    ctx.header(crate::s3::names::X_AMZ_DECODED_CONTENT_LENGTH)
        .or_else(|| ctx.header(http::header::CONTENT_LENGTH))
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// Whether a PutObject body is small enough to keep inline (see [`INLINE_MAX`]).
pub fn fits_inline(ctx: &Ctx) -> bool {
    declared_len(ctx).is_some_and(|l| l <= INLINE_MAX)
}

/// The checks before any body byte is read: free space, Content-MD5, a length that S3
/// accepts. Returns the Content-MD5.
fn preflight(ctx: &Ctx) -> Result<Option<[u8; 16]>, S3Error> {
    ensure_space(ctx)?;
    let md5 = content_md5(ctx)?;
    match ctx.header(http::header::CONTENT_LENGTH) {
        Some(v) if v.trim().parse::<u64>().is_err() => {
            return Err(S3Error::msg(
                Code::InvalidArgument,
                "invalid Content-Length",
            ));
        }
        // S3 needs the length up front (aws-chunked bodies give the decoded length).
        None if ctx
            .header(crate::s3::names::X_AMZ_DECODED_CONTENT_LENGTH)
            .is_none() =>
        {
            return Err(S3Error::new(Code::MissingContentLength));
        }
        _ => {}
    }
    if let Some(len) = declared_len(ctx)
        && len > ctx.app.settings.s3.max_object_size
    {
        return Err(S3Error::new(Code::EntityTooLarge));
    }
    Ok(md5)
}

/// Streams the request payload into a new blob and verifies every digest.
pub async fn ingest(ctx: &Ctx, body: Body, want: &ChecksumRequest) -> Result<Ingested, S3Error> {
    let md5 = preflight(ctx)?;
    let (stream, check) = body::payload(ctx, body);
    ingest_stream(ctx, stream, check, md5, want).await
}

/// Reads a small payload (see [`fits_inline`]) into memory, hashing it on the way, and
/// verifies every digest. Nothing touches the disk until the metadata commit.
pub async fn ingest_inline(
    ctx: &Ctx,
    body: Body,
    want: &ChecksumRequest,
) -> Result<InlineIngested, S3Error> {
    use crate::storage::Observer;
    use futures_util::StreamExt;
    let md5 = preflight(ctx)?;
    let (stream, check) = body::payload(ctx, body);
    let mut hashers = BodyHashers::new(check.sha256.is_some(), want.algorithm);
    let mut stream = std::pin::pin!(stream);
    // One chunk is the common case: keep it without copying.
    let mut first: Option<Bytes> = None;
    let mut more = bytes::BytesMut::new();
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        total += chunk.len() as u64;
        if total > INLINE_MAX {
            return Err(S3Error::msg(
                Code::InvalidRequest,
                "the body is longer than its declared length",
            ));
        }
        hashers.observe(&chunk);
        match &first {
            None => first = Some(chunk),
            Some(f) => {
                if more.is_empty() {
                    more.extend_from_slice(f);
                }
                more.extend_from_slice(&chunk);
            }
        }
    }
    let data = if more.is_empty() {
        first.unwrap_or_default()
    } else {
        more.freeze()
    };
    let digests = hashers.finish();
    let checksum = verify_digests(&digests, &check, md5, want)?;
    Ok(InlineIngested {
        data,
        md5_hex: hex::encode(digests.md5),
        checksum,
    })
}

/// Like [`ingest`], for a payload already separated from its framing (form uploads).
pub async fn ingest_stream<S>(
    ctx: &Ctx,
    stream: S,
    check: PayloadCheck,
    md5: Option<[u8; 16]>,
    want: &ChecksumRequest,
) -> Result<Ingested, S3Error>
where
    S: Stream<Item = Result<Bytes, S3Error>>,
{
    let hashers = BodyHashers::new(check.sha256.is_some(), want.algorithm);
    // A thread of its own for MD5 pays off once hashing takes longer than the hand-off.
    let parallel = declared_len(ctx).is_none_or(|l| l >= PARALLEL_HASH_MIN);
    let (blob, hashers) = ctx
        .app
        .blobs
        .write(
            stream,
            ctx.app.settings.s3.max_object_size,
            hashers,
            parallel,
        )
        .await
        .map_err(|e| match e {
            WriteError::Body(e) => e,
            WriteError::Store(e) => S3Error::from(e),
        })?;
    let digests = hashers.finish();
    // On any mismatch `blob` is dropped here, which deletes it.
    let checksum = verify_digests(&digests, &check, md5, want)?;
    Ok(Ingested {
        size: blob.size,
        blob,
        md5_hex: hex::encode(digests.md5),
        checksum,
    })
}

/// Compares every expected digest with what was computed.
pub fn verify_digests(
    d: &BodyDigests,
    check: &PayloadCheck,
    md5: Option<[u8; 16]>,
    want: &ChecksumRequest,
) -> Result<Option<(ChecksumAlgorithm, String)>, S3Error> {
    if let (Some(expected), Some(got)) = (check.sha256, d.payload_sha256)
        && expected != got
    {
        return Err(S3Error::new(Code::XAmzContentSHA256Mismatch));
    }
    if let Some(m) = md5
        && m != d.md5
    {
        return Err(S3Error::new(Code::BadDigest));
    }
    let expected = match &want.value {
        Some(v) => Some(v.clone()),
        None => check.trailers.as_ref().and_then(|t| {
            let algo = want.algorithm?;
            t.value(algo.header()).map(|v| v.trim().to_string())
        }),
    };
    match (&d.checksum, expected) {
        (Some((algo, got)), Some(exp)) => {
            if *got != exp {
                return Err(S3Error::msg(
                    Code::BadDigest,
                    format!(
                        "The {} you specified did not match the calculated checksum.",
                        algo.name()
                    ),
                ));
            }
            Ok(Some((*algo, got.clone())))
        }
        (Some((algo, got)), None) => Ok(Some((*algo, got.clone()))),
        (None, _) => Ok(None),
    }
}
