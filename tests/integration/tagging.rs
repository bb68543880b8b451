//! Object tagging.

use crate::helpers::*;

const B: &str = "tags";

fn tagging_doc(tags: &[(&str, &str)]) -> String {
    let mut s = String::from("<Tagging xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><TagSet>");
    for (k, v) in tags {
        s.push_str(&format!("<Tag><Key>{k}</Key><Value>{v}</Value></Tag>"));
    }
    s.push_str("</TagSet></Tagging>");
    s
}

fn tag_pairs(r: &Response) -> Vec<(String, String)> {
    xml_sections(&r.text(), "Tag")
        .iter()
        .map(|t| (xml_all(t, "Key")[0].clone(), xml_all(t, "Value")[0].clone()))
        .collect()
}

#[tokio::test]
async fn tagging_header_on_put_and_get_put_delete() {
    let app = spawn_app().await;
    app.create_bucket(B).await;
    let r = app
        .request(
            "PUT",
            &obj(B, "t"),
            &[("x-amz-tagging", "project=tarn&note=two%20words")],
            "x",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = app.get(B, "t").await;
    assert_eq!(r.header("x-amz-tagging-count"), Some("2"));

    let path = format!("{}?tagging", obj(B, "t"));
    let r = app.request("GET", &path, &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut tags = tag_pairs(&r);
    tags.sort();
    assert_eq!(
        tags,
        vec![
            ("note".into(), "two words".into()),
            ("project".into(), "tarn".into())
        ]
    );

    let r = app
        .request(
            "PUT",
            &path,
            &[],
            tagging_doc(&[("env", "prod"), ("x", "")]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = app.request("GET", &path, &[], "").await;
    let mut tags = tag_pairs(&r);
    tags.sort();
    assert_eq!(
        tags,
        vec![("env".into(), "prod".into()), ("x".into(), "".into())]
    );
    // Tagging does not change the object.
    assert_eq!(app.get(B, "t").await.body, b"x");

    let r = app.request("DELETE", &path, &[], "").await;
    assert_eq!(r.status, 204);
    let r = app.request("GET", &path, &[], "").await;
    assert_eq!(r.status, 200);
    assert!(tag_pairs(&r).is_empty());
    assert!(r.text().contains("TagSet"), "{}", r.text());
    assert_eq!(app.head(B, "t").await.header("x-amz-tagging-count"), None);
}

#[tokio::test]
async fn too_many_or_invalid_tags() {
    let app = spawn_app().await;
    app.create_bucket(B).await;
    let eleven: Vec<String> = (0..11).map(|i| format!("k{i}=v")).collect();
    let r = app
        .request(
            "PUT",
            &obj(B, "t"),
            &[("x-amz-tagging", &eleven.join("&"))],
            "x",
        )
        .await;
    assert_err(&r, 400, "InvalidTag");
    assert_eq!(app.head(B, "t").await.status, 404);

    app.put_ok(B, "t", "x").await;
    let path = format!("{}?tagging", obj(B, "t"));
    let names: Vec<String> = (0..11).map(|i| format!("k{i}")).collect();
    let tags: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    let r = app.request("PUT", &path, &[], tagging_doc(&tags)).await;
    assert_err(&r, 400, "InvalidTag");
    let long_key = "k".repeat(129);
    let r = app
        .request("PUT", &path, &[], tagging_doc(&[(&long_key, "v")]))
        .await;
    assert_err(&r, 400, "InvalidTag");
    let long_value = "v".repeat(257);
    let r = app
        .request("PUT", &path, &[], tagging_doc(&[("k", &long_value)]))
        .await;
    assert_err(&r, 400, "InvalidTag");
    let r = app
        .request("PUT", &path, &[], tagging_doc(&[("k", "1"), ("k", "2")]))
        .await;
    assert_err(&r, 400, "InvalidTag");
    let r = app.request("PUT", &path, &[], "<Tagging><TagSet>").await;
    assert_err(&r, 400, "MalformedXML");
    // Ten is fine.
    let r = app
        .request("PUT", &path, &[], tagging_doc(&tags[..10]))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn tagging_missing_object() {
    let app = spawn_app().await;
    app.create_bucket(B).await;
    let path = format!("{}?tagging", obj(B, "none"));
    assert_err(&app.request("GET", &path, &[], "").await, 404, "NoSuchKey");
    assert_err(
        &app.request("PUT", &path, &[], tagging_doc(&[("a", "b")]))
            .await,
        404,
        "NoSuchKey",
    );
}
