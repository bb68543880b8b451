//! S3 errors: the one place an error becomes an S3 XML error document.

use http::StatusCode;

/// An S3 error code, as AWS documents them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    AccessDenied,
    /// Not an AWS code (AWS never fills up): the server's disk is full. 507.
    InsufficientStorage,
    IllegalLocationConstraintException,
    InvalidPartNumber,
    RequestTimeout,
    SlowDown,
    AuthorizationHeaderMalformed,
    AuthorizationQueryParametersError,
    BadDigest,
    BucketAlreadyExists,
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    EntityTooLarge,
    EntityTooSmall,
    IncompleteBody,
    InternalError,
    InvalidAccessKeyId,
    InvalidArgument,
    InvalidBucketName,
    InvalidDigest,
    InvalidPart,
    InvalidPartOrder,
    InvalidPolicyDocument,
    InvalidRange,
    InvalidRequest,
    InvalidStorageClass,
    InvalidTag,
    KeyTooLongError,
    MalformedPOSTRequest,
    MalformedXML,
    MaxMessageLengthExceeded,
    MaxPostPreDataLengthExceededError,
    MetadataTooLarge,
    MethodNotAllowed,
    MissingContentLength,
    NoSuchBucket,
    NoSuchBucketPolicy,
    NoSuchCORSConfiguration,
    NoSuchKey,
    NoSuchLifecycleConfiguration,
    NoSuchTagSet,
    NoSuchUpload,
    NoSuchWebsiteConfiguration,
    NotImplemented,
    NotModified,
    PreconditionFailed,
    RequestHeaderSectionTooLarge,
    RequestTimeTooSkewed,
    ServerSideEncryptionConfigurationNotFoundError,
    SignatureDoesNotMatch,
    XAmzContentSHA256Mismatch,
}

impl Code {
    /// The code string in the XML document.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::AccessDenied => "AccessDenied",
            Code::AuthorizationHeaderMalformed => "AuthorizationHeaderMalformed",
            Code::AuthorizationQueryParametersError => "AuthorizationQueryParametersError",
            Code::BadDigest => "BadDigest",
            Code::BucketAlreadyExists => "BucketAlreadyExists",
            Code::BucketAlreadyOwnedByYou => "BucketAlreadyOwnedByYou",
            Code::BucketNotEmpty => "BucketNotEmpty",
            Code::EntityTooLarge => "EntityTooLarge",
            Code::EntityTooSmall => "EntityTooSmall",
            Code::IncompleteBody => "IncompleteBody",
            Code::InternalError => "InternalError",
            Code::InsufficientStorage => "InsufficientStorage",
            Code::IllegalLocationConstraintException => "IllegalLocationConstraintException",
            Code::InvalidPartNumber => "InvalidPartNumber",
            Code::RequestTimeout => "RequestTimeout",
            Code::SlowDown => "SlowDown",
            Code::InvalidAccessKeyId => "InvalidAccessKeyId",
            Code::InvalidArgument => "InvalidArgument",
            Code::InvalidBucketName => "InvalidBucketName",
            Code::InvalidDigest => "InvalidDigest",
            Code::InvalidPart => "InvalidPart",
            Code::InvalidPartOrder => "InvalidPartOrder",
            Code::InvalidPolicyDocument => "InvalidPolicyDocument",
            Code::InvalidRange => "InvalidRange",
            Code::InvalidRequest => "InvalidRequest",
            Code::InvalidStorageClass => "InvalidStorageClass",
            Code::InvalidTag => "InvalidTag",
            Code::KeyTooLongError => "KeyTooLongError",
            Code::MalformedPOSTRequest => "MalformedPOSTRequest",
            Code::MalformedXML => "MalformedXML",
            Code::MaxMessageLengthExceeded => "MaxMessageLengthExceeded",
            Code::MaxPostPreDataLengthExceededError => "MaxPostPreDataLengthExceededError",
            Code::MetadataTooLarge => "MetadataTooLarge",
            Code::MethodNotAllowed => "MethodNotAllowed",
            Code::MissingContentLength => "MissingContentLength",
            Code::NoSuchBucket => "NoSuchBucket",
            Code::NoSuchBucketPolicy => "NoSuchBucketPolicy",
            Code::NoSuchCORSConfiguration => "NoSuchCORSConfiguration",
            Code::NoSuchKey => "NoSuchKey",
            Code::NoSuchLifecycleConfiguration => "NoSuchLifecycleConfiguration",
            Code::NoSuchTagSet => "NoSuchTagSet",
            Code::NoSuchUpload => "NoSuchUpload",
            Code::NoSuchWebsiteConfiguration => "NoSuchWebsiteConfiguration",
            Code::NotImplemented => "NotImplemented",
            Code::NotModified => "NotModified",
            Code::PreconditionFailed => "PreconditionFailed",
            Code::RequestHeaderSectionTooLarge => "RequestHeaderSectionTooLarge",
            Code::RequestTimeTooSkewed => "RequestTimeTooSkewed",
            Code::ServerSideEncryptionConfigurationNotFoundError => {
                "ServerSideEncryptionConfigurationNotFoundError"
            }
            Code::SignatureDoesNotMatch => "SignatureDoesNotMatch",
            Code::XAmzContentSHA256Mismatch => "XAmzContentSHA256Mismatch",
        }
    }

    /// The HTTP status S3 answers with.
    pub fn status(self) -> StatusCode {
        match self {
            Code::AccessDenied
            | Code::InvalidAccessKeyId
            | Code::RequestTimeTooSkewed
            | Code::SignatureDoesNotMatch => StatusCode::FORBIDDEN,
            Code::AuthorizationHeaderMalformed
            | Code::AuthorizationQueryParametersError
            | Code::BadDigest
            | Code::EntityTooLarge
            | Code::EntityTooSmall
            | Code::IncompleteBody
            | Code::InvalidArgument
            | Code::InvalidBucketName
            | Code::InvalidDigest
            | Code::InvalidPart
            | Code::InvalidPartOrder
            | Code::InvalidPolicyDocument
            | Code::InvalidRequest
            | Code::InvalidStorageClass
            | Code::InvalidTag
            | Code::KeyTooLongError
            | Code::MalformedPOSTRequest
            | Code::MalformedXML
            | Code::MaxMessageLengthExceeded
            | Code::MaxPostPreDataLengthExceededError
            | Code::MetadataTooLarge
            | Code::RequestHeaderSectionTooLarge
            | Code::XAmzContentSHA256Mismatch => StatusCode::BAD_REQUEST,
            Code::NoSuchBucket
            | Code::NoSuchBucketPolicy
            | Code::NoSuchCORSConfiguration
            | Code::NoSuchKey
            | Code::NoSuchLifecycleConfiguration
            | Code::NoSuchTagSet
            | Code::NoSuchUpload
            | Code::NoSuchWebsiteConfiguration
            | Code::ServerSideEncryptionConfigurationNotFoundError => StatusCode::NOT_FOUND,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Code::BucketAlreadyExists | Code::BucketAlreadyOwnedByYou | Code::BucketNotEmpty => {
                StatusCode::CONFLICT
            }
            Code::MissingContentLength => StatusCode::LENGTH_REQUIRED,
            Code::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Code::InvalidRange => StatusCode::RANGE_NOT_SATISFIABLE,
            Code::NotModified => StatusCode::NOT_MODIFIED,
            Code::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            Code::InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
            Code::IllegalLocationConstraintException => StatusCode::BAD_REQUEST,
            Code::InvalidPartNumber => StatusCode::RANGE_NOT_SATISFIABLE,
            Code::RequestTimeout => StatusCode::BAD_REQUEST,
            Code::SlowDown => StatusCode::SERVICE_UNAVAILABLE,
            Code::NotImplemented => StatusCode::NOT_IMPLEMENTED,
        }
    }

    fn default_message(self) -> &'static str {
        match self {
            Code::AccessDenied => "Access Denied",
            Code::BadDigest => {
                "The Content-MD5 or checksum you specified did not match what we received."
            }
            Code::BucketAlreadyOwnedByYou => {
                "Your previous request to create the named bucket succeeded and you already own it."
            }
            Code::BucketNotEmpty => "The bucket you tried to delete is not empty",
            Code::EntityTooLarge => "Your proposed upload exceeds the maximum allowed size",
            Code::EntityTooSmall => {
                "Your proposed upload is smaller than the minimum allowed object size."
            }
            Code::IncompleteBody => {
                "You did not provide the number of bytes specified by the Content-Length HTTP header."
            }
            Code::InternalError => "We encountered an internal error. Please try again.",
            Code::IllegalLocationConstraintException => {
                "The specified location-constraint is not valid for this server's region."
            }
            Code::InvalidPartNumber => "The requested partnumber is not satisfiable",
            Code::InsufficientStorage => {
                "The server's storage is full. Delete objects or add space, then retry."
            }
            Code::RequestTimeout => {
                "Your socket connection to the server was not read from or written to within the timeout period."
            }
            Code::SlowDown => "Please reduce your request rate.",
            Code::InvalidAccessKeyId => {
                "The AWS Access Key Id you provided does not exist in our records."
            }
            Code::InvalidBucketName => "The specified bucket is not valid.",
            Code::InvalidPart => {
                "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."
            }
            Code::InvalidPartOrder => {
                "The list of parts was not in ascending order. Parts must be ordered by part number."
            }
            Code::InvalidPolicyDocument => {
                "The content of the form does not meet the conditions specified in the policy document."
            }
            Code::InvalidRange => "The requested range is not satisfiable",
            Code::KeyTooLongError => "Your key is too long",
            Code::MalformedPOSTRequest => {
                "The body of your POST request is not well-formed multipart/form-data."
            }
            Code::MaxPostPreDataLengthExceededError => {
                "Your POST request fields preceding the upload file were too large."
            }
            Code::MalformedXML => {
                "The XML you provided was not well-formed or did not validate against our published schema"
            }
            Code::MetadataTooLarge => {
                "Your metadata headers exceed the maximum allowed metadata size"
            }
            Code::MethodNotAllowed => "The specified method is not allowed against this resource.",
            Code::MissingContentLength => "You must provide the Content-Length HTTP header.",
            Code::NoSuchBucket => "The specified bucket does not exist",
            Code::NoSuchBucketPolicy => "The bucket policy does not exist",
            Code::NoSuchCORSConfiguration => "The CORS configuration does not exist",
            Code::NoSuchKey => "The specified key does not exist.",
            Code::NoSuchLifecycleConfiguration => "The lifecycle configuration does not exist",
            Code::NoSuchTagSet => "The TagSet does not exist",
            Code::NoSuchUpload => {
                "The specified multipart upload does not exist. The upload ID might be invalid, or the multipart upload might have been aborted or completed."
            }
            Code::NoSuchWebsiteConfiguration => {
                "The specified bucket does not have a website configuration"
            }
            Code::NotImplemented => {
                "A header or operation you provided implies functionality that is not implemented"
            }
            Code::NotModified => "Not Modified",
            Code::PreconditionFailed => {
                "At least one of the pre-conditions you specified did not hold"
            }
            Code::RequestTimeTooSkewed => {
                "The difference between the request time and the server's time is too large."
            }
            Code::ServerSideEncryptionConfigurationNotFoundError => {
                "The server side encryption configuration was not found"
            }
            Code::SignatureDoesNotMatch => {
                "The request signature we calculated does not match the signature you provided. Check your key and signing method."
            }
            Code::XAmzContentSHA256Mismatch => {
                "The provided 'x-amz-content-sha256' header does not match what was computed."
            }
            Code::AuthorizationHeaderMalformed
            | Code::AuthorizationQueryParametersError
            | Code::BucketAlreadyExists
            | Code::InvalidArgument
            | Code::InvalidDigest
            | Code::InvalidRequest
            | Code::InvalidStorageClass
            | Code::InvalidTag
            | Code::MaxMessageLengthExceeded
            | Code::RequestHeaderSectionTooLarge => "The request is invalid.",
        }
    }
}

/// An S3 error answer.
#[derive(Debug, Clone)]
pub struct S3Error {
    pub code: Code,
    pub message: String,
    /// Extra elements of the error document (e.g. `BucketName`, `Key`, `Condition`).
    pub details: Vec<(&'static str, String)>,
    /// Headers that go with the error (e.g. `Content-Range` on 416).
    pub headers: Vec<(&'static str, String)>,
}

impl S3Error {
    /// An error with the code's standard message.
    pub fn new(code: Code) -> S3Error {
        S3Error {
            code,
            message: code.default_message().to_string(),
            details: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// An error with a specific message.
    pub fn msg(code: Code, message: impl Into<String>) -> S3Error {
        S3Error {
            code,
            message: message.into(),
            details: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// Adds an element to the error document.
    pub fn detail(mut self, name: &'static str, value: impl Into<String>) -> S3Error {
        self.details.push((name, value.into()));
        self
    }

    /// Adds a response header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> S3Error {
        self.headers.push((name, value.into()));
        self
    }

    /// An internal failure: logged in full, answered with a generic message.
    pub fn internal(err: impl std::fmt::Display) -> S3Error {
        tracing::error!(error = %err, "internal error");
        S3Error::new(Code::InternalError)
    }

    /// The XML error document.
    pub fn to_xml(&self, resource: &str, request_id: &str) -> String {
        use super::xml::escape;
        let mut s = String::with_capacity(256);
        s.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>");
        s.push_str(self.code.as_str());
        s.push_str("</Code><Message>");
        s.push_str(&escape(&self.message));
        s.push_str("</Message>");
        for (name, value) in &self.details {
            s.push_str(&format!("<{name}>{}</{name}>", escape(value)));
        }
        s.push_str("<Resource>");
        s.push_str(&escape(resource));
        s.push_str("</Resource><RequestId>");
        s.push_str(request_id);
        s.push_str("</RequestId></Error>");
        s
    }
}

impl From<crate::meta::Error> for S3Error {
    fn from(e: crate::meta::Error) -> S3Error {
        use crate::meta::Error as M;
        match e {
            M::NoSuchBucket => S3Error::new(Code::NoSuchBucket),
            M::BucketExists => S3Error::new(Code::BucketAlreadyOwnedByYou),
            M::BucketNotEmpty => S3Error::new(Code::BucketNotEmpty),
            M::NoSuchKey => S3Error::new(Code::NoSuchKey),
            M::NoSuchUpload => S3Error::new(Code::NoSuchUpload),
            M::PreconditionFailed => S3Error::new(Code::PreconditionFailed),
            M::ZoneRule(m) => S3Error::msg(Code::AccessDenied, m),
            M::InvalidPart(m) => S3Error::msg(Code::InvalidPart, m),
            M::InvalidPartOrder => S3Error::new(Code::InvalidPartOrder),
            M::EntityTooSmall { part } => {
                S3Error::new(Code::EntityTooSmall).detail("PartNumber", part.to_string())
            }
            M::Sqlite(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) => {
                S3Error::new(Code::InsufficientStorage)
            }
            e @ (M::Corrupt(_)
            | M::Sqlite(_)
            | M::Migration { .. }
            | M::SchemaTooNew { .. }
            | M::Commit(_)
            | M::WriterGone
            | M::Thread(_)
            | M::Poisoned) => S3Error::internal(e),
        }
    }
}

impl From<crate::storage::Error> for S3Error {
    fn from(e: crate::storage::Error) -> S3Error {
        use crate::storage::Error as St;
        match e {
            St::TooLarge => S3Error::new(Code::EntityTooLarge),
            St::Full => S3Error::new(Code::InsufficientStorage),
            St::Interrupted => S3Error::new(Code::IncompleteBody),
            e @ (St::Io { .. } | St::MissingBlob(_) | St::InvalidBlobId(_) | St::TaskFailed) => {
                S3Error::internal(e)
            }
        }
    }
}
