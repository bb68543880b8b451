//! Streaming a manifest: JSON (`POST /cart/checkout`, `GET /manifests/{id}`) or one
//! link per line (`?format=urls`), generated on a blocking thread from one read
//! transaction and sent in 64 KiB chunks, so memory does not grow with the number of
//! entries. At checkout the same bytes are also written to the stored manifest
//! object; its metadata is committed *before* the last chunk goes out, so a client
//! that has the whole response can fetch the object at once.

use axum::body::Body;
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::presign::LinkSigner;
use super::store::{self, EntryRow};
use super::{Format, ManifestRow, ManifestSummary};
use crate::meta::{Db, ObjectHeaders, ObjectMeta, Segment, WriteCondition, ZoneRules, now_millis};
use crate::storage::BlobStore;

/// Bytes gathered before a chunk is sent.
const CHUNK: usize = 64 * 1024;

/// What to write for a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The manifest document.
    Json,
    /// One link per line (`s3://bucket/key` for the bucket-key format).
    Urls,
}

/// Where checkout stores the manifest object.
pub struct StoredCopy {
    pub blobs: BlobStore,
    pub bucket: String,
    pub key: String,
}

/// A manifest to stream.
pub struct Render {
    pub row: ManifestRow,
    pub summary: ManifestSummary,
    /// Signs the links (format signed-url).
    pub signer: Option<LinkSigner>,
    pub output: Output,
}

type Chunk = Result<Bytes, std::io::Error>;

/// The response body of `r`, fed by a blocking reader; with `copy`, the same bytes
/// are stored as an object.
pub fn body(db: Db, r: Render, copy: Option<StoredCopy>) -> Body {
    let (tx, rx) = mpsc::channel::<Chunk>(8);
    let tee = copy.map(|c| start_copy(db.clone(), c));
    tokio::task::spawn_blocking(move || generate(db, r, tx, tee));
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// The channel into the stored copy and the answer of its commit.
struct Tee {
    tx: mpsc::Sender<Chunk>,
    done: oneshot::Receiver<Result<(), String>>,
}

fn start_copy(db: Db, c: StoredCopy) -> Tee {
    let (tx, rx) = mpsc::channel::<Chunk>(8);
    let (done_tx, done) = oneshot::channel();
    tokio::spawn(async move {
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let r = store_copy(db, c, stream).await;
        let _ = done_tx.send(r);
    });
    Tee { tx, done }
}

#[derive(Default)]
struct Md5(crate::md5::Md5);

impl crate::storage::Observer for Md5 {
    fn observe(&mut self, data: &[u8]) {
        self.0.update(data);
    }
}

async fn store_copy(
    db: Db,
    c: StoredCopy,
    stream: impl futures_util::Stream<Item = Chunk>,
) -> Result<(), String> {
    let (blob, md5) = c
        .blobs
        .write(stream, u64::MAX, Md5::default(), false)
        .await
        .map_err(|e| format!("writing the manifest object: {e:?}"))?;
    let size = blob.size;
    let obj = ObjectMeta {
        key: c.key,
        size,
        etag: hex::encode(md5.0.finalize()),
        last_modified: now_millis(),
        segments: vec![Segment {
            blob: blob.id().to_string(),
            size,
        }],
        inline: false,
        parts_count: None,
        headers: ObjectHeaders {
            content_type: Some("application/json".into()),
            ..ObjectHeaders::default()
        },
        checksum: None,
        tags: None,
    };
    let old = db
        .put_object(
            c.bucket,
            obj,
            None,
            WriteCondition::None,
            ZoneRules::Override,
        )
        .await
        .map_err(|e| format!("committing the manifest object: {e}"))?;
    blob.keep();
    c.blobs.delete_later(old);
    Ok(())
}

/// Accumulates output and sends it in chunks.
struct Writer {
    buf: Vec<u8>,
    tx: mpsc::Sender<Chunk>,
    client_gone: bool,
    tee: Option<Tee>,
    /// The copy's writer stopped (its error arrives through `Tee::done`).
    tee_failed: bool,
}

impl Writer {
    /// Sends what is buffered; false when nobody is listening any more.
    fn flush(&mut self) -> bool {
        if self.buf.is_empty() {
            return true;
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(CHUNK + 4096),
        ));
        if let Some(t) = &self.tee
            && !self.tee_failed
            && t.tx.blocking_send(Ok(chunk.clone())).is_err()
        {
            self.tee_failed = true;
        }
        if !self.client_gone && self.tx.blocking_send(Ok(chunk)).is_err() {
            self.client_gone = true;
        }
        // Keep going for the stored copy even if the client left.
        !(self.client_gone && (self.tee.is_none() || self.tee_failed))
    }

    fn maybe_flush(&mut self) -> bool {
        self.buf.len() < CHUNK || self.flush()
    }

    /// Ends the output: the tail goes to the copy first, then (once the copy is
    /// committed) to the client.
    fn finish(mut self, tail: &[u8]) {
        if self.tee.is_none() {
            self.buf.extend_from_slice(tail);
            self.flush();
            return;
        }
        self.flush();
        match self.tee.take() {
            None => {}
            Some(tee) => {
                let Tee { tx, done } = tee;
                let _ = tx.blocking_send(Ok(Bytes::copy_from_slice(tail)));
                drop(tx);
                match done.blocking_recv() {
                    Ok(Ok(())) => {
                        let _ = self.tx.blocking_send(Ok(Bytes::copy_from_slice(tail)));
                    }
                    Ok(Err(e)) => self.fail(e),
                    Err(_) => self.fail("the manifest object writer stopped".into()),
                }
            }
        }
    }

    /// Aborts the response (the client sees a truncated body, not a valid document)
    /// and the stored copy (its blob is discarded, no object is committed).
    fn fail(&mut self, message: String) {
        tracing::warn!(error = %message, "streaming a manifest failed");
        if let Some(t) = self.tee.take() {
            let _ =
                t.tx.blocking_send(Err(std::io::Error::other(message.clone())));
        }
        let _ = self.tx.blocking_send(Err(std::io::Error::other(message)));
    }
}

fn json_str(buf: &mut Vec<u8>, s: &str) {
    // Serializing a &str cannot fail.
    let _ = serde_json::to_writer(&mut *buf, s);
}

fn entry_json(buf: &mut Vec<u8>, e: &EntryRow, signer: Option<&LinkSigner>) {
    use std::io::Write;
    let _ = write!(buf, "{{\"dataset\":{},\"bucket\":", e.dataset);
    json_str(buf, &e.bucket);
    buf.extend_from_slice(b",\"key\":");
    json_str(buf, &e.key);
    let _ = write!(buf, ",\"size\":{},\"etag\":", e.size);
    json_str(buf, &e.etag);
    buf.extend_from_slice(b",\"checksum\":");
    match &e.checksum {
        // Written by the server as JSON; re-checked so a bad row cannot break the document.
        Some(c) if serde_json::from_str::<serde::de::IgnoredAny>(c).is_ok() => {
            buf.extend_from_slice(c.as_bytes())
        }
        _ => buf.extend_from_slice(b"null"),
    }
    if let Some(s) = signer {
        buf.extend_from_slice(b",\"url\":");
        json_str(buf, &s.url(&e.bucket, &e.key));
    }
    buf.push(b'}');
}

fn generate(db: Db, r: Render, tx: mpsc::Sender<Chunk>, tee: Option<Tee>) {
    let mut w = Writer {
        buf: Vec::with_capacity(CHUNK + 4096),
        tx,
        client_gone: false,
        tee,
        tee_failed: false,
    };
    let signer = r
        .signer
        .as_ref()
        .filter(|_| r.row.format == Format::SignedUrl);
    if r.output == Output::Json {
        match serde_json::to_vec(&r.summary) {
            Ok(mut head) => {
                head.pop(); // the closing brace: entries follow
                w.buf.extend_from_slice(&head);
                w.buf.extend_from_slice(b",\"entries\":[");
            }
            Err(e) => return w.fail(e.to_string()),
        }
    }
    let mut first = true;
    let id = r.row.id;
    let read = db.read_blocking(|conn| {
        store::for_each_entry(conn, id, |e| {
            match r.output {
                Output::Json => {
                    if !first {
                        w.buf.push(b',');
                    }
                    first = false;
                    entry_json(&mut w.buf, &e, signer);
                }
                Output::Urls => {
                    match signer {
                        Some(s) => w.buf.extend_from_slice(s.url(&e.bucket, &e.key).as_bytes()),
                        None => {
                            w.buf.extend_from_slice(b"s3://");
                            w.buf.extend_from_slice(e.bucket.as_bytes());
                            w.buf.push(b'/');
                            w.buf.extend_from_slice(e.key.as_bytes());
                        }
                    }
                    w.buf.push(b'\n');
                }
            }
            w.maybe_flush()
        })
        .map_err(|e| crate::meta::Error::Corrupt(e.to_string()))
    });
    match read {
        Ok(()) if r.output == Output::Json => w.finish(b"]}\n"),
        Ok(()) => w.finish(b""),
        Err(e) => w.fail(e.to_string()),
    }
}
