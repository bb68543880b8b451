//! ListObjects (v1) and ListObjectsV2.

use futures_util::StreamExt;

use crate::helpers::*;

const B: &str = "lists";
const KEYS: [&str; 8] = ["a/1", "a/2", "a/b/3", "b/1", "c", "d/e/f", "d/g", "e"];

async fn setup() -> TestApp {
    let app = spawn_app().await;
    app.create_bucket(B).await;
    for k in KEYS {
        app.put_ok(B, k, k).await;
    }
    app
}

async fn list(app: &TestApp, query: &str) -> Response {
    let r = app.request("GET", &format!("/{B}?{query}"), &[], "").await;
    assert_eq!(r.status, 200, "{query}: {}", r.text());
    r
}

fn keys(r: &Response) -> Vec<String> {
    xml_sections(&r.text(), "Contents")
        .iter()
        .flat_map(|c| xml_all(c, "Key"))
        .collect()
}

fn prefixes(r: &Response) -> Vec<String> {
    xml_sections(&r.text(), "CommonPrefixes")
        .iter()
        .flat_map(|c| xml_all(c, "Prefix"))
        .collect()
}

#[tokio::test]
async fn v2_plain_prefix_delimiter() {
    let app = setup().await;
    let r = list(&app, "list-type=2").await;
    assert!(r.text().contains("<ListBucketResult"));
    assert_eq!(keys(&r), KEYS);
    assert_eq!(r.xml("KeyCount").as_deref(), Some("8"));
    assert_eq!(r.xml("IsTruncated").as_deref(), Some("false"));
    assert_eq!(r.xml("Name").as_deref(), Some(B));
    assert_eq!(r.xml("MaxKeys").as_deref(), Some("1000"));
    let contents = xml_sections(&r.text(), "Contents");
    let first = &contents[0];
    assert_eq!(xml_all(first, "Size"), vec!["3"]);
    assert_eq!(xml_all(first, "ETag"), vec![quoted_md5(b"a/1")]);
    assert_eq!(xml_all(first, "StorageClass"), vec!["STANDARD"]);
    assert!(xml_all(first, "LastModified")[0].ends_with('Z'));
    // v2 lists no owner unless asked.
    assert!(!first.contains("<Owner>"), "{first}");

    let r = list(&app, "list-type=2&prefix=a/").await;
    assert_eq!(keys(&r), ["a/1", "a/2", "a/b/3"]);
    assert_eq!(r.xml("Prefix").as_deref(), Some("a/"));

    let r = list(&app, "list-type=2&delimiter=/").await;
    assert_eq!(keys(&r), ["c", "e"]);
    assert_eq!(prefixes(&r), ["a/", "b/", "d/"]);
    assert_eq!(r.xml("KeyCount").as_deref(), Some("5"));
    assert_eq!(r.xml("Delimiter").as_deref(), Some("/"));

    let r = list(&app, "list-type=2&delimiter=/&prefix=a/").await;
    assert_eq!(keys(&r), ["a/1", "a/2"]);
    assert_eq!(prefixes(&r), ["a/b/"]);

    let r = list(&app, "list-type=2&prefix=zzz").await;
    assert!(keys(&r).is_empty());
    assert_eq!(r.xml("KeyCount").as_deref(), Some("0"));
}

#[tokio::test]
async fn empty_delimiter_means_none() {
    let app = setup().await;
    let r = list(&app, "list-type=2&delimiter=").await;
    assert_eq!(keys(&r), KEYS);
    assert!(prefixes(&r).is_empty());
    let r = list(&app, "delimiter=").await;
    assert_eq!(keys(&r), KEYS);
    assert!(prefixes(&r).is_empty());
}

#[tokio::test]
async fn v2_max_keys_and_continuation() {
    let app = setup().await;
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut query = "list-type=2&max-keys=3".to_string();
        if let Some(t) = &token {
            query.push_str(&format!("&continuation-token={}", q(t)));
        }
        let r = list(&app, &query).await;
        pages += 1;
        let page = keys(&r);
        assert!(page.len() <= 3);
        assert_eq!(r.xml("KeyCount"), Some(page.len().to_string()));
        seen.extend(page);
        if let Some(t) = &token {
            assert_eq!(r.xml("ContinuationToken").as_deref(), Some(t.as_str()));
        }
        if r.xml("IsTruncated").as_deref() == Some("true") {
            token = Some(
                r.xml("NextContinuationToken")
                    .expect("NextContinuationToken"),
            );
        } else {
            assert!(r.xml("NextContinuationToken").is_none());
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, KEYS);

    // Truncation with common prefixes counts prefixes as entries.
    let r = list(&app, "list-type=2&delimiter=/&max-keys=2").await;
    assert_eq!(r.xml("IsTruncated").as_deref(), Some("true"));
    assert_eq!(prefixes(&r), ["a/", "b/"]);
    let t = r.xml("NextContinuationToken").unwrap();
    let r = list(
        &app,
        &format!(
            "list-type=2&delimiter=/&max-keys=2&continuation-token={}",
            q(&t)
        ),
    )
    .await;
    assert_eq!(keys(&r), ["c"]);
    assert_eq!(prefixes(&r), ["d/"]);
    let t = r.xml("NextContinuationToken").unwrap();
    let r = list(
        &app,
        &format!(
            "list-type=2&delimiter=/&max-keys=2&continuation-token={}",
            q(&t)
        ),
    )
    .await;
    assert_eq!(keys(&r), ["e"]);
    assert_eq!(r.xml("IsTruncated").as_deref(), Some("false"));
}

#[tokio::test]
async fn v2_start_after_and_fetch_owner() {
    let app = setup().await;
    let r = list(&app, "list-type=2&start-after=b/1").await;
    assert_eq!(keys(&r), ["c", "d/e/f", "d/g", "e"]);
    assert_eq!(r.xml("StartAfter").as_deref(), Some("b/1"));
    let r = list(&app, "list-type=2&start-after=a").await;
    assert_eq!(keys(&r).len(), 8);

    let r = list(&app, "list-type=2&fetch-owner=true&max-keys=1").await;
    let c = &xml_sections(&r.text(), "Contents")[0];
    assert!(c.contains("<Owner>"), "{c}");
    assert_eq!(xml_all(c, "ID").len(), 1);
}

#[tokio::test]
async fn v2_bad_arguments() {
    let app = setup().await;
    let r = app
        .request("GET", &format!("/{B}?list-type=2&max-keys=abc"), &[], "")
        .await;
    assert_err(&r, 400, "InvalidArgument");
    let r = app
        .request("GET", &format!("/{B}?list-type=2&max-keys=-1"), &[], "")
        .await;
    assert_err(&r, 400, "InvalidArgument");
    let r = app
        .request(
            "GET",
            &format!("/{B}?list-type=2&continuation-token=%21%21%21"),
            &[],
            "",
        )
        .await;
    assert_err(&r, 400, "InvalidArgument");
    let r = app
        .request(
            "GET",
            &format!("/{B}?list-type=2&encoding-type=base64"),
            &[],
            "",
        )
        .await;
    assert_err(&r, 400, "InvalidArgument");
}

#[tokio::test]
async fn v1_marker_and_next_marker() {
    let app = setup().await;
    let r = list(&app, "").await;
    assert_eq!(keys(&r), KEYS);
    assert_eq!(r.xml("Marker").unwrap_or_default(), "");
    // v1 lists the owner.
    assert!(xml_sections(&r.text(), "Contents")[0].contains("<Owner>"));

    let r = list(&app, "max-keys=3").await;
    assert_eq!(keys(&r), ["a/1", "a/2", "a/b/3"]);
    assert_eq!(r.xml("IsTruncated").as_deref(), Some("true"));
    let r = list(&app, "max-keys=3&marker=a/b/3").await;
    assert_eq!(keys(&r), ["b/1", "c", "d/e/f"]);
    assert_eq!(r.xml("Marker").as_deref(), Some("a/b/3"));

    // With a delimiter S3 returns NextMarker.
    let r = list(&app, "delimiter=/&max-keys=2").await;
    assert_eq!(prefixes(&r), ["a/", "b/"]);
    assert_eq!(r.xml("IsTruncated").as_deref(), Some("true"));
    let next = r.xml("NextMarker").expect("NextMarker with delimiter");
    let r = list(&app, &format!("delimiter=/&max-keys=2&marker={}", q(&next))).await;
    assert_eq!(keys(&r), ["c"]);
    assert_eq!(prefixes(&r), ["d/"]);

    let r = list(&app, "prefix=d/&delimiter=/").await;
    assert_eq!(keys(&r), ["d/g"]);
    assert_eq!(prefixes(&r), ["d/e/"]);
}

#[tokio::test]
async fn encoding_type_url() {
    let app = spawn_app().await;
    app.create_bucket(B).await;
    let odd = ["sp ace/x", "plus+sign", "perc%ent", "ü/é", "amp&lt"];
    for k in odd {
        app.put_ok(B, k, "x").await;
    }
    for query in ["list-type=2&encoding-type=url", "encoding-type=url"] {
        let r = list(&app, query).await;
        assert_eq!(r.xml("EncodingType").as_deref(), Some("url"));
        let raw = keys(&r);
        for k in &raw {
            assert!(!k.contains(' ') && !k.contains('ü'), "not encoded: {k}");
        }
        let mut decoded: Vec<String> = raw.iter().map(|k| url_decode_plus(k)).collect();
        decoded.sort();
        let mut want: Vec<String> = odd.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(decoded, want, "{query}");
    }
    let r = list(&app, "list-type=2&encoding-type=url&delimiter=/&prefix=").await;
    let p: Vec<String> = prefixes(&r).iter().map(|p| url_decode_plus(p)).collect();
    assert_eq!(p, ["sp ace/", "ü/"]);
}

#[tokio::test]
async fn paging_through_2500_keys() {
    let app = spawn_app().await;
    app.create_bucket(B).await;
    let mut all: Vec<String> = (0..2500)
        .map(|i| format!("k/{:05}", i * 7 % 2500))
        .collect();
    futures_util::stream::iter(all.clone())
        .map(|k| {
            let app = &app;
            async move {
                let r = app.put(B, &k, k.clone()).await;
                assert_eq!(r.status, 200, "{}", r.text());
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    all.sort();

    // v2 with default max-keys: 3 pages.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut query = "list-type=2".to_string();
        if let Some(t) = &token {
            query.push_str(&format!("&continuation-token={}", q(t)));
        }
        let r = list(&app, &query).await;
        pages += 1;
        let page = keys(&r);
        assert!(page.len() <= 1000);
        seen.extend(page);
        match r.xml("IsTruncated").as_deref() {
            Some("true") => token = Some(r.xml("NextContinuationToken").unwrap()),
            _ => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 2500);
    assert!(seen == all, "v2 pages not in order or with duplicates");

    // v1 with marker = last key of each page.
    let mut seen = Vec::new();
    let mut marker = String::new();
    loop {
        let r = list(&app, &format!("max-keys=700&marker={}", q(&marker))).await;
        let page = keys(&r);
        marker = page.last().cloned().unwrap_or_default();
        seen.extend(page);
        if r.xml("IsTruncated").as_deref() != Some("true") {
            break;
        }
    }
    assert!(seen == all, "v1 pages not in order or with duplicates");

    // max-keys above 1000 is capped.
    let r = list(&app, "list-type=2&max-keys=5000").await;
    assert_eq!(keys(&r).len(), 1000);
}
