//! Object bytes on local disk.
//!
//! Blobs are immutable files named by random server-chosen ids: `blobs/ab/ab12…`. Object
//! keys never reach a path. A blob is written to `tmp/`, fsynced, renamed into place and
//! its directory fsynced before any metadata row may point to it; a blob no row points
//! to is garbage, removed at startup ([`BlobStore::remove_orphans`]).
//!
//! All filesystem calls run on tokio's blocking pool (std::fs is blocking, and tokio's
//! own fs wrappers would hop to that pool once per call anyway); a whole upload is
//! written by one blocking task fed through a channel, so hashing and disk writes run
//! beside the network side instead of on it.

mod blob_file;

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;

use blob_file::{BlobFile, Calls};

/// Errors of the blob store, with the path involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("blob {0} is missing")]
    MissingBlob(String),
    #[error("invalid blob id {0:?}")]
    InvalidBlobId(String),
    #[error("the body exceeds the maximum object size")]
    TooLarge,
    #[error("no space left on the data directory's filesystem")]
    Full,
    #[error("the request body ended before it was complete")]
    Interrupted,
    #[error("a blocking task failed")]
    TaskFailed,
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| {
        if source.kind() == io::ErrorKind::StorageFull {
            Error::Full
        } else {
            Error::Io {
                op,
                path: path.to_path_buf(),
                source,
            }
        }
    }
}

/// Failure of [`BlobStore::write`]: the body stream's own error, or the store's.
#[derive(Debug)]
pub enum WriteError<E> {
    Body(E),
    Store(Error),
}

impl<E> From<Error> for WriteError<E> {
    fn from(e: Error) -> Self {
        WriteError::Store(e)
    }
}

/// The blob directory tree under the data directory.
#[derive(Debug, Clone)]
pub struct BlobStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    blobs: PathBuf,
    tmp: PathBuf,
    fsync: bool,
    uploads: Uploads,
}

/// A blob written and published, not yet referenced by metadata. Dropping it deletes
/// the blob unless [`PublishedBlob::keep`] was called after the metadata commit.
#[derive(Debug)]
pub struct PublishedBlob {
    store: BlobStore,
    id: Option<String>,
    /// Bytes written.
    pub size: u64,
}

impl PublishedBlob {
    /// The blob's id.
    pub fn id(&self) -> &str {
        self.id.as_deref().unwrap_or_default()
    }

    /// Marks the blob as referenced: it survives this handle.
    pub fn keep(mut self) -> String {
        self.id.take().unwrap_or_default()
    }
}

impl Drop for PublishedBlob {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.store.delete_later(vec![id]);
        }
    }
}

/// Deletes a staging file when the write that owns it does not finish.
struct TmpGuard(Option<PathBuf>);

impl Drop for TmpGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// The bytes of an object, ready to read: its blob files with their sizes, in order, or
/// the bytes of a small object kept inline in the metadata database.
#[derive(Debug)]
pub enum Source {
    Blobs(Vec<(Arc<File>, u64)>),
    Inline(Bytes),
}

impl Source {
    /// `len` bytes at `offset` of an inline object (clamped to its size).
    pub fn slice(&self, offset: u64, len: u64) -> Bytes {
        match self {
            Source::Inline(b) => {
                let start = (offset as usize).min(b.len());
                let end = start.saturating_add(len as usize).min(b.len());
                b.slice(start..end)
            }
            Source::Blobs(_) => Bytes::new(),
        }
    }

    /// Reads `len` bytes starting at `offset` as a stream of chunks.
    pub fn stream(
        self,
        offset: u64,
        len: u64,
    ) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
        use futures_util::future::{Either, ready};
        match self {
            Source::Blobs(files) => Either::Left(BlobStore::read_stream(files, offset, len)),
            inline => Either::Right(futures_util::stream::once(ready(Ok(
                inline.slice(offset, len)
            )))),
        }
    }
}

/// Sees every chunk of a blob as it is written (hashing).
pub trait Observer: Send + Sized + 'static {
    /// Called with each chunk, in order.
    fn observe(&mut self, data: &[u8]);

    /// Splits off part of the work to run on a thread of its own, beside the writing
    /// thread, or `None` (the default) to keep everything on the writing thread.
    fn split(&mut self) -> Option<Self> {
        None
    }

    /// Takes back the part that [`Observer::split`] returned, after it saw every chunk.
    fn join(&mut self, _other: Self) {}
}

/// Body chunks in order, batched (see [`BATCH`]); shared by the writing thread and the
/// hashing thread without copying.
type Batch = Arc<Vec<Bytes>>;

enum Chunk {
    Data(Batch),
    End,
}

/// Body bytes gathered before they are handed to the writing thread. hyper yields a
/// large body in chunks of at most its read buffer (32 KiB here); one channel message
/// and thread wake-up per chunk cost more than hashing it, so chunks travel in batches.
const BATCH: usize = 1 << 20;

/// Batches queued for the writing and the hashing thread, shared by the uploads in
/// progress: one upload gets all of them, four get a quarter each (at least
/// [`MIN_IN_FLIGHT`]). Either thread stalls now and then (a disk write, the scheduler on
/// two cores); with 4 queued the other thread and the network side soon stopped too,
/// with 8 a 1 GiB PUT ran 2-25% faster (16 was no faster). Sharing keeps a multipart
/// upload of four parts at once within the same memory.
const IN_FLIGHT: usize = 8;

/// The fewest batches queued for one upload.
const MIN_IN_FLIGHT: usize = 2;

/// Counts the uploads in progress, to share [`IN_FLIGHT`] among them.
#[derive(Debug, Default)]
struct Uploads(AtomicUsize);

impl Uploads {
    /// Registers an upload until the returned guard drops; returns its queue depth.
    fn enter(&self) -> (usize, impl Drop + '_) {
        struct Leave<'a>(&'a AtomicUsize);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
        ((IN_FLIGHT / n).max(MIN_IN_FLIGHT), Leave(&self.0))
    }
}

/// Bytes per read of a blob stream.
const READ_CHUNK: u64 = 512 * 1024;

/// Reads of a blob stream in flight at once.
const READ_AHEAD: usize = 2;

/// The reads that make up `len` bytes from `offset` of the concatenated `files`:
/// (file, offset in it, length), each at most [`READ_CHUNK`]; an error if the files
/// end first (the object is shorter than its metadata says).
fn read_plan(
    files: Vec<(Arc<File>, u64)>,
    offset: u64,
    len: u64,
) -> impl Iterator<Item = Result<(Arc<File>, u64, usize), io::Error>> + Send + 'static {
    let mut seg = 0usize;
    let mut off = offset;
    let mut remaining = len;
    std::iter::from_fn(move || {
        if remaining == 0 {
            return None;
        }
        while seg < files.len() && off >= files[seg].1 {
            off -= files[seg].1;
            seg += 1;
        }
        let Some((file, size)) = files.get(seg) else {
            remaining = 0;
            return Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "object shorter than recorded",
            )));
        };
        let want = READ_CHUNK.min(remaining).min(size - off);
        let piece = (file.clone(), off, want as usize);
        off += want;
        remaining -= want;
        Some(Ok(piece))
    })
}

/// Feeds batches to the part of an observer split off to its own thread.
/// It runs at the normal scheduling policy: MD5 is the slowest stage of a large upload
/// (see [`crate::sched`]).
fn observe_blocking<H: Observer>(mut rx: mpsc::Receiver<Batch>, mut observe: H) -> H {
    crate::sched::hashing(move || {
        while let Some(batch) = rx.blocking_recv() {
            for b in batch.iter() {
                observe.observe(b);
            }
        }
        observe
    })
}

fn new_blob_id() -> String {
    let v: u128 = rand::random();
    format!("{v:032x}")
}

fn fsync_dir(path: &Path) -> Result<(), Error> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync dir", path))
}

impl BlobStore {
    /// Opens (creating) the blob tree under `data_dir`. With `fsync` off, writes skip
    /// fsync (for tests and benchmarks of the rest of the path only).
    pub fn open(data_dir: &Path, fsync: bool) -> Result<BlobStore, Error> {
        let blobs = data_dir.join("blobs");
        let tmp = data_dir.join("tmp");
        fs::create_dir_all(&tmp).map_err(io_err("create", &tmp))?;
        for i in 0..=255u8 {
            let d = blobs.join(format!("{i:02x}"));
            if !d.is_dir() {
                fs::create_dir_all(&d).map_err(io_err("create", &d))?;
            }
        }
        if fsync {
            fsync_dir(&blobs)?;
            fsync_dir(data_dir)?;
        }
        Ok(BlobStore {
            inner: Arc::new(Inner {
                blobs,
                tmp,
                fsync,
                uploads: Uploads::default(),
            }),
        })
    }

    fn blob_path(&self, id: &str) -> Result<PathBuf, Error> {
        let valid = id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !valid {
            return Err(Error::InvalidBlobId(id.to_string()));
        }
        Ok(self.inner.blobs.join(&id[..2]).join(id))
    }

    /// Streams `body` into a new blob, feeding every chunk to `observe` (hashing) off
    /// the network side: on the writing thread, and with `parallel` the part of it that
    /// [`Observer::split`] gives on a thread of its own (a large body: MD5 alone costs
    /// more CPU than everything else of a PUT and cannot be split itself). The blob is
    /// fsynced and published before this returns; the caller commits metadata and then
    /// calls [`PublishedBlob::keep`].
    pub async fn write<S, E, H>(
        &self,
        body: S,
        max_size: u64,
        mut observe: H,
        parallel: bool,
    ) -> Result<(PublishedBlob, H), WriteError<E>>
    where
        S: Stream<Item = Result<Bytes, E>>,
        H: Observer,
    {
        let (depth, _upload) = self.inner.uploads.enter();
        let side = if parallel { observe.split() } else { None };
        let (side_tx, side_task) = match side {
            Some(part) => {
                let (stx, srx) = mpsc::channel::<Batch>(depth);
                let task = tokio::task::spawn_blocking(move || observe_blocking(srx, part));
                (Some(stx), Some(task))
            }
            None => (None, None),
        };
        let (tx, rx) = mpsc::channel::<Chunk>(depth);
        let store = self.clone();
        let writer = tokio::task::spawn_blocking(move || store.write_blocking(rx, observe));
        let mut body = std::pin::pin!(body);
        let mut total: u64 = 0;
        let mut failure = None;
        let mut batch = Vec::new();
        let mut batched = 0usize;
        let mut gone = false;
        // Hands a batch to the writing thread and the hashing thread; false if either
        // went away (the writer's error is returned below; the hasher only fails by
        // panicking).
        async fn hand_off(
            batch: Vec<Bytes>,
            tx: &mpsc::Sender<Chunk>,
            side_tx: Option<&mpsc::Sender<Batch>>,
        ) -> Result<(), Option<Error>> {
            let batch = Arc::new(batch);
            if tx.send(Chunk::Data(batch.clone())).await.is_err() {
                return Err(None);
            }
            if let Some(stx) = side_tx
                && stx.send(batch).await.is_err()
            {
                return Err(Some(Error::TaskFailed));
            }
            Ok(())
        }
        while let Some(item) = body.next().await {
            match item {
                Ok(bytes) => {
                    total += bytes.len() as u64;
                    if total > max_size {
                        failure = Some(WriteError::Store(Error::TooLarge));
                        break;
                    }
                    batched += bytes.len();
                    batch.push(bytes);
                    if batched >= BATCH {
                        batched = 0;
                        let full = std::mem::take(&mut batch);
                        if let Err(e) = hand_off(full, &tx, side_tx.as_ref()).await {
                            failure = e.map(WriteError::Store);
                            gone = true;
                            break;
                        }
                    }
                }
                Err(e) => {
                    failure = Some(WriteError::Body(e));
                    break;
                }
            }
        }
        if failure.is_none() && !gone {
            let sent = if batch.is_empty() {
                Ok(())
            } else {
                hand_off(batch, &tx, side_tx.as_ref()).await
            };
            match sent {
                Ok(()) => {
                    let _ = tx.send(Chunk::End).await;
                }
                Err(e) => failure = e.map(WriteError::Store),
            }
        }
        // Without `End` the writer discards the staging file.
        drop(tx);
        drop(side_tx);
        let written = writer.await.map_err(|_| Error::TaskFailed);
        let side = match side_task {
            Some(task) => Some(task.await.map_err(|_| Error::TaskFailed)?),
            None => None,
        };
        let written = written?;
        match failure {
            Some(e) => Err(e),
            None => {
                let (blob, mut observe) = written?;
                if let Some(part) = side {
                    observe.join(part);
                }
                Ok((blob, observe))
            }
        }
    }

    fn write_blocking<H: Observer>(
        &self,
        rx: mpsc::Receiver<Chunk>,
        observe: H,
    ) -> Result<(PublishedBlob, H), Error> {
        let mut calls = Calls {
            sync: &mut blob_file::sync_range,
            set_direct: &mut blob_file::set_direct,
        };
        self.write_blocking_with(rx, observe, &mut calls)
    }

    fn write_blocking_with<H: Observer>(
        &self,
        mut rx: mpsc::Receiver<Chunk>,
        mut observe: H,
        calls: &mut Calls<'_>,
    ) -> Result<(PublishedBlob, H), Error> {
        let id = new_blob_id();
        let tmp_path = self.inner.tmp.join(format!("{id}.tmp"));
        let mut guard = TmpGuard(Some(tmp_path.clone()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp_path)
            .map_err(io_err("create", &tmp_path))?;
        let mut out = BlobFile::new(file, self.inner.fsync);
        loop {
            match rx.blocking_recv() {
                Some(Chunk::Data(batch)) => {
                    for b in batch.iter() {
                        out.push(b, &mut observe, calls)
                            .map_err(io_err("write", &tmp_path))?;
                    }
                }
                Some(Chunk::End) => break,
                // The request side went away without finishing: discard.
                None => return Err(Error::Interrupted),
            }
        }
        let (file, size) = out.finish(calls).map_err(io_err("write", &tmp_path))?;
        if self.inner.fsync {
            file.sync_all().map_err(io_err("fsync", &tmp_path))?;
        }
        drop(file);
        let dest = self.blob_path(&id)?;
        fs::rename(&tmp_path, &dest).map_err(io_err("rename", &dest))?;
        guard.0 = None;
        let published = PublishedBlob {
            store: self.clone(),
            id: Some(id),
            size,
        };
        if self.inner.fsync
            && let Some(parent) = dest.parent()
        {
            fsync_dir(parent)?;
        }
        Ok((published, observe))
    }

    /// Opens the blobs of an object for reading, in order. `MissingBlob` means the
    /// object was replaced between the metadata read and this open.
    pub async fn open_blobs(&self, ids: Vec<String>) -> Result<Vec<Arc<File>>, Error> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            ids.iter()
                .map(|id| {
                    let path = store.blob_path(id)?;
                    match File::open(&path) {
                        Ok(f) => Ok(Arc::new(f)),
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {
                            Err(Error::MissingBlob(id.clone()))
                        }
                        Err(e) => Err(io_err("open", &path)(e)),
                    }
                })
                .collect()
        })
        .await
        .map_err(|_| Error::TaskFailed)?
    }

    /// Reads `len` bytes from `offset` of the concatenated `files` as a stream of
    /// chunks of up to [`READ_CHUNK`]. The next chunk is read while the current one is
    /// on its way to the client ([`READ_AHEAD`] reads in flight), so the disk (or the
    /// page-cache copy) and the socket work at the same time.
    pub fn read_stream(
        files: Vec<(Arc<File>, u64)>,
        offset: u64,
        len: u64,
    ) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
        let reads = read_plan(files, offset, len).map(|piece| async move {
            match piece {
                Ok((file, off, want)) => tokio::task::spawn_blocking(move || {
                    let mut buf = vec![0u8; want];
                    file.read_exact_at(&mut buf, off).map(|()| Bytes::from(buf))
                })
                .await
                .unwrap_or_else(|_| Err(io::Error::other("read task failed"))),
                Err(e) => Err(e),
            }
        });
        futures_util::stream::iter(reads)
            .buffered(READ_AHEAD)
            // Nothing after the first error.
            .scan(false, |failed, r| {
                let item = (!*failed).then(|| {
                    *failed = r.is_err();
                    r
                });
                std::future::ready(item)
            })
    }

    /// Deletes blobs in the background (best effort: a failure leaves an orphan that
    /// the next startup removes).
    pub fn delete_later(&self, ids: Vec<String>) {
        if ids.is_empty() {
            return;
        }
        let store = self.clone();
        let run = move || {
            for id in ids {
                if let Ok(p) = store.blob_path(&id)
                    && let Err(e) = fs::remove_file(&p)
                    && e.kind() != io::ErrorKind::NotFound
                {
                    tracing::warn!(blob = %id, error = %e, "could not delete blob");
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn_blocking(run);
            }
            Err(_) => run(),
        }
    }

    /// Startup cleaning: empties `tmp/` and removes every blob not in `referenced`.
    /// Returns (staging files removed, orphan blobs removed).
    pub fn remove_orphans(&self, referenced: &HashSet<String>) -> Result<(usize, usize), Error> {
        let mut tmp_removed = 0;
        for entry in fs::read_dir(&self.inner.tmp).map_err(io_err("read dir", &self.inner.tmp))? {
            let entry = entry.map_err(io_err("read dir", &self.inner.tmp))?;
            let path = entry.path();
            fs::remove_file(&path).map_err(io_err("remove", &path))?;
            tmp_removed += 1;
        }
        let mut orphans = 0;
        for shard in
            fs::read_dir(&self.inner.blobs).map_err(io_err("read dir", &self.inner.blobs))?
        {
            let shard = shard.map_err(io_err("read dir", &self.inner.blobs))?.path();
            if !shard.is_dir() {
                continue;
            }
            for entry in fs::read_dir(&shard).map_err(io_err("read dir", &shard))? {
                let path = entry.map_err(io_err("read dir", &shard))?.path();
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default();
                if !referenced.contains(name) {
                    fs::remove_file(&path).map_err(io_err("remove", &path))?;
                    orphans += 1;
                }
            }
        }
        Ok((tmp_removed, orphans))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use blob_file::{SyncRange, WriteBehind};

    /// CRC-32 of everything observed; `split` moves the hasher to the other half.
    struct Crc(Option<crc32fast::Hasher>);

    impl Observer for Crc {
        fn observe(&mut self, data: &[u8]) {
            if let Some(h) = &mut self.0 {
                h.update(data);
            }
        }
        fn split(&mut self) -> Option<Crc> {
            Some(Crc(self.0.take()))
        }
        fn join(&mut self, other: Crc) {
            self.0 = other.0;
        }
    }

    fn body(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn chunks(data: &[u8], size: usize) -> Vec<Result<Bytes, io::Error>> {
        data.chunks(size)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect()
    }

    fn blob_bytes(dir: &Path, id: &str) -> Vec<u8> {
        fs::read(dir.join("blobs").join(&id[..2]).join(id)).unwrap_or_default()
    }

    #[tokio::test]
    async fn parallel_and_inline_hashing_agree() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path(), true).expect("open");
        // Odd chunk sizes, several batches, a partial last batch.
        let data = body(3 * BATCH + 12_345);
        let want = crc32fast::hash(&data);
        for parallel in [false, true] {
            let stream = futures_util::stream::iter(chunks(&data, 33_333));
            let (blob, obs) = store
                .write(stream, u64::MAX, Crc(Some(Default::default())), parallel)
                .await
                .expect("write");
            assert_eq!(blob.size, data.len() as u64);
            assert_eq!(
                obs.0.map(|h| h.finalize()),
                Some(want),
                "parallel={parallel}"
            );
            assert!(
                blob_bytes(dir.path(), blob.id()) == data,
                "parallel={parallel}"
            );
        }
    }

    #[tokio::test]
    async fn failed_body_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path(), true).expect("open");
        let data = body(2 * BATCH + 7);
        let mut items = chunks(&data, 65_536);
        items.push(Err(io::Error::other("client went away")));
        for parallel in [false, true] {
            let stream = futures_util::stream::iter(items.iter().map(|r| match r {
                Ok(b) => Ok(b.clone()),
                Err(_) => Err(io::Error::other("client went away")),
            }));
            let r = store
                .write(stream, u64::MAX, Crc(Some(Default::default())), parallel)
                .await;
            assert!(matches!(r, Err(WriteError::Body(_))), "parallel={parallel}");
        }
        assert_eq!(
            fs::read_dir(dir.path().join("tmp")).expect("tmp").count(),
            0
        );
        let (_, orphans) = store.remove_orphans(&HashSet::new()).expect("scan");
        assert_eq!(orphans, 0);
    }

    /// Runs the writing thread over `len` bytes with stand-ins for the system calls.
    fn write_with(
        store: &BlobStore,
        len: usize,
        calls: &mut Calls<'_>,
    ) -> Result<(PublishedBlob, Crc), Error> {
        let (tx, rx) = mpsc::channel(1024);
        let data = Bytes::from(body(len));
        for c in data.chunks(BATCH) {
            let b = data.slice_ref(c);
            tx.try_send(Chunk::Data(Arc::new(vec![b])))
                .map_err(|_| Error::TaskFailed)?;
        }
        tx.try_send(Chunk::End).map_err(|_| Error::TaskFailed)?;
        store.write_blocking_with(rx, Crc(Some(Default::default())), calls)
    }

    /// A filesystem that refuses `O_DIRECT`.
    fn no_direct(_: &File, on: bool) -> io::Result<()> {
        if on {
            Err(io::Error::from_raw_os_error(libc::EINVAL))
        } else {
            Ok(())
        }
    }

    /// Runs the writing thread through the page cache with a stand-in for
    /// `sync_file_range`.
    fn write_with_sync(
        store: &BlobStore,
        len: usize,
        sync: SyncRange<'_>,
    ) -> Result<(PublishedBlob, Crc), Error> {
        let mut calls = Calls {
            sync,
            set_direct: &mut no_direct,
        };
        write_with(store, len, &mut calls)
    }

    /// Blobs larger than one chunk are written with O_DIRECT (the flag is set before
    /// the first chunk and cleared for the unaligned tail); smaller ones never ask.
    #[test]
    fn large_blobs_bypass_the_page_cache() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path(), true).expect("open");
        for (len, want) in [
            (3 * blob_file::CHUNK + 12_345, vec![true, false]),
            (2 * blob_file::CHUNK, vec![true]),
            (blob_file::CHUNK - 1, vec![]),
        ] {
            let mut seen = Vec::new();
            let mut direct = |f: &File, on: bool| {
                seen.push(on);
                blob_file::set_direct(f, on)
            };
            let mut syncs = 0;
            let mut sync = |f: &File, o: u64, l: u64, w: bool| {
                syncs += 1;
                blob_file::sync_range(f, o, l, w)
            };
            let mut calls = Calls {
                sync: &mut sync,
                set_direct: &mut direct,
            };
            let (blob, crc) = write_with(&store, len, &mut calls).expect("write");
            assert_eq!(seen, want, "len {len}");
            assert_eq!(syncs, 0, "direct writes need no write-behind");
            assert_eq!(blob.size, len as u64);
            let data = body(len);
            assert!(blob_bytes(dir.path(), blob.id()) == data, "len {len}");
            assert_eq!(
                crc.0.map(|h| h.finalize()),
                Some(crc32fast::hash(&data)),
                "every byte observed once, in order"
            );
        }
    }

    /// Where direct I/O is refused, the blob goes through the page cache with
    /// write-behind, intact.
    #[test]
    fn direct_io_refused_falls_back_to_the_page_cache() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path(), true).expect("open");
        let mut syncs = 0;
        let mut sync = |f: &File, o: u64, l: u64, w: bool| {
            syncs += 1;
            blob_file::sync_range(f, o, l, w)
        };
        let len = 3 * WriteBehind::WINDOW as usize + 777;
        let (blob, _) = write_with_sync(&store, len, &mut sync).expect("write");
        assert!(syncs >= 4, "write-behind ran ({syncs} calls)");
        assert!(blob_bytes(dir.path(), blob.id()) == body(len));
    }

    /// Concurrent uploads share the queued batches; a finished one gives its share back.
    #[test]
    fn uploads_share_the_queue_depth() {
        let uploads = Uploads::default();
        let (d1, g1) = uploads.enter();
        let (d2, g2) = uploads.enter();
        let (d3, _g3) = uploads.enter();
        let (d4, _g4) = uploads.enter();
        let (d5, _g5) = uploads.enter();
        assert_eq!(
            (d1, d2, d3, d4, d5),
            (IN_FLIGHT, IN_FLIGHT / 2, 2, 2, MIN_IN_FLIGHT)
        );
        drop((g1, g2));
        assert_eq!(uploads.enter().0, 2);
        assert_eq!(uploads.0.load(Ordering::Relaxed), 3, "guards left");
    }

    /// Reads across blob segments, from an offset, and the error when the files end
    /// before the requested length.
    #[tokio::test]
    async fn read_stream_spans_segments_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = body(3 * READ_CHUNK as usize + 1000);
        let cuts = [0, 700_000, 700_000, data.len()];
        let mut files = Vec::new();
        for (i, w) in cuts.windows(2).enumerate() {
            let path = dir.path().join(format!("seg{i}"));
            fs::write(&path, &data[w[0]..w[1]]).expect("write");
            files.push((
                Arc::new(File::open(&path).expect("open")),
                (w[1] - w[0]) as u64,
            ));
        }
        for (offset, len) in [(0, data.len()), (123, 1_500_000), (699_999, 2), (5, 0)] {
            let got: Vec<Bytes> = BlobStore::read_stream(files.clone(), offset as u64, len as u64)
                .map(|r| r.expect("read"))
                .collect()
                .await;
            assert!(got.iter().all(|b| b.len() as u64 <= READ_CHUNK));
            assert!(got.concat() == data[offset..offset + len], "{offset}+{len}");
        }
        let short: Vec<_> = BlobStore::read_stream(files, 10, data.len() as u64)
            .collect()
            .await;
        assert!(matches!(short.last(), Some(Err(_))));
        assert_eq!(short.iter().filter(|r| r.is_err()).count(), 1);
    }

    /// An I/O error seen while waiting for write-behind must fail the write: the wait
    /// consumes the file's writeback error, so the final fsync would report success.
    /// (Before the fix the error was ignored and the blob was published.)
    #[test]
    fn write_behind_io_error_fails_the_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path(), true).expect("open");
        let mut calls = 0;
        let mut eio = |_: &File, _: u64, _: u64, wait: bool| {
            calls += 1;
            if wait {
                Err(io::Error::from_raw_os_error(libc::EIO))
            } else {
                Ok(())
            }
        };
        let len = 3 * WriteBehind::WINDOW as usize;
        let r = write_with_sync(&store, len, &mut eio);
        assert!(matches!(r, Err(Error::Io { .. })), "{:?}", r.err());
        assert!(calls >= 2);
        assert_eq!(
            fs::read_dir(dir.path().join("tmp")).expect("tmp").count(),
            0
        );
        let (_, orphans) = store.remove_orphans(&HashSet::new()).expect("scan");
        assert_eq!(orphans, 0, "no blob may be published");
    }

    /// A filesystem without `sync_file_range` still stores the blob (fsync does it all).
    #[test]
    fn write_behind_unsupported_is_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path(), true).expect("open");
        let mut calls = 0;
        let mut einval = |_: &File, _: u64, _: u64, _: bool| {
            calls += 1;
            Err(io::Error::from_raw_os_error(libc::EINVAL))
        };
        let len = 3 * WriteBehind::WINDOW as usize + 5;
        let (blob, _) = write_with_sync(&store, len, &mut einval).expect("write");
        assert_eq!(calls, 1, "tried once, then left to fsync");
        assert_eq!(blob.size, len as u64);
        assert!(blob_bytes(dir.path(), blob.id()) == body(len));
    }
}
