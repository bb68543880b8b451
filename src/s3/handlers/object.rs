//! Object operations: Put, Get/Head, Copy, Delete and tagging.

use std::sync::Arc;

use axum::body::Body;
use http::{HeaderValue, Response, StatusCode, header};
use percent_encoding::percent_decode_str;

use super::super::Ctx;
use super::super::checksum::BodyHashers;
use super::super::endpoint::Query;
use super::super::error::{Code, S3Error};
use super::super::range;
use super::super::xml::{self, CopyObjectResult, Tag, TagSet, Tagging};
use super::ingest;
use super::{
    MAX_XML_BODY, empty, http_date, iso8601, parse_http_date, uncancellable, xml_response,
};
use crate::meta::{
    Checksum, ChecksumType, ObjectHeaders, ObjectMeta, ObjectRead, Segment, WriteCondition,
    now_millis,
};
use crate::storage::{PublishedBlob, Source, WriteError};

/// The write precondition from `If-None-Match: *` / `If-Match`.
pub fn write_condition(ctx: &Ctx) -> Result<WriteCondition, S3Error> {
    match (
        ctx.header(header::IF_NONE_MATCH),
        ctx.header(header::IF_MATCH),
    ) {
        (Some(_), Some(_)) => Err(S3Error::msg(
            Code::NotImplemented,
            "If-Match and If-None-Match together are not supported",
        )),
        (Some(v), None) if v.trim() == "*" => Ok(WriteCondition::IfNoneMatchStar),
        (Some(_), None) => Err(S3Error::msg(
            Code::NotImplemented,
            "If-None-Match on writes accepts only *",
        )),
        (None, Some(v)) => Ok(WriteCondition::IfMatch(
            v.trim().trim_matches('"').to_string(),
        )),
        (None, None) => Ok(WriteCondition::None),
    }
}

/// Makes an object row from an ingested single-part body.
pub(super) fn new_object(
    key: String,
    blob_id: Option<String>,
    size: u64,
    etag: String,
    headers: ObjectHeaders,
    checksum: Option<(crate::meta::ChecksumAlgorithm, String)>,
    tags: Option<crate::meta::Tags>,
) -> ObjectMeta {
    ObjectMeta {
        key,
        size,
        etag,
        last_modified: now_millis(),
        segments: blob_id
            .map(|blob| vec![Segment { blob, size }])
            .unwrap_or_default(),
        inline: false,
        parts_count: None,
        headers,
        checksum: checksum.map(|(algorithm, value)| Checksum {
            algorithm,
            value,
            kind: ChecksumType::FullObject,
        }),
        tags,
    }
}

/// Commits an object row for a published blob (or with the bytes of a small object kept
/// inline), then lets go of what it replaced.
pub async fn commit_object(
    ctx: &Ctx,
    bucket: &str,
    obj: ObjectMeta,
    blob: Option<PublishedBlob>,
    cond: WriteCondition,
) -> Result<(), S3Error> {
    commit(ctx, bucket, obj, blob, None, cond).await
}

async fn commit(
    ctx: &Ctx,
    bucket: &str,
    mut obj: ObjectMeta,
    blob: Option<PublishedBlob>,
    inline: Option<bytes::Bytes>,
    cond: WriteCondition,
) -> Result<(), S3Error> {
    let app = ctx.app.clone();
    let bucket = bucket.to_string();
    let rules = super::super::zones::zone_rules(ctx)?;
    obj.inline = inline.is_some();
    uncancellable(async move {
        let new_blobs: Vec<String> = obj.segments.iter().map(|s| s.blob.clone()).collect();
        let old = app.db.put_object(bucket, obj, inline, cond, rules).await?;
        if let Some(b) = blob {
            b.keep();
        }
        let stale: Vec<String> = old.into_iter().filter(|b| !new_blobs.contains(b)).collect();
        app.blobs.delete_later(stale);
        Ok(())
    })
    .await
}

/// Adds the `x-amz-checksum-*` and `x-amz-checksum-type` headers of an object, if it has one.
pub(super) fn checksum_headers(
    builder: http::response::Builder,
    c: Option<&Checksum>,
) -> http::response::Builder {
    match c {
        Some(c) => builder
            .header(c.algorithm.header(), c.value.as_str())
            .header("x-amz-checksum-type", c.kind.name()),
        None => builder,
    }
}

/// PutObject.
pub async fn put_object(ctx: Ctx, body: Body) -> Result<Response<Body>, S3Error> {
    let bucket = ctx.bucket()?.to_string();
    let key = ctx.key()?.to_string();
    let headers = ingest::object_headers(&ctx)?;
    let tags = ctx
        .header("x-amz-tagging")
        .map(ingest::parse_tagging_header)
        .transpose()?;
    let cond = write_condition(&ctx)?;
    let want = ingest::checksum_request(&ctx)?;
    // A large body is refused before it is read if the bucket is not there. A small
    // one is read first: the commit finds a missing bucket just the same, and every
    // small PUT is spared a database round trip (a missing bucket still comes before
    // the body's own errors, as in S3).
    let small = ingest::fits_inline(&ctx);
    if !small {
        ctx.app.db.bucket(bucket.clone()).await?;
    }
    let (blob, inline, size, etag, checksum) = if small {
        let got = match ingest::ingest_inline(&ctx, body, &want).await {
            Ok(got) => got,
            Err(e) => {
                ctx.app.db.bucket(bucket.clone()).await?;
                return Err(e);
            }
        };
        let size = got.data.len() as u64;
        let data = (size > 0).then_some(got.data);
        (None, data, size, got.md5_hex, got.checksum)
    } else {
        let got = ingest::ingest(&ctx, body, &want).await?;
        let blob = (got.size > 0).then_some(got.blob);
        (blob, None, got.size, got.md5_hex, got.checksum)
    };
    let blob_id = blob.as_ref().map(|b| b.id().to_string());
    let obj = new_object(key, blob_id, size, etag.clone(), headers, checksum, tags);
    let checksum = obj.checksum.clone();
    commit(&ctx, &bucket, obj, blob, inline, cond).await?;
    let b = Response::builder()
        .status(StatusCode::OK)
        .header(header::ETAG, format!("\"{etag}\""));
    checksum_headers(b, checksum.as_ref())
        .body(Body::empty())
        .map_err(S3Error::internal)
}

/// Evaluates GET/HEAD preconditions in RFC 7232 order, as S3 does.
fn check_read_preconditions(ctx: &Ctx, obj: &ObjectMeta) -> Result<(), S3Error> {
    let etag_matches = |v: &str| {
        v.split(',')
            .map(|e| e.trim().trim_start_matches("W/").trim_matches('"'))
            .any(|e| e == "*" || e == obj.etag)
    };
    let modified_secs = obj.last_modified.div_euclid(1000);
    let not_modified = || {
        let mut e = S3Error::new(Code::NotModified);
        e.headers.push(("etag", obj.quoted_etag()));
        e.headers
            .push(("last-modified", http_date(obj.last_modified)));
        e
    };
    let if_match = ctx.header(header::IF_MATCH);
    if let Some(v) = if_match {
        if !etag_matches(v) {
            return Err(S3Error::new(Code::PreconditionFailed).detail("Condition", "If-Match"));
        }
    } else if let Some(t) = ctx
        .header(header::IF_UNMODIFIED_SINCE)
        .and_then(parse_http_date)
        && modified_secs > t
    {
        return Err(
            S3Error::new(Code::PreconditionFailed).detail("Condition", "If-Unmodified-Since")
        );
    }
    if let Some(v) = ctx.header(header::IF_NONE_MATCH) {
        if etag_matches(v) {
            return Err(not_modified());
        }
    } else if let Some(t) = ctx
        .header(header::IF_MODIFIED_SINCE)
        .and_then(parse_http_date)
        && modified_secs <= t
    {
        return Err(not_modified());
    }
    Ok(())
}

/// Opens an object's blobs, re-reading the metadata once if the object was replaced
/// between the read and the open.
pub(super) async fn open_object(
    ctx: &Ctx,
    bucket: &str,
    key: &str,
) -> Result<(Arc<ObjectRead>, Source), S3Error> {
    let mut attempt = 0;
    loop {
        let read = ctx.app.db.object_read(bucket, key).await?;
        if let Some(data) = &read.data {
            let data = data.clone();
            return Ok((read, Source::Inline(data)));
        }
        let obj = &read.meta;
        if obj.segments.is_empty() {
            return Ok((read, Source::Blobs(Vec::new())));
        }
        let ids = obj.segments.iter().map(|s| s.blob.clone()).collect();
        match ctx.app.blobs.open_blobs(ids).await {
            Ok(files) => {
                let sized = files
                    .into_iter()
                    .zip(obj.segments.iter().map(|s| s.size))
                    .collect();
                return Ok((read, Source::Blobs(sized)));
            }
            Err(crate::storage::Error::MissingBlob(_)) if attempt == 0 => attempt += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

const X_AMZ_TAGGING_COUNT: header::HeaderName =
    header::HeaderName::from_static("x-amz-tagging-count");
const X_AMZ_MP_PARTS_COUNT: header::HeaderName =
    header::HeaderName::from_static("x-amz-mp-parts-count");
const X_AMZ_CHECKSUM_TYPE: header::HeaderName =
    header::HeaderName::from_static("x-amz-checksum-type");

/// Sets header `name` to `value`, or leaves it out if `value` is not a valid header
/// value (stored metadata came through validated headers, so it always is).
fn put_header<V>(h: &mut http::HeaderMap, name: header::HeaderName, value: V)
where
    HeaderValue: TryFrom<V>,
{
    if let Ok(v) = HeaderValue::try_from(value) {
        h.insert(name, v);
    }
}

/// GetObject and HeadObject.
pub async fn get_object(ctx: Ctx, head: bool) -> Result<Response<Body>, S3Error> {
    let (bucket, key) = (ctx.bucket()?, ctx.key()?);
    let (read, source) = if head {
        // The shared read (and cache) of GET: a HEAD usually comes before a GET. On a
        // miss it reads the bytes of an inline object too (32 KiB at most), which the
        // GET that follows is then served from.
        let read = ctx.app.db.object_read(bucket, key).await?;
        (read, Source::Blobs(Vec::new()))
    } else {
        open_object(&ctx, bucket, key).await?
    };
    let obj = &read.meta;
    check_read_preconditions(&ctx, obj)?;

    // What to send: a part, a range, or everything.
    let part_number = ctx
        .query
        .get("partNumber")
        .map(|p| {
            p.parse::<u32>()
                .ok()
                .filter(|n| (1..=10000).contains(n))
                .ok_or_else(|| {
                    S3Error::msg(
                        Code::InvalidArgument,
                        "Part number must be an integer between 1 and 10000, inclusive",
                    )
                })
        })
        .transpose()?;
    let range_header = ctx.header(header::RANGE).and_then(range::parse);
    let (start, len, partial) = match (part_number, range_header) {
        (Some(_), Some(_)) => {
            return Err(S3Error::msg(
                Code::InvalidRequest,
                "Cannot specify both Range header and partNumber query parameter",
            ));
        }
        (Some(n), None) => {
            let count = obj.parts_count.unwrap_or(1);
            if n > count {
                return Err(S3Error::new(Code::InvalidPartNumber)
                    .header("content-range", format!("bytes */{}", obj.size)));
            }
            if obj.parts_count.is_none() {
                (0, obj.size, obj.size > 0)
            } else {
                let idx = (n - 1) as usize;
                let start: u64 = obj.segments.iter().take(idx).map(|s| s.size).sum();
                let len = obj.segments.get(idx).map(|s| s.size).unwrap_or(0);
                (start, len, true)
            }
        }
        (None, Some(spec)) => match range::resolve(spec, obj.size) {
            Some((s, l)) => (s, l, true),
            None => {
                return Err(S3Error::new(Code::InvalidRange)
                    .detail(
                        "RangeRequested",
                        ctx.header(header::RANGE).unwrap_or_default(),
                    )
                    .detail("ActualObjectSize", obj.size.to_string())
                    .header("content-range", format!("bytes */{}", obj.size)));
            }
        },
        (None, None) => (0, obj.size, false),
    };

    let body = match source {
        _ if head || len == 0 => Body::empty(),
        // A small object: one buffer, sent with the headers.
        Source::Inline(data) => Body::from(Source::Inline(data).slice(start, len)),
        source => Body::from_stream(source.stream(start, len)),
    };
    // Straight into the header map: the hot path of small GETs (a builder moves its
    // parts at every header and copies every value).
    let mut resp = Response::new(body);
    if partial {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    let h = resp.headers_mut();
    // Room for what is set below and by the layers above, without regrowing.
    h.reserve(16);
    put_header(h, header::ETAG, obj.quoted_etag());
    put_header(h, header::LAST_MODIFIED, http_date(obj.last_modified));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if partial {
        let end = if len == 0 { start } else { start + len - 1 };
        put_header(
            h,
            header::CONTENT_RANGE,
            format!("bytes {start}-{end}/{}", obj.size),
        );
    }
    let hdr = &obj.headers;
    // `response-*` query parameters override what was stored.
    fn over<'a>(q: &'a Query, stored: &'a Option<String>, name: &str) -> Option<&'a str> {
        q.get(name).or(stored.as_deref())
    }
    let pick = |stored, name| over(&ctx.query, stored, name);
    match pick(&hdr.content_type, "response-content-type") {
        Some(ct) => put_header(h, header::CONTENT_TYPE, ct),
        None => {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("binary/octet-stream"),
            );
        }
    }
    let stored = [
        (
            header::CONTENT_ENCODING,
            &hdr.content_encoding,
            "response-content-encoding",
        ),
        (
            header::CONTENT_DISPOSITION,
            &hdr.content_disposition,
            "response-content-disposition",
        ),
        (
            header::CONTENT_LANGUAGE,
            &hdr.content_language,
            "response-content-language",
        ),
        (
            header::CACHE_CONTROL,
            &hdr.cache_control,
            "response-cache-control",
        ),
        (header::EXPIRES, &hdr.expires, "response-expires"),
    ];
    for (name, value, query_override) in stored {
        if let Some(v) = pick(value, query_override) {
            put_header(h, name, v);
        }
    }
    for (name, value) in &hdr.user {
        if let Ok(name) = header::HeaderName::try_from(format!("x-amz-meta-{name}")) {
            put_header(h, name, value.as_str());
        }
    }
    if let Some(tags) = &obj.tags
        && !tags.is_empty()
    {
        h.insert(X_AMZ_TAGGING_COUNT, HeaderValue::from(tags.len()));
    }
    if let Some(n) = obj.parts_count
        && (part_number.is_some() || head)
    {
        h.insert(X_AMZ_MP_PARTS_COUNT, HeaderValue::from(n));
    }
    let checksum_mode = ctx
        .header(crate::s3::names::X_AMZ_CHECKSUM_MODE)
        .is_some_and(|m| m.eq_ignore_ascii_case("ENABLED"));
    if checksum_mode
        && !(partial && part_number.is_none())
        && let Some(c) = &obj.checksum
    {
        put_header(
            h,
            header::HeaderName::from_static(c.algorithm.header()),
            c.value.as_str(),
        );
        h.insert(X_AMZ_CHECKSUM_TYPE, HeaderValue::from_static(c.kind.name()));
    }
    Ok(resp)
}

/// DeleteObject: 204 whether or not the key existed.
pub async fn delete_object(ctx: Ctx) -> Result<Response<Body>, S3Error> {
    let bucket = ctx.bucket()?.to_string();
    let key = ctx.key()?.to_string();
    let rules = super::super::zones::zone_rules(&ctx)?;
    let outcomes = ctx.app.db.delete_objects(bucket, vec![key], rules).await?;
    for o in outcomes {
        if let Some(m) = o.denied {
            return Err(S3Error::msg(Code::AccessDenied, m));
        }
        ctx.app.blobs.delete_later(o.blobs);
    }
    empty(StatusCode::NO_CONTENT)
}

/// Parses `x-amz-copy-source` into (bucket, key).
pub fn copy_source(ctx: &Ctx) -> Result<(String, String), S3Error> {
    let raw = ctx
        .header(crate::s3::names::X_AMZ_COPY_SOURCE)
        .ok_or_else(|| S3Error::msg(Code::InvalidArgument, "missing x-amz-copy-source"))?;
    let (path, query) = raw.split_once('?').unwrap_or((raw, ""));
    if query.starts_with("versionId=") && !query.ends_with("=null") {
        return Err(S3Error::msg(
            Code::NotImplemented,
            "versioning is not enabled",
        ));
    }
    let decoded = percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| S3Error::msg(Code::InvalidArgument, "Invalid copy source encoding"))?;
    let trimmed = decoded.strip_prefix('/').unwrap_or(&decoded);
    match trimmed.split_once('/') {
        Some((b, k)) if !b.is_empty() && !k.is_empty() => {
            if !super::super::endpoint::valid_bucket_name(b) {
                return Err(S3Error::new(Code::InvalidBucketName).detail("BucketName", b));
            }
            Ok((b.to_string(), k.to_string()))
        }
        _ => Err(S3Error::msg(
            Code::InvalidArgument,
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
        )),
    }
}

/// Evaluates `x-amz-copy-source-if-*`: every failure is 412, as S3 answers.
pub fn check_copy_preconditions(ctx: &Ctx, src: &ObjectMeta) -> Result<(), S3Error> {
    let matches = |v: &str| {
        v.split(',')
            .map(|e| e.trim().trim_matches('"'))
            .any(|e| e == "*" || e == src.etag)
    };
    let secs = src.last_modified.div_euclid(1000);
    let fail = |c: &str| S3Error::new(Code::PreconditionFailed).detail("Condition", c.to_string());
    let if_match = ctx.header("x-amz-copy-source-if-match");
    if let Some(v) = if_match {
        if !matches(v) {
            return Err(fail("x-amz-copy-source-If-Match"));
        }
    } else if let Some(t) = ctx
        .header("x-amz-copy-source-if-unmodified-since")
        .and_then(parse_http_date)
        && secs > t
    {
        return Err(fail("x-amz-copy-source-If-Unmodified-Since"));
    }
    if let Some(v) = ctx.header("x-amz-copy-source-if-none-match") {
        if matches(v) {
            return Err(fail("x-amz-copy-source-If-None-Match"));
        }
    } else if let Some(t) = ctx
        .header("x-amz-copy-source-if-modified-since")
        .and_then(parse_http_date)
        && secs <= t
    {
        return Err(fail("x-amz-copy-source-If-Modified-Since"));
    }
    Ok(())
}

/// Copies `len` bytes at `start` of a source object into a new blob, hashing them.
pub async fn copy_bytes(
    ctx: &Ctx,
    source: Source,
    start: u64,
    len: u64,
    algorithm: Option<crate::meta::ChecksumAlgorithm>,
) -> Result<(PublishedBlob, super::super::checksum::BodyDigests), S3Error> {
    ingest::ensure_space(ctx)?;
    let stream = source.stream(start, len);
    let (blob, hashers) = ctx
        .app
        .blobs
        .write(
            stream,
            u64::MAX,
            BodyHashers::new(false, algorithm),
            len >= ingest::PARALLEL_HASH_MIN,
        )
        .await
        .map_err(|e| match e {
            WriteError::Body(e) => S3Error::internal(e),
            WriteError::Store(e) => S3Error::from(e),
        })?;
    Ok((blob, hashers.finish()))
}

/// CopyObject.
pub async fn copy_object(ctx: Ctx) -> Result<Response<Body>, S3Error> {
    let bucket = ctx.bucket()?.to_string();
    let key = ctx.key()?.to_string();
    let (src_bucket, src_key) = copy_source(&ctx)?;
    let (read, files) = open_object(&ctx, &src_bucket, &src_key).await?;
    let src = &read.meta;
    check_copy_preconditions(&ctx, src)?;
    ctx.app.db.bucket(bucket.clone()).await?;

    let replace_meta = match ctx.header("x-amz-metadata-directive") {
        None => false,
        Some(d) if d.eq_ignore_ascii_case("COPY") => false,
        Some(d) if d.eq_ignore_ascii_case("REPLACE") => true,
        Some(_) => {
            return Err(S3Error::msg(
                Code::InvalidArgument,
                "Unknown metadata directive.",
            ));
        }
    };
    let replace_tags = match ctx.header("x-amz-tagging-directive") {
        None => false,
        Some(d) if d.eq_ignore_ascii_case("COPY") => false,
        Some(d) if d.eq_ignore_ascii_case("REPLACE") => true,
        Some(_) => {
            return Err(S3Error::msg(
                Code::InvalidArgument,
                "Unknown tagging directive.",
            ));
        }
    };
    let want = ingest::checksum_request(&ctx)?;
    let same = src_bucket == bucket && src_key == key;
    if same && !replace_meta && !replace_tags && want.algorithm.is_none() {
        return Err(S3Error::msg(
            Code::InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
        ));
    }
    let headers = if replace_meta {
        ingest::object_headers(&ctx)?
    } else {
        src.headers.clone()
    };
    let tags = if replace_tags {
        ctx.header("x-amz-tagging")
            .map(ingest::parse_tagging_header)
            .transpose()?
    } else {
        src.tags.clone()
    };
    let cond = write_condition(&ctx)?;
    let algorithm = want
        .algorithm
        .or_else(|| src.checksum.as_ref().map(|c| c.algorithm));
    let (blob, digests) = copy_bytes(&ctx, files, 0, src.size, algorithm).await?;
    let size = blob.size;
    let (blob, blob_id) = if size == 0 {
        (None, None)
    } else {
        let id = blob.id().to_string();
        (Some(blob), Some(id))
    };
    let etag = hex::encode(digests.md5);
    let obj = new_object(
        key,
        blob_id,
        size,
        etag.clone(),
        headers,
        digests.checksum,
        tags,
    );
    let last_modified = obj.last_modified;
    let checksum = obj.checksum.clone();
    commit_object(&ctx, &bucket, obj, blob, cond).await?;
    xml_response(
        &CopyObjectResult {
            xmlns: xml::NS,
            ETag: format!("\"{etag}\""),
            LastModified: iso8601(last_modified),
            ..Default::default()
        }
        .with_checksum(checksum.as_ref()),
    )
}

/// GetObjectTagging.
pub async fn get_tagging(ctx: Ctx) -> Result<Response<Body>, S3Error> {
    let obj = ctx
        .app
        .db
        .object(ctx.bucket()?.to_string(), ctx.key()?.to_string())
        .await?;
    let tags = obj.tags.unwrap_or_default();
    xml_response(&Tagging {
        xmlns: xml::NS,
        TagSet: TagSet {
            Tag: tags
                .into_iter()
                .map(|(k, v)| Tag { Key: k, Value: v })
                .collect(),
        },
    })
}

/// PutObjectTagging.
pub async fn put_tagging(ctx: Ctx, body: Body) -> Result<Response<Body>, S3Error> {
    let bytes = super::super::body::read_small(&ctx, body, MAX_XML_BODY).await?;
    let doc: Tagging = xml::from_xml(&bytes)?;
    let tags: crate::meta::Tags = doc
        .TagSet
        .Tag
        .into_iter()
        .map(|t| (t.Key, t.Value))
        .collect();
    ingest::validate_tags(&tags)?;
    ctx.app
        .db
        .set_object_tags(
            ctx.bucket()?.to_string(),
            ctx.key()?.to_string(),
            Some(tags),
        )
        .await?;
    empty(StatusCode::OK)
}

/// DeleteObjectTagging.
pub async fn delete_tagging(ctx: Ctx) -> Result<Response<Body>, S3Error> {
    ctx.app
        .db
        .set_object_tags(ctx.bucket()?.to_string(), ctx.key()?.to_string(), None)
        .await?;
    empty(StatusCode::NO_CONTENT)
}
