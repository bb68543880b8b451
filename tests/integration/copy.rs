//! CopyObject: metadata directives, buckets, conditionals, self-copy.

use std::time::Duration;

use crate::helpers::*;

const SRC: &str = "src-bucket";
const DST: &str = "dst-bucket";

async fn setup() -> (TestApp, String) {
    let app = spawn_app().await;
    app.create_bucket(SRC).await;
    app.create_bucket(DST).await;
    let r = app
        .request(
            "PUT",
            &obj(SRC, "dir/source file ü"),
            &[
                ("content-type", "text/plain"),
                ("x-amz-meta-origin", "source"),
                ("cache-control", "no-store"),
                ("x-amz-tagging", "t=1"),
            ],
            "source bytes",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    (app, r.header("etag").unwrap().to_string())
}

fn source() -> String {
    format!("/{SRC}/{}", uri_encode("dir/source file ü", false))
}

#[tokio::test]
async fn copy_with_metadata_copy_to_other_bucket() {
    let (app, etag) = setup().await;
    let r = app
        .request(
            "PUT",
            &obj(DST, "copy"),
            &[("x-amz-copy-source", &source())],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("<CopyObjectResult"), "{}", r.text());
    assert_eq!(r.xml("ETag").as_deref(), Some(etag.as_str()));
    assert!(r.xml("LastModified").is_some());

    let r = app.get(DST, "copy").await;
    assert_eq!(r.body, b"source bytes");
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("x-amz-meta-origin"), Some("source"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("x-amz-tagging-count"), Some("1"));
    // Source untouched.
    assert_eq!(
        app.get(SRC, "dir/source file ü").await.body,
        b"source bytes"
    );
}

#[tokio::test]
async fn copy_source_without_leading_slash_and_same_bucket() {
    let (app, _) = setup().await;
    let src = source()[1..].to_string();
    let r = app
        .request(
            "PUT",
            &obj(SRC, "copy2"),
            &[("x-amz-copy-source", &src)],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(app.get(SRC, "copy2").await.body, b"source bytes");
}

#[tokio::test]
async fn copy_with_metadata_replace() {
    let (app, _) = setup().await;
    let r = app
        .request(
            "PUT",
            &obj(DST, "replaced"),
            &[
                ("x-amz-copy-source", &source()),
                ("x-amz-metadata-directive", "REPLACE"),
                ("content-type", "application/json"),
                ("x-amz-meta-new", "yes"),
            ],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = app.head(DST, "replaced").await;
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-amz-meta-new"), Some("yes"));
    assert_eq!(r.header("x-amz-meta-origin"), None);
    assert_eq!(r.header("cache-control"), None);
}

#[tokio::test]
async fn copy_missing_source() {
    let (app, _) = setup().await;
    let r = app
        .request(
            "PUT",
            &obj(DST, "x"),
            &[("x-amz-copy-source", &format!("/{SRC}/nope"))],
            "",
        )
        .await;
    assert_err(&r, 404, "NoSuchKey");
    let r = app
        .request(
            "PUT",
            &obj(DST, "x"),
            &[("x-amz-copy-source", "/no-such-bucket/k")],
            "",
        )
        .await;
    assert_err(&r, 404, "NoSuchBucket");
}

#[tokio::test]
async fn copy_source_conditionals() {
    let (app, etag) = setup().await;
    let lm = app
        .head(SRC, "dir/source file ü")
        .await
        .header("last-modified")
        .unwrap()
        .to_string();
    let lm_t = parse_http_date(&lm);
    let before = http_date(lm_t - Duration::from_secs(3600));
    let after = http_date(lm_t + Duration::from_secs(3600));
    let other = "\"ffffffffffffffffffffffffffffffff\"";
    let failing: [(&str, &str); 4] = [
        ("x-amz-copy-source-if-match", other),
        ("x-amz-copy-source-if-none-match", &etag),
        ("x-amz-copy-source-if-unmodified-since", &before),
        ("x-amz-copy-source-if-modified-since", &after),
    ];
    for (h, v) in failing {
        let r = app
            .request(
                "PUT",
                &obj(DST, "cond"),
                &[("x-amz-copy-source", &source()), (h, v)],
                "",
            )
            .await;
        assert_err(&r, 412, "PreconditionFailed");
        assert_eq!(app.head(DST, "cond").await.status, 404, "{h}");
    }
    let passing: [(&str, &str); 4] = [
        ("x-amz-copy-source-if-match", &etag),
        ("x-amz-copy-source-if-none-match", other),
        ("x-amz-copy-source-if-unmodified-since", &after),
        ("x-amz-copy-source-if-modified-since", &before),
    ];
    for (h, v) in passing {
        let r = app
            .request(
                "PUT",
                &obj(DST, "cond"),
                &[("x-amz-copy-source", &source()), (h, v)],
                "",
            )
            .await;
        assert_eq!(r.status, 200, "{h}: {}", r.text());
    }
}

#[tokio::test]
async fn copy_onto_itself() {
    let (app, _) = setup().await;
    let r = app
        .request(
            "PUT",
            &obj(SRC, "dir/source file ü"),
            &[("x-amz-copy-source", &source())],
            "",
        )
        .await;
    assert_err(&r, 400, "InvalidRequest");
    // With REPLACE it is allowed and changes the metadata.
    let r = app
        .request(
            "PUT",
            &obj(SRC, "dir/source file ü"),
            &[
                ("x-amz-copy-source", &source()),
                ("x-amz-metadata-directive", "REPLACE"),
                ("x-amz-meta-origin", "rewritten"),
            ],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = app.get(SRC, "dir/source file ü").await;
    assert_eq!(r.body, b"source bytes");
    assert_eq!(r.header("x-amz-meta-origin"), Some("rewritten"));
}

#[tokio::test]
async fn copy_multipart_source_gets_plain_etag() {
    let (app, _) = setup().await;
    let part1 = bytes(5 * MIB, 1);
    let part2 = b"tail".to_vec();
    crate::multipart::upload_multipart(&app, SRC, "mp", &[part1.clone(), part2.clone()]).await;
    let r = app
        .request(
            "PUT",
            &obj(DST, "mp-copy"),
            &[("x-amz-copy-source", &format!("/{SRC}/mp"))],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut all = part1;
    all.extend_from_slice(&part2);
    let r = app.get(DST, "mp-copy").await;
    assert!(r.body == all);
    assert_eq!(r.header("etag"), Some(quoted_md5(&all).as_str()));
}
