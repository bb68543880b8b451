//! The cart and manifest tables (`migrations/0006_checkout.sql`): every read and
//! change, on an open connection. Changes run in the metadata writer's transaction.

use rusqlite::{Connection, OptionalExtension, params};

use super::{CartItem, Error, Format, ManifestDataset, ManifestRow};
use crate::catalog::rfc3339;
use crate::meta::{self, Zone, now_millis};

/// Longest cart item sub-prefix, in bytes.
const MAX_PREFIX: usize = 1000;

/// The dataset a cart item refers to, with what authorization needs.
#[derive(Debug, Clone)]
pub struct DatasetTarget {
    pub id: i64,
    pub name: String,
    pub bucket: String,
    pub bucket_id: i64,
    pub zone: Zone,
    pub prefix: String,
    pub owner: String,
}

/// Looks a dataset up for a cart item.
pub fn dataset_target(conn: &Connection, id: i64) -> Result<DatasetTarget, Error> {
    conn.prepare_cached(
        "SELECT d.id, d.name, b.name, b.id, d.zone, d.prefix, d.owner
         FROM datasets d JOIN buckets b ON b.id = d.bucket_id WHERE d.id = ?1",
    )?
    .query_row([id], |r| {
        Ok(DatasetTarget {
            id: r.get(0)?,
            name: r.get(1)?,
            bucket: r.get(2)?,
            bucket_id: r.get(3)?,
            zone: Zone::parse(&r.get::<_, String>(4)?).unwrap_or(Zone::Raw),
            prefix: r.get(5)?,
            owner: r.get(6)?,
        })
    })
    .optional()?
    .ok_or_else(|| Error::NotFound(format!("dataset {id} does not exist")))
}

/// Checks a cart item's sub-prefix.
pub fn validate_prefix(prefix: &str) -> Result<(), Error> {
    if prefix.len() > MAX_PREFIX {
        return Err(Error::invalid(
            "prefix",
            format!("must be at most {MAX_PREFIX} bytes"),
        ));
    }
    if prefix.starts_with('/') {
        return Err(Error::invalid("prefix", "must not start with '/'"));
    }
    Ok(())
}

const ITEM_SELECT: &str = "SELECT c.id, d.id, d.name, b.name, d.prefix, c.prefix, c.added_at
     FROM cart_items c JOIN datasets d ON d.id = c.dataset_id JOIN buckets b ON b.id = d.bucket_id";

fn row_to_item(r: &rusqlite::Row<'_>) -> rusqlite::Result<CartItem> {
    let ds_prefix: String = r.get(4)?;
    let prefix: String = r.get(5)?;
    Ok(CartItem {
        id: r.get(0)?,
        dataset: r.get(1)?,
        dataset_name: r.get(2)?,
        bucket: r.get(3)?,
        key_prefix: format!("{ds_prefix}{prefix}"),
        prefix,
        added_at: rfc3339(r.get(6)?),
    })
}

/// Adds an item to `user_id`'s cart (after the caller's read permission was checked).
pub fn add_item(
    conn: &Connection,
    user_id: i64,
    dataset: i64,
    prefix: &str,
) -> Result<CartItem, Error> {
    validate_prefix(prefix)?;
    let n = conn
        .prepare_cached(
            "INSERT INTO cart_items (user_id, dataset_id, prefix, added_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![user_id, dataset, prefix, now_millis()])?;
    if n == 0 {
        return Err(Error::Conflict(format!(
            "dataset {dataset} with prefix {prefix:?} is already in the cart"
        )));
    }
    let id = conn.last_insert_rowid();
    conn.prepare_cached(&format!("{ITEM_SELECT} WHERE c.id = ?1"))?
        .query_row([id], row_to_item)
        .optional()?
        .ok_or_else(|| Error::NotFound(format!("dataset {dataset} does not exist")))
}

/// The items of `user_id`'s cart, oldest first.
pub fn list_items(conn: &Connection, user_id: i64) -> Result<Vec<CartItem>, Error> {
    let mut stmt =
        conn.prepare_cached(&format!("{ITEM_SELECT} WHERE c.user_id = ?1 ORDER BY c.id"))?;
    let rows = stmt.query_map([user_id], row_to_item)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Removes item `id` from `user_id`'s cart.
pub fn delete_item(conn: &Connection, user_id: i64, id: i64) -> Result<(), Error> {
    let n = conn
        .prepare_cached("DELETE FROM cart_items WHERE id = ?1 AND user_id = ?2")?
        .execute(params![id, user_id])?;
    if n == 0 {
        return Err(Error::NotFound(format!("cart item {id} does not exist")));
    }
    Ok(())
}

/// A cart item ready for checkout.
#[derive(Debug, Clone)]
pub struct CheckoutItem {
    pub item_id: i64,
    pub dataset: DatasetTarget,
    /// The sub-prefix inside the dataset.
    pub prefix: String,
}

/// The cart of `user_id` with each item's dataset.
pub fn checkout_items(conn: &Connection, user_id: i64) -> Result<Vec<CheckoutItem>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, dataset_id, prefix FROM cart_items WHERE user_id = ?1 ORDER BY id",
    )?;
    let rows: Vec<(i64, i64, String)> = stmt
        .query_map([user_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    rows.into_iter()
        .map(|(item_id, dataset, prefix)| {
            Ok(CheckoutItem {
                item_id,
                dataset: dataset_target(conn, dataset)?,
                prefix,
            })
        })
        .collect()
}

/// What checkout stores.
pub struct NewManifest {
    pub user_id: i64,
    pub format: Format,
    pub created_at: i64,
    pub expires_at: i64,
    pub items: Vec<CheckoutItem>,
    /// The manifest's own credential: access key id and sealed secret.
    pub credential: Option<(String, Vec<u8>)>,
    /// Bucket for the stored manifest object (created in `transformed` if missing).
    pub manifest_bucket: String,
    pub region: String,
}

/// Creates a manifest with one entry per object under the items (each object once),
/// and removes the items from the cart. Items whose dataset vanished since they were
/// read are skipped.
pub fn create_manifest(conn: &Connection, m: &NewManifest) -> Result<ManifestRow, Error> {
    match meta::zones::create_bucket_in(conn, &m.manifest_bucket, &m.region, Zone::Transformed) {
        Ok(_) | Err(meta::Error::BucketExists) => {}
        Err(e) => return Err(e.into()),
    }
    let datasets: Vec<ManifestDataset> = m
        .items
        .iter()
        .map(|i| ManifestDataset {
            id: i.dataset.id,
            name: i.dataset.name.clone(),
            bucket: i.dataset.bucket.clone(),
            prefix: format!("{}{}", i.dataset.prefix, i.prefix),
        })
        .collect();
    let datasets_json =
        serde_json::to_string(&datasets).map_err(|e| meta::Error::Corrupt(e.to_string()))?;
    let (key_id, sealed) = match &m.credential {
        Some((k, s)) => (Some(k.as_str()), Some(s.as_slice())),
        None => (None, None),
    };
    conn.prepare_cached(
        "INSERT INTO manifests (user_id, format, created_at, expires_at, datasets,
                                access_key_id, sealed_secret)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        m.user_id,
        m.format.as_str(),
        m.created_at,
        m.expires_at,
        datasets_json,
        key_id,
        sealed
    ])?;
    let id = conn.last_insert_rowid();
    // One statement per item: the snapshot of the objects under its prefix, in the
    // same transaction as the manifest row.
    let mut bounded = conn.prepare_cached(
        "INSERT OR IGNORE INTO manifest_entries
             (manifest_id, bucket, key, dataset_id, size, etag, checksum)
         SELECT ?1, ?2, o.key, ?3, o.size, o.etag, o.checksum FROM objects o
         WHERE o.bucket_id = ?4 AND o.key >= ?5 AND o.key < ?6",
    )?;
    let mut unbounded = conn.prepare_cached(
        "INSERT OR IGNORE INTO manifest_entries
             (manifest_id, bucket, key, dataset_id, size, etag, checksum)
         SELECT ?1, ?2, o.key, ?3, o.size, o.etag, o.checksum FROM objects o
         WHERE o.bucket_id = ?4 AND o.key >= ?5",
    )?;
    let still_there = |item: &CheckoutItem| -> Result<bool, Error> {
        Ok(conn
            .prepare_cached("SELECT 1 FROM datasets WHERE id = ?1 AND bucket_id = ?2")?
            .query_row(params![item.dataset.id, item.dataset.bucket_id], |_| Ok(()))
            .optional()?
            .is_some())
    };
    for item in &m.items {
        if !still_there(item)? {
            continue;
        }
        let prefix = format!("{}{}", item.dataset.prefix, item.prefix);
        let d = &item.dataset;
        match meta::prefix_successor(&prefix).filter(|_| !prefix.is_empty()) {
            Some(end) => bounded.execute(params![id, d.bucket, d.id, d.bucket_id, prefix, end])?,
            None => unbounded.execute(params![id, d.bucket, d.id, d.bucket_id, prefix])?,
        };
    }
    conn.prepare_cached(
        "UPDATE manifests SET (object_count, total_bytes) =
             (SELECT COUNT(*), COALESCE(SUM(size), 0) FROM manifest_entries WHERE manifest_id = ?1)
         WHERE id = ?1",
    )?
    .execute([id])?;
    let mut del = conn.prepare_cached("DELETE FROM cart_items WHERE id = ?1 AND user_id = ?2")?;
    for item in &m.items {
        del.execute(params![item.item_id, m.user_id])?;
    }
    manifest(conn, id)?.ok_or_else(|| Error::NotFound(format!("manifest {id} does not exist")))
}

const MANIFEST_SELECT: &str = "SELECT m.id, m.user_id, u.name, m.format, m.created_at,
        m.expires_at, m.datasets, m.object_count, m.total_bytes, m.access_key_id
     FROM manifests m JOIN users u ON u.id = m.user_id";

fn row_to_manifest(r: &rusqlite::Row<'_>) -> rusqlite::Result<ManifestRow> {
    let datasets: String = r.get(6)?;
    Ok(ManifestRow {
        id: r.get(0)?,
        user_id: r.get(1)?,
        owner: r.get(2)?,
        format: Format::parse(&r.get::<_, String>(3)?),
        created_at: r.get(4)?,
        expires_at: r.get(5)?,
        datasets: serde_json::from_str(&datasets).unwrap_or_default(),
        objects: r.get::<_, i64>(7)?.max(0) as u64,
        bytes: r.get::<_, i64>(8)?.max(0) as u64,
        access_key_id: r.get(9)?,
    })
}

/// One manifest.
pub fn manifest(conn: &Connection, id: i64) -> Result<Option<ManifestRow>, Error> {
    Ok(conn
        .prepare_cached(&format!("{MANIFEST_SELECT} WHERE m.id = ?1"))?
        .query_row([id], row_to_manifest)
        .optional()?)
}

/// Manifests of one user (or everyone's), newest first.
pub fn list_manifests(conn: &Connection, user_id: Option<i64>) -> Result<Vec<ManifestRow>, Error> {
    let mut stmt = conn.prepare_cached(&format!(
        "{MANIFEST_SELECT} WHERE ?1 IS NULL OR m.user_id = ?1 ORDER BY m.id DESC"
    ))?;
    let rows = stmt.query_map([user_id], row_to_manifest)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Deletes a manifest with its entries and credential.
pub fn delete_manifest(conn: &Connection, id: i64) -> Result<(), Error> {
    let n = conn
        .prepare_cached("DELETE FROM manifests WHERE id = ?1")?
        .execute([id])?;
    if n == 0 {
        return Err(Error::NotFound(format!("manifest {id} does not exist")));
    }
    Ok(())
}

/// One entry as streamed.
pub struct EntryRow {
    pub bucket: String,
    pub key: String,
    pub dataset: i64,
    pub size: i64,
    pub etag: String,
    /// Stored checksum JSON.
    pub checksum: Option<String>,
}

/// Calls `f` with every entry of manifest `id`, in (bucket, key) order; stops early
/// when `f` returns false.
pub fn for_each_entry(
    conn: &Connection,
    id: i64,
    mut f: impl FnMut(EntryRow) -> bool,
) -> Result<(), Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT bucket, key, dataset_id, size, etag, checksum FROM manifest_entries
         WHERE manifest_id = ?1 ORDER BY bucket, key",
    )?;
    let mut rows = stmt.query([id])?;
    while let Some(r) = rows.next()? {
        let e = EntryRow {
            bucket: r.get(0)?,
            key: r.get(1)?,
            dataset: r.get(2)?,
            size: r.get(3)?,
            etag: r.get(4)?,
            checksum: r.get(5)?,
        };
        if !f(e) {
            break;
        }
    }
    Ok(())
}

/// What a download through a manifest link is checked against.
pub struct LinkTarget {
    /// The ETag recorded at checkout.
    pub etag: String,
    /// The object's current ETag (`None`: deleted since).
    pub current_etag: Option<String>,
}

/// The entry of manifest `id` for `bucket`/`key` with the object's current ETag, in
/// one read; `None` if the manifest does not list it.
pub fn link_target(
    conn: &Connection,
    id: i64,
    bucket: &str,
    key: &str,
) -> Result<Option<LinkTarget>, meta::Error> {
    Ok(conn
        .prepare_cached(
            "SELECT e.etag, o.etag FROM manifest_entries e
             LEFT JOIN buckets b ON b.name = e.bucket
             LEFT JOIN objects o ON o.bucket_id = b.id AND o.key = e.key
             WHERE e.manifest_id = ?1 AND e.bucket = ?2 AND e.key = ?3",
        )?
        .query_row(params![id, bucket, key], |r| {
            Ok(LinkTarget {
                etag: r.get(0)?,
                current_etag: r.get(1)?,
            })
        })
        .optional()?)
}
