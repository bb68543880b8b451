//! Cart, checkout and manifests of presigned links, over HTTP against the real
//! binary: every link downloads exactly its object, and nothing else; expiry,
//! revocation, changed objects, lost grants; the stored manifest object; bad input
//! and who sees which manifest.

use serde_json::{Value, json};

use crate::helpers::{TestApp, md5_hex, obj, spawn_app, spawn_app_with_config};

/// A signed JSON request to the REST API as `creds` (root when `None`).
async fn api_as(
    app: &TestApp,
    creds: Option<&(String, String)>,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, Value, String) {
    let mut r = app
        .req(method, &format!("/api/v1{path}"))
        .header("content-type", "application/json")
        .body(body.as_bytes().to_vec());
    if let Some((ak, sk)) = creds {
        r = r.creds(ak, sk);
    }
    let resp = r.send().await;
    let text = resp.text();
    (
        resp.status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    )
}

async fn root(app: &TestApp, method: &str, path: &str, body: Value) -> (u16, Value) {
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let (st, v, _) = api_as(app, None, method, path, &body).await;
    (st, v)
}

/// Creates a user with one access key.
async fn user(app: &TestApp, name: &str, role: &str) -> (String, String) {
    let (st, v) = root(app, "POST", "/users", json!({"name": name, "role": role})).await;
    assert_eq!(st, 201, "{v}");
    let (st, k) = root(app, "POST", &format!("/users/{name}/keys"), Value::Null).await;
    assert_eq!(st, 201, "{k}");
    (
        k["access_key_id"].as_str().unwrap().to_string(),
        k["secret_access_key"].as_str().unwrap().to_string(),
    )
}

/// The path and query of a link to this server (which must be the link's origin).
fn local(app: &TestApp, url: &str) -> String {
    let origin = format!("http://{}", app.addr);
    assert!(url.starts_with(&origin), "{url} is not for {origin}");
    url[origin.len()..].to_string()
}

/// Sends an unsigned request to a presigned link.
async fn fetch(app: &TestApp, method: &str, url: &str) -> crate::helpers::Response {
    app.req(method, &local(app, url)).anonymous().send().await
}

struct World {
    app: TestApp,
    mia: (String, String),
    nora: (String, String),
    dataset: i64,
    /// key -> bytes, under the dataset.
    objects: Vec<(String, Vec<u8>)>,
}

/// Bucket `lake` with dataset `sales` (prefix `sales/`): a few small objects, one
/// large one (a file, not inline), an odd key; an object outside the dataset. `mia`
/// may read the dataset, `nora` has no grant.
async fn world() -> World {
    let app = spawn_app().await;
    app.create_bucket("lake").await;
    let objects: Vec<(String, Vec<u8>)> = vec![
        (
            "sales/year=2023/a.csv".into(),
            b"id,amount\n1,10\n".to_vec(),
        ),
        (
            "sales/year=2024/b.csv".into(),
            b"id,amount\n2,20\n".to_vec(),
        ),
        (
            "sales/year=2024/c d (\u{e9})+&.csv".into(),
            b"id,amount\n3,30\n".to_vec(),
        ),
        (
            "sales/year=2024/big.bin".into(),
            crate::helpers::bytes(700 * 1024, 7),
        ),
    ];
    for (k, b) in &objects {
        app.put_ok("lake", k, b.clone()).await;
    }
    app.put_ok("lake", "other/secret.csv", "no\n").await;
    let (st, d) = root(
        &app,
        "POST",
        "/datasets",
        json!({"name": "sales", "bucket": "lake", "prefix": "sales/"}),
    )
    .await;
    assert_eq!(st, 201, "{d}");
    let dataset = d["id"].as_i64().unwrap();
    let mia = user(&app, "mia", "member").await;
    let nora = user(&app, "nora", "member").await;
    let (st, g) = root(
        &app,
        "POST",
        "/grants",
        json!({"principal": "user:mia", "resource": format!("dataset:{dataset}"), "permission": "read"}),
    )
    .await;
    assert_eq!(st, 201, "{g}");
    World {
        app,
        mia,
        nora,
        dataset,
        objects,
    }
}

/// Puts `dataset` (with `prefix`) in `who`'s cart and checks out.
async fn checkout(w: &World, who: &(String, String), prefix: Option<&str>, body: Value) -> Value {
    let mut item = json!({"dataset": w.dataset});
    if let Some(p) = prefix {
        item["prefix"] = json!(p);
    }
    let (st, v, _) = api_as(&w.app, Some(who), "POST", "/cart", &item.to_string()).await;
    assert_eq!(st, 201, "{v}");
    let (st, m, text) = api_as(
        &w.app,
        Some(who),
        "POST",
        "/cart/checkout",
        &body.to_string(),
    )
    .await;
    assert_eq!(st, 201, "{text}");
    m
}

fn entry<'a>(m: &'a Value, key: &str) -> &'a Value {
    m["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == key)
        .unwrap_or_else(|| panic!("no entry {key} in {m:#}"))
}

#[tokio::test]
async fn checkout_links_download_exactly_the_listed_objects() {
    let w = world().await;
    let app = &w.app;
    let m = checkout(
        &w,
        &w.mia,
        None,
        json!({"format": "signed-url", "expires_in": 600}),
    )
    .await;
    let id = m["id"].as_i64().unwrap();
    assert_eq!(m["principal"], "mia");
    assert_eq!(m["format"], "signed-url");
    assert_eq!(m["totals"]["objects"], 4, "{m:#}");
    let total: usize = w.objects.iter().map(|(_, b)| b.len()).sum();
    assert_eq!(m["totals"]["bytes"], total as u64);
    assert_eq!(m["datasets"][0]["id"], w.dataset);
    assert_eq!(m["object"], format!("s3://tarn-manifests/mia/{id}.json"));
    // The cart is empty now.
    let (_, cart, _) = api_as(app, Some(&w.mia), "GET", "/cart", "").await;
    assert_eq!(cart["items"], json!([]));

    // Every link downloads its object, byte for byte, and its checksum matches.
    for (key, bytes) in &w.objects {
        let e = entry(&m, key);
        assert_eq!(e["bucket"], "lake");
        assert_eq!(e["size"], bytes.len() as u64);
        assert_eq!(e["etag"], md5_hex(bytes));
        assert_eq!(e["dataset"], w.dataset);
        let url = e["url"].as_str().unwrap();
        assert!(url.contains("X-Amz-Expires=600"), "{url}");
        let r = fetch(app, "GET", url).await;
        assert_eq!(r.status, 200, "{key}: {}", r.text());
        assert_eq!(md5_hex(&r.body), md5_hex(bytes), "{key}");
        let r = fetch(app, "HEAD", url).await;
        assert_eq!(
            r.status, 403,
            "HEAD is another method: the signature does not cover it"
        );
    }

    // The same signature on another key of the manifest, or on a key outside it.
    let a = entry(&m, "sales/year=2023/a.csv")["url"].as_str().unwrap();
    let (path, query) = local(app, a)
        .split_once('?')
        .map(|(p, q)| (p.to_string(), q.to_string()))
        .unwrap();
    for other in [
        obj("lake", "sales/year=2024/b.csv"),
        obj("lake", "other/secret.csv"),
    ] {
        let r = app
            .req("GET", &format!("{other}?{query}"))
            .anonymous()
            .send()
            .await;
        assert_eq!(r.status, 403, "{other}: {}", r.text());
        assert_eq!(r.code().as_deref(), Some("SignatureDoesNotMatch"));
    }
    // Writes with a link: refused, and nothing changes.
    for method in ["PUT", "DELETE", "POST"] {
        let r = app
            .req(method, &format!("{path}?{query}"))
            .anonymous()
            .body(b"overwritten".to_vec())
            .send()
            .await;
        assert_eq!(r.status, 403, "{method}: {}", r.text());
    }
    let r = app.get("lake", "sales/year=2023/a.csv").await;
    assert_eq!(r.body, w.objects[0].1);
    // The credential behind the links cannot list or use the REST API either (its
    // key id is in every link; its secret is never shown): a listing signed with the
    // link's key id but no valid signature is refused.
    let key_id = query
        .split('&')
        .find_map(|p| p.strip_prefix("X-Amz-Credential="))
        .and_then(|c| c.split("%2F").next())
        .unwrap()
        .to_string();
    assert!(key_id.starts_with("TM"), "{key_id}");
    let (st, keys, _) = api_as(app, None, "GET", "/users/mia/keys", "").await;
    assert_eq!(st, 200);
    assert!(!keys.to_string().contains(&key_id), "not a key of the user");

    // The audit trail names the manifest for downloads through its links.
    let (st, page) = root(
        app,
        "GET",
        &format!("/audit?principal=manifest%3A{id}&limit=1000"),
        Value::Null,
    )
    .await;
    assert_eq!(st, 200, "{page}");
    let records = page["records"].as_array().unwrap();
    assert!(
        records
            .iter()
            .filter(|r| r["action"] == "GetObject" && r["outcome"] == "allowed")
            .count()
            >= 4,
        "{page:#}"
    );
    assert!(
        records
            .iter()
            .all(|r| r["access_key_id"] == key_id.as_str())
    );

    // GET /manifests/{id} streams the same document; ?format=urls one link per line.
    let (st, again) = root(app, "GET", &format!("/manifests/{id}"), Value::Null).await;
    assert_eq!(st, 200);
    assert_eq!(again, m, "links are deterministic");
    let r = app
        .req("GET", &format!("/api/v1/manifests/{id}?format=urls"))
        .creds(&w.mia.0, &w.mia.1)
        .send()
        .await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let lines: Vec<&str> = std::str::from_utf8(&r.body).unwrap().lines().collect();
    assert_eq!(lines.len(), 4);
    for line in lines {
        assert_eq!(fetch(app, "GET", line).await.status, 200, "{line}");
    }

    // The manifest is also an object its owner can fetch with S3; others cannot.
    let key = format!("mia/{id}.json");
    let r = app
        .req("GET", &obj("tarn-manifests", &key))
        .creds(&w.mia.0, &w.mia.1)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let stored: Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("{e}: {:?} {:?}", r.headers, r.text()));
    assert_eq!(stored, m);
    let r = app
        .req("GET", "/tarn-manifests?list-type=2&prefix=mia%2F")
        .creds(&w.mia.0, &w.mia.1)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.xml_all("Key"), vec![key.clone()]);
    let r = app
        .req("GET", &obj("tarn-manifests", &key))
        .creds(&w.nora.0, &w.nora.1)
        .send()
        .await;
    assert_eq!(r.status, 403);
    let r = app
        .req("GET", "/tarn-manifests?list-type=2")
        .creds(&w.mia.0, &w.mia.1)
        .send()
        .await;
    assert_eq!(r.status, 403, "listing beyond one's own prefix");
    let r = app
        .req("PUT", &obj("tarn-manifests", &key))
        .creds(&w.mia.0, &w.mia.1)
        .body(b"{}".to_vec())
        .send()
        .await;
    assert_eq!(
        r.status, 403,
        "owners read their manifests, they do not write them"
    );
}

#[tokio::test]
async fn revocation_expiry_changes_and_lost_grants() {
    let w = world().await;
    let app = &w.app;
    // Revocation: deleting the manifest kills every link at once.
    let m = checkout(&w, &w.mia, None, json!({})).await;
    let id = m["id"].as_i64().unwrap();
    assert!(m["expires_at"].as_str().is_some());
    let url = entry(&m, "sales/year=2023/a.csv")["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        url.contains("X-Amz-Expires=14400"),
        "default 4 hours: {url}"
    );
    assert_eq!(fetch(app, "GET", &url).await.status, 200);
    let (st, v, _) = api_as(
        app,
        Some(&w.nora),
        "DELETE",
        &format!("/manifests/{id}"),
        "",
    )
    .await;
    assert_eq!(st, 404, "not nora's: {v}");
    let (st, _, text) = api_as(app, Some(&w.mia), "DELETE", &format!("/manifests/{id}"), "").await;
    assert_eq!(st, 204, "{text}");
    for e in m["entries"].as_array().unwrap() {
        let r = fetch(app, "GET", e["url"].as_str().unwrap()).await;
        assert_eq!(r.status, 403, "revoked: {}", r.text());
    }
    let (st, _) = root(app, "GET", &format!("/manifests/{id}"), Value::Null).await;
    assert_eq!(st, 404);
    let r = app.get("tarn-manifests", &format!("mia/{id}.json")).await;
    assert_eq!(r.status, 404, "the stored manifest goes too");

    // Expiry.
    let m = checkout(&w, &w.mia, None, json!({"expires_in": 1})).await;
    let url = entry(&m, "sales/year=2024/b.csv")["url"]
        .as_str()
        .unwrap()
        .to_string();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = fetch(app, "GET", &url).await;
    assert_eq!(r.status, 403, "expired: {}", r.text());
    let (st, list, _) = api_as(app, Some(&w.mia), "GET", "/manifests", "").await;
    assert_eq!(st, 200);
    assert_eq!(list["manifests"][0]["expired"], true, "{list}");

    // A changed object: the link refuses rather than serve other bytes.
    let m = checkout(&w, &w.mia, Some("year=2024/"), json!({"expires_in": 3600})).await;
    assert_eq!(m["totals"]["objects"], 3, "the partition only: {m:#}");
    assert!(
        m["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["key"].as_str().unwrap().starts_with("sales/year=2024/"))
    );
    let url = entry(&m, "sales/year=2024/b.csv")["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(fetch(app, "GET", &url).await.status, 200);
    app.put_ok("lake", "sales/year=2024/b.csv", "id,amount\n2,99\n")
        .await;
    let r = fetch(app, "GET", &url).await;
    assert_eq!(r.status, 412, "{}", r.text());
    assert_eq!(r.code().as_deref(), Some("PreconditionFailed"));
    assert!(r.text().contains("changed since manifest"), "{}", r.text());
    // Deleted since checkout: 404.
    let big = entry(&m, "sales/year=2024/big.bin")["url"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .request("DELETE", &obj("lake", "sales/year=2024/big.bin"), &[], "")
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(fetch(app, "GET", &big).await.status, 404);

    // The owner loses read: the links stop.
    let odd = entry(&m, "sales/year=2024/c d (\u{e9})+&.csv")["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(fetch(app, "GET", &odd).await.status, 200);
    let (_, grants) = root(app, "GET", "/grants?principal=user%3Amia", Value::Null).await;
    let gid = grants["grants"][0]["id"].as_i64().unwrap();
    let (st, _) = root(app, "DELETE", &format!("/grants/{gid}"), Value::Null).await;
    assert_eq!(st, 204);
    let r = fetch(app, "GET", &odd).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("may no longer read"), "{}", r.text());
}

#[tokio::test]
async fn cart_rules_bad_input_and_visibility() {
    let w = world().await;
    let app = &w.app;
    let nora = Some(&w.nora);
    let mia = Some(&w.mia);
    // Cart items for unreadable datasets are refused.
    let item = json!({"dataset": w.dataset}).to_string();
    let (st, v, _) = api_as(app, nora, "POST", "/cart", &item).await;
    assert_eq!(st, 403, "{v}");
    assert_eq!(v["error"]["code"], "AccessDenied");
    let (_, cart, _) = api_as(app, nora, "GET", "/cart", "").await;
    assert_eq!(cart["items"], json!([]));
    let (st, v, _) = api_as(app, nora, "POST", "/cart/checkout", "").await;
    assert_eq!(st, 409, "empty cart: {v}");
    // Bad input.
    type Case<'a> = (&'a str, &'a str, String, u16, &'a str, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/cart",
            json!({"dataset": 999}).to_string(),
            404,
            "NotFound",
            None,
        ),
        (
            "POST",
            "/cart",
            "{not json".into(),
            400,
            "MalformedJson",
            None,
        ),
        (
            "POST",
            "/cart",
            json!({"dataset": "x"}).to_string(),
            400,
            "InvalidField",
            Some("dataset"),
        ),
        (
            "POST",
            "/cart",
            json!({"dataset": w.dataset, "prefix": "/abs"}).to_string(),
            400,
            "InvalidField",
            Some("prefix"),
        ),
        (
            "POST",
            "/cart",
            json!({"dataset": w.dataset, "bogus": 1}).to_string(),
            400,
            "InvalidField",
            Some("bogus"),
        ),
        ("DELETE", "/cart/77", String::new(), 404, "NotFound", None),
        ("GET", "/manifests/77", String::new(), 404, "NotFound", None),
        (
            "GET",
            "/manifests/abc",
            String::new(),
            404,
            "NotFound",
            None,
        ),
    ];
    for (method, path, body, status, code, field) in cases {
        let (st, v, _) = api_as(app, mia, method, path, &body).await;
        assert_eq!(st, status, "{method} {path} {body}: {v}");
        assert_eq!(v["error"]["code"], code, "{v}");
        assert!(v["error"]["request_id"].is_string());
        if let Some(f) = field {
            assert_eq!(v["error"]["field"], f, "{v}");
        }
    }
    // Adding twice conflicts; removing works.
    let (st, it, _) = api_as(app, mia, "POST", "/cart", &item).await;
    assert_eq!(st, 201, "{it}");
    assert_eq!(it["key_prefix"], "sales/");
    let (st, _, _) = api_as(app, mia, "POST", "/cart", &item).await;
    assert_eq!(st, 409);
    for (body, field) in [
        (json!({"expires_in": 604801}).to_string(), "expires_in"),
        (json!({"expires_in": 0}).to_string(), "expires_in"),
        (json!({"format": "zip"}).to_string(), "format"),
    ] {
        let (st, v, _) = api_as(app, mia, "POST", "/cart/checkout", &body).await;
        assert_eq!(st, 400, "{body}: {v}");
        assert_eq!(v["error"]["field"], field, "{v}");
    }
    let (st, v, _) = api_as(app, mia, "POST", "/cart/checkout", "{nope").await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (400, Some("MalformedJson"))
    );
    let item_id = it["id"].as_i64().unwrap();
    let (st, _, _) = api_as(app, nora, "DELETE", &format!("/cart/{item_id}"), "").await;
    assert_eq!(st, 404, "not nora's item");
    let (st, _, _) = api_as(app, mia, "DELETE", &format!("/cart/{item_id}"), "").await;
    assert_eq!(st, 204);

    // Bucket-key manifests carry no links; their "urls" are s3:// addresses.
    let m = checkout(&w, &w.mia, None, json!({"format": "bucket-key"})).await;
    assert_eq!(m["format"], "bucket-key");
    assert!(
        m["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e.get("url").is_none()),
        "{m:#}"
    );
    let mid = m["id"].as_i64().unwrap();
    let r = app
        .req("GET", &format!("/api/v1/manifests/{mid}?format=urls"))
        .creds(&w.mia.0, &w.mia.1)
        .send()
        .await;
    assert_eq!(r.status, 200);
    assert!(
        r.text().lines().all(|l| l.starts_with("s3://lake/sales/")),
        "{}",
        r.text()
    );

    // A checkout re-checks read: a dataset that became unreadable is refused.
    let (st, _, _) = api_as(app, mia, "POST", "/cart", &item).await;
    assert_eq!(st, 201);
    let (_, grants) = root(app, "GET", "/grants?principal=user%3Amia", Value::Null).await;
    let gid = grants["grants"][0]["id"].as_i64().unwrap();
    let (st, _) = root(app, "DELETE", &format!("/grants/{gid}"), Value::Null).await;
    assert_eq!(st, 204);
    let (st, v, _) = api_as(app, mia, "POST", "/cart/checkout", "").await;
    assert_eq!(st, 403, "{v}");

    // Visibility: members see their own manifests, admins everyone's.
    let (st, _) = root(app, "POST", "/cart", json!({"dataset": w.dataset})).await;
    assert_eq!(st, 201);
    let (st, rm) = root(
        app,
        "POST",
        "/cart/checkout",
        json!({"format": "bucket-key"}),
    )
    .await;
    assert_eq!(st, 201, "{rm}");
    let (_, mine, _) = api_as(app, mia, "GET", "/manifests", "").await;
    let ids = |v: &Value| -> Vec<i64> {
        v["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(ids(&mine), vec![mid]);
    let (_, all) = root(app, "GET", "/manifests", Value::Null).await;
    assert_eq!(ids(&all), vec![rm["id"].as_i64().unwrap(), mid]);
    let (_, none, _) = api_as(app, nora, "GET", "/manifests", "").await;
    assert_eq!(ids(&none), Vec::<i64>::new());
    let (st, _, _) = api_as(app, nora, "GET", &format!("/manifests/{mid}"), "").await;
    assert_eq!(st, 404);
    let (st, _) = root(app, "GET", &format!("/manifests/{mid}"), Value::Null).await;
    assert_eq!(st, 200);
    // The routes are in the OpenAPI document.
    let (st, doc) = root(app, "GET", "/openapi.json", Value::Null).await;
    assert_eq!(st, 200);
    for path in [
        "/cart",
        "/cart/{item}",
        "/cart/checkout",
        "/manifests",
        "/manifests/{id}",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
}

#[tokio::test]
async fn links_honour_the_public_url_and_the_configured_expiry() {
    let app = spawn_app_with_config(
        "[server]\npublic_url = \"https://lake.example.com/\"\n\
         [checkout]\ndefault_expiry_secs = 60\nmax_expiry_secs = 120\n",
    )
    .await;
    app.create_bucket("bkt").await;
    app.put_ok("bkt", "d/x.csv", "x\n").await;
    let (st, d) = root(
        &app,
        "POST",
        "/datasets",
        json!({"name": "d", "bucket": "bkt", "prefix": "d/"}),
    )
    .await;
    assert_eq!(st, 201, "{d}");
    let (st, _) = root(&app, "POST", "/cart", json!({"dataset": d["id"]})).await;
    assert_eq!(st, 201);
    let (st, v) = root(&app, "POST", "/cart/checkout", json!({"expires_in": 121})).await;
    assert_eq!(st, 400, "{v}");
    let (st, m) = root(&app, "POST", "/cart/checkout", Value::Null).await;
    assert_eq!(st, 201, "{m}");
    let url = m["entries"][0]["url"].as_str().unwrap();
    assert!(
        url.starts_with("https://lake.example.com/bkt/d/x.csv?"),
        "{url}"
    );
    assert!(url.contains("X-Amz-Expires=60"), "{url}");
    // Behind a proxy that forwards Host: lake.example.com, the link verifies.
    let path = url.trim_start_matches("https://lake.example.com");
    let r = app
        .req("GET", path)
        .header("host", "lake.example.com")
        .anonymous()
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, b"x\n");
}

#[tokio::test]
async fn the_manifest_bucket_cannot_hold_datasets() {
    let w = world().await;
    // The first checkout creates the manifest bucket.
    checkout(&w, &w.mia, None, json!({"format": "signed-url"})).await;
    // A dataset over it would let a checkout hand out links to other users' manifests.
    let (st, v) = root(
        &w.app,
        "POST",
        "/datasets",
        json!({"name": "loot", "bucket": "tarn-manifests", "prefix": "mia/"}),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("bucket"),
        "{v}"
    );
    let (st, v) = root(
        &w.app,
        "PATCH",
        &format!("/datasets/{}", w.dataset),
        json!({"bucket": "tarn-manifests"}),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = root(
        &w.app,
        "GET",
        &format!("/datasets/{}", w.dataset),
        Value::Null,
    )
    .await;
    assert_eq!((st, v["bucket"].as_str()), (200, Some("lake")), "{v}");
}

/// Deleting a user deletes their stored manifest objects: a later user of the same
/// name (who would own `<name>/` in the manifest bucket) cannot read them.
#[tokio::test]
async fn deleting_a_user_deletes_their_stored_manifests() {
    let w = world().await;
    let m = checkout(&w, &w.mia, None, json!({"format": "signed-url"})).await;
    let key = format!("mia/{}.json", m["id"]);
    assert_eq!(w.app.get("tarn-manifests", &key).await.status, 200);
    let (st, v) = root(&w.app, "DELETE", "/users/mia", Value::Null).await;
    assert_eq!(st, 204, "{v}");
    assert_eq!(w.app.get("tarn-manifests", &key).await.status, 404);
    let again = user(&w.app, "mia", "member").await;
    let r = w
        .app
        .req("GET", "/tarn-manifests?list-type=2&prefix=mia%2F")
        .creds(&again.0, &again.1)
        .send()
        .await;
    assert_eq!(r.status, 200);
    assert!(!r.text().contains("<Key>"), "{}", r.text());
    let r = w
        .app
        .req("GET", &obj("tarn-manifests", &key))
        .creds(&again.0, &again.1)
        .send()
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
}

/// The same through `tarn admin user delete` beside the running server.
#[tokio::test]
async fn admin_cli_user_delete_deletes_their_stored_manifests() {
    let w = world().await;
    let m = checkout(&w, &w.mia, None, json!({"format": "bucket-key"})).await;
    let key = format!("mia/{}.json", m["id"]);
    assert_eq!(w.app.get("tarn-manifests", &key).await.status, 200);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tarn"))
        .arg("admin")
        .arg("--data-dir")
        .arg(w.app.data_path())
        .args(["user", "delete", "mia"])
        .output()
        .expect("run tarn admin");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The running server notices the CLI's change within its IAM poll interval (2 s)
    // and stops serving the object, even from its object cache.
    let mut status = 0;
    for _ in 0..50 {
        status = w.app.get("tarn-manifests", &key).await.status;
        if status == 404 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 404);
}
