//! The crawler: infers a dataset's schema from its objects, like a Glue crawler, and
//! keeps versions of it with the differences between them.
//!
//! A crawl lists the objects under the dataset's prefix, turns Hive-style path
//! segments (`year=2024/month=05/`) into partition columns with their observed
//! values, samples a few data files (the first bytes of CSV and JSON lines files,
//! the footer of Parquet files), merges their columns, and records a new schema
//! version only if the columns or partition columns changed.

mod csv;
mod jsonl;
mod parquet;
mod types;

use std::collections::BTreeSet;

use futures_util::StreamExt;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::Error;
use super::datasets::{self, Dataset};
use crate::meta::{self, Db, ListParams};
use crate::storage::{BlobStore, Source};

/// Bytes read from the start of a CSV or JSON lines file to infer its columns.
const SAMPLE_BYTES: u64 = 256 * 1024;
/// Data files sampled per crawl (spread over the listing).
const SAMPLE_FILES: usize = 8;
/// Objects listed per crawl (for partition discovery).
const MAX_LISTED: usize = 200_000;
/// Distinct values kept per partition column.
const MAX_PARTITION_VALUES: usize = 1000;

/// One column of a schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Column {
    pub name: String,
    /// `boolean`, `integer`, `float`, `decimal`, `string`, `date`, `time`,
    /// `timestamp`, `binary`, `array`/`list`, `struct`, `map`.
    #[serde(rename = "type")]
    pub data_type: String,
    pub nullable: bool,
}

/// A Hive-style partition column and the values seen for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PartitionColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
    /// Distinct values seen, sorted (at most 1000).
    pub values: Vec<String>,
}

/// A crawled schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Schema {
    /// `csv`, `jsonl` or `parquet`.
    pub format: String,
    /// The CSV delimiter, for CSV data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    pub columns: Vec<Column>,
    pub partitions: Vec<PartitionColumn>,
    /// Data files under the prefix, and how many of them were read.
    pub files_total: u64,
    pub files_sampled: u64,
}

impl Schema {
    /// Whether two schemas differ in structure (not in partition values or counts).
    fn same_structure(&self, other: &Schema) -> bool {
        let parts = |s: &Schema| -> Vec<(String, String)> {
            s.partitions
                .iter()
                .map(|p| (p.name.clone(), p.data_type.clone()))
                .collect()
        };
        self.format == other.format && self.columns == other.columns && parts(self) == parts(other)
    }
}

/// A column whose type changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Retyped {
    pub name: String,
    pub from: String,
    pub to: String,
}

/// What changed from the previous version (partition columns included).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SchemaDiff {
    pub added: Vec<Column>,
    pub removed: Vec<Column>,
    pub retyped: Vec<Retyped>,
    /// Nullability changes, by column name.
    pub nullability_changed: Vec<String>,
    /// The data format changed (e.g. csv -> parquet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format_changed: Option<Retyped>,
}

/// Columns of a schema for diffing, partition columns included.
fn all_columns(s: &Schema) -> Vec<Column> {
    let mut v = s.columns.clone();
    v.extend(s.partitions.iter().map(|p| Column {
        name: p.name.clone(),
        data_type: p.data_type.clone(),
        nullable: false,
    }));
    v
}

/// The difference from `old` to `new`.
pub fn diff(old: &Schema, new: &Schema) -> SchemaDiff {
    let (o, n) = (all_columns(old), all_columns(new));
    let mut d = SchemaDiff::default();
    for c in &n {
        match o.iter().find(|x| x.name == c.name) {
            None => d.added.push(c.clone()),
            Some(x) if x.data_type != c.data_type => d.retyped.push(Retyped {
                name: c.name.clone(),
                from: x.data_type.clone(),
                to: c.data_type.clone(),
            }),
            Some(x) if x.nullable != c.nullable => d.nullability_changed.push(c.name.clone()),
            Some(_) => {}
        }
    }
    d.removed = o
        .iter()
        .filter(|x| !n.iter().any(|c| c.name == x.name))
        .cloned()
        .collect();
    if old.format != new.format {
        d.format_changed = Some(Retyped {
            name: "format".into(),
            from: old.format.clone(),
            to: new.format.clone(),
        });
    }
    d
}

/// One stored schema version.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SchemaVersion {
    pub dataset_id: i64,
    pub version: i64,
    /// RFC 3339 time of the crawl that recorded (or last confirmed) this version.
    pub crawled_at: String,
    pub schema: Schema,
    /// Difference from the previous version (absent for version 1).
    pub diff: Option<SchemaDiff>,
    /// Every version number of the dataset, oldest first.
    pub versions: Vec<i64>,
}

/// The outcome of a crawl.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CrawlResult {
    /// Whether this crawl recorded a new version.
    pub changed: bool,
    #[serde(flatten)]
    pub version: SchemaVersion,
}

fn json_err(e: serde_json::Error) -> meta::Error {
    meta::Error::Corrupt(e.to_string())
}

/// Column names of the latest schema version (partitions included), for search.
pub fn latest_column_names(conn: &Connection, dataset_id: i64) -> Result<Vec<String>, meta::Error> {
    let text: Option<String> = conn
        .prepare_cached(
            "SELECT schema FROM dataset_schemas WHERE dataset_id = ?1 ORDER BY version DESC LIMIT 1",
        )?
        .query_row([dataset_id], |r| r.get(0))
        .optional()?;
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    let s: Schema = serde_json::from_str(&text).map_err(json_err)?;
    Ok(all_columns(&s).into_iter().map(|c| c.name).collect())
}

fn version_in(
    conn: &Connection,
    dataset_id: i64,
    version: Option<i64>,
) -> Result<Option<SchemaVersion>, meta::Error> {
    let versions: Vec<i64> = conn
        .prepare_cached(
            "SELECT version FROM dataset_schemas WHERE dataset_id = ?1 ORDER BY version",
        )?
        .query_map([dataset_id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let Some(v) = version.or(versions.last().copied()) else {
        return Ok(None);
    };
    let row: Option<(i64, String, Option<String>)> = conn
        .prepare_cached(
            "SELECT crawled_at, schema, diff FROM dataset_schemas WHERE dataset_id = ?1 AND version = ?2",
        )?
        .query_row(params![dataset_id, v], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((at, schema, diff)) = row else {
        return Ok(None);
    };
    Ok(Some(SchemaVersion {
        dataset_id,
        version: v,
        crawled_at: super::rfc3339(at),
        schema: serde_json::from_str(&schema).map_err(json_err)?,
        diff: diff
            .map(|d| serde_json::from_str(&d))
            .transpose()
            .map_err(json_err)?,
        versions,
    }))
}

/// A stored schema version (`None`: the latest).
pub async fn schema(
    db: &Db,
    dataset_id: i64,
    version: Option<i64>,
) -> Result<SchemaVersion, Error> {
    datasets::get(db, dataset_id).await?;
    db.read(move |conn| version_in(conn, dataset_id, version))
        .await?
        .ok_or_else(|| match version {
            Some(v) => Error::NotFound(format!("dataset {dataset_id} has no schema version {v}")),
            None => Error::NotFound(format!(
                "dataset {dataset_id} has no schema yet: crawl it first"
            )),
        })
}

/// The format a key's extension implies.
fn format_of(key: &str) -> Option<&'static str> {
    let name = key.rsplit('/').next().unwrap_or(key);
    if name.starts_with('_') || name.starts_with('.') {
        return None;
    }
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase())?;
    match ext.as_str() {
        "csv" | "tsv" => Some("csv"),
        "jsonl" | "ndjson" | "json" => Some("jsonl"),
        "parquet" | "parq" | "pq" => Some("parquet"),
        _ => None,
    }
}

/// Hive partition `(name, value)` pairs of a key relative to the dataset prefix.
fn hive_partitions(rel: &str) -> Vec<(String, String)> {
    let mut dirs: Vec<&str> = rel.split('/').collect();
    dirs.pop(); // the file name
    dirs.iter()
        .filter_map(|d| d.split_once('='))
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| {
            let v = percent_encoding::percent_decode_str(v).decode_utf8_lossy();
            (k.to_string(), v.into_owned())
        })
        .collect()
}

/// Reads `len` bytes at `offset` of an object.
async fn read_range(
    db: &Db,
    blobs: &BlobStore,
    bucket: &str,
    key: &str,
    offset: u64,
    len: u64,
) -> Result<Vec<u8>, Error> {
    let (obj, inline) = db.object_with_bytes(bucket, key).await?;
    let source = match inline {
        Some(data) => Source::Inline(data),
        None => {
            let ids = obj.segments.iter().map(|s| s.blob.clone()).collect();
            let files = blobs.open_blobs(ids).await?;
            Source::Blobs(
                files
                    .into_iter()
                    .zip(obj.segments.iter().map(|s| s.size))
                    .collect(),
            )
        }
    };
    let offset = offset.min(obj.size);
    let len = len.min(obj.size - offset);
    let mut out = Vec::with_capacity(len as usize);
    let mut stream = std::pin::pin!(source.stream(offset, len));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::Unreadable(format!("reading {key}: {e}")))?;
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Infers the columns of one file.
async fn infer_file(
    db: &Db,
    blobs: &BlobStore,
    bucket: &str,
    key: &str,
    size: u64,
    format: &str,
) -> Result<(Option<char>, Vec<Column>), Error> {
    let bad = |m: String| Error::Unreadable(format!("{key}: {m}"));
    match format {
        "parquet" => {
            if size < 12 {
                return Err(bad("too small to be a Parquet file".into()));
            }
            let tail = read_range(db, blobs, bucket, key, size - 8, 8).await?;
            let len = parquet::footer_len(&tail).map_err(bad)?;
            if len + 8 > size {
                return Err(bad("Parquet footer is longer than the file".into()));
            }
            let footer = read_range(db, blobs, bucket, key, size - 8 - len, len).await?;
            Ok((None, parquet::columns(&footer).map_err(bad)?))
        }
        "csv" => {
            let sample = read_range(db, blobs, bucket, key, 0, SAMPLE_BYTES).await?;
            let (d, cols) = csv::infer(&sample, size > SAMPLE_BYTES).map_err(bad)?;
            Ok((Some(d), cols))
        }
        _ => {
            let sample = read_range(db, blobs, bucket, key, 0, SAMPLE_BYTES).await?;
            Ok((
                None,
                jsonl::infer(&sample, size > SAMPLE_BYTES).map_err(bad)?,
            ))
        }
    }
}

/// Merges the columns of another file into `acc`: union by name, types widened,
/// a column missing from some file becomes nullable.
fn merge_columns(acc: &mut Vec<Column>, more: Vec<Column>, first: bool) {
    if first {
        *acc = more;
        return;
    }
    for c in acc.iter_mut() {
        if !more.iter().any(|m| m.name == c.name) {
            c.nullable = true;
        }
    }
    for m in more {
        match acc.iter_mut().find(|c| c.name == m.name) {
            Some(c) => {
                c.data_type = types::merge(&c.data_type, &m.data_type);
                c.nullable |= m.nullable;
            }
            None => acc.push(Column {
                nullable: true,
                ..m
            }),
        }
    }
}

/// Crawls a dataset and records the schema (a new version if it changed).
pub async fn crawl(db: &Db, blobs: &BlobStore, dataset_id: i64) -> Result<CrawlResult, Error> {
    let d: Dataset = datasets::get(db, dataset_id).await?;
    // List the data files.
    let mut files: Vec<(String, u64, &'static str)> = Vec::new();
    let mut after = None;
    let mut listed = 0usize;
    loop {
        let page = db
            .list_objects(
                d.bucket.clone(),
                ListParams {
                    prefix: d.prefix.clone(),
                    delimiter: None,
                    after: after.clone(),
                    max_keys: 1000,
                },
            )
            .await?;
        listed += page.entries.len();
        for e in page.entries {
            if let Some(f) = format_of(&e.key) {
                files.push((e.key, e.size, f));
            }
        }
        if !page.is_truncated || listed >= MAX_LISTED {
            break;
        }
        after = page.last;
    }
    let format = match d.format.as_deref() {
        Some(f) => f.to_string(),
        None => {
            let mut counts = [("csv", 0usize), ("jsonl", 0), ("parquet", 0)];
            for (_, _, f) in &files {
                if let Some(c) = counts.iter_mut().find(|c| c.0 == *f) {
                    c.1 += 1;
                }
            }
            counts
                .iter()
                .max_by_key(|c| c.1)
                .filter(|c| c.1 > 0)
                .map(|c| c.0.to_string())
                .unwrap_or_default()
        }
    };
    files.retain(|(_, _, f)| *f == format);
    if files.is_empty() {
        return Err(Error::Unreadable(format!(
            "no data files (.csv, .tsv, .jsonl, .ndjson, .json, .parquet) under s3://{}/{}",
            d.bucket, d.prefix
        )));
    }
    // Partitions, from every listed data file.
    let mut partitions: Vec<(String, BTreeSet<String>)> = Vec::new();
    for (key, _, _) in &files {
        for (k, v) in hive_partitions(&key[d.prefix.len().min(key.len())..]) {
            match partitions.iter_mut().find(|p| p.0 == k) {
                Some(p) => {
                    if p.1.len() < MAX_PARTITION_VALUES {
                        p.1.insert(v);
                    }
                }
                None => partitions.push((k, BTreeSet::from([v]))),
            }
        }
    }
    let partitions: Vec<PartitionColumn> = partitions
        .into_iter()
        .map(|(name, values)| {
            let data_type = values.iter().fold(types::NULL.to_string(), |t, v| {
                types::merge(&t, types::infer_text(v))
            });
            PartitionColumn {
                name,
                data_type: if data_type == types::NULL {
                    "string".into()
                } else {
                    data_type
                },
                values: values.into_iter().collect(),
            }
        })
        .collect();
    // Sample files spread over the listing, newest structure last.
    let n = files.len();
    let picks: BTreeSet<usize> = (0..SAMPLE_FILES.min(n))
        .map(|i| {
            if SAMPLE_FILES >= n {
                i
            } else {
                i * (n - 1) / (SAMPLE_FILES - 1)
            }
        })
        .collect();
    let mut columns = Vec::new();
    let mut delimiter = None;
    for (j, i) in picks.iter().enumerate() {
        let (key, size, _) = &files[*i];
        let (delim, cols) = infer_file(db, blobs, &d.bucket, key, *size, &format).await?;
        delimiter = delimiter.or(delim);
        merge_columns(&mut columns, cols, j == 0);
    }
    let partition_names: Vec<&str> = partitions.iter().map(|p| p.name.as_str()).collect();
    columns.retain(|c| !partition_names.contains(&c.name.as_str()));
    let schema = Schema {
        format: format.clone(),
        delimiter: delimiter.map(|c| c.to_string()),
        columns,
        partitions,
        files_total: n as u64,
        files_sampled: picks.len() as u64,
    };
    record(db, dataset_id, schema).await
}

/// Stores a crawled schema: a new version if the structure changed, otherwise the
/// latest version is refreshed in place (partition values, file counts, time).
async fn record(db: &Db, dataset_id: i64, schema: Schema) -> Result<CrawlResult, Error> {
    let changed = db
        .write(move |conn| {
            let latest = version_in(conn, dataset_id, None)?;
            let now = meta::now_millis();
            let text = serde_json::to_string(&schema).map_err(json_err)?;
            let changed = match &latest {
                Some(l) if l.schema.same_structure(&schema) => {
                    conn.prepare_cached(
                        "UPDATE dataset_schemas SET schema = ?3, crawled_at = ?4
                         WHERE dataset_id = ?1 AND version = ?2",
                    )?
                    .execute(params![dataset_id, l.version, text, now])?;
                    false
                }
                _ => {
                    let version = latest.as_ref().map_or(1, |l| l.version + 1);
                    let d = latest
                        .as_ref()
                        .map(|l| serde_json::to_string(&diff(&l.schema, &schema)))
                        .transpose()
                        .map_err(json_err)?;
                    conn.prepare_cached(
                        "INSERT INTO dataset_schemas (dataset_id, version, crawled_at, schema, diff)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![dataset_id, version, now, text, d])?;
                    true
                }
            };
            // Remember the detected format, and make the columns searchable.
            conn.prepare_cached("UPDATE datasets SET format = COALESCE(format, ?2) WHERE id = ?1")?
                .execute(params![dataset_id, schema.format])?;
            super::search::index(conn, dataset_id)?;
            Ok(changed)
        })
        .await?;
    let version = db
        .read(move |conn| version_in(conn, dataset_id, None))
        .await?
        .ok_or_else(|| Error::NotFound(format!("dataset {dataset_id} was deleted")))?;
    Ok(CrawlResult { changed, version })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_and_formats() {
        assert_eq!(
            hive_partitions("year=2024/month=05/part-0.parquet"),
            vec![
                ("year".into(), "2024".into()),
                ("month".into(), "05".into())
            ]
        );
        assert_eq!(
            hive_partitions("dt=2024-01-01%2010%3A00/x.csv")[0].1,
            "2024-01-01 10:00"
        );
        assert_eq!(format_of("a/b/part-0.snappy.parquet"), Some("parquet"));
        assert_eq!(format_of("a/_SUCCESS"), None);
        assert_eq!(format_of("a/.hidden.csv"), None);
        assert_eq!(format_of("a/data.TSV"), Some("csv"));
    }

    #[test]
    fn diffs() {
        let col = |n: &str, t: &str| Column {
            name: n.into(),
            data_type: t.into(),
            nullable: false,
        };
        let s = |cols: Vec<Column>| Schema {
            format: "csv".into(),
            delimiter: None,
            columns: cols,
            partitions: vec![],
            files_total: 1,
            files_sampled: 1,
        };
        let a = s(vec![col("id", "integer"), col("x", "string")]);
        let b = s(vec![col("id", "float"), col("y", "date")]);
        let d = diff(&a, &b);
        assert_eq!(d.added, vec![col("y", "date")]);
        assert_eq!(d.removed, vec![col("x", "string")]);
        assert_eq!(d.retyped[0].to, "float");
        assert!(a.same_structure(&a.clone()));
        assert!(!a.same_structure(&b));
    }
}
