//! Multipart uploads and their parts.
//!
//! A part is a blob of its own. Completing an upload writes an object row whose segments
//! are the chosen parts' blobs, in order: no byte is copied, whatever the object's size.

use rusqlite::{Connection, OptionalExtension, params};

use super::buckets::bucket_by_name;
use super::objects::upsert_object;
use super::types::{from_json, to_json};
use super::{
    ChecksumAlgorithm, ChecksumType, Db, Error, ObjectHeaders, ObjectMeta, Tags, WriteCondition,
};

/// An in-progress multipart upload.
#[derive(Debug, Clone)]
pub struct Upload {
    pub id: String,
    pub key: String,
    pub created_at: i64,
    pub headers: ObjectHeaders,
    pub checksum_algorithm: Option<ChecksumAlgorithm>,
    /// Whether the completed object gets a full-object or a composite checksum.
    pub checksum_type: Option<ChecksumType>,
    pub tags: Option<Tags>,
}

/// One uploaded part.
#[derive(Debug, Clone)]
pub struct PartRow {
    pub part_number: u32,
    pub blob: String,
    pub size: u64,
    /// Hex MD5 of the part, without quotes.
    pub etag: String,
    pub last_modified: i64,
    /// Base64 checksum of the part in the upload's algorithm, if any.
    pub checksum: Option<String>,
}

/// A part as named in a CompleteMultipartUpload request.
#[derive(Debug, Clone)]
pub struct CompletePart {
    pub part_number: u32,
    pub etag: String,
}

/// What CompleteMultipartUpload asks for.
#[derive(Debug, Clone)]
pub struct CompleteRequest {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    /// The parts named in the request, in request order.
    pub parts: Vec<CompletePart>,
    /// Smallest allowed size of every part but the last.
    pub min_part_size: u64,
    pub cond: WriteCondition,
    /// Whether the zone rules apply to the completed object.
    pub rules: super::ZoneRules,
}

/// Parameters of ListMultipartUploads.
#[derive(Debug, Clone, Default)]
pub struct UploadList {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub key_marker: Option<String>,
    pub upload_id_marker: Option<String>,
    pub max_uploads: usize,
}

/// A page of ListMultipartUploads.
#[derive(Debug, Default)]
pub struct UploadListing {
    pub uploads: Vec<Upload>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
}

fn row_to_upload(r: &rusqlite::Row<'_>) -> Result<Upload, Error> {
    let headers: String = r.get(3)?;
    let algo: Option<String> = r.get(4)?;
    let tags: Option<String> = r.get(5)?;
    Ok(Upload {
        id: r.get(0)?,
        key: r.get(1)?,
        created_at: r.get(2)?,
        headers: from_json(&headers)?,
        checksum_algorithm: algo.as_deref().and_then(ChecksumAlgorithm::parse),
        checksum_type: match r.get::<_, Option<String>>(6)?.as_deref() {
            Some("FULL_OBJECT") => Some(ChecksumType::FullObject),
            Some("COMPOSITE") => Some(ChecksumType::Composite),
            _ => None,
        },
        tags: tags.as_deref().map(from_json).transpose()?,
    })
}

/// Finds an upload by id, checking it belongs to `bucket`/`key`.
fn upload_in(conn: &Connection, bucket: &str, key: &str, id: &str) -> Result<(i64, Upload), Error> {
    let b = bucket_by_name(conn, bucket)?;
    let mut stmt = conn.prepare_cached(
        "SELECT id, key, created_at, headers, checksum_algorithm, tags, checksum_type FROM uploads
         WHERE id = ?1 AND bucket_id = ?2 AND key = ?3",
    )?;
    let mut rows = stmt.query(params![id, b.id, key])?;
    match rows.next()? {
        Some(r) => Ok((b.id, row_to_upload(r)?)),
        None => Err(Error::NoSuchUpload),
    }
}

fn parts_of(conn: &Connection, upload_id: &str) -> Result<Vec<PartRow>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT part_number, blob, size, etag, last_modified, checksum FROM parts
         WHERE upload_id = ?1 ORDER BY part_number",
    )?;
    let rows = stmt.query_map([upload_id], |r| {
        Ok(PartRow {
            part_number: r.get(0)?,
            blob: r.get(1)?,
            size: r.get::<_, i64>(2)? as u64,
            etag: r.get(3)?,
            last_modified: r.get(4)?,
            checksum: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

fn delete_upload(conn: &Connection, upload_id: &str) -> Result<(), Error> {
    conn.prepare_cached("DELETE FROM parts WHERE upload_id = ?1")?
        .execute([upload_id])?;
    conn.prepare_cached("DELETE FROM uploads WHERE id = ?1")?
        .execute([upload_id])?;
    Ok(())
}

impl Db {
    /// Starts a multipart upload with the given id.
    pub async fn create_upload(&self, bucket: String, upload: Upload) -> Result<(), Error> {
        self.write(move |conn| {
            let b = bucket_by_name(conn, &bucket)?;
            conn.prepare_cached(
                "INSERT INTO uploads
                 (id, bucket_id, key, created_at, headers, checksum_algorithm, tags, checksum_type)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                upload.id,
                b.id,
                upload.key,
                upload.created_at,
                to_json(&upload.headers)?,
                upload.checksum_algorithm.map(|a| a.name()),
                upload.tags.as_ref().map(to_json).transpose()?,
                upload.checksum_type.map(|t| t.name()),
            ])?;
            Ok(())
        })
        .await
    }

    /// Reads an upload, checking it belongs to `bucket`/`key`.
    pub async fn upload(&self, bucket: String, key: String, id: String) -> Result<Upload, Error> {
        self.read(move |conn| Ok(upload_in(conn, &bucket, &key, &id)?.1))
            .await
    }

    /// Records a part (replacing an earlier upload of the same number). Returns the
    /// replaced part's blob, if any.
    pub async fn put_part(
        &self,
        bucket: String,
        key: String,
        upload_id: String,
        part: PartRow,
    ) -> Result<Option<String>, Error> {
        self.write(move |conn| {
            upload_in(conn, &bucket, &key, &upload_id)?;
            let old: Option<String> = conn
                .prepare_cached("SELECT blob FROM parts WHERE upload_id = ?1 AND part_number = ?2")?
                .query_row(params![upload_id, part.part_number], |r| r.get(0))
                .optional()?;
            conn.prepare_cached(
                "INSERT OR REPLACE INTO parts
                 (upload_id, part_number, blob, size, etag, last_modified, checksum)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                upload_id,
                part.part_number,
                part.blob,
                part.size as i64,
                part.etag,
                part.last_modified,
                part.checksum,
            ])?;
            Ok(old)
        })
        .await
    }

    /// The upload and its parts, for ListParts.
    pub async fn list_parts(
        &self,
        bucket: String,
        key: String,
        upload_id: String,
    ) -> Result<(Upload, Vec<PartRow>), Error> {
        self.read(move |conn| {
            let (_, upload) = upload_in(conn, &bucket, &key, &upload_id)?;
            Ok((upload, parts_of(conn, &upload_id)?))
        })
        .await
    }

    /// Completes an upload: validates the requested part list against the stored parts,
    /// lets `build` compute the object row from the chosen parts, and commits it while
    /// removing the upload. Returns the object and the blobs no longer referenced (the
    /// replaced object's and the parts left out).
    pub async fn complete_upload<F>(
        &self,
        req: CompleteRequest,
        build: F,
    ) -> Result<(ObjectMeta, Vec<String>), Error>
    where
        F: FnOnce(&Upload, &[PartRow]) -> Result<ObjectMeta, Error> + Send + 'static,
    {
        let CompleteRequest {
            bucket,
            key,
            upload_id,
            parts: requested,
            min_part_size,
            cond,
            rules,
        } = req;
        self.write(move |conn| {
            let (bucket_id, upload) = upload_in(conn, &bucket, &key, &upload_id)?;
            let stored = parts_of(conn, &upload_id)?;
            if requested.is_empty() {
                return Err(Error::InvalidPart("no parts given".into()));
            }
            let mut chosen = Vec::with_capacity(requested.len());
            let mut last = 0u32;
            for want in &requested {
                if want.part_number <= last {
                    return Err(Error::InvalidPartOrder);
                }
                last = want.part_number;
                let part = stored
                    .iter()
                    .find(|p| p.part_number == want.part_number)
                    .ok_or_else(|| {
                        Error::InvalidPart(format!("part {} was not uploaded", want.part_number))
                    })?;
                let etag = want.etag.trim().trim_matches('"');
                if !etag.eq_ignore_ascii_case(&part.etag) {
                    return Err(Error::InvalidPart(format!(
                        "part {} has a different ETag",
                        want.part_number
                    )));
                }
                chosen.push(part.clone());
            }
            let n = chosen.len();
            for (i, p) in chosen.iter().enumerate() {
                if i + 1 < n && p.size < min_part_size {
                    return Err(Error::EntityTooSmall {
                        part: p.part_number,
                    });
                }
            }
            let obj = build(&upload, &chosen)?;
            let mut unreferenced = upsert_object(conn, bucket_id, &obj, None, &cond, rules)?;
            unreferenced.extend(
                stored
                    .into_iter()
                    .filter(|p| !chosen.iter().any(|c| c.part_number == p.part_number))
                    .map(|p| p.blob),
            );
            delete_upload(conn, &upload_id)?;
            Ok((obj, unreferenced))
        })
        .await
    }

    /// Aborts an upload, returning its parts' blobs.
    pub async fn abort_upload(
        &self,
        bucket: String,
        key: String,
        upload_id: String,
    ) -> Result<Vec<String>, Error> {
        self.write(move |conn| {
            upload_in(conn, &bucket, &key, &upload_id)?;
            let blobs = parts_of(conn, &upload_id)?
                .into_iter()
                .map(|p| p.blob)
                .collect();
            delete_upload(conn, &upload_id)?;
            Ok(blobs)
        })
        .await
    }

    /// Lists in-progress uploads ordered by key, then creation time.
    pub async fn list_uploads(
        &self,
        bucket: String,
        p: UploadList,
    ) -> Result<UploadListing, Error> {
        self.read(move |conn| {
            let b = bucket_by_name(conn, &bucket)?;
            let mut stmt = conn.prepare_cached(
                "SELECT id, key, created_at, headers, checksum_algorithm, tags, checksum_type FROM uploads
                 WHERE bucket_id = ?1 AND key >= ?2 ORDER BY key, created_at, id",
            )?;
            let mut rows = stmt.query(params![b.id, p.prefix])?;
            let mut out = UploadListing::default();
            let delimiter = p.delimiter.as_deref().filter(|d| !d.is_empty());
            let mut passed_marker_upload = p.upload_id_marker.is_none();
            while let Some(r) = rows.next()? {
                let up = row_to_upload(r)?;
                if !up.key.starts_with(&p.prefix) {
                    break;
                }
                if let Some(km) = &p.key_marker {
                    if up.key < *km {
                        continue;
                    }
                    if up.key == *km {
                        // Within the marker key, continue after the marker upload id.
                        match &p.upload_id_marker {
                            None => continue,
                            Some(idm) if !passed_marker_upload => {
                                if up.id == *idm {
                                    passed_marker_upload = true;
                                }
                                continue;
                            }
                            Some(_) => {}
                        }
                    }
                }
                if let Some(d) = delimiter
                    && let Some(idx) = up.key[p.prefix.len()..].find(d)
                {
                    let cp = up.key[..p.prefix.len() + idx + d.len()].to_string();
                    if out.common_prefixes.last() != Some(&cp) {
                        if out.uploads.len() + out.common_prefixes.len() >= p.max_uploads {
                            out.is_truncated = true;
                            break;
                        }
                        out.common_prefixes.push(cp);
                    }
                    continue;
                }
                if out.uploads.len() + out.common_prefixes.len() >= p.max_uploads {
                    out.is_truncated = true;
                    break;
                }
                out.uploads.push(up);
            }
            Ok(out)
        })
        .await
    }

    /// Aborts every upload created before `before` (Unix ms); returns their blobs.
    pub async fn expire_uploads(&self, before: i64) -> Result<(usize, Vec<String>), Error> {
        self.write(move |conn| {
            let ids: Vec<String> = conn
                .prepare("SELECT id FROM uploads WHERE created_at < ?1")?
                .query_map([before], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let mut blobs = Vec::new();
            for id in &ids {
                blobs.extend(parts_of(conn, id)?.into_iter().map(|p| p.blob));
                delete_upload(conn, id)?;
            }
            Ok((ids.len(), blobs))
        })
        .await
    }
}
