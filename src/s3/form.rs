//! A streaming `multipart/form-data` reader (RFC 7578) for browser form uploads.
//!
//! Memory stays bounded whatever the client sends: a part's header block is capped at
//! [`MAX_PART_HEADERS`], small values are read with a caller-given limit, and a part body is
//! handed out chunk by chunk while only a delimiter's length of it is held back (it might be
//! the start of the next boundary). We do not use the `multer` crate for this: it buffers a
//! part's header block without a limit and reads ahead of the consumer, which would let a
//! client make the server hold an unbounded amount of data before authentication.

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

/// Largest header block of one part (browsers send two short headers).
pub const MAX_PART_HEADERS: usize = 16 * 1024;

/// Longest boundary accepted (RFC 2046 allows 70 characters; be a little lenient).
const MAX_BOUNDARY: usize = 200;

/// Longest run of transport padding accepted after a delimiter.
const MAX_PADDING: usize = 1024;

/// Why a form could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FormError<E> {
    /// The body is not well-formed `multipart/form-data`.
    #[error("malformed multipart body: {0}")]
    Malformed(&'static str),
    /// The body ended before the closing delimiter.
    #[error("the multipart body ended early")]
    Incomplete,
    /// A value was larger than the limit the caller gave.
    #[error("a form field is larger than allowed")]
    TooLarge,
    /// The underlying body failed.
    #[error("reading the body failed")]
    Body(E),
}

/// The headers of one part that matter to a form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartHeaders {
    /// The field name (`Content-Disposition: form-data; name="…"`).
    pub name: String,
    /// The file name, for file parts (`filename="…"` or RFC 5987 `filename*=UTF-8''…`).
    pub filename: Option<String>,
    /// The part's own Content-Type, if given.
    pub content_type: Option<String>,
}

/// The boundary of a `multipart/form-data` Content-Type, if it is one.
pub fn boundary(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    let mime = params.next()?.trim();
    if !mime.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    for p in params {
        let Some((name, value)) = p.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("boundary") {
            let v = value.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            let ok = (1..=MAX_BOUNDARY).contains(&v.len())
                && v.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
            return ok.then(|| v.to_string());
        }
    }
    None
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first delimiter: bytes are discarded.
    Preamble,
    /// Just past a delimiter: either `--` (the end) or padding + CRLF + headers follow.
    AfterDelimiter,
    /// At the CRLF that starts a header block.
    Headers,
    /// Inside a part body.
    Body,
    /// Past the closing delimiter.
    Done,
}

/// Reads a `multipart/form-data` body part by part.
pub struct FormReader<S> {
    stream: S,
    buf: BytesMut,
    /// `CRLF--boundary`.
    delimiter: Vec<u8>,
    state: State,
}

impl<S, E> FormReader<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    /// A reader of `stream` with the given boundary (from [`boundary`]).
    pub fn new(stream: S, boundary: &str) -> FormReader<S> {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        // The first delimiter may start the body without a CRLF before it; pretend one is
        // there so every delimiter looks the same.
        let buf = BytesMut::from(&b"\r\n"[..]);
        FormReader {
            stream,
            buf,
            delimiter,
            state: State::Preamble,
        }
    }

    /// Appends the next chunk of the body to the buffer.
    async fn fill(&mut self) -> Result<(), FormError<E>> {
        loop {
            match self.stream.next().await {
                Some(Ok(chunk)) if chunk.is_empty() => continue,
                Some(Ok(chunk)) => {
                    self.buf.extend_from_slice(&chunk);
                    return Ok(());
                }
                Some(Err(e)) => return Err(FormError::Body(e)),
                None => return Err(FormError::Incomplete),
            }
        }
    }

    /// The next part's headers, or `None` after the closing delimiter. Whatever is left of
    /// the current part is skipped.
    pub async fn next_part(&mut self) -> Result<Option<PartHeaders>, FormError<E>> {
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::Preamble | State::Body => while self.body_chunk().await?.is_some() {},
                State::AfterDelimiter => {
                    while self.buf.len() < 2 {
                        self.fill().await?;
                    }
                    if self.buf.starts_with(b"--") {
                        self.state = State::Done;
                        return Ok(None);
                    }
                    let pad = self
                        .buf
                        .iter()
                        .take_while(|b| **b == b' ' || **b == b'\t')
                        .count();
                    if pad > MAX_PADDING {
                        return Err(FormError::Malformed("too much padding after a boundary"));
                    }
                    if pad == self.buf.len() {
                        self.fill().await?;
                        continue;
                    }
                    self.buf.advance(pad);
                    self.state = State::Headers;
                }
                State::Headers => match memchr::memmem::find(&self.buf, b"\r\n\r\n") {
                    Some(end) => {
                        if end > MAX_PART_HEADERS {
                            return Err(FormError::Malformed("part headers are too large"));
                        }
                        let block = self.buf.split_to(end + 4);
                        if !block.starts_with(b"\r\n") {
                            return Err(FormError::Malformed("boundary not followed by CRLF"));
                        }
                        let lines = block.get(2..end).unwrap_or_default();
                        let headers = parse_part_headers(lines).map_err(FormError::Malformed)?;
                        self.state = State::Body;
                        return Ok(Some(headers));
                    }
                    None => {
                        if self.buf.len() > MAX_PART_HEADERS + 4 {
                            return Err(FormError::Malformed("part headers are too large"));
                        }
                        self.fill().await?;
                    }
                },
            }
        }
    }

    /// The next chunk of the current part's body; `None` at its end.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, FormError<E>> {
        if self.state != State::Body {
            return Ok(None);
        }
        self.body_chunk().await
    }

    /// The rest of the current part's body, which must not exceed `limit` bytes.
    pub async fn read_value(&mut self, limit: usize) -> Result<Vec<u8>, FormError<E>> {
        let mut out = Vec::new();
        while let Some(chunk) = self.next_chunk().await? {
            if out.len().saturating_add(chunk.len()) > limit {
                return Err(FormError::TooLarge);
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Body bytes up to the next delimiter (preamble or part body).
    async fn body_chunk(&mut self) -> Result<Option<Bytes>, FormError<E>> {
        loop {
            if let Some(at) = memchr::memmem::find(&self.buf, &self.delimiter) {
                if at > 0 {
                    return Ok(Some(self.buf.split_to(at).freeze()));
                }
                self.buf.advance(self.delimiter.len());
                self.state = State::AfterDelimiter;
                return Ok(None);
            }
            // Hold back what could be the start of a delimiter split across chunks.
            let keep = self.delimiter.len().saturating_sub(1);
            if self.buf.len() > keep {
                let n = self.buf.len() - keep;
                return Ok(Some(self.buf.split_to(n).freeze()));
            }
            self.fill().await?;
        }
    }
}

/// Parses a part's header lines (without the blank line that ends them).
fn parse_part_headers(lines: &[u8]) -> Result<PartHeaders, &'static str> {
    let text = std::str::from_utf8(lines).map_err(|_| "part headers are not UTF-8")?;
    let mut disposition = None;
    let mut content_type = None;
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or("malformed part header")?;
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-disposition") {
            if disposition.is_some() {
                return Err("repeated Content-Disposition");
            }
            disposition = Some(parse_disposition(value)?);
        } else if name.eq_ignore_ascii_case("content-type") {
            content_type = Some(value.trim().to_string());
        }
    }
    let (name, filename) = disposition.ok_or("part without Content-Disposition")?;
    Ok(PartHeaders {
        name: name.ok_or("part without a name")?,
        filename,
        content_type,
    })
}

/// Parses `form-data; name="…"; filename="…"` into (name, filename).
#[allow(clippy::type_complexity)]
fn parse_disposition(value: &str) -> Result<(Option<String>, Option<String>), &'static str> {
    let (kind, mut rest) = value.split_once(';').unwrap_or((value, ""));
    if !kind.trim().eq_ignore_ascii_case("form-data") {
        return Err("part disposition is not form-data");
    }
    let (mut name, mut filename, mut filename_ext) = (None, None, None);
    loop {
        rest = rest.trim_start_matches([' ', '\t', ';']);
        if rest.is_empty() {
            break;
        }
        let (param, after) = rest
            .split_once('=')
            .ok_or("malformed disposition parameter")?;
        let param = param.trim().to_ascii_lowercase();
        let after = after.trim_start_matches([' ', '\t']);
        let (value, tail) = match after.strip_prefix('"') {
            Some(quoted) => parse_quoted(quoted)?,
            None => {
                let (v, t) = after.split_once(';').unwrap_or((after, ""));
                (v.trim().to_string(), t)
            }
        };
        rest = tail;
        match param.as_str() {
            "name" => name = Some(value),
            "filename" => filename = Some(value),
            "filename*" => filename_ext = decode_ext_value(&value),
            _ => {}
        }
    }
    Ok((name, filename_ext.or(filename)))
}

/// Reads a quoted string (after its opening quote); returns it and what follows.
///
/// Browsers do not escape backslashes (they percent-encode `"`), while some libraries write
/// `\\` and `\"`: only those two sequences are unescaped, any other backslash is kept.
fn parse_quoted(s: &str) -> Result<(String, &str), &'static str> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, s.get(i + 1..).unwrap_or_default())),
            '\\' => match s.get(i + 1..).and_then(|t| t.chars().next()) {
                Some(next @ ('"' | '\\')) => {
                    out.push(next);
                    chars.next();
                }
                _ => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    Err("unterminated quoted string in part header")
}

/// Decodes an RFC 5987 `UTF-8''percent-encoded` value.
fn decode_ext_value(v: &str) -> Option<String> {
    let mut it = v.splitn(3, '\'');
    let charset = it.next()?;
    let _language = it.next()?;
    let encoded = it.next()?;
    if !charset.eq_ignore_ascii_case("utf-8") {
        return None;
    }
    percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;
    use proptest::prelude::*;

    type Reader = FormReader<stream::Iter<std::vec::IntoIter<Result<Bytes, ()>>>>;

    fn reader(body: &[u8], cuts: &[usize]) -> Reader {
        let mut pieces = Vec::new();
        let mut last = 0;
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
        cuts.sort_unstable();
        for c in cuts {
            pieces.push(Ok(Bytes::copy_from_slice(&body[last..c])));
            last = c;
        }
        pieces.push(Ok(Bytes::copy_from_slice(&body[last..])));
        FormReader::new(stream::iter(pieces), "XyZ")
    }

    /// Reads every part whole: (headers, body).
    async fn read_all(mut r: Reader) -> Result<Vec<(PartHeaders, Vec<u8>)>, FormError<()>> {
        let mut out = Vec::new();
        while let Some(h) = r.next_part().await? {
            let v = r.read_value(usize::MAX).await?;
            out.push((h, v));
        }
        Ok(out)
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    const BODY: &[u8] = b"preamble\r\n--XyZ\r\n\
        Content-Disposition: form-data; name=\"key\"\r\n\r\n\
        uploads/${filename}\r\n--XyZ  \r\n\
        content-disposition: form-data; name=\"empty\"\r\n\r\n\
        \r\n--XyZ\r\n\
        Content-Disposition: form-data; name=\"file\"; filename=\"a \\\"b\\\".txt\"\r\n\
        Content-Type: text/plain\r\n\r\n\
        line1\r\n--Xy\r\n-XyZ\r\n--XyZ--\r\nepilogue";

    #[test]
    fn boundary_from_content_type() {
        assert_eq!(
            boundary("multipart/form-data; boundary=----abc").as_deref(),
            Some("----abc")
        );
        assert_eq!(
            boundary("Multipart/Form-Data;charset=utf-8; BOUNDARY=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(boundary("multipart/form-data"), None);
        assert_eq!(boundary("multipart/form-data; boundary="), None);
        assert_eq!(boundary("multipart/mixed; boundary=x"), None);
    }

    #[test]
    fn reads_parts() {
        let parts = block_on(read_all(reader(BODY, &[]))).unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].0.name, "key");
        assert_eq!(parts[0].1, b"uploads/${filename}");
        assert_eq!(parts[1].0.name, "empty");
        assert_eq!(parts[1].1, b"");
        assert_eq!(parts[2].0.name, "file");
        assert_eq!(parts[2].0.filename.as_deref(), Some("a \"b\".txt"));
        assert_eq!(parts[2].0.content_type.as_deref(), Some("text/plain"));
        assert_eq!(parts[2].1, b"line1\r\n--Xy\r\n-XyZ".as_slice());
    }

    #[test]
    fn rejects_malformed() {
        let cases: &[&[u8]] = &[
            b"--XyZ\r\nContent-Disposition: form-data\r\n\r\nv\r\n--XyZ--",
            b"--XyZ\r\nContent-Disposition: attachment; name=a\r\n\r\nv\r\n--XyZ--",
            b"--XyZ\r\nno colon\r\n\r\nv\r\n--XyZ--",
            b"--XyZ\r\nContent-Disposition: form-data; name=\"a\r\n\r\nv\r\n--XyZ--",
        ];
        for body in cases {
            let r = block_on(read_all(reader(body, &[])));
            assert!(matches!(r, Err(FormError::Malformed(_))), "{r:?}");
        }
        let r = block_on(read_all(reader(
            b"--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\nv",
            &[],
        )));
        assert!(matches!(r, Err(FormError::Incomplete)), "{r:?}");
    }

    #[test]
    fn header_block_is_bounded() {
        let mut body = b"--XyZ\r\nX-Long: ".to_vec();
        body.extend(std::iter::repeat_n(b'a', MAX_PART_HEADERS + 10));
        let r = block_on(read_all(reader(&body, &[100, 5000])));
        assert!(matches!(r, Err(FormError::Malformed(_))), "{r:?}");
    }

    #[test]
    fn value_limit() {
        let mut r = reader(BODY, &[]);
        let r = block_on(async {
            r.next_part().await?;
            r.read_value(3).await
        });
        assert!(matches!(r, Err(FormError::TooLarge)));
    }

    #[test]
    fn filename_star() {
        let (_, f) = parse_disposition(
            "form-data; name=file; filename=\"x\"; filename*=UTF-8''%C3%A9t%C3%A9.txt",
        )
        .unwrap();
        assert_eq!(f.as_deref(), Some("été.txt"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn split_anywhere(cuts in prop::collection::vec(any::<usize>(), 0..12)) {
            let whole = block_on(read_all(reader(BODY, &[]))).unwrap();
            let split = block_on(read_all(reader(BODY, &cuts))).unwrap();
            prop_assert_eq!(whole, split);
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            body in prop::collection::vec(any::<u8>(), 0..400),
            cuts in prop::collection::vec(any::<usize>(), 0..6),
        ) {
            let mut b = b"--XyZ\r\n".to_vec();
            b.extend_from_slice(&body);
            let _ = block_on(read_all(reader(&b, &cuts)));
        }
    }
}
