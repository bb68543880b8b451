//! Small helpers shared by the signature schemes: query parsing, encoding, dates, MACs.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Maximum allowed distance between request time and server time, in seconds.
pub(crate) const MAX_SKEW_SECS: i64 = 15 * 60;

/// One query parameter, raw and decoded.
pub(crate) struct QueryParam<'a> {
    /// Raw (still encoded) name as sent; used for exact name matching.
    pub name: &'a [u8],
    /// Raw (still encoded) value as sent; empty when there was no `=`.
    pub raw_value: &'a [u8],
}

impl QueryParam<'_> {
    /// Percent-decoded value, `+` kept literally.
    pub fn value_bytes(&self) -> Vec<u8> {
        percent_decode(self.raw_value, false)
    }
}

/// The parts of a request the verifiers look at.
pub(crate) struct Request<'a> {
    pub method: &'a http::Method,
    pub path: &'a str,
    pub headers: &'a http::HeaderMap,
    pub params: &'a [QueryParam<'a>],
    /// The query string exactly as sent.
    pub raw_query: &'a str,
    /// Server time in Unix seconds.
    pub now: i64,
    /// Hex SHA-256 of the body, when the caller holds it (see `VerifyOptions`).
    pub body_sha256: Option<&'a str>,
}

impl Request<'_> {
    /// The first query parameter with exactly this (raw) name.
    pub fn param(&self, name: &str) -> Option<&QueryParam<'_>> {
        self.params.iter().find(|p| p.name == name.as_bytes())
    }

    /// The single value of header `name`; `Err` if it is repeated.
    pub fn header<K: http::header::AsHeaderName>(&self, name: K) -> Result<Option<&[u8]>, ()> {
        let mut values = self.headers.get_all(name).iter();
        let first = values.next();
        if values.next().is_some() {
            return Err(());
        }
        Ok(first.map(|v| v.as_bytes()))
    }
}

/// Split a raw query string into parameters (empty pieces are skipped).
pub(crate) fn parse_query(query: &str) -> Vec<QueryParam<'_>> {
    query
        .as_bytes()
        .split(|&b| b == b'&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| match piece.iter().position(|&b| b == b'=') {
            Some(i) => QueryParam {
                name: piece.get(..i).unwrap_or_default(),
                raw_value: piece.get(i + 1..).unwrap_or_default(),
            },
            None => QueryParam {
                name: piece,
                raw_value: &[],
            },
        })
        .collect()
}

/// `s` split at every `sep` (an ASCII byte), as `str::split` does. The fields split on
/// every request (the `Authorization` header, its credential, the signed headers) are
/// short, and `str`'s char searcher spent ~200 instructions setting up memchr for each
/// piece; a plain loop over the bytes costs a few per byte.
pub(crate) fn split_ascii(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    debug_assert!(sep.is_ascii());
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let r = rest?;
        match split_once_ascii(r, sep) {
            Some((piece, after)) => {
                rest = Some(after);
                Some(piece)
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// `s` split at its first `sep` (an ASCII byte, so both sides stay valid UTF-8).
pub(crate) fn split_once_ascii(s: &str, sep: u8) -> Option<(&str, &str)> {
    let i = s.bytes().position(|b| b == sep)?;
    Some((s.get(..i)?, s.get(i + 1..)?))
}

/// Value of each hex digit; 0xff for every other byte.
const HEX_VALUES: [u8; 256] = {
    let mut table = [0xff; 256];
    let mut i = 0;
    while i < 16 {
        table[b"0123456789abcdef"[i] as usize] = i as u8;
        table[b"0123456789ABCDEF"[i] as usize] = i as u8;
        i += 1;
    }
    table
};

fn hex_val(b: u8) -> Option<u8> {
    Some(HEX_VALUES[usize::from(b)]).filter(|v| *v < 16)
}

/// Percent-decode bytes; invalid `%` sequences are kept literally. With `plus_as_space`, `+`
/// decodes to a space (form encoding).
pub(crate) fn percent_decode(input: &[u8], plus_as_space: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        if b == b'%' {
            let hi = input.get(i + 1).copied().and_then(hex_val);
            let lo = input.get(i + 2).copied().and_then(hex_val);
            if let (Some(hi), Some(lo)) = (hi, lo) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(if plus_as_space && b == b'+' { b' ' } else { b });
        i += 1;
    }
    out
}

/// Uppercase hex digit for a nibble.
fn hex_digit(nibble: u8) -> char {
    char::from_digit(u32::from(nibble), 16).map_or('0', |c| c.to_ascii_uppercase())
}

/// Append `input` encoded with the SigV4 rule: `A-Za-z0-9-._~` kept, `/` kept if `keep_slash`,
/// everything else `%XX` (uppercase).
pub(crate) fn uri_encode(input: &[u8], keep_slash: bool, out: &mut String) {
    for &b in input {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(hex_digit(b >> 4));
            out.push(hex_digit(b & 0x0f));
        }
    }
}

/// Seconds since the Unix epoch (negative before it).
pub(crate) fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u32, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u32::from(d - b'0'))
    })
}

/// Parse an ISO 8601 basic timestamp `YYYYMMDDTHHMMSSZ` into Unix seconds.
pub(crate) fn parse_amz_date(s: &[u8]) -> Option<i64> {
    if s.len() != 16 || s.get(8) != Some(&b'T') || s.get(15) != Some(&b'Z') {
        return None;
    }
    let year = i32::try_from(digits(s.get(0..4)?)?).ok()?;
    let month = u8::try_from(digits(s.get(4..6)?)?).ok()?;
    let day = u8::try_from(digits(s.get(6..8)?)?).ok()?;
    let hour = u8::try_from(digits(s.get(9..11)?)?).ok()?;
    let minute = u8::try_from(digits(s.get(11..13)?)?).ok()?;
    let second = u8::try_from(digits(s.get(13..15)?)?).ok()?;
    let date =
        time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()?;
    let tod = time::Time::from_hms(hour, minute, second).ok()?;
    Some(
        time::PrimitiveDateTime::new(date, tod)
            .assume_utc()
            .unix_timestamp(),
    )
}

/// Format Unix seconds as ISO 8601 basic `YYYYMMDDTHHMMSSZ`.
pub(crate) fn format_amz_date(secs: i64) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp(secs).ok()?;
    Some(format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

/// Parse an HTTP `Date` value (RFC 1123 with `GMT` or a numeric offset, RFC 850, asctime).
pub(crate) fn parse_http_date(s: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(s).ok()?.trim();
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc2822) {
        return Some(t.unix_timestamp());
    }
    let t = httpdate::parse_http_date(s).ok()?;
    Some(unix_seconds(t))
}

/// Whether `t` is within the allowed skew of `now`.
pub(crate) fn within_skew(t: i64, now: i64) -> bool {
    t.abs_diff(now) <= MAX_SKEW_SECS.unsigned_abs()
}

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// HMAC-SHA256 of `data` under `key`.
pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = hmac(key);
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// An HMAC-SHA256 under `key`, to be fed piece by piece.
pub(crate) fn hmac(key: &[u8]) -> Hmac<Sha256> {
    match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        // HMAC takes keys of any length: this arm cannot run.
        Err(_) => <Hmac<Sha256> as KeyInit>::new(&Default::default()),
    }
}

/// Lower-case hex of a 32-byte digest, without allocating.
pub(crate) fn hex32(bytes: &[u8; 32]) -> [u8; 64] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0x0f)];
    }
    out
}

/// Constant-time equality of two byte strings.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Decode a 64-character hex string into 32 bytes.
pub(crate) fn decode_hex32(s: &[u8]) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    // Any byte that is not a digit has its high bits set: check once at the end.
    let mut invalid = 0u8;
    for (byte, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let (hi, lo) = (
            HEX_VALUES[usize::from(pair[0])],
            HEX_VALUES[usize::from(pair[1])],
        );
        invalid |= hi | lo;
        *byte = hi << 4 | lo;
    }
    (invalid < 16).then_some(out)
}

/// Trim spaces and tabs at both ends and collapse inner runs of spaces to one space.
pub(crate) fn trim_collapse(value: &[u8], out: &mut Vec<u8>) {
    let is_ws = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ws(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ws(b))
        .map_or(start, |i| i + 1);
    let mut prev_space = false;
    for &b in value.get(start..end).unwrap_or_default() {
        if b == b' ' {
            if !prev_space {
                out.push(b' ');
            }
            prev_space = true;
        } else {
            out.push(b);
            prev_space = false;
        }
    }
}
