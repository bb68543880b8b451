//! GetObject/HeadObject: ranges, conditional reads, response-* overrides.

use std::time::{Duration, SystemTime};

use crate::helpers::*;

const B: &str = "reads";
const DATA: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

async fn setup() -> (TestApp, String, String) {
    let app = spawn_app().await;
    app.create_bucket(B).await;
    let etag = app.put_ok(B, "obj", DATA).await;
    let lm = app
        .head(B, "obj")
        .await
        .header("last-modified")
        .unwrap()
        .to_string();
    (app, etag, lm)
}

async fn get_with(app: &TestApp, headers: &[(&str, &str)]) -> Response {
    app.request("GET", &obj(B, "obj"), headers, "").await
}

#[tokio::test]
async fn ranges() {
    let (app, _, _) = setup().await;
    let n = DATA.len();
    let cases: [(&str, usize, usize); 6] = [
        ("bytes=0-4", 0, 4),
        ("bytes=10-10", 10, 10),
        ("bytes=30-", 30, n - 1),
        ("bytes=-5", n - 5, n - 1),
        ("bytes=20-1000", 20, n - 1),
        ("bytes=-1000", 0, n - 1),
    ];
    for (range, a, b) in cases {
        let r = get_with(&app, &[("range", range)]).await;
        assert_eq!(r.status, 206, "{range}: {}", r.text());
        assert_eq!(r.body, &DATA[a..=b], "{range}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {a}-{b}/{n}").as_str()),
            "{range}"
        );
        assert_eq!(
            r.header("content-length"),
            Some((b - a + 1).to_string().as_str())
        );
        assert_eq!(r.header("accept-ranges"), Some("bytes"));
    }
    // HEAD with a range answers like GET without the body.
    let r = app
        .request("HEAD", &obj(B, "obj"), &[("range", "bytes=0-4")], "")
        .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-length"), Some("5"));
}

#[tokio::test]
async fn unsatisfiable_ranges() {
    let (app, _, _) = setup().await;
    let n = DATA.len();
    for range in [
        format!("bytes={n}-"),
        format!("bytes={}-{}", n + 5, n + 10),
        "bytes=-0".to_string(),
    ] {
        let r = get_with(&app, &[("range", &range)]).await;
        assert_err(&r, 416, "InvalidRange");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes */{n}").as_str()),
            "{range}"
        );
    }
}

#[tokio::test]
async fn invalid_range_syntax_is_ignored() {
    let (app, _, _) = setup().await;
    for range in ["bytes=abc", "items=0-3", "bytes=5-2"] {
        let r = get_with(&app, &[("range", range)]).await;
        assert_eq!(r.status, 200, "{range}");
        assert_eq!(r.body, DATA);
    }
}

#[tokio::test]
async fn if_match_and_if_none_match_on_get() {
    let (app, etag, _) = setup().await;
    let other = "\"ffffffffffffffffffffffffffffffff\"";

    let r = get_with(&app, &[("if-match", &etag)]).await;
    assert_eq!(r.status, 200);
    let r = get_with(&app, &[("if-match", "*")]).await;
    assert_eq!(r.status, 200);
    let r = get_with(&app, &[("if-match", other)]).await;
    assert_err(&r, 412, "PreconditionFailed");

    let r = get_with(&app, &[("if-none-match", &etag)]).await;
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    let r = get_with(&app, &[("if-none-match", other)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, DATA);

    // A list of ETags.
    let list = format!("{other}, {etag}");
    assert_eq!(
        get_with(&app, &[("if-none-match", &list)]).await.status,
        304
    );
    assert_eq!(get_with(&app, &[("if-match", &list)]).await.status, 200);

    // HEAD behaves the same.
    let r = app
        .request("HEAD", &obj(B, "obj"), &[("if-none-match", &etag)], "")
        .await;
    assert_eq!(r.status, 304);
    let r = app
        .request("HEAD", &obj(B, "obj"), &[("if-match", other)], "")
        .await;
    assert_eq!(r.status, 412);
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn if_modified_since_and_if_unmodified_since_on_get() {
    let (app, _, lm) = setup().await;
    let lm_t = parse_http_date(&lm);
    let before = http_date(lm_t - Duration::from_secs(3600));
    let after = http_date(lm_t + Duration::from_secs(3600));

    assert_eq!(
        get_with(&app, &[("if-modified-since", &before)])
            .await
            .status,
        200
    );
    let r = get_with(&app, &[("if-modified-since", &after)]).await;
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    // Equal to Last-Modified: not modified since.
    assert_eq!(
        get_with(&app, &[("if-modified-since", &lm)]).await.status,
        304
    );

    assert_eq!(
        get_with(&app, &[("if-unmodified-since", &after)])
            .await
            .status,
        200
    );
    assert_eq!(
        get_with(&app, &[("if-unmodified-since", &lm)]).await.status,
        200
    );
    let r = get_with(&app, &[("if-unmodified-since", &before)]).await;
    assert_err(&r, 412, "PreconditionFailed");

    // An unparsable date is ignored.
    assert_eq!(
        get_with(&app, &[("if-modified-since", "yesterday")])
            .await
            .status,
        200
    );
    assert_eq!(
        get_with(&app, &[("if-unmodified-since", "not a date")])
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn conditional_precedence_rfc7232() {
    let (app, etag, lm) = setup().await;
    let lm_t = parse_http_date(&lm);
    let before = http_date(lm_t - Duration::from_secs(3600));
    let after = http_date(lm_t + Duration::from_secs(3600));
    let other = "\"ffffffffffffffffffffffffffffffff\"";

    // If-Match true + If-Unmodified-Since false -> 200 (S3 documents this).
    let r = get_with(
        &app,
        &[("if-match", &etag), ("if-unmodified-since", &before)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // If-None-Match false (matches) + If-Modified-Since true -> 304 (S3 documents this).
    let r = get_with(
        &app,
        &[("if-none-match", &etag), ("if-modified-since", &before)],
    )
    .await;
    assert_eq!(r.status, 304);
    // If-None-Match true (differs) + If-Modified-Since false -> 200: the date is ignored.
    let r = get_with(
        &app,
        &[("if-none-match", other), ("if-modified-since", &after)],
    )
    .await;
    assert_eq!(r.status, 200);
    // If-Match false wins over If-None-Match false: 412 before 304.
    let r = get_with(&app, &[("if-match", other), ("if-none-match", &etag)]).await;
    assert_eq!(r.status, 412);
    // If-Unmodified-Since false + If-None-Match false -> 412.
    let r = get_with(
        &app,
        &[("if-unmodified-since", &before), ("if-none-match", &etag)],
    )
    .await;
    assert_eq!(r.status, 412);
    // If-Match true + If-None-Match false -> 304.
    let r = get_with(&app, &[("if-match", &etag), ("if-none-match", &etag)]).await;
    assert_eq!(r.status, 304);
    // Conditions combine with Range.
    let r = get_with(&app, &[("if-match", &etag), ("range", "bytes=0-1")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, b"01");
}

#[tokio::test]
async fn last_modified_is_recent_http_date() {
    let (_app, _, lm) = setup().await;
    let t = parse_http_date(&lm);
    let now = SystemTime::now();
    let diff = now.duration_since(t).unwrap_or_default();
    assert!(diff < Duration::from_secs(120), "{lm}");
}

#[tokio::test]
async fn response_header_overrides() {
    let (app, _, _) = setup().await;
    let path = format!(
        "{}?response-content-type={}&response-content-disposition={}&response-cache-control={}&response-content-language={}&response-expires={}&response-content-encoding={}",
        obj(B, "obj"),
        q("text/plain; charset=utf-8"),
        q("attachment; filename=\"x y.txt\""),
        q("no-cache"),
        q("fr"),
        q("Wed, 21 Oct 2043 07:28:00 GMT"),
        q("identity"),
    );
    for method in ["GET", "HEAD"] {
        let r = app.request(method, &path, &[], "").await;
        assert_eq!(r.status, 200, "{method}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
        assert_eq!(
            r.header("content-disposition"),
            Some("attachment; filename=\"x y.txt\"")
        );
        assert_eq!(r.header("cache-control"), Some("no-cache"));
        assert_eq!(r.header("content-language"), Some("fr"));
        assert_eq!(r.header("expires"), Some("Wed, 21 Oct 2043 07:28:00 GMT"));
        assert_eq!(r.header("content-encoding"), Some("identity"));
    }
    // Without overrides, the defaults.
    let r = app.get(B, "obj").await;
    assert_eq!(r.header("content-type"), Some("binary/octet-stream"));
    assert_eq!(r.header("content-disposition"), None);
}

/// HEAD reads through the object cache now: after an overwrite (other length, type and
/// metadata) and after a delete, HEAD and GET answer from the new state at once, however
/// often the old one was read before.
#[tokio::test]
async fn head_and_get_follow_overwrites_and_deletes() {
    let (app, etag1, _) = setup().await;
    for _ in 0..3 {
        let h = app.head(B, "obj").await;
        assert_eq!(h.status, 200);
        assert_eq!(h.header("etag"), Some(etag1.as_str()));
        assert_eq!(h.header("content-length"), Some("36"));
        assert_eq!(app.get(B, "obj").await.body, DATA);
    }
    let r = app
        .req("PUT", &obj(B, "obj"))
        .header("content-type", "text/csv")
        .header("x-amz-meta-origin", "second")
        .body(&b"a,b\n1,2\n"[..])
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let etag2 = r.header("etag").unwrap().to_string();
    assert_ne!(etag1, etag2);
    let h = app.head(B, "obj").await;
    assert_eq!(h.status, 200);
    assert_eq!(h.header("etag"), Some(etag2.as_str()));
    assert_eq!(h.header("content-length"), Some("8"));
    assert_eq!(h.header("content-type"), Some("text/csv"));
    assert_eq!(h.header("x-amz-meta-origin"), Some("second"));
    assert!(h.body.is_empty());
    let g = app.get(B, "obj").await;
    assert_eq!((g.status, g.body.as_slice()), (200, &b"a,b\n1,2\n"[..]));
    assert_eq!(g.header("etag"), Some(etag2.as_str()));
    assert_eq!(
        app.request("DELETE", &obj(B, "obj"), &[], "").await.status,
        204
    );
    assert_eq!(app.head(B, "obj").await.status, 404);
    assert_eq!(app.get(B, "obj").await.status, 404);
}
