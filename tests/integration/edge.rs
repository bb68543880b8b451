//! Edge cases: addressing styles, versionId=null, 100-continue, concurrency, leaks.

use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

const B: &str = "edge";

async fn setup() -> TestApp {
    let app = spawn_app().await;
    app.create_bucket(B).await;
    app
}

fn blob_files(app: &TestApp) -> usize {
    list_dir(&app.data_path().join("blobs"))
        .iter()
        .map(|d| list_dir(d).len())
        .sum()
}

#[tokio::test]
async fn dot_segment_keys() {
    let app = setup().await;
    for key in ["..", ".", "a/./b", "a/../b", "./", "../"] {
        app.put_ok(B, key, key).await;
    }
    for key in ["..", ".", "a/./b", "a/../b", "./", "../"] {
        let r = app.get(B, key).await;
        assert_eq!(r.status, 200, "{key}");
        assert_eq!(r.body, key.as_bytes(), "{key}");
    }
    let r = app
        .request("GET", &format!("/{B}?list-type=2"), &[], "")
        .await;
    assert_eq!(r.xml_all("Key").len(), 6, "{}", r.text());
}

#[tokio::test]
async fn version_id_null_addresses_the_current_object() {
    // On an unversioned bucket S3 serves versionId=null as the current object, and
    // ListObjectVersions hands out VersionId null, so clients send it back.
    let app = setup().await;
    app.put_ok(B, "v", "current").await;
    let r = app
        .request("GET", &format!("{}?versionId=null", obj(B, "v")), &[], "")
        .await;
    assert_eq!(r.status, 200, "GET versionId=null: {}", r.text());
    assert_eq!(r.body, b"current");
    let r = app
        .request("HEAD", &format!("{}?versionId=null", obj(B, "v")), &[], "")
        .await;
    assert_eq!(r.status, 200, "HEAD versionId=null");
    let r = app
        .request(
            "DELETE",
            &format!("{}?versionId=null", obj(B, "v")),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 204, "DELETE versionId=null: {}", r.text());
    assert_eq!(app.head(B, "v").await.status, 404);
}

#[tokio::test]
async fn copy_source_version_null_and_delete_objects_version_null() {
    let app = setup().await;
    app.put_ok(B, "src", "data").await;
    let r = app
        .request(
            "PUT",
            &obj(B, "dst"),
            &[("x-amz-copy-source", &format!("/{B}/src?versionId=null"))],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let doc = "<Delete><Object><Key>src</Key><VersionId>null</VersionId></Object><Object><Key>dst</Key><VersionId>3HL4kqtJlcpXroDTDmJ</VersionId></Object></Delete>";
    let r = app
        .request(
            "POST",
            &format!("/{B}?delete"),
            &[("content-md5", &md5_b64(doc.as_bytes()))],
            doc,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(app.head(B, "src").await.status, 404);
    // An unknown version is reported as an error entry, the object stays.
    assert_eq!(xml_sections(&r.text(), "Error").len(), 1, "{}", r.text());
    assert_eq!(app.head(B, "dst").await.status, 200);
}

#[tokio::test]
async fn expect_100_continue() {
    let app = setup().await;
    let body = bytes(100_000, 3);
    let req = app
        .req("PUT", &obj(B, "expect"))
        .header("expect", "100-continue")
        .body(body.clone());
    let head = req.head_bytes();
    let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    s.write_all(&head).await.unwrap();
    // Wait for the interim response before sending the body, like curl and aws-cli.
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("no 100 Continue")
        .unwrap();
    let interim = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    s.write_all(&body).await.unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await.unwrap();
    let r = parse_response(&rest, false);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(app.get(B, "expect").await.body == body);

    // A request refused up front answers without waiting for the body.
    let req = app
        .req("PUT", &obj("no-such-bucket", "expect"))
        .header("expect", "100-continue")
        .body(body.clone());
    let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    s.write_all(&req.head_bytes()).await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got)).await;
    let text = String::from_utf8_lossy(&got).to_string();
    assert!(
        text.contains("404") && text.contains("NoSuchBucket"),
        "{text}"
    );
}

#[tokio::test]
async fn concurrent_overwrites_never_mix() {
    let app = setup().await;
    let bodies: Vec<Vec<u8>> = (0..8).map(|i| bytes(512 * 1024, 100 + i)).collect();
    let writers = futures_util::stream::iter(bodies.clone())
        .map(|b| {
            let app = &app;
            async move {
                let r = app.put(B, "hot", b).await;
                assert_eq!(r.status, 200, "{}", r.text());
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>();
    let readers = async {
        for _ in 0..20 {
            let r = app.get(B, "hot").await;
            if r.status == 200 {
                let etag = r.header("etag").unwrap().to_string();
                assert_eq!(etag, quoted_md5(&r.body), "body and ETag disagree");
                assert!(bodies.contains(&r.body), "mixed body");
            } else {
                assert_eq!(r.status, 404);
            }
        }
    };
    tokio::join!(writers, readers);
    let r = app.get(B, "hot").await;
    assert!(bodies.contains(&r.body));
    assert_eq!(r.header("etag"), Some(quoted_md5(&r.body).as_str()));
}

#[tokio::test]
async fn concurrent_create_bucket() {
    let app = spawn_app().await;
    let (a, b) = tokio::join!(
        app.request("PUT", "/racy", &[], ""),
        app.request("PUT", "/racy", &[], "")
    );
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [200, 409]);
}

#[tokio::test]
async fn no_blob_leaks_after_overwrite_delete_and_abort() {
    let app = setup().await;
    for i in 0..5 {
        app.put_ok(B, &format!("k{i}"), bytes(1000, i)).await;
        app.put_ok(B, &format!("k{i}"), bytes(2000, i + 10)).await;
    }
    app.put_ok(B, "copy-src", "abc").await;
    let r = app
        .request(
            "PUT",
            &obj(B, "copy-dst"),
            &[("x-amz-copy-source", &format!("/{B}/copy-src"))],
            "",
        )
        .await;
    assert_eq!(r.status, 200);
    let id = crate::multipart::create_upload(&app, B, "mp", &[]).await;
    crate::multipart::upload_part(&app, B, "mp", &id, 1, b"part one").await;
    crate::multipart::upload_part(&app, B, "mp", &id, 1, b"part one again").await;
    crate::multipart::upload_part(&app, B, "mp", &id, 2, b"part two").await;
    assert!(blob_files(&app) > 0);
    app.request(
        "DELETE",
        &format!("{}?uploadId={}", obj(B, "mp"), q(&id)),
        &[],
        "",
    )
    .await;
    let mut keys: Vec<String> = (0..5).map(|i| format!("k{i}")).collect();
    keys.push("copy-src".into());
    keys.push("copy-dst".into());
    for k in &keys {
        let r = app.request("DELETE", &obj(B, k), &[], "").await;
        assert_eq!(r.status, 204);
    }
    assert!(
        eventually(10, || blob_files(&app) == 0).await,
        "{} blob files left after everything was deleted",
        blob_files(&app)
    );
    // The same after a restart.
    let app = app.restart();
    assert_eq!(blob_files(&app), 0);
    assert!(app.tmp_files().is_empty());
}

#[tokio::test]
async fn kill_during_upload_then_restart_cleans_up() {
    let app = setup().await;
    app.put_ok(B, "kept", "kept").await;
    let req = app
        .req("PUT", &obj(B, "in-flight"))
        .payload(Payload::Unsigned)
        .content_length("10000000");
    let head = req.head_bytes();
    let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    s.write_all(&head).await.unwrap();
    s.write_all(&bytes(3_000_000, 1)).await.unwrap();
    s.flush().await.unwrap();
    // Let the server stream some of it to a staging file.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let app = app.restart();
    drop(s);
    assert!(
        app.tmp_files().is_empty(),
        "tmp after restart: {:?}",
        app.tmp_files()
    );
    assert_eq!(app.head(B, "in-flight").await.status, 404);
    assert_eq!(app.get(B, "kept").await.body, b"kept");
    // "kept" is small, so its bytes live in the database: no blob file at all.
    assert_eq!(blob_files(&app), 0);
}

#[tokio::test]
async fn small_objects_live_inline_and_trade_places_with_blobs() {
    let app = setup().await;
    app.put_ok(B, "k", "small").await;
    assert_eq!(blob_files(&app), 0, "a small object needs no blob file");
    let big = "x".repeat(40_000);
    app.put_ok(B, "k", big.as_str()).await;
    assert_eq!(app.get(B, "k").await.body, big.as_bytes());
    assert_eq!(blob_files(&app), 1);
    app.put_ok(B, "k", "again").await;
    assert_eq!(app.get(B, "k").await.body, b"again");
    assert!(
        eventually(10, || blob_files(&app) == 0).await,
        "the big blob is freed"
    );
    let r = app
        .request("GET", &obj(B, "k"), &[("range", "bytes=1-3")], "")
        .await;
    assert_eq!((r.status, r.body.as_slice()), (206, &b"gai"[..]));
    let r = app
        .request(
            "PUT",
            &obj(B, "k2"),
            &[("x-amz-copy-source", &format!("/{B}/k"))],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(app.get(B, "k2").await.body, b"again");
    // Inline bytes survive a restart, and go with their object.
    let app = app.restart();
    assert_eq!(app.get(B, "k").await.body, b"again");
    assert_eq!(
        app.request("DELETE", &obj(B, "k"), &[], "").await.status,
        204
    );
    assert_eq!(app.get(B, "k").await.status, 404);
    assert_eq!(app.get(B, "k2").await.body, b"again");
    app.put_ok(B, "k", "").await;
    assert_eq!(app.get(B, "k").await.body, b"");
}

#[tokio::test]
async fn delimiters_other_than_slash() {
    let app = setup().await;
    for k in [
        "2024-01-a",
        "2024-01-b",
        "2024-02-a",
        "2025",
        "x|y|z",
        "x|w",
    ] {
        app.put_ok(B, k, "x").await;
    }
    let list = |query: String| {
        let app = &app;
        async move {
            let r = app
                .request("GET", &format!("/{B}?list-type=2&{query}"), &[], "")
                .await;
            assert_eq!(r.status, 200, "{}", r.text());
            let keys: Vec<String> = xml_sections(&r.text(), "Contents")
                .iter()
                .flat_map(|c| xml_all(c, "Key"))
                .collect();
            let prefixes: Vec<String> = xml_sections(&r.text(), "CommonPrefixes")
                .iter()
                .flat_map(|c| xml_all(c, "Prefix"))
                .collect();
            (keys, prefixes)
        }
    };
    let (k, p) = list(format!("delimiter={}", q("-"))).await;
    assert_eq!(k, ["2025", "x|w", "x|y|z"]);
    assert_eq!(p, ["2024-"]);
    let (k, p) = list(format!("delimiter={}&prefix={}", q("-"), q("2024-"))).await;
    assert!(k.is_empty());
    assert_eq!(p, ["2024-01-", "2024-02-"]);
    let (k, p) = list(format!("delimiter={}", q("|"))).await;
    assert_eq!(p, ["x|"]);
    assert_eq!(k.len(), 4);
    // Multi-character delimiter.
    let (k, p) = list(format!("delimiter={}", q("01-"))).await;
    assert_eq!(p, ["2024-01-"]);
    assert_eq!(k, ["2024-02-a", "2025", "x|w", "x|y|z"]);
    // Prefix that does not end with the delimiter.
    let (k, p) = list(format!("delimiter={}&prefix={}", q("-"), q("2024-0"))).await;
    assert!(k.is_empty());
    assert_eq!(p, ["2024-01-", "2024-02-"]);
}

#[tokio::test]
async fn signed_queries_with_special_characters() {
    let app = setup().await;
    for k in ["sp ace/a+b=c&d", "sp ace/ü", "other"] {
        app.put_ok(B, k, "x").await;
    }
    let r = app
        .request(
            "GET",
            &format!("/{B}?list-type=2&prefix={}", q("sp ace/a+b=c&")),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.xml_all("Key"), ["sp ace/a+b=c&d"]);
    let r = app
        .request(
            "GET",
            &format!("/{B}?list-type=2&start-after={}", q("sp ace/a+b=c&d")),
            &[],
            "",
        )
        .await;
    assert_eq!(r.xml_all("Key"), ["sp ace/ü"]);
}

#[tokio::test]
async fn presigned_url_for_odd_key() {
    let app = setup().await;
    let key = "dir with space/ü+%.txt";
    app.put_ok(B, key, "odd").await;
    let url = app.presign("GET", &obj(B, key), 300, SystemTime::now());
    let path = url
        .strip_prefix(&format!("http://{}", app.addr))
        .unwrap()
        .to_string();
    let r = app.req("GET", &path).anonymous().send().await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, b"odd");
}

#[tokio::test]
async fn copy_object_honours_if_none_match() {
    let app = setup().await;
    app.put_ok(B, "src", "new").await;
    app.put_ok(B, "dst", "old").await;
    let r = app
        .request(
            "PUT",
            &obj(B, "dst"),
            &[
                ("x-amz-copy-source", &format!("/{B}/src")),
                ("if-none-match", "*"),
            ],
            "",
        )
        .await;
    assert_err(&r, 412, "PreconditionFailed");
    assert_eq!(app.get(B, "dst").await.body, b"old");
}

#[tokio::test]
async fn virtual_host_addressing() {
    let app = spawn_app_with_config("[s3]\ndomain = \"s3.tarn.test\"\n").await;
    let host = format!("vhost-bucket.s3.tarn.test:{}", app.addr.port());
    let r = app
        .req("PUT", "/")
        .header("host", host.clone())
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = app
        .req("PUT", "/some/key.txt")
        .header("host", host.clone())
        .body("via vhost")
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Path-style sees the same object.
    assert_eq!(
        app.get("vhost-bucket", "some/key.txt").await.body,
        b"via vhost"
    );
    let r = app
        .req("GET", "/?list-type=2")
        .header("host", host.clone())
        .send()
        .await;
    assert_eq!(r.xml_all("Key"), ["some/key.txt"]);
    // Bucket names with dots work too.
    let host2 = format!("dotted.name.s3.tarn.test:{}", app.addr.port());
    let r = app
        .req("PUT", "/")
        .header("host", host2.clone())
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = app.request("GET", "/", &[], "").await;
    let names = r.xml_all("Name");
    assert!(names.contains(&"dotted.name".to_string()), "{names:?}");
    assert!(names.contains(&"vhost-bucket".to_string()), "{names:?}");
}
