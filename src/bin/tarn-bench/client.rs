//! A small S3 client for the load generator: one HTTP/1.1 connection per worker, and SigV4
//! signing done by hand with the signing key derived once per day, so that the generator
//! spends as little of the machine's two cores as it can.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::Stream;
use hmac::{Hmac, Mac};
use http::{HeaderValue, Method, Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T> = std::result::Result<T, BoxError>;
pub type ReqBody = BoxBody<Bytes, Infallible>;

/// The hex SHA-256 of the empty string, the payload hash of bodiless requests.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Where requests go and who signs them.
pub struct Endpoint {
    pub addr: SocketAddr,
    host: String,
    access_key: String,
    secret_key: String,
    region: String,
    /// (yyyymmdd, signing key) of the last request: derived once per day.
    key_cache: Mutex<(String, [u8; 32])>,
}

impl Endpoint {
    /// `url` is `http://host:port` (plain HTTP only: TLS would measure rustls, not the server).
    pub fn new(url: &str, access_key: &str, secret_key: &str, region: &str) -> Result<Endpoint> {
        let hostport = url
            .strip_prefix("http://")
            .ok_or("the endpoint must be an http:// URL")?
            .trim_end_matches('/');
        let addr = std::net::ToSocketAddrs::to_socket_addrs(hostport)?
            .next()
            .ok_or("the endpoint's host does not resolve")?;
        Ok(Endpoint {
            addr,
            host: hostport.to_string(),
            access_key: access_key.to_string(),
            secret_key: secret_key.to_string(),
            region: region.to_string(),
            key_cache: Mutex::new((String::new(), [0; 32])),
        })
    }

    fn signing_key(&self, day: &str) -> [u8; 32] {
        let mut cache = self.key_cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.0 != day {
            let k = hmac(
                format!("AWS4{}", self.secret_key).as_bytes(),
                day.as_bytes(),
            );
            let k = hmac(&k, self.region.as_bytes());
            let k = hmac(&k, b"s3");
            let k = hmac(&k, b"aws4_request");
            *cache = (day.to_string(), k);
        }
        cache.1
    }

    /// Builds a signed request. `path` is `/bucket/key` unencoded; `query` pairs are
    /// unencoded; `payload_sha256` is the hex hash of `body` (or `UNSIGNED-PAYLOAD`).
    pub fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        extra: &[(&'static str, String)],
        payload_sha256: &str,
        body: ReqBody,
    ) -> Result<Request<ReqBody>> {
        let now = time::OffsetDateTime::now_utc();
        let amz_date = now.format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))?;
        let day = &amz_date[..8];
        let canon_path = uri_encode(path, false);
        let mut q: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (uri_encode(k, true), uri_encode(v, true)))
            .collect();
        q.sort();
        let canon_query = q
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let mut headers: Vec<(&str, &str)> = vec![
            ("host", &self.host),
            ("x-amz-content-sha256", payload_sha256),
            ("x-amz-date", &amz_date),
        ];
        for (k, v) in extra {
            headers.push((k, v));
        }
        headers.sort_by(|a, b| a.0.cmp(b.0));
        let mut canon_headers = String::new();
        let mut signed = String::new();
        for (k, v) in &headers {
            canon_headers.push_str(k);
            canon_headers.push(':');
            canon_headers.push_str(v.trim());
            canon_headers.push('\n');
            if !signed.is_empty() {
                signed.push(';');
            }
            signed.push_str(k);
        }
        let canonical = format!(
            "{method}\n{canon_path}\n{canon_query}\n{canon_headers}\n{signed}\n{payload_sha256}"
        );
        let scope = format!("{day}/{}/s3/aws4_request", self.region);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let sig = hex::encode(hmac(&self.signing_key(day), to_sign.as_bytes()));
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={sig}",
            self.access_key
        );
        let uri = if canon_query.is_empty() {
            canon_path
        } else {
            format!("{canon_path}?{canon_query}")
        };
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in &headers {
            b = b.header(*k, HeaderValue::from_str(v)?);
        }
        Ok(b.header("authorization", auth).body(body)?)
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data);
    m.finalize().into_bytes().into()
}

/// SigV4 URI encoding: everything but unreserved characters (and `/` in paths).
fn uri_encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if !encode_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

pub fn empty_body() -> ReqBody {
    Empty::new().boxed()
}

pub fn full_body(b: Bytes) -> ReqBody {
    Full::new(b).boxed()
}

pub fn stream_body<S>(s: S) -> ReqBody
where
    S: Stream<Item = Bytes> + Send + Sync + 'static,
{
    use futures_util::StreamExt;
    BodyExt::boxed(StreamBody::new(
        s.map(|b| Ok::<_, Infallible>(Frame::data(b))),
    ))
}

/// One keep-alive HTTP/1.1 connection.
pub struct Conn {
    send: SendRequest<ReqBody>,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> Result<Conn> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn { send })
    }

    pub async fn send(&mut self, req: Request<ReqBody>) -> Result<Response<Incoming>> {
        self.send.ready().await?;
        Ok(self.send.send_request(req).await?)
    }
}

/// Sends a request and reads the whole response; fails unless the status is `expect`.
pub async fn roundtrip(
    conn: &mut Conn,
    req: Request<ReqBody>,
    expect: u16,
) -> Result<(http::response::Parts, Bytes)> {
    let what = format!("{} {}", req.method(), req.uri());
    let resp = conn.send(req).await?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes();
    if parts.status.as_u16() != expect {
        let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        return Err(format!("{what}: status {} (wanted {expect}): {text}", parts.status).into());
    }
    Ok((parts, body))
}

/// A shared endpoint handle.
pub type Ep = Arc<Endpoint>;
