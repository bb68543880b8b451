//! Zones: which zone a bucket belongs to, the rules that follow from it, and the
//! per-bucket statistics shown by the REST API.
//!
//! The raw zone is a drop zone: an object, once written, is immutable. The check runs
//! inside the same transaction as the write it guards ([`check_overwrite`] is called
//! from `upsert_object` and the delete loop), so two racing writers cannot both pass it.

use std::fmt;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{Db, Error};

/// The zone a bucket (and so every dataset in it) belongs to.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Zone {
    /// Landing zone: objects are immutable once written.
    Raw,
    /// Outputs of pipelines.
    Transformed,
    /// Governed, documented data for consumers.
    Curated,
}

impl Zone {
    /// Every zone, in pipeline order.
    pub const ALL: [Zone; 3] = [Zone::Raw, Zone::Transformed, Zone::Curated];

    /// The name stored in the database and used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Zone::Raw => "raw",
            Zone::Transformed => "transformed",
            Zone::Curated => "curated",
        }
    }

    /// Parses a zone name (exact, lowercase).
    pub fn parse(s: &str) -> Option<Zone> {
        Zone::ALL.into_iter().find(|z| z.as_str() == s)
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the zone rules apply to a write. Only an admin may ask for `Override`;
/// the caller (the S3 or REST layer) decides who is an admin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ZoneRules {
    #[default]
    Enforce,
    Override,
}

/// The message of the raw zone's write-once rule, as S3 clients see it.
pub const RAW_WRITE_ONCE: &str = "zone rule: objects in the raw zone are immutable once written \
     (overwrite and delete need an admin with x-tarn-override-zone-rules: true)";

pub(super) fn zone_of(conn: &Connection, bucket_id: i64) -> Result<Zone, Error> {
    let name: String = conn
        .prepare_cached("SELECT zone FROM buckets WHERE id = ?1")?
        .query_row([bucket_id], |r| r.get(0))
        .optional()?
        .ok_or(Error::NoSuchBucket)?;
    Zone::parse(&name).ok_or_else(|| Error::Corrupt(format!("zone {name:?}")))
}

/// Refuses to replace or delete an existing object in a raw bucket unless overridden.
pub(super) fn check_overwrite(
    conn: &Connection,
    bucket_id: i64,
    exists: bool,
    rules: ZoneRules,
) -> Result<(), Error> {
    if !exists || rules == ZoneRules::Override {
        return Ok(());
    }
    if zone_of(conn, bucket_id)? == Zone::Raw {
        return Err(Error::ZoneRule(RAW_WRITE_ONCE.to_string()));
    }
    Ok(())
}

/// A bucket with its zone and live statistics.
#[derive(Debug, Clone)]
pub struct BucketInfo {
    pub id: i64,
    pub name: String,
    pub zone: Zone,
    pub created_at: i64,
    pub object_count: u64,
    pub total_bytes: u64,
}

fn row_to_info(r: &rusqlite::Row<'_>) -> Result<BucketInfo, Error> {
    let zone: String = r.get(2)?;
    Ok(BucketInfo {
        id: r.get(0)?,
        name: r.get(1)?,
        zone: Zone::parse(&zone).ok_or_else(|| Error::Corrupt(format!("zone {zone:?}")))?,
        created_at: r.get(3)?,
        object_count: r.get::<_, i64>(4)?.max(0) as u64,
        total_bytes: r.get::<_, i64>(5)?.max(0) as u64,
    })
}

const INFO_SELECT: &str = "SELECT b.id, b.name, b.zone, b.created_at,
        COALESCE(s.object_count, 0), COALESCE(s.total_bytes, 0)
     FROM buckets b LEFT JOIN bucket_stats s ON s.bucket_id = b.id";

/// One bucket's info inside an open connection.
pub fn bucket_info_in(conn: &Connection, name: &str) -> Result<BucketInfo, Error> {
    let mut stmt = conn.prepare_cached(&format!("{INFO_SELECT} WHERE b.name = ?1"))?;
    let mut rows = stmt.query([name])?;
    match rows.next()? {
        Some(r) => row_to_info(r),
        None => Err(Error::NoSuchBucket),
    }
}

/// Sets a bucket's zone inside an open connection.
pub fn set_zone_in(conn: &Connection, bucket_id: i64, zone: Zone) -> Result<(), Error> {
    conn.prepare_cached("UPDATE buckets SET zone = ?2 WHERE id = ?1")?
        .execute(params![bucket_id, zone.as_str()])?;
    Ok(())
}

/// Creates a bucket in `zone` inside an open connection; `BucketExists` if taken.
pub fn create_bucket_in(
    conn: &Connection,
    name: &str,
    region: &str,
    zone: Zone,
) -> Result<i64, Error> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO buckets (name, region, created_at, zone) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(name) DO NOTHING",
        )?
        .execute(params![name, region, super::now_millis(), zone.as_str()])?;
    if inserted == 0 {
        return Err(Error::BucketExists);
    }
    Ok(conn.last_insert_rowid())
}

impl Db {
    /// Creates a bucket bound to `zone`; fails with `BucketExists` if the name is taken.
    pub async fn create_bucket_in_zone(
        &self,
        name: String,
        region: String,
        zone: Zone,
    ) -> Result<i64, Error> {
        self.write(move |conn| create_bucket_in(conn, &name, &region, zone))
            .await
    }

    /// Every bucket with its zone and statistics, by name.
    pub async fn bucket_infos(&self) -> Result<Vec<BucketInfo>, Error> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!("{INFO_SELECT} ORDER BY b.name"))?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(row_to_info(r)?);
            }
            Ok(out)
        })
        .await
    }

    /// One bucket with its zone and statistics.
    pub async fn bucket_info(&self, name: String) -> Result<BucketInfo, Error> {
        self.read(move |conn| bucket_info_in(conn, &name)).await
    }

    /// On first start (once per database), creates the buckets `raw`, `transformed`
    /// and `curated`, each bound to its zone. Existing buckets of those names are
    /// bound to the zone of the same name.
    pub async fn bootstrap_zones(&self, region: String) -> Result<(), Error> {
        self.write(move |conn| {
            let done: Option<String> = conn
                .prepare_cached(
                    "SELECT value FROM catalog_settings WHERE name = 'zones_bootstrapped'",
                )?
                .query_row([], |r| r.get(0))
                .optional()?;
            if done.is_some() {
                return Ok(());
            }
            for zone in Zone::ALL {
                match create_bucket_in(conn, zone.as_str(), &region, zone) {
                    Ok(_) => {}
                    Err(Error::BucketExists) => {
                        conn.prepare_cached("UPDATE buckets SET zone = ?1 WHERE name = ?1")?
                            .execute([zone.as_str()])?;
                    }
                    Err(e) => return Err(e),
                }
            }
            conn.execute(
                "INSERT INTO catalog_settings (name, value) VALUES ('zones_bootstrapped', '1')",
                [],
            )?;
            Ok(())
        })
        .await
    }
}
