//! Users, keys, grants and the audit trail, over HTTP against the real binary: the
//! authorization matrix (S3 and REST x every kind of caller), audit completeness,
//! bad input, tokens, sealed secrets and `tarn admin`.

use serde_json::{Value, json};

use crate::helpers::{TestApp, obj, spawn_app};

/// How a request authenticates.
#[derive(Clone, Debug)]
enum Caller {
    Anonymous,
    /// A real key id with a wrong secret.
    WrongSecret(String),
    Key(String, String),
}

/// A request as `caller`; returns status and body text.
async fn call(app: &TestApp, who: &Caller, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut r = app
        .req(method, path)
        .body(body.as_bytes().to_vec())
        .header("content-type", "application/json");
    r = match who {
        Caller::Anonymous => r.anonymous(),
        Caller::WrongSecret(ak) => r.creds(ak, "0000000000000000000000000000000000000000"),
        Caller::Key(ak, sk) => r.creds(ak, sk),
    };
    let resp = r.send().await;
    (resp.status, resp.text())
}

/// A signed JSON request as root.
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
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, v)
}

/// Creates a user with one access key; returns the key.
async fn user_with_key(app: &TestApp, name: &str, role: &str) -> Caller {
    let (st, v) = api(
        app,
        "POST",
        "/users",
        Some(json!({"name": name, "role": role})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let (st, k) = api(app, "POST", &format!("/users/{name}/keys"), None).await;
    assert_eq!(st, 201, "{k}");
    Caller::Key(
        k["access_key_id"].as_str().unwrap().to_string(),
        k["secret_access_key"].as_str().unwrap().to_string(),
    )
}

async fn grant(app: &TestApp, principal: &str, resource: &str, permission: &str) {
    let (st, v) = api(
        app,
        "POST",
        "/grants",
        Some(json!({"principal": principal, "resource": resource, "permission": permission})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
}

struct World {
    app: TestApp,
    callers: Vec<(&'static str, Caller)>,
    dataset: i64,
}

/// Bucket `lake` with dataset `sales` (prefix `sales/`, owned by `olga`) and an
/// object outside it; one caller of each kind.
async fn world() -> World {
    let app = spawn_app().await;
    app.create_bucket("lake").await;
    app.put_ok("lake", "sales/a.csv", "id\n1\n").await;
    app.put_ok("lake", "other/x.csv", "id\n2\n").await;
    let nogrant = user_with_key(&app, "nora", "member").await;
    let reader = user_with_key(&app, "rita", "member").await;
    let writer = user_with_key(&app, "will", "member").await;
    let owner = user_with_key(&app, "olga", "member").await;
    let admin = user_with_key(&app, "ada", "admin").await;
    let disabled = user_with_key(&app, "dave", "member").await;
    let (st, d) = api(
        &app,
        "POST",
        "/datasets",
        Some(json!({"name": "sales", "bucket": "lake", "prefix": "sales/", "owner": "olga"})),
    )
    .await;
    assert_eq!(st, 201, "{d}");
    let id = d["id"].as_i64().unwrap();
    let (st, d) = api(
        &app,
        "POST",
        "/datasets",
        Some(json!({"name": "other", "bucket": "lake", "prefix": "other/"})),
    )
    .await;
    assert_eq!(st, 201, "{d}");
    grant(&app, "user:rita", &format!("dataset:{id}"), "read").await;
    grant(&app, "user:will", &format!("dataset:{id}"), "write").await;
    grant(&app, "user:dave", &format!("dataset:{id}"), "read").await;
    let Caller::Key(dave_key, _) = &disabled else {
        unreachable!()
    };
    let (st, v) = api(
        &app,
        "PATCH",
        &format!("/users/dave/keys/{dave_key}"),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["enabled"], false);
    let Caller::Key(root_ak, _) = Caller::Key(app.access_key.clone(), String::new()) else {
        unreachable!()
    };
    let callers = vec![
        ("anonymous", Caller::Anonymous),
        ("wrong secret", Caller::WrongSecret(root_ak)),
        ("disabled key", disabled),
        ("member without grant", nogrant),
        ("member with read", reader),
        ("member with write", writer),
        ("dataset owner", owner),
        ("admin", admin),
    ];
    World {
        app,
        callers,
        dataset: id,
    }
}

#[tokio::test]
async fn authorization_matrix_s3_and_rest() {
    let w = world().await;
    let app = &w.app;
    let id = w.dataset;
    // Expected status per caller, in the order of `world().callers`:
    // anon, wrong, disabled, nogrant, read, write, owner, admin.
    let ds_get = format!("/api/v1/datasets/{id}");
    let rows: Vec<(&str, &str, String, &str, [u16; 8])> = vec![
        (
            "GetObject in dataset",
            "GET",
            obj("lake", "sales/a.csv"),
            "",
            [403, 403, 403, 403, 200, 200, 200, 200],
        ),
        (
            "HeadObject in dataset",
            "HEAD",
            obj("lake", "sales/a.csv"),
            "",
            [403, 403, 403, 403, 200, 200, 200, 200],
        ),
        (
            "GetObject outside dataset",
            "GET",
            obj("lake", "other/x.csv"),
            "",
            [403, 403, 403, 403, 403, 403, 403, 200],
        ),
        (
            "ListObjectsV2 dataset prefix",
            "GET",
            "/lake?list-type=2&prefix=sales/".into(),
            "",
            [403, 403, 403, 403, 200, 200, 200, 200],
        ),
        (
            "ListObjectsV2 whole bucket",
            "GET",
            "/lake?list-type=2".into(),
            "",
            [403, 403, 403, 403, 403, 403, 403, 200],
        ),
        (
            "HeadBucket",
            "HEAD",
            "/lake".into(),
            "",
            [403, 403, 403, 403, 403, 403, 403, 200],
        ),
        (
            "CreateBucket",
            "PUT",
            "/newbucket".into(),
            "",
            [403, 403, 403, 403, 403, 403, 403, 200],
        ),
        (
            "ListBuckets",
            "GET",
            "/".into(),
            "",
            [403, 403, 403, 200, 200, 200, 200, 200],
        ),
        (
            "REST get dataset",
            "GET",
            ds_get.clone(),
            "",
            [401, 403, 403, 403, 200, 200, 200, 200],
        ),
        (
            "REST patch dataset",
            "PATCH",
            ds_get.clone(),
            r#"{"description": "d"}"#,
            [401, 403, 403, 403, 403, 403, 200, 200],
        ),
        (
            "REST schema",
            "GET",
            format!("{ds_get}/schema"),
            "",
            [401, 403, 403, 403, 404, 404, 404, 404],
        ),
        (
            "REST list users",
            "GET",
            "/api/v1/users".into(),
            "",
            [401, 403, 403, 403, 403, 403, 403, 200],
        ),
        (
            "REST audit",
            "GET",
            "/api/v1/audit?limit=1".into(),
            "",
            [401, 403, 403, 403, 403, 403, 403, 200],
        ),
        (
            "REST set bucket zone",
            "PUT",
            "/api/v1/buckets/lake".into(),
            r#"{"zone": "transformed"}"#,
            [401, 403, 403, 403, 403, 403, 403, 200],
        ),
    ];
    let mut failures = Vec::new();
    for (name, method, path, body, want) in &rows {
        for ((who, caller), want) in w.callers.iter().zip(want) {
            let (got, text) = call(app, caller, method, path, body).await;
            if got != *want {
                failures.push(format!("{name} as {who}: want {want}, got {got}: {text}"));
            }
        }
    }
    // Writes: each caller writes its own key; a refused write leaves nothing behind.
    let want_put = [403, 403, 403, 403, 403, 200, 200, 200];
    for (i, ((who, caller), want)) in w.callers.iter().zip(want_put).enumerate() {
        let key = format!("sales/by-{i}.csv");
        let (got, text) = call(app, caller, "PUT", &obj("lake", &key), "x\n").await;
        if got != want {
            failures.push(format!(
                "PutObject as {who}: want {want}, got {got}: {text}"
            ));
        }
        let exists = app.head("lake", &key).await.status == 200;
        if exists != (want == 200) {
            failures.push(format!("PutObject as {who}: object exists = {exists}"));
        }
        let (got, _) = call(app, caller, "PUT", &obj("lake", &format!("other/{i}")), "x").await;
        let want_out = if who == &"admin" { 200 } else { 403 };
        if got != want_out {
            failures.push(format!(
                "PutObject outside as {who}: want {want_out}, got {got}"
            ));
        }
    }
    // Deletes: refused ones keep the object.
    let want_del = [403, 403, 403, 403, 403, 204, 204, 204];
    for ((who, caller), want) in w.callers.iter().zip(want_del) {
        app.put_ok("lake", "sales/victim.csv", "v").await;
        let (got, text) = call(app, caller, "DELETE", &obj("lake", "sales/victim.csv"), "").await;
        if got != want {
            failures.push(format!(
                "DeleteObject as {who}: want {want}, got {got}: {text}"
            ));
        }
        let exists = app.head("lake", "sales/victim.csv").await.status == 200;
        if exists == (want == 204) {
            failures.push(format!("DeleteObject as {who}: object exists = {exists}"));
        }
    }
    // Search: results, totals and facets cover only what the caller may read.
    let want_total = [
        None,
        None,
        None,
        Some(0),
        Some(1),
        Some(1),
        Some(1),
        Some(2),
    ];
    for ((who, caller), want) in w.callers.iter().zip(want_total) {
        let (st, text) = call(app, caller, "GET", "/api/v1/search", "").await;
        match want {
            None => {
                if st != 401 && st != 403 {
                    failures.push(format!("search as {who}: want refusal, got {st}"));
                }
            }
            Some(n) => {
                let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let facet_sum: u64 = v["facets"]["zone"]
                    .as_object()
                    .map(|o| o.values().filter_map(Value::as_u64).sum())
                    .unwrap_or(0);
                if st != 200 || v["total"] != n || facet_sum != n {
                    failures.push(format!("search as {who}: want {n} hits, got {st} {text}"));
                }
            }
        }
        if let Caller::Key(..) = caller {
            let (st, text) = call(app, caller, "GET", "/api/v1/datasets", "").await;
            if let Some(n) = want {
                let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let got = v["datasets"].as_array().map_or(0, Vec::len) as u64;
                if st != 200 || got != n {
                    failures.push(format!("list datasets as {who}: want {n}, got {st} {text}"));
                }
            }
        }
    }
    // Granting: the owner (manage) and admins may grant the dataset; readers may not.
    let want_grant = [401, 403, 403, 403, 403, 403, 201, 201];
    let grantees = [
        "nora", "nora", "nora", "nora", "nora", "nora", "nora", "will",
    ];
    for (((who, caller), want), to) in w.callers.iter().zip(want_grant).zip(grantees) {
        let body = json!({"principal": format!("user:{to}"), "resource": format!("dataset:{id}"),
                          "permission": "read"})
        .to_string();
        let (got, text) = call(app, caller, "POST", "/api/v1/grants", &body).await;
        if got != want {
            failures.push(format!("grant as {who}: want {want}, got {got}: {text}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn zone_and_group_grants_and_write_covers_read() {
    let app = spawn_app().await;
    app.create_bucket("zbk").await;
    app.put_ok("zbk", "k", "v").await;
    let (st, v) = api(&app, "POST", "/groups", Some(json!({"name": "analysts"}))).await;
    assert_eq!(st, 201, "{v}");
    let Caller::Key(ak, sk) = user_with_key(&app, "gina", "member").await else {
        unreachable!()
    };
    assert_eq!(
        app.req("GET", "/zbk/k").creds(&ak, &sk).send().await.status,
        403
    );
    // zb was created in `transformed` (the test servers' default zone).
    grant(&app, "group:analysts", "zone:transformed", "read").await;
    let (st, v) = api(
        &app,
        "PATCH",
        "/users/gina",
        Some(json!({"groups": ["analysts"]})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["groups"], json!(["analysts"]));
    assert_eq!(
        app.req("GET", "/zbk/k").creds(&ak, &sk).send().await.status,
        200
    );
    assert_eq!(
        app.req("GET", "/zbk?list-type=2")
            .creds(&ak, &sk)
            .send()
            .await
            .status,
        200
    );
    let r = app
        .req("PUT", "/zbk/new")
        .body("x")
        .creds(&ak, &sk)
        .send()
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    // Leaving the group takes the grant away at once.
    let (st, _) = api(&app, "PATCH", "/users/gina", Some(json!({"groups": []}))).await;
    assert_eq!(st, 200);
    assert_eq!(
        app.req("GET", "/zbk/k").creds(&ak, &sk).send().await.status,
        403
    );
    // A bucket write grant allows writing and reading.
    grant(&app, "user:gina", "bucket:zbk", "write").await;
    let r = app
        .req("PUT", "/zbk/new")
        .body("x")
        .creds(&ak, &sk)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        app.req("GET", "/zbk/k").creds(&ak, &sk).send().await.status,
        200
    );
    // Revoking works; deleting the user kills their keys.
    let (_, list) = api(&app, "GET", "/grants?principal=user:gina", None).await;
    let gid = list["grants"][0]["id"].as_i64().unwrap();
    let (st, _) = api(&app, "DELETE", &format!("/grants/{gid}"), None).await;
    assert_eq!(st, 204);
    assert_eq!(
        app.req("GET", "/zbk/k").creds(&ak, &sk).send().await.status,
        403
    );
    let (st, _) = api(&app, "DELETE", "/users/gina", None).await;
    assert_eq!(st, 204);
    let r = app.req("GET", "/").creds(&ak, &sk).send().await;
    assert_eq!(r.status, 403);
    assert_eq!(r.code().as_deref(), Some("InvalidAccessKeyId"));
}

#[tokio::test]
async fn audit_trail_is_complete_and_exportable() {
    let app = spawn_app().await;
    let Caller::Key(ak, sk) = user_with_key(&app, "mia", "member").await else {
        unreachable!()
    };
    // 2 requests so far (create user, create key).
    let mut n = 2;
    app.create_bucket("aud").await;
    n += 1;
    app.put_ok("aud", "a.txt", vec![b'x'; 4096]).await;
    n += 1;
    let got = app.get("aud", "a.txt").await;
    assert_eq!(got.status, 200);
    let get_id = got.header("x-amz-request-id").unwrap().to_string();
    n += 1;
    let denied = app.req("GET", "/aud/a.txt").creds(&ak, &sk).send().await;
    assert_eq!(denied.status, 403);
    let denied_id = denied.header("x-amz-request-id").unwrap().to_string();
    n += 1;
    let anon = app.req("GET", "/aud/a.txt").anonymous().send().await;
    assert_eq!(anon.status, 403);
    n += 1;
    let wrong = app
        .req("GET", "/aud/a.txt")
        .creds(&ak, "not-the-secret-not-the-secret-not-the-se")
        .send()
        .await;
    assert_eq!(wrong.status, 403);
    n += 1;
    let rest_anon = app.req("GET", "/api/v1/zones").anonymous().send().await;
    assert_eq!(rest_anon.status, 401);
    n += 1;
    let url = app.presign("GET", "/aud/a.txt", 300, std::time::SystemTime::now());
    let path = url
        .trim_start_matches(&format!("http://{}", app.addr))
        .to_string();
    let pre = app.req("GET", &path).anonymous().send().await;
    assert_eq!(pre.status, 200, "{}", pre.text());
    n += 1;
    let (st, _) = api(&app, "GET", "/datasets", None).await;
    assert_eq!(st, 200);
    n += 1;
    // Health probes are not audited.
    app.req("GET", "/health/live").anonymous().send().await;

    let (st, page) = api(&app, "GET", "/audit?limit=1000", None).await;
    assert_eq!(st, 200, "{page}");
    let records = page["records"].as_array().unwrap();
    assert_eq!(records.len(), n, "{page:#}");
    let find = |rid: &str| {
        records
            .iter()
            .find(|r| r["request_id"] == rid)
            .unwrap_or_else(|| panic!("no record {rid}"))
    };
    let g = find(&get_id);
    assert_eq!(g["action"], "GetObject");
    assert_eq!(g["resource"], "aud/a.txt");
    assert_eq!(g["principal"], "root");
    assert_eq!(g["access_key_id"], app.access_key.as_str());
    assert_eq!(g["outcome"], "allowed");
    assert_eq!(g["status"], 200);
    assert_eq!(g["bytes_out"], 4096);
    assert_eq!(g["source"], "127.0.0.1");
    let d = find(&denied_id);
    assert_eq!(d["principal"], "mia");
    assert_eq!(d["outcome"], "denied");
    assert_eq!(d["status"], 403);
    let put = records.iter().find(|r| r["action"] == "PutObject").unwrap();
    assert_eq!(put["bytes_in"], 4096);
    let unauth: Vec<&Value> = records
        .iter()
        .filter(|r| r["principal"].is_null())
        .collect();
    assert_eq!(unauth.len(), 3, "anonymous, wrong secret, REST anonymous");
    assert!(
        unauth.iter().any(|r| r["access_key_id"] == ak.as_str()),
        "claimed key recorded"
    );
    let rest = records
        .iter()
        .find(|r| r["action"] == "POST /api/v1/users")
        .expect("REST route as action");
    assert_eq!(rest["status"], 201);
    assert_eq!(
        records
            .iter()
            .filter(|r| r["action"] == "GetObject")
            .count(),
        5
    );
    // Filters and pagination.
    let (_, f) = api(&app, "GET", "/audit?outcome=denied", None).await;
    assert_eq!(f["records"].as_array().unwrap().len(), 4);
    let (_, f) = api(&app, "GET", "/audit?principal=mia", None).await;
    assert_eq!(f["records"].as_array().unwrap().len(), 1);
    let (_, f) = api(&app, "GET", "/audit?resource=aud/&action=GetObject", None).await;
    assert_eq!(f["records"].as_array().unwrap().len(), 5);
    let (_, p1) = api(&app, "GET", "/audit?limit=4", None).await;
    let cursor = p1["next_cursor"].as_str().unwrap().to_string();
    let (_, p2) = api(
        &app,
        "GET",
        &format!("/audit?limit=4&cursor={cursor}"),
        None,
    )
    .await;
    assert!(p2["records"][0]["id"].as_i64() > p1["records"][3]["id"].as_i64());
    let (_, f) = api(&app, "GET", "/audit?since=2999-01-01T00:00:00Z", None).await;
    assert_eq!(f["records"].as_array().unwrap().len(), 0);
    let (st, e) = api(&app, "GET", "/audit?since=yesterday", None).await;
    assert_eq!(st, 400);
    assert_eq!(e["error"]["field"], "since");
    // Export: JSON lines, every record so far, no secrets or signatures anywhere.
    let r = app
        .request("GET", "/api/v1/audit/export?since=0", &[], "")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    let text = r.text();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert!(lines.len() >= n + 6, "{} lines", lines.len());
    assert!(!text.contains(&app.secret_key) && !text.contains(&sk));
    assert!(!text.contains("Signature"), "no signatures in the trail");
}

#[tokio::test]
async fn audit_records_survive_a_clean_shutdown() {
    let mut app = spawn_app().await;
    app.create_bucket("flush").await;
    for i in 0..50 {
        app.put_ok("flush", &format!("k{i}"), "v").await;
    }
    let status = app.terminate();
    assert!(status.success());
    let app = app.restart();
    let (_, page) = api(&app, "GET", "/audit?action=PutObject&limit=1000", None).await;
    assert_eq!(page["records"].as_array().unwrap().len(), 50);
}

/// method, path, body, status, code, field.
type BadCase = (
    &'static str,
    &'static str,
    &'static str,
    u16,
    &'static str,
    Option<&'static str>,
);

#[tokio::test]
async fn bad_input_gets_clear_json_errors() {
    let app = spawn_app().await;
    let cases: Vec<BadCase> = vec![
        ("POST", "/users", "{not json", 400, "MalformedJson", None),
        ("POST", "/users", "", 400, "MalformedJson", None),
        (
            "POST",
            "/users",
            r#"{"name": "x"}"#,
            400,
            "InvalidField",
            Some("role"),
        ),
        (
            "POST",
            "/users",
            r#"{"name": "x", "role": "boss"}"#,
            400,
            "InvalidField",
            Some("role"),
        ),
        (
            "POST",
            "/users",
            r#"{"name": "a b", "role": "member"}"#,
            400,
            "InvalidField",
            Some("name"),
        ),
        (
            "POST",
            "/users",
            r#"{"name": "x", "role": "member", "extra": 1}"#,
            400,
            "InvalidField",
            Some("extra"),
        ),
        (
            "POST",
            "/users",
            r#"{"name": "x", "role": "member", "groups": ["nope"]}"#,
            404,
            "NotFound",
            None,
        ),
        (
            "POST",
            "/users",
            r#"{"name": "root", "role": "member"}"#,
            409,
            "Conflict",
            None,
        ),
        ("DELETE", "/users/root", "", 409, "Conflict", None),
        ("DELETE", "/users/ghost", "", 404, "NotFound", None),
        ("POST", "/users/ghost/keys", "", 404, "NotFound", None),
        (
            "POST",
            "/grants",
            r#"{"principal": "user:ghost", "resource": "zone:raw", "permission": "read"}"#,
            404,
            "NotFound",
            None,
        ),
        (
            "POST",
            "/grants",
            r#"{"principal": "alice", "resource": "zone:raw", "permission": "read"}"#,
            400,
            "InvalidField",
            Some("principal"),
        ),
        (
            "POST",
            "/grants",
            r#"{"principal": "user:root", "resource": "bucket:nosuch", "permission": "read"}"#,
            404,
            "NotFound",
            None,
        ),
        (
            "POST",
            "/grants",
            r#"{"principal": "user:root", "resource": "dataset:999", "permission": "read"}"#,
            404,
            "NotFound",
            None,
        ),
        (
            "POST",
            "/grants",
            r#"{"principal": "user:root", "resource": "shelf:1", "permission": "read"}"#,
            400,
            "InvalidField",
            Some("resource"),
        ),
        (
            "POST",
            "/grants",
            r#"{"principal": "user:root", "resource": "zone:lava", "permission": "read"}"#,
            400,
            "InvalidField",
            Some("resource"),
        ),
        (
            "POST",
            "/grants",
            r#"{"principal": "user:root", "resource": "zone:raw", "permission": "own"}"#,
            400,
            "InvalidField",
            Some("permission"),
        ),
        ("DELETE", "/grants/77", "", 404, "NotFound", None),
        (
            "POST",
            "/tokens",
            r#"{"ttl_secs": 0}"#,
            400,
            "InvalidField",
            Some("ttl_secs"),
        ),
        (
            "GET",
            "/audit?outcome=maybe",
            "",
            400,
            "InvalidField",
            Some("outcome"),
        ),
    ];
    let mut failures = Vec::new();
    for (method, path, body, status, code, field) in cases {
        let r = app
            .request(
                method,
                &format!("/api/v1{path}"),
                &[("content-type", "application/json")],
                body,
            )
            .await;
        let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        let ok = r.status == status
            && v["error"]["code"] == code
            && v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
            && field.is_none_or(|f| v["error"]["field"] == f);
        if !ok {
            failures.push(format!(
                "{method} {path} {body}: want {status} {code} {field:?}, got {} {v}",
                r.status
            ));
        }
    }
    // Duplicate user, duplicate grant.
    let (st, _) = api(
        &app,
        "POST",
        "/users",
        Some(json!({"name": "dup", "role": "member"})),
    )
    .await;
    assert_eq!(st, 201);
    let (st, v) = api(
        &app,
        "POST",
        "/users",
        Some(json!({"name": "dup", "role": "member"})),
    )
    .await;
    assert_eq!((st, v["error"]["code"].as_str()), (409, Some("Conflict")));
    grant(&app, "user:dup", "zone:raw", "read").await;
    let (st, v) = api(
        &app,
        "POST",
        "/grants",
        Some(json!({"principal": "user:dup", "resource": "zone:raw", "permission": "read"})),
    )
    .await;
    assert_eq!((st, v["error"]["code"].as_str()), (409, Some("Conflict")));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn bearer_tokens() {
    let app = spawn_app().await;
    let Caller::Key(ak, sk) = user_with_key(&app, "tom", "member").await else {
        unreachable!()
    };
    let r = app
        .req("POST", "/api/v1/tokens")
        .body(r#"{"ttl_secs": 600, "name": "cli"}"#)
        .creds(&ak, &sk)
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    let token = v["token"].as_str().unwrap().to_string();
    assert!(v["expires_at"].is_string());
    let bearer = format!("Bearer {token}");
    let r = app
        .req("GET", "/api/v1/zones")
        .anonymous()
        .header("authorization", bearer.as_str())
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // A member may not read users with a token either, nor mint tokens with one.
    let r = app
        .req("GET", "/api/v1/users")
        .anonymous()
        .header("authorization", bearer.as_str())
        .send()
        .await;
    assert_eq!(r.status, 403);
    let r = app
        .req("POST", "/api/v1/tokens")
        .anonymous()
        .header("authorization", bearer.as_str())
        .send()
        .await;
    assert_eq!(r.status, 403);
    // Long-lived tokens are for admins to make.
    let r = app
        .req("POST", "/api/v1/tokens")
        .body(r#"{"long_lived": true}"#)
        .creds(&ak, &sk)
        .send()
        .await;
    assert_eq!(r.status, 403);
    let (st, admin_tok) = api(
        &app,
        "POST",
        "/tokens",
        Some(json!({"user": "tom", "long_lived": true, "name": "ci"})),
    )
    .await;
    assert_eq!(st, 201, "{admin_tok}");
    assert!(admin_tok["expires_at"].is_null());
    let (_, list) = api(&app, "GET", "/tokens", None).await;
    assert_eq!(list["tokens"].as_array().unwrap().len(), 2);
    assert!(
        !list.to_string().contains(&token),
        "tokens are never listed"
    );
    // Revoked tokens stop working; bogus ones never did.
    let id = v["id"].as_i64().unwrap();
    let (st, _) = api(&app, "DELETE", &format!("/tokens/{id}"), None).await;
    assert_eq!(st, 204);
    let r = app
        .req("GET", "/api/v1/zones")
        .anonymous()
        .header("authorization", bearer.as_str())
        .send()
        .await;
    assert_eq!(r.status, 401);
    let r = app
        .req("GET", "/api/v1/zones")
        .anonymous()
        .header("authorization", "Bearer tarn_nope")
        .send()
        .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn secrets_are_sealed_at_rest_and_keys_survive_restart() {
    let app = spawn_app().await;
    let Caller::Key(ak, sk) = user_with_key(&app, "sam", "admin").await else {
        unreachable!()
    };
    assert_eq!(app.req("GET", "/").creds(&ak, &sk).send().await.status, 200);
    let (_, keys) = api(&app, "GET", "/users/sam/keys", None).await;
    assert!(
        !keys.to_string().contains(&sk),
        "listing never shows secrets"
    );
    let app = app.restart();
    assert_eq!(app.req("GET", "/").creds(&ak, &sk).send().await.status, 200);
    // Neither the database nor its WAL holds a secret in the clear.
    for f in ["tarn.db", "tarn.db-wal"] {
        if let Ok(bytes) = std::fs::read(app.data_path().join(f)) {
            assert!(!bytes.windows(sk.len()).any(|w| w == sk.as_bytes()), "{f}");
            assert!(
                !bytes
                    .windows(app.secret_key.len())
                    .any(|w| w == app.secret_key.as_bytes()),
                "{f}"
            );
        }
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(app.data_path().join("master.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // "last used" is recorded.
    let (_, keys) = api(&app, "GET", "/users/sam/keys", None).await;
    assert!(keys["keys"][0]["last_used_at"].is_string(), "{keys}");
}

#[tokio::test]
async fn admin_cli_changes_reach_a_running_server() {
    let app = spawn_app().await;
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tarn"))
            .arg("admin")
            .arg("--data-dir")
            .arg(app.data_path())
            .args(args)
            .output()
            .expect("run tarn admin");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, _, err) = cli(&["user", "create", "carl", "--role", "member"]);
    assert!(ok, "{err}");
    let (ok, out, err) = cli(&["key", "create", "carl"]);
    assert!(ok, "{err}");
    let k: Value = serde_json::from_str(&out).unwrap();
    let (ak, sk) = (
        k["access_key_id"].as_str().unwrap().to_string(),
        k["secret_access_key"].as_str().unwrap().to_string(),
    );
    app.create_bucket("cli").await;
    let (ok, _, err) = cli(&["grant", "create", "user:carl", "bucket:cli", "write"]);
    assert!(ok, "{err}");
    let mut status = 0;
    for _ in 0..50 {
        status = app
            .req("PUT", "/cli/x")
            .body("x")
            .creds(&ak, &sk)
            .send()
            .await
            .status;
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        status, 200,
        "the server picked up the CLI's user, key and grant"
    );
    let (ok, _, err) = cli(&["grant", "create", "user:nobody", "zone:raw", "read"]);
    assert!(!ok && err.contains("nobody"), "{err}");
    let (ok, out, _) = cli(&["user", "list"]);
    assert!(ok && out.contains("carl") && out.contains("root"));
}

#[tokio::test]
async fn grants_die_with_their_bucket() {
    let app = spawn_app().await;
    app.create_bucket("gone").await;
    let Caller::Key(ak, sk) = user_with_key(&app, "ben", "member").await else {
        unreachable!()
    };
    grant(&app, "user:ben", "bucket:gone", "write").await;
    assert_eq!(
        app.req("GET", "/gone?list-type=2")
            .creds(&ak, &sk)
            .send()
            .await
            .status,
        200
    );
    assert_eq!(app.request("DELETE", "/gone", &[], "").await.status, 204);
    app.create_bucket("gone").await;
    let r = app
        .req("GET", "/gone?list-type=2")
        .creds(&ak, &sk)
        .send()
        .await;
    assert_eq!(r.status, 403, "a re-created bucket does not inherit grants");
    let (_, g) = api(&app, "GET", "/grants?principal=user:ben", None).await;
    assert_eq!(g["grants"], json!([]));
}

/// The text of `path` as `caller`, asserting 200.
async fn get_ok(app: &TestApp, caller: &Caller, path: &str) -> String {
    let (st, text) = call(app, caller, "GET", path, "").await;
    assert_eq!(st, 200, "GET {path}: {text}");
    text
}

fn bucket_names(list: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(list).unwrap_or(Value::Null);
    v["buckets"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|b| b["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn bucket_and_zone_listings_show_members_only_what_they_may_read() {
    let w = world().await;
    let app = &w.app;
    app.create_bucket("hidden").await;
    app.put_ok("hidden", "secret.csv", "s\n").await;
    let bea = user_with_key(app, "bea", "member").await;
    grant(app, "user:bea", "bucket:lake", "read").await;
    let by_name = |n: &str| w.callers.iter().find(|(w, _)| *w == n).unwrap().1.clone();
    // S3 ListBuckets: names of the buckets where the caller may read something.
    let cases: [(&str, Caller, &[&str]); 5] = [
        ("member without grant", by_name("member without grant"), &[]),
        ("member with read", by_name("member with read"), &["lake"]),
        ("dataset owner", by_name("dataset owner"), &["lake"]),
        ("bucket reader", bea.clone(), &["lake"]),
        ("admin", by_name("admin"), &["hidden", "lake"]),
    ];
    for (who, caller, want) in &cases {
        let xml = get_ok(app, caller, "/").await;
        for b in ["lake", "hidden"] {
            let shown = xml.contains(&format!("<Name>{b}</Name>"));
            assert_eq!(shown, want.contains(&b), "ListBuckets as {who}: {b}: {xml}");
        }
    }
    // REST /buckets: buckets readable as a whole (their statistics cover every object).
    let rest: [(&str, Caller, &[&str]); 4] = [
        ("member with read", by_name("member with read"), &[]),
        ("dataset owner", by_name("dataset owner"), &[]),
        ("bucket reader", bea.clone(), &["lake"]),
        ("admin", by_name("admin"), &["hidden", "lake"]),
    ];
    for (who, caller, want) in &rest {
        let names = bucket_names(&get_ok(app, caller, "/api/v1/buckets").await);
        assert_eq!(names, *want, "/buckets as {who}");
    }
    // REST /zones: buckets, objects and datasets counted for the caller only.
    let zone = |text: &str| -> Value {
        let v: Value = serde_json::from_str(text).unwrap();
        v["zones"]
            .as_array()
            .unwrap()
            .iter()
            .find(|z| z["zone"] == "transformed")
            .unwrap()
            .clone()
    };
    let z = zone(&get_ok(app, &bea, "/api/v1/zones").await);
    assert_eq!(z["buckets"], json!(["lake"]), "{z}");
    assert_eq!(z["object_count"], 2, "{z}");
    assert_eq!(z["dataset_count"], 2, "{z}");
    let z = zone(&get_ok(app, &by_name("member with read"), "/api/v1/zones").await);
    assert_eq!(z["buckets"], json!([]), "{z}");
    assert_eq!(z["object_count"], 0, "{z}");
    assert_eq!(z["dataset_count"], 1, "{z}");
    let z = zone(&get_ok(app, &by_name("member without grant"), "/api/v1/zones").await);
    assert_eq!(
        (z["dataset_count"].clone(), z["total_bytes"].clone()),
        (json!(0), json!(0))
    );
    let z = zone(&get_ok(app, &by_name("admin"), "/api/v1/zones").await);
    assert_eq!(z["buckets"], json!(["hidden", "lake"]), "{z}");
    assert_eq!(z["object_count"], 3, "{z}");
}

/// A signed DeleteObjects of `keys` in `bucket` as `caller`.
async fn delete_objects(
    app: &TestApp,
    caller: &Caller,
    bucket: &str,
    keys: &[&str],
) -> (u16, String) {
    let Caller::Key(ak, sk) = caller else {
        panic!("needs a key")
    };
    let body: String = keys
        .iter()
        .map(|k| format!("<Object><Key>{k}</Key></Object>"))
        .collect();
    let body = format!("<Delete>{body}</Delete>");
    let md5 = {
        use base64::Engine;
        use md5::Digest;
        base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body.as_bytes()))
    };
    let r = app
        .req("POST", &format!("/{bucket}?delete"))
        .header("content-md5", md5)
        .body(body.into_bytes())
        .creds(ak, sk)
        .send()
        .await;
    (r.status, r.text())
}

#[tokio::test]
async fn delete_objects_is_authorized_key_by_key() {
    let w = world().await;
    let app = &w.app;
    let by_name = |n: &str| w.callers.iter().find(|(w, _)| *w == n).unwrap().1.clone();
    app.put_ok("lake", "sales/d1.csv", "1").await;
    app.put_ok("lake", "sales/d2.csv", "2").await;
    // A dataset writer deletes inside the dataset, not outside it.
    let (st, xml) = delete_objects(
        app,
        &by_name("member with write"),
        "lake",
        &["sales/d1.csv", "other/x.csv"],
    )
    .await;
    assert_eq!(st, 200, "{xml}");
    assert!(
        xml.contains("<Deleted><Key>sales/d1.csv</Key></Deleted>"),
        "{xml}"
    );
    assert!(
        xml.contains("<Error><Key>other/x.csv</Key><Code>AccessDenied</Code>"),
        "{xml}"
    );
    assert_eq!(app.head("lake", "sales/d1.csv").await.status, 404);
    assert_eq!(app.head("lake", "other/x.csv").await.status, 200);
    // A reader deletes nothing; every key is refused and stays.
    let (st, xml) =
        delete_objects(app, &by_name("member with read"), "lake", &["sales/d2.csv"]).await;
    assert_eq!(st, 200, "{xml}");
    assert!(xml.contains("<Code>AccessDenied</Code>"), "{xml}");
    assert_eq!(app.head("lake", "sales/d2.csv").await.status, 200);
    // A bucket that does not exist is refused whole for members (existence stays hidden).
    let (st, xml) = delete_objects(app, &by_name("member with write"), "nosuch", &["a"]).await;
    assert_eq!(st, 403, "{xml}");
    // The owner and admins delete as before.
    let (st, xml) = delete_objects(app, &by_name("dataset owner"), "lake", &["sales/d2.csv"]).await;
    assert_eq!(st, 200, "{xml}");
    assert!(
        xml.contains("<Deleted><Key>sales/d2.csv</Key></Deleted>"),
        "{xml}"
    );
    let (st, xml) = delete_objects(app, &by_name("admin"), "lake", &["other/x.csv"]).await;
    assert_eq!(st, 200, "{xml}");
    assert_eq!(app.head("lake", "other/x.csv").await.status, 404);
}

#[tokio::test]
async fn audit_records_past_retention_are_deleted() {
    let app = crate::helpers::spawn_app_with_config(
        "[audit]\nretention_secs = 2\npurge_interval_secs = 1\n",
    )
    .await;
    app.create_bucket("old").await;
    for i in 0..20 {
        app.put_ok("old", &format!("k{i}"), "v").await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    app.put_ok("old", "fresh", "v").await;
    // The records of the first puts are gone; the fresh one (and the queries) remain.
    let (st, page) = api(&app, "GET", "/audit?action=PutObject&limit=1000", None).await;
    assert_eq!(st, 200, "{page}");
    let recs = page["records"].as_array().unwrap();
    assert_eq!(recs.len(), 1, "{page}");
    assert_eq!(recs[0]["resource"], "old/fresh");
}
