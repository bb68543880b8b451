//! Probes tools make, unimplemented operations, and the error document.

use crate::helpers::*;

const B: &str = "probe";

async fn setup() -> TestApp {
    let app = spawn_app().await;
    app.create_bucket(B).await;
    app
}

#[tokio::test]
async fn bucket_versioning_is_empty_configuration() {
    let app = setup().await;
    let r = app
        .request("GET", &format!("/{B}?versioning"), &[], "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("VersioningConfiguration"), "{}", r.text());
    assert!(r.xml("Status").is_none(), "{}", r.text());
    let r = app.request("GET", "/missing?versioning", &[], "").await;
    assert_err(&r, 404, "NoSuchBucket");
}

#[tokio::test]
async fn list_object_versions_shows_null_versions() {
    let app = setup().await;
    app.put_ok(B, "one", "1").await;
    app.put_ok(B, "two", "22").await;
    let r = app.request("GET", &format!("/{B}?versions"), &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("<ListVersionsResult"), "{}", r.text());
    let versions = xml_sections(&r.text(), "Version");
    assert_eq!(versions.len(), 2);
    for (v, key) in versions.iter().zip(["one", "two"]) {
        assert_eq!(xml_all(v, "Key"), [key]);
        assert_eq!(xml_all(v, "VersionId"), ["null"]);
        assert_eq!(xml_all(v, "IsLatest"), ["true"]);
    }
    assert_eq!(xml_all(&versions[1], "Size"), ["2"]);
    assert!(r.xml("DeleteMarker").is_none());
}

#[tokio::test]
async fn absent_bucket_configurations() {
    let app = setup().await;
    for (q, code) in [
        ("tagging", "NoSuchTagSet"),
        ("cors", "NoSuchCORSConfiguration"),
        ("policy", "NoSuchBucketPolicy"),
    ] {
        let r = app.request("GET", &format!("/{B}?{q}"), &[], "").await;
        assert_err(&r, 404, code);
        let r = app
            .request("GET", &format!("/missing-bucket?{q}"), &[], "")
            .await;
        assert_err(&r, 404, "NoSuchBucket");
    }
}

#[tokio::test]
async fn unimplemented_operations_are_501() {
    let app = setup().await;
    app.put_ok(B, "k", "keep me").await;
    let acl = "<AccessControlPolicy/>";
    let r = app
        .request("PUT", &format!("{}?acl", obj(B, "k")), &[], acl)
        .await;
    assert_err(&r, 501, "NotImplemented");
    // It did not overwrite the object with the ACL document.
    assert_eq!(app.get(B, "k").await.body, b"keep me");
    let r = app.request("PUT", &format!("/{B}?acl"), &[], acl).await;
    assert_err(&r, 501, "NotImplemented");
    let r = app
        .request(
            "PUT",
            &format!("/{B}?versioning"),
            &[],
            "<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>",
        )
        .await;
    assert_err(&r, 501, "NotImplemented");
    let r = app
        .request(
            "PUT",
            &format!("/{B}?lifecycle"),
            &[],
            "<LifecycleConfiguration/>",
        )
        .await;
    assert_err(&r, 501, "NotImplemented");
    // The bucket is still there and not replaced.
    assert_eq!(
        app.request("HEAD", &format!("/{B}"), &[], "").await.status,
        200
    );
    let r = app.request("DELETE", &format!("/{B}?cors"), &[], "").await;
    assert_eq!(r.status, 501, "{}", r.text());
    assert_eq!(
        app.request("HEAD", &format!("/{B}"), &[], "").await.status,
        200
    );
}

#[tokio::test]
async fn every_response_has_a_request_id_and_errors_are_complete() {
    let app = setup().await;
    let mut ids = std::collections::HashSet::new();
    let responses = vec![
        app.request("GET", "/", &[], "").await,
        app.put(B, "k", "v").await,
        app.get(B, "k").await,
        app.head(B, "k").await,
        app.get(B, "nope").await,
        app.request("DELETE", &obj(B, "k"), &[], "").await,
        app.request("GET", &format!("/{B}?list-type=2"), &[], "")
            .await,
        app.request("PUT", "/Bad_Name", &[], "").await,
        app.req("GET", "/").anonymous().send().await,
    ];
    for r in &responses {
        let id = r.header("x-amz-request-id").expect("x-amz-request-id");
        assert!(!id.is_empty());
        assert!(ids.insert(id.to_string()), "request ids are unique");
    }
    let r = app.get(B, "nope").await;
    assert_err(&r, 404, "NoSuchKey");
    assert_eq!(
        r.xml("Resource").as_deref(),
        Some(format!("/{B}/nope").as_str())
    );
    assert!(r.header("content-type").unwrap_or_default().contains("xml"));
    assert!(r.text().starts_with("<?xml"), "{}", r.text());
}

#[tokio::test]
async fn health_endpoints() {
    let app = setup().await;
    let r = app.req("GET", "/health/live").anonymous().send().await;
    assert_eq!(r.status, 200);
    let r = app.req("GET", "/health/ready").anonymous().send().await;
    assert_eq!(r.status, 200);
}
