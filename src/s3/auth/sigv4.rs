//! AWS Signature Version 4: `Authorization` header and presigned query.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::util::{self, Request};
use super::{AuthError, AuthKind, PayloadMode, SecretLookup, StreamingParams, Verified};
use crate::s3::names::{X_AMZ_CONTENT_SHA256, X_AMZ_DATE, X_AMZ_DECODED_CONTENT_LENGTH};

/// SHA-256 of the empty string, hex.
pub(crate) const EMPTY_SHA256_HEX: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const MAX_PRESIGN_EXPIRES: u64 = 604_800;
const KEY_CACHE_CAP: usize = 1024;

/// Parsed credential scope `AKID/YYYYMMDD/region/s3/aws4_request`, borrowed from the
/// request.
pub(super) struct Credential<'a> {
    pub(super) access_key_id: &'a str,
    pub(super) date: &'a str,
    pub(super) region: &'a str,
}

impl Credential<'_> {
    /// `YYYYMMDD/region/s3/aws4_request`.
    fn scope(&self) -> String {
        let mut out = String::with_capacity(self.date.len() + self.region.len() + 17);
        self.scope_parts(|part| out.push_str(part));
        out
    }

    /// Passes the pieces of the scope to `f`, in order.
    fn scope_parts(&self, mut f: impl FnMut(&str)) {
        for part in [self.date, "/", self.region, "/s3/aws4_request"] {
            f(part);
        }
    }
}

pub(super) fn parse_credential(
    value: &[u8],
    err: fn(String) -> AuthError,
) -> Result<Credential<'_>, AuthError> {
    let value = std::str::from_utf8(value).map_err(|_| err("credential is not UTF-8".into()))?;
    let mut parts = util::split_ascii(value, b'/');
    let (Some(akid), Some(date), Some(region), Some(service), Some(terminator), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(err(format!("the credential '{value}' is malformed")));
    };
    if akid.is_empty() {
        return Err(err("the access key id in the credential is empty".into()));
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(format!("invalid credential date '{date}'")));
    }
    if region.is_empty() {
        return Err(err("the region in the credential is empty".into()));
    }
    if service != "s3" {
        return Err(err(format!(
            "incorrect service '{service}'; this endpoint belongs to 's3'"
        )));
    }
    if terminator != "aws4_request" {
        return Err(err(format!(
            "incorrect terminal '{terminator}'; this endpoint uses 'aws4_request'"
        )));
    }
    Ok(Credential {
        access_key_id: akid,
        date,
        region,
    })
}

/// A derived signing key, with an HMAC already keyed by it: the key's two pad blocks
/// are hashed once per cached key instead of on every request.
#[derive(Clone)]
pub(super) struct SigningKey {
    pub(super) bytes: [u8; 32],
    keyed: Hmac<Sha256>,
}

impl SigningKey {
    fn new(bytes: [u8; 32]) -> SigningKey {
        SigningKey {
            keyed: util::hmac(&bytes),
            bytes,
        }
    }

    /// A fresh HMAC-SHA256 under this key.
    pub(super) fn mac(&self) -> Hmac<Sha256> {
        self.keyed.clone()
    }
}

/// Signing keys by `access key id \n date \n region` (none of which holds a newline),
/// with the secret they were derived from.
type KeyCache = HashMap<String, (String, SigningKey)>;

static KEY_CACHE: LazyLock<Mutex<KeyCache>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// Derive (or fetch from the bounded cache) the signing key for a credential scope.
pub(super) fn signing_key(cred: &Credential<'_>, secret: &str) -> SigningKey {
    let parts = [cred.access_key_id, cred.date, cred.region];
    let cached = crate::scratch::joined(&parts, '\n', |cache_key| {
        let cache = KEY_CACHE.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(cache_key)
            .filter(|(cached_secret, _)| cached_secret == secret)
            .map(|(_, key)| key.clone())
    });
    if let Some(key) = cached {
        return key;
    }
    let k_date = util::hmac_sha256(format!("AWS4{secret}").as_bytes(), cred.date.as_bytes());
    let k_region = util::hmac_sha256(&k_date, cred.region.as_bytes());
    let k_service = util::hmac_sha256(&k_region, b"s3");
    let key = SigningKey::new(util::hmac_sha256(&k_service, b"aws4_request"));
    let mut cache = KEY_CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= KEY_CACHE_CAP {
        cache.clear();
    }
    cache.insert(parts.join("\n"), (secret.to_owned(), key.clone()));
    key
}

/// Canonical URI: decode the raw path, then re-encode with the SigV4 rule. A path of
/// unreserved characters and `/` only (the usual one) is its own canonical form.
fn canonical_uri(path: &str) -> Cow<'_, str> {
    let plain = path.starts_with('/')
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/'));
    if plain {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len() + 8);
    if !path.starts_with('/') {
        out.push('/');
    }
    util::uri_encode(
        &util::percent_decode(path.as_bytes(), false),
        true,
        &mut out,
    );
    Cow::Owned(out)
}

/// Canonical query: names and values decoded, SigV4-encoded, sorted; optionally without
/// `X-Amz-Signature`.
fn canonical_query(req: &Request<'_>, presigned: bool, plus_as_space: bool) -> String {
    let mut pairs: Vec<(String, String)> = req
        .params
        .iter()
        .filter(|p| !(presigned && p.name == b"X-Amz-Signature"))
        .map(|p| {
            let mut name = String::new();
            util::uri_encode(
                &util::percent_decode(p.name, plus_as_space),
                false,
                &mut name,
            );
            let mut value = String::new();
            util::uri_encode(
                &util::percent_decode(p.raw_value, plus_as_space),
                false,
                &mut value,
            );
            (name, value)
        })
        .collect();
    pairs.sort_unstable();
    let mut out = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// The first `x-amz-*` request header the signature does not cover, if any. Such a
/// header could have been added or changed in transit (metadata, copy source, tags), so
/// S3 refuses the request. Headers that SDKs deliberately leave unsigned are exempt.
fn unsigned_amz_header(
    headers: &http::HeaderMap,
    signed_headers: &str,
    presigned: bool,
) -> Option<String> {
    const ALWAYS_EXEMPT: &[&str] = &["x-amz-user-agent"];
    // Presigned URLs are signed before the request exists; clients add these later.
    const PRESIGNED_EXEMPT: &[&str] = &[
        "x-amz-content-sha256",
        "x-amz-checksum-mode",
        "x-amz-date",
        "x-amz-sdk-checksum-algorithm",
        "x-amz-expected-bucket-owner",
        "x-amz-request-payer",
    ];
    headers
        .keys()
        .map(|n| n.as_str())
        .filter(|n| n.starts_with("x-amz-"))
        .filter(|n| !ALWAYS_EXEMPT.contains(n))
        .filter(|n| !(presigned && PRESIGNED_EXEMPT.contains(n)))
        .find(|n| !util::split_ascii(signed_headers, b';').any(|s| s.eq_ignore_ascii_case(n)))
        .map(str::to_string)
}

/// Canonical headers block (`name:value\n` per signed header) for `signed_headers`.
fn canonical_headers(
    req: &Request<'_>,
    signed_headers: &str,
    err: fn(String) -> AuthError,
) -> Result<Vec<u8>, AuthError> {
    let mut out = Vec::with_capacity(256);
    let mut has_host = false;
    for name in util::split_ascii(signed_headers, b';') {
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(err(format!("invalid signed header name '{name}'")));
        }
        has_host |= name == "host";
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        for (i, value) in req.headers.get_all(name).iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            util::trim_collapse(value.as_bytes(), &mut out);
        }
        out.push(b'\n');
    }
    if !has_host {
        return Err(err("the host header must be signed".into()));
    }
    Ok(out)
}

/// Inputs shared by the header and presigned flows.
struct Signed<'a> {
    cred: Credential<'a>,
    amz_date: Cow<'a, str>,
    signed_headers: &'a str,
    payload_hash: &'a [u8],
    signature: [u8; 32],
    presigned: bool,
}

/// Check the request signature; returns the signing key on success.
fn check(
    req: &Request<'_>,
    s: &Signed<'_>,
    secrets: &dyn SecretLookup,
    err: fn(String) -> AuthError,
) -> Result<[u8; 32], AuthError> {
    let headers = canonical_headers(req, s.signed_headers, err)?;
    let secret = secrets
        .secret_for(s.cred.access_key_id)
        .ok_or(AuthError::InvalidAccessKeyId)?;
    let key = signing_key(&s.cred, &secret);

    let encoded_path = canonical_uri(req.path);
    let query = canonical_query(req, s.presigned, true);
    // Canonical form first; then tolerate clients that sign the path exactly as sent, treat
    // `+` in the query literally, or sign the query exactly as sent.
    let as_sent = (req.path != encoded_path && req.path.starts_with('/'))
        .then_some((req.path, Cow::Borrowed(query.as_str())));
    let plus_literal = req
        .params
        .iter()
        .any(|p| p.name.contains(&b'+') || p.raw_value.contains(&b'+'))
        .then(|| {
            (
                &*encoded_path,
                Cow::Owned(canonical_query(req, s.presigned, false)),
            )
        });
    // curl before 8.x signs the query exactly as it was sent: neither sorted nor
    // encoded. (Never for presigned URLs, whose query holds the signature itself.)
    let raw_query = (!s.presigned && req.raw_query != query)
        .then_some((&*encoded_path, Cow::Borrowed(req.raw_query)));
    let candidates = [
        Some((&*encoded_path, Cow::Borrowed(query.as_str()))),
        as_sent,
        plus_literal,
        raw_query,
    ];

    // Both hashes are fed piece by piece: no canonical request or string to sign is
    // assembled in memory.
    for (uri, query) in candidates.into_iter().flatten() {
        let mut creq = Sha256::new();
        for part in [req.method.as_str(), uri, &query] {
            creq.update(part.as_bytes());
            creq.update(b"\n");
        }
        creq.update(&headers);
        creq.update(b"\n");
        creq.update(s.signed_headers.as_bytes());
        creq.update(b"\n");
        creq.update(s.payload_hash);
        let creq_hash: [u8; 32] = creq.finalize().into();
        let mut mac = key.mac();
        for part in [ALGORITHM, &s.amz_date] {
            mac.update(part.as_bytes());
            mac.update(b"\n");
        }
        s.cred.scope_parts(|part| mac.update(part.as_bytes()));
        mac.update(b"\n");
        mac.update(&util::hex32(&creq_hash));
        let computed: [u8; 32] = mac.finalize().into_bytes().into();
        if util::ct_eq(&computed, &s.signature) {
            // The signature is good for what it covers; it must cover every x-amz-*
            // header too.
            if let Some(name) = unsigned_amz_header(req.headers, s.signed_headers, s.presigned) {
                return Err(AuthError::HeadersNotSigned(name));
            }
            return Ok(key.bytes);
        }
    }
    Err(AuthError::SignatureDoesNotMatch)
}

/// SHA-256 of the empty string, hex: the payload hash of a request without a body.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Whether the request announces a body (a non-zero Content-Length or chunked framing).
fn has_body(headers: &http::HeaderMap) -> bool {
    headers.contains_key(http::header::TRANSFER_ENCODING)
        || headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// Payload mode for an `x-amz-content-sha256` value.
fn payload_mode(
    req: &Request<'_>,
    hash: &[u8],
    s: &Signed<'_>,
    key: [u8; 32],
) -> Result<PayloadMode, AuthError> {
    let (signed, trailer) = match hash {
        b"UNSIGNED-PAYLOAD" => return Ok(PayloadMode::Unsigned),
        b"STREAMING-UNSIGNED-PAYLOAD-TRAILER" => (false, true),
        b"STREAMING-AWS4-HMAC-SHA256-PAYLOAD" => (true, false),
        b"STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" => (true, true),
        other => {
            return util::decode_hex32(other)
                .map(PayloadMode::Sha256)
                .ok_or(AuthError::ContentSha256Mismatch);
        }
    };
    if s.presigned {
        return Err(AuthError::ContentSha256Mismatch);
    }
    let decoded_content_length = match req.header(X_AMZ_DECODED_CONTENT_LENGTH) {
        Err(()) => {
            return Err(AuthError::InvalidArgument(
                "repeated x-amz-decoded-content-length".into(),
            ));
        }
        Ok(None) => None,
        Ok(Some(v)) => Some(
            std::str::from_utf8(v)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    AuthError::InvalidArgument("invalid x-amz-decoded-content-length".into())
                })?,
        ),
    };
    let mut declared_trailers = Vec::new();
    for value in req.headers.get_all("x-amz-trailer") {
        let value = value
            .to_str()
            .map_err(|_| AuthError::InvalidArgument("x-amz-trailer is not valid text".into()))?;
        declared_trailers.extend(
            value
                .split(',')
                .map(|n| n.trim().to_ascii_lowercase())
                .filter(|n| !n.is_empty()),
        );
    }
    Ok(PayloadMode::Streaming(StreamingParams {
        signed,
        trailer,
        decoded_content_length,
        declared_trailers,
        seed_signature: s.signature,
        signing_key: key,
        scope: s.cred.scope(),
        amz_date: s.amz_date.clone().into_owned(),
    }))
}

/// Verify an `Authorization: AWS4-HMAC-SHA256 ...` request; `rest` follows the algorithm.
pub(crate) fn verify_header(
    req: &Request<'_>,
    rest: &[u8],
    secrets: &dyn SecretLookup,
) -> Result<Verified, AuthError> {
    let err = AuthError::AuthorizationHeaderMalformed;
    let rest = std::str::from_utf8(rest).map_err(|_| err("header is not UTF-8".into()))?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in util::split_ascii(rest, b',') {
        let part = part.trim_matches(|c| c == ' ' || c == '\t');
        if part.is_empty() {
            continue;
        }
        let (name, value) = util::split_once_ascii(part, b'=')
            .ok_or_else(|| err(format!("malformed component '{part}'")))?;
        let slot = match name {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => return Err(err(format!("unknown component '{name}'"))),
        };
        if slot.replace(value).is_some() {
            return Err(err(format!("repeated component '{name}'")));
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(err("missing Credential, SignedHeaders or Signature".into()));
    };
    let cred = parse_credential(credential.as_bytes(), err)?;
    let signature = util::decode_hex32(signature.as_bytes())
        .ok_or_else(|| err("signature is not 64 hex digits".into()))?;

    // Request time: x-amz-date, or else the Date header.
    let (amz_date, request_time) = match req.header(X_AMZ_DATE) {
        Err(()) => return Err(err("repeated x-amz-date header".into())),
        Ok(Some(v)) => {
            let t = util::parse_amz_date(v)
                .ok_or_else(|| err("x-amz-date is not YYYYMMDDTHHMMSSZ".into()))?;
            (String::from_utf8_lossy(v), t)
        }
        Ok(None) => {
            let v = req
                .header(http::header::DATE)
                .ok()
                .flatten()
                .ok_or_else(|| err("missing x-amz-date or Date header".into()))?;
            let t = util::parse_http_date(v).ok_or_else(|| err("invalid Date header".into()))?;
            (
                Cow::Owned(
                    util::format_amz_date(t).ok_or_else(|| err("invalid Date header".into()))?,
                ),
                t,
            )
        }
    };
    if amz_date.get(..8) != Some(cred.date) {
        return Err(err(format!(
            "invalid credential date '{}'; it is not the same as the request date",
            cred.date
        )));
    }
    if !util::within_skew(request_time, req.now) {
        return Err(AuthError::RequestTimeTooSkewed);
    }

    let payload_hash = match req.header(X_AMZ_CONTENT_SHA256) {
        Ok(Some(v)) => v,
        // Generic SigV4 clients (curl before 8.x, for one) sign the hash of the payload
        // without sending it. With no body that hash is known, so accept it; a request
        // with a body must say what it signed, as S3 requires.
        Ok(None) if let Some(hash) = req.body_sha256 => hash.as_bytes(),
        Ok(None) if !has_body(req.headers) => EMPTY_SHA256.as_bytes(),
        Ok(None) => {
            return Err(AuthError::InvalidArgument(
                "Missing required header for this request: x-amz-content-sha256".into(),
            ));
        }
        Err(()) => return Err(AuthError::ContentSha256Mismatch),
    };
    let s = Signed {
        cred,
        amz_date,
        signed_headers,
        payload_hash,
        signature,
        presigned: false,
    };
    let key = check(req, &s, secrets, err)?;
    let payload = payload_mode(req, payload_hash, &s, key)?;
    Ok(Verified {
        access_key_id: s.cred.access_key_id.to_owned(),
        payload,
        kind: AuthKind::V4Header,
        region: Some(s.cred.region.to_owned()),
    })
}

/// Verify a presigned (`X-Amz-Algorithm=AWS4-HMAC-SHA256&...`) request.
pub(crate) fn verify_presigned(
    req: &Request<'_>,
    secrets: &dyn SecretLookup,
) -> Result<Verified, AuthError> {
    let err = AuthError::AuthorizationQueryParametersError;
    let get = |name: &'static str| -> Result<Vec<u8>, AuthError> {
        req.param(name)
            .map(|p| p.value_bytes())
            .ok_or_else(|| err(format!("missing query parameter {name}")))
    };
    if get("X-Amz-Algorithm")? != ALGORITHM.as_bytes() {
        return Err(err(
            "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"".into()
        ));
    }
    let credential = get("X-Amz-Credential")?;
    let cred = parse_credential(&credential, err)?;
    let amz_date_raw = get("X-Amz-Date")?;
    let request_time = util::parse_amz_date(&amz_date_raw)
        .ok_or_else(|| err("X-Amz-Date must be in the ISO8601 Long Format".into()))?;
    let amz_date = String::from_utf8_lossy(&amz_date_raw);
    if amz_date.get(..8) != Some(cred.date) {
        return Err(err(format!(
            "invalid credential date '{}'; it is not the same as X-Amz-Date",
            cred.date
        )));
    }
    let expires = std::str::from_utf8(&get("X-Amz-Expires")?)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| err("X-Amz-Expires should be a number".into()))?;
    if expires == 0 {
        return Err(err("X-Amz-Expires must be non-negative and non-zero".into()));
    }
    if expires > MAX_PRESIGN_EXPIRES {
        return Err(err(
            "X-Amz-Expires must be less than a week (in seconds) that is 604800".into(),
        ));
    }
    let signed_headers = String::from_utf8(get("X-Amz-SignedHeaders")?)
        .map_err(|_| err("X-Amz-SignedHeaders is not UTF-8".into()))?;
    let signature = util::decode_hex32(&get("X-Amz-Signature")?)
        .ok_or_else(|| err("X-Amz-Signature is not 64 hex digits".into()))?;

    if request_time > req.now.saturating_add(util::MAX_SKEW_SECS) {
        return Err(AuthError::RequestTimeTooSkewed);
    }
    let expires = i64::try_from(expires).unwrap_or(i64::MAX);
    if req.now > request_time.saturating_add(expires) {
        return Err(AuthError::Expired);
    }

    let content_sha = req.param("X-Amz-Content-Sha256").map(|p| p.value_bytes());
    let payload_hash: &[u8] = content_sha.as_deref().unwrap_or(b"UNSIGNED-PAYLOAD");
    let s = Signed {
        cred,
        amz_date,
        signed_headers: &signed_headers,
        payload_hash,
        signature,
        presigned: true,
    };
    let key = check(req, &s, secrets, err)?;
    let payload = payload_mode(req, payload_hash, &s, key)?;
    Ok(Verified {
        access_key_id: s.cred.access_key_id.to_owned(),
        payload,
        kind: AuthKind::V4Presigned,
        region: Some(s.cred.region.to_owned()),
    })
}
