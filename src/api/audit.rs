//! The audit trail over REST (admins): a filtered, paginated query and a JSON-lines
//! export. Both first flush the records still queued, so an auditor sees every
//! request answered before theirs.

use axum::Extension;
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::error::ErrorDoc;
use super::extract::QueryPairs;
use super::{Error, Principal, require_admin};
use crate::app::AppState;
use crate::audit::{self, Filter, Outcome, Record};

/// A page of audit records.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub records: Vec<Record>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A time given as RFC 3339 or Unix milliseconds.
fn time_param(q: &QueryPairs, name: &str) -> Result<Option<i64>, Error> {
    let Some(v) = q.one(name)? else {
        return Ok(None);
    };
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(Some(ms));
    }
    time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .map(|t| Some((t.unix_timestamp_nanos() / 1_000_000) as i64))
        .map_err(|_| {
            Error::field(
                name,
                format!(
                    "{name} must be an RFC 3339 time (2025-01-31T12:00:00Z) or Unix milliseconds"
                ),
            )
        })
}

fn filter(q: &QueryPairs, default_limit: usize, max: usize) -> Result<Filter, Error> {
    q.only(&[
        "principal",
        "action",
        "resource",
        "outcome",
        "since",
        "until",
        "limit",
        "cursor",
    ])?;
    let limit = q.parsed::<usize>("limit")?.unwrap_or(default_limit);
    if limit == 0 || limit > max {
        return Err(Error::field(
            "limit",
            format!("limit must be between 1 and {max}"),
        ));
    }
    Ok(Filter {
        principal: q.one("principal")?.map(str::to_string),
        action: q.one("action")?.map(str::to_string),
        resource: q.one("resource")?.map(str::to_string),
        outcome: q
            .one("outcome")?
            .map(|o| {
                Outcome::parse(o).ok_or_else(|| {
                    Error::field("outcome", "outcome must be allowed, denied or error")
                })
            })
            .transpose()?,
        since: time_param(q, "since")?,
        until: time_param(q, "until")?,
        after: q.parsed::<i64>("cursor")?,
        limit,
    })
}

/// Audit records in time order, filtered by principal (user name), action (S3
/// operation or `METHOD /api/v1/route`), resource (prefix), outcome and time range.
#[utoipa::path(get, path = "/audit", tag = "audit",
    params(("principal" = Option<String>, Query), ("action" = Option<String>, Query),
        ("resource" = Option<String>, Query, description = "prefix of the resource"),
        ("outcome" = Option<String>, Query, description = "allowed, denied or error"),
        ("since" = Option<String>, Query, description = "RFC 3339 or Unix ms, inclusive"),
        ("until" = Option<String>, Query, description = "RFC 3339 or Unix ms, exclusive"),
        ("limit" = Option<usize>, Query, description = "1 to 1000, default 100"),
        ("cursor" = Option<String>, Query)),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorDoc), (status = 403, body = ErrorDoc)))]
pub async fn query_audit(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    q: QueryPairs,
) -> Result<Json<AuditPage>, Error> {
    require_admin(&who, "read the audit trail")?;
    let f = filter(&q, 100, 1000)?;
    let limit = f.limit;
    app.audit.flush().await;
    let mut f2 = f.clone();
    f2.limit = limit + 1;
    let mut records = audit::query(&app.db, f2).await?;
    let more = records.len() > limit;
    records.truncate(limit);
    let next_cursor = more
        .then(|| records.last().map(|r| r.id.to_string()))
        .flatten();
    Ok(Json(AuditPage {
        records,
        next_cursor,
    }))
}

/// Every matching record as JSON lines (`application/x-ndjson`), streamed in pages.
#[utoipa::path(get, path = "/audit/export", tag = "audit",
    params(("since" = Option<String>, Query, description = "RFC 3339 or Unix ms"),
        ("until" = Option<String>, Query), ("principal" = Option<String>, Query),
        ("action" = Option<String>, Query), ("resource" = Option<String>, Query),
        ("outcome" = Option<String>, Query)),
    responses((status = 200, description = "one JSON record per line", content_type = "application/x-ndjson"),
        (status = 400, body = ErrorDoc), (status = 403, body = ErrorDoc)))]
pub async fn export_audit(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    q: QueryPairs,
) -> Result<Response, Error> {
    require_admin(&who, "export the audit trail")?;
    let f = filter(&q, 1000, 1000)?;
    app.audit.flush().await;
    let db = app.db.clone();
    let pages = futures_util::stream::unfold(Some(f), move |state| {
        let db = db.clone();
        async move {
            let f = state?;
            match audit::query(&db, f.clone()).await {
                Ok(records) if records.is_empty() => None,
                Ok(records) => {
                    let mut out = Vec::new();
                    for r in &records {
                        if serde_json::to_writer(&mut out, r).is_ok() {
                            out.push(b'\n');
                        }
                    }
                    let next = Filter {
                        after: records.last().map(|r| r.id),
                        ..f
                    };
                    Some((Ok::<_, std::io::Error>(bytes::Bytes::from(out)), Some(next)))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "audit export failed");
                    Some((Err(std::io::Error::other(e.to_string())), None))
                }
            }
        }
    });
    Ok((
        [(http::header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(pages),
    )
        .into_response())
}
