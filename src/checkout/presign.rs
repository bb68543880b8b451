//! The presigned GET links of a manifest.
//!
//! Every link is a SigV4 query-presigned GET signed with the manifest's own
//! credential, dated at the manifest's creation and valid until its expiry. Links are
//! therefore a pure function of (credential, bucket, key, created_at, expires) and are
//! never stored: they are regenerated while a manifest is streamed. The signing key is
//! derived once per manifest with `aws-sigv4` ([`v4::generate_signing_key`]), so each
//! link costs one SHA-256 of its canonical request and one HMAC; a unit test checks
//! the result against `aws-sigv4`'s own presigner.

use std::time::{Duration, SystemTime};

use aws_sigv4::sign::v4;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::Digest;

/// Everything but the unreserved characters of RFC 3986, as SigV4 encodes.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn encode(s: &str) -> String {
    utf8_percent_encode(s, ENCODE).to_string()
}

/// Signs links for one manifest.
pub struct LinkSigner {
    /// `scheme://host[:port]` and any path prefix of the public URL.
    origin: String,
    path_prefix: String,
    host: String,
    amz_date: String,
    scope: String,
    /// The constant part of the query, in canonical order, without the signature.
    query: String,
    signing_key: Vec<u8>,
}

/// Splits a base URL (`http://host:port[/prefix]`) into its origin, host (without the
/// scheme's default port, as clients send it) and path prefix.
fn split_base(base: &str) -> Result<(String, String, String), String> {
    let base = base.trim_end_matches('/');
    let (scheme, rest) = base
        .split_once("://")
        .ok_or_else(|| format!("{base:?} is not an http(s) URL"))?;
    if scheme != "http" && scheme != "https" {
        return Err(format!("{base:?} is not an http(s) URL"));
    }
    let (authority, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(format!("{base:?} has no host"));
    }
    let host = match (scheme, authority.rsplit_once(':')) {
        ("http", Some((h, "80"))) | ("https", Some((h, "443"))) => h,
        _ => authority,
    };
    Ok((
        format!("{scheme}://{host}"),
        host.to_string(),
        prefix.to_string(),
    ))
}

/// `YYYYMMDDTHHMMSSZ` of Unix milliseconds.
fn amz_date(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

impl LinkSigner {
    /// A signer for links under `base_url`, signed by `access_key_id`/`secret` at
    /// `created_ms` (Unix ms, whole seconds are used) and valid for `expires_secs`.
    pub fn new(
        base_url: &str,
        access_key_id: &str,
        secret: &str,
        region: &str,
        created_ms: i64,
        expires_secs: u64,
    ) -> Result<LinkSigner, String> {
        let (origin, host, path_prefix) = split_base(base_url)?;
        let amz_date = amz_date(created_ms);
        let scope = format!("{}/{region}/s3/aws4_request", &amz_date[..8]);
        let time = SystemTime::UNIX_EPOCH
            + Duration::from_secs(u64::try_from(created_ms.div_euclid(1000)).unwrap_or(0));
        let signing_key = v4::generate_signing_key(secret, time, region, "s3")
            .as_ref()
            .to_vec();
        let query = format!(
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={}&X-Amz-Date={amz_date}\
             &X-Amz-Expires={expires_secs}&X-Amz-SignedHeaders=host",
            encode(&format!("{access_key_id}/{scope}")),
        );
        Ok(LinkSigner {
            origin,
            path_prefix,
            host,
            amz_date,
            scope,
            query,
            signing_key,
        })
    }

    /// The presigned GET URL of `bucket`/`key`.
    pub fn url(&self, bucket: &str, key: &str) -> String {
        let mut path = String::with_capacity(self.path_prefix.len() + bucket.len() + key.len() + 8);
        path.push_str(&self.path_prefix);
        path.push('/');
        path.push_str(&encode(bucket));
        path.push('/');
        for (i, segment) in key.split('/').enumerate() {
            if i > 0 {
                path.push('/');
            }
            path.push_str(&encode(segment));
        }
        let canonical = format!(
            "GET\n{path}\n{}\nhost:{}\n\nhost\nUNSIGNED-PAYLOAD",
            self.query, self.host
        );
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{}\n{}\n{}",
            self.amz_date,
            self.scope,
            hex::encode(sha2::Sha256::digest(canonical.as_bytes()))
        );
        let signature = v4::calculate_signature(&self.signing_key, string_to_sign.as_bytes());
        format!(
            "{}{path}?{}&X-Amz-Signature={signature}",
            self.origin, self.query
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{
        PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
        UriPathNormalizationMode, sign,
    };
    use aws_smithy_runtime_api::client::identity::Identity;

    /// What `aws-sigv4` itself produces for the same request.
    fn reference(url_without_query: &str, host: &str, ms: i64, expires: u64) -> String {
        let identity: Identity =
            Credentials::new("TKMANIFEST", "s3cr3t/KEY+x", None, None, "t").into();
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(Duration::from_secs(expires));
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("eu-west-3")
            .name("s3")
            .time(SystemTime::UNIX_EPOCH + Duration::from_millis(ms as u64))
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let signable = SignableRequest::new(
            "GET",
            url_without_query,
            std::iter::once(("host", host)),
            SignableBody::UnsignedPayload,
        )
        .unwrap();
        let (instructions, signature) = sign(signable, &params).unwrap().into_parts();
        let (_, query) = instructions.into_parts();
        let expected: Vec<_> = query.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            expected,
            [
                "X-Amz-Algorithm",
                "X-Amz-Credential",
                "X-Amz-Date",
                "X-Amz-Expires",
                "X-Amz-SignedHeaders",
                "X-Amz-Signature"
            ]
        );
        signature
    }

    #[test]
    fn links_match_aws_sigv4() {
        let ms = 1_767_225_600_000; // 2026-01-01T00:00:00Z
        for (base, host) in [
            ("http://127.0.0.1:9000", "127.0.0.1:9000"),
            ("https://lake.example.com:443/", "lake.example.com"),
        ] {
            let s = LinkSigner::new(base, "TKMANIFEST", "s3cr3t/KEY+x", "eu-west-3", ms, 14400)
                .unwrap();
            for key in ["a.csv", "year=2024/part 1 (é).parquet", "x//y~z+&?#%"] {
                let url = s.url("lake", key);
                let (without, query) = url.split_once('?').unwrap();
                let sig = query.rsplit_once("X-Amz-Signature=").unwrap().1;
                assert_eq!(sig, reference(without, host, ms, 14400), "{url}");
                assert!(query.contains("X-Amz-Date=20260101T000000Z&X-Amz-Expires=14400"));
            }
        }
    }

    #[test]
    fn base_urls() {
        assert!(split_base("ftp://x").is_err());
        assert!(split_base("http://").is_err());
        assert_eq!(
            split_base("http://h:80/lake/").unwrap(),
            ("http://h".into(), "h".into(), "/lake".into())
        );
    }
}
