//! The S3 side of checkout: what a manifest credential may do, and who may read the
//! stored manifest objects.
//!
//! A request signed with a manifest's credential may only GET or HEAD an object the
//! manifest lists, and only while
//! - the object still has the ETag recorded at checkout (otherwise `412
//!   PreconditionFailed`, "changed since checkout": a link never serves other bytes;
//!   the handler is also given `If-Match: <etag>`, so a replacement racing with the
//!   download is refused the same way), and
//! - the user who checked it out may still read it (a revoked grant revokes links).
//!
//! Everything else (other keys, listings, writes, bucket operations) is
//! `403 AccessDenied`. In the manifest bucket, a member may read and list only under
//! `<own user name>/`.

use http::HeaderValue;

use crate::authz::{self, AuthzError};
use crate::iam::{Permission, Principal};
use crate::s3::Ctx;
use crate::s3::endpoint::Endpoint;
use crate::s3::error::{Code, S3Error};

/// Authorizes a request signed with the credential of manifest `who.manifest`, and
/// pins the download to the recorded ETag.
pub async fn authorize_link(ctx: &mut Ctx, who: &Principal) -> Result<(), S3Error> {
    let Some(scope) = who.manifest.clone() else {
        return Err(S3Error::new(Code::AccessDenied));
    };
    let id = scope.id;
    if !matches!(
        ctx.route.endpoint,
        Endpoint::GetObject | Endpoint::HeadObject
    ) {
        return Err(S3Error::msg(
            Code::AccessDenied,
            format!("a link of manifest {id} may only download the objects the manifest lists"),
        ));
    }
    let bucket = ctx.route.bucket.clone().unwrap_or_default();
    let key = ctx.route.key.clone().unwrap_or_default();
    let (b, k) = (bucket.clone(), key.clone());
    let target = ctx
        .app
        .db
        .read(move |conn| super::store::link_target(conn, id, &b, &k))
        .await
        .map_err(S3Error::internal)?
        .ok_or_else(|| {
            S3Error::msg(
                Code::AccessDenied,
                format!("manifest {id} does not list {bucket}/{key}"),
            )
        })?;
    let owner = Principal {
        user: scope.owner.clone(),
        access_key_id: None,
        manifest: None,
    };
    authz::authorize_data(&ctx.app.db, &owner, Permission::Read, &bucket, &key)
        .await
        .map_err(|e| match e {
            AuthzError::Denied(_) => S3Error::msg(
                Code::AccessDenied,
                format!(
                    "user {} who checked out manifest {id} may no longer read {bucket}/{key}",
                    owner.name()
                ),
            ),
            AuthzError::Db(e) => S3Error::internal(e),
        })?;
    match target.current_etag {
        None => return Err(S3Error::new(Code::NoSuchKey)),
        Some(cur) if cur != target.etag => {
            return Err(S3Error::msg(
                Code::PreconditionFailed,
                format!(
                    "the object changed since manifest {id} was checked out \
                     (ETag then {}, now {cur})",
                    target.etag
                ),
            ));
        }
        Some(_) => {}
    }
    let pinned = HeaderValue::from_str(&format!("\"{}\"", target.etag))
        .map_err(|_| S3Error::new(Code::PreconditionFailed))?;
    ctx.parts.headers.insert(http::header::IF_MATCH, pinned);
    Ok(())
}

/// Decides requests of a member on the manifest bucket: reads and listings under
/// `<user>/` only. `None` for other buckets (the normal rules apply).
pub fn manifest_bucket(ctx: &Ctx, who: &Principal) -> Option<Result<(), S3Error>> {
    let bucket = ctx.route.bucket.as_deref()?;
    if who.is_admin() || bucket != ctx.app.settings.checkout.manifest_bucket {
        return None;
    }
    let own = format!("{}/", who.name());
    let allowed = match ctx.route.endpoint {
        Endpoint::GetObject | Endpoint::HeadObject => ctx
            .route
            .key
            .as_deref()
            .is_some_and(|k| k.starts_with(&own)),
        Endpoint::ListObjects | Endpoint::ListObjectsV2 => {
            ctx.query.get("prefix").is_some_and(|p| p.starts_with(&own))
        }
        Endpoint::HeadBucket | Endpoint::GetBucketLocation => true,
        _ => false,
    };
    Some(if allowed {
        Ok(())
    } else {
        Err(S3Error::msg(
            Code::AccessDenied,
            format!(
                "in bucket {bucket}, user {} may only read manifests under {own}",
                who.name()
            ),
        ))
    })
}
