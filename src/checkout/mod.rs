//! Cart, checkout and manifests of presigned links.
//!
//! A user's cart lists datasets (optionally narrowed to a sub-prefix such as a
//! partition `year=2024/`). Checkout snapshots the objects under every item into a
//! *manifest* in one write transaction (`INSERT .. SELECT` from `objects`, so even
//! 100,000 entries are one statement per item), empties the cart, and, for the
//! `signed-url` format, creates a credential that exists only for that manifest.
//!
//! - Links ([`presign`]) are SigV4 presigned GETs signed with that credential, dated at
//!   the manifest's creation: deterministic, so they are regenerated whenever the
//!   manifest is streamed ([`render`]) instead of being stored.
//! - The S3 layer lets a manifest credential download exactly the listed objects, and
//!   only while each still has the ETag it had at checkout ([`access`]).
//! - Deleting the manifest deletes its credential (through [`crate::iam::Iam::change`],
//!   so the in-memory key cache drops it before the answer): every link fails at once.
//! - Every manifest is also stored as the object `<user>/<id>.json` in the bucket
//!   `checkout.manifest_bucket`, readable by its owner through any S3 client.

pub mod access;
pub mod presign;
pub mod render;
pub mod store;

use serde::{Deserialize, Serialize};

use crate::meta;

/// Errors of the cart and manifests, by meaning; the REST layer maps each to a status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is malformed (400, naming the field).
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },
    /// The named dataset, cart item or manifest does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// The metadata database failed.
    #[error(transparent)]
    Db(#[from] meta::Error),
}

impl Error {
    /// A 400 for `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Runs `f` in the metadata writer's transaction with checkout's typed errors.
pub async fn write<R: Send + 'static>(
    db: &meta::Db,
    f: impl FnOnce(&rusqlite::Connection) -> Result<R, Error> + Send + 'static,
) -> Result<R, Error> {
    db.write_with(f).await
}

/// Runs a read with typed errors, like [`write`].
pub async fn read<R: Send + 'static>(
    db: &meta::Db,
    f: impl FnOnce(&rusqlite::Connection) -> Result<R, Error> + Send + 'static,
) -> Result<R, Error> {
    db.read_with(f).await
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        Error::Db(e.into())
    }
}

/// What a manifest lists for each object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Entries carry a presigned GET URL.
    SignedUrl,
    /// Entries carry bucket and key only (read them with your own credentials).
    BucketKey,
}

impl Format {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::SignedUrl => "signed-url",
            Format::BucketKey => "bucket-key",
        }
    }
    fn parse(s: &str) -> Format {
        if s == "bucket-key" {
            Format::BucketKey
        } else {
            Format::SignedUrl
        }
    }
}

/// A request to add a dataset (or part of it) to the caller's cart.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCartItem {
    /// The dataset's id.
    pub dataset: i64,
    /// A sub-prefix inside the dataset's prefix (a partition such as `year=2024/`, or
    /// any key prefix); absent means the whole dataset.
    #[serde(default)]
    pub prefix: Option<String>,
}

/// One item of a cart.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CartItem {
    pub id: i64,
    pub dataset: i64,
    pub dataset_name: String,
    pub bucket: String,
    /// The sub-prefix inside the dataset (`""`: the whole dataset).
    pub prefix: String,
    /// The dataset's prefix followed by `prefix`: the keys checkout will list.
    pub key_prefix: String,
    pub added_at: String,
}

/// The caller's cart.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Cart {
    pub items: Vec<CartItem>,
}

/// A checkout request; every field is optional (an empty body is fine).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    /// `signed-url` (default) or `bucket-key`.
    #[serde(default)]
    pub format: Option<Format>,
    /// Lifetime of the links in seconds (default `checkout.default_expiry_secs`, at
    /// most `checkout.max_expiry_secs`).
    #[serde(default)]
    pub expires_in: Option<u64>,
}

/// A dataset as a manifest recorded it at checkout.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ManifestDataset {
    pub id: i64,
    pub name: String,
    pub bucket: String,
    /// The key prefix that was listed (dataset prefix + cart item sub-prefix).
    pub prefix: String,
}

/// Object count and bytes of a manifest.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct Totals {
    pub objects: u64,
    pub bytes: u64,
}

/// A manifest without its entries, as `GET /manifests` lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ManifestSummary {
    pub id: i64,
    /// The user who checked it out.
    pub principal: String,
    pub format: Format,
    pub created_at: String,
    pub expires_at: String,
    /// Whether its links have expired.
    pub expired: bool,
    pub datasets: Vec<ManifestDataset>,
    pub totals: Totals,
    /// Where the manifest is stored as an object: `s3://<bucket>/<user>/<id>.json`.
    pub object: String,
}

/// One entry of a manifest (the documentation of what `GET /manifests/{id}` streams).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ManifestEntry {
    pub dataset: i64,
    pub bucket: String,
    pub key: String,
    pub size: u64,
    /// The ETag at checkout, without quotes; links serve only this content.
    pub etag: String,
    /// The object's stored checksum (`{"algorithm", "value", "type"}`), if any.
    #[schema(value_type = Option<Object>)]
    pub checksum: Option<serde_json::Value>,
    /// The presigned GET URL (format `signed-url` only).
    pub url: Option<String>,
}

/// A whole manifest, as `POST /cart/checkout` and `GET /manifests/{id}` stream it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Manifest {
    #[serde(flatten)]
    pub summary: ManifestSummary,
    pub entries: Vec<ManifestEntry>,
}

/// A manifest row, as stored.
#[derive(Debug, Clone)]
pub struct ManifestRow {
    pub id: i64,
    pub user_id: i64,
    pub owner: String,
    pub format: Format,
    pub created_at: i64,
    pub expires_at: i64,
    pub datasets: Vec<ManifestDataset>,
    pub objects: u64,
    pub bytes: u64,
    pub access_key_id: Option<String>,
}

impl ManifestRow {
    /// The key of the stored manifest object.
    pub fn object_key(&self) -> String {
        format!("{}/{}.json", self.owner, self.id)
    }

    /// The summary the API shows, given the manifest bucket.
    pub fn summary(&self, bucket: &str) -> ManifestSummary {
        ManifestSummary {
            id: self.id,
            principal: self.owner.clone(),
            format: self.format,
            created_at: crate::catalog::rfc3339(self.created_at),
            expires_at: crate::catalog::rfc3339(self.expires_at),
            expired: self.expires_at <= meta::now_millis(),
            datasets: self.datasets.clone(),
            totals: Totals {
                objects: self.objects,
                bytes: self.bytes,
            },
            object: format!("s3://{bucket}/{}", self.object_key()),
        }
    }

    /// Seconds between creation and expiry (`X-Amz-Expires` of every link).
    pub fn expires_secs(&self) -> u64 {
        u64::try_from((self.expires_at - self.created_at) / 1000).unwrap_or(0)
    }
}

/// Deletes every stored manifest object of `user` (everything under `<user>/` in
/// the manifest `bucket`) and returns the blobs to delete once that committed. Run
/// after the user is deleted: a later user of the same name owns that prefix and
/// must not read them.
pub async fn delete_stored_manifests(
    db: &crate::meta::Db,
    bucket: &str,
    user: &str,
) -> Result<Vec<String>, crate::meta::Error> {
    let mut params = crate::meta::ListParams {
        prefix: format!("{user}/"),
        delimiter: None,
        after: None,
        max_keys: 1000,
    };
    let mut blobs = Vec::new();
    loop {
        let page = match db.list_objects(bucket.to_string(), params.clone()).await {
            Err(crate::meta::Error::NoSuchBucket) => return Ok(blobs),
            page => page?,
        };
        if !page.entries.is_empty() {
            let keys = page.entries.into_iter().map(|e| e.key).collect();
            for o in db
                .delete_objects(bucket.to_string(), keys, crate::meta::ZoneRules::Override)
                .await?
            {
                blobs.extend(o.blobs);
            }
        }
        if !page.is_truncated || page.last.is_none() {
            return Ok(blobs);
        }
        params.after = page.last;
    }
}
