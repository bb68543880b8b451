//! The JSON REST API under `/api/v1/`: zones, buckets, governance, datasets, schema,
//! crawl and search.
//!
//! Every route is declared once, with its `#[utoipa::path]` annotation, through
//! [`utoipa_axum::routes!`]: the router and the OpenAPI document served at
//! `/api/v1/openapi.json` come from the same declarations and cannot drift.
//! One middleware ([`auth::middleware`]) authenticates every request and renders
//! every error as `{"error": {"code", "message", "request_id"}}`.

mod audit;
pub mod auth;
mod checkout;
mod datasets;
pub mod error;
pub mod extract;
mod iam;
mod zones;

use axum::Json;
use axum::Router;
use axum::routing::get;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
pub use auth::Principal;
pub use error::Error;

#[derive(OpenApi)]
#[openapi(
    info(title = "Tarn REST API", description = "Zones, datasets, schema, crawl, search, \
        users, access keys, tokens, grants, the audit trail, and the cart with checkout \
        manifests of presigned links. \
        Every request is signed with SigV4 like an S3 request \
        (curl --aws-sigv4 \"aws:amz:us-east-1:s3\" --user KEY:SECRET) \
        or carries a bearer token from POST /tokens."),
    servers((url = "/api/v1")),
    components(schemas(error::ErrorDoc, error::ErrorBody)),
    tags((name = "zones"), (name = "governance"), (name = "datasets"), (name = "search"),
        (name = "users"), (name = "grants"), (name = "audit"), (name = "checkout"))
)]
struct ApiDoc;

/// Fails unless the caller is an admin.
pub fn require_admin(who: &Principal, action: &str) -> Result<(), Error> {
    if who.is_admin() {
        Ok(())
    } else {
        Err(Error::AccessDenied(format!("only an admin may {action}")))
    }
}

/// The routes and the OpenAPI document they describe.
pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(zones::list_zones))
        .routes(routes!(zones::list_buckets))
        .routes(routes!(zones::get_bucket, zones::put_bucket))
        .routes(routes!(zones::get_governance, zones::put_governance))
        .routes(routes!(datasets::create_dataset, datasets::list_datasets))
        .routes(routes!(
            datasets::get_dataset,
            datasets::patch_dataset,
            datasets::delete_dataset
        ))
        .routes(routes!(datasets::crawl_dataset))
        .routes(routes!(datasets::get_schema))
        .routes(routes!(datasets::search_datasets))
        .routes(routes!(iam::create_user, iam::list_users))
        .routes(routes!(iam::get_user, iam::patch_user, iam::delete_user))
        .routes(routes!(iam::create_group, iam::list_groups))
        .routes(routes!(iam::delete_group))
        .routes(routes!(iam::create_key, iam::list_keys))
        .routes(routes!(iam::patch_key, iam::delete_key))
        .routes(routes!(iam::create_token, iam::list_tokens))
        .routes(routes!(iam::delete_token))
        .routes(routes!(iam::create_grant, iam::list_grants))
        .routes(routes!(iam::delete_grant))
        .routes(routes!(audit::query_audit))
        .routes(routes!(audit::export_audit))
        .routes(routes!(checkout::get_cart, checkout::add_to_cart))
        .routes(routes!(checkout::delete_cart_item))
        .routes(routes!(checkout::checkout))
        .routes(routes!(checkout::list_manifests))
        .routes(routes!(checkout::get_manifest, checkout::delete_manifest))
        .split_for_parts()
}

/// Routes of the REST API (mounted at `/api/v1`), behind authentication.
pub fn router(state: AppState) -> Router<AppState> {
    let (routes, doc) = routes();
    let doc = std::sync::Arc::new(doc);
    routes
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .route_layer(axum::middleware::from_fn(route_name))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state,
            auth::middleware,
        ))
}

/// Puts the matched route template on the response, for the audit record's action.
async fn route_name(
    path: Option<axum::extract::MatchedPath>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut resp = next.run(req).await;
    if let Some(p) = path {
        resp.extensions_mut()
            .insert(crate::audit::RouteName(std::sync::Arc::from(p.as_str())));
    }
    resp
}

async fn not_found() -> Error {
    Error::NotFound("no such API route".into())
}
