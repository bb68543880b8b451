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
//! blocking thread pool, so no SQLite call ever runs on an async worker.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use super::Error;

/// Upper bound on writes merged into one transaction.
const MAX_BATCH: usize = 256;
/// Number of pooled read connections kept open.
const READERS: usize = 8;

/// A write job: runs inside a savepoint and returns whether it succeeded plus a
/// continuation that delivers its result once the transaction's fate is known.
type WriteJob = Box<dyn FnOnce(&Connection) -> (bool, Reply) + Send>;

/// What the writer thread is asked to do.
enum Job {
    Write(WriteJob),
    /// Fold the WAL back into the database file (at shutdown), then reply.
    Checkpoint(oneshot::Sender<()>),
}
type Reply = Box<dyn FnOnce(Result<(), Error>) + Send>;

/// Handle to the metadata database. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    writer: std::sync::mpsc::SyncSender<Job>,
    readers: Arc<Mutex<Vec<Connection>>>,
    path: Arc<std::path::PathBuf>,
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
    conn.execute_batch("PRAGMA cache_size=-16000; PRAGMA temp_store=MEMORY;")?;
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
    pub fn open(path: &Path) -> Result<Db, Error> {
        let mut conn = open(path, false)?;
        migrate(&mut conn)?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(4096);
        std::thread::Builder::new()
            .name("tarn-db-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(Error::Thread)?;
        Ok(Db {
            writer: tx,
            readers: Arc::new(Mutex::new(Vec::new())),
            path: Arc::new(path.to_path_buf()),
        })
    }

    /// Runs `f` in the writer's transaction. The result is returned only after the
    /// transaction holding it has committed durably; if `f` fails, its changes are
    /// rolled back and nothing else is affected.
    pub async fn write<R, F>(&self, f: F) -> Result<R, Error>
    where
        F: FnOnce(&Connection) -> Result<R, Error> + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: WriteJob = Box::new(move |conn| {
            let res = f(conn);
            let ok = res.is_ok();
            let reply: Reply = Box::new(move |commit: Result<(), Error>| {
                let _ = tx.send(commit.and(res));
            });
            (ok, reply)
        });
        let job = Job::Write(job);
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
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => return Err(Error::WriterGone),
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
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.read_blocking(f))
            .await
            .map_err(|_| Error::WriterGone)?
    }

    /// Like [`Db::read`], for callers already on a blocking thread.
    pub fn read_blocking<R>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let pooled = self.readers.lock().map_err(|_| Error::Poisoned)?.pop();
        let conn = match pooled {
            Some(c) => c,
            None => open(&self.path, true)?,
        };
        let res = f(&conn);
        let mut pool = self.readers.lock().map_err(|_| Error::Poisoned)?;
        if pool.len() < READERS {
            pool.push(conn);
        }
        res
    }
}

fn writer_loop(mut conn: Connection, rx: std::sync::mpsc::Receiver<Job>) {
    let mut pending: Option<Job> = None;
    loop {
        let first = match pending.take() {
            Some(j) => j,
            None => match rx.recv() {
                Ok(j) => j,
                Err(_) => break,
            },
        };
        let mut writes = match first {
            Job::Write(w) => vec![w],
            Job::Checkpoint(reply) => {
                checkpoint(&conn);
                let _ = reply.send(());
                continue;
            }
        };
        while writes.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Job::Write(w)) => writes.push(w),
                Ok(other) => {
                    pending = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        run_batch(&mut conn, writes);
    }
    // Every sender is gone: the server is shutting down.
    checkpoint(&conn);
}

fn checkpoint(conn: &Connection) {
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);") {
        tracing::warn!(error = %e, "WAL checkpoint failed");
    }
}

fn run_batch(conn: &mut Connection, jobs: Vec<WriteJob>) {
    let mut replies = Vec::with_capacity(jobs.len());
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let msg = e.to_string();
        for job in jobs {
            let (_, reply) = job(conn);
            reply(Err(Error::Commit(msg.clone())));
        }
        return;
    }
    for job in jobs {
        if let Err(e) = conn.execute_batch("SAVEPOINT job") {
            tracing::error!(error = %e, "savepoint failed");
        }
        let (ok, reply) = job(conn);
        let end = if ok {
            "RELEASE job"
        } else {
            "ROLLBACK TO job; RELEASE job"
        };
        if let Err(e) = conn.execute_batch(end) {
            tracing::error!(error = %e, "savepoint release failed");
        }
        replies.push(reply);
    }
    let commit = conn.execute_batch("COMMIT").map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        e.to_string()
    });
    for reply in replies {
        reply(commit.clone().map_err(Error::Commit));
    }
}
