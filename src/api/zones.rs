//! Zones, buckets and governance rules.

use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::auth::Principal;
use super::extract::ApiJson;
use super::{Error, require_admin};
use crate::app::AppState;
use crate::catalog::{self, Governance};
use crate::meta::{self, BucketInfo, Zone};

/// A bucket, its zone and live statistics.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BucketView {
    pub name: String,
    pub zone: Zone,
    pub object_count: u64,
    pub total_bytes: u64,
    pub created_at: String,
}

impl From<BucketInfo> for BucketView {
    fn from(b: BucketInfo) -> BucketView {
        BucketView {
            name: b.name,
            zone: b.zone,
            object_count: b.object_count,
            total_bytes: b.total_bytes,
            created_at: catalog::rfc3339(b.created_at),
        }
    }
}

/// `GET /buckets`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BucketList {
    pub buckets: Vec<BucketView>,
}

/// One zone: its buckets, totals and rules.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ZoneView {
    pub zone: Zone,
    pub buckets: Vec<String>,
    pub object_count: u64,
    pub total_bytes: u64,
    pub dataset_count: u64,
    pub required_tags: Vec<String>,
    /// Whether objects are immutable once written (raw).
    pub write_once: bool,
}

/// `GET /zones`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ZoneList {
    pub zones: Vec<ZoneView>,
}

/// Body of `PUT /buckets/{bucket}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutBucket {
    pub zone: Zone,
}

/// Zones with their buckets, object counts, bytes and rules; for members, only the
/// buckets they may read as a whole and the datasets they may read are counted.
#[utoipa::path(get, path = "/zones", tag = "zones",
    responses((status = 200, body = ZoneList), (status = 401, body = super::error::ErrorDoc)))]
pub async fn list_zones(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<ZoneList>, Error> {
    let buckets = readable_buckets(&app, &who).await?;
    let rules = catalog::governance::get(&app.db).await?;
    let mut args = Vec::new();
    let visible = crate::authz::Visibility::of(&who)
        .sql(&mut args)
        .unwrap_or_else(|| "1".into());
    let counts: Vec<(String, u64)> = app
        .db
        .read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT d.zone, COUNT(*) FROM datasets d WHERE {visible} GROUP BY d.zone"
            ))?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| {
                Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await?;
    let zones = Zone::ALL
        .into_iter()
        .map(|z| {
            let mine: Vec<&BucketInfo> = buckets.iter().filter(|b| b.zone == z).collect();
            ZoneView {
                zone: z,
                buckets: mine.iter().map(|b| b.name.clone()).collect(),
                object_count: mine.iter().map(|b| b.object_count).sum(),
                total_bytes: mine.iter().map(|b| b.total_bytes).sum(),
                dataset_count: counts
                    .iter()
                    .find(|(n, _)| n == z.as_str())
                    .map_or(0, |c| c.1),
                required_tags: rules
                    .zones
                    .get(&z)
                    .map(|r| r.required_tags.clone())
                    .unwrap_or_default(),
                write_once: z == Zone::Raw,
            }
        })
        .collect();
    Ok(Json(ZoneList { zones }))
}

/// Buckets with zone, object count and bytes; members see the buckets they may read
/// as a whole (a zone or bucket grant).
#[utoipa::path(get, path = "/buckets", tag = "zones",
    responses((status = 200, body = BucketList), (status = 401, body = super::error::ErrorDoc)))]
pub async fn list_buckets(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<BucketList>, Error> {
    let buckets = readable_buckets(&app, &who).await?;
    Ok(Json(BucketList {
        buckets: buckets.into_iter().map(BucketView::from).collect(),
    }))
}

/// The buckets `who` may read as a whole: everything their statistics count is
/// theirs to see (members with dataset grants only find their data through
/// `/datasets` and search).
async fn readable_buckets(app: &AppState, who: &Principal) -> Result<Vec<BucketInfo>, Error> {
    let all = app.db.bucket_infos().await?;
    Ok(crate::authz::visible_buckets(&app.db, who, all, |b| (b.id, b.zone), false).await?)
}

/// One bucket.
#[utoipa::path(get, path = "/buckets/{bucket}", tag = "zones",
    params(("bucket" = String, Path)),
    responses((status = 200, body = BucketView), (status = 404, body = super::error::ErrorDoc)))]
pub async fn get_bucket(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(bucket): Path<String>,
) -> Result<Json<BucketView>, Error> {
    crate::authz::authorize_bucket(&app.db, &who, crate::iam::Permission::Read, &bucket).await?;
    match app.db.bucket_info(bucket.clone()).await {
        Ok(b) => Ok(Json(b.into())),
        Err(meta::Error::NoSuchBucket) => Err(no_bucket(&bucket)),
        Err(e) => Err(e.into()),
    }
}

fn no_bucket(name: &str) -> Error {
    Error::NotFound(format!("bucket {name:?} does not exist"))
}

/// Sets a bucket's zone (admin), creating the bucket if it does not exist (201).
/// Its datasets move with it: the target zone's governance rules and per-zone name
/// uniqueness must hold for them (422 / 409 otherwise).
#[utoipa::path(put, path = "/buckets/{bucket}", tag = "zones",
    params(("bucket" = String, Path)), request_body = PutBucket,
    responses((status = 200, body = BucketView), (status = 201, body = BucketView),
        (status = 400, body = super::error::ErrorDoc), (status = 403, body = super::error::ErrorDoc),
        (status = 409, body = super::error::ErrorDoc), (status = 422, body = super::error::ErrorDoc)))]
pub async fn put_bucket(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(bucket): Path<String>,
    ApiJson(body): ApiJson<PutBucket>,
) -> Result<(StatusCode, Json<BucketView>), Error> {
    require_admin(&who, "set a bucket's zone")?;
    if !crate::s3::endpoint::valid_bucket_name(&bucket) || bucket == "api" {
        return Err(Error::field(
            "bucket",
            format!("{bucket:?} is not a valid bucket name"),
        ));
    }
    let region = app.settings.s3.region.clone();
    let zone = body.zone;
    let name = bucket.clone();
    let created = app
        .db
        .write(
            move |conn| -> Result<Result<bool, catalog::Error>, meta::Error> {
                match meta::zones::bucket_info_in(conn, &name) {
                    Ok(b) => {
                        if b.zone != zone {
                            if let Err(e) = catalog::datasets::check_zone_move(conn, b.id, zone) {
                                return Ok(Err(e));
                            }
                            meta::zones::set_zone_in(conn, b.id, zone)?;
                            catalog::datasets::apply_zone_move(conn, b.id, zone)?;
                        }
                        Ok(Ok(false))
                    }
                    Err(meta::Error::NoSuchBucket) => {
                        meta::zones::create_bucket_in(conn, &name, &region, zone)?;
                        Ok(Ok(true))
                    }
                    Err(e) => Err(e),
                }
            },
        )
        .await??;
    let info = app.db.bucket_info(bucket).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(info.into())))
}

/// The governance rules.
#[utoipa::path(get, path = "/governance", tag = "governance",
    responses((status = 200, body = Governance)))]
pub async fn get_governance(State(app): State<AppState>) -> Result<Json<Governance>, Error> {
    Ok(Json(catalog::governance::get(&app.db).await?))
}

/// Replaces the governance rules (admin).
#[utoipa::path(put, path = "/governance", tag = "governance", request_body = Governance,
    responses((status = 200, body = Governance), (status = 400, body = super::error::ErrorDoc),
        (status = 403, body = super::error::ErrorDoc)))]
pub async fn put_governance(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiJson(doc): ApiJson<Governance>,
) -> Result<Json<Governance>, Error> {
    require_admin(&who, "change governance rules")?;
    Ok(Json(catalog::governance::put(&app.db, doc).await?))
}
