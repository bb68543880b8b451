//! Authentication: SigV4 header and presigned, failures, SigV2.

use std::time::{Duration, SystemTime};

use base64::Engine;
use hmac::{Hmac, Mac};

use crate::helpers::*;

const B: &str = "authb";

async fn setup() -> TestApp {
    let app = spawn_app().await;
    app.create_bucket(B).await;
    app.put_ok(B, "secret.txt", "classified").await;
    app
}

#[tokio::test]
async fn anonymous_requests_are_denied() {
    let app = setup().await;
    for (m, p) in [
        ("GET", obj(B, "secret.txt")),
        ("GET", "/".to_string()),
        ("GET", format!("/{B}")),
        ("PUT", obj(B, "anon")),
        ("DELETE", obj(B, "secret.txt")),
    ] {
        let r = app.req(m, &p).body("x").anonymous().send().await;
        assert_err(&r, 403, "AccessDenied");
    }
    assert_eq!(app.get(B, "secret.txt").await.body, b"classified");
    assert_eq!(app.head(B, "anon").await.status, 404);
}

#[tokio::test]
async fn unknown_access_key() {
    let app = setup().await;
    let r = app
        .req("GET", &obj(B, "secret.txt"))
        .creds("AKNOBODYKNOWS1234567", &app.secret_key)
        .send()
        .await;
    assert_err(&r, 403, "InvalidAccessKeyId");
}

#[tokio::test]
async fn wrong_secret() {
    let app = setup().await;
    let r = app
        .req("PUT", &obj(B, "w"))
        .body("x")
        .creds(&app.access_key, "definitely-not-the-secret")
        .send()
        .await;
    assert_err(&r, 403, "SignatureDoesNotMatch");
    assert_eq!(app.head(B, "w").await.status, 404);
}

#[tokio::test]
async fn tampered_signed_header_or_path() {
    let app = setup().await;
    let req = app
        .req("PUT", &obj(B, "t"))
        .header("x-amz-meta-a", "1")
        .body("x");
    let mut headers = req.signed_headers();
    for (k, v) in headers.iter_mut() {
        if k == "x-amz-meta-a" {
            *v = "2".into();
        }
    }
    let mut r = app.req("PUT", &obj(B, "t")).anonymous().body("x");
    r.headers = headers.clone();
    let r = r.send().await;
    assert_err(&r, 403, "SignatureDoesNotMatch");

    // Same headers, other path.
    headers.retain(|(k, _)| k != "x-amz-meta-a");
    let mut r = app.req("PUT", &obj(B, "t2")).anonymous().body("x");
    r.headers = app
        .req("PUT", &obj(B, "t"))
        .body("x")
        .signed_headers()
        .into_iter()
        .filter(|(k, _)| k != "host")
        .collect();
    r.headers.insert(0, ("host".into(), app.host()));
    let r = r.send().await;
    assert_err(&r, 403, "SignatureDoesNotMatch");
    assert_eq!(app.head(B, "t").await.status, 404);
    assert_eq!(app.head(B, "t2").await.status, 404);
}

#[tokio::test]
async fn unsigned_amz_header_is_refused() {
    let app = setup().await;
    let mut headers = app.req("PUT", &obj(B, "u")).body("x").signed_headers();
    headers.push(("x-amz-meta-sneaky".into(), "1".into()));
    let mut r = app.req("PUT", &obj(B, "u")).anonymous().body("x");
    r.headers = headers;
    let r = r.send().await;
    // S3: AccessDenied "There were headers present in the request which were not signed".
    assert_err(&r, 403, "AccessDenied");
    assert_eq!(app.head(B, "u").await.status, 404);
}

#[tokio::test]
async fn clock_skew() {
    let app = setup().await;
    for offset in [-20i64 * 60, 20 * 60] {
        let t = if offset < 0 {
            SystemTime::now() - Duration::from_secs(offset.unsigned_abs())
        } else {
            SystemTime::now() + Duration::from_secs(offset as u64)
        };
        let r = app.req("GET", &obj(B, "secret.txt")).time(t).send().await;
        assert_err(&r, 403, "RequestTimeTooSkewed");
    }
    // Ten minutes is within the 15-minute window.
    let t = SystemTime::now() - Duration::from_secs(600);
    let r = app.req("GET", &obj(B, "secret.txt")).time(t).send().await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn presigned_get_and_put_with_a_real_client() {
    let app = setup().await;
    let url = app.presign("GET", &obj(B, "secret.txt"), 300, SystemTime::now());
    let r = reqwest::get(&url).await.expect("get");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"classified");

    let url = app.presign("PUT", &obj(B, "uploaded via url"), 300, SystemTime::now());
    let r = reqwest::Client::new()
        .put(&url)
        .body("from presigned put")
        .send()
        .await
        .expect("put");
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);
    assert_eq!(
        app.get(B, "uploaded via url").await.body,
        b"from presigned put"
    );

    // Extra query parameters (response overrides) are part of the signature.
    let url = app.presign(
        "GET",
        &format!(
            "{}?response-content-type=text%2Fplain",
            obj(B, "secret.txt")
        ),
        300,
        SystemTime::now(),
    );
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "text/plain");
}

#[tokio::test]
async fn expired_presigned_url() {
    let app = setup().await;
    let t = SystemTime::now() - Duration::from_secs(3600);
    let url = app.presign("GET", &obj(B, "secret.txt"), 60, t);
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let text = r.text().await.unwrap();
    assert!(text.contains("<Code>AccessDenied</Code>"), "{text}");
    assert!(text.contains("Request has expired"), "{text}");
}

#[tokio::test]
async fn presigned_signature_reused_for_another_key() {
    let app = setup().await;
    app.put_ok(B, "other.txt", "other").await;
    let url = app.presign("GET", &obj(B, "secret.txt"), 300, SystemTime::now());
    let forged = url.replace("secret.txt", "other.txt");
    let r = reqwest::get(&forged).await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let text = r.text().await.unwrap();
    assert!(text.contains("SignatureDoesNotMatch"), "{text}");
    // And for another method.
    let r = reqwest::Client::new().delete(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(app.get(B, "secret.txt").await.status, 200);
}

#[tokio::test]
async fn presigned_expiry_over_seven_days_is_refused() {
    let app = setup().await;
    let url = app.presign(
        "GET",
        &obj(B, "secret.txt"),
        7 * 24 * 3600 + 1,
        SystemTime::now(),
    );
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let text = r.text().await.unwrap();
    assert!(text.contains("AuthorizationQueryParametersError"), "{text}");
    // Exactly seven days is fine.
    let url = app.presign(
        "GET",
        &obj(B, "secret.txt"),
        7 * 24 * 3600,
        SystemTime::now(),
    );
    assert_eq!(reqwest::get(&url).await.unwrap().status().as_u16(), 200);
}

fn sigv2(secret: &str, sts: &str) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(sts.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn sigv2_header_and_presigned_query() {
    let app = setup().await;
    let date = http_date(SystemTime::now());
    let path = obj(B, "secret.txt");
    let sts = format!("GET\n\n\n{date}\n{path}");
    let auth = format!("AWS {}:{}", app.access_key, sigv2(&app.secret_key, &sts));
    let r = app
        .req("GET", &path)
        .anonymous()
        .header("date", date.clone())
        .header("authorization", auth)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, b"classified");

    let bad = format!("AWS {}:{}", app.access_key, sigv2("wrong", &sts));
    let r = app
        .req("GET", &path)
        .anonymous()
        .header("date", date)
        .header("authorization", bad)
        .send()
        .await;
    assert_err(&r, 403, "SignatureDoesNotMatch");

    let expires = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 300;
    let sts = format!("GET\n\n\n{expires}\n{path}");
    let url = format!(
        "{}?AWSAccessKeyId={}&Expires={expires}&Signature={}",
        app.url(&path),
        app.access_key,
        q(&sigv2(&app.secret_key, &sts))
    );
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"classified");
    // Expired.
    let past = expires - 3600;
    let sts = format!("GET\n\n\n{past}\n{path}");
    let url = format!(
        "{}?AWSAccessKeyId={}&Expires={past}&Signature={}",
        app.url(&path),
        app.access_key,
        q(&sigv2(&app.secret_key, &sts))
    );
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
}
