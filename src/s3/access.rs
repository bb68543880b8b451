//! Which permission each S3 operation needs, on what: the S3 side of
//! [`crate::authz::authorize`]. Runs after authentication and before the handler, so
//! a refused request changes nothing.
//!
//! - object reads (Get/Head/GetObjectTagging): `read` on the key (its dataset, bucket
//!   or zone); object writes, tagging, multipart: `write` on the key;
//! - CopyObject/UploadPartCopy: `write` on the target and `read` on the source;
//! - ListObjects(V2)/ListObjectVersions: `read` on the listed prefix, so a dataset
//!   grant allows listing inside the dataset's prefix;
//! - bucket settings and HeadBucket: `read` on the bucket; ListMultipartUploads:
//!   `write` on the bucket; DeleteBucket: `manage` on the bucket;
//! - DeleteObjects: `write` on each key, decided by its handler key by key
//!   ([`authorize_keys`]): refused keys come back as per-key `AccessDenied` errors;
//! - CreateBucket: admins; ListBuckets: anyone signed in, filtered by its handler to
//!   the buckets the caller may read something in;
//! - PostObject is authorized by its handler (the key is inside the form).

use super::Ctx;
use super::endpoint::Endpoint;
use super::error::{Code, S3Error};
use crate::authz::{self, AuthzError};
use crate::iam::{Permission, Principal};

fn to_s3(e: AuthzError) -> S3Error {
    match e {
        AuthzError::Denied(d) => S3Error::msg(Code::AccessDenied, d.0),
        AuthzError::Db(e) => S3Error::internal(e),
    }
}

/// Authorizes `write` on `key` in `bucket` (PostObject, after its form is read).
pub async fn authorize_write(
    ctx: &Ctx,
    who: &Principal,
    bucket: &str,
    key: &str,
) -> Result<(), S3Error> {
    authz::authorize_data(&ctx.app.db, who, Permission::Write, bucket, key)
        .await
        .map_err(to_s3)
}

/// Authorizes `write` on each of `keys` (DeleteObjects): the whole request is refused
/// only when the caller may write nothing in the bucket it names.
pub async fn authorize_keys(
    ctx: &Ctx,
    keys: &[String],
) -> Result<Vec<Result<(), authz::Denied>>, S3Error> {
    let who = ctx.principal()?;
    let bucket = ctx.bucket()?;
    authz::authorize_keys(&ctx.app.db, who, Permission::Write, bucket, keys)
        .await
        .map_err(to_s3)
}

/// Authorizes the routed operation for `who`.
pub async fn authorize(ctx: &Ctx, who: &Principal) -> Result<(), S3Error> {
    use Endpoint as E;
    if who.is_admin() {
        return Ok(());
    }
    if let Some(decided) = crate::checkout::access::manifest_bucket(ctx, who) {
        return decided;
    }
    let db = &ctx.app.db;
    let bucket = ctx.route.bucket.as_deref().unwrap_or("");
    let key = ctx.route.key.as_deref().unwrap_or("");
    let data = |perm| authz::authorize_data(db, who, perm, bucket, key);
    let whole = |perm| authz::authorize_bucket(db, who, perm, bucket);
    let r = match ctx.route.endpoint {
        E::ListBuckets | E::NotImplemented | E::PostObject | E::DeleteObjects => Ok(()),
        E::CreateBucket => authz::authorize(who, Permission::Manage, &authz::Resource::AdminOnly)
            .map_err(AuthzError::Denied),
        E::DeleteBucket => whole(Permission::Manage).await,
        E::HeadBucket
        | E::GetBucketLocation
        | E::GetBucketVersioning
        | E::GetBucketTagging
        | E::GetBucketCors
        | E::GetBucketPolicy
        | E::GetBucketLifecycleConfiguration
        | E::GetBucketEncryption
        | E::GetBucketWebsite => whole(Permission::Read).await,
        E::ListMultipartUploads => whole(Permission::Write).await,
        E::ListObjects | E::ListObjectsV2 | E::ListObjectVersions => {
            let prefix = ctx.query.get("prefix").unwrap_or("");
            authz::authorize_data(db, who, Permission::Read, bucket, prefix).await
        }
        E::GetObject | E::HeadObject | E::GetObjectTagging => data(Permission::Read).await,
        E::PutObject
        | E::DeleteObject
        | E::PutObjectTagging
        | E::DeleteObjectTagging
        | E::CreateMultipartUpload
        | E::UploadPart
        | E::CompleteMultipartUpload
        | E::AbortMultipartUpload
        | E::ListParts => data(Permission::Write).await,
        E::CopyObject | E::UploadPartCopy => {
            data(Permission::Write).await.map_err(to_s3)?;
            let (src_bucket, src_key) = super::handlers::copy_source(ctx)?;
            authz::authorize_data(db, who, Permission::Read, &src_bucket, &src_key).await
        }
    };
    r.map_err(to_s3)
}
