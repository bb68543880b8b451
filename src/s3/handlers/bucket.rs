//! Bucket operations and listings.

use axum::body::Body;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as TOKEN_B64;
use http::{Response, StatusCode, header};

use super::super::Ctx;
use super::super::body::read_small;
use super::super::error::{Code, S3Error};
use super::super::xml::{self, *};
use super::{MAX_XML_BODY, empty, iso8601, owner, url_encode, xml_response};
use crate::meta::{ListParams, Listing};

/// Most keys one listing page returns, as in S3.
const MAX_KEYS: usize = 1000;

/// ListBuckets: every bucket for admins; for members, the buckets in which they may
/// read something (see [`crate::authz::visible_buckets`]).
pub async fn list_buckets(ctx: Ctx) -> Result<Response<Body>, S3Error> {
    let who = ctx.principal()?;
    let all = ctx.app.db.bucket_infos().await?;
    let buckets =
        crate::authz::visible_buckets(&ctx.app.db, who, all, |b| (b.id, b.zone), true).await?;
    xml_response(&ListAllMyBucketsResult {
        xmlns: xml::NS,
        Owner: owner(&ctx),
        Buckets: Buckets {
            Bucket: buckets
                .into_iter()
                .map(|b| BucketEntry {
                    Name: b.name,
                    CreationDate: iso8601(b.created_at),
                })
                .collect(),
        },
    })
}

/// CreateBucket, with or without a CreateBucketConfiguration body.
pub async fn create_bucket(ctx: Ctx, body: Body) -> Result<Response<Body>, S3Error> {
    let name = ctx.bucket()?.to_string();
    if name == "api" {
        return Err(S3Error::msg(
            Code::InvalidBucketName,
            "The bucket name \"api\" is reserved",
        )
        .detail("BucketName", name));
    }
    let bytes = read_small(&ctx, body, MAX_XML_BODY).await?;
    let region = ctx.app.settings.s3.region.clone();
    if !bytes.iter().all(u8::is_ascii_whitespace) {
        let conf: CreateBucketConfiguration = xml::from_xml(&bytes)?;
        if let Some(lc) = conf.LocationConstraint.filter(|l| !l.is_empty())
            && lc != region
        {
            return Err(S3Error::msg(
                Code::IllegalLocationConstraintException,
                format!(
                    "The {lc} location constraint is incompatible for the region specific endpoint this request was sent to ({region})."
                ),
            ));
        }
    }
    let zone = crate::meta::Zone::parse(&ctx.app.settings.zones.default_zone)
        .unwrap_or(crate::meta::Zone::Raw);
    ctx.app
        .db
        .create_bucket_in_zone(name.clone(), region, zone)
        .await?;
    Response::builder()
        .status(StatusCode::OK)
        .header(header::LOCATION, format!("/{name}"))
        .body(Body::empty())
        .map_err(S3Error::internal)
}

/// DeleteBucket.
pub async fn delete_bucket(ctx: Ctx) -> Result<Response<Body>, S3Error> {
    let blobs = ctx.app.db.delete_bucket(ctx.bucket()?.to_string()).await?;
    ctx.app.blobs.delete_later(blobs);
    empty(StatusCode::NO_CONTENT)
}

/// HeadBucket.
pub async fn head_bucket(ctx: Ctx) -> Result<Response<Body>, S3Error> {
    let b = ctx.app.db.bucket(ctx.bucket()?.to_string()).await?;
    Response::builder()
        .status(StatusCode::OK)
        .header("x-amz-bucket-region", b.region)
        .body(Body::empty())
        .map_err(S3Error::internal)
}

/// GetBucketLocation (empty for us-east-1, as S3 answers).
pub async fn get_location(ctx: Ctx) -> Result<Response<Body>, S3Error> {
    let b = ctx.app.db.bucket(ctx.bucket()?.to_string()).await?;
    let region = if b.region == "us-east-1" {
        String::new()
    } else {
        b.region
    };
    xml_response(&LocationConstraint {
        xmlns: xml::NS,
        region,
    })
}

/// GetBucketVersioning: never enabled, so an empty configuration.
pub async fn get_versioning(ctx: Ctx) -> Result<Response<Body>, S3Error> {
    ctx.app.db.bucket(ctx.bucket()?.to_string()).await?;
    xml_response(&VersioningConfiguration { xmlns: xml::NS })
}

/// A bucket configuration that Tarn never has: the bucket must exist, then `code`.
pub async fn absent(ctx: Ctx, code: Code) -> Result<Response<Body>, S3Error> {
    let name = ctx.bucket()?.to_string();
    ctx.app.db.bucket(name.clone()).await?;
    Err(S3Error::new(code).detail("BucketName", name))
}

fn max_keys(ctx: &Ctx, name: &str) -> Result<usize, S3Error> {
    match ctx.query.get(name) {
        None => Ok(MAX_KEYS),
        Some(v) => v
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(|n| (n as usize).min(MAX_KEYS))
            .ok_or_else(|| {
                S3Error::msg(
                    Code::InvalidArgument,
                    format!("Provided {name} not an integer or within integer range"),
                )
                .detail("ArgumentName", name)
                .detail("ArgumentValue", v)
            }),
    }
}

fn encoding(ctx: &Ctx) -> Result<bool, S3Error> {
    match ctx.query.get("encoding-type") {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("url") => Ok(true),
        Some(v) => Err(S3Error::msg(
            Code::InvalidArgument,
            "Invalid Encoding Method specified in Request",
        )
        .detail("ArgumentName", "encoding-type")
        .detail("ArgumentValue", v)),
    }
}

fn delimiter(ctx: &Ctx) -> Option<String> {
    ctx.query
        .get("delimiter")
        .filter(|d| !d.is_empty())
        .map(str::to_string)
}

struct Page {
    listing: Listing,
    prefix: String,
    delimiter: Option<String>,
    max_keys: usize,
    url: bool,
}

async fn list_page(ctx: &Ctx, after: Option<String>, max_name: &str) -> Result<Page, S3Error> {
    let prefix = ctx.query.get("prefix").unwrap_or("").to_string();
    let delimiter = delimiter(ctx);
    let max_keys = max_keys(ctx, max_name)?;
    let url = encoding(ctx)?;
    let listing = ctx
        .app
        .db
        .list_objects(
            ctx.bucket()?.to_string(),
            ListParams {
                prefix: prefix.clone(),
                delimiter: delimiter.clone(),
                after,
                max_keys,
            },
        )
        .await?;
    Ok(Page {
        listing,
        prefix,
        delimiter,
        max_keys,
        url,
    })
}

impl Page {
    fn enc(&self, s: &str) -> String {
        if self.url {
            url_encode(s)
        } else {
            s.to_string()
        }
    }

    fn contents(&self, owner: Option<Owner>) -> Vec<Contents> {
        self.listing
            .entries
            .iter()
            .map(|e| Contents {
                Key: self.enc(&e.key),
                LastModified: iso8601(e.last_modified),
                ETag: format!("\"{}\"", e.etag),
                ChecksumAlgorithm: e.checksum.as_ref().map(|c| c.algorithm.name().to_string()),
                Size: e.size,
                Owner: owner.clone(),
                StorageClass: "STANDARD",
            })
            .collect()
    }

    fn prefixes(&self) -> Vec<CommonPrefix> {
        self.listing
            .common_prefixes
            .iter()
            .map(|p| CommonPrefix {
                Prefix: self.enc(p),
            })
            .collect()
    }
}

/// ListObjects (v1): marker-based.
pub async fn list_objects_v1(ctx: Ctx) -> Result<Response<Body>, S3Error> {
    let marker = ctx.query.get("marker").unwrap_or("").to_string();
    let after = (!marker.is_empty()).then(|| marker.clone());
    let page = list_page(&ctx, after, "max-keys").await?;
    // S3 returns NextMarker only when a delimiter was given.
    let next_marker = if page.listing.is_truncated && page.delimiter.is_some() {
        page.listing.last.as_deref().map(|l| page.enc(l))
    } else {
        None
    };
    xml_response(&ListBucketResultV1 {
        xmlns: xml::NS,
        Name: ctx.bucket()?.to_string(),
        Prefix: page.enc(&page.prefix),
        Marker: page.enc(&marker),
        NextMarker: next_marker,
        MaxKeys: page.max_keys,
        Delimiter: page.delimiter.as_deref().map(|d| page.enc(d)),
        IsTruncated: page.listing.is_truncated,
        EncodingType: page.url.then(|| "url".to_string()),
        Contents: page.contents(Some(owner(&ctx))),
        CommonPrefixes: page.prefixes(),
    })
}

/// ListObjectsV2: continuation tokens are the opaque base64 of the last key returned.
pub async fn list_objects_v2(ctx: Ctx) -> Result<Response<Body>, S3Error> {
    let token = ctx.query.get("continuation-token").map(str::to_string);
    let start_after = ctx.query.get("start-after").map(str::to_string);
    let after = match &token {
        Some(t) => {
            let raw = TOKEN_B64
                .decode(t.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    S3Error::msg(
                        Code::InvalidArgument,
                        "The continuation token provided is incorrect",
                    )
                    .detail("ArgumentName", "continuation-token")
                })?;
            Some(raw)
        }
        None => start_after.clone().filter(|s| !s.is_empty()),
    };
    let page = list_page(&ctx, after, "max-keys").await?;
    let fetch_owner = ctx.query.get("fetch-owner") == Some("true");
    let next = if page.listing.is_truncated {
        page.listing
            .last
            .as_ref()
            .map(|l| TOKEN_B64.encode(l.as_bytes()))
    } else {
        None
    };
    let contents = page.contents(fetch_owner.then(|| owner(&ctx)));
    let prefixes = page.prefixes();
    xml_response(&ListBucketResultV2 {
        xmlns: xml::NS,
        Name: ctx.bucket()?.to_string(),
        Prefix: page.enc(&page.prefix),
        StartAfter: start_after.map(|s| page.enc(&s)),
        ContinuationToken: token,
        NextContinuationToken: next,
        KeyCount: contents.len() + prefixes.len(),
        MaxKeys: page.max_keys,
        Delimiter: page.delimiter.as_deref().map(|d| page.enc(d)),
        IsTruncated: page.listing.is_truncated,
        EncodingType: page.url.then(|| "url".to_string()),
        Contents: contents,
        CommonPrefixes: prefixes,
    })
}

/// ListObjectVersions on an unversioned bucket: the current objects, version `null`.
pub async fn list_object_versions(ctx: Ctx) -> Result<Response<Body>, S3Error> {
    let key_marker = ctx.query.get("key-marker").unwrap_or("").to_string();
    let after = (!key_marker.is_empty()).then(|| key_marker.clone());
    let page = list_page(&ctx, after, "max-keys").await?;
    let owner = owner(&ctx);
    let versions = page
        .listing
        .entries
        .iter()
        .map(|e| Version {
            Key: page.enc(&e.key),
            VersionId: "null",
            IsLatest: true,
            LastModified: iso8601(e.last_modified),
            ETag: format!("\"{}\"", e.etag),
            Size: e.size,
            Owner: owner.clone(),
            StorageClass: "STANDARD",
        })
        .collect();
    let truncated = page.listing.is_truncated;
    xml_response(&ListVersionsResult {
        xmlns: xml::NS,
        Name: ctx.bucket()?.to_string(),
        Prefix: page.enc(&page.prefix),
        KeyMarker: page.enc(&key_marker),
        VersionIdMarker: ctx.query.get("version-id-marker").unwrap_or("").to_string(),
        NextKeyMarker: truncated
            .then(|| page.listing.last.as_deref().map(|l| page.enc(l)))
            .flatten(),
        NextVersionIdMarker: truncated.then_some("null"),
        MaxKeys: page.max_keys,
        Delimiter: page.delimiter.as_deref().map(|d| page.enc(d)),
        IsTruncated: truncated,
        EncodingType: page.url.then(|| "url".to_string()),
        Version: versions,
        CommonPrefixes: page.prefixes(),
    })
}

/// DeleteObjects: up to 1000 keys, optionally quiet.
pub async fn delete_objects(ctx: Ctx, body: Body) -> Result<Response<Body>, S3Error> {
    let bucket = ctx.bucket()?.to_string();
    let bytes = read_small(&ctx, body, MAX_XML_BODY).await?;
    if let Some(md5) = super::ingest::content_md5(&ctx)?
        && crate::md5::Md5::digest(&bytes) != md5
    {
        return Err(S3Error::new(Code::BadDigest));
    }
    let doc: Delete = xml::from_xml(&bytes)?;
    if doc.Object.is_empty() || doc.Object.len() > 1000 {
        return Err(S3Error::new(Code::MalformedXML));
    }
    let quiet = doc.Quiet.unwrap_or(false);
    let mut errors = Vec::new();
    let mut keys = Vec::new();
    for o in doc.Object {
        if o.Key.is_empty() || o.Key.len() > super::super::endpoint::MAX_KEY_LEN {
            errors.push(DeleteErrorEntry {
                Key: o.Key,
                Code: Code::KeyTooLongError.as_str(),
                Message: "Invalid key".into(),
            });
        } else if o.VersionId.as_deref().is_some_and(|v| v != "null") {
            errors.push(DeleteErrorEntry {
                Key: o.Key,
                Code: Code::NoSuchKey.as_str(),
                Message: "No such version".into(),
            });
        } else {
            keys.push(o.Key);
        }
    }
    let verdicts = super::super::access::authorize_keys(&ctx, &keys).await?;
    let keys: Vec<String> = keys
        .into_iter()
        .zip(verdicts)
        .filter_map(|(key, v)| match v {
            Ok(()) => Some(key),
            Err(denied) => {
                errors.push(DeleteErrorEntry {
                    Key: key,
                    Code: Code::AccessDenied.as_str(),
                    Message: denied.0,
                });
                None
            }
        })
        .collect();
    let rules = super::super::zones::zone_rules(&ctx)?;
    let outcomes = ctx
        .app
        .db
        .delete_objects(bucket, keys.clone(), rules)
        .await?;
    let mut deleted = Vec::new();
    for (key, o) in keys.into_iter().zip(outcomes) {
        if let Some(m) = o.denied {
            errors.push(DeleteErrorEntry {
                Key: key,
                Code: Code::AccessDenied.as_str(),
                Message: m,
            });
            continue;
        }
        ctx.app.blobs.delete_later(o.blobs);
        if !quiet {
            deleted.push(DeletedEntry { Key: key });
        }
    }
    xml_response(&DeleteResult {
        xmlns: xml::NS,
        Deleted: deleted,
        Error: errors,
    })
}
