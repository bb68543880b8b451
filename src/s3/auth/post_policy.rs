//! Browser-based uploads (S3 PostObject): the form's signature over its POST policy, and the
//! policy's expiration and conditions checked against the form fields.
//!
//! The policy is the base64 of a JSON document `{"expiration": "…Z", "conditions": […]}`, sent
//! in the `policy` field. It is signed with either
//! - SigV4: fields `x-amz-algorithm=AWS4-HMAC-SHA256`, `x-amz-credential`, `x-amz-date` and
//!   `x-amz-signature` = hex HMAC-SHA256 of the base64 policy under the scope's signing key; or
//! - SigV2: fields `AWSAccessKeyId` and `signature` = base64 HMAC-SHA1 of the base64 policy
//!   under the secret key.
//!
//! Form field names are case-insensitive ([`PostForm`] keeps them lowercased), and so are the
//! `$field` names in conditions. Every field of the form must be covered by a condition except
//! the ones AWS exempts ([`is_exempt`]). Like the rest of this module, nothing here panics on
//! client input.

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha1::Sha1;

use super::{AuthError, SecretLookup, sigv4, util};

/// The only SigV4 algorithm.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The fields of a form, in the order sent, names lowercased.
#[derive(Debug, Clone, Default)]
pub struct PostForm {
    fields: Vec<(String, String)>,
}

impl PostForm {
    /// An empty form.
    pub fn new() -> PostForm {
        PostForm::default()
    }

    /// Adds a field; `false` (and no change) if a field of that name is already there.
    pub fn insert(&mut self, name: &str, value: String) -> bool {
        let name = name.to_ascii_lowercase();
        if self.fields.iter().any(|(n, _)| *n == name) {
            return false;
        }
        self.fields.push((name, value));
        true
    }

    /// Sets a field, replacing any value it had.
    pub fn set(&mut self, name: &str, value: String) {
        let name = name.to_ascii_lowercase();
        match self.fields.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => *v = value,
            None => self.fields.push((name, value)),
        }
    }

    /// The value of a field (`name` in any case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every (lowercased name, value), in form order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

/// Fields that need no policy condition: the signature machinery itself, the file, and
/// anything prefixed `x-ignore-` (as the AWS POST documentation lists them).
pub fn is_exempt(name: &str) -> bool {
    matches!(
        name,
        "policy" | "x-amz-signature" | "signature" | "awsaccesskeyid" | "file"
    ) || name.starts_with("x-ignore-")
}

/// Which signature the form carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostSignature {
    /// `x-amz-algorithm` / `x-amz-credential` / `x-amz-date` / `x-amz-signature`.
    V4,
    /// `AWSAccessKeyId` / `signature`.
    V2,
}

/// Inclusive bounds on the uploaded file's size, from `content-length-range`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthRange {
    /// Fewest bytes allowed.
    pub min: u64,
    /// Most bytes allowed.
    pub max: u64,
}

/// What a verified form proved and what remains to enforce while the file streams in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostAuth {
    /// The access key whose secret signed the policy.
    pub access_key_id: String,
    /// The signature scheme used.
    pub signature: PostSignature,
    /// Region of the SigV4 credential scope (`None` for SigV2).
    pub region: Option<String>,
    /// The size bounds the file must respect (all `content-length-range` conditions).
    pub content_length: Option<LengthRange>,
}

/// Why a form failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostPolicyError {
    /// Neither policy nor signature: an anonymous upload (S3 `AccessDenied`; Tarn has no
    /// publicly writable buckets).
    #[error("anonymous form upload")]
    Anonymous,
    /// A required field is absent (S3 `InvalidArgument`, "Bucket POST must contain a field
    /// named '…'").
    #[error("missing form field {0}")]
    MissingField(&'static str),
    /// A field has an invalid value (S3 `InvalidArgument`).
    #[error("invalid form field: {0}")]
    InvalidArgument(String),
    /// The access key is unknown (S3 `InvalidAccessKeyId`).
    #[error("the access key id does not exist")]
    InvalidAccessKeyId,
    /// The signature is wrong (S3 `SignatureDoesNotMatch`).
    #[error("the policy signature does not match")]
    SignatureDoesNotMatch,
    /// The policy is not a valid policy document (S3 `InvalidPolicyDocument`, "Invalid Policy:
    /// …").
    #[error("invalid policy: {0}")]
    InvalidPolicy(String),
    /// The policy's expiration has passed (S3 `AccessDenied`, "Invalid according to Policy:
    /// Policy expired.").
    #[error("policy expired")]
    Expired,
    /// A condition failed or a field is not covered by one (S3 `AccessDenied`, "Invalid
    /// according to Policy: …").
    #[error("invalid according to policy: {0}")]
    Violation(String),
}

/// One policy condition; field names are lowercased, without the `$`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `{"field": "value"}` or `["eq", "$field", "value"]`.
    Eq {
        /// The field compared.
        field: String,
        /// The exact value required.
        value: String,
    },
    /// `["starts-with", "$field", "prefix"]` (an empty prefix allows anything).
    StartsWith {
        /// The field compared.
        field: String,
        /// The prefix required.
        prefix: String,
    },
    /// `["content-length-range", min, max]`.
    ContentLengthRange(LengthRange),
}

impl Condition {
    /// The form field the condition covers (`None` for the length range).
    pub fn field(&self) -> Option<&str> {
        match self {
            Condition::Eq { field, .. } | Condition::StartsWith { field, .. } => Some(field),
            Condition::ContentLengthRange(_) => None,
        }
    }

    /// Whether `value` (the field's value, empty if absent) satisfies the condition.
    fn holds(&self, value: &str) -> bool {
        match self {
            Condition::Eq { value: want, .. } => value == want,
            // A Content-Type starts-with applies to each entry of a comma-separated list.
            Condition::StartsWith { field, prefix } if field == "content-type" => value
                .split(',')
                .all(|v| v.trim().starts_with(prefix.as_str())),
            Condition::StartsWith { prefix, .. } => value.starts_with(prefix.as_str()),
            Condition::ContentLengthRange(_) => true,
        }
    }

    /// The condition as written in a policy, for error messages.
    fn describe(&self) -> String {
        let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
        match self {
            Condition::Eq { field, value } => {
                format!("[\"eq\", {}, {}]", q(&format!("${field}")), q(value))
            }
            Condition::StartsWith { field, prefix } => {
                format!(
                    "[\"starts-with\", {}, {}]",
                    q(&format!("${field}")),
                    q(prefix)
                )
            }
            Condition::ContentLengthRange(r) => {
                format!("[\"content-length-range\", {}, {}]", r.min, r.max)
            }
        }
    }
}

/// A parsed POST policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostPolicy {
    /// When the policy stops being valid, in Unix seconds.
    pub expiration: i64,
    /// Every condition, in policy order.
    pub conditions: Vec<Condition>,
}

fn invalid(m: impl Into<String>) -> PostPolicyError {
    PostPolicyError::InvalidPolicy(m.into())
}

/// A string operand of a condition (numbers and booleans are taken as their JSON text).
fn operand(v: &Value) -> Result<String, PostPolicyError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => Err(invalid(format!(
            "Invalid Condition: the value {v} must be a string"
        ))),
    }
}

/// A `content-length-range` bound: a non-negative integer, or a string of one.
fn bound(v: Option<&Value>) -> Result<u64, PostPolicyError> {
    let n = match v {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    n.ok_or_else(|| invalid("Invalid content-length-range: bounds must be non-negative integers"))
}

/// `$field` → `field` (lowercased).
fn field_ref(v: Option<&Value>) -> Result<String, PostPolicyError> {
    match v {
        Some(Value::String(s)) => s
            .strip_prefix('$')
            .filter(|f| !f.is_empty())
            .map(str::to_ascii_lowercase)
            .ok_or_else(|| invalid(format!("Invalid Condition: '{s}' must name a $field"))),
        _ => Err(invalid(
            "Invalid Condition: the field must be a \"$name\" string",
        )),
    }
}

fn parse_condition(c: &Value, out: &mut Vec<Condition>) -> Result<(), PostPolicyError> {
    match c {
        Value::Object(map) => {
            if map.is_empty() {
                return Err(invalid("Invalid Simple-Condition: an empty condition"));
            }
            for (field, value) in map {
                if field.is_empty() {
                    return Err(invalid("Invalid Simple-Condition: an empty field name"));
                }
                out.push(Condition::Eq {
                    field: field.to_ascii_lowercase(),
                    value: operand(value)?,
                });
            }
            Ok(())
        }
        Value::Array(items) => {
            if items.len() != 3 {
                return Err(invalid(
                    "Invalid Condition: a condition list must have exactly 3 items",
                ));
            }
            let op = match items.first() {
                Some(Value::String(s)) => s.to_ascii_lowercase(),
                _ => return Err(invalid("Invalid Condition: the operator must be a string")),
            };
            let cond = match op.as_str() {
                "eq" => Condition::Eq {
                    field: field_ref(items.get(1))?,
                    value: operand(items.get(2).unwrap_or(&Value::Null))?,
                },
                "starts-with" => Condition::StartsWith {
                    field: field_ref(items.get(1))?,
                    prefix: operand(items.get(2).unwrap_or(&Value::Null))?,
                },
                "content-length-range" => {
                    let min = bound(items.get(1))?;
                    let max = bound(items.get(2))?;
                    if min > max {
                        return Err(invalid(
                            "Invalid content-length-range: the minimum exceeds the maximum",
                        ));
                    }
                    Condition::ContentLengthRange(LengthRange { min, max })
                }
                other => {
                    return Err(invalid(format!(
                        "Invalid Condition: unknown operator '{other}'"
                    )));
                }
            };
            out.push(cond);
            Ok(())
        }
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => Err(invalid(
            "Invalid Condition: a condition must be an object or a list",
        )),
    }
}

impl PostPolicy {
    /// Parses the `policy` field (base64 JSON; ASCII whitespace in the base64 is ignored).
    pub fn parse(policy_b64: &str) -> Result<PostPolicy, PostPolicyError> {
        let compact: Vec<u8> = policy_b64
            .bytes()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        let raw = B64
            .decode(&compact)
            .map_err(|_| invalid("Policy could not be base64-decoded."))?;
        let doc: Value =
            serde_json::from_slice(&raw).map_err(|_| invalid("Policy is not valid JSON."))?;
        let Value::Object(doc) = doc else {
            return Err(invalid("Policy is not a JSON object."));
        };
        let expiration = match doc.get("expiration") {
            None => return Err(invalid("Policy missing expiration.")),
            Some(Value::String(s)) => parse_expiration(s)
                .ok_or_else(|| invalid(format!("Invalid 'expiration' value: '{s}'")))?,
            Some(_) => return Err(invalid("Invalid 'expiration' value: not a string")),
        };
        let Some(list) = doc.get("conditions") else {
            return Err(invalid("Policy missing conditions."));
        };
        let Value::Array(list) = list else {
            return Err(invalid("Invalid 'conditions' value: not a list"));
        };
        let mut conditions = Vec::with_capacity(list.len());
        for c in list {
            parse_condition(c, &mut conditions)?;
        }
        Ok(PostPolicy {
            expiration,
            conditions,
        })
    }

    /// Checks the expiration (at `now`, Unix seconds), every condition, and that every
    /// non-exempt field of `form` is covered by a condition. Returns the size bounds.
    pub fn check(&self, form: &PostForm, now: i64) -> Result<Option<LengthRange>, PostPolicyError> {
        if now > self.expiration {
            return Err(PostPolicyError::Expired);
        }
        let mut range: Option<LengthRange> = None;
        for c in &self.conditions {
            match (c, c.field()) {
                (Condition::ContentLengthRange(r), _) => {
                    range = Some(match range {
                        None => *r,
                        Some(prev) => LengthRange {
                            min: prev.min.max(r.min),
                            max: prev.max.min(r.max),
                        },
                    });
                }
                (_, Some(field)) => {
                    if !c.holds(form.get(field).unwrap_or_default()) {
                        return Err(PostPolicyError::Violation(format!(
                            "Policy Condition failed: {}",
                            c.describe()
                        )));
                    }
                }
                (_, None) => {}
            }
        }
        for (name, _) in form.iter() {
            let covered = self.conditions.iter().any(|c| c.field() == Some(name));
            if !covered && !is_exempt(name) {
                return Err(PostPolicyError::Violation(format!(
                    "Extra input fields: {name}"
                )));
            }
        }
        Ok(range)
    }
}

/// Parses an ISO 8601 expiration such as `2007-12-01T12:00:00.000Z`.
fn parse_expiration(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// Verifies a form upload: its signature over the policy, then the policy itself.
///
/// `form` must hold every field that came before the file, with `bucket` set to the routed
/// bucket and `key` already having `${filename}` replaced, since conditions see those values.
pub fn verify_post(
    form: &PostForm,
    secrets: &dyn SecretLookup,
    now: SystemTime,
) -> Result<PostAuth, PostPolicyError> {
    let has = |n: &str| form.get(n).is_some();
    let v4 = has("x-amz-algorithm") || has("x-amz-credential") || has("x-amz-signature");
    let v2 = has("awsaccesskeyid") || has("signature");
    let (access_key_id, signature, region) = match (v4, v2) {
        (true, true) => {
            return Err(PostPolicyError::InvalidArgument(
                "Only one auth mechanism allowed; use either the x-amz-* or the \
                 AWSAccessKeyId/signature fields"
                    .into(),
            ));
        }
        (true, false) => {
            let (akid, region) = verify_v4(form, secrets)?;
            (akid, PostSignature::V4, Some(region))
        }
        (false, true) => (verify_v2(form, secrets)?, PostSignature::V2, None),
        (false, false) if has("policy") => {
            return Err(PostPolicyError::MissingField("AWSAccessKeyId"));
        }
        (false, false) => return Err(PostPolicyError::Anonymous),
    };
    let policy = PostPolicy::parse(form.get("policy").unwrap_or_default())?;
    let content_length = policy.check(form, util::unix_seconds(now))?;
    Ok(PostAuth {
        access_key_id,
        signature,
        region,
        content_length,
    })
}

fn required<'a>(form: &'a PostForm, name: &'static str) -> Result<&'a str, PostPolicyError> {
    form.get(name).ok_or(PostPolicyError::MissingField(name))
}

/// SigV4: returns (access key id, region).
fn verify_v4(
    form: &PostForm,
    secrets: &dyn SecretLookup,
) -> Result<(String, String), PostPolicyError> {
    let algorithm = required(form, "x-amz-algorithm")?;
    let credential = required(form, "x-amz-credential")?;
    let amz_date = required(form, "x-amz-date")?;
    let signature = required(form, "x-amz-signature")?;
    let policy = required(form, "policy")?;
    if algorithm != ALGORITHM {
        return Err(PostPolicyError::InvalidArgument(format!(
            "x-amz-algorithm only supports \"{ALGORITHM}\""
        )));
    }
    let cred = sigv4::parse_credential(credential.as_bytes(), AuthError::InvalidArgument).map_err(
        |e| match e {
            AuthError::InvalidArgument(m) => PostPolicyError::InvalidArgument(m),
            other => PostPolicyError::InvalidArgument(other.to_string()),
        },
    )?;
    if util::parse_amz_date(amz_date.as_bytes()).is_none() {
        return Err(PostPolicyError::InvalidArgument(
            "x-amz-date must be in the ISO8601 basic format YYYYMMDDTHHMMSSZ".into(),
        ));
    }
    if amz_date.get(..8) != Some(cred.date) {
        return Err(PostPolicyError::InvalidArgument(format!(
            "the credential date '{}' is not the date of x-amz-date",
            cred.date
        )));
    }
    let secret = secrets
        .secret_for(cred.access_key_id)
        .ok_or(PostPolicyError::InvalidAccessKeyId)?;
    let mut mac = sigv4::signing_key(&cred, &secret).mac();
    mac.update(policy.as_bytes());
    let computed: [u8; 32] = mac.finalize().into_bytes().into();
    let provided = util::decode_hex32(signature.trim().as_bytes())
        .ok_or(PostPolicyError::SignatureDoesNotMatch)?;
    if !util::ct_eq(&computed, &provided) {
        return Err(PostPolicyError::SignatureDoesNotMatch);
    }
    Ok((cred.access_key_id.to_owned(), cred.region.to_owned()))
}

/// SigV2: returns the access key id.
fn verify_v2(form: &PostForm, secrets: &dyn SecretLookup) -> Result<String, PostPolicyError> {
    let akid = required(form, "AWSAccessKeyId")?;
    let signature = required(form, "signature")?;
    let policy = required(form, "policy")?;
    let secret = secrets
        .secret_for(akid)
        .ok_or(PostPolicyError::InvalidAccessKeyId)?;
    let provided = B64
        .decode(signature.trim())
        .map_err(|_| PostPolicyError::SignatureDoesNotMatch)?;
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret.as_bytes()) else {
        return Err(PostPolicyError::SignatureDoesNotMatch);
    };
    mac.update(policy.as_bytes());
    let computed = mac.finalize().into_bytes();
    if !util::ct_eq(&computed, &provided) {
        return Err(PostPolicyError::SignatureDoesNotMatch);
    }
    Ok(akid.to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::{Duration, UNIX_EPOCH};

    use proptest::prelude::*;

    use super::*;

    const AKID: &str = "AKIAIOSFODNN7EXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    /// The worked example of the AWS documentation ("Example: Browser-Based Upload using HTTP
    /// POST (Using AWS Signature Version 4)"): its base64 policy and signature.
    const AWS_POLICY: &str = "eyAiZXhwaXJhdGlvbiI6ICIyMDE1LTEyLTMwVDEyOjAwOjAwLjAwMFoiLA0KICAiY29uZGl0aW9ucyI6IFsNCiAgICB7ImJ1Y2tldCI6ICJzaWd2NGV4YW1wbGVidWNrZXQifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRrZXkiLCAidXNlci91c2VyMS8iXSwNCiAgICB7ImFjbCI6ICJwdWJsaWMtcmVhZCJ9LA0KICAgIHsic3VjY2Vzc19hY3Rpb25fcmVkaXJlY3QiOiAiaHR0cDovL3NpZ3Y0ZXhhbXBsZWJ1Y2tldC5zMy5hbWF6b25hd3MuY29tL3N1Y2Nlc3NmdWxfdXBsb2FkLmh0bWwifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRDb250ZW50LVR5cGUiLCAiaW1hZ2UvIl0sDQogICAgeyJ4LWFtei1tZXRhLXV1aWQiOiAiMTQzNjUxMjM2NTEyNzQifSwNCiAgICB7IngtYW16LXNlcnZlci1zaWRlLWVuY3J5cHRpb24iOiAiQUVTMjU2In0sDQogICAgWyJzdGFydHMtd2l0aCIsICIkeC1hbXotbWV0YS10YWciLCAiIl0sDQoNCiAgICB7IngtYW16LWNyZWRlbnRpYWwiOiAiQUtJQUlPU0ZPRE5ON0VYQU1QTEUvMjAxNTEyMjkvdXMtZWFzdC0xL3MzL2F3czRfcmVxdWVzdCJ9LA0KICAgIHsieC1hbXotYWxnb3JpdGhtIjogIkFXUzQtSE1BQy1TSEEyNTYifSwNCiAgICB7IngtYW16LWRhdGUiOiAiMjAxNTEyMjlUMDAwMDAwWiIgfQ0KICBdDQp9";
    const AWS_SIGNATURE: &str = "8afdbf4008c03f22c2cd3cdb72e4afbb1f6a588f3255ac628749a66d7f09699e";

    struct Keys(HashMap<String, String>);

    impl SecretLookup for Keys {
        fn secret_for(&self, access_key_id: &str) -> Option<std::sync::Arc<str>> {
            self.0.get(access_key_id).map(|s| s.as_str().into())
        }
    }

    fn keys() -> Keys {
        Keys(HashMap::from([(AKID.to_owned(), SECRET.to_owned())]))
    }

    fn at(unix: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(unix)
    }

    /// 2015-12-29T00:00:00Z.
    const DEC_29_2015: u64 = 1_451_347_200;

    fn form(pairs: &[(&str, &str)]) -> PostForm {
        let mut f = PostForm::new();
        for (n, v) in pairs {
            f.set(n, (*v).to_string());
        }
        f
    }

    fn aws_example_form() -> PostForm {
        form(&[
            ("key", "user/user1/photo.jpg"),
            ("acl", "public-read"),
            (
                "success_action_redirect",
                "http://sigv4examplebucket.s3.amazonaws.com/successful_upload.html",
            ),
            ("Content-Type", "image/jpeg"),
            ("x-amz-meta-uuid", "14365123651274"),
            ("x-amz-server-side-encryption", "AES256"),
            (
                "X-Amz-Credential",
                "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws4_request",
            ),
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
            ("X-Amz-Date", "20151229T000000Z"),
            ("x-amz-meta-tag", ""),
            ("Policy", AWS_POLICY),
            ("X-Amz-Signature", AWS_SIGNATURE),
            ("bucket", "sigv4examplebucket"),
        ])
    }

    fn b64(json: &str) -> String {
        B64.encode(json)
    }

    fn sign_v2(policy: &str) -> String {
        let mut mac = Hmac::<Sha1>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(policy.as_bytes());
        B64.encode(mac.finalize().into_bytes())
    }

    /// A SigV2 form over `json` with the extra fields given.
    fn v2_form(json: &str, extra: &[(&str, &str)]) -> PostForm {
        let policy = b64(json);
        let mut f = form(extra);
        f.set("AWSAccessKeyId", AKID.into());
        f.set("signature", sign_v2(&policy));
        f.set("policy", policy);
        f
    }

    fn check_v2(json: &str, extra: &[(&str, &str)]) -> Result<PostAuth, PostPolicyError> {
        verify_post(&v2_form(json, extra), &keys(), at(DEC_29_2015))
    }

    #[test]
    fn aws_sigv4_example_verifies() {
        let auth = verify_post(&aws_example_form(), &keys(), at(DEC_29_2015)).unwrap();
        assert_eq!(auth.access_key_id, AKID);
        assert_eq!(auth.signature, PostSignature::V4);
        assert_eq!(auth.region.as_deref(), Some("us-east-1"));
        assert_eq!(auth.content_length, None);
    }

    #[test]
    fn aws_sigv4_example_failures() {
        let mut f = aws_example_form();
        f.set("x-amz-signature", AWS_SIGNATURE.replace('8', "9"));
        assert_eq!(
            verify_post(&f, &keys(), at(DEC_29_2015)),
            Err(PostPolicyError::SignatureDoesNotMatch)
        );
        let mut f = aws_example_form();
        f.set("x-amz-signature", "not hex".into());
        assert_eq!(
            verify_post(&f, &keys(), at(DEC_29_2015)),
            Err(PostPolicyError::SignatureDoesNotMatch)
        );
        let empty = Keys(HashMap::new());
        assert_eq!(
            verify_post(&aws_example_form(), &empty, at(DEC_29_2015)),
            Err(PostPolicyError::InvalidAccessKeyId)
        );
        // The policy expires 2015-12-30T12:00:00Z.
        assert_eq!(
            verify_post(&aws_example_form(), &keys(), at(DEC_29_2015 + 2 * 86_400)),
            Err(PostPolicyError::Expired)
        );
        let mut f = aws_example_form();
        f.set("key", "user/user2/photo.jpg".into());
        assert!(matches!(
            verify_post(&f, &keys(), at(DEC_29_2015)),
            Err(PostPolicyError::Violation(m)) if m.contains("starts-with") && m.contains("$key")
        ));
        let mut f = aws_example_form();
        f.set("bucket", "otherbucket".into());
        assert!(matches!(
            verify_post(&f, &keys(), at(DEC_29_2015)),
            Err(PostPolicyError::Violation(m)) if m.contains("$bucket")
        ));
        let mut f = aws_example_form();
        f.set("x-amz-meta-extra", "1".into());
        f.set("x-ignore-flash", "1".into());
        assert_eq!(
            verify_post(&f, &keys(), at(DEC_29_2015)),
            Err(PostPolicyError::Violation(
                "Extra input fields: x-amz-meta-extra".into()
            ))
        );
        let mut f = aws_example_form();
        f.set("x-amz-date", "20151228T000000Z".into());
        assert!(matches!(
            verify_post(&f, &keys(), at(DEC_29_2015)),
            Err(PostPolicyError::InvalidArgument(_))
        ));
        let mut f = aws_example_form();
        f.set("x-amz-algorithm", "AWS4-HMAC-SHA512".into());
        assert!(matches!(
            verify_post(&f, &keys(), at(DEC_29_2015)),
            Err(PostPolicyError::InvalidArgument(_))
        ));
        let mut f = aws_example_form();
        f.set(
            "x-amz-credential",
            "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1".into(),
        );
        assert!(matches!(
            verify_post(&f, &keys(), at(DEC_29_2015)),
            Err(PostPolicyError::InvalidArgument(_))
        ));
    }

    #[test]
    fn missing_pieces() {
        assert_eq!(
            verify_post(&form(&[("key", "k")]), &keys(), at(0)),
            Err(PostPolicyError::Anonymous)
        );
        assert_eq!(
            verify_post(&form(&[("policy", "e30=")]), &keys(), at(0)),
            Err(PostPolicyError::MissingField("AWSAccessKeyId"))
        );
        assert_eq!(
            verify_post(&form(&[("AWSAccessKeyId", AKID)]), &keys(), at(0)),
            Err(PostPolicyError::MissingField("signature"))
        );
        assert_eq!(
            verify_post(
                &form(&[("AWSAccessKeyId", AKID), ("signature", "x")]),
                &keys(),
                at(0)
            ),
            Err(PostPolicyError::MissingField("policy"))
        );
        let mut f = aws_example_form();
        f.set("signature", "x".into());
        assert!(matches!(
            verify_post(&f, &keys(), at(DEC_29_2015)),
            Err(PostPolicyError::InvalidArgument(_))
        ));
        for field in ["x-amz-credential", "x-amz-date", "policy"] {
            let mut f = aws_example_form();
            f.fields.retain(|(n, _)| n != field);
            assert!(
                matches!(
                    verify_post(&f, &keys(), at(DEC_29_2015)),
                    Err(PostPolicyError::MissingField(_))
                ),
                "{field}"
            );
        }
    }

    const EXP: &str = "\"expiration\": \"2015-12-30T12:00:00Z\"";

    #[test]
    fn sigv2_and_conditions() {
        let json = format!(
            r#"{{{EXP}, "conditions": [
                {{"bucket": "b"}},
                ["starts-with", "$key", ""],
                ["eq", "$Content-Type", "text/plain"],
                ["starts-with", "$x-amz-meta-a", "pre"],
                ["content-length-range", 10, "100"],
                ["content-length-range", 0, 50]
            ]}}"#
        );
        let ok = [
            ("bucket", "b"),
            ("key", "anything"),
            ("content-type", "text/plain"),
            ("X-Amz-Meta-A", "prefixed"),
        ];
        let auth = check_v2(&json, &ok).unwrap();
        assert_eq!(auth.signature, PostSignature::V2);
        assert_eq!(auth.content_length, Some(LengthRange { min: 10, max: 50 }));
        // A missing field is the empty string.
        let mut missing = ok.to_vec();
        missing.retain(|(n, _)| *n != "X-Amz-Meta-A");
        assert!(matches!(
            check_v2(&json, &missing),
            Err(PostPolicyError::Violation(_))
        ));
        let mut wrong = ok.to_vec();
        wrong[2] = ("content-type", "text/html");
        assert_eq!(
            check_v2(&json, &wrong),
            Err(PostPolicyError::Violation(
                "Policy Condition failed: [\"eq\", \"$content-type\", \"text/plain\"]".into()
            ))
        );
        // Wrong secret.
        let mut f = v2_form(&json, &ok);
        f.set("signature", B64.encode([0u8; 20]));
        assert_eq!(
            verify_post(&f, &keys(), at(DEC_29_2015)),
            Err(PostPolicyError::SignatureDoesNotMatch)
        );
        f.set("signature", "%%%".into());
        assert_eq!(
            verify_post(&f, &keys(), at(DEC_29_2015)),
            Err(PostPolicyError::SignatureDoesNotMatch)
        );
    }

    #[test]
    fn content_type_lists() {
        let json = format!(
            r#"{{{EXP}, "conditions": [{{"bucket": "b"}}, ["starts-with", "$Content-Type", "image/"]]}}"#
        );
        let f = |ct| check_v2(&json, &[("bucket", "b"), ("Content-Type", ct)]);
        assert!(f("image/jpg, image/png").is_ok());
        assert!(f("image/jpg,text/plain").is_err());
    }

    #[test]
    fn malformed_policies() {
        let bad = [
            "not json",
            "[]",
            "{}",
            r#"{"conditions": []}"#,
            r#"{"expiration": 5, "conditions": []}"#,
            r#"{"expiration": "Mon, 13 Oct 2014 00:00:00 GMT", "conditions": []}"#,
            r#"{"EXPIRATION": "2015-12-30T12:00:00Z", "conditions": []}"#,
            r#"{"expiration": "2015-12-30T12:00:00Z"}"#,
            r#"{"expiration": "2015-12-30T12:00:00Z", "CONDITIONS": []}"#,
            r#"{"expiration": "2015-12-30T12:00:00Z", "conditions": {}}"#,
            r#"{"expiration": "2015-12-30T12:00:00Z", "conditions": [{}]}"#,
            r#"{"expiration": "2015-12-30T12:00:00Z", "conditions": [7]}"#,
            r#"{"expiration": "2015-12-30T12:00:00Z", "conditions": [["eq", "$key"]]}"#,
            r#"{"expiration": "2015-12-30T12:00:00Z", "conditions": [["eq", "key", "a"]]}"#,
            r#"{"expiration": "2015-12-30T12:00:00Z", "conditions": [["eq", "$", "a"]]}"#,
            r#"{"expiration": "2015-12-30T12:00:00Z", "conditions": [["eq", "$key", null]]}"#,
            r#"{"expiration": "2015-12-30T12:00:00Z", "conditions": [["ends-with", "$key", "a"]]}"#,
            r#"{"expiration": "2015-12-30T12:00:00Z", "conditions": [[1, "$key", "a"]]}"#,
            r#"{"expiration": "2015-12-30T12:00:00Z", "conditions": [["content-length-range", 0]]}"#,
            r#"{"expiration": "2015-12-30T12:00:00Z", "conditions": [["content-length-range", -1, 0]]}"#,
            r#"{"expiration": "2015-12-30T12:00:00Z", "conditions": [["content-length-range", 5, 1]]}"#,
            r#"{"expiration": "2015-12-30T12:00:00Z", "conditions": [["content-length-range", 1.5, 3]]}"#,
        ];
        for json in bad {
            let r = PostPolicy::parse(&b64(json));
            assert!(
                matches!(r, Err(PostPolicyError::InvalidPolicy(_))),
                "{json}: {r:?}"
            );
            // Through the whole verification too: a signed but malformed policy.
            assert!(
                matches!(check_v2(json, &[]), Err(PostPolicyError::InvalidPolicy(_))),
                "{json}"
            );
        }
        for not_b64 in ["!!!", "e30", "\u{e9}"] {
            assert!(matches!(
                PostPolicy::parse(not_b64),
                Err(PostPolicyError::InvalidPolicy(_))
            ));
        }
        // Whitespace in the base64 (line-wrapped encoders) is fine.
        let wrapped = b64(&format!(r#"{{{EXP}, "conditions": [["eq", "$Key", 5]]}}"#));
        let (a, b) = wrapped.split_at(10);
        let p = PostPolicy::parse(&format!("{a}\n {b}\n")).unwrap();
        assert_eq!(
            p.conditions,
            vec![Condition::Eq {
                field: "key".into(),
                value: "5".into()
            }]
        );
    }

    #[test]
    fn exempt_fields() {
        for f in [
            "policy",
            "x-amz-signature",
            "signature",
            "awsaccesskeyid",
            "file",
            "x-ignore-anything",
        ] {
            assert!(is_exempt(f), "{f}");
        }
        for f in ["key", "bucket", "x-amz-date", "success_action_status"] {
            assert!(!is_exempt(f), "{f}");
        }
    }

    fn json_scalar() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z$-]{0,8}".prop_map(|s| format!("\"{s}\"")),
            any::<i64>().prop_map(|n| n.to_string()),
            Just("null".to_string()),
            Just("1e400".to_string()),
            Just("\"$key\"".to_string()),
            Just("\"eq\"".to_string()),
            Just("\"starts-with\"".to_string()),
            Just("\"content-length-range\"".to_string()),
        ]
    }

    fn json_condition() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::collection::vec(json_scalar(), 0..5).prop_map(|v| format!("[{}]", v.join(","))),
            ("[a-zA-Z-]{0,8}", json_scalar()).prop_map(|(k, v)| format!("{{\"{k}\": {v}}}")),
            json_scalar(),
        ]
    }

    fn json_policy() -> impl Strategy<Value = String> {
        (
            prop_oneof![
                Just("\"2015-12-30T12:00:00Z\"".to_string()),
                Just("\"2015-12-28T12:00:00.123Z\"".to_string()),
                json_scalar()
            ],
            prop::collection::vec(json_condition(), 0..6),
        )
            .prop_map(|(exp, conds)| {
                format!(
                    "{{\"expiration\": {exp}, \"conditions\": [{}]}}",
                    conds.join(",")
                )
            })
    }

    fn fields() -> impl Strategy<Value = Vec<(String, String)>> {
        prop::collection::vec(
            (
                prop_oneof![
                    Just("key".to_string()),
                    Just("bucket".to_string()),
                    Just("Content-Type".to_string()),
                    Just("x-amz-signature".to_string()),
                    Just("x-amz-credential".to_string()),
                    Just("x-amz-date".to_string()),
                    Just("x-amz-algorithm".to_string()),
                    Just("AWSAccessKeyId".to_string()),
                    Just("signature".to_string()),
                    Just("policy".to_string()),
                    "[a-zA-Z$-]{0,10}",
                ],
                ".{0,40}",
            ),
            0..10,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_policy_strings_never_panic(s in ".{0,200}", f in fields(), now in any::<u32>()) {
            let _ = PostPolicy::parse(&s);
            let mut form = PostForm::new();
            for (n, v) in &f {
                form.set(n, v.clone());
            }
            form.set("policy", s);
            let _ = verify_post(&form, &keys(), at(u64::from(now)));
        }

        #[test]
        fn arbitrary_signed_policies_never_panic(json in json_policy(), f in fields(), now in any::<u32>()) {
            let pairs: Vec<(&str, &str)> = f.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            let mut form = v2_form(&json, &[]);
            for (n, v) in pairs {
                if !matches!(n.to_ascii_lowercase().as_str(), "policy" | "signature" | "awsaccesskeyid")
                    && !n.to_ascii_lowercase().starts_with("x-amz-")
                {
                    form.set(n, v.to_string());
                }
            }
            let r = verify_post(&form, &keys(), at(u64::from(now)));
            // A signed policy never fails on the signature.
            prop_assert!(r != Err(PostPolicyError::SignatureDoesNotMatch));
            if let Ok(p) = PostPolicy::parse(&b64(&json)) {
                let _ = p.check(&form, i64::from(now));
            }
        }
    }
}
