//! The workloads: closed-loop small-object operations, large streaming transfers,
//! multipart, listing, HEAD and DeleteObjects. Every read is checked against what was
//! written.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use tarn::md5::Md5;

use crate::client::{
    Conn, EMPTY_SHA256, Ep, Result, empty_body, full_body, roundtrip, stream_body,
};
use crate::servers::{self, Target};

/// A small object body and its hashes (hex SHA-256 for the signature, hex MD5 = ETag).
pub struct SmallBody {
    pub data: Bytes,
    pub sha256: String,
    pub md5: String,
}

/// Deterministic pseudo-random bytes (xorshift), different for every seed.
fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

pub fn small_bodies(n: usize, size: usize) -> Vec<SmallBody> {
    (0..n)
        .map(|i| {
            let data = pseudo_random(i as u64 + 1, size);
            SmallBody {
                sha256: hex::encode(Sha256::digest(&data)),
                md5: hex::encode(Md5::digest(&data)),
                data: Bytes::from(data),
            }
        })
        .collect()
}

/// (hex SHA-256, MD5) of a byte range.
type Hashes = (String, [u8; 16]);

/// Content of large objects: a 4 MiB pseudo-random block repeated, sent in 1 MiB chunks
/// (slices of the block, never copied). Hashes are computed once per (offset, length).
pub struct Pattern {
    block: Bytes,
    hashes: std::sync::Mutex<HashMap<(u64, u64), Hashes>>,
}

const BLOCK: u64 = 4 << 20;
const CHUNK: u64 = 1 << 20;

impl Pattern {
    pub fn new() -> Pattern {
        Pattern {
            block: Bytes::from(pseudo_random(0xB10C, BLOCK as usize)),
            hashes: Default::default(),
        }
    }

    /// The chunks of bytes [start, start + len).
    fn chunks(&self, start: u64, len: u64) -> impl Iterator<Item = Bytes> + use<> {
        let block = self.block.clone();
        let mut off = start;
        let end = start + len;
        std::iter::from_fn(move || {
            if off >= end {
                return None;
            }
            let b = off % BLOCK;
            let n = (CHUNK - off % CHUNK).min(end - off).min(BLOCK - b);
            off += n;
            Some(block.slice(b as usize..(b + n) as usize))
        })
    }

    /// (hex SHA-256, MD5) of bytes [start, start + len), hashed in two threads.
    pub fn hashes(&self, start: u64, len: u64) -> Hashes {
        let k = (start % BLOCK, len);
        if let Some(h) = self
            .hashes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&k)
        {
            return h.clone();
        }
        let (sha, md5) = std::thread::scope(|s| {
            let sha = s.spawn(|| {
                let mut h = Sha256::new();
                self.chunks(start, len).for_each(|c| h.update(&c));
                hex::encode(h.finalize())
            });
            let mut m = Md5::new();
            self.chunks(start, len).for_each(|c| m.update(&c));
            let md5: [u8; 16] = m.finalize();
            (sha.join().expect("hash thread"), md5)
        });
        let h = (sha, md5);
        self.hashes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(k, h.clone());
        h
    }

    /// Checks that `data` equals the pattern at `off`.
    fn check(&self, mut off: u64, mut data: &[u8]) -> bool {
        while !data.is_empty() {
            let b = (off % BLOCK) as usize;
            let n = data.len().min(BLOCK as usize - b);
            if data[..n] != self.block[b..b + n] {
                return false;
            }
            data = &data[n..];
            off += n as u64;
        }
        true
    }
}

/// One measurement: the headline value in `unit`, plus details (latencies, RSS).
#[derive(Clone, Debug)]
pub struct Measure {
    pub value: f64,
    pub extra: Vec<(&'static str, f64)>,
}

fn path(bucket: &str, key: &str) -> String {
    format!("/{bucket}/{key}")
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// The small operations of the closed-loop workloads.
#[derive(Clone, Copy, Debug)]
pub enum SmallOp {
    Put,
    Get,
    Head,
    /// GET that checks only the length (for the minimal handler, which ignores keys).
    GetAny,
}

/// How long every closed-loop measurement first runs untimed. On this VM a core that
/// sat idle (during a slow peer's round, say) takes a while to come back to speed: the
/// minimal handler measured 20-22k ops/s right after s3s-fs's GETs and 31k after
/// Tarn's in the same run.
const WARM_UP: Duration = Duration::from_millis(100);

/// How much one closed-loop measurement does.
#[derive(Clone, Copy, Debug)]
pub enum Amount {
    /// Every key `0..n` exactly once (setup passes that write or first read a key set).
    EachKey(usize),
    /// As many operations as fit in the duration: reads cycle over keys `0..keys`,
    /// writes take a fresh key each. A measurement of a fixed duration rather than a
    /// fixed count keeps a fast target's window from shrinking to a few scheduler
    /// ticks (2,000 GETs at 20k ops/s are a tenth of a second) and a slow peer's from
    /// growing without bound.
    For(Duration, usize),
}

impl Amount {
    /// The key of the `i`-th operation, or `None` when the measurement is over.
    fn key(self, op: SmallOp, i: usize, deadline: Instant) -> Option<usize> {
        match self {
            Amount::EachKey(n) => (i < n).then_some(i),
            Amount::For(_, keys) => (Instant::now() < deadline).then(|| match op {
                SmallOp::Put => i,
                _ => i % keys.max(1),
            }),
        }
    }

    /// How long the timed window lasts (`ZERO` for [`Amount::EachKey`]).
    fn window(self) -> Duration {
        match self {
            Amount::EachKey(_) => Duration::ZERO,
            Amount::For(d, _) => d,
        }
    }

    /// Keys the untimed warm-up may read.
    fn keys(self) -> usize {
        match self {
            Amount::EachKey(n) | Amount::For(_, n) => n.max(1),
        }
    }
}

/// `conc` connections, each sending `op` back to back on keys `prefix/{i}` for the
/// `amount`, after [`WARM_UP`]. Returns ops/s with p50 and p99 latency in ms.
pub async fn closed_loop(
    ep: &Ep,
    bucket: &str,
    prefix: &str,
    op: SmallOp,
    conc: usize,
    amount: Amount,
    bodies: &Arc<Vec<SmallBody>>,
) -> Result<Measure> {
    let counter = Arc::new(AtomicUsize::new(0));
    let (ready, warm) = (
        Arc::new(tokio::sync::Barrier::new(conc + 1)),
        Arc::new(tokio::sync::Barrier::new(conc + 1)),
    );
    let mut tasks = Vec::new();
    for t in 0..conc {
        let (ep, bucket, prefix) = (ep.clone(), bucket.to_string(), prefix.to_string());
        let (counter, ready, warm, bodies) =
            (counter.clone(), ready.clone(), warm.clone(), bodies.clone());
        tasks.push(tokio::spawn(async move {
            let conn = Conn::connect(ep.addr).await;
            ready.wait().await;
            let mut conn = conn?;
            // Untimed warm-up on keys that exist (reads) or are not measured (writes).
            let warm_prefix = match op {
                SmallOp::Put => format!("{prefix}-warm"),
                _ => prefix.clone(),
            };
            let until = Instant::now() + WARM_UP;
            let mut j = t;
            while Instant::now() < until {
                small_op(
                    &ep,
                    &mut conn,
                    &bucket,
                    &warm_prefix,
                    op,
                    j % amount.keys(),
                    &bodies,
                )
                .await?;
                j += conc;
            }
            warm.wait().await;
            let deadline = Instant::now() + amount.window();
            let mut lat = Vec::with_capacity(4096);
            loop {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let Some(key) = amount.key(op, i, deadline) else {
                    return Ok::<_, crate::client::BoxError>(lat);
                };
                let t0 = Instant::now();
                small_op(&ep, &mut conn, &bucket, &prefix, op, key, &bodies).await?;
                lat.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
            }
        }));
    }
    ready.wait().await;
    warm.wait().await;
    let start = Instant::now();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    Ok(Measure {
        value: lat.len() as f64 / secs,
        extra: vec![
            ("p50_ms", percentile(&lat, 0.5)),
            ("p99_ms", percentile(&lat, 0.99)),
        ],
    })
}

async fn small_op(
    ep: &Ep,
    conn: &mut Conn,
    bucket: &str,
    prefix: &str,
    op: SmallOp,
    i: usize,
    bodies: &[SmallBody],
) -> Result<()> {
    let body = &bodies[i % bodies.len()];
    let p = path(bucket, &format!("{prefix}/{i}"));
    match op {
        SmallOp::Put => {
            let req = ep.request(
                Method::PUT,
                &p,
                &[],
                &[],
                &body.sha256,
                full_body(body.data.clone()),
            )?;
            let (parts, _) = roundtrip(conn, req, 200).await?;
            let etag = parts.headers.get("etag").and_then(|v| v.to_str().ok());
            if etag.map(|e| e.trim_matches('"')) != Some(body.md5.as_str()) {
                return Err(format!("PUT {p}: ETag {etag:?}, wanted {}", body.md5).into());
            }
        }
        SmallOp::Get | SmallOp::GetAny => {
            let req = ep.request(Method::GET, &p, &[], &[], EMPTY_SHA256, empty_body())?;
            let (_, got) = roundtrip(conn, req, 200).await?;
            let ok = match op {
                SmallOp::GetAny => got.len() == body.data.len(),
                _ => got == body.data,
            };
            if !ok {
                return Err(format!("GET {p}: the body differs from what was written").into());
            }
        }
        SmallOp::Head => {
            let req = ep.request(Method::HEAD, &p, &[], &[], EMPTY_SHA256, empty_body())?;
            let (parts, _) = roundtrip(conn, req, 200).await?;
            let len = parts
                .headers
                .get("content-length")
                .and_then(|v| v.to_str().ok());
            if len != Some(&body.data.len().to_string()) {
                return Err(format!("HEAD {p}: Content-Length {len:?}").into());
            }
        }
    }
    Ok(())
}

/// Creates the bucket (an existing one owned by us is fine).
pub async fn create_bucket(ep: &Ep, bucket: &str) -> Result<()> {
    let mut conn = Conn::connect(ep.addr).await?;
    let req = ep.request(
        Method::PUT,
        &format!("/{bucket}"),
        &[],
        &[],
        EMPTY_SHA256,
        empty_body(),
    )?;
    let resp = conn.send(req).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    if status == 200 || (status == 409 && body.windows(9).any(|w| w == b"OwnedByYo")) {
        Ok(())
    } else {
        Err(format!("create bucket: {status} {}", String::from_utf8_lossy(&body)).into())
    }
}

/// PUTs empty objects on `keys` from 64 connections (setup, untimed).
pub async fn put_empty(ep: &Ep, bucket: &str, keys: Arc<Vec<String>>) -> Result<()> {
    let counter = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (ep, bucket, keys, counter) = (
            ep.clone(),
            bucket.to_string(),
            keys.clone(),
            counter.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::connect(ep.addr).await?;
            loop {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let Some(k) = keys.get(i) else {
                    return Ok::<_, crate::client::BoxError>(());
                };
                let req = ep.request(
                    Method::PUT,
                    &path(&bucket, k),
                    &[],
                    &[("content-length", "0".to_string())],
                    EMPTY_SHA256,
                    empty_body(),
                )?;
                roundtrip(&mut conn, req, 200).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

pub async fn delete(ep: &Ep, bucket: &str, key: &str) -> Result<()> {
    let mut conn = Conn::connect(ep.addr).await?;
    let req = ep.request(
        Method::DELETE,
        &path(bucket, key),
        &[],
        &[],
        EMPTY_SHA256,
        empty_body(),
    )?;
    roundtrip(&mut conn, req, 204).await?;
    Ok(())
}

/// One large PUT of `size` bytes: MiB/s and the server's peak RSS during it.
pub async fn put_large(
    t: &Target,
    bucket: &str,
    key: &str,
    size: u64,
    pat: &Pattern,
) -> Result<Measure> {
    let (sha, md5) = pat.hashes(0, size);
    let mut conn = Conn::connect(t.ep.addr).await?;
    let rss_ok = servers::reset_peak_rss(t.pid);
    let start = Instant::now();
    let req = t.ep.request(
        Method::PUT,
        &path(bucket, key),
        &[],
        &[("content-length", size.to_string())],
        &sha,
        stream_body(futures_util::stream::iter(pat.chunks(0, size))),
    )?;
    let (parts, _) = roundtrip(&mut conn, req, 200).await?;
    let secs = start.elapsed().as_secs_f64();
    let etag = parts
        .headers
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if etag.trim_matches('"') != hex::encode(md5) {
        return Err(format!("PUT {key}: ETag {etag}, wanted {}", hex::encode(md5)).into());
    }
    Ok(Measure {
        value: size as f64 / (1 << 20) as f64 / secs,
        extra: rss_extra(t, rss_ok),
    })
}

fn rss_extra(t: &Target, reset: bool) -> Vec<(&'static str, f64)> {
    match servers::peak_rss_mib(t.pid) {
        Some(m) if reset => vec![("peak_rss_mib", m)],
        Some(m) => vec![("peak_rss_since_start_mib", m)],
        None => vec![],
    }
}

/// One large GET, checked byte for byte against the pattern: MiB/s and peak RSS.
pub async fn get_large(
    t: &Target,
    bucket: &str,
    key: &str,
    size: u64,
    pat: &Pattern,
) -> Result<Measure> {
    let mut conn = Conn::connect(t.ep.addr).await?;
    let rss_ok = servers::reset_peak_rss(t.pid);
    let start = Instant::now();
    let req = t.ep.request(
        Method::GET,
        &path(bucket, key),
        &[],
        &[],
        EMPTY_SHA256,
        empty_body(),
    )?;
    let resp = conn.send(req).await?;
    if resp.status() != 200 {
        return Err(format!("GET {key}: status {}", resp.status()).into());
    }
    let mut body = resp.into_body();
    let mut off = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if !pat.check(off, &data) {
                return Err(format!("GET {key}: wrong bytes near offset {off}").into());
            }
            off += data.len() as u64;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    if off != size {
        return Err(format!("GET {key}: {off} bytes, wanted {size}").into());
    }
    Ok(Measure {
        value: size as f64 / (1 << 20) as f64 / secs,
        extra: rss_extra(t, rss_ok),
    })
}

fn xml_values<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(&after[..j]);
        rest = &after[j + close.len()..];
    }
    out
}

/// Multipart upload of `size` bytes in `part` byte parts, `conc` parts at a time:
/// MiB/s overall, time of CompleteMultipartUpload alone, and peak RSS.
pub async fn multipart(
    t: &Target,
    bucket: &str,
    key: &str,
    size: u64,
    part: u64,
    conc: usize,
    pat: &Arc<Pattern>,
) -> Result<Measure> {
    let parts_n = size.div_ceil(part);
    for n in 0..parts_n {
        pat.hashes(n * part, part.min(size - n * part));
    }
    let p = path(bucket, key);
    let mut conn = Conn::connect(t.ep.addr).await?;
    let rss_ok = servers::reset_peak_rss(t.pid);
    let start = Instant::now();
    let req = t.ep.request(
        Method::POST,
        &p,
        &[("uploads", "")],
        &[],
        EMPTY_SHA256,
        empty_body(),
    )?;
    let (_, body) = roundtrip(&mut conn, req, 200).await?;
    let xml = String::from_utf8_lossy(&body).into_owned();
    let upload_id = xml_values(&xml, "UploadId")
        .first()
        .ok_or("CreateMultipartUpload: no UploadId")?
        .to_string();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (ep, p, upload_id, next, pat) = (
            t.ep.clone(),
            p.clone(),
            upload_id.clone(),
            next.clone(),
            pat.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::connect(ep.addr).await?;
            let mut etags = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed) as u64;
                if n >= parts_n {
                    return Ok::<_, crate::client::BoxError>(etags);
                }
                let (off, len) = (n * part, part.min(size - n * part));
                let (sha, md5) = pat.hashes(off, len);
                let num = (n + 1).to_string();
                let req = ep.request(
                    Method::PUT,
                    &p,
                    &[("partNumber", &num), ("uploadId", &upload_id)],
                    &[("content-length", len.to_string())],
                    &sha,
                    stream_body(futures_util::stream::iter(pat.chunks(off, len))),
                )?;
                let (parts, _) = roundtrip(&mut conn, req, 200).await?;
                let etag = parts
                    .headers
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if etag.trim_matches('"') != hex::encode(md5) {
                    return Err(format!("UploadPart {num}: ETag {etag}").into());
                }
                etags.push((n + 1, etag.to_string()));
            }
        }));
    }
    let mut etags = Vec::new();
    for task in tasks {
        etags.extend(task.await??);
    }
    etags.sort();
    let mut xml = String::from("<CompleteMultipartUpload>");
    for (n, e) in &etags {
        xml.push_str(&format!(
            "<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>"
        ));
    }
    xml.push_str("</CompleteMultipartUpload>");
    let xml = Bytes::from(xml);
    let sha = hex::encode(Sha256::digest(&xml));
    let c0 = Instant::now();
    let req = t.ep.request(
        Method::POST,
        &p,
        &[("uploadId", &upload_id)],
        &[],
        &sha,
        full_body(xml),
    )?;
    let (_, body) = roundtrip(&mut conn, req, 200).await?;
    let complete = c0.elapsed();
    let secs = start.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&body);
    if text.contains("<Error>") {
        return Err(format!("CompleteMultipartUpload: {text}").into());
    }
    // The object is there with the right size.
    let req =
        t.ep.request(Method::HEAD, &p, &[], &[], EMPTY_SHA256, empty_body())?;
    let (parts, _) = roundtrip(&mut conn, req, 200).await?;
    let len = parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok());
    if len != Some(&size.to_string()) {
        return Err(format!("multipart object: Content-Length {len:?}, wanted {size}").into());
    }
    let mut extra = vec![("complete_ms", complete.as_secs_f64() * 1000.0)];
    extra.extend(rss_extra(t, rss_ok));
    Ok(Measure {
        value: size as f64 / (1 << 20) as f64 / secs,
        extra,
    })
}

/// The keys of the listing workloads: `{prefix}/d000/k0000` …, `dirs` directories.
pub fn list_keys(prefix: &str, total: usize, dirs: usize) -> Vec<String> {
    let per = total.div_ceil(dirs);
    (0..total)
        .map(|i| format!("{prefix}/d{:03}/k{:05}", i / per, i % per))
        .collect()
}

/// One ListObjectsV2 request: (keys, common prefixes, next continuation token).
async fn list_page(
    ep: &Ep,
    conn: &mut Conn,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    token: Option<&str>,
) -> Result<(usize, Vec<String>, Option<String>)> {
    let mut q: Vec<(&str, &str)> =
        vec![("list-type", "2"), ("prefix", prefix), ("max-keys", "1000")];
    if let Some(d) = delimiter {
        q.push(("delimiter", d));
    }
    if let Some(tok) = token {
        q.push(("continuation-token", tok));
    }
    let req = ep.request(
        Method::GET,
        &format!("/{bucket}"),
        &q,
        &[],
        EMPTY_SHA256,
        empty_body(),
    )?;
    let (_, body) = roundtrip(conn, req, 200).await?;
    let xml = std::str::from_utf8(&body)?;
    let keys = xml_values(xml, "Key").len();
    let prefixes = xml_values(xml, "CommonPrefixes")
        .iter()
        .flat_map(|c| xml_values(c, "Prefix"))
        .map(str::to_string)
        .collect();
    let truncated = xml_values(xml, "IsTruncated").first() == Some(&"true");
    let next = xml_values(xml, "NextContinuationToken")
        .first()
        .map(|t| t.replace("&amp;", "&"));
    Ok((keys, prefixes, if truncated { next } else { None }))
}

/// Walks every page under `prefix/` (1000 keys a page), `walks` times: pages/s.
pub async fn list_flat(
    ep: &Ep,
    bucket: &str,
    prefix: &str,
    expect: usize,
    walks: usize,
) -> Result<Measure> {
    let mut conn = Conn::connect(ep.addr).await?;
    let start = Instant::now();
    let mut pages = 0usize;
    for _ in 0..walks {
        let (mut keys, mut token) = (0usize, None);
        loop {
            let (k, _, next) = list_page(
                ep,
                &mut conn,
                bucket,
                &format!("{prefix}/"),
                None,
                token.as_deref(),
            )
            .await?;
            keys += k;
            pages += 1;
            match next {
                Some(n) => token = Some(n),
                None => break,
            }
        }
        if keys != expect {
            return Err(format!("list: {keys} keys, wanted {expect}").into());
        }
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(Measure {
        value: pages as f64 / secs,
        extra: vec![("keys_per_s", (expect * walks) as f64 / secs)],
    })
}

/// Walks the tree with delimiter `/`: the top level (one page of common prefixes), then
/// each directory. pages/s.
pub async fn list_delimited(
    ep: &Ep,
    bucket: &str,
    prefix: &str,
    expect: usize,
    walks: usize,
) -> Result<Measure> {
    let mut conn = Conn::connect(ep.addr).await?;
    let start = Instant::now();
    let mut pages = 0usize;
    for _ in 0..walks {
        let (_, dirs, _) = list_page(
            ep,
            &mut conn,
            bucket,
            &format!("{prefix}/"),
            Some("/"),
            None,
        )
        .await?;
        pages += 1;
        let mut keys = 0;
        for d in &dirs {
            let mut token = None;
            loop {
                let (k, _, next) =
                    list_page(ep, &mut conn, bucket, d, Some("/"), token.as_deref()).await?;
                keys += k;
                pages += 1;
                match next {
                    Some(n) => token = Some(n),
                    None => break,
                }
            }
        }
        if keys != expect {
            return Err(format!(
                "delimited walk: {keys} keys in {} dirs, wanted {expect}",
                dirs.len()
            )
            .into());
        }
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(Measure {
        value: pages as f64 / secs,
        extra: vec![("keys_per_s", (expect * walks) as f64 / secs)],
    })
}

/// One DeleteObjects request for `keys` (which exist): keys/s, and the request's latency.
pub async fn delete_objects(ep: &Ep, bucket: &str, keys: &[String]) -> Result<Measure> {
    use base64::Engine;
    let mut xml = String::from("<Delete>");
    for k in keys {
        xml.push_str(&format!("<Object><Key>{k}</Key></Object>"));
    }
    xml.push_str("</Delete>");
    let xml = Bytes::from(xml);
    let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&xml));
    let sha = hex::encode(Sha256::digest(&xml));
    let mut conn = Conn::connect(ep.addr).await?;
    let start = Instant::now();
    let req = ep.request(
        Method::POST,
        &format!("/{bucket}"),
        &[("delete", "")],
        &[("content-md5", md5)],
        &sha,
        full_body(xml),
    )?;
    let (_, body) = roundtrip(&mut conn, req, 200).await?;
    let secs = start.elapsed().as_secs_f64();
    let text = std::str::from_utf8(&body)?;
    let deleted = xml_values(text, "Deleted").len();
    if deleted != keys.len() || text.contains("<Error>") {
        return Err(format!("DeleteObjects: {deleted} deleted of {}", keys.len()).into());
    }
    Ok(Measure {
        value: keys.len() as f64 / secs,
        extra: vec![("latency_ms", secs * 1000.0)],
    })
}

/// Waits a little between phases so one target's background work (deletes, page cache
/// writeback) does not land in the next measurement.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(200)).await;
}
