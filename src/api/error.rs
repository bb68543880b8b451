//! The REST API's error type and the one place where errors become JSON.
//!
//! Handlers return [`Error`]; its `IntoResponse` only records the error in a response
//! extension. [`render`] (run by the API middleware, which knows the request id)
//! writes the body `{"error": {"code", "message", "request_id", ...}}` and logs it:
//! 5xx at `warn` with the internal detail, 4xx at `debug`. Internal details never
//! reach the client.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;

use crate::catalog;
use crate::meta;

/// Every failure the REST API reports.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The body is not JSON at all.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// A field (of the body, query or path) is missing or invalid.
    #[error("invalid {field}: {message}")]
    InvalidField { field: String, message: String },
    /// No credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// Credentials were given but are wrong, or the principal may not do this.
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    /// A governance rule is violated; `missing` names the absent tags.
    #[error("{message}")]
    Governance {
        message: String,
        missing: Vec<String>,
    },
    /// The data under a dataset cannot be read as its format (crawl).
    #[error("{0}")]
    Unreadable(String),
    #[error("request body too large")]
    PayloadTooLarge,
    /// Something broke on our side; the detail is logged, not returned.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The stable error code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            Error::MalformedJson(_) => "MalformedJson",
            Error::InvalidField { .. } => "InvalidField",
            Error::Unauthenticated(_) => "Unauthenticated",
            Error::AccessDenied(_) => "AccessDenied",
            Error::NotFound(_) => "NotFound",
            Error::MethodNotAllowed => "MethodNotAllowed",
            Error::Conflict(_) => "Conflict",
            Error::Governance { .. } => "GovernanceViolation",
            Error::Unreadable(_) => "UnreadableData",
            Error::PayloadTooLarge => "PayloadTooLarge",
            Error::Internal(_) => "InternalError",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::MalformedJson(_) | Error::InvalidField { .. } => StatusCode::BAD_REQUEST,
            Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Error::AccessDenied(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Governance { .. } | Error::Unreadable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A 400 naming `field`.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Error {
        Error::InvalidField {
            field: field.into(),
            message: message.into(),
        }
    }

    /// An internal failure (the source is logged by [`render`]).
    pub fn internal(e: impl std::fmt::Display) -> Error {
        Error::Internal(e.to_string())
    }
}

/// The error document (`{"error": ...}`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDoc {
    pub error: ErrorBody,
}

/// The body of an error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable code: `MalformedJson`, `InvalidField`, `Unauthenticated`, `AccessDenied`,
    /// `NotFound`, `MethodNotAllowed`, `Conflict`, `GovernanceViolation`,
    /// `UnreadableData`, `PayloadTooLarge`, `InternalError`.
    pub code: &'static str,
    pub message: String,
    pub request_id: String,
    /// The offending field, for `InvalidField`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The missing required tags, for `GovernanceViolation`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<Vec<String>>,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let mut resp = self.status().into_response();
        resp.extensions_mut().insert(self);
        resp
    }
}

/// Writes the JSON body of `err` for request `request_id`, logging it once.
pub fn render(err: &Error, request_id: &str) -> Response {
    let message = match err {
        Error::Internal(detail) => {
            tracing::warn!(request_id, error = %detail, "api request failed");
            "internal error; the server log has the details (see request_id)".to_string()
        }
        other => {
            tracing::debug!(request_id, code = other.code(), message = %other, "api request refused");
            match other {
                Error::InvalidField { message, .. } => message.clone(),
                e => e.to_string(),
            }
        }
    };
    let doc = ErrorDoc {
        error: ErrorBody {
            code: err.code(),
            message,
            request_id: request_id.to_string(),
            field: match err {
                Error::InvalidField { field, .. } => Some(field.clone()),
                _ => None,
            },
            missing: match err {
                Error::Governance { missing, .. } => Some(missing.clone()),
                _ => None,
            },
        },
    };
    (err.status(), Json(doc)).into_response()
}

impl From<catalog::Error> for Error {
    fn from(e: catalog::Error) -> Error {
        match e {
            catalog::Error::Invalid { field, message } => Error::InvalidField { field, message },
            catalog::Error::NotFound(m) => Error::NotFound(m),
            catalog::Error::Conflict(m) => Error::Conflict(m),
            catalog::Error::Governance { message, missing } => {
                Error::Governance { message, missing }
            }
            catalog::Error::Forbidden(m) => Error::AccessDenied(m),
            catalog::Error::Unreadable(m) => Error::Unreadable(m),
            catalog::Error::Db(e) => e.into(),
            catalog::Error::Storage(e) => Error::internal(e),
        }
    }
}

impl From<crate::iam::Error> for Error {
    fn from(e: crate::iam::Error) -> Error {
        use crate::iam::Error as I;
        match e {
            I::Invalid { field, message } => Error::InvalidField { field, message },
            I::NotFound(m) => Error::NotFound(m),
            I::Conflict(m) => Error::Conflict(m),
            I::Forbidden(m) => Error::AccessDenied(m),
            I::Db(e) => e.into(),
        }
    }
}

impl From<crate::checkout::Error> for Error {
    fn from(e: crate::checkout::Error) -> Error {
        use crate::checkout::Error as C;
        match e {
            C::Invalid { field, message } => Error::InvalidField { field, message },
            C::NotFound(m) => Error::NotFound(m),
            C::Conflict(m) => Error::Conflict(m),
            C::Db(e) => e.into(),
        }
    }
}

impl From<crate::authz::AuthzError> for Error {
    fn from(e: crate::authz::AuthzError) -> Error {
        match e {
            crate::authz::AuthzError::Denied(d) => Error::AccessDenied(d.0),
            crate::authz::AuthzError::Db(e) => e.into(),
        }
    }
}

impl From<crate::authz::Denied> for Error {
    fn from(d: crate::authz::Denied) -> Error {
        Error::AccessDenied(d.0)
    }
}

impl From<meta::Error> for Error {
    fn from(e: meta::Error) -> Error {
        use meta::Error as M;
        match e {
            M::NoSuchBucket => Error::NotFound("no such bucket".into()),
            M::NoSuchKey => Error::NotFound("no such object".into()),
            M::NoSuchUpload => Error::NotFound("no such upload".into()),
            M::BucketExists => Error::Conflict("the bucket already exists".into()),
            M::BucketNotEmpty => Error::Conflict("the bucket is not empty".into()),
            M::PreconditionFailed => Error::Conflict("precondition failed".into()),
            M::ZoneRule(m) => Error::AccessDenied(m),
            e @ (M::InvalidPart(_)
            | M::InvalidPartOrder
            | M::EntityTooSmall { .. }
            | M::Corrupt(_)
            | M::Sqlite(_)
            | M::Migration { .. }
            | M::SchemaTooNew { .. }
            | M::Commit(_)
            | M::WriterGone
            | M::Thread(_)
            | M::Poisoned) => Error::internal(e),
        }
    }
}
