//! Multipart uploads: create, upload (and copy) parts, complete, abort, list.

use axum::body::Body;
use http::{Response, StatusCode, header};

use super::super::Ctx;
use super::super::body::read_small;
use super::super::checksum;
use super::super::error::{Code, S3Error};
use super::super::range;
use super::super::xml::{self, *};
use super::ingest;
use super::object::{
    check_copy_preconditions, copy_bytes, copy_source, open_object, write_condition,
};
use super::{MAX_XML_BODY, empty, iso8601, owner, uncancellable, url_encode, xml_response};
use crate::meta::{
    Checksum, ChecksumAlgorithm, ChecksumType, CompletePart, CompleteRequest, ObjectMeta, PartRow,
    Segment, Upload, UploadList, now_millis,
};

fn upload_id(ctx: &Ctx) -> Result<String, S3Error> {
    ctx.query
        .get("uploadId")
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .ok_or_else(|| S3Error::new(Code::NoSuchUpload))
}

fn part_number(ctx: &Ctx) -> Result<u32, S3Error> {
    ctx.query
        .get("partNumber")
        .and_then(|p| p.parse::<u32>().ok())
        .filter(|n| (1..=10000).contains(n))
        .ok_or_else(|| {
            S3Error::msg(
                Code::InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive",
            )
            .detail("ArgumentName", "partNumber")
        })
}

/// Part checksums are stored as `ALGORITHM:base64`.
fn encode_part_checksum(c: &Option<(ChecksumAlgorithm, String)>) -> Option<String> {
    c.as_ref().map(|(a, v)| format!("{}:{v}", a.name()))
}

fn decode_part_checksum(s: &Option<String>) -> Option<(ChecksumAlgorithm, String)> {
    let (a, v) = s.as_deref()?.split_once(':')?;
    Some((ChecksumAlgorithm::parse(a)?, v.to_string()))
}

/// CreateMultipartUpload.
pub async fn create(ctx: Ctx) -> Result<Response<Body>, S3Error> {
    let bucket = ctx.bucket()?.to_string();
    let key = ctx.key()?.to_string();
    let headers = ingest::object_headers(&ctx)?;
    let tags = ctx
        .header("x-amz-tagging")
        .map(ingest::parse_tagging_header)
        .transpose()?;
    let algorithm = ctx
        .header("x-amz-checksum-algorithm")
        .map(|a| {
            ChecksumAlgorithm::parse(a.trim()).ok_or_else(|| {
                S3Error::msg(Code::InvalidRequest, "Checksum algorithm is not supported")
            })
        })
        .transpose()?;
    let checksum_type = checksum_type(&ctx, algorithm)?;
    let id = format!(
        "{:032x}{:016x}",
        rand::random::<u128>(),
        rand::random::<u64>()
    );
    ctx.app
        .db
        .create_upload(
            bucket.clone(),
            Upload {
                id: id.clone(),
                key: key.clone(),
                created_at: now_millis(),
                headers,
                checksum_algorithm: algorithm,
                checksum_type,
                tags,
            },
        )
        .await?;
    let mut resp = xml_response(&InitiateMultipartUploadResult {
        xmlns: xml::NS,
        Bucket: bucket,
        Key: key,
        UploadId: id,
    })?;
    if let (Some(a), Some(t)) = (algorithm, checksum_type) {
        let h = resp.headers_mut();
        h.insert(
            "x-amz-checksum-algorithm",
            http::HeaderValue::from_static(a.name()),
        );
        h.insert(
            "x-amz-checksum-type",
            http::HeaderValue::from_static(t.name()),
        );
    }
    Ok(resp)
}

/// The checksum type of a new upload: `x-amz-checksum-type`, else S3's default for the
/// algorithm (FULL_OBJECT for CRC64NVME, COMPOSITE for the others). SHA digests cannot
/// be combined, so they cannot be FULL_OBJECT.
fn checksum_type(
    ctx: &Ctx,
    algorithm: Option<ChecksumAlgorithm>,
) -> Result<Option<ChecksumType>, S3Error> {
    let asked = match ctx.header("x-amz-checksum-type").map(str::trim) {
        None => None,
        Some(t) if t.eq_ignore_ascii_case("FULL_OBJECT") => Some(ChecksumType::FullObject),
        Some(t) if t.eq_ignore_ascii_case("COMPOSITE") => Some(ChecksumType::Composite),
        Some(t) => {
            return Err(S3Error::msg(
                Code::InvalidRequest,
                format!("Value for x-amz-checksum-type header is invalid: {t}"),
            ));
        }
    };
    let Some(algorithm) = algorithm else {
        return match asked {
            None => Ok(None),
            Some(_) => Err(S3Error::msg(
                Code::InvalidRequest,
                "x-amz-checksum-type requires x-amz-checksum-algorithm",
            )),
        };
    };
    let kind = match (algorithm, asked) {
        (ChecksumAlgorithm::Crc64Nvme, Some(ChecksumType::Composite)) => {
            return Err(S3Error::msg(
                Code::InvalidRequest,
                "The COMPOSITE checksum type cannot be used with the crc64nvme checksum algorithm.",
            ));
        }
        (ChecksumAlgorithm::Sha1 | ChecksumAlgorithm::Sha256, Some(ChecksumType::FullObject)) => {
            return Err(S3Error::msg(
                Code::InvalidRequest,
                format!(
                    "The FULL_OBJECT checksum type cannot be used with the {} checksum algorithm.",
                    algorithm.name().to_ascii_lowercase()
                ),
            ));
        }
        (ChecksumAlgorithm::Crc64Nvme, None) => ChecksumType::FullObject,
        (_, Some(t)) => t,
        (_, None) => ChecksumType::Composite,
    };
    Ok(Some(kind))
}

/// UploadPart.
pub async fn upload_part(ctx: Ctx, body: Body) -> Result<Response<Body>, S3Error> {
    let bucket = ctx.bucket()?.to_string();
    let key = ctx.key()?.to_string();
    let id = upload_id(&ctx)?;
    let n = part_number(&ctx)?;
    let upload = ctx
        .app
        .db
        .upload(bucket.clone(), key.clone(), id.clone())
        .await?;
    let mut want = ingest::checksum_request(&ctx)?;
    if want.algorithm.is_none() {
        want.algorithm = upload.checksum_algorithm;
    }
    let got = ingest::ingest(&ctx, body, &want).await?;
    let etag = got.md5_hex.clone();
    let checksum = got.checksum.clone();
    record_part(
        &ctx,
        bucket,
        key,
        id,
        n,
        got.blob,
        etag.clone(),
        checksum.clone(),
    )
    .await?;
    let mut b = Response::builder()
        .status(StatusCode::OK)
        .header(header::ETAG, format!("\"{etag}\""));
    if let Some((a, v)) = &checksum {
        b = b.header(a.header(), v.as_str());
    }
    b.body(Body::empty()).map_err(S3Error::internal)
}

#[allow(clippy::too_many_arguments)]
async fn record_part(
    ctx: &Ctx,
    bucket: String,
    key: String,
    id: String,
    n: u32,
    blob: crate::storage::PublishedBlob,
    etag: String,
    checksum: Option<(ChecksumAlgorithm, String)>,
) -> Result<i64, S3Error> {
    let last_modified = now_millis();
    let app = ctx.app.clone();
    uncancellable(async move {
        let part = PartRow {
            part_number: n,
            blob: blob.id().to_string(),
            size: blob.size,
            etag,
            last_modified,
            checksum: encode_part_checksum(&checksum),
        };
        let old = app.db.put_part(bucket, key, id, part).await?;
        blob.keep();
        if let Some(old) = old {
            app.blobs.delete_later(vec![old]);
        }
        Ok(())
    })
    .await?;
    Ok(last_modified)
}

/// UploadPartCopy, with an optional `x-amz-copy-source-range`.
pub async fn upload_part_copy(ctx: Ctx) -> Result<Response<Body>, S3Error> {
    let bucket = ctx.bucket()?.to_string();
    let key = ctx.key()?.to_string();
    let id = upload_id(&ctx)?;
    let n = part_number(&ctx)?;
    let upload = ctx
        .app
        .db
        .upload(bucket.clone(), key.clone(), id.clone())
        .await?;
    let (src_bucket, src_key) = copy_source(&ctx)?;
    let (read, files) = open_object(&ctx, &src_bucket, &src_key).await?;
    let obj = &read.meta;
    check_copy_preconditions(&ctx, obj)?;
    let (start, len) = match ctx.header("x-amz-copy-source-range") {
        None => (0, obj.size),
        Some(r) => {
            let spec = match range::parse(r) {
                Some(range::RangeSpec::FromTo(a, b)) => (a, b),
                _ => {
                    return Err(S3Error::msg(
                        Code::InvalidArgument,
                        "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy",
                    ));
                }
            };
            if spec.1 >= obj.size {
                return Err(S3Error::msg(
                    Code::InvalidArgument,
                    format!(
                        "Range specified is not valid for source object of size: {}",
                        obj.size
                    ),
                ));
            }
            (spec.0, spec.1 - spec.0 + 1)
        }
    };
    let (blob, digests) = copy_bytes(&ctx, files, start, len, upload.checksum_algorithm).await?;
    let etag = hex::encode(digests.md5);
    let last_modified = record_part(
        &ctx,
        bucket,
        key,
        id,
        n,
        blob,
        etag.clone(),
        digests.checksum,
    )
    .await?;
    xml_response(&CopyPartResult {
        xmlns: xml::NS,
        ETag: format!("\"{etag}\""),
        LastModified: iso8601(last_modified),
    })
}

/// The checksum a part was sent with in CompleteMultipartUpload, if any.
fn given_checksum(p: &CompletedPart) -> Option<(ChecksumAlgorithm, &str)> {
    [
        (ChecksumAlgorithm::Crc32, &p.ChecksumCRC32),
        (ChecksumAlgorithm::Crc32c, &p.ChecksumCRC32C),
        (ChecksumAlgorithm::Crc64Nvme, &p.ChecksumCRC64NVME),
        (ChecksumAlgorithm::Sha1, &p.ChecksumSHA1),
        (ChecksumAlgorithm::Sha256, &p.ChecksumSHA256),
    ]
    .into_iter()
    .find_map(|(a, v)| v.as_deref().map(|v| (a, v)))
}

/// Builds the completed object's row from its parts: no byte is copied, the parts'
/// blobs become the object's segments.
fn build_object(
    key: &str,
    upload: &Upload,
    parts: &[PartRow],
    full_object: bool,
) -> Result<ObjectMeta, crate::meta::Error> {
    let mut md5s = crate::md5::Md5::new();
    for p in parts {
        let raw = hex::decode(&p.etag).map_err(|e| crate::meta::Error::Corrupt(e.to_string()))?;
        md5s.update(&raw);
    }
    let etag = format!("{}-{}", hex::encode(md5s.finalize()), parts.len());
    let decoded: Vec<_> = parts
        .iter()
        .map(|p| decode_part_checksum(&p.checksum))
        .collect();
    let algorithm = upload
        .checksum_algorithm
        .or_else(|| decoded.first().cloned().flatten().map(|(a, _)| a));
    let checksum = algorithm.and_then(|a| {
        let values: Vec<Option<String>> = decoded
            .iter()
            .map(|d| {
                d.as_ref()
                    .filter(|(pa, _)| *pa == a)
                    .map(|(_, v)| v.clone())
            })
            .collect();
        let use_full = full_object
            || a == ChecksumAlgorithm::Crc64Nvme
            || upload.checksum_type == Some(ChecksumType::FullObject);
        if use_full {
            let sized: Vec<_> = values
                .into_iter()
                .zip(parts.iter().map(|p| p.size))
                .collect();
            checksum::combined_crc(a, &sized).map(|value| Checksum {
                algorithm: a,
                value,
                kind: ChecksumType::FullObject,
            })
        } else {
            checksum::composite(a, &values).map(|value| Checksum {
                algorithm: a,
                value,
                kind: ChecksumType::Composite,
            })
        }
    });
    Ok(ObjectMeta {
        key: key.to_string(),
        size: parts.iter().map(|p| p.size).sum(),
        etag,
        last_modified: now_millis(),
        segments: parts
            .iter()
            .map(|p| Segment {
                blob: p.blob.clone(),
                size: p.size,
            })
            .collect(),
        inline: false,
        parts_count: Some(parts.len() as u32),
        headers: upload.headers.clone(),
        checksum,
        tags: upload.tags.clone(),
    })
}

/// CompleteMultipartUpload.
pub async fn complete(ctx: Ctx, body: Body) -> Result<Response<Body>, S3Error> {
    let bucket = ctx.bucket()?.to_string();
    let key = ctx.key()?.to_string();
    let id = upload_id(&ctx)?;
    let bytes = read_small(&ctx, body, MAX_XML_BODY).await?;
    let doc: CompleteMultipartUpload = xml::from_xml(&bytes)?;
    if doc.Part.is_empty() {
        return Err(S3Error::msg(
            Code::MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema",
        ));
    }
    let cond = write_condition(&ctx)?;
    let full_object = ctx
        .header("x-amz-checksum-type")
        .is_some_and(|t| t.eq_ignore_ascii_case("FULL_OBJECT"));
    let given: Vec<Option<(ChecksumAlgorithm, String)>> = doc
        .Part
        .iter()
        .map(|p| given_checksum(p).map(|(a, v)| (a, v.to_string())))
        .collect();
    let requested: Vec<CompletePart> = doc
        .Part
        .into_iter()
        .map(|p| CompletePart {
            part_number: p.PartNumber,
            etag: p.ETag,
        })
        .collect();
    let key2 = key.clone();
    let app = ctx.app.clone();
    let req = CompleteRequest {
        bucket: bucket.clone(),
        key: key.clone(),
        upload_id: id,
        parts: requested,
        min_part_size: ctx.app.settings.s3.min_part_size,
        cond,
        rules: super::super::zones::zone_rules(&ctx)?,
    };
    let build = move |upload: &crate::meta::Upload, parts: &[PartRow]| {
        for (p, g) in parts.iter().zip(&given) {
            if let Some((a, v)) = g
                && decode_part_checksum(&p.checksum).as_ref() != Some(&(*a, v.clone()))
            {
                return Err(crate::meta::Error::InvalidPart(format!(
                    "part {} checksum does not match",
                    p.part_number
                )));
            }
        }
        build_object(&key2, upload, parts, full_object)
    };
    let obj = uncancellable(async move {
        let (obj, stale) = app.db.complete_upload(req, build).await?;
        app.blobs.delete_later(stale);
        Ok(obj)
    })
    .await?;
    let mut resp = xml_response(
        &CompleteMultipartUploadResult {
            xmlns: xml::NS,
            Location: format!("/{bucket}/{}", url_encode(&key)),
            Bucket: bucket,
            Key: key,
            ETag: obj.quoted_etag(),
            ..Default::default()
        }
        .with_checksum(obj.checksum.as_ref()),
    )?;
    if let Ok(v) = http::HeaderValue::from_str(&obj.quoted_etag()) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(resp)
}

/// AbortMultipartUpload.
pub async fn abort(ctx: Ctx) -> Result<Response<Body>, S3Error> {
    let blobs = ctx
        .app
        .db
        .abort_upload(
            ctx.bucket()?.to_string(),
            ctx.key()?.to_string(),
            upload_id(&ctx)?,
        )
        .await?;
    ctx.app.blobs.delete_later(blobs);
    empty(StatusCode::NO_CONTENT)
}

/// ListParts.
pub async fn list_parts(ctx: Ctx) -> Result<Response<Body>, S3Error> {
    let bucket = ctx.bucket()?.to_string();
    let key = ctx.key()?.to_string();
    let id = upload_id(&ctx)?;
    let marker: u32 = ctx
        .query
        .get("part-number-marker")
        .map(|m| {
            m.parse()
                .map_err(|_| S3Error::msg(Code::InvalidArgument, "invalid part-number-marker"))
        })
        .transpose()?
        .unwrap_or(0);
    let max_parts: usize = ctx
        .query
        .get("max-parts")
        .map(|m| {
            m.parse()
                .map_err(|_| S3Error::msg(Code::InvalidArgument, "invalid max-parts"))
        })
        .transpose()?
        .unwrap_or(1000)
        .min(1000);
    let (upload, parts) = ctx
        .app
        .db
        .list_parts(bucket.clone(), key.clone(), id.clone())
        .await?;
    let after: Vec<&PartRow> = parts.iter().filter(|p| p.part_number > marker).collect();
    let truncated = after.len() > max_parts;
    let page: Vec<&PartRow> = after.into_iter().take(max_parts).collect();
    let owner = owner(&ctx);
    xml_response(&ListPartsResult {
        xmlns: xml::NS,
        Bucket: bucket,
        Key: key,
        UploadId: id,
        Initiator: owner.clone(),
        Owner: owner,
        StorageClass: "STANDARD",
        PartNumberMarker: marker,
        NextPartNumberMarker: page.last().map(|p| p.part_number),
        MaxParts: max_parts,
        IsTruncated: truncated,
        ChecksumAlgorithm: upload.checksum_algorithm.map(|a| a.name()),
        Part: page
            .into_iter()
            .map(|p| {
                PartEntry {
                    PartNumber: p.part_number,
                    LastModified: iso8601(p.last_modified),
                    ETag: format!("\"{}\"", p.etag),
                    Size: p.size,
                    ..Default::default()
                }
                .with_checksum(
                    decode_part_checksum(&p.checksum)
                        .map(|(algorithm, value)| Checksum {
                            algorithm,
                            value,
                            kind: ChecksumType::Composite,
                        })
                        .as_ref(),
                )
            })
            .collect(),
    })
}

/// ListMultipartUploads.
pub async fn list_uploads(ctx: Ctx) -> Result<Response<Body>, S3Error> {
    let bucket = ctx.bucket()?.to_string();
    let max_uploads: usize = ctx
        .query
        .get("max-uploads")
        .map(|m| {
            m.parse()
                .map_err(|_| S3Error::msg(Code::InvalidArgument, "invalid max-uploads"))
        })
        .transpose()?
        .unwrap_or(1000)
        .min(1000);
    let url = ctx
        .query
        .get("encoding-type")
        .is_some_and(|e| e.eq_ignore_ascii_case("url"));
    let enc = |s: &str| if url { url_encode(s) } else { s.to_string() };
    let params = UploadList {
        prefix: ctx.query.get("prefix").unwrap_or("").to_string(),
        delimiter: ctx
            .query
            .get("delimiter")
            .filter(|d| !d.is_empty())
            .map(str::to_string),
        key_marker: ctx
            .query
            .get("key-marker")
            .filter(|m| !m.is_empty())
            .map(str::to_string),
        upload_id_marker: ctx
            .query
            .get("upload-id-marker")
            .filter(|m| !m.is_empty())
            .map(str::to_string),
        max_uploads,
    };
    let listing = ctx
        .app
        .db
        .list_uploads(bucket.clone(), params.clone())
        .await?;
    let owner = owner(&ctx);
    let (next_key, next_id) = if listing.is_truncated {
        match listing.uploads.last() {
            Some(u) => (Some(enc(&u.key)), Some(u.id.clone())),
            None => (None, None),
        }
    } else {
        (None, None)
    };
    xml_response(&ListMultipartUploadsResult {
        xmlns: xml::NS,
        Bucket: bucket,
        KeyMarker: enc(params.key_marker.as_deref().unwrap_or("")),
        UploadIdMarker: params.upload_id_marker.clone().unwrap_or_default(),
        NextKeyMarker: next_key,
        NextUploadIdMarker: next_id,
        Prefix: enc(&params.prefix),
        Delimiter: params.delimiter.as_deref().map(enc),
        MaxUploads: max_uploads,
        IsTruncated: listing.is_truncated,
        EncodingType: url.then(|| "url".to_string()),
        Upload: listing
            .uploads
            .into_iter()
            .map(|u| UploadEntry {
                Key: enc(&u.key),
                UploadId: u.id,
                Initiator: owner.clone(),
                Owner: owner.clone(),
                StorageClass: "STANDARD",
                Initiated: iso8601(u.created_at),
                ChecksumAlgorithm: u.checksum_algorithm.map(|a| a.name()),
            })
            .collect(),
        CommonPrefixes: listing
            .common_prefixes
            .into_iter()
            .map(|p| CommonPrefix { Prefix: enc(&p) })
            .collect(),
    })
}
