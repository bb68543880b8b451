//! Bucket rows.

use rusqlite::{Connection, OptionalExtension, params};

use super::{Db, Error, now_millis};

/// A bucket as stored.
#[derive(Debug, Clone)]
pub struct Bucket {
    pub id: i64,
    pub name: String,
    pub region: String,
    pub created_at: i64,
}

fn row_to_bucket(r: &rusqlite::Row<'_>) -> rusqlite::Result<Bucket> {
    Ok(Bucket {
        id: r.get(0)?,
        name: r.get(1)?,
        region: r.get(2)?,
        created_at: r.get(3)?,
    })
}

/// Looks a bucket up by name inside an open connection.
pub(super) fn bucket_by_name(conn: &Connection, name: &str) -> Result<Bucket, Error> {
    conn.prepare_cached("SELECT id, name, region, created_at FROM buckets WHERE name = ?1")?
        .query_row([name], row_to_bucket)
        .optional()?
        .ok_or(Error::NoSuchBucket)
}

impl Db {
    /// Creates a bucket; fails with `BucketExists` if the name is taken.
    pub async fn create_bucket(&self, name: String, region: String) -> Result<Bucket, Error> {
        self.write(move |conn| {
            let created_at = now_millis();
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO buckets (name, region, created_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT(name) DO NOTHING",
                )?
                .execute(params![name, region, created_at])?;
            if inserted == 0 {
                return Err(Error::BucketExists);
            }
            Ok(Bucket {
                id: conn.last_insert_rowid(),
                name,
                region,
                created_at,
            })
        })
        .await
    }

    /// Deletes an empty bucket. In-progress multipart uploads are aborted with it; the
    /// blobs of their parts are returned for deletion.
    pub async fn delete_bucket(&self, name: String) -> Result<Vec<String>, Error> {
        self.write(move |conn| {
            let bucket = bucket_by_name(conn, &name)?;
            let has_objects: bool = conn
                .prepare_cached("SELECT EXISTS(SELECT 1 FROM objects WHERE bucket_id = ?1)")?
                .query_row([bucket.id], |r| r.get(0))?;
            if has_objects {
                return Err(Error::BucketNotEmpty);
            }
            let mut blobs = Vec::new();
            {
                let mut stmt = conn.prepare_cached(
                    "SELECT p.blob FROM parts p JOIN uploads u ON p.upload_id = u.id
                     WHERE u.bucket_id = ?1",
                )?;
                let rows = stmt.query_map([bucket.id], |r| r.get::<_, String>(0))?;
                for b in rows {
                    blobs.push(b?);
                }
            }
            conn.execute(
                "DELETE FROM parts WHERE upload_id IN (SELECT id FROM uploads WHERE bucket_id = ?1)",
                [bucket.id],
            )?;
            conn.execute("DELETE FROM uploads WHERE bucket_id = ?1", [bucket.id])?;
            conn.execute("DELETE FROM buckets WHERE id = ?1", [bucket.id])?;
            Ok(blobs)
        })
        .await
    }

    /// Finds a bucket by name.
    pub async fn bucket(&self, name: String) -> Result<Bucket, Error> {
        self.read(move |conn| bucket_by_name(conn, &name)).await
    }

    /// Zone, object count and bytes per bucket (for metrics), from the live counters.
    pub async fn bucket_usage(&self) -> Result<Vec<crate::metrics::BucketGauge>, Error> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT b.name, b.zone, COALESCE(s.object_count, 0), COALESCE(s.total_bytes, 0)
                 FROM buckets b LEFT JOIN bucket_stats s ON s.bucket_id = b.id
                 ORDER BY b.name",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(crate::metrics::BucketGauge {
                    bucket: r.get(0)?,
                    zone: r.get(1)?,
                    objects: r.get::<_, i64>(2)?.max(0) as u64,
                    bytes: r.get::<_, i64>(3)?.max(0) as u64,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// All buckets, ordered by name.
    pub async fn list_buckets(&self) -> Result<Vec<Bucket>, Error> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT id, name, region, created_at FROM buckets ORDER BY name")?;
            let rows = stmt.query_map([], row_to_bucket)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}
