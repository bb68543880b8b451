//! PostObject: browser form uploads with a signed POST policy.

use axum::body::Body;
use http::Response;

use super::super::Ctx;
use super::super::error::{Code, S3Error};

/// PostObject (not yet implemented).
pub async fn post_object(_ctx: Ctx, _body: Body) -> Result<Response<Body>, S3Error> {
    Err(S3Error::new(Code::NotImplemented))
}
