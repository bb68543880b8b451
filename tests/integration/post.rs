//! PostObject: browser form uploads with a SigV4 POST policy.

use std::time::{Duration, SystemTime};

use base64::Engine;

use crate::helpers::*;

const B: &str = "forms";

fn form(fields: &[(&str, String)], file: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----tarnboundary8c1f";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.txt\"\r\nContent-Type: text/plain\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn policy_fields(app: &TestApp, key: &str, extra_conditions: &str) -> Vec<(&'static str, String)> {
    let now = SystemTime::now();
    let (hs, _) = sign_request(
        "GET",
        &app.url("/"),
        &[],
        "UNSIGNED-PAYLOAD",
        &app.access_key,
        &app.secret_key,
        now,
    );
    let amz_date = hs
        .iter()
        .find(|(k, _)| k == "x-amz-date")
        .unwrap()
        .1
        .clone();
    let credential = format!(
        "{}/{}/{REGION}/s3/aws4_request",
        app.access_key,
        &amz_date[..8]
    );
    let exp = {
        let t = now + Duration::from_secs(600);
        let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        let days = secs / 86400;
        let (y, m, d) = civil_from_days(days as i64);
        let rem = secs % 86400;
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000Z",
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        )
    };
    let policy = format!(
        "{{\"expiration\":\"{exp}\",\"conditions\":[{{\"bucket\":\"{B}\"}},[\"eq\",\"$key\",\"{key}\"],{{\"x-amz-algorithm\":\"AWS4-HMAC-SHA256\"}},{{\"x-amz-credential\":\"{credential}\"}},{{\"x-amz-date\":\"{amz_date}\"}}{extra_conditions}]}}"
    );
    let policy_b64 = base64::engine::general_purpose::STANDARD.encode(policy.as_bytes());
    let key_bytes = aws_sigv4::sign::v4::generate_signing_key(&app.secret_key, now, REGION, "s3");
    let sig = aws_sigv4::sign::v4::calculate_signature(key_bytes.as_ref(), policy_b64.as_bytes());
    vec![
        ("key", key.to_string()),
        ("x-amz-algorithm", "AWS4-HMAC-SHA256".into()),
        ("x-amz-credential", credential),
        ("x-amz-date", amz_date),
        ("policy", policy_b64),
        ("x-amz-signature", sig),
    ]
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[tokio::test]
async fn post_object_with_sigv4_policy() {
    let app = spawn_app().await;
    app.create_bucket(B).await;
    let fields = policy_fields(&app, "uploads/form.txt", "");
    let (ct, body) = form(&fields, b"form upload");
    let r = app
        .req("POST", &format!("/{B}"))
        .anonymous()
        .header("content-type", ct)
        .body(body)
        .send()
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(app.get(B, "uploads/form.txt").await.body, b"form upload");

    // A tampered policy is refused and stores nothing.
    let mut fields = policy_fields(&app, "uploads/evil.txt", "");
    fields[5].1 = "0".repeat(64);
    let (ct, body) = form(&fields, b"evil");
    let r = app
        .req("POST", &format!("/{B}"))
        .anonymous()
        .header("content-type", ct)
        .body(body)
        .send()
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(app.head(B, "uploads/evil.txt").await.status, 404);
}

async fn post(app: &TestApp, fields: &[(&str, String)], file: &[u8]) -> Response {
    let (ct, body) = form(fields, file);
    app.req("POST", &format!("/{B}"))
        .anonymous()
        .header("content-type", ct)
        .body(body)
        .send()
        .await
}

#[tokio::test]
async fn post_object_success_status_and_conditions() {
    let app = spawn_app().await;
    app.create_bucket(B).await;
    let mut fields = policy_fields(&app, "s201.txt", ",{\"success_action_status\":\"201\"}");
    fields.push(("success_action_status", "201".into()));
    let r = post(&app, &fields, b"created").await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(r.text().contains("<PostResponse"), "{}", r.text());
    assert_eq!(r.xml("Key").as_deref(), Some("s201.txt"));
    assert_eq!(r.xml("ETag"), Some(quoted_md5(b"created")));

    // content-length-range violated.
    let fields = policy_fields(&app, "range.txt", ",[\"content-length-range\",1,5]");
    let r = post(&app, &fields, b"far too long").await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.code().as_deref(), Some("EntityTooLarge"), "{}", r.text());
    assert_eq!(app.head(B, "range.txt").await.status, 404);

    // A key outside the policy's condition.
    let mut fields = policy_fields(&app, "allowed.txt", "");
    fields[0].1 = "other.txt".into();
    let r = post(&app, &fields, b"x").await;
    assert_err(&r, 403, "AccessDenied");
    assert_eq!(app.head(B, "other.txt").await.status, 404);
}
