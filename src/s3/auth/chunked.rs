//! Request body decoding: `aws-chunked` (signed and unsigned, with or without trailers) and
//! SHA-256 verification of plain bodies.
//!
//! [`ChunkedDecoder`] is a pure, incremental state machine: feed it the raw body in pieces of any
//! size with [`ChunkedDecoder::feed`] and call [`ChunkedDecoder::finish`] at the end of input. The
//! async adaptors ([`decode_body`], [`decode_stream`], [`verify_sha256_stream`]) wrap it for a
//! `Stream` of `Bytes`.
//!
//! Payload bytes are released as soon as they arrive, before the signature of their chunk (or the
//! SHA-256 of the whole body) has been checked. Consumers must therefore treat the payload as
//! trustworthy only once the stream has ended without an error, e.g. by writing to a temporary
//! file and committing the object after the last item.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};

use super::sigv4::EMPTY_SHA256_HEX;
use super::util;
use super::{AuthError, BoxError, PayloadMode, StreamingParams};

/// Longest accepted chunk header line (including CRLF).
pub const MAX_CHUNK_HEADER: usize = 4 * 1024;
/// Largest accepted trailer section (all trailer lines).
pub const MAX_TRAILER_SECTION: usize = 16 * 1024;
/// Largest accepted chunk size.
pub const MAX_CHUNK_SIZE: u64 = 64 * 1024 * 1024;

const TRAILER_SIGNATURE: &str = "x-amz-trailer-signature";

/// Chunk-signature chaining state for the signed variants.
#[derive(Clone)]
struct Signer {
    key: [u8; 32],
    scope: String,
    amz_date: String,
    prev: [u8; 32],
}

impl Signer {
    fn verify(&mut self, kind: &str, hash_lines: &str, sig: &[u8; 32]) -> Result<(), AuthError> {
        let sts = format!(
            "{kind}\n{}\n{}\n{}\n{hash_lines}",
            self.amz_date,
            self.scope,
            hex::encode(self.prev)
        );
        let computed = util::hmac_sha256(&self.key, sts.as_bytes());
        if !util::ct_eq(&computed, sig) {
            return Err(AuthError::SignatureDoesNotMatch);
        }
        self.prev = *sig;
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Header,
    Data,
    DataCr,
    DataLf,
    Trailer,
    Done,
    Failed,
}

/// Incremental decoder for `aws-chunked` bodies.
#[derive(Clone)]
pub struct ChunkedDecoder {
    signer: Option<Signer>,
    trailer: bool,
    expected_len: Option<u64>,
    state: State,
    line: Vec<u8>,
    remaining: u64,
    chunk_sig: [u8; 32],
    hasher: Sha256,
    decoded: u64,
    trailers: TrailerList,
    trailer_sig: Option<[u8; 32]>,
    trailer_bytes: usize,
}

fn malformed(msg: &str) -> AuthError {
    AuthError::MalformedChunk(msg.to_owned())
}

impl ChunkedDecoder {
    /// Decoder for a body announced by `x-amz-content-sha256: STREAMING-*`.
    pub fn new(params: &StreamingParams) -> Self {
        let signer = params.signed.then(|| Signer {
            key: params.signing_key,
            scope: params.scope.clone(),
            amz_date: params.amz_date.clone(),
            prev: params.seed_signature,
        });
        Self::build(signer, params.trailer, params.decoded_content_length)
    }

    /// Decoder for unsigned chunks (`STREAMING-UNSIGNED-PAYLOAD-TRAILER` when `trailer`).
    pub fn unsigned(trailer: bool, decoded_content_length: Option<u64>) -> Self {
        Self::build(None, trailer, decoded_content_length)
    }

    fn build(signer: Option<Signer>, trailer: bool, expected_len: Option<u64>) -> Self {
        Self {
            signer,
            trailer,
            expected_len,
            state: State::Header,
            line: Vec::new(),
            remaining: 0,
            chunk_sig: [0; 32],
            hasher: Sha256::new(),
            decoded: 0,
            trailers: Vec::new(),
            trailer_sig: None,
            trailer_bytes: 0,
        }
    }

    /// Whether the final chunk (and trailer section) has been read completely.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Number of payload bytes decoded so far.
    pub fn decoded_len(&self) -> u64 {
        self.decoded
    }

    /// Decode `input`, appending payload bytes to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), AuthError> {
        self.feed_ranges(input, &mut |r| {
            out.extend_from_slice(input.get(r).unwrap_or_default());
        })
    }

    /// Decode `input`, reporting payload bytes as ranges of `input` (for zero-copy slicing).
    pub fn feed_ranges(
        &mut self,
        input: &[u8],
        emit: &mut dyn FnMut(Range<usize>),
    ) -> Result<(), AuthError> {
        let result = self.feed_inner(input, emit);
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    /// Signal end of input; returns the trailing headers (lowercase names, trimmed values,
    /// without `x-amz-trailer-signature`).
    pub fn finish(&mut self) -> Result<TrailerList, AuthError> {
        match self.state {
            State::Done => Ok(std::mem::take(&mut self.trailers)),
            State::Failed => Err(malformed("decoder already failed")),
            _ => {
                self.state = State::Failed;
                Err(AuthError::IncompleteBody)
            }
        }
    }

    fn feed_inner(
        &mut self,
        input: &[u8],
        emit: &mut dyn FnMut(Range<usize>),
    ) -> Result<(), AuthError> {
        let mut pos = 0;
        while let Some(rest) = input.get(pos..).filter(|r| !r.is_empty()) {
            match self.state {
                State::Header | State::Trailer => {
                    let limit = if self.state == State::Header {
                        MAX_CHUNK_HEADER
                    } else {
                        MAX_TRAILER_SECTION.saturating_sub(self.trailer_bytes)
                    };
                    let (piece, complete) = match rest.iter().position(|&b| b == b'\n') {
                        Some(i) => (rest.get(..=i).unwrap_or_default(), true),
                        None => (rest, false),
                    };
                    if self.line.len() + piece.len() > limit {
                        return Err(malformed(if self.state == State::Header {
                            "chunk header line too long"
                        } else {
                            "trailer section too long"
                        }));
                    }
                    self.line.extend_from_slice(piece);
                    pos += piece.len();
                    if complete {
                        let line = std::mem::take(&mut self.line);
                        let body = line
                            .strip_suffix(b"\r\n")
                            .ok_or_else(|| malformed("line not terminated by CRLF"))?;
                        if self.state == State::Header {
                            self.on_header_line(body)?;
                        } else {
                            self.trailer_bytes += line.len();
                            self.on_trailer_line(body)?;
                        }
                        self.line = line;
                        self.line.clear();
                    }
                }
                State::Data => {
                    let n = rest
                        .len()
                        .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                    if let Some(data) = rest.get(..n) {
                        if self.signer.is_some() {
                            self.hasher.update(data);
                        }
                        emit(pos..pos + n);
                    }
                    pos += n;
                    self.remaining -= n as u64;
                    self.decoded += n as u64;
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                }
                State::DataCr | State::DataLf => {
                    let want = if self.state == State::DataCr {
                        b'\r'
                    } else {
                        b'\n'
                    };
                    if rest.first() != Some(&want) {
                        return Err(malformed("chunk data not followed by CRLF"));
                    }
                    pos += 1;
                    if self.state == State::DataCr {
                        self.state = State::DataLf;
                    } else {
                        self.end_chunk()?;
                        self.state = State::Header;
                    }
                }
                State::Done => return Err(malformed("data after the final chunk")),
                State::Failed => return Err(malformed("decoder already failed")),
            }
        }
        Ok(())
    }

    fn on_header_line(&mut self, line: &[u8]) -> Result<(), AuthError> {
        let (size, ext) = match line.iter().position(|&b| b == b';') {
            Some(i) => (
                line.get(..i).unwrap_or_default(),
                line.get(i + 1..).unwrap_or_default(),
            ),
            None => (line, &[][..]),
        };
        if size.is_empty() || size.len() > 16 || !size.iter().all(u8::is_ascii_hexdigit) {
            return Err(malformed("invalid chunk size"));
        }
        let size = std::str::from_utf8(size)
            .ok()
            .and_then(|s| u64::from_str_radix(s, 16).ok())
            .ok_or_else(|| malformed("invalid chunk size"))?;
        if size > MAX_CHUNK_SIZE {
            return Err(malformed("chunk too large"));
        }
        if self.signer.is_some() {
            let sig = ext
                .strip_prefix(b"chunk-signature=")
                .and_then(util::decode_hex32)
                .ok_or_else(|| malformed("missing or invalid chunk-signature"))?;
            self.chunk_sig = sig;
        }
        let total = self.decoded.saturating_add(size);
        if self.expected_len.is_some_and(|expected| total > expected) {
            return Err(malformed("body longer than x-amz-decoded-content-length"));
        }
        self.hasher = Sha256::new();
        if size == 0 {
            self.end_chunk()?;
            if self
                .expected_len
                .is_some_and(|expected| self.decoded != expected)
            {
                return Err(AuthError::IncompleteBody);
            }
            self.state = State::Trailer;
        } else {
            self.remaining = size;
            self.state = State::Data;
        }
        Ok(())
    }

    /// Verify the signature of the chunk whose data was just completed.
    fn end_chunk(&mut self) -> Result<(), AuthError> {
        let hash = std::mem::take(&mut self.hasher).finalize();
        if let Some(signer) = &mut self.signer {
            let lines = format!("{EMPTY_SHA256_HEX}\n{}", hex::encode(hash));
            signer.verify("AWS4-HMAC-SHA256-PAYLOAD", &lines, &self.chunk_sig)?;
        }
        Ok(())
    }

    fn on_trailer_line(&mut self, line: &[u8]) -> Result<(), AuthError> {
        if line.is_empty() {
            return self.end_trailers();
        }
        if !self.trailer {
            return Err(malformed("unexpected trailer after the final chunk"));
        }
        let line = std::str::from_utf8(line).map_err(|_| malformed("trailer is not UTF-8"))?;
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| malformed("trailer line without ':'"))?;
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(malformed("invalid trailer name"));
        }
        if name == TRAILER_SIGNATURE {
            if self.signer.is_some() {
                let sig = util::decode_hex32(value.as_bytes())
                    .ok_or_else(|| malformed("invalid x-amz-trailer-signature"))?;
                if self.trailer_sig.replace(sig).is_some() {
                    return Err(malformed("repeated x-amz-trailer-signature"));
                }
            }
        } else {
            self.trailers.push((name, value.to_owned()));
        }
        Ok(())
    }

    fn end_trailers(&mut self) -> Result<(), AuthError> {
        if self.trailer
            && let Some(signer) = &mut self.signer
        {
            let sig = self
                .trailer_sig
                .ok_or_else(|| malformed("missing x-amz-trailer-signature"))?;
            let mut sorted: Vec<&(String, String)> = self.trailers.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            let mut canonical = String::new();
            for (name, value) in sorted {
                canonical.push_str(name);
                canonical.push(':');
                canonical.push_str(value);
                canonical.push('\n');
            }
            let hash = hex::encode(util::sha256(canonical.as_bytes()));
            signer.verify("AWS4-HMAC-SHA256-TRAILER", &hash, &sig)?;
        }
        self.state = State::Done;
        Ok(())
    }
}

/// Trailing header list: (lowercase name, trimmed value) pairs in arrival order.
pub type TrailerList = Vec<(String, String)>;

/// Trailing headers of a body, available once its stream has ended successfully.
#[derive(Clone, Debug, Default)]
pub struct Trailers(Arc<Mutex<Option<TrailerList>>>);

impl Trailers {
    /// All trailers (lowercase name, value), or `None` while the body has not ended cleanly.
    pub fn get(&self) -> Option<TrailerList> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Value of trailer `name` (lowercase), if the body ended cleanly and carried it.
    pub fn value(&self, name: &str) -> Option<String> {
        self.get()?
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    fn set(&self, trailers: TrailerList) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(trailers);
    }
}

/// What the body adaptor does with each piece of input.
enum BodyDecoder {
    Plain,
    Sha256 { hasher: Sha256, expected: [u8; 32] },
    Chunked(Box<ChunkedDecoder>),
}

struct Driver<S> {
    body: std::pin::Pin<Box<S>>,
    decoder: BodyDecoder,
    pending: std::collections::VecDeque<Bytes>,
    trailers: Trailers,
    done: bool,
}

fn drive<S, E>(
    body: S,
    decoder: BodyDecoder,
) -> (impl Stream<Item = Result<Bytes, AuthError>>, Trailers)
where
    S: Stream<Item = Result<Bytes, E>>,
    E: Into<BoxError>,
{
    let trailers = Trailers::default();
    let driver = Driver {
        body: Box::pin(body),
        decoder,
        pending: std::collections::VecDeque::new(),
        trailers: trailers.clone(),
        done: false,
    };
    let stream = futures_util::stream::unfold(driver, |mut d| async move {
        loop {
            if let Some(bytes) = d.pending.pop_front() {
                return Some((Ok(bytes), d));
            }
            if d.done {
                return None;
            }
            let result = match d.body.next().await {
                Some(Ok(bytes)) => d.on_bytes(bytes),
                Some(Err(e)) => Err(AuthError::Body(e.into())),
                None => {
                    d.done = true;
                    d.on_end()
                }
            };
            if let Err(e) = result {
                d.done = true;
                d.pending.clear();
                return Some((Err(e), d));
            }
        }
    });
    (stream, trailers)
}

impl<S> Driver<S> {
    fn on_bytes(&mut self, bytes: Bytes) -> Result<(), AuthError> {
        match &mut self.decoder {
            BodyDecoder::Plain => self.pending.push_back(bytes),
            BodyDecoder::Sha256 { hasher, .. } => {
                hasher.update(&bytes);
                self.pending.push_back(bytes);
            }
            BodyDecoder::Chunked(dec) => {
                let pending = &mut self.pending;
                dec.feed_ranges(&bytes, &mut |r| {
                    if !r.is_empty() {
                        pending.push_back(bytes.slice(r));
                    }
                })?;
            }
        }
        Ok(())
    }

    fn on_end(&mut self) -> Result<(), AuthError> {
        let trailers = match &mut self.decoder {
            BodyDecoder::Plain => Vec::new(),
            BodyDecoder::Sha256 { hasher, expected } => {
                let actual: [u8; 32] = std::mem::take(hasher).finalize().into();
                if !util::ct_eq(&actual, expected) {
                    return Err(AuthError::ContentSha256Mismatch);
                }
                Vec::new()
            }
            BodyDecoder::Chunked(dec) => dec.finish()?,
        };
        self.trailers.set(trailers);
        Ok(())
    }
}

/// Decode/verify a request body according to `payload`: plain bodies pass through, `Sha256`
/// bodies are hashed and checked at the end, `Streaming` bodies are de-chunked and their
/// signatures checked. The returned [`Trailers`] fill in once the stream has ended cleanly.
pub fn decode_body<S, E>(
    body: S,
    payload: &PayloadMode,
) -> (
    impl Stream<Item = Result<Bytes, AuthError>> + use<S, E>,
    Trailers,
)
where
    S: Stream<Item = Result<Bytes, E>>,
    E: Into<BoxError>,
{
    let decoder = match payload {
        PayloadMode::Unsigned => BodyDecoder::Plain,
        PayloadMode::Sha256(expected) => BodyDecoder::Sha256 {
            hasher: Sha256::new(),
            expected: *expected,
        },
        PayloadMode::Streaming(params) => {
            BodyDecoder::Chunked(Box::new(ChunkedDecoder::new(params)))
        }
    };
    drive(body, decoder)
}

/// De-chunk an `aws-chunked` body with `decoder`.
pub fn decode_stream<S, E>(
    body: S,
    decoder: ChunkedDecoder,
) -> (impl Stream<Item = Result<Bytes, AuthError>>, Trailers)
where
    S: Stream<Item = Result<Bytes, E>>,
    E: Into<BoxError>,
{
    drive(body, BodyDecoder::Chunked(Box::new(decoder)))
}

/// Pass a body through, failing with [`AuthError::ContentSha256Mismatch`] at the end if its
/// SHA-256 differs from `expected`.
pub fn verify_sha256_stream<S, E>(
    body: S,
    expected: [u8; 32],
) -> impl Stream<Item = Result<Bytes, AuthError>>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: Into<BoxError>,
{
    drive(
        body,
        BodyDecoder::Sha256 {
            hasher: Sha256::new(),
            expected,
        },
    )
    .0
}
