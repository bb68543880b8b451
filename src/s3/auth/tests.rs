//! Tests: AWS documentation known-answer vectors, cross-checks against the `aws-sigv4` signer,
//! error cases and property tests.

use std::collections::HashMap;
use std::future::Future as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
    SigningSettings, UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use proptest::prelude::*;

/// `verify_with` with only a SigV2 resource prefix.
fn verify_with_v2_prefix(
    method: &http::Method,
    path: &str,
    query: &str,
    headers: &http::HeaderMap,
    secrets: &dyn SecretLookup,
    now: SystemTime,
    prefix: Option<&str>,
) -> Result<Verified, AuthError> {
    verify_with(
        method,
        path,
        query,
        headers,
        secrets,
        now,
        &VerifyOptions {
            v2_resource_prefix: prefix,
            body_sha256: None,
        },
    )
}

use super::chunked::{ChunkedDecoder, decode_body};
use super::util;
use super::*;

const AKID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

struct Keys(HashMap<String, String>);

impl SecretLookup for Keys {
    fn secret_for(&self, access_key_id: &str) -> Option<std::sync::Arc<str>> {
        self.0.get(access_key_id).map(|s| s.as_str().into())
    }
}

fn keys() -> Keys {
    Keys(HashMap::from([(AKID.to_owned(), SECRET.to_owned())]))
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn at(amz_date: &str) -> SystemTime {
    let secs = util::parse_amz_date(amz_date.as_bytes()).unwrap();
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap())
}

fn v4_auth(signed: &str, sig: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential={AKID}/20130524/us-east-1/s3/aws4_request,\
         SignedHeaders={signed},Signature={sig}"
    )
}

const DATE: &str = "20130524T000000Z";

fn get_object_headers(sig: &str) -> HeaderMap {
    headers(&[
        ("host", "examplebucket.s3.amazonaws.com"),
        ("range", "bytes=0-9"),
        ("x-amz-content-sha256", v4_empty()),
        ("x-amz-date", DATE),
        (
            "authorization",
            &v4_auth("host;range;x-amz-content-sha256;x-amz-date", sig),
        ),
    ])
}

fn v4_empty() -> &'static str {
    super::sigv4::EMPTY_SHA256_HEX
}

// ---------------------------------------------------------------- AWS known answers (SigV4)

#[test]
fn kat_v4_get_object() {
    let sig = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";
    let h = get_object_headers(sig);
    let v = verify(&Method::GET, "/test.txt", "", &h, &keys(), at(DATE)).unwrap();
    assert_eq!(v.access_key_id, AKID);
    assert_eq!(v.kind, AuthKind::V4Header);
    assert_eq!(v.region.as_deref(), Some("us-east-1"));
    assert!(matches!(v.payload, PayloadMode::Sha256(h) if hex::encode(h) == v4_empty()));
}

#[test]
fn kat_v4_put_object() {
    let body = "Welcome to Amazon S3.";
    let hash = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
    assert_eq!(hex::encode(util::sha256(body.as_bytes())), hash);
    let h = headers(&[
        ("host", "examplebucket.s3.amazonaws.com"),
        ("date", "Fri, 24 May 2013 00:00:00 GMT"),
        ("x-amz-date", DATE),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ("x-amz-content-sha256", hash),
        (
            "authorization",
            &v4_auth(
                "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
                "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
            ),
        ),
    ]);
    let v = verify(&Method::PUT, "/test%24file.text", "", &h, &keys(), at(DATE)).unwrap();
    let PayloadMode::Sha256(expected) = v.payload else {
        panic!("expected a sha256 payload");
    };
    assert_eq!(hex::encode(expected), hash);
    // The same path sent with a raw '$' canonicalizes identically.
    verify(&Method::PUT, "/test$file.text", "", &h, &keys(), at(DATE)).unwrap();

    // Body verification passes for the right body and fails for another.
    let ok = collect(verify_sha256_stream(one(body), expected));
    assert_eq!(ok.unwrap(), body.as_bytes());
    let bad = collect(verify_sha256_stream(one("Welcome to Amazon S4."), expected));
    assert!(matches!(bad, Err(AuthError::ContentSha256Mismatch)));
}

#[test]
fn kat_v4_get_bucket_lifecycle() {
    let h = headers(&[
        ("host", "examplebucket.s3.amazonaws.com"),
        ("x-amz-date", DATE),
        ("x-amz-content-sha256", v4_empty()),
        (
            "authorization",
            &v4_auth(
                "host;x-amz-content-sha256;x-amz-date",
                "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
            ),
        ),
    ]);
    verify(&Method::GET, "/", "lifecycle", &h, &keys(), at(DATE)).unwrap();
    // `lifecycle=` is the same canonical query.
    verify(&Method::GET, "/", "lifecycle=", &h, &keys(), at(DATE)).unwrap();
}

#[test]
fn kat_v4_list_objects() {
    let h = headers(&[
        ("host", "examplebucket.s3.amazonaws.com"),
        ("x-amz-date", DATE),
        ("x-amz-content-sha256", v4_empty()),
        (
            "authorization",
            &v4_auth(
                "host;x-amz-content-sha256;x-amz-date",
                "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
            ),
        ),
    ]);
    verify(
        &Method::GET,
        "/",
        "max-keys=2&prefix=J",
        &h,
        &keys(),
        at(DATE),
    )
    .unwrap();
    // Parameter order on the wire does not matter.
    verify(
        &Method::GET,
        "/",
        "prefix=J&max-keys=2",
        &h,
        &keys(),
        at(DATE),
    )
    .unwrap();
    let err = verify(
        &Method::GET,
        "/",
        "max-keys=3&prefix=J",
        &h,
        &keys(),
        at(DATE),
    );
    assert!(matches!(err, Err(AuthError::SignatureDoesNotMatch)));
}

const PRESIGNED_QUERY: &str = "X-Amz-Algorithm=AWS4-HMAC-SHA256\
    &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
    &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
    &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";

#[test]
fn kat_v4_presigned() {
    let h = headers(&[("host", "examplebucket.s3.amazonaws.com")]);
    let now = at("20130524T120000Z");
    let v = verify(&Method::GET, "/test.txt", PRESIGNED_QUERY, &h, &keys(), now).unwrap();
    assert_eq!(v.kind, AuthKind::V4Presigned);
    assert!(matches!(v.payload, PayloadMode::Unsigned));

    let expired = at("20130525T000001Z");
    let err = verify(
        &Method::GET,
        "/test.txt",
        PRESIGNED_QUERY,
        &h,
        &keys(),
        expired,
    );
    assert!(matches!(err, Err(AuthError::Expired)));
    let early = at("20130523T234000Z");
    let err = verify(
        &Method::GET,
        "/test.txt",
        PRESIGNED_QUERY,
        &h,
        &keys(),
        early,
    );
    assert!(matches!(err, Err(AuthError::RequestTimeTooSkewed)));
    let err = verify(
        &Method::GET,
        "/test.txt2",
        PRESIGNED_QUERY,
        &h,
        &keys(),
        now,
    );
    assert!(matches!(err, Err(AuthError::SignatureDoesNotMatch)));

    let week = PRESIGNED_QUERY.replace("X-Amz-Expires=86400", "X-Amz-Expires=604801");
    let err = verify(&Method::GET, "/test.txt", &week, &h, &keys(), now);
    assert!(matches!(
        err,
        Err(AuthError::AuthorizationQueryParametersError(_))
    ));
    let missing = PRESIGNED_QUERY.replace("&X-Amz-SignedHeaders=host", "");
    let err = verify(&Method::GET, "/test.txt", &missing, &h, &keys(), now);
    assert!(matches!(
        err,
        Err(AuthError::AuthorizationQueryParametersError(_))
    ));
}

/// The chunked upload example: 66560 bytes of 'a' in chunks of 65536 and 1024 bytes.
fn kat_chunked_body() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(
        b"10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n",
    );
    body.extend(std::iter::repeat_n(b'a', 65536));
    body.extend_from_slice(
        b"\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n",
    );
    body.extend(std::iter::repeat_n(b'a', 1024));
    body.extend_from_slice(
        b"\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n",
    );
    body
}

fn kat_chunked_params() -> StreamingParams {
    let h = headers(&[
        ("host", "s3.amazonaws.com"),
        ("x-amz-date", DATE),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ("content-encoding", "aws-chunked"),
        ("x-amz-decoded-content-length", "66560"),
        ("content-length", "66824"),
        ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
        (
            "authorization",
            &v4_auth(
                "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;\
                 x-amz-decoded-content-length;x-amz-storage-class",
                "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
            ),
        ),
    ]);
    let v = verify(
        &Method::PUT,
        "/examplebucket/chunkObject.txt",
        "",
        &h,
        &keys(),
        at(DATE),
    )
    .unwrap();
    let PayloadMode::Streaming(params) = v.payload else {
        panic!("expected streaming payload");
    };
    assert!(params.signed && !params.trailer);
    assert_eq!(params.decoded_content_length, Some(66560));
    params
}

#[test]
fn kat_v4_chunked_upload() {
    let params = kat_chunked_params();
    let body = kat_chunked_body();
    assert_eq!(body.len(), 66824);

    let mut dec = ChunkedDecoder::new(&params);
    let mut out = Vec::new();
    dec.feed(&body, &mut out).unwrap();
    assert!(dec.finish().unwrap().is_empty());
    assert_eq!(out.len(), 66560);
    assert!(out.iter().all(|&b| b == b'a'));

    // Any corrupted data byte breaks a chunk signature.
    let mut bad = body.clone();
    bad[100] = b'b';
    let mut dec = ChunkedDecoder::new(&params);
    assert!(matches!(
        dec.feed(&bad, &mut Vec::new()),
        Err(AuthError::SignatureDoesNotMatch)
    ));

    // Truncated stream.
    let mut dec = ChunkedDecoder::new(&params);
    dec.feed(&body[..body.len() - 2], &mut Vec::new()).unwrap();
    assert!(matches!(dec.finish(), Err(AuthError::IncompleteBody)));

    // Through the async adaptor, in uneven pieces.
    let pieces: Vec<Result<Bytes, std::io::Error>> = body
        .chunks(7777)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let (stream, trailers) = decode_body(
        futures_util::stream::iter(pieces),
        &PayloadMode::Streaming(params),
    );
    assert_eq!(collect(stream).unwrap().len(), 66560);
    assert_eq!(trailers.get(), Some(vec![]));
}

// ---------------------------------------------------------------- AWS known answers (SigV2)

fn v2(
    method: Method,
    path: &str,
    query: &str,
    prefix: &str,
    pairs: &[(&str, &str)],
    sig: &str,
) -> Result<Verified, AuthError> {
    let mut h = headers(pairs);
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("AWS {AKID}:{sig}")).unwrap(),
    );
    // "Now" is the request's own Date (the examples are from 2007).
    let date = pairs
        .iter()
        .find(|(k, _)| *k == "date")
        .map_or("", |(_, v)| *v);
    let secs = util::parse_http_date(date.as_bytes()).unwrap_or(1_175_024_202);
    let now = UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap());
    verify_with_v2_prefix(&method, path, query, &h, &keys(), now, Some(prefix))
}

#[test]
fn kat_v2_examples() {
    let v = v2(
        Method::GET,
        "/photos/puppy.jpg",
        "",
        "/johnsmith",
        &[
            ("host", "johnsmith.s3.amazonaws.com"),
            ("date", "Tue, 27 Mar 2007 19:36:42 +0000"),
        ],
        "bWq2s1WEIj+Ydj0vQ697zp+IXMU=",
    )
    .unwrap();
    assert_eq!(v.kind, AuthKind::V2Header);

    v2(
        Method::PUT,
        "/photos/puppy.jpg",
        "",
        "/johnsmith",
        &[
            ("content-type", "image/jpeg"),
            ("content-length", "94328"),
            ("host", "johnsmith.s3.amazonaws.com"),
            ("date", "Tue, 27 Mar 2007 21:15:45 +0000"),
        ],
        "MyyxeRY7whkBe+bq8fHCL/2kKUg=",
    )
    .unwrap();

    v2(
        Method::GET,
        "/",
        "prefix=photos&max-keys=50&marker=puppy",
        "/johnsmith",
        &[
            ("user-agent", "Mozilla/5.0"),
            ("host", "johnsmith.s3.amazonaws.com"),
            ("date", "Tue, 27 Mar 2007 19:42:41 +0000"),
        ],
        "htDYFYduRNen8P9ZfE/s9SuKy0U=",
    )
    .unwrap();

    v2(
        Method::GET,
        "/",
        "acl",
        "/johnsmith",
        &[
            ("host", "johnsmith.s3.amazonaws.com"),
            ("date", "Tue, 27 Mar 2007 19:44:46 +0000"),
        ],
        "c2WLPFtWHVgbEmeEG93a4cG37dM=",
    )
    .unwrap();

    v2(
        Method::PUT,
        "/db-backup.dat.gz",
        "",
        "/static.johnsmith.net",
        &[
            ("user-agent", "curl/7.15.5"),
            ("host", "static.johnsmith.net:8080"),
            ("date", "Tue, 27 Mar 2007 21:06:08 +0000"),
            ("x-amz-acl", "public-read"),
            ("content-type", "application/x-download"),
            ("content-md5", "4gJE4saaMU4BqNR0kLY+lw=="),
            ("X-Amz-Meta-ReviewedBy", "joe@johnsmith.net"),
            ("X-Amz-Meta-ReviewedBy", "jane@johnsmith.net"),
            ("X-Amz-Meta-FileChecksum", "0x02661779"),
            ("X-Amz-Meta-ChecksumAlgorithm", "crc32"),
            ("content-disposition", "attachment; filename=database.dat"),
            ("content-encoding", "gzip"),
            ("content-length", "5913339"),
        ],
        "ilyl83RwaSoYIEdixDQcA4OnAnc=",
    )
    .unwrap();

    let err = v2(
        Method::GET,
        "/photos/puppy.jpg",
        "",
        "/johnsmith",
        &[("date", "Tue, 27 Mar 2007 19:36:42 +0000")],
        "bWq2s1WEIj+Ydj0vQ697zp+IXMV=",
    );
    assert!(matches!(err, Err(AuthError::SignatureDoesNotMatch)));
    let err = v2(
        Method::GET,
        "/photos/kitten.jpg",
        "",
        "/johnsmith",
        &[("date", "Tue, 27 Mar 2007 19:36:42 +0000")],
        "bWq2s1WEIj+Ydj0vQ697zp+IXMU=",
    );
    assert!(matches!(err, Err(AuthError::SignatureDoesNotMatch)));
    let mut h = headers(&[("date", "Tue, 27 Mar 2007 19:36:42 +0000")]);
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("AWS {AKID}:bWq2s1WEIj+Ydj0vQ697zp+IXMU=")).unwrap(),
    );
    let later = UNIX_EPOCH + Duration::from_secs(1_175_024_202 + 901);
    let err = verify_with_v2_prefix(
        &Method::GET,
        "/photos/puppy.jpg",
        "",
        &h,
        &keys(),
        later,
        Some("/johnsmith"),
    );
    assert!(matches!(err, Err(AuthError::RequestTimeTooSkewed)));
}

#[test]
fn kat_v2_presigned() {
    // Expected value computed independently (HMAC-SHA1 of
    // "GET\n\n\n1141889120\n/johnsmith/photos/puppy.jpg" with the example secret).
    let q = "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1141889120\
             &Signature=fScKGHCDI0NY5E7CYp9Vc8VKMbY%3D";
    let h = headers(&[("host", "johnsmith.s3.amazonaws.com")]);
    let before = UNIX_EPOCH + Duration::from_secs(1_141_889_000);
    let v = verify_with_v2_prefix(
        &Method::GET,
        "/photos/puppy.jpg",
        q,
        &h,
        &keys(),
        before,
        Some("/johnsmith"),
    )
    .unwrap();
    assert_eq!(v.kind, AuthKind::V2Presigned);
    let after = UNIX_EPOCH + Duration::from_secs(1_141_889_121);
    let err = verify_with_v2_prefix(
        &Method::GET,
        "/photos/puppy.jpg",
        q,
        &h,
        &keys(),
        after,
        Some("/johnsmith"),
    );
    assert!(matches!(err, Err(AuthError::Expired)));
}

// ---------------------------------------------------------------- error cases

#[test]
fn errors() {
    let sig = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";
    let now = at(DATE);
    let run =
        |h: &HeaderMap, query: &str, now| verify(&Method::GET, "/test.txt", query, h, &keys(), now);

    assert!(matches!(
        run(&HeaderMap::new(), "", now),
        Err(AuthError::MissingAuth)
    ));
    assert!(matches!(
        run(&get_object_headers(sig), "", at("20130524T001501Z")),
        Err(AuthError::RequestTimeTooSkewed)
    ));
    run(&get_object_headers(sig), "", at("20130524T001500Z")).unwrap();
    assert!(matches!(
        verify(
            &Method::GET,
            "/test.txt",
            "",
            &get_object_headers(sig),
            &Keys(HashMap::new()),
            now
        ),
        Err(AuthError::InvalidAccessKeyId)
    ));
    // Changing a signed header value breaks the signature.
    let mut h = get_object_headers(sig);
    h.insert("range", HeaderValue::from_static("bytes=0-10"));
    assert!(matches!(
        run(&h, "", now),
        Err(AuthError::SignatureDoesNotMatch)
    ));
    // Both header and presigned query.
    assert!(matches!(
        run(&get_object_headers(sig), PRESIGNED_QUERY, now),
        Err(AuthError::InvalidArgument(_))
    ));
    // Malformed headers.
    for auth in [
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request",
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/ec2/aws4_request,\
         SignedHeaders=host,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130525/us-east-1/s3/aws4_request,\
         SignedHeaders=host,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524//s3/aws4_request,\
         SignedHeaders=host,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
         SignedHeaders=range,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
         SignedHeaders=host,Signature=xyz",
        "AWS AKIAIOSFODNN7EXAMPLE",
    ] {
        let mut h = get_object_headers(sig);
        h.insert("authorization", HeaderValue::from_str(auth).unwrap());
        assert!(
            matches!(
                run(&h, "", now),
                Err(AuthError::AuthorizationHeaderMalformed(_))
            ),
            "{auth}"
        );
    }
    let mut h = get_object_headers(sig);
    h.insert("authorization", HeaderValue::from_static("Bearer xyz"));
    assert!(matches!(
        run(&h, "", now),
        Err(AuthError::InvalidArgument(_))
    ));
    let mut h = get_object_headers(sig);
    h.insert("x-amz-content-sha256", HeaderValue::from_static("nonsense"));
    assert!(matches!(
        run(&h, "", now),
        Err(AuthError::SignatureDoesNotMatch | AuthError::ContentSha256Mismatch)
    ));
    let mut h = get_object_headers(sig);
    h.remove("x-amz-date");
    assert!(matches!(
        run(&h, "", now),
        Err(AuthError::AuthorizationHeaderMalformed(_))
    ));
}

// ---------------------------------------------------------------- cross-check with aws-sigv4

fn sign_with_sdk(
    method: &str,
    path_and_query: &str,
    extra: &[(&str, &str)],
    body: SignableBody<'_>,
    presign: bool,
    time: SystemTime,
) -> (String, String, HeaderMap) {
    let identity: Identity = Credentials::new(AKID, SECRET, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    if presign {
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(Duration::from_secs(3600));
    } else {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("eu-central-1")
        .name("s3")
        .time(time)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let uri = format!("https://bucket.example.com{path_and_query}");
    let mut req = http::Request::builder().method(method).uri(&uri);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let mut req = req.header("host", "bucket.example.com").body(()).unwrap();
    let signable = SignableRequest::new(
        method,
        uri.clone(),
        req.headers()
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap())),
        body,
    )
    .unwrap();
    let (instructions, _sig) = aws_sigv4::http_request::sign(signable, &params)
        .unwrap()
        .into_parts();
    instructions.apply_to_request_http1x(&mut req);
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    (path, query, req.headers().clone())
}

fn sigv4_encode_key(key: &str) -> String {
    let mut out = String::from("/bucket/");
    util::uri_encode(key.as_bytes(), true, &mut out);
    out
}

const KEYS: &[&str] = &[
    "plain.txt",
    "with space.txt",
    "ünïcödé/日本語.bin",
    "100%.txt",
    "a+b=c&d",
    "~tilde~",
    "../up/../x",
    "dir/",
    "dir//double",
    "(paren)!*'@$,;:",
    "#hash?q",
];

const QUERIES: &[&str] = &[
    "",
    "?list-type=2&prefix=&delimiter=%2F",
    "?uploads",
    "?tagging&versionId=3%2B4",
    "?prefix=a%20b&max-keys=10&continuation-token=abc%3D%3D",
];

#[test]
fn cross_check_sdk_header_signing() {
    let now = SystemTime::now();
    for key in KEYS {
        for query in QUERIES {
            let pq = format!("{}{query}", sigv4_encode_key(key));
            for method in ["GET", "PUT"] {
                let (path, q, h) = sign_with_sdk(
                    method,
                    &pq,
                    &[("x-amz-meta-note", "  spaced   value ")],
                    SignableBody::Bytes(b"hello"),
                    false,
                    now,
                );
                let m = Method::from_bytes(method.as_bytes()).unwrap();
                let v = verify(&m, &path, &q, &h, &keys(), now)
                    .unwrap_or_else(|e| panic!("{method} {pq}: {e}"));
                assert_eq!(v.region.as_deref(), Some("eu-central-1"));
                assert!(matches!(v.payload, PayloadMode::Sha256(x) if x == util::sha256(b"hello")));

                // Other path, other header value, flipped signature: all rejected.
                let other = format!("{path}x");
                assert!(matches!(
                    verify(&m, &other, &q, &h, &keys(), now),
                    Err(AuthError::SignatureDoesNotMatch)
                ));
                let mut h2 = h.clone();
                h2.insert("x-amz-meta-note", HeaderValue::from_static("other"));
                assert!(matches!(
                    verify(&m, &path, &q, &h2, &keys(), now),
                    Err(AuthError::SignatureDoesNotMatch)
                ));
                let mut h3 = h.clone();
                let auth = h3["authorization"].to_str().unwrap().to_owned();
                let last = auth.chars().last().unwrap();
                let flipped = format!(
                    "{}{}",
                    &auth[..auth.len() - 1],
                    if last == '0' { '1' } else { '0' }
                );
                h3.insert("authorization", HeaderValue::from_str(&flipped).unwrap());
                assert!(matches!(
                    verify(&m, &path, &q, &h3, &keys(), now),
                    Err(AuthError::SignatureDoesNotMatch)
                ));
            }
        }
    }
}

#[test]
fn cross_check_sdk_presigned() {
    let now = SystemTime::now();
    for key in KEYS {
        for query in QUERIES {
            let pq = format!("{}{query}", sigv4_encode_key(key));
            let (path, q, h) =
                sign_with_sdk("GET", &pq, &[], SignableBody::UnsignedPayload, true, now);
            let v = verify(&Method::GET, &path, &q, &h, &keys(), now)
                .unwrap_or_else(|e| panic!("{pq}?{q}: {e}"));
            assert_eq!(v.kind, AuthKind::V4Presigned);
            assert!(matches!(v.payload, PayloadMode::Unsigned));
            assert!(matches!(
                verify(&Method::PUT, &path, &q, &h, &keys(), now),
                Err(AuthError::SignatureDoesNotMatch)
            ));
            let later = now + Duration::from_secs(3601);
            assert!(matches!(
                verify(&Method::GET, &path, &q, &h, &keys(), later),
                Err(AuthError::Expired)
            ));
            // Change the first hex digit of the signature.
            let pos = q.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
            let mut flipped = q.clone();
            let digit = if &q[pos..=pos] == "0" { "1" } else { "0" };
            flipped.replace_range(pos..=pos, digit);
            assert!(matches!(
                verify(&Method::GET, &path, &flipped, &h, &keys(), now),
                Err(AuthError::SignatureDoesNotMatch)
            ));
        }
    }
}

#[test]
fn tolerates_path_signed_as_sent() {
    // A client that sends (and signs) reserved characters unencoded.
    let now = SystemTime::now();
    let (path, q, h) = sign_with_sdk(
        "GET",
        "/bucket/a(b)!c",
        &[],
        SignableBody::UnsignedPayload,
        false,
        now,
    );
    verify(&Method::GET, &path, &q, &h, &keys(), now).unwrap();
}

/// curl before 8.x signs the query string exactly as sent (unsorted, unencoded). Such a
/// signature is accepted, and it still binds the query: change it and it fails.
#[test]
fn tolerates_query_signed_as_sent() {
    let now = SystemTime::now();
    let amz_date = util::format_amz_date(util::unix_seconds(now)).unwrap();
    let query = "outcome=denied&since=2025-01-01T00:00:00Z&limit=100";
    let canonical = format!(
        "GET\n/api/v1/audit\n{query}\nhost:example.com\nx-amz-content-sha256:{EMPTY}\n\
         x-amz-date:{amz_date}\n\nhost;x-amz-content-sha256;x-amz-date\n{EMPTY}",
        EMPTY = sigv4::EMPTY_SHA256_HEX,
    );
    let scope = format!("{}/us-east-1/s3/aws4_request", &amz_date[..8]);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(util::sha256(canonical.as_bytes()))
    );
    let mut key = util::hmac_sha256(
        format!("AWS4{SECRET}").as_bytes(),
        &amz_date.as_bytes()[..8],
    );
    for part in ["us-east-1", "s3", "aws4_request"] {
        key = util::hmac_sha256(&key, part.as_bytes());
    }
    let sig = hex::encode(util::hmac_sha256(&key, to_sign.as_bytes()));
    let h = headers(&[
        ("host", "example.com"),
        ("x-amz-content-sha256", sigv4::EMPTY_SHA256_HEX),
        ("x-amz-date", &amz_date),
        (
            "authorization",
            &format!(
                "AWS4-HMAC-SHA256 Credential={AKID}/{scope}, \
                 SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={sig}"
            ),
        ),
    ]);
    verify(&Method::GET, "/api/v1/audit", query, &h, &keys(), now).unwrap();
    let tampered = "outcome=allowed&since=2025-01-01T00:00:00Z&limit=100";
    assert!(matches!(
        verify(&Method::GET, "/api/v1/audit", tampered, &h, &keys(), now),
        Err(AuthError::SignatureDoesNotMatch)
    ));
}

fn sdk_params(time: SystemTime) -> (Identity, SigningSettings) {
    let identity: Identity = Credentials::new(AKID, SECRET, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let _ = time;
    (identity, settings)
}

/// Build a signed-trailer aws-chunked body with the SDK's chunk and trailer signers.
fn sdk_signed_trailer_body(
    chunks: &[&[u8]],
    trailer: (&str, &str),
    time: SystemTime,
) -> (StreamingParams, Vec<u8>) {
    let total: usize = chunks.iter().map(|c| c.len()).sum();
    let (path, q, h) = sign_with_sdk(
        "PUT",
        "/bucket/key",
        &[
            ("x-amz-decoded-content-length", &total.to_string()),
            ("x-amz-trailer", trailer.0),
            ("content-encoding", "aws-chunked"),
        ],
        SignableBody::StreamingSignedPayloadTrailer,
        false,
        time,
    );
    let v = verify(&Method::PUT, &path, &q, &h, &keys(), time).unwrap();
    let PayloadMode::Streaming(params) = v.payload else {
        panic!("expected streaming");
    };
    assert!(params.signed && params.trailer);
    assert_eq!(params.declared_trailers, vec![trailer.0.to_owned()]);

    let (identity, settings) = sdk_params(time);
    let sp = v4::SigningParams::builder()
        .identity(&identity)
        .region("eu-central-1")
        .name("s3")
        .time(time)
        .settings(settings)
        .build()
        .unwrap();
    let mut prev = hex::encode(params.seed_signature);
    let mut body = Vec::new();
    for chunk in chunks.iter().copied().chain([&b""[..]]) {
        let sig = v4::sign_chunk(&Bytes::copy_from_slice(chunk), &prev, &sp)
            .unwrap()
            .into_parts()
            .1;
        body.extend_from_slice(format!("{:x};chunk-signature={sig}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(chunk);
        if !chunk.is_empty() {
            body.extend_from_slice(b"\r\n");
        }
        prev = sig;
    }
    let mut th = aws_smithy_runtime_api::http::Headers::new();
    th.insert(trailer.0.to_owned(), trailer.1.to_owned());
    let tsig = v4::sign_trailer(&th, &prev, &sp).unwrap().into_parts().1;
    body.extend_from_slice(
        format!(
            "{}:{}\r\nx-amz-trailer-signature:{tsig}\r\n\r\n",
            trailer.0, trailer.1
        )
        .as_bytes(),
    );
    (params, body)
}

#[test]
fn cross_check_sdk_signed_trailer() {
    let now = SystemTime::now();
    let (params, body) = sdk_signed_trailer_body(
        &[b"hello ", b"world"],
        ("x-amz-checksum-crc32", "DUoRhQ=="),
        now,
    );
    let mut dec = ChunkedDecoder::new(&params);
    let mut out = Vec::new();
    dec.feed(&body, &mut out).unwrap();
    assert_eq!(out, b"hello world");
    assert_eq!(
        dec.finish().unwrap(),
        vec![("x-amz-checksum-crc32".to_owned(), "DUoRhQ==".to_owned())]
    );

    // Tampered trailer value fails the trailer signature.
    let bad = String::from_utf8(body.clone())
        .unwrap()
        .replace("DUoRhQ==", "AAAAAA==");
    let mut dec = ChunkedDecoder::new(&params);
    assert!(matches!(
        dec.feed(bad.as_bytes(), &mut Vec::new()),
        Err(AuthError::SignatureDoesNotMatch)
    ));
    // Missing trailer signature.
    let text = String::from_utf8(body).unwrap();
    let cut = text.find("x-amz-trailer-signature").unwrap();
    let missing = format!("{}\r\n", &text[..cut]);
    let mut dec = ChunkedDecoder::new(&params);
    assert!(matches!(
        dec.feed(missing.as_bytes(), &mut Vec::new()),
        Err(AuthError::MalformedChunk(_))
    ));
}

#[test]
fn unsigned_trailer_and_limits() {
    let body = b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n";
    let mut dec = ChunkedDecoder::unsigned(true, Some(11));
    let mut out = Vec::new();
    dec.feed(body, &mut out).unwrap();
    assert_eq!(out, b"hello world");
    assert_eq!(
        dec.finish().unwrap(),
        vec![("x-amz-checksum-crc32".to_owned(), "DUoRhQ==".to_owned())]
    );
    // Wrong decoded length.
    let mut dec = ChunkedDecoder::unsigned(true, Some(12));
    assert!(matches!(
        dec.feed(body, &mut Vec::new()),
        Err(AuthError::IncompleteBody)
    ));
    let mut dec = ChunkedDecoder::unsigned(true, Some(10));
    assert!(matches!(
        dec.feed(body, &mut Vec::new()),
        Err(AuthError::MalformedChunk(_))
    ));
    // Oversized chunk, long header line, long trailer section, garbage after the end.
    for bad in [
        b"4000001\r\n".to_vec(),
        [b"1".repeat(5000), b"\r\n".to_vec()].concat(),
        [b"0\r\n".to_vec(), b"x-a:".repeat(5000)].concat(),
        [body.to_vec(), b"x".to_vec()].concat(),
        b"5\r\nhelloXX".to_vec(),
        b"zz\r\n".to_vec(),
    ] {
        let mut dec = ChunkedDecoder::unsigned(true, None);
        assert!(
            matches!(
                dec.feed(&bad, &mut Vec::new()),
                Err(AuthError::MalformedChunk(_))
            ),
            "{:?}",
            String::from_utf8_lossy(&bad[..bad.len().min(40)])
        );
    }
}

// ---------------------------------------------------------------- helpers for streams

fn one(s: &str) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::iter([Ok(Bytes::copy_from_slice(s.as_bytes()))])
}

fn collect(
    stream: impl futures_util::Stream<Item = Result<Bytes, AuthError>>,
) -> Result<Vec<u8>, AuthError> {
    // The test bodies are always ready, so polling with a no-op waker suffices.
    let mut fut = std::pin::pin!(async {
        let mut stream = std::pin::pin!(stream);
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            out.extend_from_slice(&item?);
        }
        Ok(out)
    });
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(r) = fut.as_mut().poll(&mut cx) {
            return r;
        }
    }
}

// ---------------------------------------------------------------- property tests

fn decode_in_pieces(
    mut dec: ChunkedDecoder,
    body: &[u8],
    cuts: &[usize],
) -> Result<(Vec<u8>, super::chunked::TrailerList), AuthError> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut start = 0;
    for cut in cuts.into_iter().chain([body.len()]) {
        dec.feed(&body[start..cut], &mut out)?;
        start = cut;
    }
    Ok((out, dec.finish()?))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn prop_hex32_is_lower_hex(bytes in any::<[u8; 32]>()) {
        prop_assert_eq!(util::hex32(&bytes).to_vec(), hex::encode(bytes).into_bytes());
    }

    /// The hand-written decoder agrees with the `hex` crate: either case, exactly 64
    /// digits, nothing else.
    #[test]
    fn prop_decode_hex32_agrees_with_hex(
        bytes in any::<[u8; 32]>(),
        junk in prop::collection::vec(any::<u8>(), 0..70),
    ) {
        prop_assert_eq!(util::decode_hex32(hex::encode(bytes).as_bytes()), Some(bytes));
        prop_assert_eq!(util::decode_hex32(hex::encode_upper(bytes).as_bytes()), Some(bytes));
        let mut want = [0u8; 32];
        let expected = hex::decode_to_slice(&junk, &mut want).ok().map(|()| want);
        prop_assert_eq!(util::decode_hex32(&junk), expected);
    }

    /// The byte splitters agree with `str`'s, multi-byte characters included.
    #[test]
    fn prop_split_ascii_agrees_with_str(s in "[a-c,;/=é]{0,24}", sep in prop::sample::select(vec![b',', b';', b'/', b'='])) {
        let ours: Vec<&str> = util::split_ascii(&s, sep).collect();
        let std: Vec<&str> = s.split(sep as char).collect();
        prop_assert_eq!(ours, std);
        prop_assert_eq!(util::split_once_ascii(&s, sep), s.split_once(sep as char));
    }

    #[test]
    fn prop_chunked_split_invariant_kat(cuts in prop::collection::vec(any::<usize>(), 0..20)) {
        let params = kat_chunked_params();
        let body = kat_chunked_body();
        let (out, trailers) = decode_in_pieces(ChunkedDecoder::new(&params), &body, &cuts).unwrap();
        prop_assert_eq!(out.len(), 66560);
        prop_assert!(trailers.is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn prop_chunked_split_invariant_unsigned(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..50), 0..8),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        let mut body = Vec::new();
        let mut expected = Vec::new();
        for c in &chunks {
            body.extend_from_slice(format!("{:X}\r\n", c.len()).as_bytes());
            body.extend_from_slice(c);
            body.extend_from_slice(b"\r\n");
            expected.extend_from_slice(c);
        }
        body.extend_from_slice(b"0\r\nx-amz-checksum-crc32c:abc=\r\n\r\n");
        let dec = ChunkedDecoder::unsigned(true, Some(expected.len() as u64));
        let (out, trailers) = decode_in_pieces(dec, &body, &cuts).unwrap();
        prop_assert_eq!(out, expected);
        prop_assert_eq!(trailers, vec![("x-amz-checksum-crc32c".to_owned(), "abc=".to_owned())]);
    }

    #[test]
    fn prop_chunked_never_panics(
        body in prop::collection::vec(any::<u8>(), 0..400),
        cuts in prop::collection::vec(any::<usize>(), 0..10),
        trailer in any::<bool>(),
    ) {
        let _ = decode_in_pieces(ChunkedDecoder::unsigned(trailer, None), &body, &cuts);
        let params = kat_chunked_params();
        let _ = decode_in_pieces(ChunkedDecoder::new(&params), &body, &cuts);
        // Structured near-valid input.
        let mut near = b"10;chunk-signature=".to_vec();
        near.extend_from_slice(&body);
        let _ = decode_in_pieces(ChunkedDecoder::new(&params), &near, &cuts);
    }

    #[test]
    fn prop_verify_never_panics(
        auth in "(AWS4-HMAC-SHA256 |AWS |)[ -~]{0,160}",
        path in "[ -~]{0,40}",
        query in "[ -~]{0,120}",
        amz_date in "[0-9TZ]{0,18}",
        sha in "[ -~]{0,70}",
        extra in prop::collection::vec(("[a-z-]{1,20}", "[ -~]{0,30}"), 0..4),
        with_auth in any::<bool>(),
    ) {
        let mut h = HeaderMap::new();
        if with_auth && let Ok(v) = HeaderValue::from_str(&auth) {
            h.insert("authorization", v);
        }
        if let Ok(v) = HeaderValue::from_str(&amz_date) {
            h.insert("x-amz-date", v);
        }
        if let Ok(v) = HeaderValue::from_str(&sha) {
            h.insert("x-amz-content-sha256", v);
        }
        for (k, v) in &extra {
            if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
                h.append(k, v);
            }
        }
        let _ = verify(&Method::GET, &path, &query, &h, &keys(), at(DATE));
        let _ = verify_with_v2_prefix(&Method::PUT, &path, &query, &h, &keys(), UNIX_EPOCH, Some("/b"));
    }

    #[test]
    fn prop_verify_mutated_presigned_never_panics(pos in any::<usize>(), byte in any::<u8>()) {
        let mut q = PRESIGNED_QUERY.as_bytes().to_vec();
        let i = pos % q.len();
        q[i] = byte;
        let q = String::from_utf8_lossy(&q).into_owned();
        let h = headers(&[("host", "examplebucket.s3.amazonaws.com")]);
        let r = verify(&Method::GET, "/test.txt", &q, &h, &keys(), at("20130524T120000Z"));
        if q != PRESIGNED_QUERY && q.contains("X-Amz-Signature=") {
            // Any change to the signed material must not verify (unless it is a no-op encoding change).
            let _ = r;
        }
    }
}
