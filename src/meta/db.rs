//! The SQLite connection set: one writer thread with group commit, a pool of readers.
//!
//! # Why a writer thread
//! SQLite allows one writer at a time, and with `synchronous=FULL` every commit costs an
//! fsync. Sending every write to a single thread lets that thread run all the writes that
//! queued up while the previous commit was syncing inside *one* transaction (each in its
//! own savepoint, so one failing write does not undo its neighbours) and acknowledge them
//! together after one fsync. Under load that turns N fsyncs into one; alone, a write pays
//! exactly what it would have paid anyway.
//!
//! Readers use their own connections (WAL lets them run beside the writer) on the
//! blocking thread pool, so no SQLite call ever runs on an async worker. Each read runs
//! in one read transaction: everything it reads comes from one snapshot.
//!
//! # The write generation
//! The writer counts the batches it has finished that held at least one write that may
//! change cached rows (all but [`Db::write_uncached`] and [`Db::write_lazy`]), and
//! bumps the count after the commit and before any of the batch's writers hear back. A
//! reader that loads the count before it starts reading knows that its snapshot holds
//! every write acknowledged before that load; the object cache ([`super::cache`]) keys
//! its entries on it. This holds only if every write to the data goes through this `Db`'s writer:
//! open a database file once per process and share the handle. The one other writer is
//! the admin CLI: it changes IAM tables (cached elsewhere) and, deleting a user, their
//! stored manifest objects; it bumps `iam_version` after its last write, and the
//! server, noticing within its IAM poll interval, calls [`Db::invalidate_cache`].

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use super::Error;

/// Upper bound on writes merged into one transaction.
const MAX_BATCH: usize = 256;
/// Number of idle read connections kept open. Reads beyond this many at once open a
/// connection of their own, which is closed afterwards; at concurrency 16 the old bound
/// of 8 made every other read open a connection (and parse the schema) and close it.
const READERS: usize = 32;
/// Longest a lazy write waits for company before it is committed alone.
const LAZY_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

/// A write job: runs inside a savepoint and returns whether it succeeded plus a
/// continuation that delivers its result once the transaction's fate is known.
type WriteJob = Box<dyn FnOnce(&Connection) -> (bool, Reply) + Send>;

/// What the writer thread is asked to do.
enum Job {
    /// A write whose caller waits for its commit; with `true`, it may change what
    /// readers cache, and its batch bumps the write generation.
    Write(WriteJob, bool),
    /// A write that waits (up to [`LAZY_WAIT`]) to ride along with the next batch of
    /// other writes instead of paying a commit (an fsync) of its own.
    Lazy(WriteJob),
    /// Fold the WAL back into the database file (at shutdown), then reply.
    Checkpoint(oneshot::Sender<()>),
}
type Reply = Box<dyn FnOnce(Result<(), Error>) + Send>;

/// How a write is submitted (see [`Db::write`], [`Db::write_uncached`], [`Db::write_lazy`]).
#[derive(Clone, Copy)]
enum Kind {
    Regular,
    Uncached,
    Lazy,
}

/// Handle to the metadata database. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    writer: std::sync::mpsc::SyncSender<Job>,
    readers: Arc<Mutex<Vec<Connection>>>,
    path: Arc<std::path::PathBuf>,
    /// Finished batches that may have changed cached rows (see the module docs).
    generation: Arc<AtomicU64>,
    /// Recently read objects, valid for one write generation.
    pub(super) cache: Arc<super::cache::ObjectCache>,
}

/// The SQL migrations, embedded at build time; the index + 1 is the schema version.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_objects",
        include_str!("../../migrations/0001_objects.sql"),
    ),
    (
        "0002_upload_checksum_type",
        include_str!("../../migrations/0002_upload_checksum_type.sql"),
    ),
    (
        "0003_catalog",
        include_str!("../../migrations/0003_catalog.sql"),
    ),
    ("0004_iam", include_str!("../../migrations/0004_iam.sql")),
    (
        "0005_inline_objects",
        include_str!("../../migrations/0005_inline_objects.sql"),
    ),
    (
        "0006_checkout",
        include_str!("../../migrations/0006_checkout.sql"),
    ),
    (
        "0007_search_facets",
        include_str!("../../migrations/0007_search_facets.sql"),
    ),
    (
        "0008_search_log",
        include_str!("../../migrations/0008_search_log.sql"),
    ),
    (
        "0009_audit_outcome_check",
        include_str!("../../migrations/0009_audit_outcome_check.sql"),
    ),
    (
        "0010_audit_spans",
        include_str!("../../migrations/0010_audit_spans.sql"),
    ),
];

fn open(path: &Path, read_only: bool) -> Result<Connection, Error> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    if !read_only {
        // FULL: a commit is on disk before it is acknowledged (NORMAL may lose the last
        // transactions on power loss in WAL mode).
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
        )?;
    }
    // The writer's page cache survives its own commits; a reader's is emptied at the
    // start of any read transaction after another connection wrote (every request
    // writes an audit record), so a large one only holds memory (2 MB each for up to
    // 32 readers, 16-20 of them open after the benchmark). 512 KiB (128 pages) holds
    // the interior pages and the leaves one read transaction touches; GETs that miss the
    // object cache were no slower (1.04x in an A/B). The writer's 8 MB
    // (16 until session 7) hold the B-trees' upper levels; with 16, RSS was 8-10 MiB
    // higher and small PUTs no faster (A/B, two runs of 3 rounds: 0.95-1.15x).
    let cache = if read_only {
        "PRAGMA cache_size=-512;"
    } else {
        "PRAGMA cache_size=-8000;"
    };
    conn.execute_batch(cache)?;
    conn.execute_batch("PRAGMA temp_store=MEMORY;")?;
    Ok(conn)
}

/// Applies every migration newer than the database's `user_version`, each in its own
/// transaction together with the version bump.
fn migrate(conn: &mut Connection) -> Result<(), Error> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let current = usize::try_from(current).unwrap_or(usize::MAX);
    if current > MIGRATIONS.len() {
        return Err(Error::SchemaTooNew {
            found: current,
            known: MIGRATIONS.len(),
        });
    }
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql).map_err(|e| Error::Migration {
            name: (*name).to_string(),
            source: e,
        })?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(migration = name, "applied schema migration");
    }
    Ok(())
}

impl Db {
    /// Opens (creating if needed) and migrates the database at `path`, and starts the writer.
    /// Open a file once per process and clone the handle: the object cache relies on
    /// seeing every write (see the module docs).
    pub fn open(path: &Path) -> Result<Db, Error> {
        let mut conn = open(path, false)?;
        migrate(&mut conn)?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(4096);
        let generation = Arc::new(AtomicU64::new(0));
        let bumps = generation.clone();
        std::thread::Builder::new()
            .name("tarn-db-writer".into())
            .spawn(move || writer_loop(conn, rx, &bumps))
            .map_err(Error::Thread)?;
        Ok(Db {
            writer: tx,
            readers: Arc::new(Mutex::new(Vec::new())),
            path: Arc::new(path.to_path_buf()),
            generation,
            cache: Arc::new(super::cache::ObjectCache::default()),
        })
    }

    /// The write generation (see the module docs): load it *before* a read starts, and
    /// the read's snapshot holds every write acknowledged before the load.
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Empties the object cache (by moving to a new generation): for writes made by
    /// another process, which this writer never saw. The IAM layer calls it when it
    /// notices that `tarn admin` changed the database.
    pub fn invalidate_cache(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Runs `f` in the writer's transaction. The result is returned only after the
    /// transaction holding it has committed durably; if `f` fails, its changes are
    /// rolled back and nothing else is affected.
    pub async fn write<R, F>(&self, f: F) -> Result<R, Error>
    where
        F: FnOnce(&Connection) -> Result<R, Error> + Send + 'static,
        R: Send + 'static,
    {
        self.submit(f, Kind::Regular).await
    }

    /// Like [`Db::write`] (durable before it returns) for writes that change nothing
    /// the object cache holds: audit records, the "last used" times of access keys. The
    /// batch it commits in does not bump the write generation, so it does not empty the
    /// cache. It must never change buckets, objects or their bytes.
    pub async fn write_uncached<R, F>(&self, f: F) -> Result<R, Error>
    where
        F: FnOnce(&Connection) -> Result<R, Error> + Send + 'static,
        R: Send + 'static,
    {
        self.submit(f, Kind::Uncached).await
    }

    /// Like [`Db::write`] with the caller's own error type: a layer whose writes fail
    /// with typed errors (IAM, checkout) gets them back as they were.
    pub async fn write_with<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(&Connection) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        self.submit(f, Kind::Regular).await
    }

    /// Like [`Db::write`] for work nobody waits on (audit records): it joins the next
    /// transaction that other writes start, or commits alone after [`LAZY_WAIT`], so
    /// under load it adds no commit of its own.
    ///
    /// Like [`Db::write_uncached`], it does not bump the write generation, so it must
    /// never change what the object cache holds (buckets, objects, their bytes).
    pub async fn write_lazy<R, F>(&self, f: F) -> Result<R, Error>
    where
        F: FnOnce(&Connection) -> Result<R, Error> + Send + 'static,
        R: Send + 'static,
    {
        self.submit(f, Kind::Lazy).await
    }

    async fn submit<R, E, F>(&self, f: F, kind: Kind) -> Result<R, E>
    where
        F: FnOnce(&Connection) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: WriteJob = Box::new(move |conn| {
            let res = f(conn);
            let ok = res.is_ok();
            let reply: Reply = Box::new(move |commit: Result<(), Error>| {
                let _ = tx.send(commit.map_err(E::from).and(res));
            });
            (ok, reply)
        });
        let job = match kind {
            Kind::Regular => Job::Write(job, true),
            Kind::Uncached => Job::Write(job, false),
            Kind::Lazy => Job::Lazy(job),
        };
        match self.writer.try_send(job) {
            Ok(()) => {}
            Err(std::sync::mpsc::TrySendError::Full(job)) => {
                // 4096 writes are queued: wait for room off the async workers.
                let sender = self.writer.clone();
                tokio::task::spawn_blocking(move || sender.send(job))
                    .await
                    .map_err(|_| Error::WriterGone)?
                    .map_err(|_| Error::WriterGone)?;
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {
                return Err(Error::WriterGone.into());
            }
        }
        rx.await.map_err(|_| Error::WriterGone)?
    }

    /// Checkpoints the WAL into the main database file; called at clean shutdown after
    /// the last request. Later writes still work.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        let sender = self.writer.clone();
        let sent = tokio::task::spawn_blocking(move || sender.send(Job::Checkpoint(tx))).await;
        if matches!(sent, Ok(Ok(()))) {
            let _ = rx.await;
        }
    }

    /// Runs a read-only `f` on a pooled read connection on the blocking pool.
    pub async fn read<R, F>(&self, f: F) -> Result<R, Error>
    where
        F: FnOnce(&Connection) -> Result<R, Error> + Send + 'static,
        R: Send + 'static,
    {
        self.read_with(f).await
    }

    /// Like [`Db::read`] with the caller's own error type (see [`Db::write_with`]).
    pub async fn read_with<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(&Connection) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.read_pooled(f))
            .await
            .map_err(|_| Error::WriterGone)?
    }

    /// Like [`Db::read`], for callers already on a blocking thread.
    pub fn read_blocking<R>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, Error>,
    ) -> Result<R, Error> {
        self.read_pooled(f)
    }

    /// Runs `f` in one read transaction on a pooled connection (opening one if none is
    /// idle), so that all its statements see the same snapshot. A connection goes back
    /// to the pool only if its transaction ended cleanly.
    fn read_pooled<R, E: From<Error>>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, E>,
    ) -> Result<R, E> {
        let pooled = self.readers.lock().map_err(|_| Error::Poisoned)?.pop();
        let conn = match pooled {
            Some(c) => c,
            None => open(&self.path, true)?,
        };
        conn.prepare_cached("BEGIN")
            .and_then(|mut s| s.execute([]))
            .map_err(Error::from)?;
        let res = f(&conn);
        // A read-only transaction has nothing to commit: this only ends the snapshot.
        let ended = conn
            .prepare_cached("COMMIT")
            .and_then(|mut s| s.execute([]));
        if ended.is_ok() && conn.is_autocommit() {
            let mut pool = self.readers.lock().map_err(|_| Error::Poisoned)?;
            if pool.len() < READERS {
                pool.push(conn);
            }
        }
        let res = res?;
        ended.map_err(Error::from)?;
        Ok(res)
    }
}

fn writer_loop(mut conn: Connection, rx: std::sync::mpsc::Receiver<Job>, generation: &AtomicU64) {
    use std::sync::mpsc::RecvTimeoutError;
    let mut pending: Option<Job> = None;
    // Lazy writes waiting for company, and when the first of them arrived.
    let mut lazy: Vec<WriteJob> = Vec::new();
    let mut lazy_since: Option<std::time::Instant> = None;
    loop {
        let next = match (pending.take(), lazy_since) {
            (Some(j), _) => Some(j),
            (None, None) => match rx.recv() {
                Ok(j) => Some(j),
                Err(_) => break,
            },
            (None, Some(since)) => {
                let left = (since + LAZY_WAIT).saturating_duration_since(std::time::Instant::now());
                match rx.recv_timeout(left) {
                    Ok(j) => Some(j),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
        };
        let mut writes = Vec::new();
        // Whether this batch may change what readers cache.
        let mut changes = false;
        match next {
            None => {} // the lazy writes waited long enough: commit them alone
            Some(Job::Write(w, c)) => {
                writes.push(w);
                changes |= c;
            }
            Some(Job::Lazy(w)) => {
                lazy.push(w);
                lazy_since.get_or_insert_with(std::time::Instant::now);
            }
            Some(Job::Checkpoint(reply)) => {
                if !lazy.is_empty() {
                    lazy_since = None;
                    run_batch(&mut conn, std::mem::take(&mut lazy), None);
                }
                checkpoint(&conn);
                let _ = reply.send(());
                continue;
            }
        }
        while writes.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Job::Write(w, c)) => {
                    writes.push(w);
                    changes |= c;
                }
                Ok(Job::Lazy(w)) => {
                    lazy.push(w);
                    lazy_since.get_or_insert_with(std::time::Instant::now);
                }
                Ok(other) => {
                    pending = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        let lazy_due = lazy_since.is_some_and(|t| t.elapsed() >= LAZY_WAIT);
        if writes.is_empty() && !lazy_due {
            continue;
        }
        let bump = changes.then_some(generation);
        writes.append(&mut lazy);
        lazy_since = None;
        run_batch(&mut conn, writes, bump);
    }
    // Every sender is gone: the server is shutting down.
    if !lazy.is_empty() {
        run_batch(&mut conn, lazy, None);
    }
    checkpoint(&conn);
}

fn checkpoint(conn: &Connection) {
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);") {
        tracing::warn!(error = %e, "WAL checkpoint failed");
    }
}

/// Runs `jobs` in one transaction and answers them after it ends. With `generation`,
/// the count is bumped after the end and before the first answer (whether the batch
/// committed or not: a needless bump only costs the cache a miss).
fn run_batch(conn: &mut Connection, jobs: Vec<WriteJob>, generation: Option<&AtomicU64>) {
    let bump = || {
        if let Some(g) = generation {
            g.fetch_add(1, Ordering::SeqCst);
        }
    };
    let mut replies = Vec::with_capacity(jobs.len());
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let msg = e.to_string();
        // A job hands back its reply only once it ran, so run them, but read-only:
        // outside the transaction each statement would commit on its own (or join
        // whatever transaction is still open), and the caller is told it failed.
        let guarded = conn.execute_batch("PRAGMA query_only = ON").is_ok();
        for job in jobs {
            if guarded {
                let (_, reply) = job(conn);
                replies.push(reply);
            } else {
                // Cannot even guard: drop the job unrun (its caller sees the writer gone).
                drop(job);
            }
        }
        if guarded && let Err(e) = conn.execute_batch("PRAGMA query_only = OFF") {
            tracing::error!(error = %e, "leaving query_only failed");
        }
        bump();
        for reply in replies {
            reply(Err(Error::Commit(msg.clone())));
        }
        return;
    }
    // Prepared once per connection: parsing these for every job was a measurable part
    // of a small PUT's time on the writer.
    let run = |sql: &str| conn.prepare_cached(sql).and_then(|mut st| st.execute([]));
    for job in jobs {
        if let Err(e) = run("SAVEPOINT job") {
            tracing::error!(error = %e, "savepoint failed");
        }
        let (ok, reply) = job(conn);
        let end = if ok {
            run("RELEASE job")
        } else {
            run("ROLLBACK TO job").and_then(|_| run("RELEASE job"))
        };
        if let Err(e) = end {
            tracing::error!(error = %e, "savepoint release failed");
        }
        replies.push(reply);
    }
    let commit = conn.execute_batch("COMMIT").map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        e.to_string()
    });
    bump();
    for reply in replies {
        reply(commit.clone().map_err(Error::Commit));
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn count(conn: &Connection) -> Result<i64, Error> {
        Ok(conn.query_row("SELECT COUNT(*) FROM catalog_settings", [], |r| r.get(0))?)
    }

    fn insert(name: &'static str) -> impl FnOnce(&Connection) -> Result<(), Error> {
        move |conn| {
            conn.execute(
                "INSERT INTO catalog_settings (name, value) VALUES (?1, 'x')",
                [name],
            )?;
            Ok(())
        }
    }

    /// Migration 0009 keeps every audit row and the outcome rule, and the audit insert
    /// no longer builds a temporary B-tree per row (it did with `outcome IN (...)`).
    #[test]
    fn audit_outcome_check_migration_keeps_rows_and_rule() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = Connection::open(dir.path().join("t.db")).expect("open");
        for (_, sql) in &MIGRATIONS[..8] {
            conn.execute_batch(sql).expect("old migration");
        }
        conn.pragma_update(None, "user_version", 8)
            .expect("version");
        let insert = |outcome: &str| {
            format!(
                "INSERT INTO audit_log (time, request_id, principal, access_key_id, action,
                     resource, outcome, status, bytes_in, bytes_out, source, user_agent)
                 VALUES (7, 'r1', 'alice', 'AK', 'GetObject', 'b/k', '{outcome}', 200, 0, 4,
                     '127.0.0.1', 'curl')"
            )
        };
        conn.execute_batch(&insert("denied")).expect("old row");
        conn.execute_batch(MIGRATIONS[8].1).expect("0009");

        let row: (i64, String, String) = conn
            .query_row(
                "SELECT time, principal, outcome FROM audit_log WHERE request_id = 'r1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("row kept");
        assert_eq!(row, (7, "alice".into(), "denied".into()));
        assert!(conn.execute_batch(&insert("maybe")).is_err());
        conn.execute_batch(&insert("allowed"))
            .expect("valid outcome");
        let mut explain = conn
            .prepare(&format!("EXPLAIN {}", insert("error")))
            .expect("explain");
        let ops: Vec<String> = explain
            .query_map([], |r| r.get(1))
            .expect("ops")
            .collect::<Result<_, _>>()
            .expect("ops");
        assert!(!ops.iter().any(|o| o == "OpenEphemeral"), "{ops:?}");
        let indexes: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_log'",
                [],
                |r| r.get(0),
            )
            .expect("indexes");
        assert_eq!(indexes, 2);
    }

    /// Migration 0010 keeps every audit row (ids, times, text request ids), drops the
    /// outcome column and the time index, and covers every row with a span.
    #[test]
    fn audit_spans_migration_keeps_rows_and_covers_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = Connection::open(dir.path().join("t.db")).expect("open");
        for (_, sql) in &MIGRATIONS[..9] {
            conn.execute_batch(sql).expect("old migration");
        }
        conn.pragma_update(None, "user_version", 9)
            .expect("version");
        // 5,000 rows, times not in id order (a long request is written late).
        conn.execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
             INSERT INTO audit_log (id, time, request_id, principal, access_key_id, action,
                 resource, outcome, status, bytes_in, bytes_out, source, user_agent)
             SELECT i, CASE WHEN i = 4500 THEN 10 ELSE 1000 + i END, 'r' || i, 'alice',
                 'AK', 'GetObject', 'b/k', 'denied', 403, 0, 4, '127.0.0.1', 'curl' FROM n",
        )
        .expect("old rows");
        migrate(&mut conn).expect("migrate");

        let (rows, text_ids): (i64, i64) = conn
            .query_row(
                "SELECT count(*), sum(typeof(request_id) = 'text') FROM audit_log",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("rows");
        assert_eq!((rows, text_ids), (5000, 5000));
        assert!(conn.prepare("SELECT outcome FROM audit_log").is_err());
        let indexes: Vec<String> = conn
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_log'",
            )
            .expect("indexes")
            .query_map([], |r| r.get(0))
            .expect("indexes")
            .collect::<Result<_, _>>()
            .expect("indexes");
        assert_eq!(indexes, ["audit_by_principal"]);
        let uncovered: i64 = conn
            .query_row(
                "SELECT count(*) FROM audit_log l WHERE (SELECT count(*) FROM audit_spans s
                     WHERE l.id BETWEEN s.first_id AND s.last_id
                       AND l.time BETWEEN s.min_time AND s.max_time) != 1",
                [],
                |r| r.get(0),
            )
            .expect("coverage");
        assert_eq!(uncovered, 0);
        let spans: i64 = conn
            .query_row("SELECT count(*) FROM audit_spans", [], |r| r.get(0))
            .expect("spans");
        assert_eq!(spans, 2);
    }

    #[tokio::test]
    async fn lazy_writes_commit_alone_after_a_while_or_with_the_next_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&dir.path().join("t.db")).expect("open");
        let before = db.read(count).await.expect("count");
        // Alone, a lazy write waits for company, then commits by itself.
        let t = Instant::now();
        db.write_lazy(insert("a")).await.expect("lazy alone");
        assert!(t.elapsed() >= LAZY_WAIT, "{:?}", t.elapsed());
        // With a regular write behind it, both commit in that write's transaction.
        let t = Instant::now();
        let (lazy, regular) = tokio::join!(db.write_lazy(insert("b")), async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            db.write(insert("c")).await
        });
        lazy.expect("lazy");
        regular.expect("regular");
        assert!(t.elapsed() < LAZY_WAIT, "{:?}", t.elapsed());
        // A failing lazy write changes nothing and does not undo its neighbours.
        let bad = db.write_lazy(insert("c"));
        let good = db.write(insert("d"));
        let (bad, good) = tokio::join!(bad, good);
        assert!(bad.is_err());
        good.expect("good");
        assert_eq!(db.read(count).await.expect("count"), before + 4);
    }

    /// When the batch's transaction cannot begin, its jobs change nothing (here the
    /// connection is still inside a transaction, which would have taken their writes
    /// and committed them later) and every caller gets the error.
    #[test]
    fn a_batch_that_cannot_begin_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        drop(Db::open(&path).unwrap());
        let mut conn = open(&path, false).unwrap();
        conn.execute_batch("BEGIN").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let job: WriteJob = Box::new(move |conn| {
            let res = insert("dangling")(conn);
            let ok = res.is_ok();
            let reply: Reply = Box::new(move |commit| {
                let _ = tx.send((res.is_ok(), commit.is_ok()));
            });
            (ok, reply)
        });
        run_batch(&mut conn, vec![job], None);
        assert_eq!(rx.recv().unwrap(), (false, false));
        conn.execute_batch("COMMIT").unwrap();
        assert_eq!(count(&conn).unwrap(), 0);
        // The connection writes again afterwards.
        insert("after")(&conn).unwrap();
        assert_eq!(count(&conn).unwrap(), 1);
    }

    #[tokio::test]
    async fn only_writes_that_may_change_cached_rows_bump_the_generation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&dir.path().join("t.db")).expect("open");
        let g0 = db.generation();
        db.write_uncached(insert("log")).await.expect("log");
        db.write_lazy(insert("lazy")).await.expect("lazy");
        assert_eq!(db.generation(), g0);
        db.write(insert("regular")).await.expect("regular");
        assert!(db.generation() > g0);
        // A failed write bumps too (harmless), and is answered after the bump.
        let g1 = db.generation();
        assert!(db.write(insert("regular")).await.is_err());
        assert!(db.generation() > g1);
    }

    #[derive(Debug)]
    enum Typed {
        Refused(&'static str),
        Db(Error),
    }

    impl From<Error> for Typed {
        fn from(e: Error) -> Typed {
            Typed::Db(e)
        }
    }

    #[tokio::test]
    async fn typed_errors_come_back_as_they_were_and_change_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&dir.path().join("t.db")).expect("open");
        let before = db.read(count).await.expect("count");
        let refused = db
            .write_with(|conn| {
                insert("x")(conn)?;
                Err::<(), _>(Typed::Refused("no"))
            })
            .await;
        assert!(matches!(refused, Err(Typed::Refused("no"))), "{refused:?}");
        let read: Result<i64, Typed> = db.read_with(|conn| Ok(count(conn)?)).await;
        assert_eq!(read.expect("read"), before);
        let sql = db
            .read_with(|conn| -> Result<(), Typed> {
                conn.execute("SELECT * FROM no_such_table", [])
                    .map_err(Error::from)?;
                Ok(())
            })
            .await;
        assert!(matches!(&sql, Err(Typed::Db(Error::Sqlite(_)))), "{sql:?}");
    }
}
