//! A small cache of recently read objects (metadata plus the bytes of inline objects),
//! so that a GET of a hot small object costs neither a SQLite read nor a trip to the
//! blocking pool.
//!
//! # Why it cannot serve a stale object
//! Every entry carries the write generation ([`super::Db`]'s count of finished write
//! batches) loaded *before* the read that produced it began, and the whole cache belongs
//! to one generation: a lookup under a newer generation empties it first, and an entry
//! read under an older one is never inserted. The writer bumps the generation after a
//! batch ends and before any of its writers is answered, so once a write is
//! acknowledged every later lookup sees a newer generation than any entry that could
//! predate the write. Only this process writes objects (the admin CLI changes IAM
//! tables only), and only through the writer thread.
//!
//! The price is that any regular write empties the cache: it helps read-mostly
//! periods, which is when small GETs are hot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::ObjectMeta;

/// Most entries kept; beyond it a quarter of them are dropped.
const MAX_ENTRIES: usize = 8192;
/// Most bytes (object bytes plus keys) kept; beyond it a quarter of the entries are dropped.
const MAX_BYTES: usize = 32 << 20;

/// What one read of an object returned: its metadata and, for a small object kept
/// inline, its bytes. Shared between the cache and the requests it serves.
pub struct ObjectRead {
    pub meta: ObjectMeta,
    /// The bytes of an inline object; `None` for an object kept in blobs.
    pub data: Option<Bytes>,
}

/// Objects read in one write generation, by `bucket/key` (a bucket name has no `/`).
#[derive(Default)]
pub(super) struct ObjectCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    generation: u64,
    map: HashMap<String, Arc<ObjectRead>>,
    bytes: usize,
}

impl Inner {
    /// Moves to generation `now` (dropping every entry) if it is newer. Returns whether
    /// the cache is at `now`.
    fn advance(&mut self, now: u64) -> bool {
        if now > self.generation {
            self.map.clear();
            self.bytes = 0;
            self.generation = now;
        }
        self.generation == now
    }
}

impl Inner {
    /// Makes room by dropping a quarter of the entries, picked by the map's randomly
    /// seeded order. Random eviction keeps most of a working set a little larger than
    /// the cache (starting over kept none of it when the keys came round in turn), and
    /// unlike LRU it costs the read path nothing.
    fn evict_some(&mut self) {
        let (mut seen, mut freed) = (0usize, 0usize);
        self.map.retain(|k, e| {
            seen += 1;
            // The 1st, 5th, 9th...: never nothing, so the caller's loop ends.
            let keep = seen % 4 != 1;
            if !keep {
                freed += entry_size(k.len(), e);
            }
            keep
        });
        self.bytes = self.bytes.saturating_sub(freed);
    }
}

/// What an entry counts against [`MAX_BYTES`] (the 256 stands for the metadata).
fn entry_size(key_len: usize, entry: &ObjectRead) -> usize {
    key_len + entry.data.as_ref().map_or(0, Bytes::len) + 256
}

fn cache_key(bucket: &str, key: &str) -> String {
    let mut k = String::with_capacity(bucket.len() + 1 + key.len());
    k.push_str(bucket);
    k.push('/');
    k.push_str(key);
    k
}

impl ObjectCache {
    /// The entry for `bucket/key` if it was read in generation `now` (the generation
    /// loaded by the caller just now).
    pub fn get(&self, bucket: &str, key: &str, now: u64) -> Option<Arc<ObjectRead>> {
        let mut inner = self.inner.lock().ok()?;
        if !inner.advance(now) {
            return None;
        }
        crate::scratch::joined(&[bucket, key], '/', |k| inner.map.get(k).cloned())
    }

    /// Keeps what a read returned. `read_at` is the generation loaded before the read
    /// began and `now` the one loaded after it ended; an entry is kept only if no write
    /// batch finished in between, so that it is as new as the generation it is filed
    /// under.
    pub fn insert(&self, bucket: &str, key: &str, read_at: u64, now: u64, entry: Arc<ObjectRead>) {
        if read_at != now {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if !inner.advance(now) {
            return;
        }
        let k = cache_key(bucket, key);
        let size = entry_size(k.len(), &entry);
        if size > MAX_BYTES / 64 {
            return;
        }
        while !inner.map.is_empty()
            && (inner.map.len() >= MAX_ENTRIES || inner.bytes + size > MAX_BYTES)
        {
            inner.evict_some();
        }
        let key_len = k.len();
        inner.bytes += size;
        if let Some(old) = inner.map.insert(k, entry) {
            inner.bytes = inner.bytes.saturating_sub(entry_size(key_len, &old));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::ObjectHeaders;

    fn entry(etag: &str, data: &'static [u8]) -> Arc<ObjectRead> {
        Arc::new(ObjectRead {
            meta: ObjectMeta {
                key: "k".into(),
                size: data.len() as u64,
                etag: etag.into(),
                last_modified: 0,
                segments: Vec::new(),
                inline: true,
                parts_count: None,
                headers: ObjectHeaders::default(),
                checksum: None,
                tags: None,
            },
            data: Some(Bytes::from_static(data)),
        })
    }

    #[test]
    fn entries_live_for_one_generation_only() {
        let c = ObjectCache::default();
        c.insert("b", "k", 1, 1, entry("a", b"one"));
        assert_eq!(
            c.get("b", "k", 1).map(|e| e.meta.etag.clone()),
            Some("a".into())
        );
        // A newer generation empties the cache; an older lookup does not bring it back.
        assert!(c.get("b", "k", 2).is_none());
        assert!(c.get("b", "k", 1).is_none());
        // A read that straddled a write batch is not kept.
        c.insert("b", "k", 2, 3, entry("b", b"two"));
        assert!(c.get("b", "k", 3).is_none());
        // Nor is one read before the cache moved on.
        c.insert("b", "k", 3, 3, entry("c", b"three"));
        c.get("b", "x", 4);
        c.insert("b", "k", 3, 3, entry("c", b"three"));
        assert!(c.get("b", "k", 4).is_none());
        assert!(c.get("b", "k", 3).is_none());
    }

    #[test]
    fn it_stays_within_its_bounds() {
        let c = ObjectCache::default();
        for i in 0..(MAX_ENTRIES + 10) {
            c.insert("b", &i.to_string(), 0, 0, entry("e", b"x"));
        }
        let inner = c.inner.lock().expect("lock");
        assert!(inner.map.len() <= MAX_ENTRIES);
        assert!(inner.bytes <= MAX_BYTES);
    }

    /// Overflowing drops a quarter, not everything: most of a working set a little
    /// larger than the cache stays, the newest entry is there, and the byte count is
    /// the sum of what is kept.
    #[test]
    fn overflow_keeps_most_entries() {
        let c = ObjectCache::default();
        // One more than fits.
        for i in 0..=MAX_ENTRIES {
            c.insert("b", &i.to_string(), 0, 0, entry("e", b"xyz"));
        }
        assert!(c.get("b", &MAX_ENTRIES.to_string(), 0).is_some());
        let inner = c.inner.lock().expect("lock");
        assert!(inner.map.len() > MAX_ENTRIES / 2, "{}", inner.map.len());
        assert!(inner.map.len() <= MAX_ENTRIES);
        let sum: usize = inner.map.iter().map(|(k, e)| entry_size(k.len(), e)).sum();
        assert_eq!(inner.bytes, sum);
    }
}
