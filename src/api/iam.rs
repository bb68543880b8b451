//! Users, groups, access keys, bearer tokens and grants.
//!
//! Users and groups are managed by admins. A user may list, create, disable and
//! delete their own access keys and make tokens for themselves; admins may do so for
//! anyone. A grant may be made or revoked by an admin or by whoever holds `manage` on
//! its resource (a dataset's owner has `manage` on it).

use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::error::ErrorDoc;
use super::extract::{ApiJson, QueryPairs};
use super::{Error, Principal, require_admin};
use crate::app::AppState;
use crate::authz::{self, DatasetRef, Resource};
use crate::iam::store::{
    self, GrantView, GroupView, KeyView, NewGrant, NewGroup, NewKey, NewUser, ResourceSpec,
    TokenView, UserPatch, UserView,
};
use crate::iam::{Permission, token_hash};

/// A list of users.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserList {
    pub users: Vec<UserView>,
}

/// Creates a user (admin).
#[utoipa::path(post, path = "/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = UserView), (status = 400, body = ErrorDoc),
        (status = 403, body = ErrorDoc), (status = 404, body = ErrorDoc, description = "no such group"),
        (status = 409, body = ErrorDoc, description = "name taken")))]
pub async fn create_user(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiJson(body): ApiJson<NewUser>,
) -> Result<impl IntoResponse, Error> {
    require_admin(&who, "create users")?;
    let u = app
        .iam
        .change(move |conn, _| store::create_user(conn, &body))
        .await?;
    Ok((StatusCode::CREATED, Json(u)))
}

/// Lists users (admin).
#[utoipa::path(get, path = "/users", tag = "users",
    responses((status = 200, body = UserList), (status = 403, body = ErrorDoc)))]
pub async fn list_users(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<UserList>, Error> {
    require_admin(&who, "list users")?;
    let users = app.iam.read(store::list_users).await?;
    Ok(Json(UserList { users }))
}

/// One user (admin, or the user themself).
#[utoipa::path(get, path = "/users/{name}", tag = "users", params(("name" = String, Path)),
    responses((status = 200, body = UserView), (status = 403, body = ErrorDoc), (status = 404, body = ErrorDoc)))]
pub async fn get_user(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<UserView>, Error> {
    self_or_admin(&who, &name)?;
    Ok(Json(
        app.iam
            .read(move |conn| store::get_user(conn, &name))
            .await?,
    ))
}

/// Changes a user's role or groups (admin).
#[utoipa::path(patch, path = "/users/{name}", tag = "users", params(("name" = String, Path)),
    request_body = UserPatch,
    responses((status = 200, body = UserView), (status = 400, body = ErrorDoc),
        (status = 403, body = ErrorDoc), (status = 404, body = ErrorDoc), (status = 409, body = ErrorDoc)))]
pub async fn patch_user(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    ApiJson(patch): ApiJson<UserPatch>,
) -> Result<Json<UserView>, Error> {
    require_admin(&who, "change users")?;
    Ok(Json(
        app.iam
            .change(move |conn, _| store::update_user(conn, &name, &patch))
            .await?,
    ))
}

/// Deletes a user with their keys, tokens and grants (admin).
#[utoipa::path(delete, path = "/users/{name}", tag = "users", params(("name" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorDoc), (status = 404, body = ErrorDoc),
        (status = 409, body = ErrorDoc, description = "the bootstrap admin")))]
pub async fn delete_user(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<StatusCode, Error> {
    require_admin(&who, "delete users")?;
    let user = name.clone();
    app.iam
        .change(move |conn, _| store::delete_user(conn, &user))
        .await?;
    crate::api::checkout::delete_stored_manifests_of(&app, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn self_or_admin(who: &Principal, user: &str) -> Result<(), Error> {
    if who.is_admin() || who.name() == user {
        Ok(())
    } else {
        Err(Error::AccessDenied(format!(
            "only an admin or {user} may do this"
        )))
    }
}

/// A list of groups.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GroupList {
    pub groups: Vec<GroupView>,
}

/// Creates a group (admin).
#[utoipa::path(post, path = "/groups", tag = "users", request_body = NewGroup,
    responses((status = 201, body = GroupView), (status = 400, body = ErrorDoc),
        (status = 403, body = ErrorDoc), (status = 404, body = ErrorDoc), (status = 409, body = ErrorDoc)))]
pub async fn create_group(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiJson(body): ApiJson<NewGroup>,
) -> Result<impl IntoResponse, Error> {
    require_admin(&who, "create groups")?;
    let g = app
        .iam
        .change(move |conn, _| store::create_group(conn, &body))
        .await?;
    Ok((StatusCode::CREATED, Json(g)))
}

/// Lists groups with their members (admin).
#[utoipa::path(get, path = "/groups", tag = "users",
    responses((status = 200, body = GroupList), (status = 403, body = ErrorDoc)))]
pub async fn list_groups(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<GroupList>, Error> {
    require_admin(&who, "list groups")?;
    Ok(Json(GroupList {
        groups: app.iam.read(store::list_groups).await?,
    }))
}

/// Deletes a group and its grants; members stay (admin).
#[utoipa::path(delete, path = "/groups/{name}", tag = "users", params(("name" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorDoc), (status = 404, body = ErrorDoc)))]
pub async fn delete_group(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<StatusCode, Error> {
    require_admin(&who, "delete groups")?;
    app.iam
        .change(move |conn, _| store::delete_group(conn, &name))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A list of access keys.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyView>,
}

/// Creates an access key; the secret is in this response only.
#[utoipa::path(post, path = "/users/{name}/keys", tag = "users", params(("name" = String, Path)),
    responses((status = 201, body = NewKey), (status = 403, body = ErrorDoc), (status = 404, body = ErrorDoc)))]
pub async fn create_key(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, Error> {
    self_or_admin(&who, &name)?;
    let k = app
        .iam
        .change(move |conn, master| store::create_key(conn, master, &name, None))
        .await?;
    Ok((StatusCode::CREATED, Json(k)))
}

/// Lists a user's access keys (never their secrets).
#[utoipa::path(get, path = "/users/{name}/keys", tag = "users", params(("name" = String, Path)),
    responses((status = 200, body = KeyList), (status = 403, body = ErrorDoc), (status = 404, body = ErrorDoc)))]
pub async fn list_keys(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<KeyList>, Error> {
    self_or_admin(&who, &name)?;
    // Pending "last used" times first, so the list is current.
    app.iam.tick().await?;
    Ok(Json(KeyList {
        keys: app
            .iam
            .read(move |conn| store::list_keys(conn, Some(&name)))
            .await?,
    }))
}

/// Body of `PATCH /users/{name}/keys/{key}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyPatch {
    pub enabled: bool,
}

/// Enables or disables an access key.
#[utoipa::path(patch, path = "/users/{name}/keys/{key}", tag = "users",
    params(("name" = String, Path), ("key" = String, Path)), request_body = KeyPatch,
    responses((status = 200, body = KeyView), (status = 400, body = ErrorDoc),
        (status = 403, body = ErrorDoc), (status = 404, body = ErrorDoc)))]
pub async fn patch_key(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path((name, key)): Path<(String, String)>,
    ApiJson(patch): ApiJson<KeyPatch>,
) -> Result<Json<KeyView>, Error> {
    self_or_admin(&who, &name)?;
    Ok(Json(
        app.iam
            .change(move |conn, _| store::set_key_enabled(conn, &name, &key, patch.enabled))
            .await?,
    ))
}

/// Deletes an access key.
#[utoipa::path(delete, path = "/users/{name}/keys/{key}", tag = "users",
    params(("name" = String, Path), ("key" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorDoc), (status = 404, body = ErrorDoc)))]
pub async fn delete_key(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path((name, key)): Path<(String, String)>,
) -> Result<StatusCode, Error> {
    self_or_admin(&who, &name)?;
    app.iam
        .change(move |conn, _| store::delete_key(conn, &name, &key))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Longest life of a short-lived token, in seconds (12 hours).
const MAX_TOKEN_TTL: u64 = 12 * 3600;

/// Body of `POST /tokens`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// Lifetime in seconds, 1 to 43200 (default 3600).
    pub ttl_secs: Option<u64>,
    /// A label, shown in listings.
    #[serde(default)]
    pub name: String,
    /// Admins only: the user the token is for (default: the caller).
    pub user: Option<String>,
    /// Admins only: a long-lived API token that lasts until deleted.
    #[serde(default)]
    pub long_lived: bool,
}

/// A new bearer token; shown once, stored only as a hash.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenCreated {
    pub id: i64,
    pub token: String,
    pub user: String,
    pub expires_at: Option<String>,
}

/// Makes a bearer token (`Authorization: Bearer <token>`). Requires a request signed
/// with an access key: a token cannot mint tokens.
#[utoipa::path(post, path = "/tokens", tag = "users", request_body = NewToken,
    responses((status = 201, body = TokenCreated), (status = 400, body = ErrorDoc),
        (status = 403, body = ErrorDoc), (status = 404, body = ErrorDoc)))]
pub async fn create_token(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, Error> {
    let req: NewToken = if body.iter().all(u8::is_ascii_whitespace) {
        NewToken::default()
    } else {
        super::extract::parse_json(&body)?
    };
    if who.access_key_id.is_none() {
        return Err(Error::AccessDenied(
            "tokens are made with a request signed by an access key, not with a token".into(),
        ));
    }
    let user = req.user.clone().unwrap_or_else(|| who.name().to_string());
    if (user != who.name() || req.long_lived) && !who.is_admin() {
        return Err(Error::AccessDenied(
            "only an admin may make long-lived tokens or tokens for others".into(),
        ));
    }
    if req.name.len() > 128 {
        return Err(Error::field("name", "name must be at most 128 bytes"));
    }
    let expires_at = if req.long_lived {
        if req.ttl_secs.is_some() {
            return Err(Error::field(
                "ttl_secs",
                "a long-lived token has no ttl_secs",
            ));
        }
        None
    } else {
        let ttl = req.ttl_secs.unwrap_or(3600);
        if ttl == 0 || ttl > MAX_TOKEN_TTL {
            return Err(Error::field(
                "ttl_secs",
                format!("ttl_secs must be between 1 and {MAX_TOKEN_TTL}"),
            ));
        }
        Some(crate::meta::now_millis() + (ttl as i64) * 1000)
    };
    let token = crate::iam::new_token();
    let hash = token_hash(&token);
    let (u, name) = (user.clone(), req.name.clone());
    let id = app
        .iam
        .change(move |conn, _| store::create_token(conn, &u, &hash, &name, expires_at))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            id,
            token,
            user,
            expires_at: expires_at.map(crate::catalog::rfc3339),
        }),
    ))
}

/// A list of tokens.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenView>,
}

/// Lists live tokens: the caller's, or everyone's for an admin.
#[utoipa::path(get, path = "/tokens", tag = "users",
    responses((status = 200, body = TokenList)))]
pub async fn list_tokens(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<TokenList>, Error> {
    let user = (!who.is_admin()).then(|| who.name().to_string());
    Ok(Json(TokenList {
        tokens: app
            .iam
            .read(move |conn| store::list_tokens(conn, user.as_deref()))
            .await?,
    }))
}

/// Revokes a token (the caller's own, or any for an admin).
#[utoipa::path(delete, path = "/tokens/{id}", tag = "users", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorDoc)))]
pub async fn delete_token(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, Error> {
    let id: i64 = id
        .parse()
        .map_err(|_| Error::NotFound(format!("token {id:?} does not exist")))?;
    let user = (!who.is_admin()).then(|| who.name().to_string());
    app.iam
        .change(move |conn, _| store::delete_token(conn, id, user.as_deref()))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A list of grants.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GrantList {
    pub grants: Vec<GrantView>,
}

/// Whether `who` may grant or revoke on `r`: admins, and holders of `manage` on it.
/// Runs inside the change's transaction, so the resource cannot change between the
/// check and the insert.
fn may_grant(who: &Principal, r: &ResourceSpec) -> Result<(), crate::iam::Error> {
    let res = match r {
        ResourceSpec::Zone(z) => Resource::Zone(*z),
        ResourceSpec::Bucket { id, name, zone } => Resource::Bucket {
            id: *id,
            name,
            zone: *zone,
        },
        ResourceSpec::Dataset {
            id,
            bucket_id,
            zone,
            owner,
        } => Resource::Data {
            bucket_id: *bucket_id,
            bucket: "",
            zone: *zone,
            dataset: Some(DatasetRef {
                id: *id,
                owner: owner.clone(),
            }),
        },
    };
    authz::authorize(who, Permission::Manage, &res).map_err(|d| crate::iam::Error::Forbidden(d.0))
}

/// Grants a permission on a zone, bucket or dataset to a user or group.
#[utoipa::path(post, path = "/grants", tag = "grants", request_body = NewGrant,
    responses((status = 201, body = GrantView), (status = 400, body = ErrorDoc),
        (status = 403, body = ErrorDoc), (status = 404, body = ErrorDoc, description = "unknown principal or resource"),
        (status = 409, body = ErrorDoc, description = "already granted")))]
pub async fn create_grant(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiJson(body): ApiJson<NewGrant>,
) -> Result<impl IntoResponse, Error> {
    let by = who.name().to_string();
    let g = app
        .iam
        .change(move |conn, _| {
            let resource = store::parse_resource(conn, &body.resource)?;
            may_grant(&who, &resource)?;
            store::create_grant(conn, &body, &resource, &by)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(g)))
}

/// Lists grants: all (admin), or the caller's own and their groups'. Filters:
/// `principal=user:NAME|group:NAME`, `resource=zone:..|bucket:..|dataset:..`.
#[utoipa::path(get, path = "/grants", tag = "grants",
    params(("principal" = Option<String>, Query), ("resource" = Option<String>, Query)),
    responses((status = 200, body = GrantList), (status = 400, body = ErrorDoc)))]
pub async fn list_grants(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    q: QueryPairs,
) -> Result<Json<GrantList>, Error> {
    q.only(&["principal", "resource"])?;
    let principal = q.one("principal")?.map(str::to_string);
    let resource = q.one("resource")?.map(str::to_string);
    let mut grants = app
        .iam
        .read(move |conn| store::list_grants(conn, principal.as_deref(), resource.as_deref()))
        .await?;
    if !who.is_admin() {
        let mine = format!("user:{}", who.name());
        let groups: Vec<String> = who
            .user
            .groups
            .iter()
            .map(|g| format!("group:{g}"))
            .collect();
        grants.retain(|g| g.principal == mine || groups.contains(&g.principal));
    }
    Ok(Json(GrantList { grants }))
}

/// Revokes a grant (admin, or `manage` on its resource).
#[utoipa::path(delete, path = "/grants/{id}", tag = "grants", params(("id" = i64, Path)),
    responses((status = 204), (status = 403, body = ErrorDoc), (status = 404, body = ErrorDoc)))]
pub async fn delete_grant(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, Error> {
    let id: i64 = id
        .parse()
        .map_err(|_| Error::NotFound(format!("grant {id:?} does not exist")))?;
    app.iam
        .change(move |conn, _| {
            let g = store::get_grant(conn, id)?;
            let resource = store::parse_resource(conn, &g.resource)?;
            may_grant(&who, &resource)?;
            store::delete_grant(conn, id)
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
