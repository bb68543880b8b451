//! The audit trail: one record per request (S3 and REST, allowed or denied),
//! built by the outermost middleware (`app::observe`) and written in batches.
//!
//! Records go through a bounded channel to one writer task, which inserts whatever
//! has queued up in a single job of the metadata writer (so they share its group
//! commit with the data path's writes). Nothing on the request path waits for the
//! database. If the queue is full the record is handed to a task that waits for
//! room: the request is not held up and the record is not dropped. [`Audit::flush`]
//! writes everything queued so far (used by the audit queries and at shutdown).
//!
//! Records hold no secrets: the access key id, never a signature, token or secret.

use std::sync::Arc;

use rusqlite::{Connection, params};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::meta::{self, Db};

/// Records inserted per database job, at most.
const MAX_BATCH: usize = 2048;

/// How the request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// 1xx to 3xx.
    Allowed,
    /// 401 or 403.
    Denied,
    /// Any other 4xx or 5xx.
    Error,
}

impl Outcome {
    /// From the response status.
    pub fn of(status: u16) -> Outcome {
        match status {
            401 | 403 => Outcome::Denied,
            s if s >= 400 => Outcome::Error,
            _ => Outcome::Allowed,
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
            Outcome::Error => "error",
        }
    }
    /// Parses a filter value.
    pub fn parse(s: &str) -> Option<Outcome> {
        match s {
            "allowed" => Some(Outcome::Allowed),
            "denied" => Some(Outcome::Denied),
            "error" => Some(Outcome::Error),
            _ => None,
        }
    }
}

/// One audit record.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Record {
    /// Set when stored; 0 before.
    pub id: i64,
    /// RFC 3339 (milliseconds) when read back; the writer stores Unix ms.
    pub time: String,
    #[serde(skip)]
    pub time_ms: i64,
    pub request_id: String,
    /// The user; absent when the request did not authenticate.
    pub principal: Option<String>,
    /// The access key that signed (or claimed to sign) the request.
    pub access_key_id: Option<String>,
    /// The S3 operation (`GetObject`) or the REST route (`GET /api/v1/datasets/{id}`).
    pub action: String,
    /// `bucket/key`, `bucket`, or the REST path.
    pub resource: String,
    pub outcome: Outcome,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub source: Option<String>,
    pub user_agent: Option<String>,
}

/// The resource a handler acted on, as a response extension (S3 fills it in).
#[derive(Debug, Clone)]
pub struct AuditResource(pub String);

/// The REST route template that served a request, as a response extension.
#[derive(Debug, Clone)]
pub struct RouteName(pub Arc<str>);

enum Msg {
    Record(Box<Record>),
    Flush(oneshot::Sender<()>),
}

/// Handle to the audit writer. Cheap to clone. Disabled when auditing is off.
#[derive(Clone)]
pub struct Audit {
    tx: Option<mpsc::Sender<Msg>>,
}

impl Audit {
    /// Starts the writer task (`enabled`), or a handle that drops everything.
    pub fn start(db: Db, enabled: bool, capacity: usize) -> Audit {
        if !enabled {
            return Audit { tx: None };
        }
        let (tx, rx) = mpsc::channel(capacity.max(1));
        tokio::spawn(writer(db, rx));
        Audit { tx: Some(tx) }
    }

    /// Whether records are kept.
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues a record without waiting.
    pub fn record(&self, r: Record) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(Msg::Record(Box::new(r))) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(m)) => {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _ = tx.send(m).await;
                });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::warn!("audit writer is gone; record lost");
            }
        }
    }

    /// Records waiting in the queue for the writer (for `/metrics`).
    pub fn queue_depth(&self) -> usize {
        self.tx
            .as_ref()
            .map(|tx| tx.max_capacity().saturating_sub(tx.capacity()))
            .unwrap_or(0)
    }

    /// Waits until every record queued before this call is committed.
    pub async fn flush(&self) {
        let Some(tx) = &self.tx else { return };
        let (done, wait) = oneshot::channel();
        if tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn writer(db: Db, mut rx: mpsc::Receiver<Msg>) {
    let mut batch: Vec<Record> = Vec::new();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        // Take whatever queued up while the previous batch was being committed.
        while let Some(m) = next.take() {
            match m {
                Msg::Record(r) => batch.push(*r),
                Msg::Flush(done) => waiting.push(done),
            }
            if batch.len() >= MAX_BATCH {
                break;
            }
            next = rx.try_recv().ok();
        }
        if !batch.is_empty() {
            let records = std::mem::take(&mut batch);
            let n = records.len();
            // A small batch rides along with the data path's next commit rather than
            // paying an fsync of its own; a full one (more are queued) or one that
            // someone waits for is committed at once.
            let res = if waiting.is_empty() && n < MAX_BATCH {
                db.write_lazy(move |conn| insert(conn, &records)).await
            } else {
                db.write_uncached(move |conn| insert(conn, &records)).await
            };
            if let Err(e) = res {
                tracing::error!(error = %e, records = n, "writing audit records failed");
            }
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
}

fn insert(conn: &Connection, records: &[Record]) -> Result<(), meta::Error> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO audit_log (time, request_id, principal, access_key_id, action, resource,
             outcome, status, bytes_in, bytes_out, source, user_agent)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    for r in records {
        stmt.execute(params![
            r.time_ms,
            r.request_id,
            r.principal,
            r.access_key_id,
            r.action,
            r.resource,
            r.outcome.as_str(),
            r.status,
            r.bytes_in as i64,
            r.bytes_out as i64,
            r.source,
            r.user_agent,
        ])?;
    }
    Ok(())
}

/// Filters of an audit query. Every field is optional.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub principal: Option<String>,
    pub action: Option<String>,
    /// Records whose resource starts with this.
    pub resource: Option<String>,
    pub outcome: Option<Outcome>,
    /// Unix ms, inclusive.
    pub since: Option<i64>,
    /// Unix ms, exclusive.
    pub until: Option<i64>,
    /// Only ids greater than this (the cursor).
    pub after: Option<i64>,
    pub limit: usize,
}

/// Reads records in id (time) order.
pub async fn query(db: &Db, f: Filter) -> Result<Vec<Record>, meta::Error> {
    db.read(move |conn| {
        let mut sql = String::from(
            "SELECT id, time, request_id, principal, access_key_id, action, resource, outcome,
                    status, bytes_in, bytes_out, source, user_agent FROM audit_log WHERE 1",
        );
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(a) = f.after {
            sql.push_str(" AND id > ?");
            args.push(a.into());
        }
        if let Some(p) = &f.principal {
            sql.push_str(" AND principal = ?");
            args.push(p.clone().into());
        }
        if let Some(a) = &f.action {
            sql.push_str(" AND action = ?");
            args.push(a.clone().into());
        }
        if let Some(r) = &f.resource {
            sql.push_str(" AND substr(resource, 1, ?) = ?");
            args.push((r.chars().count() as i64).into());
            args.push(r.clone().into());
        }
        if let Some(o) = f.outcome {
            sql.push_str(" AND outcome = ?");
            args.push(o.as_str().to_string().into());
        }
        if let Some(s) = f.since {
            sql.push_str(" AND time >= ?");
            args.push(s.into());
        }
        if let Some(u) = f.until {
            sql.push_str(" AND time < ?");
            args.push(u.into());
        }
        sql.push_str(" ORDER BY id LIMIT ?");
        args.push((f.limit as i64).into());
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| {
            let time_ms: i64 = r.get(1)?;
            Ok(Record {
                id: r.get(0)?,
                time: crate::catalog::rfc3339(time_ms),
                time_ms,
                request_id: r.get(2)?,
                principal: r.get(3)?,
                access_key_id: r.get(4)?,
                action: r.get(5)?,
                resource: r.get(6)?,
                outcome: Outcome::parse(&r.get::<_, String>(7)?).unwrap_or(Outcome::Error),
                status: r.get(8)?,
                bytes_in: r.get::<_, i64>(9)?.max(0) as u64,
                bytes_out: r.get::<_, i64>(10)?.max(0) as u64,
                source: r.get(11)?,
                user_agent: r.get(12)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    })
    .await
}

/// Records deleted per database job when purging, so that a large purge does not
/// hold the metadata writer (and the data path behind it) for long.
const PURGE_BATCH: i64 = 5000;

/// Deletes every record older than `cutoff_ms` (Unix ms), in batches. Returns how
/// many were deleted.
pub async fn purge_before(db: &Db, cutoff_ms: i64) -> Result<u64, meta::Error> {
    let mut total = 0u64;
    loop {
        let n = db
            .write(move |conn| {
                Ok(conn
                    .prepare_cached(
                        "DELETE FROM audit_log WHERE id IN (
                             SELECT id FROM audit_log WHERE time < ?1 ORDER BY time LIMIT ?2)",
                    )?
                    .execute(params![cutoff_ms, PURGE_BATCH])?)
            })
            .await?;
        total += n as u64;
        if (n as i64) < PURGE_BATCH {
            return Ok(total);
        }
    }
}

/// Deletes records older than `retention` every `interval`, for as long as it runs.
pub async fn retain(db: Db, retention: std::time::Duration, interval: std::time::Duration) {
    let mut tick = tokio::time::interval(interval);
    loop {
        tick.tick().await;
        let cutoff = meta::now_millis() - retention.as_millis().min(i64::MAX as u128) as i64;
        match purge_before(&db, cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(records = n, "deleted audit records past retention"),
            Err(e) => tracing::warn!(error = %e, "audit retention purge failed"),
        }
    }
}
