//! Live statistics: per-bucket and per-dataset object counts and bytes, kept in step
//! with every object write and delete inside the same transaction.
//!
//! # Why counters and not a range aggregate
//! `SUM(size)` over the `(bucket_id, key)` range of a prefix is exact but costs a scan
//! proportional to the object count (about 100 ms per million objects here), on every
//! read. Counters cost two indexed lookups and one small update per object write and
//! make every read O(1). Oldest/newest modification times cannot be decremented, so a
//! delete of the object that held one marks them stale and the next read recomputes
//! them with one range scan ([`refresh_bounds`]).

use rusqlite::{Connection, OptionalExtension, params};

use super::Error;

/// Size and modification time of an object version, for the counters.
#[derive(Debug, Clone, Copy)]
pub(super) struct Version {
    pub size: i64,
    pub modified: i64,
}

/// The dataset (stats row) whose prefix contains `key`, if any.
fn dataset_for(conn: &Connection, bucket_id: i64, key: &str) -> Result<Option<i64>, Error> {
    let row: Option<(i64, String)> = conn
        .prepare_cached(
            "SELECT dataset_id, prefix FROM dataset_stats
             WHERE bucket_id = ?1 AND prefix <= ?2 ORDER BY prefix DESC LIMIT 1",
        )?
        .query_row(params![bucket_id, key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(row.and_then(|(id, prefix)| key.starts_with(&prefix).then_some(id)))
}

/// Applies one object change (`old` replaced by `new`; either may be absent).
pub(super) fn apply(
    conn: &Connection,
    bucket_id: i64,
    key: &str,
    old: Option<Version>,
    new: Option<Version>,
) -> Result<(), Error> {
    let dcount = new.is_some() as i64 - old.is_some() as i64;
    let dbytes = new.map_or(0, |n| n.size) - old.map_or(0, |o| o.size);
    conn.prepare_cached(
        "INSERT INTO bucket_stats (bucket_id, object_count, total_bytes) VALUES (?1, ?2, ?3)
         ON CONFLICT(bucket_id) DO UPDATE SET object_count = object_count + ?2,
             total_bytes = total_bytes + ?3",
    )?
    .execute(params![bucket_id, dcount, dbytes])?;
    let Some(dataset) = dataset_for(conn, bucket_id, key)? else {
        return Ok(());
    };
    match new {
        Some(n) => {
            // A replaced object's old time may have been the oldest one.
            let stale = old.is_some_and(|o| o.modified != n.modified);
            conn.prepare_cached(
                "UPDATE dataset_stats SET object_count = object_count + ?2,
                     total_bytes = total_bytes + ?3,
                     first_modified = MIN(COALESCE(first_modified, ?4), ?4),
                     last_modified = MAX(COALESCE(last_modified, ?4), ?4),
                     bounds_stale = bounds_stale OR (?5 AND first_modified = ?6)
                 WHERE dataset_id = ?1",
            )?
            .execute(params![
                dataset,
                dcount,
                dbytes,
                n.modified,
                stale,
                old.map_or(0, |o| o.modified)
            ])?;
        }
        None => {
            let m = old.map_or(0, |o| o.modified);
            conn.prepare_cached(
                "UPDATE dataset_stats SET object_count = object_count + ?2,
                     total_bytes = total_bytes + ?3,
                     bounds_stale = bounds_stale OR first_modified = ?4 OR last_modified = ?4
                 WHERE dataset_id = ?1",
            )?
            .execute(params![dataset, dcount, dbytes, m])?;
        }
    }
    Ok(())
}

/// Live statistics of one dataset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DatasetStats {
    pub object_count: u64,
    pub total_bytes: u64,
    pub first_modified: Option<i64>,
    pub last_modified: Option<i64>,
    /// The time bounds need a recompute ([`refresh_bounds`]).
    pub stale: bool,
}

/// Reads a dataset's counters.
pub fn dataset_stats_in(conn: &Connection, dataset_id: i64) -> Result<DatasetStats, Error> {
    conn.prepare_cached(
        "SELECT object_count, total_bytes, first_modified, last_modified, bounds_stale
         FROM dataset_stats WHERE dataset_id = ?1",
    )?
    .query_row([dataset_id], |r| {
        Ok(DatasetStats {
            object_count: r.get::<_, i64>(0)?.max(0) as u64,
            total_bytes: r.get::<_, i64>(1)?.max(0) as u64,
            first_modified: r.get(2)?,
            last_modified: r.get(3)?,
            stale: r.get(4)?,
        })
    })
    .optional()?
    .ok_or_else(|| Error::Corrupt(format!("dataset {dataset_id} has no stats row")))
}

/// Aggregates the objects of `bucket_id` under `prefix` with a range scan:
/// `(count, bytes, oldest, newest)`.
fn scan(
    conn: &Connection,
    bucket_id: i64,
    prefix: &str,
) -> Result<(i64, i64, Option<i64>, Option<i64>), Error> {
    let upper = super::objects::prefix_successor(prefix);
    let mut stmt = conn.prepare_cached(
        "SELECT COUNT(*), COALESCE(SUM(size), 0), MIN(last_modified), MAX(last_modified)
         FROM objects WHERE bucket_id = ?1 AND key >= ?2 AND (?3 IS NULL OR key < ?3)",
    )?;
    Ok(stmt.query_row(params![bucket_id, prefix, upper], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })?)
}

/// (Re)creates a dataset's stats row from a scan of its prefix: used when a dataset
/// is registered or moved. The caller guarantees the prefix overlaps no other.
pub fn init_dataset_stats(
    conn: &Connection,
    dataset_id: i64,
    bucket_id: i64,
    prefix: &str,
) -> Result<(), Error> {
    let (count, bytes, first, last) = scan(conn, bucket_id, prefix)?;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO dataset_stats (dataset_id, bucket_id, prefix, object_count,
             total_bytes, first_modified, last_modified, bounds_stale)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0)",
    )?
    .execute(params![
        dataset_id, bucket_id, prefix, count, bytes, first, last
    ])?;
    Ok(())
}

/// Recomputes a dataset's oldest/newest times after deletes made them stale.
pub fn refresh_bounds(conn: &Connection, dataset_id: i64) -> Result<(), Error> {
    let (bucket_id, prefix): (i64, String) = conn
        .prepare_cached("SELECT bucket_id, prefix FROM dataset_stats WHERE dataset_id = ?1")?
        .query_row([dataset_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let (_, _, first, last) = scan(conn, bucket_id, &prefix)?;
    conn.prepare_cached(
        "UPDATE dataset_stats SET first_modified = ?2, last_modified = ?3, bounds_stale = 0
         WHERE dataset_id = ?1",
    )?
    .execute(params![dataset_id, first, last])?;
    Ok(())
}
