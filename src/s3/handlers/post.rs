//! PostObject: browser form uploads with a signed POST policy.
//!
//! The body is `multipart/form-data`. The fields before `file` are read into memory (each at
//! most [`MAX_FIELD`], all together at most [`MAX_FIELDS_TOTAL`]). At the `file` part the form
//! is authenticated and checked against its policy, and only then do the file's bytes stream
//! into a blob, never held whole. Fields after `file` are ignored, as S3 does.

use std::time::SystemTime;

use axum::body::Body;
use bytes::Bytes;
use futures_util::Stream;
use http::{HeaderValue, Response, StatusCode, header};

use super::super::Ctx;
use super::super::auth::post_policy::{LengthRange, PostForm, PostPolicyError, verify_post};
use super::super::body::{self, PayloadCheck};
use super::super::endpoint::MAX_KEY_LEN;
use super::super::error::{Code, S3Error};
use super::super::form::{self, FormError, FormReader};
use super::super::xml::{self, PostResponse, Tagging};
use super::object::{checksum_headers, commit_object, new_object};
use super::{ingest, url_encode};
use crate::meta::WriteCondition;

/// Largest value of one field before the file.
const MAX_FIELD: usize = 64 * 1024;

/// Largest total of the field names and values before the file.
const MAX_FIELDS_TOTAL: usize = 1024 * 1024;

/// Maps a form-reading failure to its S3 error.
fn form_error(e: FormError<S3Error>) -> S3Error {
    match e {
        FormError::Malformed(detail) => {
            tracing::debug!(detail, "malformed form upload");
            S3Error::new(Code::MalformedPOSTRequest)
        }
        // The body ended before its closing boundary: not well-formed (a client that went
        // away mid-body surfaces as `Body` instead).
        FormError::Incomplete => S3Error::new(Code::MalformedPOSTRequest),
        FormError::TooLarge => S3Error::new(Code::MaxPostPreDataLengthExceededError),
        FormError::Body(e) => e,
    }
}

/// Maps a policy or signature failure to its S3 error.
fn policy_error(e: PostPolicyError) -> S3Error {
    match e {
        PostPolicyError::Anonymous => S3Error::new(Code::AccessDenied),
        PostPolicyError::MissingField(name) => missing_field(name),
        PostPolicyError::InvalidArgument(m) => S3Error::msg(Code::InvalidArgument, m),
        PostPolicyError::InvalidAccessKeyId => S3Error::new(Code::InvalidAccessKeyId),
        PostPolicyError::SignatureDoesNotMatch => S3Error::new(Code::SignatureDoesNotMatch),
        PostPolicyError::InvalidPolicy(m) => {
            S3Error::msg(Code::InvalidPolicyDocument, format!("Invalid Policy: {m}"))
        }
        PostPolicyError::Expired => S3Error::msg(
            Code::AccessDenied,
            "Invalid according to Policy: Policy expired.",
        ),
        PostPolicyError::Violation(m) => S3Error::msg(
            Code::AccessDenied,
            format!("Invalid according to Policy: {m}"),
        ),
    }
}

/// S3's answer to a form that lacks a field (or sent it after the file).
fn missing_field(name: &str) -> S3Error {
    S3Error::msg(
        Code::InvalidArgument,
        format!(
            "Bucket POST must contain a field named '{name}'.  If it is specified, please check the order of the fields."
        ),
    )
    .detail("ArgumentName", name)
    .detail("ArgumentValue", "null")
}

/// PostObject.
pub async fn post_object(ctx: Ctx, body: Body) -> Result<Response<Body>, S3Error> {
    let bucket = ctx.bucket()?.to_string();
    let boundary = ctx
        .header("content-type")
        .and_then(form::boundary)
        .ok_or_else(|| S3Error::new(Code::MalformedPOSTRequest))?;
    // A form post is not header-signed, so this is the raw body.
    let (stream, _) = body::payload(&ctx, body);
    let mut reader = FormReader::new(stream, &boundary);

    // The fields up to the file.
    let mut fields = PostForm::new();
    let mut total = 0usize;
    let file = loop {
        let part = reader
            .next_part()
            .await
            .map_err(form_error)?
            .ok_or_else(|| {
                S3Error::msg(
                    Code::InvalidArgument,
                    "POST requires exactly one file upload per request.",
                )
                .detail("ArgumentName", "file")
                .detail("ArgumentValue", "0")
            })?;
        if part.name.eq_ignore_ascii_case("file") {
            break part;
        }
        let value = reader.read_value(MAX_FIELD).await.map_err(form_error)?;
        total = total.saturating_add(part.name.len() + value.len());
        if total > MAX_FIELDS_TOTAL {
            return Err(S3Error::new(Code::MaxPostPreDataLengthExceededError));
        }
        let value = String::from_utf8(value).map_err(|_| {
            S3Error::msg(
                Code::InvalidArgument,
                format!("The value of form field '{}' is not UTF-8", part.name),
            )
        })?;
        if part.name.to_ascii_lowercase().starts_with("x-ignore-") {
            continue;
        }
        if !fields.insert(&part.name, value) {
            return Err(S3Error::msg(
                Code::InvalidArgument,
                format!("Form field '{}' is given more than once", part.name),
            ));
        }
    };

    // What the policy sees: the routed bucket, and the key with ${filename} replaced.
    let filename = file.filename.as_deref().unwrap_or_default();
    let key = fields
        .get("key")
        .ok_or_else(|| missing_field("key"))?
        .replace("${filename}", filename);
    fields.set("key", key.clone());
    fields.set("bucket", bucket.clone());
    let auth =
        verify_post(&fields, ctx.app.iam.as_ref(), SystemTime::now()).map_err(policy_error)?;
    let who = ctx
        .app
        .iam
        .principal_for_key(&auth.access_key_id)
        .ok_or_else(|| S3Error::new(Code::InvalidAccessKeyId))?;
    if key.is_empty() {
        return Err(S3Error::msg(
            Code::InvalidArgument,
            "User key must have a length greater than 0.",
        ));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(S3Error::new(Code::KeyTooLongError));
    }
    tracing::debug!(access_key_id = %auth.access_key_id, "form upload authenticated");
    crate::s3::access::authorize_write(&ctx, &who, &bucket, &key).await?;

    // Everything about the object is settled before any byte of the file is read.
    let headers = form_headers(&fields)?;
    let tags = fields.get("tagging").map(parse_tagging).transpose()?;
    let want = ingest::checksum_request_from(|name| fields.get(name))?;
    let md5 = ingest::decode_content_md5(fields.get("content-md5"))?;
    ctx.app.db.bucket(bucket.clone()).await?;

    let stream = limited(&mut reader, auth.content_length);
    let no_check = PayloadCheck {
        sha256: None,
        trailers: None,
    };
    ingest::ensure_space(&ctx)?;
    let got = ingest::ingest_stream(&ctx, stream, no_check, md5, &want).await?;
    if let Some(range) = auth.content_length
        && got.size < range.min
    {
        // `got` is dropped here, which deletes its blob.
        return Err(S3Error::new(Code::EntityTooSmall)
            .detail("ProposedSize", got.size.to_string())
            .detail("MinSizeAllowed", range.min.to_string()));
    }
    let (blob, blob_id) = if got.size == 0 {
        (None, None)
    } else {
        let id = got.blob.id().to_string();
        (Some(got.blob), Some(id))
    };
    let etag = got.md5_hex;
    let obj = new_object(
        key.clone(),
        blob_id,
        got.size,
        etag.clone(),
        headers,
        got.checksum,
        tags,
    );
    let checksum = obj.checksum.clone();
    commit_object(&ctx, &bucket, obj, blob, WriteCondition::None).await?;

    let quoted = format!("\"{etag}\"");
    let location = object_url(&ctx, &bucket, &key);
    let builder = Response::builder()
        .header(header::ETAG, quoted.as_str())
        .extension(who);
    let builder = checksum_headers(builder, checksum.as_ref());
    if let Some(target) = redirect_target(&fields, &bucket, &key, &quoted) {
        return builder
            .status(StatusCode::SEE_OTHER)
            .header(header::LOCATION, target)
            .body(Body::empty())
            .map_err(S3Error::internal);
    }
    let builder = match HeaderValue::from_str(&location) {
        Ok(v) => builder.header(header::LOCATION, v),
        Err(_) => builder,
    };
    match fields.get("success_action_status").map(str::trim) {
        Some("201") => {
            let doc = xml::to_xml(&PostResponse {
                Location: location,
                Bucket: bucket,
                Key: key,
                ETag: quoted,
            })?;
            builder
                .status(StatusCode::CREATED)
                .header(header::CONTENT_TYPE, "application/xml")
                .body(Body::from(doc))
        }
        Some("200") => builder.status(StatusCode::OK).body(Body::empty()),
        _ => builder.status(StatusCode::NO_CONTENT).body(Body::empty()),
    }
    .map_err(S3Error::internal)
}

/// The file part's bytes, failing with `EntityTooLarge` as soon as they pass the policy's
/// maximum (the blob being written is then deleted).
fn limited<S>(
    reader: &mut FormReader<S>,
    range: Option<LengthRange>,
) -> impl Stream<Item = Result<Bytes, S3Error>> + Send + '_
where
    S: Stream<Item = Result<Bytes, S3Error>> + Unpin + Send,
{
    let max = range.map_or(u64::MAX, |r| r.max);
    futures_util::stream::unfold(
        (reader, 0u64, false),
        move |(reader, seen, failed)| async move {
            if failed {
                return None;
            }
            match reader.next_chunk().await {
                Ok(Some(chunk)) => {
                    let seen = seen.saturating_add(chunk.len() as u64);
                    if seen > max {
                        let e = S3Error::new(Code::EntityTooLarge)
                            .detail("MaxSizeAllowed", max.to_string());
                        Some((Err(e), (reader, seen, true)))
                    } else {
                        Some((Ok(chunk), (reader, seen, false)))
                    }
                }
                Ok(None) => None,
                Err(e) => Some((Err(form_error(e)), (reader, seen, true))),
            }
        },
    )
}

/// The object's stored headers from the form: Content-Type and the other standard headers,
/// and `x-amz-meta-*` (values must be valid header values, as they are served as headers).
fn form_headers(fields: &PostForm) -> Result<crate::meta::ObjectHeaders, S3Error> {
    let mut user = Vec::new();
    for (name, value) in fields.iter() {
        if let Some(meta) = name.strip_prefix("x-amz-meta-") {
            if HeaderValue::from_str(value).is_err() {
                return Err(S3Error::msg(
                    Code::InvalidArgument,
                    "metadata values must be ASCII",
                ));
            }
            user.push((meta, value));
        }
    }
    ingest::object_headers_from(|name| fields.get(name), user)
}

/// The `tagging` field: an XML Tagging document.
fn parse_tagging(doc: &str) -> Result<crate::meta::Tags, S3Error> {
    let doc: Tagging = xml::from_xml(doc.as_bytes())?;
    let tags: crate::meta::Tags = doc
        .TagSet
        .Tag
        .into_iter()
        .map(|t| (t.Key, t.Value))
        .collect();
    ingest::validate_tags(&tags)?;
    Ok(tags)
}

/// Where the object can be fetched, in the addressing style the request used.
fn object_url(ctx: &Ctx, bucket: &str, key: &str) -> String {
    let scheme = match ctx.header("x-forwarded-proto").map(str::trim) {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    let host = ctx.header("host").unwrap_or("localhost");
    let virtual_host = ctx.parts.uri.path().trim_matches('/').is_empty();
    if virtual_host {
        format!("{scheme}://{host}/{}", url_encode(key))
    } else {
        format!("{scheme}://{host}/{bucket}/{}", url_encode(key))
    }
}

/// The `success_action_redirect` (or legacy `redirect`) target with `bucket`, `key` and
/// `etag` appended; `None` when absent or not an http(s) URL, and the status is used.
fn redirect_target(fields: &PostForm, bucket: &str, key: &str, etag: &str) -> Option<HeaderValue> {
    let url = fields
        .get("success_action_redirect")
        .or_else(|| fields.get("redirect"))?
        .trim();
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return None;
    }
    url.parse::<http::Uri>().ok()?;
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let enc = |s: &str| percent_encoding::utf8_percent_encode(s, SET).to_string();
    let (base, fragment) = match url.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (url, None),
    };
    let sep = if !base.contains('?') {
        "?"
    } else if base.ends_with('?') || base.ends_with('&') {
        ""
    } else {
        "&"
    };
    let mut target = format!(
        "{base}{sep}bucket={}&key={}&etag={}",
        enc(bucket),
        enc(key),
        enc(etag)
    );
    if let Some(f) = fragment {
        target.push('#');
        target.push_str(f);
    }
    HeaderValue::from_str(&target).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_targets() {
        let mut f = PostForm::new();
        assert!(redirect_target(&f, "b", "k", "\"e\"").is_none());
        f.set("success_action_redirect", "https://example.com/done".into());
        assert_eq!(
            redirect_target(&f, "b", "a b/c", "\"e\"").unwrap(),
            "https://example.com/done?bucket=b&key=a%20b%2Fc&etag=%22e%22"
        );
        f.set("success_action_redirect", "http://x/y?z=1#frag".into());
        assert_eq!(
            redirect_target(&f, "b", "k", "\"e\"").unwrap(),
            "http://x/y?z=1&bucket=b&key=k&etag=%22e%22#frag"
        );
        f.set("success_action_redirect", "javascript:alert(1)".into());
        assert!(redirect_target(&f, "b", "k", "\"e\"").is_none());
    }

    #[test]
    fn tagging_field() {
        let tags = parse_tagging(
            "<Tagging><TagSet><Tag><Key>a</Key><Value>1</Value></Tag></TagSet></Tagging>",
        )
        .unwrap();
        assert_eq!(tags, vec![("a".to_string(), "1".to_string())]);
        assert_eq!(
            parse_tagging("<Tagging>").unwrap_err().code,
            Code::MalformedXML
        );
    }
}
