//! Cart, checkout and manifests (see [`crate::checkout`]).

use axum::Extension;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use serde::Serialize;

use super::Error;
use super::auth::Principal;
use super::error::ErrorDoc;
use super::extract::{ApiJson, QueryPairs, parse_json};
use crate::app::AppState;
use crate::authz::{self, DatasetRef, Resource};
use crate::checkout::presign::LinkSigner;
use crate::checkout::render::{self, Output, Render, StoredCopy};
use crate::checkout::store::{self, DatasetTarget, NewManifest};
use crate::checkout::{
    self, Cart, CartItem, CheckoutRequest, Format, Manifest, ManifestRow, ManifestSummary,
    NewCartItem,
};
use crate::iam::Permission;
use crate::meta::{ZoneRules, now_millis};
use crate::s3::auth::SecretLookup;

/// A numeric id from the path; anything else names nothing.
fn path_id(raw: &str, what: &str) -> Result<i64, Error> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| Error::NotFound(format!("{what} {raw:?} does not exist")))
}

/// Runs a cart/manifest read.
async fn read<R: Send + 'static>(
    app: &AppState,
    f: impl FnOnce(&rusqlite::Connection) -> Result<R, checkout::Error> + Send + 'static,
) -> Result<R, Error> {
    Ok(checkout::read(&app.db, f).await?)
}

/// Carries a checkout error through the identity layer's typed-error plumbing.
fn to_iam(e: checkout::Error) -> crate::iam::Error {
    use crate::iam::Error as I;
    match e {
        checkout::Error::Invalid { field, message } => I::Invalid { field, message },
        checkout::Error::NotFound(m) => I::NotFound(m),
        checkout::Error::Conflict(m) => I::Conflict(m),
        checkout::Error::Db(e) => I::Db(e),
    }
}

/// Read permission of `who` on a whole dataset (its grants, bucket's, zone's, owner).
fn may_read(who: &Principal, d: &DatasetTarget) -> Result<(), Error> {
    authz::authorize(
        who,
        Permission::Read,
        &Resource::Data {
            bucket_id: d.bucket_id,
            bucket: &d.bucket,
            zone: d.zone,
            dataset: Some(DatasetRef {
                id: d.id,
                owner: d.owner.clone(),
            }),
        },
    )
    .map_err(Error::from)
}

/// The caller's cart.
#[utoipa::path(get, path = "/cart", tag = "checkout",
    responses((status = 200, body = Cart)))]
pub async fn get_cart(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<Cart>, Error> {
    let uid = who.user.id;
    let items = read(&app, move |conn| store::list_items(conn, uid)).await?;
    Ok(Json(Cart { items }))
}

/// Adds a dataset (or a sub-prefix of it, e.g. a partition) to the caller's cart.
/// The caller must be able to read the dataset.
#[utoipa::path(post, path = "/cart", tag = "checkout", request_body = NewCartItem,
    responses((status = 201, body = CartItem), (status = 400, body = ErrorDoc),
        (status = 403, body = ErrorDoc, description = "no read permission on the dataset"),
        (status = 404, body = ErrorDoc, description = "no such dataset"),
        (status = 409, body = ErrorDoc, description = "already in the cart")))]
pub async fn add_to_cart(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiJson(body): ApiJson<NewCartItem>,
) -> Result<impl IntoResponse, Error> {
    let prefix = body.prefix.unwrap_or_default();
    store::validate_prefix(&prefix)?;
    let dataset = body.dataset;
    let d = read(&app, move |conn| store::dataset_target(conn, dataset)).await?;
    may_read(&who, &d)?;
    let uid = who.user.id;
    let item = checkout::write(&app.db, move |conn| {
        store::add_item(conn, uid, dataset, &prefix)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(item)))
}

/// Removes an item from the caller's cart.
#[utoipa::path(delete, path = "/cart/{item}", tag = "checkout", params(("item" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorDoc)))]
pub async fn delete_cart_item(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(item): Path<String>,
) -> Result<StatusCode, Error> {
    let id = path_id(&item, "cart item")?;
    let uid = who.user.id;
    checkout::write(&app.db, move |conn| store::delete_item(conn, uid, id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The URL links start with: `server.public_url`, else the request's Host.
fn base_url(app: &AppState, headers: &HeaderMap) -> String {
    let public = app.settings.server.public_url.trim();
    if !public.is_empty() {
        return public.trim_end_matches('/').to_string();
    }
    let scheme = if app.settings.tls.cert.is_some() {
        "https"
    } else {
        "http"
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(|| app.settings.server.listen.to_string());
    format!("{scheme}://{host}")
}

/// A streamed JSON or text response.
fn streamed(status: StatusCode, content_type: &str, body: Body, id: i64) -> Response {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = http::HeaderValue::from_str(&format!("/api/v1/manifests/{id}")) {
        resp.headers_mut().insert(header::CONTENT_LOCATION, v);
    }
    resp
}

/// Checks out the cart: snapshots every object under its items into a manifest of
/// presigned links (or bucket/key pairs), stores it, empties the cart, and streams
/// the manifest. Read permission is checked again on every dataset.
#[utoipa::path(post, path = "/cart/checkout", tag = "checkout", request_body = CheckoutRequest,
    responses((status = 201, body = Manifest, description = "the manifest (streamed)"),
        (status = 400, body = ErrorDoc, description = "bad format or expires_in over the maximum"),
        (status = 403, body = ErrorDoc, description = "a dataset is no longer readable"),
        (status = 409, body = ErrorDoc, description = "the cart is empty")))]
pub async fn checkout(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Error> {
    let req: CheckoutRequest = if body.iter().all(u8::is_ascii_whitespace) {
        CheckoutRequest::default()
    } else {
        parse_json(&body)?
    };
    let settings = &app.settings.checkout;
    let expires_in = req.expires_in.unwrap_or(settings.default_expiry_secs);
    if expires_in == 0 || expires_in > settings.max_expiry_secs {
        return Err(Error::field(
            "expires_in",
            format!(
                "expires_in must be between 1 and {} seconds",
                settings.max_expiry_secs
            ),
        ));
    }
    let format = req.format.unwrap_or(Format::SignedUrl);
    let uid = who.user.id;
    let items = read(&app, move |conn| store::checkout_items(conn, uid)).await?;
    if items.is_empty() {
        return Err(Error::Conflict(
            "the cart is empty: add datasets with POST /api/v1/cart".into(),
        ));
    }
    for item in &items {
        may_read(&who, &item.dataset)?;
    }
    let base = base_url(&app, &headers);
    // Whole seconds: the links' X-Amz-Date is this instant.
    let created_at = now_millis() / 1000 * 1000;
    let expires_at = created_at + (expires_in as i64) * 1000;
    let credential = (format == Format::SignedUrl).then(|| {
        let id = format!(
            "TM{}",
            crate::iam::random_string(18, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        );
        let (_, secret) = crate::iam::new_key_pair();
        (id, secret)
    });
    let signer = credential
        .as_ref()
        .map(|(id, secret)| {
            LinkSigner::new(
                &base,
                id,
                secret,
                &app.settings.s3.region,
                created_at,
                expires_in,
            )
        })
        .transpose()
        .map_err(|e| Error::field("server.public_url", e))?;
    let sealed = credential
        .as_ref()
        .map(|(id, secret)| (id.clone(), app.iam.master_key().seal(id, secret)));
    let bucket = settings.manifest_bucket.clone();
    let m = NewManifest {
        user_id: uid,
        format,
        created_at,
        expires_at,
        items,
        credential: sealed,
        manifest_bucket: bucket.clone(),
        region: app.settings.s3.region.clone(),
    };
    let row = app
        .iam
        .change(move |conn, _| store::create_manifest(conn, &m).map_err(to_iam))
        .await?;
    let id = row.id;
    let copy = StoredCopy {
        blobs: app.blobs.clone(),
        bucket: bucket.clone(),
        key: row.object_key(),
    };
    let summary = row.summary(&bucket);
    let r = Render {
        row,
        summary,
        signer,
        output: Output::Json,
    };
    let body = render::body(app.db.clone(), r, Some(copy));
    Ok(streamed(StatusCode::CREATED, "application/json", body, id))
}

/// Manifests listed by `GET /manifests`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ManifestList {
    pub manifests: Vec<ManifestSummary>,
}

/// The caller's manifests, newest first (an admin sees everyone's).
#[utoipa::path(get, path = "/manifests", tag = "checkout",
    responses((status = 200, body = ManifestList)))]
pub async fn list_manifests(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<ManifestList>, Error> {
    let only = (!who.is_admin()).then_some(who.user.id);
    let rows = read(&app, move |conn| store::list_manifests(conn, only)).await?;
    let bucket = &app.settings.checkout.manifest_bucket;
    Ok(Json(ManifestList {
        manifests: rows.iter().map(|r| r.summary(bucket)).collect(),
    }))
}

/// Manifest `raw` if the caller owns it or is an admin (others get 404).
async fn visible_manifest(
    app: &AppState,
    who: &Principal,
    raw: &str,
) -> Result<ManifestRow, Error> {
    let id = path_id(raw, "manifest")?;
    let row = read(app, move |conn| store::manifest(conn, id)).await?;
    row.filter(|r| who.is_admin() || r.user_id == who.user.id)
        .ok_or_else(|| Error::NotFound(format!("manifest {id} does not exist")))
}

/// A manifest (streamed): the JSON document, or with `format=urls` one link per line
/// (`s3://bucket/key` for a bucket-key manifest), for `wget -i` or `xargs curl`.
/// Links are the same as at checkout; an expired manifest lists no links.
#[utoipa::path(get, path = "/manifests/{id}", tag = "checkout",
    params(("id" = i64, Path), ("format" = Option<String>, Query, description = "json (default) or urls")),
    responses((status = 200, body = Manifest, description = "JSON, or text/plain with format=urls"),
        (status = 404, body = ErrorDoc), (status = 409, body = ErrorDoc, description = "urls of an expired manifest")))]
pub async fn get_manifest(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    q: QueryPairs,
) -> Result<Response, Error> {
    q.only(&["format"])?;
    let output = match q.one("format")? {
        None | Some("json") => Output::Json,
        Some("urls") => Output::Urls,
        Some(other) => {
            return Err(Error::field(
                "format",
                format!("format must be json or urls, not {other:?}"),
            ));
        }
    };
    let row = visible_manifest(&app, &who, &id).await?;
    let expired = row.expires_at <= now_millis();
    if expired && output == Output::Urls && row.format == Format::SignedUrl {
        return Err(Error::Conflict(format!(
            "manifest {} has expired: its links no longer work",
            row.id
        )));
    }
    let signer = match (&row.access_key_id, expired) {
        (Some(key), false) => {
            let secrets: &dyn SecretLookup = app.iam.as_ref();
            let secret = secrets.secret_for(key).ok_or_else(|| {
                Error::internal(format!("credential of manifest {} is missing", row.id))
            })?;
            Some(
                LinkSigner::new(
                    &base_url(&app, &headers),
                    key,
                    &secret,
                    &app.settings.s3.region,
                    row.created_at,
                    row.expires_secs(),
                )
                .map_err(|e| Error::field("server.public_url", e))?,
            )
        }
        _ => None,
    };
    let id = row.id;
    let summary = row.summary(&app.settings.checkout.manifest_bucket);
    let content_type = match output {
        Output::Json => "application/json",
        Output::Urls => "text/plain; charset=utf-8",
    };
    let r = Render {
        row,
        summary,
        signer,
        output,
    };
    Ok(streamed(
        StatusCode::OK,
        content_type,
        render::body(app.db.clone(), r, None),
        id,
    ))
}

/// Deletes a manifest (owner or admin): its credential goes with it, so every link
/// in it stops working at once; the stored manifest object is deleted too.
#[utoipa::path(delete, path = "/manifests/{id}", tag = "checkout", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorDoc)))]
pub async fn delete_manifest(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, Error> {
    let row = visible_manifest(&app, &who, &id).await?;
    let id = row.id;
    // Through the identity layer: the key cache drops the credential before we answer.
    app.iam
        .change(move |conn, _| store::delete_manifest(conn, id).map_err(to_iam))
        .await?;
    if let Err(e) = delete_stored(&app, vec![row.object_key()]).await {
        tracing::warn!(manifest = id, error = %e, "deleting the stored manifest object failed");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes objects of the manifest bucket (and, once committed, their bytes).
async fn delete_stored(app: &AppState, keys: Vec<String>) -> Result<(), crate::meta::Error> {
    let bucket = app.settings.checkout.manifest_bucket.clone();
    for o in app
        .db
        .delete_objects(bucket, keys, ZoneRules::Override)
        .await?
    {
        app.blobs.delete_later(o.blobs);
    }
    Ok(())
}

/// Deletes every stored manifest object of `user`, once the user is gone (see
/// [`crate::checkout::delete_stored_manifests`]).
pub async fn delete_stored_manifests_of(
    app: &AppState,
    user: &str,
) -> Result<(), crate::meta::Error> {
    let bucket = &app.settings.checkout.manifest_bucket;
    let blobs = crate::checkout::delete_stored_manifests(&app.db, bucket, user).await?;
    app.blobs.delete_later(blobs);
    Ok(())
}
