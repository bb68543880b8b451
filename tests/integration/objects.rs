//! PutObject / GetObject / HeadObject / DeleteObject(s): keys, metadata, digests,
//! checksums and conditional writes.

use crate::helpers::*;

const B: &str = "objs";

async fn app_with_bucket() -> TestApp {
    let app = spawn_app().await;
    app.create_bucket(B).await;
    app
}

#[tokio::test]
async fn odd_keys_round_trip() {
    let app = app_with_bucket().await;
    let long_ok = "k".repeat(1024);
    let keys = [
        "simple",
        "with space",
        "100%",
        "%2F literally",
        "a+b",
        "ünïcödé/日本語/😀",
        "../x",
        "../../etc/passwd",
        "dir/",
        "a//b",
        "./dot",
        "q?x=1&y#frag",
        "~tilde*star(paren)'quote'!,;:@=$",
        "tab\there",
        long_ok.as_str(),
    ];
    for (i, key) in keys.iter().enumerate() {
        let body = format!("body of key {i}");
        let etag = app.put_ok(B, key, body.clone()).await;
        assert_eq!(etag, quoted_md5(body.as_bytes()), "{key:?}");
        let r = app.get(B, key).await;
        assert_eq!(r.status, 200, "GET {key:?}: {}", r.text());
        assert_eq!(r.body, body.as_bytes(), "{key:?}");
        let r = app.head(B, key).await;
        assert_eq!(r.status, 200, "HEAD {key:?}");
        assert_eq!(
            r.header("content-length"),
            Some(body.len().to_string().as_str())
        );
    }
    // Every key is listed exactly as stored.
    let r = app
        .request("GET", &format!("/{B}?list-type=2"), &[], "")
        .await;
    let mut listed = r.xml_all("Key");
    listed.sort();
    let mut want: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    want.sort();
    assert_eq!(listed, want);
}

#[tokio::test]
async fn key_too_long() {
    let app = app_with_bucket().await;
    let key = "k".repeat(1025);
    let r = app.put(B, &key, "x").await;
    assert_err(&r, 400, "KeyTooLongError");
    // Multi-byte: 342 * 3 bytes = 1026 bytes although only 342 characters.
    let key = "€".repeat(342);
    let r = app.put(B, &key, "x").await;
    assert_err(&r, 400, "KeyTooLongError");
}

#[tokio::test]
async fn metadata_and_standard_headers_round_trip() {
    let app = app_with_bucket().await;
    let expires = "Thu, 01 Dec 2044 16:00:00 GMT";
    let r = app
        .request(
            "PUT",
            &obj(B, "meta"),
            &[
                ("x-amz-meta-color", "blue"),
                ("X-Amz-Meta-Mixed-Case", "Value With Spaces"),
                ("content-type", "text/csv; charset=utf-8"),
                ("content-encoding", "gzip"),
                ("content-disposition", "attachment; filename=\"a b.csv\""),
                ("cache-control", "max-age=60, private"),
                ("content-language", "de-CH"),
                ("expires", expires),
            ],
            "a,b\n1,2\n",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    for method in ["GET", "HEAD"] {
        let r = app.request(method, &obj(B, "meta"), &[], "").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-amz-meta-color"), Some("blue"), "{method}");
        // S3 lower-cases metadata names.
        assert_eq!(r.header("x-amz-meta-mixed-case"), Some("Value With Spaces"));
        assert_eq!(r.header("content-type"), Some("text/csv; charset=utf-8"));
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        assert_eq!(
            r.header("content-disposition"),
            Some("attachment; filename=\"a b.csv\"")
        );
        assert_eq!(r.header("cache-control"), Some("max-age=60, private"));
        assert_eq!(r.header("content-language"), Some("de-CH"));
        assert_eq!(r.header("expires"), Some(expires));
        assert_eq!(r.header("etag"), Some(quoted_md5(b"a,b\n1,2\n").as_str()));
        assert_eq!(r.header("content-length"), Some("8"));
        assert!(r.header("last-modified").is_some());
        assert_eq!(r.header("accept-ranges"), Some("bytes"));
        if method == "GET" {
            assert_eq!(r.body, b"a,b\n1,2\n");
        }
    }
    // A PUT without metadata replaces all of it.
    app.put_ok(B, "meta", "new").await;
    let r = app.head(B, "meta").await;
    assert_eq!(r.header("x-amz-meta-color"), None);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("content-type"), Some("binary/octet-stream"));
}

#[tokio::test]
async fn metadata_limit_is_2_kib() {
    let app = app_with_bucket().await;
    let ok = "v".repeat(1900);
    let r = app
        .request("PUT", &obj(B, "small-meta"), &[("x-amz-meta-k", &ok)], "x")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());

    let big = "v".repeat(2100);
    let r = app
        .request("PUT", &obj(B, "big-meta"), &[("x-amz-meta-k", &big)], "x")
        .await;
    assert_err(&r, 400, "MetadataTooLarge");
    // Spread over many headers, still counted together.
    let part = "v".repeat(300);
    let hs: Vec<(String, String)> = (0..8)
        .map(|i| (format!("x-amz-meta-k{i}"), part.clone()))
        .collect();
    let hs: Vec<(&str, &str)> = hs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let r = app.request("PUT", &obj(B, "big-meta"), &hs, "x").await;
    assert_err(&r, 400, "MetadataTooLarge");
    assert_eq!(app.head(B, "big-meta").await.status, 404);
}

#[tokio::test]
async fn etag_is_quoted_md5_and_empty_object_works() {
    let app = app_with_bucket().await;
    let data = bytes(300_000, 7);
    let etag = app.put_ok(B, "big", data.clone()).await;
    assert_eq!(etag, quoted_md5(&data));
    let r = app.get(B, "big").await;
    assert_eq!(r.body, data);
    assert_eq!(r.header("etag"), Some(etag.as_str()));

    let etag = app.put_ok(B, "empty", Vec::new()).await;
    assert_eq!(etag, "\"d41d8cd98f00b204e9800998ecf8427e\"");
    let r = app.get(B, "empty").await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-length"), Some("0"));
}

#[tokio::test]
async fn larger_object_streams_round_trip() {
    let app = app_with_bucket().await;
    let data = bytes(12 * MIB + 17, 99);
    let etag = app.put_ok(B, "large", data.clone()).await;
    assert_eq!(etag, quoted_md5(&data));
    let r = app.get(B, "large").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), data.len());
    assert!(r.body == data);
}

#[tokio::test]
async fn content_md5_checked() {
    let app = app_with_bucket().await;
    let r = app
        .request(
            "PUT",
            &obj(B, "md5-ok"),
            &[("content-md5", &md5_b64(b"hello"))],
            "hello",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());

    let r = app
        .request(
            "PUT",
            &obj(B, "md5-bad"),
            &[("content-md5", &md5_b64(b"other"))],
            "hello",
        )
        .await;
    assert_err(&r, 400, "BadDigest");
    assert_err(&app.get(B, "md5-bad").await, 404, "NoSuchKey");

    for invalid in ["not base64!!", "aGVsbG8="] {
        let r = app
            .request(
                "PUT",
                &obj(B, "md5-invalid"),
                &[("content-md5", invalid)],
                "hello",
            )
            .await;
        assert_err(&r, 400, "InvalidDigest");
    }
    assert_err(&app.get(B, "md5-invalid").await, 404, "NoSuchKey");
    // A failed overwrite keeps the old object.
    let r = app
        .request(
            "PUT",
            &obj(B, "md5-ok"),
            &[("content-md5", &md5_b64(b"zzz"))],
            "changed",
        )
        .await;
    assert_err(&r, 400, "BadDigest");
    assert_eq!(app.get(B, "md5-ok").await.body, b"hello");
}

const FOX: &str = "The quick brown fox jumps over the lazy dog";
const CHECKSUMS: [(&str, &str); 5] = [
    ("crc32", "QU+jOQ=="),
    ("crc32c", "ImIEBA=="),
    ("crc64nvme", "12xUBUlUwUM="),
    ("sha1", "L9ThxnotKPzthJ7hu3bnORuT6xI="),
    ("sha256", "16j7swfXgJRpypq8sAguT41WUeRtPNt2LQLQvzfJ5ZI="),
];

#[tokio::test]
async fn checksums_verified_stored_and_returned() {
    let app = app_with_bucket().await;
    for (algo, value) in CHECKSUMS {
        let header = format!("x-amz-checksum-{algo}");
        let key = format!("ck-{algo}");
        let r = app
            .request("PUT", &obj(B, &key), &[(&header, value)], FOX)
            .await;
        assert_eq!(r.status, 200, "{algo}: {}", r.text());
        assert_eq!(r.header(&header), Some(value), "PUT response {algo}");

        for method in ["GET", "HEAD"] {
            let r = app
                .request(
                    method,
                    &obj(B, &key),
                    &[("x-amz-checksum-mode", "ENABLED")],
                    "",
                )
                .await;
            assert_eq!(r.status, 200);
            assert_eq!(r.header(&header), Some(value), "{method} {algo}");
        }
        // Not returned unless asked for.
        let r = app.head(B, &key).await;
        assert_eq!(r.header(&header), None, "{algo} without checksum mode");
    }
}

#[tokio::test]
async fn sdk_checksum_algorithm_header_computes_checksum() {
    let app = app_with_bucket().await;
    let r = app
        .request(
            "PUT",
            &obj(B, "sdk"),
            &[("x-amz-sdk-checksum-algorithm", "CRC32")],
            FOX,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = app
        .request(
            "HEAD",
            &obj(B, "sdk"),
            &[("x-amz-checksum-mode", "ENABLED")],
            "",
        )
        .await;
    assert_eq!(r.header("x-amz-checksum-crc32"), Some("QU+jOQ=="));
}

#[tokio::test]
async fn wrong_checksums_are_bad_digest_and_store_nothing() {
    let app = app_with_bucket().await;
    for (i, (algo, _)) in CHECKSUMS.iter().enumerate() {
        let header = format!("x-amz-checksum-{algo}");
        // A value of the right shape that belongs to another algorithm's width,
        // then a value of the right width but wrong.
        let wrong = CHECKSUMS[(i + 1) % CHECKSUMS.len()].1;
        let right_width_wrong = match *algo {
            "crc32" | "crc32c" => "AAAAAA==",
            "crc64nvme" => "AAAAAAAAAAA=",
            "sha1" => "AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            _ => "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        };
        for bad in [wrong, right_width_wrong] {
            let r = app
                .request("PUT", &obj(B, "bad-ck"), &[(&header, bad)], FOX)
                .await;
            assert_eq!(r.status, 400, "{algo} {bad}: {}", r.text());
            assert!(
                matches!(
                    r.code().as_deref(),
                    Some("BadDigest") | Some("InvalidRequest")
                ),
                "{algo}: {}",
                r.text()
            );
            if bad == right_width_wrong {
                assert_err(&r, 400, "BadDigest");
            }
        }
    }
    assert_err(&app.get(B, "bad-ck").await, 404, "NoSuchKey");
}

#[tokio::test]
async fn content_sha256_mismatch() {
    let app = app_with_bucket().await;
    let r = app
        .req("PUT", &obj(B, "sha"))
        .body("actual body")
        .payload(Payload::Precomputed(sha256_hex(b"another body")))
        .send()
        .await;
    assert_err(&r, 400, "XAmzContentSHA256Mismatch");
    assert_err(&app.get(B, "sha").await, 404, "NoSuchKey");
    assert!(
        eventually(5, || app.tmp_files().is_empty()).await,
        "tmp not cleaned: {:?}",
        app.tmp_files()
    );
    // UNSIGNED-PAYLOAD is accepted.
    let r = app
        .req("PUT", &obj(B, "sha"))
        .body("unsigned body")
        .payload(Payload::Unsigned)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(app.get(B, "sha").await.body, b"unsigned body");
}

#[tokio::test]
async fn conditional_writes() {
    let app = app_with_bucket().await;
    let r = app
        .request("PUT", &obj(B, "cond"), &[("if-none-match", "*")], "first")
        .await;
    assert_eq!(r.status, 200, "If-None-Match * on a new key: {}", r.text());
    let etag = r.header("etag").unwrap().to_string();

    let r = app
        .request("PUT", &obj(B, "cond"), &[("if-none-match", "*")], "second")
        .await;
    assert_err(&r, 412, "PreconditionFailed");
    assert_eq!(app.get(B, "cond").await.body, b"first");

    let r = app
        .request(
            "PUT",
            &obj(B, "cond"),
            &[("if-match", "\"0123456789abcdef0123456789abcdef\"")],
            "third",
        )
        .await;
    assert_err(&r, 412, "PreconditionFailed");
    assert_eq!(app.get(B, "cond").await.body, b"first");

    let r = app
        .request("PUT", &obj(B, "cond"), &[("if-match", &etag)], "fourth")
        .await;
    assert_eq!(
        r.status,
        200,
        "If-Match with the current ETag: {}",
        r.text()
    );
    assert_eq!(app.get(B, "cond").await.body, b"fourth");
}

#[tokio::test]
async fn get_and_head_missing_key() {
    let app = app_with_bucket().await;
    let r = app.get(B, "missing").await;
    assert_err(&r, 404, "NoSuchKey");
    let r = app.head(B, "missing").await;
    assert_eq!(r.status, 404);
    assert!(r.body.is_empty());
    assert!(r.header("x-amz-request-id").is_some());
}

#[tokio::test]
async fn delete_object_is_204_even_if_missing() {
    let app = app_with_bucket().await;
    app.put_ok(B, "gone soon", "x").await;
    let r = app.request("DELETE", &obj(B, "gone soon"), &[], "").await;
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
    assert_err(&app.get(B, "gone soon").await, 404, "NoSuchKey");
    let r = app.request("DELETE", &obj(B, "never there"), &[], "").await;
    assert_eq!(r.status, 204);
    let r = app.request("DELETE", &obj("no-bucket", "k"), &[], "").await;
    assert_err(&r, 404, "NoSuchBucket");
}

fn delete_doc(keys: &[String], quiet: bool) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
    );
    if quiet {
        s.push_str("<Quiet>true</Quiet>");
    }
    for k in keys {
        s.push_str(&format!(
            "<Object><Key>{}</Key></Object>",
            k.replace('&', "&amp;").replace('<', "&lt;")
        ));
    }
    s.push_str("</Delete>");
    s
}

async fn delete_objects(app: &TestApp, doc: &str) -> Response {
    app.request(
        "POST",
        &format!("/{B}?delete"),
        &[
            ("content-md5", &md5_b64(doc.as_bytes())),
            ("content-type", "application/xml"),
        ],
        doc.to_string(),
    )
    .await
}

#[tokio::test]
async fn delete_objects_verbose_and_quiet() {
    let app = app_with_bucket().await;
    let keys: Vec<String> = ["a", "b & c", "d<e", "f/g"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for k in &keys {
        app.put_ok(B, k, "x").await;
    }
    let mut req = keys[..2].to_vec();
    req.push("does-not-exist".into());
    let r = delete_objects(&app, &delete_doc(&req, false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut deleted: Vec<String> = xml_sections(&r.text(), "Deleted")
        .iter()
        .flat_map(|d| xml_all(d, "Key"))
        .collect();
    deleted.sort();
    // S3 reports missing keys as deleted too.
    assert_eq!(deleted, vec!["a", "b & c", "does-not-exist"]);
    assert!(r.xml("Error").is_none(), "{}", r.text());

    let r = delete_objects(&app, &delete_doc(&keys[2..], true)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.xml_all("Deleted").is_empty(),
        "quiet mode lists nothing: {}",
        r.text()
    );
    let r = app
        .request("GET", &format!("/{B}?list-type=2"), &[], "")
        .await;
    assert!(r.xml_all("Key").is_empty(), "{}", r.text());
}

#[tokio::test]
async fn delete_objects_limits_and_malformed_xml() {
    let app = app_with_bucket().await;
    app.put_ok(B, "k0", "x").await;
    let keys: Vec<String> = (0..1001).map(|i| format!("k{i}")).collect();
    let r = delete_objects(&app, &delete_doc(&keys, true)).await;
    assert_err(&r, 400, "MalformedXML");
    assert_eq!(app.head(B, "k0").await.status, 200);

    // Exactly 1000 is fine.
    let r = delete_objects(&app, &delete_doc(&keys[..1000], true)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(app.head(B, "k0").await.status, 404);

    for doc in [
        "<Delete><Object><Key>a</Key></Object>",
        "not xml at all",
        "<Delete></Delete>",
    ] {
        let r = delete_objects(&app, doc).await;
        assert_err(&r, 400, "MalformedXML");
    }
}

#[tokio::test]
async fn delete_objects_wrong_content_md5() {
    let app = app_with_bucket().await;
    app.put_ok(B, "keep", "x").await;
    let doc = delete_doc(&["keep".to_string()], false);
    let r = app
        .request(
            "POST",
            &format!("/{B}?delete"),
            &[("content-md5", &md5_b64(b"nope"))],
            doc,
        )
        .await;
    assert_err(&r, 400, "BadDigest");
    assert_eq!(app.head(B, "keep").await.status, 200);
}
