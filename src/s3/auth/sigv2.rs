//! AWS Signature Version 2 (legacy): `Authorization: AWS AKID:sig` and presigned query.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::util::{self, Request};
use super::{AuthError, AuthKind, PayloadMode, SecretLookup, Verified};

/// Query parameters that are part of the SigV2 canonical resource (sorted).
const SUB_RESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "delete",
    "encryption",
    "intelligent-tiering",
    "inventory",
    "legal-hold",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "ownershipControls",
    "partNumber",
    "policy",
    "policyStatus",
    "publicAccessBlock",
    "replication",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "retention",
    "select",
    "select-type",
    "storageClass",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// Build the SigV2 string to sign; `date_line` is the Date / Expires line.
fn string_to_sign(
    req: &Request<'_>,
    path: &str,
    date_line: &[u8],
    resource_prefix: Option<&str>,
) -> Result<Vec<u8>, AuthError> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(req.method.as_str().as_bytes());
    out.push(b'\n');
    for name in ["content-md5", "content-type"] {
        let value = req
            .header(name)
            .map_err(|()| AuthError::InvalidArgument(format!("repeated {name} header")))?;
        out.extend_from_slice(value.unwrap_or_default());
        out.push(b'\n');
    }
    out.extend_from_slice(date_line);
    out.push(b'\n');

    // Canonicalized x-amz-* headers, sorted by (lowercase) name, values joined with ','.
    let mut names: Vec<&str> = req
        .headers
        .keys()
        .map(http::HeaderName::as_str)
        .filter(|n| n.starts_with("x-amz-"))
        .collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
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

    // Canonicalized resource: prefix + raw path + interesting sub-resources (decoded values).
    if let Some(prefix) = resource_prefix {
        out.extend_from_slice(prefix.as_bytes());
    }
    out.extend_from_slice(path.as_bytes());
    let mut subs: Vec<(&[u8], Option<Vec<u8>>)> = req
        .params
        .iter()
        .filter(|p| SUB_RESOURCES.iter().any(|s| s.as_bytes() == p.name))
        .map(|p| {
            let value = (!p.raw_value.is_empty()).then(|| p.value_bytes());
            (p.name, value)
        })
        .collect();
    subs.sort();
    for (i, (name, value)) in subs.iter().enumerate() {
        out.push(if i == 0 { b'?' } else { b'&' });
        out.extend_from_slice(name);
        if let Some(value) = value {
            out.push(b'=');
            out.extend_from_slice(value);
        }
    }
    Ok(out)
}

fn check(
    req: &Request<'_>,
    access_key_id: &str,
    signature_b64: &[u8],
    date_line: &[u8],
    prefix: Option<&str>,
    secrets: &dyn SecretLookup,
) -> Result<(), AuthError> {
    let secret = secrets
        .secret_for(access_key_id)
        .ok_or(AuthError::InvalidAccessKeyId)?;
    let provided = base64::engine::general_purpose::STANDARD
        .decode(signature_b64)
        .map_err(|_| AuthError::SignatureDoesNotMatch)?;
    // botocore signs a path-style bucket resource as `/bucket/` while it sends `/bucket`
    // (AWS's own examples sign `/johnsmith/` too), so a bare bucket path is tried both ways.
    let bare_bucket = prefix.is_none()
        && req
            .path
            .strip_prefix('/')
            .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'));
    let with_slash = format!("{}/", req.path);
    let mut candidates = vec![req.path];
    if bare_bucket {
        candidates.push(with_slash.as_str());
    }
    for path in candidates {
        let sts = string_to_sign(req, path, date_line, prefix)?;
        let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret.as_bytes()) else {
            return Err(AuthError::SignatureDoesNotMatch);
        };
        mac.update(&sts);
        let computed = mac.finalize().into_bytes();
        if util::ct_eq(&computed, &provided) {
            return Ok(());
        }
    }
    Err(AuthError::SignatureDoesNotMatch)
}

/// Verify `Authorization: AWS AKID:signature`; `rest` follows `AWS `.
pub(crate) fn verify_header(
    req: &Request<'_>,
    rest: &[u8],
    secrets: &dyn SecretLookup,
    prefix: Option<&str>,
) -> Result<Verified, AuthError> {
    let err = AuthError::AuthorizationHeaderMalformed;
    let rest = std::str::from_utf8(rest).map_err(|_| err("header is not UTF-8".into()))?;
    let (akid, signature) = rest
        .trim()
        .split_once(':')
        .ok_or_else(|| err("expected 'AWS AccessKeyId:Signature'".into()))?;
    if akid.is_empty() || signature.is_empty() {
        return Err(err("expected 'AWS AccessKeyId:Signature'".into()));
    }
    let repeated = |_| err("repeated date header".into());
    let (date_line, time): (&[u8], i64) =
        match req.header(crate::s3::names::X_AMZ_DATE).map_err(repeated)? {
            Some(v) => (
                b"",
                util::parse_http_date(v).ok_or_else(|| err("invalid x-amz-date header".into()))?,
            ),
            None => {
                let v = req
                    .header(http::header::DATE)
                    .map_err(repeated)?
                    .ok_or_else(|| err("missing Date or x-amz-date header".into()))?;
                (
                    v,
                    util::parse_http_date(v).ok_or_else(|| err("invalid Date header".into()))?,
                )
            }
        };
    if !util::within_skew(time, req.now) {
        return Err(AuthError::RequestTimeTooSkewed);
    }
    check(req, akid, signature.as_bytes(), date_line, prefix, secrets)?;
    Ok(Verified {
        access_key_id: akid.to_owned(),
        payload: PayloadMode::Unsigned,
        kind: AuthKind::V2Header,
        region: None,
    })
}

/// Verify a presigned `AWSAccessKeyId=..&Expires=..&Signature=..` request.
pub(crate) fn verify_presigned(
    req: &Request<'_>,
    secrets: &dyn SecretLookup,
    prefix: Option<&str>,
) -> Result<Verified, AuthError> {
    let err = AuthError::AuthorizationQueryParametersError;
    let get = |name: &'static str| {
        req.param(name)
            .map(|p| p.value_bytes())
            .ok_or_else(|| err(format!("missing query parameter {name}")))
    };
    let akid = String::from_utf8(get("AWSAccessKeyId")?)
        .map_err(|_| err("AWSAccessKeyId is not UTF-8".into()))?;
    let expires_raw = get("Expires")?;
    let expires = std::str::from_utf8(&expires_raw)
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
        .ok_or_else(|| err("Expires must be a number of seconds since the epoch".into()))?;
    let signature = get("Signature")?;
    if req.now > expires {
        return Err(AuthError::Expired);
    }
    check(req, &akid, &signature, &expires_raw, prefix, secrets)?;
    Ok(Verified {
        access_key_id: akid,
        payload: PayloadMode::Unsigned,
        kind: AuthKind::V2Presigned,
        region: None,
    })
}
