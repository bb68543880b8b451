//! The JSON REST API under `/api/v1/`. The catalog, cart and governance routes land
//! here; until then every path answers a JSON 404 so the prefix is clearly reserved.

use axum::Json;
use axum::Router;
use http::StatusCode;
use serde_json::json;

use crate::app::AppState;

/// Routes of the REST API (mounted at `/api/v1`).
pub fn router() -> Router<AppState> {
    Router::new().fallback(not_found)
}

async fn not_found() -> (StatusCode, Json<serde_json::Value>) {
    let request_id = crate::s3::new_request_id();
    (
        StatusCode::NOT_FOUND,
        Json(
            json!({"error": {"code": "NotFound", "message": "no such API route", "request_id": &*request_id}}),
        ),
    )
}
