//! The dataset catalog: datasets over bucket prefixes, tags, governance rules,
//! crawled schemas with versions, and full-text search.
//!
//! Everything here runs on the metadata database ([`crate::meta::Db`]): writes go
//! through the single writer, reads through the reader pool. Each write job checks
//! every rule *before* its first statement, so a rejected request changes nothing
//! even though the job's savepoint is only rolled back on database errors.

pub mod crawl;
pub mod datasets;
pub mod governance;
pub mod index;
pub mod search;
mod tokenize;

pub use datasets::{Dataset, DatasetFilter, DatasetPatch, NewDataset, Page};
pub use governance::{Governance, ZoneRulesDoc};
pub use index::SearchIndex;

use crate::meta;

/// Errors of the catalog, by meaning. The REST layer maps each to one status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is malformed (400, naming the field).
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },
    /// The named thing does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with existing state (409).
    #[error("{0}")]
    Conflict(String),
    /// A governance rule is violated (422); `missing` lists the absent tag names.
    #[error("{message}")]
    Governance {
        message: String,
        missing: Vec<String>,
    },
    /// The caller may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// A crawl could not read the data (422: the data, not the request, is at fault).
    #[error("{0}")]
    Unreadable(String),
    /// The metadata database failed.
    #[error(transparent)]
    Db(#[from] meta::Error),
    /// Reading object bytes failed.
    #[error(transparent)]
    Storage(#[from] crate::storage::Error),
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

/// Formats Unix milliseconds as RFC 3339 (UTC, milliseconds).
pub fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}
