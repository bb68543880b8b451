//! CreateBucket, DeleteBucket, HeadBucket, ListBuckets, GetBucketLocation.

use crate::helpers::*;

#[tokio::test]
async fn create_bucket_without_and_with_location_constraint() {
    let app = spawn_app().await;
    let r = app.request("PUT", "/plain-bucket", &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("location"), Some("/plain-bucket"));
    assert!(r.header("x-amz-request-id").is_some());

    let body = format!(
        "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
         <LocationConstraint>{REGION}</LocationConstraint></CreateBucketConfiguration>"
    );
    let r = app.request("PUT", "/located-bucket", &[], body).await;
    assert_eq!(r.status, 200, "{}", r.text());

    // An empty configuration document is accepted too.
    let r = app
        .request("PUT", "/empty-conf", &[], "<CreateBucketConfiguration/>")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());

    for b in ["plain-bucket", "located-bucket", "empty-conf"] {
        let r = app.request("HEAD", &format!("/{b}"), &[], "").await;
        assert_eq!(r.status, 200, "{b}");
        assert_eq!(r.header("x-amz-bucket-region"), Some(REGION));
    }
}

#[tokio::test]
async fn create_bucket_with_malformed_configuration_is_refused() {
    let app = spawn_app().await;
    let r = app
        .request("PUT", "/bad-conf", &[], "<CreateBucketConfiguration><Loc")
        .await;
    assert_err(&r, 400, "MalformedXML");
    let r = app.request("HEAD", "/bad-conf", &[], "").await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn create_bucket_in_another_region_is_refused() {
    let app = spawn_app().await;
    let body = "<CreateBucketConfiguration><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>";
    let r = app.request("PUT", "/elsewhere", &[], body).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = app.request("HEAD", "/elsewhere", &[], "").await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn invalid_bucket_names() {
    let app = spawn_app().await;
    let long = "a".repeat(64);
    for name in [
        "ab",
        "UPPERCASE",
        "under_score",
        "-leading",
        "trailing-",
        ".dot",
        "dot.",
        "a..b",
        "192.168.1.1",
        "xn--punycode",
        long.as_str(),
    ] {
        let r = app.request("PUT", &format!("/{name}"), &[], "").await;
        assert_err(&r, 400, "InvalidBucketName");
    }
    // 63 characters is fine.
    let ok = "a".repeat(63);
    let r = app.request("PUT", &format!("/{ok}"), &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = app.request("GET", "/", &[], "").await;
    let names = r.xml_all("Name");
    assert!(names.contains(&ok), "{names:?}");
    assert!(
        !names.iter().any(|n| n.len() != 63 && n.starts_with('a')),
        "{names:?}"
    );
}

#[tokio::test]
async fn reserved_bucket_name_api() {
    let app = spawn_app().await;
    let r = app.request("PUT", "/api", &[], "").await;
    assert_err(&r, 400, "InvalidBucketName");
    let r = app.request("GET", "/", &[], "").await;
    assert!(!r.xml_all("Name").contains(&"api".to_string()));
}

#[tokio::test]
async fn duplicate_bucket_is_already_owned() {
    let app = spawn_app().await;
    app.create_bucket("dup").await;
    let r = app.request("PUT", "/dup", &[], "").await;
    assert_err(&r, 409, "BucketAlreadyOwnedByYou");
}

#[tokio::test]
async fn delete_bucket() {
    let app = spawn_app().await;
    app.create_bucket("full").await;
    app.put_ok("full", "k", "data").await;
    let r = app.request("DELETE", "/full", &[], "").await;
    assert_err(&r, 409, "BucketNotEmpty");
    // Still there with its object.
    assert_eq!(app.get("full", "k").await.body, b"data");

    let r = app.request("DELETE", &obj("full", "k"), &[], "").await;
    assert_eq!(r.status, 204);
    let r = app.request("DELETE", "/full", &[], "").await;
    assert_eq!(r.status, 204, "{}", r.text());
    let r = app.request("HEAD", "/full", &[], "").await;
    assert_eq!(r.status, 404);
    assert!(r.body.is_empty());
    let r = app.request("DELETE", "/full", &[], "").await;
    assert_err(&r, 404, "NoSuchBucket");
}

#[tokio::test]
async fn bucket_with_open_multipart_upload_is_not_deleted_silently() {
    // S3 refuses to delete a bucket only for objects; uploads in progress are
    // aborted or block it depending on implementation. Either way the bucket
    // must not vanish while leaving the upload reachable.
    let app = spawn_app().await;
    app.create_bucket("mpu").await;
    let r = app
        .request("POST", &format!("{}?uploads", obj("mpu", "k")), &[], "")
        .await;
    assert_eq!(r.status, 200);
    let id = r.xml("UploadId").unwrap();
    let r = app.request("DELETE", "/mpu", &[], "").await;
    if r.status == 204 {
        let r = app
            .request(
                "GET",
                &format!("{}?uploadId={}", obj("mpu", "k"), q(&id)),
                &[],
                "",
            )
            .await;
        assert_eq!(r.status, 404, "{}", r.text());
    } else {
        assert_eq!(r.status, 409, "{}", r.text());
    }
}

#[tokio::test]
async fn head_bucket() {
    let app = spawn_app().await;
    app.create_bucket("here").await;
    let r = app.request("HEAD", "/here", &[], "").await;
    assert_eq!(r.status, 200);
    assert!(r.header("x-amz-request-id").is_some());
    let r = app.request("HEAD", "/not-here", &[], "").await;
    assert_eq!(r.status, 404);
    assert!(r.body.is_empty());
    assert!(r.header("x-amz-request-id").is_some());
}

#[tokio::test]
async fn list_buckets() {
    let app = spawn_app().await;
    let r = app.request("GET", "/", &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("<ListAllMyBucketsResult"));
    let before = r.xml_all("Name");
    for b in ["zeta", "alpha", "mid.dle"] {
        app.create_bucket(b).await;
    }
    let r = app.request("GET", "/", &[], "").await;
    assert_eq!(r.status, 200);
    let names = r.xml_all("Name");
    let ours: Vec<&String> = names.iter().filter(|n| !before.contains(n)).collect();
    assert_eq!(ours, vec!["alpha", "mid.dle", "zeta"]);
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "ListBuckets is sorted by name");
    let dates = r.xml_all("CreationDate");
    assert_eq!(dates.len(), names.len());
    for d in dates {
        assert!(d.ends_with('Z') && d.contains('T'), "{d}");
    }
    assert!(r.xml("ID").is_some(), "Owner ID: {}", r.text());
}

#[tokio::test]
async fn get_bucket_location() {
    let app = spawn_app().await;
    app.create_bucket("loc").await;
    let r = app.request("GET", "/loc?location", &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("LocationConstraint"), "{}", r.text());
    // us-east-1 is reported as an empty constraint, as S3 does.
    assert_eq!(r.xml("LocationConstraint").unwrap_or_default(), "");
    let r = app.request("GET", "/nope?location", &[], "").await;
    assert_err(&r, 404, "NoSuchBucket");
}

#[tokio::test]
async fn object_operations_on_missing_bucket() {
    let app = spawn_app().await;
    let r = app.put("ghost", "k", "x").await;
    assert_err(&r, 404, "NoSuchBucket");
    // A small body is read before the bucket is looked up; its own errors still come
    // second, as in S3.
    let bad_md5 = [("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg==")];
    let r = app.request("PUT", "/ghost/k", &bad_md5, "x").await;
    assert_err(&r, 404, "NoSuchBucket");
    let r = app.get("ghost", "k").await;
    assert_err(&r, 404, "NoSuchBucket");
    let r = app.request("GET", "/ghost?list-type=2", &[], "").await;
    assert_err(&r, 404, "NoSuchBucket");
    let r = app.request("GET", "/ghost", &[], "").await;
    assert_err(&r, 404, "NoSuchBucket");
}
