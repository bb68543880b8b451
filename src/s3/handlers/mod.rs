//! One function per S3 operation, grouped by resource; [`dispatch`] picks it.

mod bucket;
mod ingest;
mod multipart;
mod object;
mod post;

use axum::body::Body;
use http::{Response, StatusCode, header};

pub use object::copy_source;

use super::Ctx;
use super::endpoint::Endpoint;
use super::error::{Code, S3Error};
use super::xml::{self, Owner};

/// Runs the handler of the routed operation.
pub async fn dispatch(ctx: Ctx, body: Body) -> Result<Response<Body>, S3Error> {
    use Endpoint as E;
    // Buckets are never versioned: the only version of an object is `null`.
    if let Some(v) = ctx.query.get("versionId")
        && v != "null"
    {
        return Err(
            S3Error::msg(Code::InvalidArgument, "Invalid version id specified")
                .detail("ArgumentName", "versionId")
                .detail("ArgumentValue", v),
        );
    }
    match ctx.route.endpoint {
        E::ListBuckets => bucket::list_buckets(ctx).await,
        E::CreateBucket => bucket::create_bucket(ctx, body).await,
        E::DeleteBucket => bucket::delete_bucket(ctx).await,
        E::HeadBucket => bucket::head_bucket(ctx).await,
        E::GetBucketLocation => bucket::get_location(ctx).await,
        E::GetBucketVersioning => bucket::get_versioning(ctx).await,
        E::GetBucketTagging => bucket::absent(ctx, Code::NoSuchTagSet).await,
        E::GetBucketCors => bucket::absent(ctx, Code::NoSuchCORSConfiguration).await,
        E::GetBucketPolicy => bucket::absent(ctx, Code::NoSuchBucketPolicy).await,
        E::GetBucketLifecycleConfiguration => {
            bucket::absent(ctx, Code::NoSuchLifecycleConfiguration).await
        }
        E::GetBucketEncryption => {
            bucket::absent(ctx, Code::ServerSideEncryptionConfigurationNotFoundError).await
        }
        E::GetBucketWebsite => bucket::absent(ctx, Code::NoSuchWebsiteConfiguration).await,
        E::ListObjects => bucket::list_objects_v1(ctx).await,
        E::ListObjectsV2 => bucket::list_objects_v2(ctx).await,
        E::ListObjectVersions => bucket::list_object_versions(ctx).await,
        E::DeleteObjects => bucket::delete_objects(ctx, body).await,
        E::PostObject => Box::pin(post::post_object(ctx, body)).await,
        E::GetObject => object::get_object(ctx, false).await,
        E::HeadObject => object::get_object(ctx, true).await,
        E::PutObject => Box::pin(object::put_object(ctx, body)).await,
        E::CopyObject => Box::pin(object::copy_object(ctx)).await,
        E::DeleteObject => object::delete_object(ctx).await,
        E::GetObjectTagging => object::get_tagging(ctx).await,
        E::PutObjectTagging => object::put_tagging(ctx, body).await,
        E::DeleteObjectTagging => object::delete_tagging(ctx).await,
        E::ListMultipartUploads => multipart::list_uploads(ctx).await,
        E::CreateMultipartUpload => Box::pin(multipart::create(ctx)).await,
        E::UploadPart => Box::pin(multipart::upload_part(ctx, body)).await,
        E::UploadPartCopy => Box::pin(multipart::upload_part_copy(ctx)).await,
        E::CompleteMultipartUpload => Box::pin(multipart::complete(ctx, body)).await,
        E::AbortMultipartUpload => multipart::abort(ctx).await,
        E::ListParts => multipart::list_parts(ctx).await,
        E::NotImplemented => Err(S3Error::new(Code::NotImplemented)),
    }
}

/// Largest XML request body accepted (DeleteObjects of 1000 long keys fits).
const MAX_XML_BODY: usize = 2 * 1024 * 1024;

/// The owner reported in listings.
fn owner(ctx: &Ctx) -> Owner {
    let id = ctx
        .verified
        .as_ref()
        .map(|v| v.access_key_id.clone())
        .unwrap_or_else(|| "anonymous".into());
    Owner {
        ID: id.clone(),
        DisplayName: id,
    }
}

/// A 200 response with an XML document.
fn xml_response<T: serde::Serialize>(doc: &T) -> Result<Response<Body>, S3Error> {
    let body = xml::to_xml(doc)?;
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/xml")
        .body(Body::from(body))
        .map_err(S3Error::internal)
}

/// An empty response with `status`.
fn empty(status: StatusCode) -> Result<Response<Body>, S3Error> {
    Response::builder()
        .status(status)
        .body(Body::empty())
        .map_err(S3Error::internal)
}

/// Runs a metadata commit and the blob bookkeeping that goes with it to completion even
/// if the client goes away meanwhile. Once a commit is queued it may land, so the step
/// that keeps (or releases) the blobs it references must not be cancelled halfway:
/// dropping it between the commit and `keep()` would delete a committed object's bytes.
async fn uncancellable<T: Send + 'static>(
    f: impl Future<Output = Result<T, S3Error>> + Send + 'static,
) -> Result<T, S3Error> {
    tokio::spawn(f).await.map_err(S3Error::internal)?
}

/// Formats Unix milliseconds as ISO 8601 with milliseconds, as S3 XML does.
pub fn iso8601(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Formats Unix milliseconds as an HTTP date (seconds precision).
pub fn http_date(ms: i64) -> String {
    let secs = u64::try_from(ms.div_euclid(1000)).unwrap_or(0);
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

/// Parses an HTTP date header into Unix seconds.
fn parse_http_date(v: &str) -> Option<i64> {
    let t = httpdate::parse_http_date(v.trim()).ok()?;
    let secs = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

/// URL-encodes a string for `encoding-type=url` listings (S3 keeps `/` as is).
fn url_encode(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~')
        .remove(b'/');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(iso8601(1_255_369_830_123), "2009-10-12T17:50:30.123Z");
        assert_eq!(
            http_date(1_255_369_830_123),
            "Mon, 12 Oct 2009 17:50:30 GMT"
        );
        assert_eq!(
            parse_http_date("Mon, 12 Oct 2009 17:50:30 GMT"),
            Some(1_255_369_830)
        );
        assert_eq!(url_encode("a b/ü+"), "a%20b/%C3%BC%2B");
    }

    fn future_size<F: FnOnce(Ctx, Body) -> Fut, Fut>(_: &F) -> usize {
        std::mem::size_of::<Fut>()
    }

    /// Every request's future is moved a few times on its way into hyper's connection
    /// task, so its size is paid on every GET. The large, rarer handlers are boxed in
    /// [`dispatch`]; an unboxed one would make every request carry its size (it was
    /// 6.3 KiB with `copy_object` inline, and each layer above adds to it).
    #[test]
    fn the_request_future_stays_small() {
        let dispatch_size = future_size(&dispatch);
        assert!(
            dispatch_size <= 4096,
            "handlers::dispatch: {dispatch_size} bytes"
        );
    }
}
