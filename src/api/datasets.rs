//! Datasets, their schema and the crawler, and search.

use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use http::{StatusCode, header};
use serde::Serialize;

use super::Error;
use super::auth::Principal;
use super::error::ErrorDoc;
use super::extract::{ApiJson, QueryPairs};
use crate::app::AppState;
use crate::authz::{self, Visibility};
use crate::catalog::crawl::{self, CrawlResult, SchemaVersion};
use crate::catalog::search::{self, SearchQuery, SearchResult};
use crate::catalog::{self, Dataset, DatasetFilter, DatasetPatch, NewDataset, Page};
use crate::iam::Permission;
use crate::meta::{Zone, ZoneRules};

/// A dataset id from the path; anything that is not a number names no dataset.
fn dataset_id(raw: &str) -> Result<i64, Error> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| Error::NotFound(format!("dataset {raw:?} does not exist")))
}

fn zone_param(q: &QueryPairs) -> Result<Option<Zone>, Error> {
    q.one("zone")?
        .map(|z| {
            Zone::parse(z)
                .ok_or_else(|| Error::field("zone", "zone must be raw, transformed or curated"))
        })
        .transpose()
}

/// `tag=key=value` parameters (repeatable, all must match).
fn tag_params(q: &QueryPairs) -> Result<Vec<(String, String)>, Error> {
    q.all("tag")
        .into_iter()
        .map(|t| {
            t.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| Error::field("tag", format!("tag filter {t:?} must be key=value")))
        })
        .collect()
}

fn limit_param(q: &QueryPairs, default: usize, max: usize) -> Result<usize, Error> {
    let limit = q.parsed::<usize>("limit")?.unwrap_or(default);
    if limit == 0 || limit > max {
        return Err(Error::field(
            "limit",
            format!("limit must be between 1 and {max}"),
        ));
    }
    Ok(limit)
}

/// Registers a dataset.
#[utoipa::path(post, path = "/datasets", tag = "datasets", request_body = NewDataset,
    responses((status = 201, body = Dataset), (status = 400, body = ErrorDoc),
        (status = 404, body = ErrorDoc, description = "no such bucket"),
        (status = 409, body = ErrorDoc, description = "name taken in the zone, or prefix overlaps"),
        (status = 422, body = ErrorDoc, description = "governance rule violated")))]
pub async fn create_dataset(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiJson(body): ApiJson<NewDataset>,
) -> Result<impl IntoResponse, Error> {
    // Registering data in a bucket takes write on it (or its zone); naming someone
    // else as the owner takes an admin.
    not_the_manifest_bucket(&app, &body.bucket)?;
    authz::authorize_bucket(&app.db, &who, Permission::Write, &body.bucket).await?;
    if body.owner.as_deref().is_some_and(|o| o != who.name()) && !who.is_admin() {
        return Err(Error::AccessDenied(
            "only an admin may register a dataset for another owner".into(),
        ));
    }
    let d = catalog::datasets::create(&app.db, body, who.name()).await?;
    let location = format!("/api/v1/datasets/{}", d.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(d)))
}

/// Lists datasets, filtered, by id, with cursor pagination.
#[utoipa::path(get, path = "/datasets", tag = "datasets",
    params(
        ("zone" = Option<String>, Query, description = "raw, transformed or curated"),
        ("bucket" = Option<String>, Query),
        ("owner" = Option<String>, Query),
        ("format" = Option<String>, Query),
        ("tag" = Option<Vec<String>>, Query, description = "key=value, repeatable (all must match)"),
        ("limit" = Option<usize>, Query, description = "1 to 1000, default 100"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, body = Page), (status = 400, body = ErrorDoc)))]
pub async fn list_datasets(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    q: QueryPairs,
) -> Result<Json<Page>, Error> {
    q.only(&[
        "zone", "bucket", "owner", "format", "tag", "limit", "cursor",
    ])?;
    let filter = DatasetFilter {
        zone: zone_param(&q)?,
        bucket: q.one("bucket")?.map(str::to_string),
        owner: q.one("owner")?.map(str::to_string),
        format: q.one("format")?.map(str::to_string),
        tags: tag_params(&q)?,
        after: q.parsed::<i64>("cursor")?,
        limit: limit_param(&q, 100, 1000)?,
        visibility: Visibility::of(&who),
    };
    Ok(Json(catalog::datasets::list(&app.db, filter).await?))
}

/// One dataset with live statistics.
#[utoipa::path(get, path = "/datasets/{id}", tag = "datasets", params(("id" = i64, Path)),
    responses((status = 200, body = Dataset), (status = 404, body = ErrorDoc)))]
pub async fn get_dataset(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Dataset>, Error> {
    let d = catalog::datasets::get(&app.db, dataset_id(&id)?).await?;
    may(&app, &who, Permission::Read, &d).await?;
    Ok(Json(d))
}

/// Updates a dataset (absent fields unchanged).
#[utoipa::path(patch, path = "/datasets/{id}", tag = "datasets", params(("id" = i64, Path)),
    request_body = DatasetPatch,
    responses((status = 200, body = Dataset), (status = 400, body = ErrorDoc),
        (status = 404, body = ErrorDoc), (status = 409, body = ErrorDoc), (status = 422, body = ErrorDoc)))]
pub async fn patch_dataset(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<DatasetPatch>,
) -> Result<Json<Dataset>, Error> {
    let id = dataset_id(&id)?;
    let current = catalog::datasets::get(&app.db, id).await?;
    may(&app, &who, Permission::Manage, &current).await?;
    if let Some(b) = &patch.bucket {
        not_the_manifest_bucket(&app, b)?;
    }
    Ok(Json(catalog::datasets::update(&app.db, id, patch).await?))
}

/// Datasets may not cover the bucket of stored checkout manifests: a checkout of such
/// a dataset would hand out links to other users' manifests (and their links).
fn not_the_manifest_bucket(app: &AppState, bucket: &str) -> Result<(), Error> {
    if bucket == app.settings.checkout.manifest_bucket {
        return Err(Error::field(
            "bucket",
            format!("bucket {bucket:?} holds checkout manifests; it cannot hold datasets"),
        ));
    }
    Ok(())
}

/// Result of a delete.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Deleted {
    pub id: i64,
    /// Objects deleted with `purge=true`.
    pub purged_objects: u64,
}

/// Removes a dataset. Objects stay unless `purge=true` (admin or owner); zone rules
/// apply to the purge, and an admin's purge overrides them.
#[utoipa::path(delete, path = "/datasets/{id}", tag = "datasets",
    params(("id" = i64, Path), ("purge" = Option<bool>, Query)),
    responses((status = 200, body = Deleted), (status = 403, body = ErrorDoc), (status = 404, body = ErrorDoc)))]
pub async fn delete_dataset(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    q: QueryPairs,
) -> Result<Json<Deleted>, Error> {
    q.only(&["purge"])?;
    let id = dataset_id(&id)?;
    let purge = q.parsed::<bool>("purge")?.unwrap_or(false);
    let current = catalog::datasets::get(&app.db, id).await?;
    may(&app, &who, Permission::Manage, &current).await?;
    let rules = if who.is_admin() {
        ZoneRules::Override
    } else {
        ZoneRules::Enforce
    };
    let purged = catalog::datasets::delete(&app.db, &app.blobs, id, purge, rules).await?;
    // Its grants went with it (FK cascade): drop them from the cache before answering.
    app.iam.reload().await?;
    Ok(Json(Deleted {
        id,
        purged_objects: purged,
    }))
}

/// Authorizes `perm` on dataset `d` (its grants, its bucket's and zone's, ownership).
async fn may(app: &AppState, who: &Principal, perm: Permission, d: &Dataset) -> Result<(), Error> {
    Ok(authz::authorize_data(&app.db, who, perm, &d.bucket, &d.prefix).await?)
}

/// Infers the schema from the data and records a new version if it changed.
#[utoipa::path(post, path = "/datasets/{id}/crawl", tag = "datasets", params(("id" = i64, Path)),
    responses((status = 200, body = CrawlResult), (status = 404, body = ErrorDoc),
        (status = 422, body = ErrorDoc, description = "no readable data under the prefix")))]
pub async fn crawl_dataset(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<CrawlResult>, Error> {
    let id = dataset_id(&id)?;
    let d = catalog::datasets::get(&app.db, id).await?;
    may(&app, &who, Permission::Write, &d).await?;
    Ok(Json(crawl::crawl(&app.db, &app.blobs, id).await?))
}

/// A schema version (the latest without `version`), with the diff from the previous.
#[utoipa::path(get, path = "/datasets/{id}/schema", tag = "datasets",
    params(("id" = i64, Path), ("version" = Option<i64>, Query)),
    responses((status = 200, body = SchemaVersion), (status = 404, body = ErrorDoc)))]
pub async fn get_schema(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    q: QueryPairs,
) -> Result<Json<SchemaVersion>, Error> {
    q.only(&["version"])?;
    let id = dataset_id(&id)?;
    let d = catalog::datasets::get(&app.db, id).await?;
    may(&app, &who, Permission::Read, &d).await?;
    let version = q.parsed::<i64>("version")?;
    Ok(Json(crawl::schema(&app.db, id, version).await?))
}

/// Full-text search over names, descriptions, tags, column names and metadata
/// values, ranked by bm25, with filters and facet counts.
#[utoipa::path(get, path = "/search", tag = "search",
    params(
        ("q" = Option<String>, Query, description = "words; a trailing * makes a prefix; all must match"),
        ("zone" = Option<String>, Query), ("owner" = Option<String>, Query),
        ("format" = Option<String>, Query),
        ("tag" = Option<Vec<String>>, Query, description = "key=value, repeatable"),
        ("limit" = Option<usize>, Query, description = "1 to 100, default 20"),
        ("cursor" = Option<String>, Query)),
    responses((status = 200, body = SearchResult), (status = 400, body = ErrorDoc)))]
pub async fn search_datasets(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    q: QueryPairs,
) -> Result<Json<SearchResult>, Error> {
    q.only(&["q", "zone", "owner", "format", "tag", "limit", "cursor"])?;
    let query = SearchQuery {
        q: q.one("q")?.map(str::to_string),
        zone: zone_param(&q)?,
        owner: q.one("owner")?.map(str::to_string),
        format: q.one("format")?.map(str::to_string),
        tags: tag_params(&q)?,
        offset: q.parsed::<usize>("cursor")?.unwrap_or(0),
        limit: limit_param(&q, 20, search::MAX_LIMIT)?,
        visibility: Visibility::of(&who),
    };
    Ok(Json(search::search(&app.db, &app.search, query).await?))
}
