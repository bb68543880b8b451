//! Routing: method + host + path + query → a typed S3 operation.
//!
//! Both addressing styles are understood: path-style (`/bucket/key`) and virtual-host
//! style (`bucket.s3.example.com/key`, when a base domain is configured).

use http::Method;
use percent_encoding::percent_decode_str;

use super::error::{Code, S3Error};

/// Maximum key length in bytes, as in S3.
pub const MAX_KEY_LEN: usize = 1024;

/// The S3 operations Tarn knows, named as in the AWS API reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ListBuckets,
    CreateBucket,
    DeleteBucket,
    HeadBucket,
    GetBucketLocation,
    GetBucketVersioning,
    GetBucketTagging,
    GetBucketCors,
    GetBucketPolicy,
    GetBucketLifecycleConfiguration,
    GetBucketEncryption,
    GetBucketWebsite,
    ListObjects,
    ListObjectsV2,
    ListObjectVersions,
    ListMultipartUploads,
    DeleteObjects,
    PostObject,
    GetObject,
    HeadObject,
    PutObject,
    CopyObject,
    DeleteObject,
    GetObjectTagging,
    PutObjectTagging,
    DeleteObjectTagging,
    CreateMultipartUpload,
    UploadPart,
    UploadPartCopy,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    ListParts,
    /// Recognised but not supported: answered 501 NotImplemented.
    NotImplemented,
}

impl Endpoint {
    /// The operation name, for logs and (later) audit records.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::ListBuckets => "ListBuckets",
            Endpoint::CreateBucket => "CreateBucket",
            Endpoint::DeleteBucket => "DeleteBucket",
            Endpoint::HeadBucket => "HeadBucket",
            Endpoint::GetBucketLocation => "GetBucketLocation",
            Endpoint::GetBucketVersioning => "GetBucketVersioning",
            Endpoint::GetBucketTagging => "GetBucketTagging",
            Endpoint::GetBucketCors => "GetBucketCors",
            Endpoint::GetBucketPolicy => "GetBucketPolicy",
            Endpoint::GetBucketLifecycleConfiguration => "GetBucketLifecycleConfiguration",
            Endpoint::GetBucketEncryption => "GetBucketEncryption",
            Endpoint::GetBucketWebsite => "GetBucketWebsite",
            Endpoint::ListObjects => "ListObjects",
            Endpoint::ListObjectsV2 => "ListObjectsV2",
            Endpoint::ListObjectVersions => "ListObjectVersions",
            Endpoint::ListMultipartUploads => "ListMultipartUploads",
            Endpoint::DeleteObjects => "DeleteObjects",
            Endpoint::PostObject => "PostObject",
            Endpoint::GetObject => "GetObject",
            Endpoint::HeadObject => "HeadObject",
            Endpoint::PutObject => "PutObject",
            Endpoint::CopyObject => "CopyObject",
            Endpoint::DeleteObject => "DeleteObject",
            Endpoint::GetObjectTagging => "GetObjectTagging",
            Endpoint::PutObjectTagging => "PutObjectTagging",
            Endpoint::DeleteObjectTagging => "DeleteObjectTagging",
            Endpoint::CreateMultipartUpload => "CreateMultipartUpload",
            Endpoint::UploadPart => "UploadPart",
            Endpoint::UploadPartCopy => "UploadPartCopy",
            Endpoint::CompleteMultipartUpload => "CompleteMultipartUpload",
            Endpoint::AbortMultipartUpload => "AbortMultipartUpload",
            Endpoint::ListParts => "ListParts",
            Endpoint::NotImplemented => "NotImplemented",
        }
    }
}

/// Decoded query parameters, in request order.
#[derive(Debug, Clone, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses a raw query string; names and values are percent-decoded.
    pub fn parse(raw: &str) -> Query {
        Query(
            raw.split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (decode(n), decode(v))
                })
                .collect(),
        )
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether `name` is present (with or without a value).
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }

    /// All pairs.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// A routed request: operation, bucket and key.
#[derive(Debug, Clone)]
pub struct Route {
    pub endpoint: Endpoint,
    pub bucket: Option<String>,
    pub key: Option<String>,
    /// The bucket came from the Host header (virtual-host style).
    pub virtual_host: bool,
}

/// Checks a bucket name against the S3 naming rules (3–63 chars of lowercase letters,
/// digits, dots and hyphens; starts and ends with a letter or digit; not an IP address;
/// no `..`, no reserved prefixes/suffixes).
pub fn valid_bucket_name(name: &str) -> bool {
    let b = name.as_bytes();
    if !(3..=63).contains(&b.len()) {
        return false;
    }
    let ok_chars = b
        .iter()
        .all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-'));
    let edge = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ip_like = name.split('.').count() == 4
        && name
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()));
    ok_chars
        && b.first().copied().is_some_and(edge)
        && b.last().copied().is_some_and(edge)
        && !name.contains("..")
        && !name.contains(".-")
        && !name.contains("-.")
        && !ip_like
        && !name.starts_with("xn--")
        && !name.starts_with("sthree-")
        && !name.ends_with("-s3alias")
        && !name.ends_with("--ol-s3")
}

/// Splits the request target into bucket and key, honouring virtual-host addressing
/// when `domain` is set and the host is a subdomain of it.
fn split_target(
    host: Option<&str>,
    domain: Option<&str>,
    raw_path: &str,
) -> Result<(Option<String>, Option<String>, bool), S3Error> {
    let path = percent_decode_str(raw_path)
        .decode_utf8()
        .map_err(|_| S3Error::msg(Code::InvalidArgument, "The path is not valid UTF-8"))?;
    let path = path.strip_prefix('/').unwrap_or(&path);
    let host_name = host.map(|h| match h.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|c| c.is_ascii_digit()) => name,
        _ => h,
    });
    let vhost_bucket = match (host_name, domain) {
        (Some(h), Some(d)) if !d.is_empty() => h
            .strip_suffix(d)
            .and_then(|rest| rest.strip_suffix('.'))
            .filter(|b| !b.is_empty()),
        _ => None,
    };
    let (bucket, key) = match vhost_bucket {
        Some(b) => (Some(b.to_string()), path.to_string()),
        None => match path.split_once('/') {
            Some((b, k)) => (Some(b.to_string()), k.to_string()),
            None if path.is_empty() => (None, String::new()),
            None => (Some(path.to_string()), String::new()),
        },
    };
    let key = (!key.is_empty()).then_some(key);
    Ok((bucket, key, vhost_bucket.is_some()))
}

/// Routes a request.
pub fn route(
    method: &Method,
    host: Option<&str>,
    domain: Option<&str>,
    raw_path: &str,
    query: &Query,
    has_copy_source: bool,
    is_form_post: bool,
) -> Result<Route, S3Error> {
    let (bucket, key, virtual_host) = split_target(host, domain, raw_path)?;
    if let Some(b) = &bucket
        && !valid_bucket_name(b)
    {
        return Err(S3Error::new(Code::InvalidBucketName).detail("BucketName", b.clone()));
    }
    if let Some(k) = &key
        && k.len() > MAX_KEY_LEN
    {
        return Err(S3Error::new(Code::KeyTooLongError));
    }
    let q = |n: &str| query.has(n);
    use Endpoint as E;
    let endpoint = match (&bucket, &key) {
        (None, _) => match *method {
            Method::GET => E::ListBuckets,
            _ => return Err(S3Error::new(Code::MethodNotAllowed)),
        },
        (Some(_), None) => match *method {
            Method::GET if q("location") => E::GetBucketLocation,
            Method::GET if q("versioning") => E::GetBucketVersioning,
            Method::GET if q("tagging") => E::GetBucketTagging,
            Method::GET if q("cors") => E::GetBucketCors,
            Method::GET if q("policy") => E::GetBucketPolicy,
            Method::GET if q("lifecycle") => E::GetBucketLifecycleConfiguration,
            Method::GET if q("encryption") => E::GetBucketEncryption,
            Method::GET if q("website") => E::GetBucketWebsite,
            Method::GET if q("uploads") => E::ListMultipartUploads,
            Method::GET if q("versions") => E::ListObjectVersions,
            Method::GET if query.get("list-type") == Some("2") => E::ListObjectsV2,
            Method::GET if has_subresource(query) => E::NotImplemented,
            Method::GET => E::ListObjects,
            Method::HEAD => E::HeadBucket,
            Method::PUT if has_subresource(query) => E::NotImplemented,
            Method::PUT => E::CreateBucket,
            Method::DELETE if has_subresource(query) => E::NotImplemented,
            Method::DELETE => E::DeleteBucket,
            Method::POST if q("delete") => E::DeleteObjects,
            Method::POST if is_form_post => E::PostObject,
            _ => E::NotImplemented,
        },
        (Some(_), Some(_)) => match *method {
            Method::GET if q("uploadId") => E::ListParts,
            Method::GET if q("tagging") => E::GetObjectTagging,
            Method::GET if has_subresource(query) => E::NotImplemented,
            Method::GET => E::GetObject,
            Method::HEAD => E::HeadObject,
            Method::PUT if q("partNumber") && q("uploadId") && has_copy_source => E::UploadPartCopy,
            Method::PUT if q("partNumber") && q("uploadId") => E::UploadPart,
            Method::PUT if q("tagging") => E::PutObjectTagging,
            Method::PUT if has_subresource(query) => E::NotImplemented,
            Method::PUT if has_copy_source => E::CopyObject,
            Method::PUT => E::PutObject,
            Method::DELETE if q("uploadId") => E::AbortMultipartUpload,
            Method::DELETE if q("tagging") => E::DeleteObjectTagging,
            Method::DELETE if has_subresource(query) => E::NotImplemented,
            Method::DELETE => E::DeleteObject,
            Method::POST if q("uploads") => E::CreateMultipartUpload,
            Method::POST if q("uploadId") => E::CompleteMultipartUpload,
            _ => E::NotImplemented,
        },
    };
    Ok(Route {
        endpoint,
        bucket,
        key,
        virtual_host,
    })
}

/// Sub-resources of S3 that Tarn does not implement: a request naming one must not be
/// mistaken for the plain operation on the same path (e.g. `PUT ?acl` is not PutObject).
fn has_subresource(query: &Query) -> bool {
    const UNSUPPORTED: &[&str] = &[
        "accelerate",
        "acl",
        "analytics",
        "attributes",
        "cors",
        "encryption",
        "intelligent-tiering",
        "inventory",
        "legal-hold",
        "lifecycle",
        "logging",
        "metrics",
        "notification",
        "object-lock",
        "ownershipControls",
        "policy",
        "policyStatus",
        "publicAccessBlock",
        "replication",
        "requestPayment",
        "restore",
        "retention",
        "select",
        "tagging",
        "torrent",
        "versioning",
        "website",
        "session",
    ];
    query
        .pairs()
        .iter()
        .any(|(n, _)| UNSUPPORTED.contains(&n.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(method: Method, host: &str, path_query: &str) -> Result<Route, S3Error> {
        let (path, query) = path_query.split_once('?').unwrap_or((path_query, ""));
        let copy = path_query.contains("#copy");
        route(
            &method,
            Some(host),
            Some("s3.tarn.test"),
            path.trim_end_matches("#copy"),
            &Query::parse(query),
            copy,
            false,
        )
    }

    #[test]
    fn table() {
        use Endpoint as E;
        type Case<'a> = (
            Method,
            &'a str,
            &'a str,
            E,
            Option<&'a str>,
            Option<&'a str>,
        );
        let cases: &[Case] = &[
            (
                Method::GET,
                "localhost:9000",
                "/",
                E::ListBuckets,
                None,
                None,
            ),
            (
                Method::PUT,
                "localhost",
                "/bkt",
                E::CreateBucket,
                Some("bkt"),
                None,
            ),
            (
                Method::GET,
                "localhost",
                "/bkt?list-type=2&prefix=a",
                E::ListObjectsV2,
                Some("bkt"),
                None,
            ),
            (
                Method::GET,
                "localhost",
                "/bkt/",
                E::ListObjects,
                Some("bkt"),
                None,
            ),
            (
                Method::GET,
                "localhost",
                "/bkt?location",
                E::GetBucketLocation,
                Some("bkt"),
                None,
            ),
            (
                Method::POST,
                "localhost",
                "/bkt?delete",
                E::DeleteObjects,
                Some("bkt"),
                None,
            ),
            (
                Method::GET,
                "localhost",
                "/bkt/a/b%20c",
                E::GetObject,
                Some("bkt"),
                Some("a/b c"),
            ),
            (
                Method::GET,
                "localhost",
                "/bkt/dir/",
                E::GetObject,
                Some("bkt"),
                Some("dir/"),
            ),
            (
                Method::GET,
                "localhost",
                "/bkt/..%2F..%2Fetc",
                E::GetObject,
                Some("bkt"),
                Some("../../etc"),
            ),
            (
                Method::PUT,
                "localhost",
                "/bkt/k?partNumber=2&uploadId=x",
                E::UploadPart,
                Some("bkt"),
                Some("k"),
            ),
            (
                Method::PUT,
                "localhost",
                "/bkt/k#copy",
                E::CopyObject,
                Some("bkt"),
                Some("k"),
            ),
            (
                Method::PUT,
                "localhost",
                "/bkt/k?acl",
                E::NotImplemented,
                Some("bkt"),
                Some("k"),
            ),
            (
                Method::POST,
                "localhost",
                "/bkt/k?uploads",
                E::CreateMultipartUpload,
                Some("bkt"),
                Some("k"),
            ),
            (
                Method::POST,
                "localhost",
                "/bkt/k?uploadId=u",
                E::CompleteMultipartUpload,
                Some("bkt"),
                Some("k"),
            ),
            (
                Method::DELETE,
                "localhost",
                "/bkt/k?uploadId=u",
                E::AbortMultipartUpload,
                Some("bkt"),
                Some("k"),
            ),
            (
                Method::GET,
                "localhost",
                "/bkt/k?tagging",
                E::GetObjectTagging,
                Some("bkt"),
                Some("k"),
            ),
            (
                Method::GET,
                "bkt.s3.tarn.test:9000",
                "/",
                E::ListObjects,
                Some("bkt"),
                None,
            ),
            (
                Method::GET,
                "bkt.s3.tarn.test",
                "/x/y",
                E::GetObject,
                Some("bkt"),
                Some("x/y"),
            ),
            (
                Method::GET,
                "s3.tarn.test",
                "/bkt/x",
                E::GetObject,
                Some("bkt"),
                Some("x"),
            ),
        ];
        for (m, host, pq, ep, bucket, key) in cases {
            let got = r(m.clone(), host, pq).unwrap();
            assert_eq!(got.endpoint, *ep, "{m} {host} {pq}");
            assert_eq!(got.bucket.as_deref(), *bucket, "{m} {host} {pq}");
            assert_eq!(got.key.as_deref(), *key, "{m} {host} {pq}");
        }
    }

    #[test]
    fn rejects_bad_names_and_long_keys() {
        assert_eq!(
            r(Method::PUT, "h", "/Bad_Name").unwrap_err().code,
            Code::InvalidBucketName
        );
        assert_eq!(
            r(Method::PUT, "h", "/ab").unwrap_err().code,
            Code::InvalidBucketName
        );
        let long = format!("/bkt/{}", "k".repeat(1025));
        assert_eq!(
            r(Method::PUT, "h", &long).unwrap_err().code,
            Code::KeyTooLongError
        );
        assert!(r(Method::PUT, "h", &format!("/bkt/{}", "k".repeat(1024))).is_ok());
        for bad in ["192.168.1.1", "a..b", "-ab", "ab-", "xn--ab", "a.-b"] {
            assert!(!valid_bucket_name(bad), "{bad}");
        }
        for good in ["abc", "my.bucket-1", "raw", "a1b"] {
            assert!(valid_bucket_name(good), "{good}");
        }
    }
}
