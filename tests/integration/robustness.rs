//! Malformed and interrupted requests, restarts and shutdown.

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::helpers::*;

const B: &str = "robust";

#[tokio::test]
async fn truncated_body_leaves_nothing() {
    let app = spawn_app().await;
    app.create_bucket(B).await;
    for payload in [
        Payload::Unsigned,
        Payload::Precomputed(sha256_hex(&[7u8; 1000])),
    ] {
        let req = app
            .req("PUT", &obj(B, "truncated"))
            .payload(payload)
            .content_length("1000");
        let head = req.head_bytes();
        let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        s.write_all(&head).await.unwrap();
        s.write_all(&[7u8; 10]).await.unwrap();
        s.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.head(B, "truncated").await.status, 404);
    assert!(
        eventually(10, || app.tmp_files().is_empty()).await,
        "tmp not cleaned: {:?}",
        app.tmp_files()
    );
    // The server still works.
    app.put_ok(B, "after", "fine").await;
}

#[tokio::test]
async fn truncated_chunked_upload_leaves_nothing() {
    let app = spawn_app().await;
    app.create_bucket(B).await;
    let data = bytes(50_000, 9);
    let mut body = Vec::new();
    body.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    body.extend_from_slice(&data[..20_000]);
    let req = app
        .req("PUT", &obj(B, "cut"))
        .payload(Payload::Precomputed(
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER".into(),
        ))
        .header("content-encoding", "aws-chunked")
        .header("x-amz-decoded-content-length", data.len().to_string())
        .content_length(&(body.len() + 40_000).to_string());
    let head = req.head_bytes();
    let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    s.write_all(&head).await.unwrap();
    s.write_all(&body).await.unwrap();
    s.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(s);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.head(B, "cut").await.status, 404);
    assert!(
        eventually(10, || app.tmp_files().is_empty()).await,
        "tmp not cleaned: {:?}",
        app.tmp_files()
    );
}

/// A client may close its sending side once its request is out (`nc -N`, HTTP/1.0
/// habits). Before `half_close`, hyper read that end of stream while the request was
/// in flight and dropped the connection unanswered, about every other time.
#[tokio::test]
async fn a_client_that_half_closes_still_gets_its_answer() {
    use tokio::io::AsyncReadExt;
    let app = spawn_app().await;
    app.create_bucket(B).await;
    app.put_ok(B, "half", "closed").await;
    for attempt in 0..20 {
        let head = app.req("GET", &obj(B, "half")).head_bytes();
        let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        s.write_all(&head).await.unwrap();
        s.shutdown().await.unwrap();
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
            .await
            .expect("answer in time")
            .expect("read");
        assert!(
            !buf.is_empty(),
            "attempt {attempt}: closed without an answer"
        );
        let r = parse_response(&buf, false);
        assert_eq!(
            (r.status, r.text()),
            (200, "closed".to_string()),
            "attempt {attempt}"
        );
    }
}

#[tokio::test]
async fn garbage_content_length_is_400() {
    let app = spawn_app().await;
    app.create_bucket(B).await;
    for cl in ["abc", "-1", "1e3", "12 34"] {
        let req = app.req("PUT", &obj(B, "garbage")).content_length(cl);
        let r = exchange(app.addr, req.head_bytes(), b"hello".to_vec(), false).await;
        assert_eq!(r.status, 400, "Content-Length {cl:?}: {}", r.text());
    }
    assert_eq!(app.head(B, "garbage").await.status, 404);
}

#[tokio::test]
async fn malformed_http_does_not_kill_the_server() {
    let app = spawn_app().await;
    app.create_bucket(B).await;
    for raw in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Without Colon\r\nConnection: close\r\n\r\n",
        b"PUT /robust/k HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n",
    ] {
        let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        let _ = s.write_all(raw).await;
        let _ = s.flush().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(s);
    }
    // A path that is not valid UTF-8 once decoded.
    let r = app.request("GET", "/robust/%FF%FE", &[], "").await;
    assert!(
        r.status == 400 || r.status == 403,
        "{} {}",
        r.status,
        r.text()
    );
    assert_eq!(app.request("GET", "/", &[], "").await.status, 200);
    assert_eq!(app.head(B, "k").await.status, 404);
}

#[tokio::test]
async fn restart_keeps_everything() {
    let app = spawn_app().await;
    app.create_bucket(B).await;
    app.create_bucket("second").await;
    let keys = ["plain", "with space/ü", "../x", "dir/", "empty"];
    let mut etags = Vec::new();
    for k in keys {
        let body = if k == "empty" {
            Vec::new()
        } else {
            format!("data of {k}").into_bytes()
        };
        let r = app
            .request(
                "PUT",
                &obj(B, k),
                &[
                    ("x-amz-meta-k", "v"),
                    ("content-type", "text/x-test"),
                    ("x-amz-tagging", "a=b"),
                ],
                body,
            )
            .await;
        assert_eq!(r.status, 200);
        etags.push(r.header("etag").unwrap().to_string());
    }
    let p1 = bytes(5 * MIB, 1);
    let p2 = bytes(100, 2);
    let mp_etag =
        crate::multipart::upload_multipart(&app, B, "multi", &[p1.clone(), p2.clone()]).await;
    let pending = crate::multipart::create_upload(&app, B, "pending", &[]).await;
    crate::multipart::upload_part(&app, B, "pending", &pending, 1, b"part").await;
    app.put_ok(B, "deleted", "x").await;
    app.request("DELETE", &obj(B, "deleted"), &[], "").await;

    let app = app.restart();
    let r = app.request("GET", "/", &[], "").await;
    let names = r.xml_all("Name");
    assert!(
        names.contains(&B.to_string()) && names.contains(&"second".to_string()),
        "{names:?}"
    );
    for (k, etag) in keys.iter().zip(&etags) {
        let r = app.get(B, k).await;
        assert_eq!(r.status, 200, "{k}");
        let want = if *k == "empty" {
            Vec::new()
        } else {
            format!("data of {k}").into_bytes()
        };
        assert_eq!(r.body, want);
        assert_eq!(r.header("etag"), Some(etag.as_str()));
        assert_eq!(r.header("x-amz-meta-k"), Some("v"));
        assert_eq!(r.header("content-type"), Some("text/x-test"));
        assert_eq!(r.header("x-amz-tagging-count"), Some("1"));
    }
    let r = app.get(B, "multi").await;
    let mut all = p1;
    all.extend_from_slice(&p2);
    assert!(r.body == all);
    assert_eq!(r.header("etag"), Some(mp_etag.as_str()));
    assert_eq!(app.head(B, "deleted").await.status, 404);
    let r = app
        .request(
            "GET",
            &format!("{}?uploadId={}", obj(B, "pending"), q(&pending)),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.xml_all("PartNumber"), ["1"]);
    assert!(app.tmp_files().is_empty());
}

#[tokio::test]
async fn sigterm_stops_gracefully_and_data_survives() {
    let mut app = spawn_app().await;
    app.create_bucket(B).await;
    app.put_ok(B, "k", "v").await;
    let status = app.terminate();
    assert!(status.success(), "exit status {status:?}");
    let app = app.restart();
    assert_eq!(app.get(B, "k").await.body, b"v");
}
