//! Datasets: registration, lookup, filtered listing, update, removal.
//!
//! A dataset is a bucket plus a key prefix. Within a bucket, prefixes never overlap
//! (neither is a prefix of the other), which makes "the dataset of an object" a single
//! indexed lookup and keeps the live counters of `meta::stats` exact.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{Error, governance, search};
use crate::meta::{self, Db, Zone, stats};

/// Data formats the crawler understands.
pub const FORMATS: [&str; 3] = ["csv", "jsonl", "parquet"];

/// A request to register a dataset.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDataset {
    /// Unique within the zone: letters, digits, `_`, `-`, `.`; 1 to 128 bytes.
    pub name: String,
    /// The bucket holding the data; its zone is the dataset's zone.
    pub bucket: String,
    /// Key prefix of the data. A non-empty prefix is normalized to end with `/`.
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub description: String,
    /// Defaults to the caller's access key id.
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Free metadata (a JSON object).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// `csv`, `jsonl` or `parquet`; the crawler detects it when absent.
    #[serde(default)]
    pub format: Option<String>,
}

/// Deserializes a present field (even `null`) as `Some(..)`, so that PATCH can tell
/// "set to null" from "absent".
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A partial update; absent fields are unchanged. `tags` and `metadata` replace
/// the whole map. Changing `bucket`/`prefix` moves the dataset (its statistics
/// follow; the objects are not touched).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DatasetPatch {
    pub name: Option<String>,
    pub bucket: Option<String>,
    pub prefix: Option<String>,
    pub description: Option<String>,
    pub owner: Option<String>,
    pub tags: Option<BTreeMap<String, String>>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// A format, or `null` to clear it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub format: Option<Option<String>>,
}

/// Live statistics of the objects under the dataset's prefix.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DatasetStatsView {
    pub object_count: u64,
    pub total_bytes: u64,
    /// RFC 3339 time of the oldest object, if any.
    pub first_modified: Option<String>,
    /// RFC 3339 time of the newest object, if any.
    pub last_modified: Option<String>,
}

/// A dataset as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Dataset {
    pub id: i64,
    pub name: String,
    pub zone: Zone,
    pub bucket: String,
    pub prefix: String,
    pub description: String,
    pub owner: String,
    pub tags: BTreeMap<String, String>,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub format: Option<String>,
    /// Latest crawled schema version, if the dataset was crawled.
    pub schema_version: Option<i64>,
    pub stats: DatasetStatsView,
    pub created_at: String,
    pub updated_at: String,
}

/// Filters of `GET /datasets`.
#[derive(Debug, Clone, Default)]
pub struct DatasetFilter {
    pub zone: Option<Zone>,
    pub bucket: Option<String>,
    pub owner: Option<String>,
    pub format: Option<String>,
    /// Every `(key, value)` must be a tag of the dataset.
    pub tags: Vec<(String, String)>,
    /// Only ids greater than this (the cursor).
    pub after: Option<i64>,
    pub limit: usize,
    /// What the caller may read (filtering happens in SQL, before paging).
    pub visibility: crate::authz::Visibility,
}

/// A page of datasets.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Page {
    pub datasets: Vec<Dataset>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

fn json_err(e: serde_json::Error) -> meta::Error {
    meta::Error::Corrupt(e.to_string())
}

/// Checks a dataset name.
pub fn validate_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "name",
            "must be 1 to 128 characters of letters, digits, '_', '-' and '.'",
        ))
    }
}

/// Normalizes a prefix: a non-empty one ends with `/`.
pub fn normalize_prefix(prefix: &str) -> Result<String, Error> {
    if prefix.len() > 1000 {
        return Err(Error::invalid("prefix", "must be at most 1000 bytes"));
    }
    if prefix.starts_with('/') {
        return Err(Error::invalid("prefix", "must not start with '/'"));
    }
    if prefix.is_empty() || prefix.ends_with('/') {
        Ok(prefix.to_string())
    } else {
        Ok(format!("{prefix}/"))
    }
}

fn validate_tags(tags: &BTreeMap<String, String>) -> Result<(), Error> {
    if tags.len() > 50 {
        return Err(Error::invalid("tags", "at most 50 tags"));
    }
    for (k, v) in tags {
        if k.is_empty() || k.len() > 128 || k.contains('=') {
            return Err(Error::invalid(
                format!("tags.{k}"),
                "tag keys are 1 to 128 bytes without '='",
            ));
        }
        if v.len() > 256 {
            return Err(Error::invalid(
                format!("tags.{k}"),
                "tag values are at most 256 bytes",
            ));
        }
    }
    Ok(())
}

fn validate_format(format: Option<&str>) -> Result<(), Error> {
    match format {
        Some(f) if !FORMATS.contains(&f) => Err(Error::invalid(
            "format",
            format!("must be one of {}", FORMATS.join(", ")),
        )),
        _ => Ok(()),
    }
}

fn validate_owner(owner: &str) -> Result<(), Error> {
    if owner.is_empty() || owner.len() > 256 {
        return Err(Error::invalid("owner", "must be 1 to 256 bytes"));
    }
    Ok(())
}

/// The id of a dataset in `bucket_id` whose prefix overlaps `prefix`, other than `except`.
fn overlapping(
    conn: &Connection,
    bucket_id: i64,
    prefix: &str,
    except: Option<i64>,
) -> Result<Option<(i64, String)>, meta::Error> {
    let except = except.unwrap_or(-1);
    // A prefix of ours: the greatest prefix <= ours, if it is a prefix of ours (see
    // meta::stats for why one candidate suffices).
    let below: Option<(i64, String)> = conn
        .prepare_cached(
            "SELECT id, prefix FROM datasets WHERE bucket_id = ?1 AND prefix <= ?2 AND id != ?3
             ORDER BY prefix DESC LIMIT 1",
        )?
        .query_row(params![bucket_id, prefix, except], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    if let Some((id, p)) = below
        && prefix.starts_with(&p)
    {
        return Ok(Some((id, p)));
    }
    // One that ours is a prefix of: the smallest prefix >= ours.
    let above: Option<(i64, String)> = conn
        .prepare_cached(
            "SELECT id, prefix FROM datasets WHERE bucket_id = ?1 AND prefix >= ?2 AND id != ?3
             ORDER BY prefix LIMIT 1",
        )?
        .query_row(params![bucket_id, prefix, except], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    Ok(above.filter(|(_, p)| p.starts_with(prefix)))
}

fn name_taken(
    conn: &Connection,
    zone: Zone,
    name: &str,
    except: Option<i64>,
) -> Result<bool, meta::Error> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS(SELECT 1 FROM datasets WHERE zone = ?1 AND name = ?2 AND id != ?3)",
        )?
        .query_row(params![zone.as_str(), name, except.unwrap_or(-1)], |r| {
            r.get(0)
        })?)
}

const DATASET_SELECT: &str = "SELECT d.id, d.name, d.zone, b.name, d.prefix, d.description,
        d.owner, d.format, d.tags, d.metadata, d.created_at, d.updated_at,
        s.object_count, s.total_bytes, s.first_modified, s.last_modified,
        (SELECT MAX(version) FROM dataset_schemas v WHERE v.dataset_id = d.id)
     FROM datasets d JOIN buckets b ON b.id = d.bucket_id
     LEFT JOIN dataset_stats s ON s.dataset_id = d.id";

fn row_to_dataset(r: &rusqlite::Row<'_>) -> Result<Dataset, meta::Error> {
    let zone: String = r.get(2)?;
    let tags: String = r.get(8)?;
    let metadata: String = r.get(9)?;
    let first: Option<i64> = r.get(14)?;
    let last: Option<i64> = r.get(15)?;
    Ok(Dataset {
        id: r.get(0)?,
        name: r.get(1)?,
        zone: Zone::parse(&zone).ok_or_else(|| meta::Error::Corrupt(format!("zone {zone}")))?,
        bucket: r.get(3)?,
        prefix: r.get(4)?,
        description: r.get(5)?,
        owner: r.get(6)?,
        format: r.get(7)?,
        tags: serde_json::from_str(&tags).map_err(json_err)?,
        metadata: serde_json::from_str(&metadata).map_err(json_err)?,
        created_at: super::rfc3339(r.get(10)?),
        updated_at: super::rfc3339(r.get(11)?),
        stats: DatasetStatsView {
            object_count: r.get::<_, Option<i64>>(12)?.unwrap_or(0).max(0) as u64,
            total_bytes: r.get::<_, Option<i64>>(13)?.unwrap_or(0).max(0) as u64,
            first_modified: first.map(super::rfc3339),
            last_modified: last.map(super::rfc3339),
        },
        schema_version: r.get(16)?,
    })
}

/// Reads one dataset inside an open connection.
pub fn dataset_in(conn: &Connection, id: i64) -> Result<Option<Dataset>, meta::Error> {
    let mut stmt = conn.prepare_cached(&format!("{DATASET_SELECT} WHERE d.id = ?1"))?;
    let mut rows = stmt.query([id])?;
    match rows.next()? {
        Some(r) => Ok(Some(row_to_dataset(r)?)),
        None => Ok(None),
    }
}

/// Loads datasets by id, in the given order (missing ids are skipped).
pub fn datasets_by_ids(conn: &Connection, ids: &[i64]) -> Result<Vec<Dataset>, meta::Error> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(d) = dataset_in(conn, *id)? {
            out.push(d);
        }
    }
    Ok(out)
}

fn not_found(id: i64) -> Error {
    Error::NotFound(format!("dataset {id} does not exist"))
}

/// Refreshes stale time bounds of datasets (after deletes removed the oldest or
/// newest object); a no-op for the usual case.
async fn refresh_stale(db: &Db, ids: Vec<i64>) -> Result<(), Error> {
    let stale: Vec<i64> = db
        .read(move |conn| {
            let mut out = Vec::new();
            for id in ids {
                let stale: Option<bool> = conn
                    .prepare_cached("SELECT bounds_stale FROM dataset_stats WHERE dataset_id = ?1")?
                    .query_row([id], |r| r.get(0))
                    .optional()?;
                if stale == Some(true) {
                    out.push(id);
                }
            }
            Ok(out)
        })
        .await?;
    if stale.is_empty() {
        return Ok(());
    }
    db.write(move |conn| {
        for id in stale {
            stats::refresh_bounds(conn, id)?;
        }
        Ok(())
    })
    .await?;
    Ok(())
}

/// Registers a dataset.
pub async fn create(db: &Db, req: NewDataset, caller: &str) -> Result<Dataset, Error> {
    validate_name(&req.name)?;
    let prefix = normalize_prefix(&req.prefix)?;
    validate_tags(&req.tags)?;
    validate_format(req.format.as_deref())?;
    let owner = req.owner.clone().unwrap_or_else(|| caller.to_string());
    validate_owner(&owner)?;
    if req.description.len() > 16 * 1024 {
        return Err(Error::invalid("description", "must be at most 16 KiB"));
    }
    let tags = serde_json::to_string(&req.tags).map_err(json_err)?;
    let metadata = serde_json::to_string(&req.metadata).map_err(json_err)?;
    let id = db
        .write(move |conn| -> Result<Result<i64, Error>, meta::Error> {
            // Every check first: a rejected request writes nothing.
            let bucket = match meta::zones::bucket_info_in(conn, &req.bucket) {
                Ok(b) => b,
                Err(meta::Error::NoSuchBucket) => {
                    return Ok(Err(Error::NotFound(format!(
                        "bucket {:?} does not exist",
                        req.bucket
                    ))));
                }
                Err(e) => return Err(e),
            };
            if name_taken(conn, bucket.zone, &req.name, None)? {
                return Ok(Err(Error::Conflict(format!(
                    "a dataset named {:?} already exists in zone {}",
                    req.name, bucket.zone
                ))));
            }
            if let Some((other, p)) = overlapping(conn, bucket.id, &prefix, None)? {
                return Ok(Err(Error::Conflict(format!(
                    "prefix {prefix:?} overlaps prefix {p:?} of dataset {other} in bucket {}",
                    bucket.name
                ))));
            }
            if let Err(e) = governance::load(conn)?.check(bucket.zone, &req.name, &req.tags) {
                return Ok(Err(e));
            }
            let now = meta::now_millis();
            conn.prepare_cached(
                "INSERT INTO datasets (name, zone, bucket_id, prefix, description, owner, format,
                     tags, metadata, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
            )?
            .execute(params![
                req.name,
                bucket.zone.as_str(),
                bucket.id,
                prefix,
                req.description,
                owner,
                req.format,
                tags,
                metadata,
                now
            ])?;
            let id = conn.last_insert_rowid();
            for (k, v) in &req.tags {
                conn.prepare_cached(
                    "INSERT INTO dataset_tags (dataset_id, key, value) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![id, k, v])?;
            }
            stats::init_dataset_stats(conn, id, bucket.id, &prefix)?;
            search::index(conn, id)?;
            Ok(Ok(id))
        })
        .await??;
    get(db, id).await
}

/// Reads one dataset (with fresh statistics).
pub async fn get(db: &Db, id: i64) -> Result<Dataset, Error> {
    refresh_stale(db, vec![id]).await?;
    db.read(move |conn| dataset_in(conn, id))
        .await?
        .ok_or_else(|| not_found(id))
}

/// Lists datasets matching `f`, by id, one page at a time.
pub async fn list(db: &Db, f: DatasetFilter) -> Result<Page, Error> {
    let limit = f.limit.clamp(1, 1000);
    let ids: Vec<i64> = db
        .read(move |conn| {
            let mut sql = String::from(
                "SELECT d.id FROM datasets d JOIN buckets b ON b.id = d.bucket_id WHERE d.id > ?",
            );
            let mut args: Vec<rusqlite::types::Value> = vec![f.after.unwrap_or(0).into()];
            if let Some(z) = f.zone {
                sql.push_str(" AND d.zone = ?");
                args.push(z.as_str().to_string().into());
            }
            if let Some(b) = &f.bucket {
                sql.push_str(" AND b.name = ?");
                args.push(b.clone().into());
            }
            if let Some(o) = &f.owner {
                sql.push_str(" AND d.owner = ?");
                args.push(o.clone().into());
            }
            if let Some(fm) = &f.format {
                sql.push_str(" AND d.format = ?");
                args.push(fm.clone().into());
            }
            if let Some(cond) = f.visibility.sql(&mut args) {
                sql.push_str(" AND ");
                sql.push_str(&cond);
            }
            for (k, v) in &f.tags {
                sql.push_str(
                    " AND EXISTS (SELECT 1 FROM dataset_tags t WHERE t.dataset_id = d.id
                      AND t.key = ? AND t.value = ?)",
                );
                args.push(k.clone().into());
                args.push(v.clone().into());
            }
            sql.push_str(" ORDER BY d.id LIMIT ?");
            args.push(((limit + 1) as i64).into());
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| r.get(0))?;
            Ok(rows.collect::<Result<Vec<i64>, _>>()?)
        })
        .await?;
    let more = ids.len() > limit;
    let ids: Vec<i64> = ids.into_iter().take(limit).collect();
    refresh_stale(db, ids.clone()).await?;
    let next_cursor = if more {
        ids.last().map(|id| id.to_string())
    } else {
        None
    };
    let datasets = db.read(move |conn| datasets_by_ids(conn, &ids)).await?;
    Ok(Page {
        datasets,
        next_cursor,
    })
}

/// Applies a partial update.
pub async fn update(db: &Db, id: i64, patch: DatasetPatch) -> Result<Dataset, Error> {
    if let Some(n) = &patch.name {
        validate_name(n)?;
    }
    let prefix = patch.prefix.as_deref().map(normalize_prefix).transpose()?;
    if let Some(t) = &patch.tags {
        validate_tags(t)?;
    }
    if let Some(f) = &patch.format {
        validate_format(f.as_deref())?;
    }
    if let Some(o) = &patch.owner {
        validate_owner(o)?;
    }
    db.write(move |conn| -> Result<Result<(), Error>, meta::Error> {
        let Some(cur) = dataset_in(conn, id)? else {
            return Ok(Err(not_found(id)));
        };
        let bucket_name = patch.bucket.clone().unwrap_or(cur.bucket.clone());
        let bucket = match meta::zones::bucket_info_in(conn, &bucket_name) {
            Ok(b) => b,
            Err(meta::Error::NoSuchBucket) => {
                return Ok(Err(Error::NotFound(format!(
                    "bucket {bucket_name:?} does not exist"
                ))));
            }
            Err(e) => return Err(e),
        };
        let name = patch.name.clone().unwrap_or(cur.name.clone());
        let prefix = prefix.clone().unwrap_or(cur.prefix.clone());
        let tags = patch.tags.clone().unwrap_or(cur.tags.clone());
        let moved = bucket.name != cur.bucket || prefix != cur.prefix;
        if (name != cur.name || bucket.zone != cur.zone)
            && name_taken(conn, bucket.zone, &name, Some(id))?
        {
            return Ok(Err(Error::Conflict(format!(
                "a dataset named {name:?} already exists in zone {}",
                bucket.zone
            ))));
        }
        if moved && let Some((other, p)) = overlapping(conn, bucket.id, &prefix, Some(id))? {
            return Ok(Err(Error::Conflict(format!(
                "prefix {prefix:?} overlaps prefix {p:?} of dataset {other} in bucket {}",
                bucket.name
            ))));
        }
        if let Err(e) = governance::load(conn)?.check(bucket.zone, &name, &tags) {
            return Ok(Err(e));
        }
        let description = patch.description.clone().unwrap_or(cur.description);
        let owner = patch.owner.clone().unwrap_or(cur.owner);
        let format = patch.format.clone().unwrap_or(cur.format);
        let metadata = patch.metadata.clone().unwrap_or(cur.metadata);
        conn.prepare_cached(
            "UPDATE datasets SET name = ?2, zone = ?3, bucket_id = ?4, prefix = ?5,
                 description = ?6, owner = ?7, format = ?8, tags = ?9, metadata = ?10,
                 updated_at = ?11
             WHERE id = ?1",
        )?
        .execute(params![
            id,
            name,
            bucket.zone.as_str(),
            bucket.id,
            prefix,
            description,
            owner,
            format,
            serde_json::to_string(&tags).map_err(json_err)?,
            serde_json::to_string(&metadata).map_err(json_err)?,
            meta::now_millis()
        ])?;
        if patch.tags.is_some() {
            conn.prepare_cached("DELETE FROM dataset_tags WHERE dataset_id = ?1")?
                .execute([id])?;
            for (k, v) in &tags {
                conn.prepare_cached(
                    "INSERT INTO dataset_tags (dataset_id, key, value) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![id, k, v])?;
            }
        }
        if moved {
            stats::init_dataset_stats(conn, id, bucket.id, &prefix)?;
        }
        search::index(conn, id)?;
        Ok(Ok(()))
    })
    .await??;
    get(db, id).await
}

/// Checks that binding bucket `bucket` to `zone` keeps every catalog rule (unique
/// names per zone, the target zone's governance rules) for the datasets it holds.
/// Runs inside the write that changes the zone, before it.
pub fn check_zone_move(conn: &Connection, bucket_id: i64, zone: Zone) -> Result<(), Error> {
    let rules = governance::load(conn)?;
    let mut stmt = conn
        .prepare_cached("SELECT id FROM datasets WHERE bucket_id = ?1 ORDER BY id")
        .map_err(meta::Error::from)?;
    let ids = stmt
        .query_map([bucket_id], |r| r.get::<_, i64>(0))
        .map_err(meta::Error::from)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(meta::Error::from)?;
    for id in ids {
        let Some(d) = dataset_in(conn, id)? else {
            continue;
        };
        if d.zone == zone {
            continue;
        }
        let clash: bool = conn
            .prepare_cached(
                "SELECT EXISTS(SELECT 1 FROM datasets WHERE zone = ?1 AND name = ?2
                 AND bucket_id != ?3)",
            )
            .and_then(|mut s| s.query_row(params![zone.as_str(), d.name, bucket_id], |r| r.get(0)))
            .map_err(meta::Error::from)?;
        if clash {
            return Err(Error::Conflict(format!(
                "zone {zone} already has a dataset named {:?}",
                d.name
            )));
        }
        rules.check(zone, &d.name, &d.tags)?;
    }
    Ok(())
}

/// Moves the datasets of a bucket to its new zone (after [`check_zone_move`]).
pub fn apply_zone_move(conn: &Connection, bucket_id: i64, zone: Zone) -> Result<(), meta::Error> {
    conn.prepare_cached("UPDATE datasets SET zone = ?2 WHERE bucket_id = ?1")?
        .execute(params![bucket_id, zone.as_str()])?;
    Ok(())
}

/// Removes a dataset. With `purge`, first deletes every object under its prefix
/// (zone rules apply unless `rules` overrides them). Returns the number of objects
/// deleted.
pub async fn delete(
    db: &Db,
    blobs: &crate::storage::BlobStore,
    id: i64,
    purge: bool,
    rules: meta::ZoneRules,
) -> Result<u64, Error> {
    let d = get(db, id).await?;
    let mut purged = 0u64;
    if purge {
        loop {
            let page = db
                .list_objects(
                    d.bucket.clone(),
                    meta::ListParams {
                        prefix: d.prefix.clone(),
                        delimiter: None,
                        after: None,
                        max_keys: 1000,
                    },
                )
                .await?;
            if page.entries.is_empty() {
                break;
            }
            let keys: Vec<String> = page.entries.into_iter().map(|e| e.key).collect();
            let outcomes = db.delete_objects(d.bucket.clone(), keys, rules).await?;
            for o in outcomes {
                if let Some(m) = o.denied {
                    return Err(Error::Forbidden(m));
                }
                if o.existed {
                    purged += 1;
                }
                blobs.delete_later(o.blobs);
            }
        }
    }
    db.write(move |conn| {
        conn.prepare_cached("DELETE FROM datasets WHERE id = ?1")?
            .execute([id])?;
        search::unindex(conn, id)?;
        Ok(())
    })
    .await?;
    Ok(purged)
}
