//! Metadata: buckets, objects and multipart uploads in SQLite.
//!
//! Everything the S3 layer knows about an object except its bytes lives here. The row
//! commit is the moment an object becomes visible: a blob that no committed row points
//! to is garbage and is removed at startup.

mod buckets;
mod cache;
mod db;
mod multipart;
mod objects;
pub mod stats;
mod types;
pub mod zones;

pub use buckets::Bucket;
pub use cache::ObjectRead;
pub use db::Db;
pub use multipart::{CompletePart, CompleteRequest, PartRow, Upload, UploadList, UploadListing};
pub use objects::{
    DeleteOutcome, ListEntry, ListParams, Listing, WriteCondition, prefix_successor,
};
pub use types::{
    Checksum, ChecksumAlgorithm, ChecksumType, ObjectHeaders, ObjectMeta, Segment, Tags,
};
pub use zones::{BucketInfo, Zone, ZoneRules};

/// Errors of the metadata layer. Semantic variants are the S3 conditions that can only
/// be decided inside a transaction; the rest are failures of the database itself.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no such bucket")]
    NoSuchBucket,
    #[error("bucket already exists")]
    BucketExists,
    #[error("bucket is not empty")]
    BucketNotEmpty,
    #[error("no such key")]
    NoSuchKey,
    #[error("no such upload")]
    NoSuchUpload,
    #[error("precondition failed")]
    PreconditionFailed,
    #[error("invalid part: {0}")]
    InvalidPart(String),
    #[error("part list is not in ascending order")]
    InvalidPartOrder,
    #[error("part {part} is smaller than the minimum allowed size")]
    EntityTooSmall { part: u32 },
    /// A zone rule refused the write (S3 `AccessDenied`, REST 403).
    #[error("{0}")]
    ZoneRule(String),
    #[error("stored row is corrupt: {0}")]
    Corrupt(String),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("migration {name} failed: {source}")]
    Migration {
        name: String,
        source: rusqlite::Error,
    },
    #[error("database schema version {found} is newer than this binary knows ({known})")]
    SchemaTooNew { found: usize, known: usize },
    #[error("commit failed: {0}")]
    Commit(String),
    #[error("database writer thread is gone")]
    WriterGone,
    #[error("database writer thread could not start: {0}")]
    Thread(std::io::Error),
    #[error("a database lock was poisoned")]
    Poisoned,
}

/// The current time in Unix milliseconds.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
