//! Property test: arbitrary UTF-8 keys round-trip through PUT, GET, HEAD, listing
//! (with encoding-type=url) and DELETE.

use proptest::prelude::*;

use crate::helpers::*;

const B: &str = "propkeys";

fn key_strategy() -> impl Strategy<Value = String> {
    // Any Unicode scalar values, 1..=60 chars, at most 1024 bytes.
    proptest::collection::vec(any::<char>(), 1..60)
        .prop_map(|cs| cs.into_iter().collect::<String>())
        .prop_filter("key length", |k| !k.is_empty() && k.len() <= 1024)
}

#[test]
fn arbitrary_keys_round_trip() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let app = rt.block_on(async {
        let app = spawn_app().await;
        app.create_bucket(B).await;
        app
    });
    let config = ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(key in key_strategy())| {
        rt.block_on(async {
            let body = format!("body:{key}");
            let r = app.put(B, &key, body.clone()).await;
            prop_assert_eq!(r.status, 200, "PUT {:?}: {}", key, r.text());
            let r = app.get(B, &key).await;
            prop_assert_eq!(r.status, 200, "GET {:?}", key);
            prop_assert_eq!(&r.body, body.as_bytes());
            let r = app
                .request("GET", &format!("/{B}?list-type=2&encoding-type=url&prefix={}", q(&key)), &[], "")
                .await;
            prop_assert_eq!(r.status, 200, "list {:?}: {}", key, r.text());
            let listed: Vec<String> = r.xml_all("Key").iter().map(|k| url_decode_plus(k)).collect();
            prop_assert!(listed.contains(&key), "{:?} not in {:?}", key, listed);
            let r = app.request("DELETE", &obj(B, &key), &[], "").await;
            prop_assert_eq!(r.status, 204);
            prop_assert_eq!(app.head(B, &key).await.status, 404);
            Ok(())
        })?;
    });
}
