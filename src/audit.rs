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

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderValue;

use rusqlite::{Connection, OptionalExtension, params};
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

/// What a request leaves for the audit trail: shared handles where the request path
/// already holds them, nothing formatted. Nothing in it may share bytes with the request
/// itself: hyper parses a request's header section in place in its read buffer, and a
/// header value or URI kept until the record is written (a batch, up to 250 ms later)
/// keeps that buffer alive, so every request on the connection needed a new one (an 8 KiB
/// allocation per request, and memory held by every record in the queue).
pub struct Entry {
    /// Unix ms when the request arrived.
    pub time_ms: i64,
    pub request_id: Arc<str>,
    /// Who authenticated, if anyone (name and access key id come from here).
    pub principal: Option<crate::iam::Principal>,
    /// The access key id an unauthenticated request named ([`Claim::access_key_id`]).
    pub claimed_key: Option<String>,
    /// The S3 operation or `METHOD /api/v1/route`.
    pub action: Cow<'static, str>,
    pub resource: String,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub source: Option<IpAddr>,
    /// At most 256 characters ([`user_agent`]).
    pub user_agent: Option<Box<str>>,
}

/// The `User-Agent` value the audit trail keeps: its first 256 characters, copied.
pub fn user_agent(value: &HeaderValue) -> Option<Box<str>> {
    value.to_str().ok().map(|ua| Box::from(truncated(ua)))
}

/// The parts of a request that name an access key id, unverified: the
/// `Authorization` header, or else the query of a presigned URL.
pub struct Claim {
    pub authorization: Option<HeaderValue>,
    pub uri: http::Uri,
}

impl Claim {
    /// The access key id the request names (even if its signature was wrong). Only the
    /// id is taken, never a signature.
    pub fn access_key_id(&self) -> Option<String> {
        let valid = |s: &str| {
            (!s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric()))
                .then(|| s.to_string())
        };
        if let Some(v) = self.authorization.as_ref().and_then(|v| v.to_str().ok()) {
            // SDKs put the credential first; look further only when they did not.
            let rest = v
                .strip_prefix("AWS4-HMAC-SHA256 Credential=")
                .or_else(|| v.split_once("Credential=").map(|(_, r)| r));
            if let Some(rest) = rest {
                return valid(rest.split('/').next().unwrap_or(""));
            }
            if let Some(rest) = v.strip_prefix("AWS ") {
                return valid(rest.split(':').next().unwrap_or(""));
            }
            return None;
        }
        for pair in self.uri.query()?.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_encoding::percent_decode_str(v).decode_utf8_lossy();
            match k {
                "X-Amz-Credential" => return valid(v.split('/').next().unwrap_or("")),
                "AWSAccessKeyId" => return valid(&v),
                _ => {}
            }
        }
        None
    }
}

/// The first 256 characters of a user agent.
fn truncated(user_agent: &str) -> &str {
    match user_agent.char_indices().nth(256) {
        Some((end, _)) => user_agent.get(..end).unwrap_or(user_agent),
        None => user_agent,
    }
}

/// The resource a handler acted on, as a response extension (S3 fills it in).
#[derive(Debug, Clone)]
pub struct AuditResource(pub String);

/// The REST route template that served a request, as a response extension.
#[derive(Debug, Clone)]
pub struct RouteName(pub Arc<str>);

enum Msg {
    Entry(Box<Entry>),
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
    pub fn record(&self, e: Entry) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(Msg::Entry(Box::new(e))) {
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
    let mut batch: Vec<Entry> = Vec::new();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        // Take whatever queued up while the previous batch was being committed.
        while let Some(m) = next.take() {
            match m {
                Msg::Entry(e) => batch.push(*e),
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

/// Rows per multi-row `INSERT`: one statement step per 32 records instead of per record
/// (the per-statement work was about a third of an audit insert).
const ROWS_PER_INSERT: usize = 32;
/// Columns of an audit row, in the order [`bind`] binds them.
const COLUMNS: usize = 11;
/// Records per `audit_spans` row, about: the writer extends the newest span until it
/// covers this many ids (plus the batch that crosses the mark).
const SPAN_IDS: i64 = 4096;

/// `INSERT INTO audit_log ... VALUES (...)` with `rows` rows of placeholders.
fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO audit_log (time, request_id, principal, access_key_id, action, resource, \
         status, bytes_in, bytes_out, source, user_agent) VALUES ",
    );
    for row in 0..rows {
        if row > 0 {
            sql.push(',');
        }
        sql.push_str("(?,?,?,?,?,?,?,?,?,?,?)");
    }
    sql
}

fn insert(conn: &Connection, entries: &[Entry]) -> Result<(), meta::Error> {
    static MANY: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| insert_sql(ROWS_PER_INSERT));
    static ONE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| insert_sql(1));
    let (Some(min_time), Some(max_time)) = (
        entries.iter().map(|e| e.time_ms).min(),
        entries.iter().map(|e| e.time_ms).max(),
    ) else {
        return Ok(());
    };
    let mut chunks = entries.chunks_exact(ROWS_PER_INSERT);
    if chunks.len() > 0 {
        let mut stmt = conn.prepare_cached(&MANY)?;
        for chunk in &mut chunks {
            for (row, e) in chunk.iter().enumerate() {
                bind(&mut stmt, row * COLUMNS, e)?;
            }
            stmt.raw_execute()?;
        }
    }
    let mut stmt = conn.prepare_cached(&ONE)?;
    for e in chunks.remainder() {
        bind(&mut stmt, 0, e)?;
        stmt.raw_execute()?;
    }
    // One writer, one transaction: the batch got consecutive ids ending here.
    let last_id = conn.last_insert_rowid();
    let first_id = last_id - entries.len() as i64 + 1;
    let extended = conn
        .prepare_cached(
            "UPDATE audit_spans SET last_id = ?2, min_time = min(min_time, ?3),
                 max_time = max(max_time, ?4)
             WHERE id = (SELECT max(id) FROM audit_spans)
               AND last_id < ?1 AND last_id - first_id < ?5",
        )?
        .execute(params![first_id, last_id, min_time, max_time, SPAN_IDS])?;
    if extended == 0 {
        conn.prepare_cached(
            "INSERT INTO audit_spans (first_id, last_id, min_time, max_time)
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![first_id, last_id, min_time, max_time])?;
    }
    Ok(())
}

/// A request id as stored: Tarn's own (16 upper-case hex digits) as the 64-bit integer
/// they spell, which is cheaper to bind and store than the text.
fn stored_request_id(id: &str) -> Option<i64> {
    if id.len() != 16 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F')) {
        return None;
    }
    u64::from_str_radix(id, 16).ok().map(|n| n as i64)
}

/// The request id of a stored row ([`stored_request_id`] undone).
fn read_request_id(value: rusqlite::types::ValueRef<'_>) -> String {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Integer(n) => format!("{:016X}", n as u64),
        ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Real(r) => r.to_string(),
        ValueRef::Null => String::new(),
    }
}

/// Binds the row of `e` to the placeholders after the first `before`.
fn bind(stmt: &mut rusqlite::Statement<'_>, before: usize, e: &Entry) -> rusqlite::Result<()> {
    let (principal, access_key_id) = match &e.principal {
        Some(p) => (Some(p.name()), p.access_key_id.as_deref()),
        None => (None, e.claimed_key.as_deref()),
    };
    let mut ip_buf = [0u8; 15];
    let source = e.source.map(|ip| ip_text(ip, &mut ip_buf));
    let numeric_id = stored_request_id(&e.request_id);
    let text_id: &str = &e.request_id;
    let request_id: &dyn rusqlite::ToSql = match &numeric_id {
        Some(n) => n,
        None => &text_id,
    };
    let values: [&dyn rusqlite::ToSql; COLUMNS] = [
        &e.time_ms,
        request_id,
        &principal,
        &access_key_id,
        &&*e.action,
        &e.resource,
        &e.status,
        &(e.bytes_in as i64),
        &(e.bytes_out as i64),
        &source.as_deref(),
        &e.user_agent.as_deref(),
    ];
    for (i, v) in values.into_iter().enumerate() {
        stmt.raw_bind_parameter(before + i + 1, v)?;
    }
    Ok(())
}

/// The text of a peer address. IPv4 (nearly every peer) is written out by hand into
/// `buf`: the formatter cost ~1,700 instructions per record, a tenth of the row.
fn ip_text(ip: IpAddr, buf: &mut [u8; 15]) -> Cow<'_, str> {
    let IpAddr::V4(v4) = ip else {
        return Cow::Owned(ip.to_string());
    };
    let mut len = 0;
    let mut push = |b: u8| {
        if let Some(slot) = buf.get_mut(len) {
            *slot = b;
            len += 1;
        }
    };
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            push(b'.');
        }
        if octet >= 100 {
            push(b'0' + octet / 100);
        }
        if octet >= 10 {
            push(b'0' + octet / 10 % 10);
        }
        push(b'0' + octet % 10);
    }
    match std::str::from_utf8(buf.get(..len).unwrap_or_default()) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => Cow::Owned(ip.to_string()),
    }
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
            "SELECT id, time, request_id, principal, access_key_id, action, resource,
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
        match f.outcome {
            None => {}
            Some(Outcome::Allowed) => sql.push_str(" AND status < 400"),
            Some(Outcome::Denied) => sql.push_str(" AND status IN (401, 403)"),
            Some(Outcome::Error) => sql.push_str(" AND status >= 400 AND status NOT IN (401, 403)"),
        }
        // A time window is first an id range: from the first span that reaches the
        // window to the last that starts before its end.
        if let Some(s) = f.since {
            sql.push_str(
                " AND id >= (SELECT coalesce(min(first_id), 9223372036854775807)
                             FROM audit_spans WHERE max_time >= ?) AND time >= ?",
            );
            args.push(s.into());
            args.push(s.into());
        }
        if let Some(u) = f.until {
            sql.push_str(
                " AND id <= (SELECT coalesce(max(last_id), -1)
                             FROM audit_spans WHERE min_time < ?) AND time < ?",
            );
            args.push(u.into());
            args.push(u.into());
        }
        sql.push_str(" ORDER BY id LIMIT ?");
        args.push((f.limit as i64).into());
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| {
            let time_ms: i64 = r.get(1)?;
            let status: u16 = r.get(7)?;
            Ok(Record {
                id: r.get(0)?,
                time: crate::catalog::rfc3339(time_ms),
                time_ms,
                request_id: read_request_id(r.get_ref(2)?),
                principal: r.get(3)?,
                access_key_id: r.get(4)?,
                action: r.get(5)?,
                resource: r.get(6)?,
                outcome: Outcome::of(status),
                status,
                bytes_in: r.get::<_, i64>(8)?.max(0) as u64,
                bytes_out: r.get::<_, i64>(9)?.max(0) as u64,
                source: r.get(10)?,
                user_agent: r.get(11)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    })
    .await
}

/// Deletes every record older than `cutoff_ms` (Unix ms), a span at a time, so that a
/// large purge does not hold the metadata writer (and the data path behind it) for
/// long. Returns how many were deleted.
pub async fn purge_before(db: &Db, cutoff_ms: i64) -> Result<u64, meta::Error> {
    let mut total = 0u64;
    loop {
        let deleted = db
            .write(move |conn| purge_oldest_span(conn, cutoff_ms))
            .await?;
        match deleted {
            Some(n) => total += n,
            None => return Ok(total),
        }
    }
}

/// Deletes the records older than `cutoff_ms` in the oldest span that has any, and
/// drops or narrows that span. `None` when no span has such records.
fn purge_oldest_span(conn: &Connection, cutoff_ms: i64) -> Result<Option<u64>, meta::Error> {
    let span = conn
        .prepare_cached(
            "SELECT id, first_id, last_id FROM audit_spans WHERE min_time < ?1
             ORDER BY first_id LIMIT 1",
        )?
        .query_row(params![cutoff_ms], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .optional()?;
    let Some((span, first, last)) = span else {
        return Ok(None);
    };
    let deleted = conn
        .prepare_cached("DELETE FROM audit_log WHERE id BETWEEN ?1 AND ?2 AND time < ?3")?
        .execute(params![first, last, cutoff_ms])?;
    // What is left of the span (nothing, or the records of requests that started at
    // or after the cutoff) gets exact bounds, so the span is not visited again.
    let left: (Option<i64>, Option<i64>) = conn
        .prepare_cached("SELECT min(time), max(time) FROM audit_log WHERE id BETWEEN ?1 AND ?2")?
        .query_row(params![first, last], |r| Ok((r.get(0)?, r.get(1)?)))?;
    match left {
        (Some(min_time), Some(max_time)) => {
            conn.prepare_cached(
                "UPDATE audit_spans SET min_time = ?2, max_time = ?3 WHERE id = ?1",
            )?
            .execute(params![span, min_time, max_time])?;
        }
        _ => {
            conn.prepare_cached("DELETE FROM audit_spans WHERE id = ?1")?
                .execute(params![span])?;
        }
    }
    Ok(Some(deleted as u64))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iam::{Principal, Role, User};

    #[test]
    fn peer_addresses_read_as_display_writes_them() {
        let mut addrs: Vec<IpAddr> = ["0.0.0.0", "255.255.255.255", "10.0.100.9", "::1"]
            .iter()
            .map(|a| a.parse().expect("address"))
            .collect();
        addrs.extend((0..=255u8).map(|b| IpAddr::from([b, 255 - b, b / 7, b.wrapping_mul(31)])));
        addrs.push("::ffff:1.2.3.4".parse().expect("mapped"));
        for ip in addrs {
            let mut buf = [0u8; 15];
            assert_eq!(ip_text(ip, &mut buf), ip.to_string());
        }
    }

    fn entry(i: usize) -> Entry {
        // Every third request authenticated; the others name a key they may not own.
        let principal = i.is_multiple_of(3).then(|| Principal {
            user: Arc::new(User {
                id: 1,
                name: format!("user{i}"),
                role: Role::Member,
                groups: Vec::new(),
                grants: Vec::new(),
            }),
            access_key_id: Some(format!("KEY{i}").into()),
            manifest: None,
        });
        Entry {
            time_ms: 1_000 + i as i64,
            request_id: Arc::from(format!("req{i}")),
            principal,
            claimed_key: Claim {
                authorization: Some(HeaderValue::from_static(
                    "AWS4-HMAC-SHA256 Credential=CLAIMED/20250101/us-east-1/s3/aws4_request",
                )),
                uri: http::Uri::from_static("/b/k"),
            }
            .access_key_id(),
            action: Cow::Borrowed("GetObject"),
            resource: format!("b/k{i}"),
            status: if i.is_multiple_of(2) { 200 } else { 403 },
            bytes_in: i as u64,
            bytes_out: 2 * i as u64,
            source: Some(IpAddr::from([127, 0, 0, 1])),
            user_agent: user_agent(&HeaderValue::from_static("test-agent")),
        }
    }

    /// Batches that fill whole multi-row statements and a remainder are all stored,
    /// in order, each field in its column.
    #[tokio::test]
    async fn a_batch_is_stored_row_by_row_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&dir.path().join("t.db")).expect("open");
        let n = 2 * ROWS_PER_INSERT + 5;
        let entries: Vec<Entry> = (0..n).map(entry).collect();
        db.write(move |conn| insert(conn, &entries))
            .await
            .expect("insert");
        let rows = query(
            &db,
            Filter {
                limit: 1000,
                ..Filter::default()
            },
        )
        .await
        .expect("query");
        assert_eq!(rows.len(), n);
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(r.request_id, format!("req{i}"));
            assert_eq!(r.time_ms, 1_000 + i as i64);
            assert_eq!(r.resource, format!("b/k{i}"));
            assert_eq!(r.action, "GetObject");
            if i.is_multiple_of(3) {
                assert_eq!(r.principal.as_deref(), Some(format!("user{i}").as_str()));
                assert_eq!(r.access_key_id.as_deref(), Some(format!("KEY{i}").as_str()));
            } else {
                assert_eq!(r.principal, None);
                assert_eq!(r.access_key_id.as_deref(), Some("CLAIMED"));
            }
            let (status, outcome) = if i.is_multiple_of(2) {
                (200, Outcome::Allowed)
            } else {
                (403, Outcome::Denied)
            };
            assert_eq!((r.status, r.outcome), (status, outcome));
            assert_eq!((r.bytes_in, r.bytes_out), (i as u64, 2 * i as u64));
            assert_eq!(r.source.as_deref(), Some("127.0.0.1"));
            assert_eq!(r.user_agent.as_deref(), Some("test-agent"));
        }
    }

    /// Time windows go through `audit_spans`: with records written out of time order
    /// (long requests), across several spans and after a purge, a window returns
    /// exactly the records whose time is in it. So do the outcome filter (derived from
    /// the status) and request ids, stored as integers or text.
    #[tokio::test]
    async fn windows_outcomes_and_purges_agree_with_a_plain_filter() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&dir.path().join("t.db")).expect("open");
        let statuses = [200, 204, 401, 403, 404, 500, 301];
        let make = |i: usize| {
            let mut e = entry(i);
            // Every 97th record belongs to a request that started long before it ended.
            e.time_ms = if i.is_multiple_of(97) {
                500 + i as i64
            } else {
                100_000 + i as i64
            };
            e.status = statuses[i % statuses.len()];
            e.request_id = Arc::from(match i % 3 {
                0 => format!("{:016X}", i as u64 * 0x1_0000_0001),
                1 => format!("req{i}"),
                _ => format!("{:016x}", i as u64 + 0xabc),
            });
            e
        };
        let expected_id = |i: usize| make(i).request_id.to_string();
        // Batches of 3,000: spans roll over every ~4,096 ids.
        let mut written = Vec::new();
        for batch in 0..4 {
            let entries: Vec<Entry> = (batch * 3000..(batch + 1) * 3000).map(make).collect();
            db.write(move |conn| insert(conn, &entries))
                .await
                .expect("insert");
            written.extend(batch * 3000..(batch + 1) * 3000);
        }
        let check = |written: Vec<usize>| {
            let db = db.clone();
            async move {
                let windows = [
                    (None, None),
                    (Some(100_000 + 5_000), None),
                    (None, Some(100_000 + 2_500)),
                    (Some(600), Some(3_000)),
                    (Some(100_000 + 4_000), Some(100_000 + 8_200)),
                    (Some(0), Some(100)),
                ];
                for (since, until) in windows {
                    for outcome in [
                        None,
                        Some(Outcome::Allowed),
                        Some(Outcome::Denied),
                        Some(Outcome::Error),
                    ] {
                        let got: Vec<(String, i64)> = query(
                            &db,
                            Filter {
                                since,
                                until,
                                outcome,
                                limit: 100_000,
                                ..Filter::default()
                            },
                        )
                        .await
                        .expect("query")
                        .into_iter()
                        .map(|r| (r.request_id, r.time_ms))
                        .collect();
                        let want: Vec<(String, i64)> = written
                            .iter()
                            .map(|&i| (i, make(i)))
                            .filter(|(_, e)| since.is_none_or(|s| e.time_ms >= s))
                            .filter(|(_, e)| until.is_none_or(|u| e.time_ms < u))
                            .filter(|(_, e)| outcome.is_none_or(|o| Outcome::of(e.status) == o))
                            .map(|(i, e)| (expected_id(i), e.time_ms))
                            .collect();
                        assert_eq!(
                            got, want,
                            "since {since:?} until {until:?} outcome {outcome:?}"
                        );
                    }
                }
            }
        };
        check(written.clone()).await;

        // Purge everything before a cutoff inside the second span.
        let cutoff = 100_000 + 5_000;
        let purged = purge_before(&db, cutoff).await.expect("purge");
        let before = written.len();
        written.retain(|&i| make(i).time_ms >= cutoff);
        assert_eq!(purged as usize, before - written.len());
        check(written.clone()).await;
        assert_eq!(purge_before(&db, cutoff).await.expect("again"), 0);

        // Writing goes on after the purge; then everything goes.
        let entries: Vec<Entry> = (12_000..12_100).map(make).collect();
        db.write(move |conn| insert(conn, &entries))
            .await
            .expect("insert");
        written.extend(12_000..12_100);
        check(written.clone()).await;
        let all = purge_before(&db, i64::MAX).await.expect("purge all");
        assert_eq!(all as usize, written.len());
        check(Vec::new()).await;
        let spans: i64 = db
            .read(|conn| Ok(conn.query_row("SELECT count(*) FROM audit_spans", [], |r| r.get(0))?))
            .await
            .expect("spans");
        assert_eq!(spans, 0);
    }
}
