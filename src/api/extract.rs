//! Request extractors whose rejections are [`Error`]s, so a bad request gets the
//! same JSON error document as every other failure, naming the field at fault.

use axum::extract::{FromRequest, FromRequestParts, Request};
use http::request::Parts;
use serde::de::DeserializeOwned;

use super::Error;

/// A JSON body. Malformed JSON is `MalformedJson`; a JSON document of the wrong
/// shape is `InvalidField` with the path of the offending field (`tags.owner`,
/// `name`, `zones.curated.required_tags[1]`).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Error> {
        let bytes = axum::body::to_bytes(req.into_body(), super::auth::MAX_BODY)
            .await
            .map_err(|_| Error::PayloadTooLarge)?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses a JSON body into `T` with field-naming errors.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::MalformedJson(
            "the request body is empty; send a JSON object".into(),
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let inner = e.inner();
        match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                Error::MalformedJson(inner.to_string())
            }
            serde_json::error::Category::Data | serde_json::error::Category::Io => {
                let msg = inner.to_string();
                let path = e.path().to_string();
                // serde names missing and unknown fields only in the message.
                let named = msg.split('`').nth(1).filter(|_| {
                    msg.starts_with("missing field") || msg.starts_with("unknown field")
                });
                let field = match (path.as_str(), named) {
                    (".", Some(n)) => n.to_string(),
                    // serde_path_to_error already names an unknown field in the path.
                    (p, Some(n)) if p == n || p.ends_with(&format!(".{n}")) => p.to_string(),
                    (p, Some(n)) => format!("{p}.{n}"),
                    (p, None) => p.to_string(),
                };
                Error::field(field, msg)
            }
        }
    })
}

/// The decoded query string pairs, in order (repeated names allowed).
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Error> {
        let raw = parts.uri.query().unwrap_or("");
        Ok(QueryPairs(
            crate::s3::endpoint::Query::parse(raw).pairs().to_vec(),
        ))
    }
}

impl QueryPairs {
    /// The single value of `name`; a repeated parameter is an error.
    pub fn one(&self, name: &str) -> Result<Option<&str>, Error> {
        let mut it = self.0.iter().filter(|(k, _)| k == name);
        let first = it.next().map(|(_, v)| v.as_str());
        if it.next().is_some() {
            return Err(Error::field(name, format!("{name} may be given only once")));
        }
        Ok(first)
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// `name` parsed with `FromStr`.
    pub fn parsed<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, Error> {
        self.one(name)?
            .map(|v| {
                v.parse()
                    .map_err(|_| Error::field(name, format!("{name} has an invalid value {v:?}")))
            })
            .transpose()
    }

    /// Rejects parameters not in `known` (a typo should not silently list everything).
    pub fn only(&self, known: &[&str]) -> Result<(), Error> {
        match self.0.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            Some((k, _)) => Err(Error::field(
                k.clone(),
                format!("unknown query parameter {k:?}; known: {}", known.join(", ")),
            )),
            None => Ok(()),
        }
    }
}
