//! Object rows: read, conditional write, delete, list, tags.

use std::collections::HashSet;

use rusqlite::{Connection, params};

use super::buckets::bucket_by_name;
use super::cache::ObjectRead;
use super::stats::{self, Version};
use super::types::{from_json, to_json};
use super::zones::{ZoneRules, check_overwrite};
use super::{Checksum, Db, Error, ObjectHeaders, ObjectMeta, Segment, Tags};

/// A precondition checked atomically with a write.
#[derive(Debug, Clone, Default)]
pub enum WriteCondition {
    #[default]
    None,
    /// `If-None-Match: *`: the key must not exist.
    IfNoneMatchStar,
    /// `If-Match: "etag"`: the key must exist with this ETag (unquoted) or `*`.
    IfMatch(String),
}

/// Result of a delete: the blobs the object used, now unreferenced.
#[derive(Debug, Default)]
pub struct DeleteOutcome {
    pub existed: bool,
    /// A zone rule kept the object (nothing was deleted); the message names the rule.
    pub denied: Option<String>,
    pub blobs: Vec<String>,
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Exclusive lower bound (marker / start-after / continuation position).
    pub after: Option<String>,
    pub max_keys: usize,
}

/// One listed object.
#[derive(Debug, Clone)]
pub struct ListEntry {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub last_modified: i64,
    pub checksum: Option<Checksum>,
}

/// A page of a listing.
#[derive(Debug, Default)]
pub struct Listing {
    pub entries: Vec<ListEntry>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    /// The last key or common prefix returned, to continue after.
    pub last: Option<String>,
}

const OBJECT_COLUMNS: &str =
    "key, size, etag, last_modified, data, parts_count, headers, checksum, tags, inline";

fn row_to_object(r: &rusqlite::Row<'_>) -> Result<ObjectMeta, Error> {
    let data: String = r.get(4)?;
    let headers: String = r.get(6)?;
    let checksum: Option<String> = r.get(7)?;
    let tags: Option<String> = r.get(8)?;
    Ok(ObjectMeta {
        key: r.get(0)?,
        size: r.get::<_, i64>(1)? as u64,
        etag: r.get(2)?,
        last_modified: r.get(3)?,
        segments: Segment::decode(&data)?,
        inline: r.get(9)?,
        parts_count: r.get(5)?,
        headers: from_json::<ObjectHeaders>(&headers)?,
        checksum: checksum.as_deref().map(from_json).transpose()?,
        tags: tags.as_deref().map(from_json).transpose()?,
    })
}

pub(super) fn object_in(
    conn: &Connection,
    bucket_id: i64,
    key: &str,
) -> Result<Option<ObjectMeta>, Error> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket_id = ?1 AND key = ?2"
    ))?;
    let mut rows = stmt.query(params![bucket_id, key])?;
    match rows.next()? {
        Some(row) => Ok(Some(row_to_object(row)?)),
        None => Ok(None),
    }
}

fn check_condition(existing: Option<&ObjectMeta>, cond: &WriteCondition) -> Result<(), Error> {
    match (cond, existing) {
        (WriteCondition::None, _) => Ok(()),
        (WriteCondition::IfNoneMatchStar, None) => Ok(()),
        (WriteCondition::IfNoneMatchStar, Some(_)) => Err(Error::PreconditionFailed),
        (WriteCondition::IfMatch(_), None) => Err(Error::NoSuchKey),
        (WriteCondition::IfMatch(etag), Some(o)) => {
            if etag == "*" || *etag == o.etag {
                Ok(())
            } else {
                Err(Error::PreconditionFailed)
            }
        }
    }
}

/// The inline bytes of an object whose row says `inline`.
fn inline_bytes(conn: &Connection, bucket_id: i64, key: &str) -> Result<Vec<u8>, Error> {
    conn.prepare_cached("SELECT data FROM object_bytes WHERE bucket_id = ?1 AND key = ?2")?
        .query_row(params![bucket_id, key], |r| r.get(0))
        .map_err(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => {
                Error::Corrupt(format!("inline object {key} has no bytes"))
            }
            e => e.into(),
        })
}

fn delete_inline_bytes(conn: &Connection, bucket_id: i64, key: &str) -> Result<(), Error> {
    conn.prepare_cached("DELETE FROM object_bytes WHERE bucket_id = ?1 AND key = ?2")?
        .execute(params![bucket_id, key])?;
    Ok(())
}

/// Inserts or replaces an object row, returning the blobs the replaced object used.
/// `inline` holds the bytes of a small object kept in the database (then `obj` has no
/// segments); they commit with the row. Zone rules and bucket/dataset statistics are
/// applied in the same transaction.
pub(super) fn upsert_object(
    conn: &Connection,
    bucket_id: i64,
    obj: &ObjectMeta,
    inline: Option<&[u8]>,
    cond: &WriteCondition,
    rules: ZoneRules,
) -> Result<Vec<String>, Error> {
    let existing = object_in(conn, bucket_id, &obj.key)?;
    check_condition(existing.as_ref(), cond)?;
    check_overwrite(conn, bucket_id, existing.is_some(), rules)?;
    stats::apply(
        conn,
        bucket_id,
        &obj.key,
        existing.as_ref().map(sized),
        Some(sized(obj)),
    )?;
    conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO objects (bucket_id, {OBJECT_COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    ))?
    .execute(params![
        bucket_id,
        obj.key,
        obj.size as i64,
        obj.etag,
        obj.last_modified,
        Segment::encode(&obj.segments),
        obj.parts_count,
        to_json(&obj.headers)?,
        obj.checksum.as_ref().map(to_json).transpose()?,
        obj.tags.as_ref().map(to_json).transpose()?,
        inline.is_some(),
    ])?;
    match inline {
        Some(data) => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO object_bytes (bucket_id, key, data) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![bucket_id, obj.key, data])?;
        }
        None if existing.as_ref().is_some_and(|o| o.inline) => {
            delete_inline_bytes(conn, bucket_id, &obj.key)?;
        }
        None => {}
    }
    Ok(existing
        .map(|o| o.segments.into_iter().map(|s| s.blob).collect())
        .unwrap_or_default())
}

fn sized(o: &ObjectMeta) -> Version {
    Version {
        size: o.size as i64,
        modified: o.last_modified,
    }
}

/// The smallest string greater than every string that starts with `s`, or `None`
/// if there is none (`s` ends in `char::MAX`).
pub fn prefix_successor(s: &str) -> Option<String> {
    let mut chars: Vec<char> = s.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = last as u32 + 1;
        if (0xD800..0xE000).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

fn list_in(conn: &Connection, bucket_id: i64, p: &ListParams) -> Result<Listing, Error> {
    const BATCH: usize = 1000;
    let mut out = Listing::default();
    if p.max_keys == 0 {
        return Ok(out);
    }
    // Inclusive lower bound of the next query.
    let mut lower = match &p.after {
        // The smallest key greater than `a` is `a` followed by NUL.
        Some(a) if a.as_str() >= p.prefix.as_str() => format!("{a}\0"),
        _ => p.prefix.clone(),
    };
    let delimiter = p.delimiter.as_deref().filter(|d| !d.is_empty());
    let mut stmt = conn.prepare_cached(
        "SELECT key, size, etag, last_modified, checksum FROM objects
         WHERE bucket_id = ?1 AND key >= ?2 ORDER BY key LIMIT ?3",
    )?;
    'scan: loop {
        let mut rows = stmt.query(params![bucket_id, lower, BATCH as i64])?;
        let mut seen = 0usize;
        let mut reseek: Option<String> = None;
        while let Some(row) = rows.next()? {
            seen += 1;
            let key: String = row.get(0)?;
            if !key.starts_with(&p.prefix) {
                break 'scan;
            }
            if let Some(d) = delimiter
                && let Some(idx) = key[p.prefix.len()..].find(d)
            {
                let cp = &key[..p.prefix.len() + idx + d.len()];
                let already_passed = p.after.as_deref().is_some_and(|a| cp <= a);
                if !already_passed {
                    if out.entries.len() + out.common_prefixes.len() >= p.max_keys {
                        out.is_truncated = true;
                        break 'scan;
                    }
                    out.common_prefixes.push(cp.to_string());
                    out.last = Some(cp.to_string());
                }
                match prefix_successor(cp) {
                    Some(next) => {
                        reseek = Some(next);
                        break;
                    }
                    None => break 'scan,
                }
            }
            if out.entries.len() + out.common_prefixes.len() >= p.max_keys {
                out.is_truncated = true;
                break 'scan;
            }
            let checksum: Option<String> = row.get(4)?;
            out.entries.push(ListEntry {
                size: row.get::<_, i64>(1)? as u64,
                etag: row.get(2)?,
                last_modified: row.get(3)?,
                checksum: checksum.as_deref().map(from_json).transpose()?,
                key: key.clone(),
            });
            out.last = Some(key.clone());
            lower = format!("{key}\0");
        }
        match reseek {
            Some(next) => lower = next,
            None if seen < BATCH => break,
            None => {}
        }
    }
    Ok(out)
}

impl Db {
    /// Reads one object's metadata.
    pub async fn object(&self, bucket: String, key: String) -> Result<ObjectMeta, Error> {
        self.read(move |conn| {
            let b = bucket_by_name(conn, &bucket)?;
            object_in(conn, b.id, &key)?.ok_or(Error::NoSuchKey)
        })
        .await
    }

    /// Reads one object's metadata and, for a small object kept inline, its bytes, in one
    /// snapshot. Served from the object cache when the object was read since the last
    /// write batch (see [`super::cache`]); no write acknowledged before the call is missed.
    pub async fn object_with_bytes(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<(ObjectMeta, Option<bytes::Bytes>), Error> {
        let read = self.object_read(bucket, key).await?;
        Ok((read.meta.clone(), read.data.clone()))
    }

    /// [`Db::object_with_bytes`] without copying: the read shared with the object cache.
    pub async fn object_read(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<std::sync::Arc<ObjectRead>, Error> {
        let read_at = self.generation();
        if let Some(hit) = self.cache.get(bucket, key, read_at) {
            return Ok(hit);
        }
        let (bucket, key) = (bucket.to_string(), key.to_string());
        let (bucket, key, found) = self
            .read(move |conn| {
                let b = bucket_by_name(conn, &bucket)?;
                let obj = object_in(conn, b.id, &key)?.ok_or(Error::NoSuchKey)?;
                let data = if obj.inline {
                    Some(bytes::Bytes::from(inline_bytes(conn, b.id, &key)?))
                } else {
                    None
                };
                Ok((bucket, key, ObjectRead { meta: obj, data }))
            })
            .await?;
        let found = std::sync::Arc::new(found);
        let now = self.generation();
        self.cache
            .insert(&bucket, &key, read_at, now, found.clone());
        Ok(found)
    }

    /// Commits an object row (the moment it becomes visible), checking `cond`
    /// atomically. Returns the blobs of the object it replaced.
    pub async fn put_object(
        &self,
        bucket: String,
        obj: ObjectMeta,
        inline: Option<bytes::Bytes>,
        cond: WriteCondition,
        rules: ZoneRules,
    ) -> Result<Vec<String>, Error> {
        self.write(move |conn| {
            let b = bucket_by_name(conn, &bucket)?;
            upsert_object(conn, b.id, &obj, inline.as_deref(), &cond, rules)
        })
        .await
    }

    /// Deletes objects by key; missing keys are not an error (as in S3). A key that a
    /// zone rule protects is kept and reported as `denied`.
    pub async fn delete_objects(
        &self,
        bucket: String,
        keys: Vec<String>,
        rules: ZoneRules,
    ) -> Result<Vec<DeleteOutcome>, Error> {
        self.write(move |conn| {
            let b = bucket_by_name(conn, &bucket)?;
            let mut out = Vec::with_capacity(keys.len());
            for key in &keys {
                let existing = object_in(conn, b.id, key)?;
                if existing.is_some() {
                    match check_overwrite(conn, b.id, true, rules) {
                        Ok(()) => {}
                        Err(Error::ZoneRule(m)) => {
                            out.push(DeleteOutcome {
                                existed: true,
                                denied: Some(m),
                                blobs: Vec::new(),
                            });
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                }
                match existing {
                    Some(o) => {
                        stats::apply(conn, b.id, key, Some(sized(&o)), None)?;
                        if o.inline {
                            delete_inline_bytes(conn, b.id, key)?;
                        }
                        conn.prepare_cached(
                            "DELETE FROM objects WHERE bucket_id = ?1 AND key = ?2",
                        )?
                        .execute(params![b.id, key])?;
                        out.push(DeleteOutcome {
                            existed: true,
                            denied: None,
                            blobs: o.segments.into_iter().map(|s| s.blob).collect(),
                        });
                    }
                    None => out.push(DeleteOutcome::default()),
                }
            }
            Ok(out)
        })
        .await
    }

    /// Lists a bucket in key order.
    pub async fn list_objects(&self, bucket: String, params: ListParams) -> Result<Listing, Error> {
        self.read(move |conn| {
            let b = bucket_by_name(conn, &bucket)?;
            list_in(conn, b.id, &params)
        })
        .await
    }

    /// Replaces (or with `None`, removes) an object's tag set.
    pub async fn set_object_tags(
        &self,
        bucket: String,
        key: String,
        tags: Option<Tags>,
    ) -> Result<(), Error> {
        self.write(move |conn| {
            let b = bucket_by_name(conn, &bucket)?;
            let json = tags.as_ref().map(to_json).transpose()?;
            let n = conn
                .prepare_cached("UPDATE objects SET tags = ?3 WHERE bucket_id = ?1 AND key = ?2")?
                .execute(params![b.id, key, json])?;
            if n == 0 {
                return Err(Error::NoSuchKey);
            }
            Ok(())
        })
        .await
    }

    /// Every blob id that a committed row refers to (objects and multipart parts).
    pub fn referenced_blobs_blocking(&self) -> Result<HashSet<String>, Error> {
        self.read_blocking(|conn| {
            let mut set = HashSet::new();
            let mut stmt = conn.prepare("SELECT data FROM objects WHERE data != ''")?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let data: String = r.get(0)?;
                for seg in Segment::decode(&data)? {
                    set.insert(seg.blob);
                }
            }
            let mut stmt = conn.prepare("SELECT blob FROM parts")?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                set.insert(r.get(0)?);
            }
            Ok(set)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::ZoneRules;

    fn inline_object(key: &str, data: &[u8]) -> (ObjectMeta, Option<bytes::Bytes>) {
        let meta = ObjectMeta {
            key: key.into(),
            size: data.len() as u64,
            etag: format!("etag-{}", data.len()),
            last_modified: 0,
            segments: Vec::new(),
            inline: true,
            parts_count: None,
            headers: ObjectHeaders::default(),
            checksum: None,
            tags: None,
        };
        (meta, Some(bytes::Bytes::copy_from_slice(data)))
    }

    async fn put(db: &Db, key: &str, data: &[u8]) {
        let (meta, bytes) = inline_object(key, data);
        db.put_object(
            "b".into(),
            meta,
            bytes,
            WriteCondition::None,
            ZoneRules::Override,
        )
        .await
        .expect("put");
    }

    async fn open_db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&dir.path().join("t.db")).expect("open");
        db.create_bucket("b".into(), "us-east-1".into())
            .await
            .expect("bucket");
        (dir, db)
    }

    /// Every acknowledged overwrite or delete is seen by the next read, even though the
    /// previous version was just read (and cached).
    #[tokio::test]
    async fn a_read_after_an_acknowledged_write_sees_it() {
        let (_dir, db) = open_db().await;
        put(&db, "k", b"first").await;
        for _ in 0..2 {
            let (m, d) = db.object_with_bytes("b", "k").await.expect("read");
            assert_eq!((m.size, d.as_deref()), (5, Some(&b"first"[..])));
        }
        put(&db, "k", b"second!").await;
        let (m, d) = db.object_with_bytes("b", "k").await.expect("read");
        assert_eq!((m.size, d.as_deref()), (7, Some(&b"second!"[..])));
        db.delete_objects("b".into(), vec!["k".into()], ZoneRules::Override)
            .await
            .expect("delete");
        let gone = db.object_with_bytes("b", "k").await;
        assert!(matches!(gone, Err(Error::NoSuchKey)), "{gone:?}");
        put(&db, "k", b"third").await;
        let (m, d) = db.object_with_bytes("b", "k").await.expect("read");
        assert_eq!(
            (m.etag.as_str(), d.as_deref()),
            ("etag-5", Some(&b"third"[..]))
        );
    }

    /// The row and the inline bytes of one read come from one snapshot: while the object
    /// is overwritten over and over with bodies of other lengths, no read pairs the
    /// metadata of one version with the bytes of another (or finds no bytes at all).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn metadata_and_inline_bytes_come_from_one_snapshot() {
        let (_dir, db) = open_db().await;
        put(&db, "k", &[1; 10]).await;
        let writer = {
            let db = db.clone();
            tokio::spawn(async move {
                for i in 0..400 {
                    let len = if i % 2 == 0 { 20 } else { 10 };
                    put(&db, "k", &vec![len as u8; len]).await;
                }
            })
        };
        let mut reads = 0;
        while !writer.is_finished() {
            let got = db.read(|conn| {
                let b = bucket_by_name(conn, "b")?;
                let obj = object_in(conn, b.id, "k")?.ok_or(Error::NoSuchKey)?;
                let data = inline_bytes(conn, b.id, "k")?;
                Ok((obj, data))
            });
            let (obj, data) = got.await.expect("consistent read");
            assert_eq!(
                obj.size,
                data.len() as u64,
                "row and bytes of different versions"
            );
            reads += 1;
        }
        writer.await.expect("writer");
        assert!(reads > 0);
    }

    #[test]
    fn successor_orders_after_every_extension() {
        assert_eq!(prefix_successor("a/").as_deref(), Some("a0"));
        assert_eq!(prefix_successor("\u{D7FF}").as_deref(), Some("\u{E000}"));
        let s = prefix_successor("photos/").unwrap();
        assert!("photos/\u{10FFFF}zzz" < s.as_str());
        assert!("photos0" >= s.as_str());
    }
}
