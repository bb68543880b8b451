//! Multipart uploads.

use md5::Digest;

use crate::helpers::*;

const B: &str = "multi";

pub async fn create_upload(
    app: &TestApp,
    bucket: &str,
    key: &str,
    headers: &[(&str, &str)],
) -> String {
    let r = app
        .request(
            "POST",
            &format!("{}?uploads", obj(bucket, key)),
            headers,
            "",
        )
        .await;
    assert_eq!(r.status, 200, "create upload: {}", r.text());
    assert!(r.text().contains("<InitiateMultipartUploadResult"));
    assert_eq!(r.xml("Bucket").as_deref(), Some(bucket));
    assert_eq!(r.xml("Key").as_deref(), Some(key));
    r.xml("UploadId").expect("UploadId")
}

pub async fn upload_part(
    app: &TestApp,
    bucket: &str,
    key: &str,
    id: &str,
    n: u32,
    data: &[u8],
) -> Response {
    app.request(
        "PUT",
        &format!("{}?partNumber={n}&uploadId={}", obj(bucket, key), q(id)),
        &[],
        data.to_vec(),
    )
    .await
}

pub fn complete_doc(parts: &[(u32, String)]) -> String {
    let mut s =
        String::from("<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for (n, etag) in parts {
        s.push_str(&format!(
            "<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
        ));
    }
    s.push_str("</CompleteMultipartUpload>");
    s
}

pub async fn complete(
    app: &TestApp,
    bucket: &str,
    key: &str,
    id: &str,
    parts: &[(u32, String)],
) -> Response {
    app.request(
        "POST",
        &format!("{}?uploadId={}", obj(bucket, key), q(id)),
        &[],
        complete_doc(parts),
    )
    .await
}

/// Uploads `parts` as a multipart object; returns the final ETag.
pub async fn upload_multipart(app: &TestApp, bucket: &str, key: &str, parts: &[Vec<u8>]) -> String {
    let id = create_upload(app, bucket, key, &[]).await;
    let mut done = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let r = upload_part(app, bucket, key, &id, i as u32 + 1, p).await;
        assert_eq!(r.status, 200, "part {}: {}", i + 1, r.text());
        done.push((i as u32 + 1, r.header("etag").unwrap().to_string()));
    }
    let r = complete(app, bucket, key, &id, &done).await;
    assert_eq!(r.status, 200, "complete: {}", r.text());
    r.xml("ETag").unwrap()
}

fn multipart_etag(parts: &[&[u8]]) -> String {
    let mut h = md5::Md5::new();
    for p in parts {
        h.update(md5::Md5::digest(p));
    }
    format!("\"{}-{}\"", hex::encode(h.finalize()), parts.len())
}

async fn setup() -> TestApp {
    let app = spawn_app().await;
    app.create_bucket(B).await;
    app
}

#[tokio::test]
async fn full_multipart_flow() {
    let app = setup().await;
    let key = "big file ü.bin";
    let id = create_upload(
        &app,
        B,
        key,
        &[
            ("content-type", "application/x-test"),
            ("x-amz-meta-kind", "multi"),
        ],
    )
    .await;
    let p1 = bytes(5 * MIB, 11);
    let p2 = bytes(5 * MIB, 12);
    let p3 = bytes(1234, 13);
    let mut etags = Vec::new();
    for (n, p) in [(1u32, &p1), (2, &p2), (3, &p3)] {
        let r = upload_part(&app, B, key, &id, n, p).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("etag"), Some(quoted_md5(p).as_str()));
        etags.push((n, r.header("etag").unwrap().to_string()));
    }
    // Re-uploading a part replaces it.
    let p2b = bytes(5 * MIB, 22);
    let r = upload_part(&app, B, key, &id, 2, &p2b).await;
    assert_eq!(r.status, 200);
    etags[1].1 = r.header("etag").unwrap().to_string();

    let r = app
        .request(
            "GET",
            &format!("{}?uploadId={}", obj(B, key), q(&id)),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("<ListPartsResult"));
    assert_eq!(r.xml_all("PartNumber"), ["1", "2", "3"]);
    let parts = xml_sections(&r.text(), "Part");
    assert_eq!(xml_all(&parts[2], "Size"), ["1234"]);
    assert_eq!(xml_all(&parts[1], "ETag"), [etags[1].1.clone()]);
    assert_eq!(r.xml("UploadId").as_deref(), Some(id.as_str()));

    // Object not visible before completion.
    assert_eq!(app.head(B, key).await.status, 404);

    let r = complete(&app, B, key, &id, &etags).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("<CompleteMultipartUploadResult"));
    let want = multipart_etag(&[&p1, &p2b, &p3]);
    assert_eq!(r.xml("ETag").as_deref(), Some(want.as_str()));
    assert_eq!(r.xml("Key").as_deref(), Some(key));
    assert_eq!(r.xml("Bucket").as_deref(), Some(B));

    let r = app.get(B, key).await;
    assert_eq!(r.status, 200);
    let mut all = p1.clone();
    all.extend_from_slice(&p2b);
    all.extend_from_slice(&p3);
    assert_eq!(r.body.len(), all.len());
    assert!(r.body == all);
    assert_eq!(r.header("etag"), Some(want.as_str()));
    assert_eq!(r.header("content-type"), Some("application/x-test"));
    assert_eq!(r.header("x-amz-meta-kind"), Some("multi"));

    // The upload is gone.
    let r = app
        .request(
            "GET",
            &format!("{}?uploadId={}", obj(B, key), q(&id)),
            &[],
            "",
        )
        .await;
    assert_err(&r, 404, "NoSuchUpload");
    // A range across part boundaries.
    let start = 5 * MIB - 10;
    let r = app
        .request(
            "GET",
            &obj(B, key),
            &[("range", &format!("bytes={start}-{}", start + 19))],
            "",
        )
        .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &all[start..start + 20]);
}

#[tokio::test]
async fn part_number_on_get_and_head() {
    let app = setup().await;
    let p1 = bytes(5 * MIB, 1);
    let p2 = bytes(1000, 2);
    upload_multipart(&app, B, "parts", &[p1.clone(), p2.clone()]).await;
    let total = p1.len() + p2.len();

    let r = app
        .request("GET", &format!("{}?partNumber=1", obj(B, "parts")), &[], "")
        .await;
    assert_eq!(r.status, 206, "{}", r.text());
    assert!(r.body == p1);
    assert_eq!(r.header("x-amz-mp-parts-count"), Some("2"));
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 0-{}/{total}", p1.len() - 1).as_str())
    );

    let r = app
        .request(
            "HEAD",
            &format!("{}?partNumber=2", obj(B, "parts")),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-length"), Some("1000"));
    assert_eq!(r.header("x-amz-mp-parts-count"), Some("2"));
    let r = app
        .request("GET", &format!("{}?partNumber=2", obj(B, "parts")), &[], "")
        .await;
    assert_eq!(r.body, p2);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes {}-{}/{total}", p1.len(), total - 1).as_str())
    );

    let r = app
        .request("GET", &format!("{}?partNumber=3", obj(B, "parts")), &[], "")
        .await;
    assert!(
        r.status == 416 || r.status == 400,
        "{} {}",
        r.status,
        r.text()
    );
    let r = app
        .request("GET", &format!("{}?partNumber=0", obj(B, "parts")), &[], "")
        .await;
    assert_err(&r, 400, "InvalidArgument");
    let r = app
        .request(
            "GET",
            &format!("{}?partNumber=1", obj(B, "parts")),
            &[("range", "bytes=0-1")],
            "",
        )
        .await;
    assert_eq!(r.status, 400, "partNumber with Range: {}", r.text());

    // partNumber=1 on a simple object returns the whole object.
    app.put_ok(B, "simple", "whole").await;
    let r = app
        .request(
            "GET",
            &format!("{}?partNumber=1", obj(B, "simple")),
            &[],
            "",
        )
        .await;
    assert!(r.status == 200 || r.status == 206, "{}", r.status);
    assert_eq!(r.body, b"whole");
}

#[tokio::test]
async fn entity_too_small_except_last() {
    let app = setup().await;
    let id = create_upload(&app, B, "small", &[]).await;
    let mut etags = Vec::new();
    for n in 1..=2 {
        let r = upload_part(&app, B, "small", &id, n, &bytes(100, n as u64)).await;
        assert_eq!(r.status, 200);
        etags.push((n, r.header("etag").unwrap().to_string()));
    }
    let r = complete(&app, B, "small", &id, &etags).await;
    assert_err(&r, 400, "EntityTooSmall");
    assert_eq!(app.head(B, "small").await.status, 404);
    // The upload survives a failed completion, and one small (last) part is fine.
    let r = complete(&app, B, "small", &id, &etags[..1]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(app.get(B, "small").await.body, bytes(100, 1));
}

#[tokio::test]
async fn invalid_part_and_order() {
    let app = setup().await;
    let id = create_upload(&app, B, "k", &[]).await;
    let p1 = bytes(5 * MIB, 1);
    let p2 = bytes(10, 2);
    let e1 = upload_part(&app, B, "k", &id, 1, &p1)
        .await
        .header("etag")
        .unwrap()
        .to_string();
    let e2 = upload_part(&app, B, "k", &id, 2, &p2)
        .await
        .header("etag")
        .unwrap()
        .to_string();

    let bad_etag = "\"00000000000000000000000000000000\"".to_string();
    let r = complete(&app, B, "k", &id, &[(1, e1.clone()), (2, bad_etag)]).await;
    assert_err(&r, 400, "InvalidPart");
    let r = complete(&app, B, "k", &id, &[(1, e1.clone()), (3, e2.clone())]).await;
    assert_err(&r, 400, "InvalidPart");
    let r = complete(&app, B, "k", &id, &[(2, e2.clone()), (1, e1.clone())]).await;
    assert_err(&r, 400, "InvalidPartOrder");
    let r = complete(&app, B, "k", &id, &[(1, e1.clone()), (1, e1.clone())]).await;
    assert!(r.status == 400, "duplicate part number: {}", r.text());
    let r = app
        .request(
            "POST",
            &format!("{}?uploadId={}", obj(B, "k"), q(&id)),
            &[],
            "<CompleteMultipartUpload><Part>",
        )
        .await;
    assert_err(&r, 400, "MalformedXML");
    assert_eq!(app.head(B, "k").await.status, 404);

    // ETags without quotes are accepted, as S3 does.
    let r = complete(
        &app,
        B,
        "k",
        &id,
        &[(1, e1.trim_matches('"').to_string()), (2, e2)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn abort_then_no_such_upload() {
    let app = setup().await;
    let id = create_upload(&app, B, "k", &[]).await;
    let r = upload_part(&app, B, "k", &id, 1, b"data").await;
    let e1 = r.header("etag").unwrap().to_string();
    let r = app
        .request(
            "DELETE",
            &format!("{}?uploadId={}", obj(B, "k"), q(&id)),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let r = upload_part(&app, B, "k", &id, 2, b"more").await;
    assert_err(&r, 404, "NoSuchUpload");
    let r = complete(&app, B, "k", &id, &[(1, e1)]).await;
    assert_err(&r, 404, "NoSuchUpload");
    let r = app
        .request(
            "GET",
            &format!("{}?uploadId={}", obj(B, "k"), q(&id)),
            &[],
            "",
        )
        .await;
    assert_err(&r, 404, "NoSuchUpload");
    let r = app
        .request(
            "DELETE",
            &format!("{}?uploadId={}", obj(B, "k"), q(&id)),
            &[],
            "",
        )
        .await;
    assert_err(&r, 404, "NoSuchUpload");
    // An unknown id on another key.
    let r = upload_part(&app, B, "other", "bogus-upload-id", 1, b"x").await;
    assert_err(&r, 404, "NoSuchUpload");
    assert_eq!(app.head(B, "k").await.status, 404);
}

#[tokio::test]
async fn upload_id_belongs_to_its_key() {
    let app = setup().await;
    let id = create_upload(&app, B, "key-a", &[]).await;
    let r = upload_part(&app, B, "key-b", &id, 1, b"x").await;
    assert_err(&r, 404, "NoSuchUpload");
}

#[tokio::test]
async fn list_multipart_uploads() {
    let app = setup().await;
    let r = app.request("GET", &format!("/{B}?uploads"), &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("<ListMultipartUploadsResult"));
    assert!(r.xml_all("UploadId").is_empty());

    let a = create_upload(&app, B, "dir/a", &[]).await;
    let b = create_upload(&app, B, "dir/b", &[]).await;
    let c = create_upload(&app, B, "top", &[]).await;
    let r = app.request("GET", &format!("/{B}?uploads"), &[], "").await;
    let uploads = xml_sections(&r.text(), "Upload");
    let listed: Vec<(String, String)> = uploads
        .iter()
        .map(|u| {
            (
                xml_all(u, "Key")[0].clone(),
                xml_all(u, "UploadId")[0].clone(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![
            ("dir/a".into(), a.clone()),
            ("dir/b".into(), b.clone()),
            ("top".into(), c.clone())
        ]
    );
    assert!(xml_all(&uploads[0], "Initiated")[0].ends_with('Z'));

    let r = app
        .request("GET", &format!("/{B}?uploads&prefix=dir/"), &[], "")
        .await;
    assert_eq!(r.xml_all("UploadId"), vec![a.clone(), b.clone()]);
    let r = app
        .request("GET", &format!("/{B}?uploads&delimiter=/"), &[], "")
        .await;
    assert_eq!(r.xml_all("UploadId"), vec![c.clone()]);
    let cp: Vec<String> = xml_sections(&r.text(), "CommonPrefixes")
        .iter()
        .flat_map(|s| xml_all(s, "Prefix"))
        .collect();
    assert_eq!(cp, ["dir/"]);

    let r = app
        .request("GET", &format!("/{B}?uploads&max-uploads=1"), &[], "")
        .await;
    assert_eq!(r.xml_all("UploadId"), vec![a.clone()]);
    assert_eq!(r.xml("IsTruncated").as_deref(), Some("true"));
    let nk = r.xml("NextKeyMarker").unwrap();
    let nu = r.xml("NextUploadIdMarker").unwrap();
    let r = app
        .request(
            "GET",
            &format!(
                "/{B}?uploads&key-marker={}&upload-id-marker={}",
                q(&nk),
                q(&nu)
            ),
            &[],
            "",
        )
        .await;
    assert_eq!(r.xml_all("UploadId"), vec![b.clone(), c.clone()]);

    // Aborted uploads disappear.
    app.request(
        "DELETE",
        &format!("{}?uploadId={}", obj(B, "top"), q(&c)),
        &[],
        "",
    )
    .await;
    let r = app.request("GET", &format!("/{B}?uploads"), &[], "").await;
    assert_eq!(r.xml_all("UploadId"), vec![a, b]);
}

#[tokio::test]
async fn upload_part_copy_with_range() {
    let app = setup().await;
    let src = bytes(6 * MIB + 500, 5);
    app.put_ok(B, "source", src.clone()).await;
    let id = create_upload(&app, B, "assembled", &[]).await;
    let split = 5 * MIB;
    let mut etags = Vec::new();
    for (n, (a, b)) in [(1u32, (0, split - 1)), (2, (split, src.len() - 1))] {
        let r = app
            .request(
                "PUT",
                &format!("{}?partNumber={n}&uploadId={}", obj(B, "assembled"), q(&id)),
                &[
                    ("x-amz-copy-source", &format!("/{B}/source")),
                    ("x-amz-copy-source-range", &format!("bytes={a}-{b}")),
                ],
                "",
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.text().contains("<CopyPartResult"), "{}", r.text());
        let etag = r.xml("ETag").unwrap();
        assert_eq!(etag, quoted_md5(&src[a..=b]));
        assert!(r.xml("LastModified").is_some());
        etags.push((n, etag));
    }
    // A whole-object part copy, without a range, also works.
    let r = app
        .request(
            "PUT",
            &format!("{}?partNumber=3&uploadId={}", obj(B, "assembled"), q(&id)),
            &[("x-amz-copy-source", &format!("/{B}/source"))],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Range beyond the source.
    let r = app
        .request(
            "PUT",
            &format!("{}?partNumber=4&uploadId={}", obj(B, "assembled"), q(&id)),
            &[
                ("x-amz-copy-source", &format!("/{B}/source")),
                ("x-amz-copy-source-range", &format!("bytes=0-{}", src.len())),
            ],
            "",
        )
        .await;
    assert!(r.status == 400 || r.status == 416, "{}", r.text());

    let r = complete(&app, B, "assembled", &id, &etags).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = app.get(B, "assembled").await;
    assert!(r.body == src);
}

#[tokio::test]
async fn part_number_out_of_range() {
    let app = setup().await;
    let id = create_upload(&app, B, "k", &[]).await;
    for n in [0u32, 10001] {
        let r = upload_part(&app, B, "k", &id, n, b"x").await;
        assert_err(&r, 400, "InvalidArgument");
    }
}

#[tokio::test]
async fn upload_part_copy_range_beyond_source_is_invalid_argument() {
    let app = setup().await;
    app.put_ok(B, "source", bytes(1000, 1)).await;
    let id = create_upload(&app, B, "k", &[]).await;
    let r = app
        .request(
            "PUT",
            &format!("{}?partNumber=1&uploadId={}", obj(B, "k"), q(&id)),
            &[
                ("x-amz-copy-source", &format!("/{B}/source")),
                ("x-amz-copy-source-range", "bytes=0-1000"),
            ],
            "",
        )
        .await;
    assert_err(&r, 400, "InvalidArgument");
}

fn b64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn crc32_b64(b: &[u8]) -> String {
    b64(&crc32fast::hash(b).to_be_bytes())
}

fn crc64nvme_b64(b: &[u8]) -> String {
    let mut d = crc64fast_nvme::Digest::new();
    d.write(b);
    b64(&d.sum64().to_be_bytes())
}

async fn upload_checked_part(
    app: &TestApp,
    key: &str,
    id: &str,
    n: u32,
    data: &[u8],
    header: &str,
    value: &str,
) -> Response {
    app.request(
        "PUT",
        &format!("{}?partNumber={n}&uploadId={}", obj(B, key), q(id)),
        &[(header, value)],
        data.to_vec(),
    )
    .await
}

fn complete_doc_with(parts: &[(u32, String, String)], element: &str) -> String {
    let mut s = String::from("<CompleteMultipartUpload>");
    for (n, etag, ck) in parts {
        s.push_str(&format!(
            "<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag><{element}>{ck}</{element}></Part>"
        ));
    }
    s.push_str("</CompleteMultipartUpload>");
    s
}

#[tokio::test]
async fn composite_crc32_multipart_checksum() {
    let app = setup().await;
    let key = "ck-composite";
    let id = create_upload(&app, B, key, &[("x-amz-checksum-algorithm", "CRC32")]).await;
    let p1 = bytes(5 * MIB, 31);
    let p2 = bytes(777, 32);
    let mut parts = Vec::new();
    let mut raw = Vec::new();
    for (n, p) in [(1u32, &p1), (2, &p2)] {
        let ck = crc32_b64(p);
        let r = upload_checked_part(&app, key, &id, n, p, "x-amz-checksum-crc32", &ck).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-amz-checksum-crc32"), Some(ck.as_str()));
        raw.extend_from_slice(&crc32fast::hash(p).to_be_bytes());
        parts.push((n, r.header("etag").unwrap().to_string(), ck));
    }
    // A part with a wrong checksum is refused.
    let r = upload_checked_part(
        &app,
        key,
        &id,
        3,
        b"xyz",
        "x-amz-checksum-crc32",
        "AAAAAA==",
    )
    .await;
    assert_err(&r, 400, "BadDigest");

    let r = app
        .request(
            "GET",
            &format!("{}?uploadId={}", obj(B, key), q(&id)),
            &[],
            "",
        )
        .await;
    assert_eq!(
        r.xml_all("ChecksumCRC32"),
        [parts[0].2.clone(), parts[1].2.clone()]
    );
    assert_eq!(
        r.xml_all("PartNumber"),
        ["1", "2"],
        "part 3 was not recorded"
    );

    let r = app
        .request(
            "POST",
            &format!("{}?uploadId={}", obj(B, key), q(&id)),
            &[],
            complete_doc_with(&parts, "ChecksumCRC32"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let want = format!("{}-2", crc32_b64(&raw));
    assert_eq!(
        r.xml("ChecksumCRC32").as_deref(),
        Some(want.as_str()),
        "{}",
        r.text()
    );
    let r = app
        .request(
            "HEAD",
            &obj(B, key),
            &[("x-amz-checksum-mode", "ENABLED")],
            "",
        )
        .await;
    assert_eq!(r.header("x-amz-checksum-crc32"), Some(want.as_str()));
    assert_eq!(r.header("x-amz-checksum-type"), Some("COMPOSITE"));
}

#[tokio::test]
async fn complete_with_wrong_part_checksum_is_refused() {
    let app = setup().await;
    let key = "ck-wrong";
    let id = create_upload(&app, B, key, &[("x-amz-checksum-algorithm", "CRC32")]).await;
    let p1 = bytes(100, 1);
    let ck = crc32_b64(&p1);
    let r = upload_checked_part(&app, key, &id, 1, &p1, "x-amz-checksum-crc32", &ck).await;
    let etag = r.header("etag").unwrap().to_string();
    let r = app
        .request(
            "POST",
            &format!("{}?uploadId={}", obj(B, key), q(&id)),
            &[],
            complete_doc_with(&[(1, etag, "AAAAAA==".into())], "ChecksumCRC32"),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        matches!(r.code().as_deref(), Some("InvalidPart") | Some("BadDigest")),
        "{}",
        r.text()
    );
    assert_eq!(app.head(B, key).await.status, 404);
}

#[tokio::test]
async fn full_object_crc64nvme_multipart_checksum() {
    let app = setup().await;
    let key = "ck-full";
    let id = create_upload(
        &app,
        B,
        key,
        &[
            ("x-amz-checksum-algorithm", "CRC64NVME"),
            ("x-amz-checksum-type", "FULL_OBJECT"),
        ],
    )
    .await;
    let p1 = bytes(5 * MIB, 41);
    let p2 = bytes(4321, 42);
    let mut parts = Vec::new();
    for (n, p) in [(1u32, &p1), (2, &p2)] {
        let ck = crc64nvme_b64(p);
        let r = upload_checked_part(&app, key, &id, n, p, "x-amz-checksum-crc64nvme", &ck).await;
        assert_eq!(r.status, 200, "{}", r.text());
        parts.push((n, r.header("etag").unwrap().to_string(), ck));
    }
    let mut all = p1.clone();
    all.extend_from_slice(&p2);
    let whole = crc64nvme_b64(&all);
    let r = app
        .request(
            "POST",
            &format!("{}?uploadId={}", obj(B, key), q(&id)),
            &[],
            complete_doc_with(&parts, "ChecksumCRC64NVME"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.xml("ChecksumCRC64NVME").as_deref(),
        Some(whole.as_str()),
        "{}",
        r.text()
    );
    let r = app
        .request(
            "HEAD",
            &obj(B, key),
            &[("x-amz-checksum-mode", "ENABLED")],
            "",
        )
        .await;
    assert_eq!(r.header("x-amz-checksum-crc64nvme"), Some(whole.as_str()));
    assert_eq!(r.header("x-amz-checksum-type"), Some("FULL_OBJECT"));
}

#[tokio::test]
async fn full_object_type_chosen_at_create_is_kept() {
    // S3: the checksum type is chosen by CreateMultipartUpload (x-amz-checksum-type);
    // CompleteMultipartUpload need not repeat it.
    let app = setup().await;
    let key = "ck-full-crc32";
    let r = app
        .request(
            "POST",
            &format!("{}?uploads", obj(B, key)),
            &[
                ("x-amz-checksum-algorithm", "CRC32"),
                ("x-amz-checksum-type", "FULL_OBJECT"),
            ],
            "",
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("x-amz-checksum-type"),
        Some("FULL_OBJECT"),
        "CreateMultipartUpload response"
    );
    let id = r.xml("UploadId").unwrap();
    let p1 = bytes(5 * MIB, 51);
    let p2 = bytes(99, 52);
    let mut parts = Vec::new();
    for (n, p) in [(1u32, &p1), (2, &p2)] {
        let ck = crc32_b64(p);
        let r = upload_checked_part(&app, key, &id, n, p, "x-amz-checksum-crc32", &ck).await;
        assert_eq!(r.status, 200, "{}", r.text());
        parts.push((n, r.header("etag").unwrap().to_string(), ck));
    }
    let mut all = p1.clone();
    all.extend_from_slice(&p2);
    let r = app
        .request(
            "POST",
            &format!("{}?uploadId={}", obj(B, key), q(&id)),
            &[],
            complete_doc_with(&parts, "ChecksumCRC32"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = app
        .request(
            "HEAD",
            &obj(B, key),
            &[("x-amz-checksum-mode", "ENABLED")],
            "",
        )
        .await;
    assert_eq!(r.header("x-amz-checksum-type"), Some("FULL_OBJECT"));
    assert_eq!(
        r.header("x-amz-checksum-crc32"),
        Some(crc32_b64(&all).as_str())
    );
}

#[tokio::test]
async fn parts_with_gaps_and_list_parts_paging() {
    let app = setup().await;
    let id = create_upload(&app, B, "gaps", &[]).await;
    let p1 = bytes(5 * MIB, 61);
    let p3 = bytes(5 * MIB, 63);
    let p7 = bytes(10, 67);
    let mut etags = Vec::new();
    for (n, p) in [(1u32, &p1), (3, &p3), (7, &p7)] {
        let r = upload_part(&app, B, "gaps", &id, n, p).await;
        etags.push((n, r.header("etag").unwrap().to_string()));
    }
    let path = format!("{}?uploadId={}", obj(B, "gaps"), q(&id));
    let r = app
        .request("GET", &format!("{path}&max-parts=2"), &[], "")
        .await;
    assert_eq!(r.xml_all("PartNumber"), ["1", "3"]);
    assert_eq!(r.xml("IsTruncated").as_deref(), Some("true"));
    assert_eq!(r.xml("NextPartNumberMarker").as_deref(), Some("3"));
    let r = app
        .request("GET", &format!("{path}&part-number-marker=3"), &[], "")
        .await;
    assert_eq!(r.xml_all("PartNumber"), ["7"]);
    assert_eq!(r.xml("IsTruncated").as_deref(), Some("false"));

    let r = complete(&app, B, "gaps", &id, &etags).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.xml("ETag").unwrap(), multipart_etag(&[&p1, &p3, &p7]));
    let mut all = p1;
    all.extend_from_slice(&p3);
    all.extend_from_slice(&p7);
    assert!(app.get(B, "gaps").await.body == all);
}

#[tokio::test]
async fn complete_honours_if_none_match() {
    let app = setup().await;
    app.put_ok(B, "exists", "old").await;
    let id = create_upload(&app, B, "exists", &[]).await;
    let r = upload_part(&app, B, "exists", &id, 1, b"new").await;
    let etag = r.header("etag").unwrap().to_string();
    let r = app
        .request(
            "POST",
            &format!("{}?uploadId={}", obj(B, "exists"), q(&id)),
            &[("if-none-match", "*")],
            complete_doc(&[(1, etag)]),
        )
        .await;
    assert_err(&r, 412, "PreconditionFailed");
    assert_eq!(app.get(B, "exists").await.body, b"old");
}

#[tokio::test]
async fn full_object_crc32_when_complete_says_so() {
    let app = setup().await;
    let key = "ck-full-on-complete";
    let id = create_upload(&app, B, key, &[("x-amz-checksum-algorithm", "CRC32")]).await;
    let p1 = bytes(5 * MIB, 71);
    let p2 = bytes(1234, 72);
    let mut parts = Vec::new();
    for (n, p) in [(1u32, &p1), (2, &p2)] {
        let ck = crc32_b64(p);
        let r = upload_checked_part(&app, key, &id, n, p, "x-amz-checksum-crc32", &ck).await;
        assert_eq!(r.status, 200, "{}", r.text());
        parts.push((n, r.header("etag").unwrap().to_string(), ck));
    }
    let mut all = p1.clone();
    all.extend_from_slice(&p2);
    let r = app
        .request(
            "POST",
            &format!("{}?uploadId={}", obj(B, key), q(&id)),
            &[("x-amz-checksum-type", "FULL_OBJECT")],
            complete_doc_with(&parts, "ChecksumCRC32"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.xml("ChecksumCRC32"),
        Some(crc32_b64(&all)),
        "{}",
        r.text()
    );
    let r = app
        .request(
            "GET",
            &obj(B, key),
            &[("x-amz-checksum-mode", "ENABLED")],
            "",
        )
        .await;
    assert_eq!(r.header("x-amz-checksum-type"), Some("FULL_OBJECT"));
    assert_eq!(
        r.header("x-amz-checksum-crc32"),
        Some(crc32_b64(&all).as_str())
    );
    assert!(r.body == all);
}
