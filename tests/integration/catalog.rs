//! Black-box tests of zones and the dataset catalog over `/api/v1` (and the zone
//! rules on the S3 path), against the real binary.

use serde_json::{Value, json};

use crate::helpers::{Payload, TestApp, assert_err, obj, spawn_app_with_zones as spawn_app};

/// A signed JSON request; returns the status and the parsed body (Null if empty).
async fn api(app: &TestApp, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let r = app
        .request(
            method,
            &format!("/api/v1{path}"),
            &[("content-type", "application/json")],
            bytes,
        )
        .await;
    let v = if r.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&r.body).unwrap_or_else(|_| panic!("not JSON: {}", r.text()))
    };
    (r.status, v)
}

/// Asserts a JSON error document with `status` and `code`.
#[track_caller]
fn assert_api_err(got: &(u16, Value), status: u16, code: &str) {
    assert_eq!(got.0, status, "body: {}", got.1);
    assert_eq!(got.1["error"]["code"], code, "body: {}", got.1);
    assert!(
        got.1["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert!(
        got.1["error"]["request_id"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

async fn create_dataset(app: &TestApp, body: Value) -> Value {
    let (st, v) = api(app, "POST", "/datasets", Some(body)).await;
    assert_eq!(st, 201, "create: {v}");
    v
}

async fn put_bucket_zone(app: &TestApp, bucket: &str, zone: &str) -> (u16, Value) {
    api(
        app,
        "PUT",
        &format!("/buckets/{bucket}"),
        Some(json!({ "zone": zone })),
    )
    .await
}

#[tokio::test]
async fn every_request_is_authenticated_and_errors_are_json() {
    let app = spawn_app().await;
    let r = app.req("GET", "/api/v1/zones").anonymous().send().await;
    assert_eq!(r.status, 401, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["error"]["code"], "Unauthenticated");
    assert_eq!(
        r.header("x-request-id"),
        v["error"]["request_id"].as_str(),
        "request id header and body agree"
    );
    let r = app
        .req("GET", "/api/v1/datasets")
        .creds(&app.access_key, "wrong-secret-wrong-secret")
        .send()
        .await;
    assert_eq!(r.status, 403);
    let r = app
        .req("GET", "/api/v1/datasets")
        .creds("NOSUCHKEY", "whatever123")
        .send()
        .await;
    assert_eq!(r.status, 403);
    // A signed body hash that does not match the body.
    let r = app
        .req("POST", "/api/v1/datasets")
        .payload(Payload::Precomputed(crate::helpers::sha256_hex(b"other")))
        .body("{}")
        .send()
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_api_err(&api(&app, "GET", "/nope", None).await, 404, "NotFound");
    assert_api_err(
        &api(&app, "DELETE", "/zones", None).await,
        405,
        "MethodNotAllowed",
    );
    assert_api_err(
        &api(&app, "GET", "/datasets/abc", None).await,
        404,
        "NotFound",
    );
    assert_api_err(
        &api(&app, "GET", "/datasets/999", None).await,
        404,
        "NotFound",
    );
    let e = api(&app, "GET", "/datasets?colour=red", None).await;
    assert_api_err(&e, 400, "InvalidField");
    assert_eq!(e.1["error"]["field"], "colour");

    // The OpenAPI document describes every route.
    let (st, doc) = api(&app, "GET", "/openapi.json", None).await;
    assert_eq!(st, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/zones",
        "/buckets",
        "/buckets/{bucket}",
        "/governance",
        "/datasets",
        "/datasets/{id}",
        "/datasets/{id}/crawl",
        "/datasets/{id}/schema",
        "/search",
    ] {
        assert!(paths.contains_key(p), "openapi lacks {p}");
    }
    assert!(paths["/datasets/{id}"].get("patch").is_some());
    assert!(paths["/buckets/{bucket}"].get("put").is_some());
}

#[tokio::test]
async fn zones_and_the_raw_write_once_rule() {
    let app = spawn_app().await;
    let (st, z) = api(&app, "GET", "/zones", None).await;
    assert_eq!(st, 200);
    let names: Vec<&str> = z["zones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|z| z["zone"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["raw", "transformed", "curated"]);
    assert_eq!(z["zones"][2]["buckets"], json!(["curated"]));

    // A bucket created through S3 lands in raw.
    app.create_bucket("landing").await;
    let (_, b) = api(&app, "GET", "/buckets/landing", None).await;
    assert_eq!(b["zone"], "raw");
    app.put_ok("landing", "a/one.csv", "x,y\n1,2\n").await;
    let over = app.put("landing", "a/one.csv", "changed").await;
    assert_err(&over, 403, "AccessDenied");
    assert!(
        over.xml("Message").unwrap().contains("raw zone"),
        "{}",
        over.text()
    );
    let del = app
        .request("DELETE", &obj("landing", "a/one.csv"), &[], "")
        .await;
    assert_err(&del, 403, "AccessDenied");
    // CopyObject onto an existing raw key is an overwrite too.
    app.put_ok("landing", "a/two.csv", "2").await;
    let copy = app
        .request(
            "PUT",
            &obj("landing", "a/one.csv"),
            &[("x-amz-copy-source", "/landing/a/two.csv")],
            "",
        )
        .await;
    assert_err(&copy, 403, "AccessDenied");
    // DeleteObjects reports the protected key as an error, not as deleted.
    let body =
        "<Delete><Object><Key>a/one.csv</Key></Object><Object><Key>missing</Key></Object></Delete>";
    let md5 = {
        use base64::Engine;
        use md5::Digest;
        base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body.as_bytes()))
    };
    let r = app
        .request(
            "POST",
            "/landing?delete",
            &[("content-md5", md5.as_str())],
            body,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.xml_all("Code"), ["AccessDenied"]);
    let mut keys = r.xml_all("Key");
    keys.sort();
    assert_eq!(keys, ["a/one.csv", "missing"]);
    assert!(
        r.text().contains("<Error><Key>a/one.csv</Key>"),
        "{}",
        r.text()
    );
    assert_eq!(app.get("landing", "a/one.csv").await.text(), "x,y\n1,2\n");
    // The admin override.
    let ovr = [("x-tarn-override-zone-rules", "true")];
    let r = app
        .request("PUT", &obj("landing", "a/one.csv"), &ovr, "v2")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = app
        .request("DELETE", &obj("landing", "a/two.csv"), &ovr, "")
        .await;
    assert_eq!(r.status, 204);
    let r = app
        .request(
            "PUT",
            &obj("landing", "k"),
            &[("x-tarn-override-zone-rules", "maybe")],
            "v",
        )
        .await;
    assert_err(&r, 400, "InvalidArgument");

    // Other zones allow overwrites; PUT /buckets sets zones and creates buckets.
    let (st, v) = put_bucket_zone(&app, "landing", "transformed").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["zone"], "transformed");
    app.put_ok("landing", "a/one.csv", "v3").await;
    let (st, v) = put_bucket_zone(&app, "gold", "curated").await;
    assert_eq!(st, 201, "{v}");
    assert_api_err(
        &put_bucket_zone(&app, "gold", "platinum").await,
        400,
        "InvalidField",
    );
    assert_api_err(
        &put_bucket_zone(&app, "Bad_Name", "raw").await,
        400,
        "InvalidField",
    );
    let r = app.request("HEAD", "/gold", &[], "").await;
    assert_eq!(
        r.status, 200,
        "bucket created through the REST API exists in S3"
    );

    // Zone totals follow the objects.
    let (_, z) = api(&app, "GET", "/zones", None).await;
    let t = &z["zones"][1];
    assert_eq!(t["zone"], "transformed");
    assert_eq!(t["object_count"], 1);
    assert_eq!(t["total_bytes"], 2);
    let (_, bl) = api(&app, "GET", "/buckets", None).await;
    let gold = bl["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "gold")
        .unwrap();
    assert_eq!(gold["zone"], "curated");
}

#[tokio::test]
async fn multipart_completion_obeys_raw_rule_and_updates_stats() {
    let app = spawn_app().await;
    app.put_ok("raw", "mp/obj", "first").await;
    let ds = create_dataset(&app, json!({"name": "mp", "bucket": "raw", "prefix": "mp"})).await;
    assert_eq!(ds["stats"]["object_count"], 1);
    for (key, expect) in [("mp/obj", 403), ("mp/new", 200)] {
        let r = app
            .request("POST", &format!("/raw/{key}?uploads"), &[], "")
            .await;
        let upload = r.xml("UploadId").unwrap();
        let r = app
            .request(
                "PUT",
                &format!("/raw/{key}?partNumber=1&uploadId={upload}"),
                &[],
                "part-data",
            )
            .await;
        let etag = r.header("etag").unwrap().to_string();
        let body = format!(
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part></CompleteMultipartUpload>"
        );
        let r = app
            .request("POST", &format!("/raw/{key}?uploadId={upload}"), &[], body)
            .await;
        assert_eq!(r.status, expect, "{key}: {}", r.text());
    }
    let (_, d) = api(&app, "GET", &format!("/datasets/{}", ds["id"]), None).await;
    assert_eq!(d["stats"]["object_count"], 2);
    assert_eq!(d["stats"]["total_bytes"], 5 + 9);
}

#[tokio::test]
async fn dataset_lifecycle_filters_pagination_and_errors() {
    let app = spawn_app().await;
    let a = create_dataset(
        &app,
        json!({"name": "orders", "bucket": "transformed", "prefix": "orders/",
               "description": "Daily orders", "owner": "alice",
               "tags": {"domain": "sales", "pii": "no"}, "metadata": {"source": "erp"},
               "format": "csv"}),
    )
    .await;
    assert_eq!(a["zone"], "transformed");
    assert_eq!(a["prefix"], "orders/");
    assert_eq!(a["owner"], "alice");
    let id = a["id"].as_i64().unwrap();
    // Default owner is the caller.
    let b = create_dataset(
        &app,
        json!({"name": "customers", "bucket": "transformed", "prefix": "cust"}),
    )
    .await;
    assert_eq!(b["owner"], "root", "the bootstrap admin's user name");
    assert_eq!(b["prefix"], "cust/");
    // Same name in another zone is fine; in the same zone it is a conflict.
    create_dataset(
        &app,
        json!({"name": "orders", "bucket": "raw", "prefix": "orders"}),
    )
    .await;
    let before = api(&app, "GET", "/datasets", None).await.1["datasets"]
        .as_array()
        .unwrap()
        .len();
    let bad = [
        (
            json!({"name": "orders", "bucket": "transformed", "prefix": "other"}),
            409,
            "Conflict",
        ),
        (
            json!({"name": "o2", "bucket": "transformed", "prefix": "orders/2024"}),
            409,
            "Conflict",
        ),
        (
            json!({"name": "o3", "bucket": "transformed", "prefix": ""}),
            409,
            "Conflict",
        ),
        (
            json!({"name": "o4", "bucket": "nosuchbucket", "prefix": "x"}),
            404,
            "NotFound",
        ),
        (
            json!({"name": "bad name!", "bucket": "raw", "prefix": "x"}),
            400,
            "InvalidField",
        ),
        (
            json!({"name": "o5", "bucket": "raw", "prefix": "x", "format": "xls"}),
            400,
            "InvalidField",
        ),
        (
            json!({"name": "o6", "bucket": "raw", "prefix": "x", "colour": 1}),
            400,
            "InvalidField",
        ),
        (
            json!({"name": "o7", "bucket": "raw", "tags": {"k": 5}}),
            400,
            "InvalidField",
        ),
        (json!({"bucket": "raw"}), 400, "InvalidField"),
        (json!([1, 2]), 400, "InvalidField"),
    ];
    for (body, status, code) in bad {
        let got = api(&app, "POST", "/datasets", Some(body.clone())).await;
        assert_api_err(&got, status, code);
        if code == "InvalidField" {
            assert!(got.1["error"]["field"].is_string(), "{body} -> {}", got.1);
        }
    }
    let e = api(
        &app,
        "POST",
        "/datasets",
        Some(json!({"name": "o7", "bucket": "raw", "tags": {"k": 5}})),
    )
    .await;
    assert_eq!(e.1["error"]["field"], "tags.k");
    let e = api(&app, "POST", "/datasets", Some(json!({"bucket": "raw"}))).await;
    assert_eq!(e.1["error"]["field"], "name");
    // Malformed JSON.
    let r = app
        .request("POST", "/api/v1/datasets", &[], "{\"name\": ")
        .await;
    assert_eq!(r.status, 400);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["error"]["code"], "MalformedJson");
    let after = api(&app, "GET", "/datasets", None).await.1["datasets"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after, "rejected requests change nothing");

    // Filters.
    let names = |v: &Value| -> Vec<String> {
        v["datasets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, v) = api(&app, "GET", "/datasets?zone=transformed", None).await;
    assert_eq!(names(&v), ["orders", "customers"]);
    let (_, v) = api(&app, "GET", "/datasets?tag=domain=sales&tag=pii=no", None).await;
    assert_eq!(names(&v), ["orders"]);
    let (_, v) = api(&app, "GET", "/datasets?tag=domain=hr", None).await;
    assert!(names(&v).is_empty());
    let (_, v) = api(
        &app,
        "GET",
        "/datasets?owner=alice&format=csv&bucket=transformed",
        None,
    )
    .await;
    assert_eq!(names(&v), ["orders"]);
    assert_api_err(
        &api(&app, "GET", "/datasets?zone=gold", None).await,
        400,
        "InvalidField",
    );
    assert_api_err(
        &api(&app, "GET", "/datasets?tag=novalue", None).await,
        400,
        "InvalidField",
    );
    assert_api_err(
        &api(&app, "GET", "/datasets?limit=0", None).await,
        400,
        "InvalidField",
    );
    // Cursor pagination.
    let (_, p1) = api(&app, "GET", "/datasets?limit=2", None).await;
    assert_eq!(names(&p1).len(), 2);
    let cursor = p1["next_cursor"].as_str().unwrap().to_string();
    let (_, p2) = api(
        &app,
        "GET",
        &format!("/datasets?limit=2&cursor={cursor}"),
        None,
    )
    .await;
    assert_eq!(names(&p2).len(), 1);
    assert!(p2["next_cursor"].is_null());

    // PATCH.
    let (st, v) = api(
        &app,
        "PATCH",
        &format!("/datasets/{id}"),
        Some(json!({"description": "All orders", "tags": {"domain": "sales"}, "format": null})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["description"], "All orders");
    assert_eq!(v["tags"], json!({"domain": "sales"}));
    assert!(v["format"].is_null());
    assert_eq!(v["owner"], "alice");
    assert_api_err(
        &api(
            &app,
            "PATCH",
            &format!("/datasets/{id}"),
            Some(json!({"name": "customers"})),
        )
        .await,
        409,
        "Conflict",
    );
    assert_api_err(
        &api(
            &app,
            "PATCH",
            &format!("/datasets/{id}"),
            Some(json!({"prefix": "cust/x"})),
        )
        .await,
        409,
        "Conflict",
    );
    assert_api_err(
        &api(
            &app,
            "PATCH",
            &format!("/datasets/{id}"),
            Some(json!({"owner": 3})),
        )
        .await,
        400,
        "InvalidField",
    );

    // DELETE keeps objects; purge removes them.
    app.put_ok("transformed", "orders/a.csv", "a\n1\n").await;
    app.put_ok("transformed", "cust/a.csv", "a\n1\n").await;
    let (st, v) = api(&app, "DELETE", &format!("/datasets/{id}"), None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["purged_objects"], 0);
    assert_eq!(app.get("transformed", "orders/a.csv").await.status, 200);
    assert_api_err(
        &api(&app, "GET", &format!("/datasets/{id}"), None).await,
        404,
        "NotFound",
    );
    let (st, v) = api(
        &app,
        "DELETE",
        &format!("/datasets/{}?purge=true", b["id"]),
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["purged_objects"], 1);
    assert_eq!(app.get("transformed", "cust/a.csv").await.status, 404);
}

#[tokio::test]
async fn governance_rules_gate_registration_and_moves() {
    let app = spawn_app().await;
    let rules = json!({"zones": {"curated": {"required_tags": ["owner", "classification"]}}});
    let (st, v) = api(&app, "PUT", "/governance", Some(rules.clone())).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(api(&app, "GET", "/governance", None).await.1, rules);
    let e = api(
        &app,
        "PUT",
        "/governance",
        Some(json!({"zones": {"gold": {}}})),
    )
    .await;
    assert_api_err(&e, 400, "InvalidField");
    let e = api(
        &app,
        "PUT",
        "/governance",
        Some(json!({"zones": {"raw": {"required_tags": [""]}}})),
    )
    .await;
    assert_api_err(&e, 400, "InvalidField");
    assert_eq!(e.1["error"]["field"], "zones.raw.required_tags[0]");

    let e = api(
        &app,
        "POST",
        "/datasets",
        Some(
            json!({"name": "kpis", "bucket": "curated", "prefix": "kpis", "tags": {"owner": "bi"}}),
        ),
    )
    .await;
    assert_api_err(&e, 422, "GovernanceViolation");
    assert_eq!(e.1["error"]["missing"], json!(["classification"]));
    let ok = create_dataset(
        &app,
        json!({"name": "kpis", "bucket": "curated", "prefix": "kpis",
               "tags": {"owner": "bi", "classification": "internal"}}),
    )
    .await;
    // Removing a required tag is refused too.
    let e = api(
        &app,
        "PATCH",
        &format!("/datasets/{}", ok["id"]),
        Some(json!({"tags": {"owner": "bi"}})),
    )
    .await;
    assert_api_err(&e, 422, "GovernanceViolation");

    // Moving into curated: by PATCHing the bucket, or by re-zoning the bucket.
    let t = create_dataset(
        &app,
        json!({"name": "t1", "bucket": "transformed", "prefix": "t1"}),
    )
    .await;
    let e = api(
        &app,
        "PATCH",
        &format!("/datasets/{}", t["id"]),
        Some(json!({"bucket": "curated"})),
    )
    .await;
    assert_api_err(&e, 422, "GovernanceViolation");
    assert_eq!(e.1["error"]["missing"], json!(["classification", "owner"]));
    let e = put_bucket_zone(&app, "transformed", "curated").await;
    assert_api_err(&e, 422, "GovernanceViolation");
    let (_, b) = api(&app, "GET", "/buckets/transformed", None).await;
    assert_eq!(b["zone"], "transformed", "a refused move changes nothing");
    // A name clash in the target zone is a conflict.
    create_dataset(
        &app,
        json!({"name": "kpis", "bucket": "raw", "prefix": "kpis"}),
    )
    .await;
    let e = put_bucket_zone(&app, "raw", "curated").await;
    assert_api_err(&e, 409, "Conflict");
    // With the tags in place the move goes through and the dataset follows.
    let (st, _) = api(
        &app,
        "PATCH",
        &format!("/datasets/{}", t["id"]),
        Some(json!({"tags": {"owner": "x", "classification": "public"}})),
    )
    .await;
    assert_eq!(st, 200);
    let (st, v) = put_bucket_zone(&app, "transformed", "curated").await;
    assert_eq!(st, 200, "{v}");
    let (_, d) = api(&app, "GET", &format!("/datasets/{}", t["id"]), None).await;
    assert_eq!(d["zone"], "curated");
}

#[tokio::test]
async fn statistics_follow_s3_writes() {
    let app = spawn_app().await;
    app.put_ok("transformed", "events/old.json", "{}").await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let ds = create_dataset(
        &app,
        json!({"name": "events", "bucket": "transformed", "prefix": "events"}),
    )
    .await;
    assert_eq!(
        ds["stats"]["object_count"], 1,
        "existing objects are counted at registration"
    );
    let id = ds["id"].as_i64().unwrap();
    let stats = || async {
        let (_, d) = api(&app, "GET", &format!("/datasets/{id}"), None).await;
        d["stats"].clone()
    };
    app.put_ok("transformed", "events/a.json", "0123456789")
        .await;
    app.put_ok("transformed", "events/b.json", "01234").await;
    app.put_ok("transformed", "eventsX/not-mine.json", "xxxxxxxxxxxxxxxxx")
        .await;
    app.put_ok("transformed", "other.json", "x").await;
    let s = stats().await;
    assert_eq!(s["object_count"], 3);
    assert_eq!(s["total_bytes"], 2 + 10 + 5);
    // Overwrite changes bytes, not count.
    app.put_ok("transformed", "events/a.json", "01").await;
    let s = stats().await;
    assert_eq!(s["object_count"], 3);
    assert_eq!(s["total_bytes"], 2 + 2 + 5);
    // Deleting the oldest object moves first_modified forward.
    let first_before = s["first_modified"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let r = app
        .request("DELETE", &obj("transformed", "events/old.json"), &[], "")
        .await;
    assert_eq!(r.status, 204);
    let s = stats().await;
    assert_eq!(s["object_count"], 2);
    assert_eq!(s["total_bytes"], 7);
    assert!(
        s["first_modified"].as_str().unwrap() > first_before.as_str(),
        "{s}"
    );
    assert!(s["last_modified"].as_str().unwrap() >= s["first_modified"].as_str().unwrap());
    // Bucket totals in /buckets match.
    let (_, b) = api(&app, "GET", "/buckets/transformed", None).await;
    assert_eq!(b["object_count"], 4);
    assert_eq!(b["total_bytes"], 7 + 17 + 1);
    // Moving the prefix recomputes.
    let (_, d) = api(
        &app,
        "PATCH",
        &format!("/datasets/{id}"),
        Some(json!({"prefix": "eventsX"})),
    )
    .await;
    assert_eq!(d["stats"]["object_count"], 1);
    assert_eq!(d["stats"]["total_bytes"], 17);
    // Stats survive a restart (they are stored, not cached).
    let app = app.restart();
    let (_, d) = api(&app, "GET", &format!("/datasets/{id}"), None).await;
    assert_eq!(d["stats"]["total_bytes"], 17);
}

/// A minimal Parquet file (no row groups) whose footer declares `columns`:
/// (name, physical type, repetition, converted type).
fn parquet_file(columns: &[(&str, i32, i32, Option<i32>)]) -> Vec<u8> {
    fn varint(mut u: u64, out: &mut Vec<u8>) {
        loop {
            let b = (u & 0x7f) as u8;
            u >>= 7;
            if u == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    fn zz(v: i64, out: &mut Vec<u8>) {
        varint(((v << 1) ^ (v >> 63)) as u64, out)
    }
    fn element(
        out: &mut Vec<u8>,
        ty: Option<i32>,
        rep: i32,
        name: &str,
        children: i32,
        conv: Option<i32>,
    ) {
        let mut last = 0;
        let mut field = |out: &mut Vec<u8>, id: i32, t: u8| {
            out.push((((id - last) as u8) << 4) | t);
            last = id;
        };
        if let Some(t) = ty {
            field(out, 1, 5);
            zz(t as i64, out);
        }
        field(out, 3, 5);
        zz(rep as i64, out);
        field(out, 4, 8);
        varint(name.len() as u64, out);
        out.extend_from_slice(name.as_bytes());
        if children > 0 {
            field(out, 5, 5);
            zz(children as i64, out);
        }
        if let Some(c) = conv {
            field(out, 6, 5);
            zz(c as i64, out);
        }
        out.push(0);
    }
    let mut footer = vec![0x15];
    zz(1, &mut footer);
    footer.push(0x19);
    let n = columns.len() + 1;
    if n < 15 {
        footer.push(((n as u8) << 4) | 12);
    } else {
        footer.push(0xfc);
        varint(n as u64, &mut footer);
    }
    element(&mut footer, None, 0, "schema", columns.len() as i32, None);
    for (name, ty, rep, conv) in columns {
        element(&mut footer, Some(*ty), *rep, name, 0, *conv);
    }
    footer.push(0x16);
    zz(0, &mut footer);
    footer.push(0x19);
    footer.push(0x0c);
    footer.push(0);
    let mut file = b"PAR1".to_vec();
    file.extend_from_slice(&footer);
    file.extend_from_slice(&(footer.len() as u32).to_le_bytes());
    file.extend_from_slice(b"PAR1");
    file
}

fn columns(schema: &Value) -> Vec<(String, String)> {
    schema["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().into(),
                c["type"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[tokio::test]
async fn crawl_infers_schemas_partitions_and_versions() {
    let app = spawn_app().await;
    // CSV with Hive partitions and a semicolon delimiter.
    app.put_ok(
        "transformed",
        "sales/year=2024/month=05/part-0.csv",
        "id;amount;day;note\n1;2.5;2024-05-01;x\n2;3;2024-05-02;\n",
    )
    .await;
    app.put_ok(
        "transformed",
        "sales/year=2024/month=06/part-0.csv",
        "id;amount;day;note\n3;4;2024-06-01;y\n",
    )
    .await;
    app.put_ok("transformed", "sales/_SUCCESS", "").await;
    let ds = create_dataset(
        &app,
        json!({"name": "sales", "bucket": "transformed", "prefix": "sales"}),
    )
    .await;
    let id = ds["id"].as_i64().unwrap();
    let (st, c) = api(&app, "POST", &format!("/datasets/{id}/crawl"), None).await;
    assert_eq!(st, 200, "{c}");
    assert_eq!(c["changed"], true);
    assert_eq!(c["version"], 1);
    assert_eq!(c["schema"]["format"], "csv");
    assert_eq!(c["schema"]["delimiter"], ";");
    assert_eq!(
        columns(&c["schema"]),
        [
            ("id", "integer"),
            ("amount", "float"),
            ("day", "date"),
            ("note", "string")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert_eq!(c["schema"]["columns"][3]["nullable"], true);
    assert_eq!(c["schema"]["partitions"][0]["name"], "year");
    assert_eq!(c["schema"]["partitions"][0]["type"], "integer");
    assert_eq!(c["schema"]["partitions"][1]["values"], json!(["05", "06"]));
    assert_eq!(c["schema"]["files_total"], 2);
    // The detected format is remembered.
    let (_, d) = api(&app, "GET", &format!("/datasets/{id}"), None).await;
    assert_eq!(d["format"], "csv");
    assert_eq!(d["schema_version"], 1);
    // A crawl without changes keeps the version.
    let (_, c) = api(&app, "POST", &format!("/datasets/{id}/crawl"), None).await;
    assert_eq!(c["changed"], false);
    assert_eq!(c["version"], 1);
    // New partition with a changed schema: `note` removed, `amount` retyped, `region` added.
    app.put_ok(
        "transformed",
        "sales/year=2024/month=07/part-0.csv",
        "id;amount;day;region\n4;n/a;2024-07-01;eu\n",
    )
    .await;
    let (_, c) = api(&app, "POST", &format!("/datasets/{id}/crawl"), None).await;
    assert_eq!(c["changed"], true, "{c}");
    assert_eq!(c["version"], 2);
    assert_eq!(c["versions"], json!([1, 2]));
    assert_eq!(c["diff"]["added"][0]["name"], "region");
    assert!(
        c["diff"]["removed"].as_array().unwrap().is_empty(),
        "note stays (nullable): {c}"
    );
    assert_eq!(
        c["diff"]["retyped"][0],
        json!({"name": "amount", "from": "float", "to": "string"})
    );
    let (st, v1) = api(
        &app,
        "GET",
        &format!("/datasets/{id}/schema?version=1"),
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(v1["version"], 1);
    assert!(v1["diff"].is_null());
    let (_, latest) = api(&app, "GET", &format!("/datasets/{id}/schema"), None).await;
    assert_eq!(latest["version"], 2);
    assert_api_err(
        &api(
            &app,
            "GET",
            &format!("/datasets/{id}/schema?version=9"),
            None,
        )
        .await,
        404,
        "NotFound",
    );
    assert_api_err(
        &api(
            &app,
            "GET",
            &format!("/datasets/{id}/schema?version=x"),
            None,
        )
        .await,
        400,
        "InvalidField",
    );

    // JSON lines.
    app.put_ok("transformed", "logs/2024.jsonl", "{\"ts\":\"2024-01-01T00:00:00Z\",\"level\":\"info\",\"n\":1}\n{\"ts\":\"2024-01-01T00:00:01Z\",\"level\":\"warn\",\"n\":2.5,\"extra\":{\"a\":1}}\n").await;
    let l = create_dataset(
        &app,
        json!({"name": "logs", "bucket": "transformed", "prefix": "logs"}),
    )
    .await;
    let (st, c) = api(&app, "POST", &format!("/datasets/{}/crawl", l["id"]), None).await;
    assert_eq!(st, 200, "{c}");
    assert_eq!(c["schema"]["format"], "jsonl");
    assert_eq!(
        columns(&c["schema"]),
        [
            ("ts", "timestamp"),
            ("level", "string"),
            ("n", "float"),
            ("extra", "struct")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );

    // Parquet, from the footer; then a file with a changed schema.
    let f1 = parquet_file(&[
        ("id", 2, 0, None),
        ("name", 6, 1, Some(0)),
        ("ts", 2, 1, Some(9)),
    ]);
    app.put_ok("curated", "pq/dt=2024-01-01/part-0.parquet", f1)
        .await;
    let p = create_dataset(
        &app,
        json!({"name": "pq", "bucket": "curated", "prefix": "pq", "format": "parquet"}),
    )
    .await;
    let (st, c) = api(&app, "POST", &format!("/datasets/{}/crawl", p["id"]), None).await;
    assert_eq!(st, 200, "{c}");
    assert_eq!(
        columns(&c["schema"]),
        [("id", "integer"), ("name", "string"), ("ts", "timestamp")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert_eq!(c["schema"]["columns"][0]["nullable"], false);
    assert_eq!(c["schema"]["partitions"][0]["type"], "date");
    // A later file drops `ts` and adds `score`: versions move on.
    let r = app
        .request(
            "DELETE",
            &obj("curated", "pq/dt=2024-01-01/part-0.parquet"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 204);
    let f2 = parquet_file(&[
        ("id", 2, 0, None),
        ("name", 6, 1, Some(0)),
        ("score", 5, 1, None),
    ]);
    app.put_ok("curated", "pq/dt=2024-01-02/part-0.parquet", f2)
        .await;
    let (_, c) = api(&app, "POST", &format!("/datasets/{}/crawl", p["id"]), None).await;
    assert_eq!(c["version"], 2, "{c}");
    assert_eq!(c["diff"]["added"][0]["name"], "score");
    assert_eq!(c["diff"]["removed"][0]["name"], "ts");

    // Unreadable data and empty prefixes are 422.
    app.put_ok("curated", "broken/x.parquet", "not parquet at all")
        .await;
    let b = create_dataset(
        &app,
        json!({"name": "broken", "bucket": "curated", "prefix": "broken"}),
    )
    .await;
    assert_api_err(
        &api(&app, "POST", &format!("/datasets/{}/crawl", b["id"]), None).await,
        422,
        "UnreadableData",
    );
    let e = create_dataset(
        &app,
        json!({"name": "empty", "bucket": "curated", "prefix": "empty"}),
    )
    .await;
    assert_api_err(
        &api(&app, "POST", &format!("/datasets/{}/crawl", e["id"]), None).await,
        422,
        "UnreadableData",
    );
    assert_api_err(
        &api(&app, "GET", &format!("/datasets/{}/schema", e["id"]), None).await,
        404,
        "NotFound",
    );
}

#[tokio::test]
async fn search_ranks_filters_and_counts_facets() {
    let app = spawn_app().await;
    let mk = |name: &str, bucket: &str, desc: &str, owner: &str, tags: Value, format: &str| {
        json!({"name": name, "bucket": bucket, "prefix": name, "description": desc,
               "owner": owner, "tags": tags, "format": format,
               "metadata": {"steward": {"team": "revenue ops"}}})
    };
    create_dataset(
        &app,
        mk(
            "revenue_daily",
            "curated",
            "Daily totals",
            "ann",
            json!({"domain": "finance"}),
            "parquet",
        ),
    )
    .await;
    create_dataset(
        &app,
        mk(
            "orders",
            "transformed",
            "Orders with revenue per line",
            "bob",
            json!({"domain": "sales"}),
            "csv",
        ),
    )
    .await;
    create_dataset(
        &app,
        mk(
            "customers",
            "raw",
            "Customer master data",
            "bob",
            json!({"domain": "sales", "pii": "yes"}),
            "jsonl",
        ),
    )
    .await;
    create_dataset(
        &app,
        mk(
            "web_logs",
            "raw",
            "Clickstream",
            "cid",
            json!({"domain": "web"}),
            "jsonl",
        ),
    )
    .await;

    let (st, r) = api(&app, "GET", "/search?q=revenue", None).await;
    assert_eq!(st, 200, "{r}");
    let names: Vec<&str> = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["dataset"]["name"].as_str().unwrap())
        .collect();
    // A name hit ranks above a description hit; metadata values are searchable too.
    assert_eq!(names[0], "revenue_daily");
    assert_eq!(names[1], "orders");
    assert_eq!(r["total"], 4, "metadata 'revenue ops' matches all: {r}");
    assert!(
        r["results"][0]["score"].as_f64().unwrap() > r["results"][1]["score"].as_f64().unwrap()
    );
    assert_eq!(
        r["facets"]["zone"],
        json!({"raw": 2, "transformed": 1, "curated": 1})
    );
    assert_eq!(r["facets"]["owner"]["bob"], 2);
    assert_eq!(r["facets"]["format"]["jsonl"], 2);
    assert_eq!(r["facets"]["tags"]["domain=sales"], 2);

    // Filters.
    let (_, r) = api(
        &app,
        "GET",
        "/search?q=revenue&zone=raw&tag=domain=sales",
        None,
    )
    .await;
    assert_eq!(r["total"], 1);
    assert_eq!(r["results"][0]["dataset"]["name"], "customers");
    let (_, r) = api(
        &app,
        "GET",
        "/search?q=customer&owner=bob&format=jsonl",
        None,
    )
    .await;
    assert_eq!(r["total"], 1);
    let (_, r) = api(&app, "GET", "/search?q=cust*", None).await;
    assert_eq!(r["results"][0]["dataset"]["name"], "customers");
    let (_, r) = api(&app, "GET", "/search?q=pii%20yes", None).await;
    assert_eq!(r["total"], 1, "tags are searchable");
    let (_, r) = api(&app, "GET", "/search?q=nothing-like-this", None).await;
    assert_eq!(r["total"], 0);
    // Without q: everything that passes the filters, by name.
    let (_, r) = api(&app, "GET", "/search?zone=raw", None).await;
    assert_eq!(r["total"], 2);
    assert_eq!(r["results"][0]["dataset"]["name"], "customers");
    // Pagination.
    let (_, r) = api(&app, "GET", "/search?q=revenue&limit=3", None).await;
    assert_eq!(r["results"].as_array().unwrap().len(), 3);
    let (_, r2) = api(
        &app,
        "GET",
        &format!(
            "/search?q=revenue&limit=3&cursor={}",
            r["next_cursor"].as_str().unwrap()
        ),
        None,
    )
    .await;
    assert_eq!(r2["results"].as_array().unwrap().len(), 1);
    // Column names become searchable after a crawl; updates re-index.
    app.put_ok("raw", "web_logs/a.csv", "session_id,url\n1,/\n")
        .await;
    let (_, d) = api(&app, "GET", "/datasets?owner=cid", None).await;
    let id = d["datasets"][0]["id"].as_i64().unwrap();
    let (_, r) = api(&app, "GET", "/search?q=session", None).await;
    assert_eq!(r["total"], 0);
    let (st, c) = api(
        &app,
        "PATCH",
        &format!("/datasets/{id}"),
        Some(json!({"format": "csv"})),
    )
    .await;
    assert_eq!(st, 200, "{c}");
    let (st, c) = api(&app, "POST", &format!("/datasets/{id}/crawl"), None).await;
    assert_eq!(st, 200, "{c}");
    let (_, r) = api(&app, "GET", "/search?q=session_id", None).await;
    assert_eq!(r["results"][0]["dataset"]["name"], "web_logs");
    let (_, _) = api(&app, "DELETE", &format!("/datasets/{id}"), None).await;
    let (_, r) = api(&app, "GET", "/search?q=session_id", None).await;
    assert_eq!(r["total"], 0, "deleted datasets leave the index");
    // Errors.
    assert_api_err(
        &api(&app, "GET", "/search?q=%22%2A%2A", None).await,
        400,
        "InvalidField",
    );
    assert_api_err(
        &api(&app, "GET", "/search?q=a&limit=1000", None).await,
        400,
        "InvalidField",
    );
    assert_api_err(
        &api(&app, "GET", "/search?q=a&q=b", None).await,
        400,
        "InvalidField",
    );
}
