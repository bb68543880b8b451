//! The identity tables: every read and change, on an open connection.
//!
//! Changes run inside [`super::Iam::change`] (the writer's transaction, version bump
//! included) or, for `tarn admin`, inside [`crate::meta::Db::write`] followed by
//! [`bump_version`]. Each function validates its input before its first statement.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{
    Error, Grant, GrantResource, KeyEntry, MasterKey, Permission, Role, Snapshot, TokenEntry, User,
};
use crate::catalog::rfc3339;
use crate::meta::{Zone, now_millis};

/// Checks a user or group name: 1 to 64 of letters, digits, `_ - . @`.
pub fn validate_name(field: &str, name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("{name:?} must be 1 to 64 letters, digits, '_', '-', '.' or '@'"),
        ))
    }
}

/// Bumps `iam_version` (in the caller's transaction).
pub fn bump_version(conn: &Connection) -> Result<(), crate::meta::Error> {
    conn.prepare_cached("UPDATE iam_version SET version = version + 1 WHERE id = 1")?
        .execute([])?;
    Ok(())
}

/// The current `iam_version`.
pub fn version(conn: &Connection) -> Result<i64, crate::meta::Error> {
    Ok(conn
        .prepare_cached("SELECT version FROM iam_version WHERE id = 1")?
        .query_row([], |r| r.get(0))?)
}

/// Loads everything the request path needs.
pub fn load_snapshot(conn: &Connection, key: &MasterKey) -> Result<Snapshot, Error> {
    let version = version(conn)?;
    // Grants by holder.
    let mut by_user: HashMap<i64, Vec<Grant>> = HashMap::new();
    let mut by_group: HashMap<i64, Vec<Grant>> = HashMap::new();
    let mut stmt = conn.prepare(
        "SELECT g.user_id, g.group_id, g.zone, g.bucket_id, b.name, g.dataset_id, g.permission
         FROM grants g LEFT JOIN buckets b ON b.id = g.bucket_id",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let resource = match (
            r.get::<_, Option<String>>(2)?,
            r.get::<_, Option<i64>>(3)?,
            r.get::<_, Option<String>>(4)?,
            r.get::<_, Option<i64>>(5)?,
        ) {
            (Some(z), _, _, _) => match Zone::parse(&z) {
                Some(z) => GrantResource::Zone(z),
                None => continue,
            },
            (_, Some(id), Some(name), _) => GrantResource::Bucket { id, name },
            (_, _, _, Some(id)) => GrantResource::Dataset(id),
            _ => continue,
        };
        let Some(permission) = Permission::parse(&r.get::<_, String>(6)?) else {
            continue;
        };
        let grant = Grant {
            resource,
            permission,
        };
        match (r.get::<_, Option<i64>>(0)?, r.get::<_, Option<i64>>(1)?) {
            (Some(u), _) => by_user.entry(u).or_default().push(grant),
            (_, Some(g)) => by_group.entry(g).or_default().push(grant),
            _ => {}
        }
    }
    // Group memberships.
    let mut groups_of: HashMap<i64, Vec<(i64, String)>> = HashMap::new();
    let mut stmt = conn.prepare(
        "SELECT m.user_id, g.id, g.name FROM group_members m JOIN user_groups g ON g.id = m.group_id
         ORDER BY g.name",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        groups_of
            .entry(r.get(0)?)
            .or_default()
            .push((r.get(1)?, r.get(2)?));
    }
    let mut users = HashMap::new();
    let mut stmt = conn.prepare("SELECT id, name, role FROM users")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        let role = Role::parse(&r.get::<_, String>(2)?).unwrap_or(Role::Member);
        let groups = groups_of.remove(&id).unwrap_or_default();
        let mut grants = by_user.remove(&id).unwrap_or_default();
        for (gid, _) in &groups {
            grants.extend(by_group.get(gid).into_iter().flatten().cloned());
        }
        users.insert(
            id,
            Arc::new(User {
                id,
                name: r.get(1)?,
                role,
                groups: groups.into_iter().map(|(_, n)| n).collect(),
                grants,
            }),
        );
    }
    let mut keys = HashMap::new();
    let mut stmt =
        conn.prepare("SELECT access_key_id, user_id, sealed_secret, enabled FROM access_keys")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let id: String = r.get(0)?;
        let sealed: Vec<u8> = r.get(2)?;
        let Some(secret) = key.open(&id, &sealed) else {
            tracing::warn!(access_key_id = %id, "cannot decrypt the secret of an access key (another master key?); the key is unusable");
            continue;
        };
        keys.insert(
            Arc::from(id),
            KeyEntry {
                user_id: r.get(1)?,
                secret: Arc::from(secret),
                enabled: r.get(3)?,
            },
        );
    }
    // Credentials of live manifests (expired links fail on their expiry anyway).
    let mut manifest_keys = HashMap::new();
    let mut stmt = conn.prepare(
        "SELECT id, user_id, access_key_id, sealed_secret FROM manifests
         WHERE access_key_id IS NOT NULL AND expires_at > ?1",
    )?;
    let mut rows = stmt.query([now_millis()])?;
    while let Some(r) = rows.next()? {
        let manifest_id: i64 = r.get(0)?;
        let id: String = r.get(2)?;
        let sealed: Vec<u8> = r.get(3)?;
        let Some(secret) = key.open(&id, &sealed) else {
            tracing::warn!(
                manifest = manifest_id,
                "cannot decrypt the credential of a manifest; its links are unusable"
            );
            continue;
        };
        manifest_keys.insert(
            Arc::from(id),
            super::ManifestKeyEntry {
                manifest_id,
                owner_id: r.get(1)?,
                secret: Arc::from(secret),
                user: Arc::new(User {
                    id: -manifest_id,
                    name: super::manifest_principal_name(manifest_id),
                    role: Role::Member,
                    groups: Vec::new(),
                    grants: Vec::new(),
                }),
            },
        );
    }
    let mut tokens = HashMap::new();
    let mut stmt = conn.prepare("SELECT token_hash, user_id, expires_at FROM api_tokens")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let hash: Vec<u8> = r.get(0)?;
        let Ok(hash) = <[u8; 32]>::try_from(hash) else {
            continue;
        };
        tokens.insert(
            hash,
            TokenEntry {
                user_id: r.get(1)?,
                expires_at: r.get(2)?,
            },
        );
    }
    Ok(Snapshot {
        version,
        users,
        keys,
        manifest_keys,
        tokens,
    })
}

/// Writes "last used" times of access keys.
pub fn record_key_use(conn: &Connection, uses: &[(String, i64)]) -> Result<(), Error> {
    let mut stmt = conn.prepare_cached(
        "UPDATE access_keys SET last_used_at = MAX(COALESCE(last_used_at, 0), ?2)
         WHERE access_key_id = ?1",
    )?;
    for (id, at) in uses {
        stmt.execute(params![id, at])?;
    }
    Ok(())
}

// ---------------------------------------------------------------- users and groups

/// A request to create a user.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// 1 to 64 letters, digits, `_ - . @`; unique.
    pub name: String,
    pub role: Role,
    /// Groups to join (they must exist).
    #[serde(default)]
    pub groups: Vec<String>,
}

/// A change to a user; absent fields are unchanged, `groups` replaces the list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub role: Option<Role>,
    pub groups: Option<Vec<String>>,
}

/// A user as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub name: String,
    pub role: Role,
    pub groups: Vec<String>,
    /// Number of access keys.
    pub keys: u64,
    pub created_at: String,
}

fn user_id(conn: &Connection, name: &str) -> Result<i64, Error> {
    conn.prepare_cached("SELECT id FROM users WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?
        .ok_or_else(|| Error::NotFound(format!("user {name:?} does not exist")))
}

fn group_id(conn: &Connection, name: &str) -> Result<i64, Error> {
    conn.prepare_cached("SELECT id FROM user_groups WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?
        .ok_or_else(|| Error::NotFound(format!("group {name:?} does not exist")))
}

fn set_groups(conn: &Connection, uid: i64, groups: &[String]) -> Result<(), Error> {
    let ids = groups
        .iter()
        .map(|g| group_id(conn, g))
        .collect::<Result<Vec<_>, _>>()?;
    conn.prepare_cached("DELETE FROM group_members WHERE user_id = ?1")?
        .execute([uid])?;
    let mut stmt = conn.prepare_cached(
        "INSERT OR IGNORE INTO group_members (group_id, user_id) VALUES (?1, ?2)",
    )?;
    for g in ids {
        stmt.execute(params![g, uid])?;
    }
    Ok(())
}

/// Creates a user.
pub fn create_user(conn: &Connection, u: &NewUser) -> Result<UserView, Error> {
    validate_name("name", &u.name)?;
    for g in &u.groups {
        validate_name("groups", g)?;
        group_id(conn, g)?;
    }
    let n = conn
        .prepare_cached(
            "INSERT INTO users (name, role, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(name) DO NOTHING",
        )?
        .execute(params![u.name, u.role.as_str(), now_millis()])?;
    if n == 0 {
        return Err(Error::Conflict(format!("user {:?} already exists", u.name)));
    }
    let uid = conn.last_insert_rowid();
    set_groups(conn, uid, &u.groups)?;
    get_user(conn, &u.name)
}

/// Changes a user's role or groups.
pub fn update_user(conn: &Connection, name: &str, p: &UserPatch) -> Result<UserView, Error> {
    let uid = user_id(conn, name)?;
    if name == super::ROOT_USER && p.role == Some(Role::Member) {
        return Err(Error::Conflict(
            "the bootstrap admin cannot be made a member".into(),
        ));
    }
    if let Some(role) = p.role {
        conn.prepare_cached("UPDATE users SET role = ?2 WHERE id = ?1")?
            .execute(params![uid, role.as_str()])?;
    }
    if let Some(groups) = &p.groups {
        set_groups(conn, uid, groups)?;
    }
    get_user(conn, name)
}

/// Deletes a user with its keys, tokens and grants. The bootstrap admin stays.
pub fn delete_user(conn: &Connection, name: &str) -> Result<(), Error> {
    if name == super::ROOT_USER {
        return Err(Error::Conflict(
            "the bootstrap admin cannot be deleted".into(),
        ));
    }
    let uid = user_id(conn, name)?;
    conn.prepare_cached("DELETE FROM users WHERE id = ?1")?
        .execute([uid])?;
    Ok(())
}

const USER_SELECT: &str = "SELECT u.name, u.role, u.created_at,
    (SELECT COUNT(*) FROM access_keys k WHERE k.user_id = u.id),
    COALESCE((SELECT json_group_array(g.name) FROM group_members m
              JOIN user_groups g ON g.id = m.group_id WHERE m.user_id = u.id), '[]')
    FROM users u";

fn row_to_user(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserView> {
    let groups: String = r.get(4)?;
    let mut groups: Vec<String> = serde_json::from_str(&groups).unwrap_or_default();
    groups.sort();
    Ok(UserView {
        name: r.get(0)?,
        role: Role::parse(&r.get::<_, String>(1)?).unwrap_or(Role::Member),
        created_at: rfc3339(r.get(2)?),
        keys: r.get::<_, i64>(3)?.max(0) as u64,
        groups,
    })
}

/// One user.
pub fn get_user(conn: &Connection, name: &str) -> Result<UserView, Error> {
    conn.prepare_cached(&format!("{USER_SELECT} WHERE u.name = ?1"))?
        .query_row([name], row_to_user)
        .optional()?
        .ok_or_else(|| Error::NotFound(format!("user {name:?} does not exist")))
}

/// Every user, by name.
pub fn list_users(conn: &Connection) -> Result<Vec<UserView>, Error> {
    let mut stmt = conn.prepare_cached(&format!("{USER_SELECT} ORDER BY u.name"))?;
    let rows = stmt.query_map([], row_to_user)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A request to create a group.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    pub name: String,
    /// Users to add (they must exist).
    #[serde(default)]
    pub members: Vec<String>,
}

/// A group as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GroupView {
    pub name: String,
    pub members: Vec<String>,
    pub created_at: String,
}

/// Creates a group.
pub fn create_group(conn: &Connection, g: &NewGroup) -> Result<GroupView, Error> {
    validate_name("name", &g.name)?;
    let uids = g
        .members
        .iter()
        .map(|m| user_id(conn, m))
        .collect::<Result<Vec<_>, _>>()?;
    let n = conn
        .prepare_cached(
            "INSERT INTO user_groups (name, created_at) VALUES (?1, ?2) ON CONFLICT(name) DO NOTHING",
        )?
        .execute(params![g.name, now_millis()])?;
    if n == 0 {
        return Err(Error::Conflict(format!(
            "group {:?} already exists",
            g.name
        )));
    }
    let gid = conn.last_insert_rowid();
    for u in uids {
        conn.prepare_cached(
            "INSERT OR IGNORE INTO group_members (group_id, user_id) VALUES (?1, ?2)",
        )?
        .execute(params![gid, u])?;
    }
    list_groups(conn)?
        .into_iter()
        .find(|x| x.name == g.name)
        .ok_or_else(|| Error::NotFound(format!("group {:?} does not exist", g.name)))
}

/// Deletes a group (its grants go with it; its members stay).
pub fn delete_group(conn: &Connection, name: &str) -> Result<(), Error> {
    let gid = group_id(conn, name)?;
    conn.prepare_cached("DELETE FROM user_groups WHERE id = ?1")?
        .execute([gid])?;
    Ok(())
}

/// Every group with its members, by name.
pub fn list_groups(conn: &Connection) -> Result<Vec<GroupView>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT g.name, g.created_at,
            COALESCE((SELECT json_group_array(u.name) FROM group_members m
                      JOIN users u ON u.id = m.user_id WHERE m.group_id = g.id), '[]')
         FROM user_groups g ORDER BY g.name",
    )?;
    let rows = stmt.query_map([], |r| {
        let members: String = r.get(2)?;
        let mut members: Vec<String> = serde_json::from_str(&members).unwrap_or_default();
        members.sort();
        Ok(GroupView {
            name: r.get(0)?,
            created_at: rfc3339(r.get(1)?),
            members,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

// ---------------------------------------------------------------- access keys

/// A new access key: the only time the secret is shown.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NewKey {
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// An access key as listed (never with its secret).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    pub access_key_id: String,
    pub user: String,
    pub enabled: bool,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

/// Stores an access key for `user` (a given pair, or a new random one).
pub fn create_key(
    conn: &Connection,
    master: &MasterKey,
    user: &str,
    pair: Option<(String, String)>,
) -> Result<NewKey, Error> {
    let uid = user_id(conn, user)?;
    let (id, secret) = pair.unwrap_or_else(super::new_key_pair);
    let n = conn
        .prepare_cached(
            "INSERT INTO access_keys (access_key_id, user_id, sealed_secret, enabled, created_at)
             VALUES (?1, ?2, ?3, 1, ?4) ON CONFLICT(access_key_id) DO NOTHING",
        )?
        .execute(params![id, uid, master.seal(&id, &secret), now_millis()])?;
    if n == 0 {
        return Err(Error::Conflict(format!("access key {id:?} already exists")));
    }
    Ok(NewKey {
        access_key_id: id,
        secret_access_key: secret,
    })
}

/// Makes sure the root credential is an enabled key of the admin user `root`
/// (created if needed), with this secret.
pub fn ensure_root(
    conn: &Connection,
    master: &MasterKey,
    access_key_id: &str,
    secret: &str,
) -> Result<(), Error> {
    conn.prepare_cached(
        "INSERT INTO users (name, role, created_at) VALUES (?1, 'admin', ?2)
         ON CONFLICT(name) DO UPDATE SET role = 'admin'",
    )?
    .execute(params![super::ROOT_USER, now_millis()])?;
    let uid = user_id(conn, super::ROOT_USER)?;
    let current: Option<(i64, Vec<u8>, bool)> = conn
        .prepare_cached(
            "SELECT user_id, sealed_secret, enabled FROM access_keys WHERE access_key_id = ?1",
        )?
        .query_row([access_key_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let up_to_date = current.is_some_and(|(u, sealed, enabled)| {
        u == uid && enabled && master.open(access_key_id, &sealed).as_deref() == Some(secret)
    });
    if !up_to_date {
        conn.prepare_cached(
            "INSERT INTO access_keys (access_key_id, user_id, sealed_secret, enabled, created_at)
             VALUES (?1, ?2, ?3, 1, ?4)
             ON CONFLICT(access_key_id) DO UPDATE SET user_id = ?2, sealed_secret = ?3, enabled = 1",
        )?
        .execute(params![
            access_key_id,
            uid,
            master.seal(access_key_id, secret),
            now_millis()
        ])?;
        bump_version(conn)?;
    }
    Ok(())
}

/// Access keys, of one user or of everyone.
pub fn list_keys(conn: &Connection, user: Option<&str>) -> Result<Vec<KeyView>, Error> {
    if let Some(u) = user {
        user_id(conn, u)?;
    }
    let mut stmt = conn.prepare_cached(
        "SELECT k.access_key_id, u.name, k.enabled, k.created_at, k.last_used_at
         FROM access_keys k JOIN users u ON u.id = k.user_id
         WHERE ?1 IS NULL OR u.name = ?1 ORDER BY u.name, k.created_at, k.access_key_id",
    )?;
    let rows = stmt.query_map([user], |r| {
        Ok(KeyView {
            access_key_id: r.get(0)?,
            user: r.get(1)?,
            enabled: r.get(2)?,
            created_at: rfc3339(r.get(3)?),
            last_used_at: r.get::<_, Option<i64>>(4)?.map(rfc3339),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn key_of_user(conn: &Connection, user: &str, id: &str) -> Result<(), Error> {
    let uid = user_id(conn, user)?;
    let found: Option<i64> = conn
        .prepare_cached("SELECT 1 FROM access_keys WHERE access_key_id = ?1 AND user_id = ?2")?
        .query_row(params![id, uid], |r| r.get(0))
        .optional()?;
    found
        .map(|_| ())
        .ok_or_else(|| Error::NotFound(format!("user {user:?} has no access key {id:?}")))
}

/// Enables or disables a key of `user`.
pub fn set_key_enabled(
    conn: &Connection,
    user: &str,
    id: &str,
    enabled: bool,
) -> Result<KeyView, Error> {
    key_of_user(conn, user, id)?;
    conn.prepare_cached("UPDATE access_keys SET enabled = ?2 WHERE access_key_id = ?1")?
        .execute(params![id, enabled])?;
    list_keys(conn, Some(user))?
        .into_iter()
        .find(|k| k.access_key_id == id)
        .ok_or_else(|| Error::NotFound(format!("no access key {id:?}")))
}

/// Deletes a key of `user`.
pub fn delete_key(conn: &Connection, user: &str, id: &str) -> Result<(), Error> {
    key_of_user(conn, user, id)?;
    conn.prepare_cached("DELETE FROM access_keys WHERE access_key_id = ?1")?
        .execute([id])?;
    Ok(())
}

// ---------------------------------------------------------------- tokens

/// A token as listed (never the token itself).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenView {
    pub id: i64,
    pub user: String,
    pub name: String,
    pub created_at: String,
    /// Absent for a long-lived API token.
    pub expires_at: Option<String>,
}

/// Stores a token's hash for `user`; returns its id.
pub fn create_token(
    conn: &Connection,
    user: &str,
    hash: &[u8; 32],
    name: &str,
    expires_at: Option<i64>,
) -> Result<i64, Error> {
    let uid = user_id(conn, user)?;
    // Expired tokens are useless; drop them while we are here.
    conn.prepare_cached("DELETE FROM api_tokens WHERE expires_at IS NOT NULL AND expires_at < ?1")?
        .execute([now_millis()])?;
    conn.prepare_cached(
        "INSERT INTO api_tokens (user_id, token_hash, name, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        uid,
        hash.as_slice(),
        name,
        now_millis(),
        expires_at
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Tokens, of one user or of everyone.
pub fn list_tokens(conn: &Connection, user: Option<&str>) -> Result<Vec<TokenView>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT t.id, u.name, t.name, t.created_at, t.expires_at
         FROM api_tokens t JOIN users u ON u.id = t.user_id
         WHERE (?1 IS NULL OR u.name = ?1) AND (t.expires_at IS NULL OR t.expires_at > ?2)
         ORDER BY t.id",
    )?;
    let rows = stmt.query_map(params![user, now_millis()], |r| {
        Ok(TokenView {
            id: r.get(0)?,
            user: r.get(1)?,
            name: r.get(2)?,
            created_at: rfc3339(r.get(3)?),
            expires_at: r.get::<_, Option<i64>>(4)?.map(rfc3339),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Deletes token `id` (of `user` unless `None`, which means any user: admins).
pub fn delete_token(conn: &Connection, id: i64, user: Option<&str>) -> Result<(), Error> {
    let n = conn
        .prepare_cached(
            "DELETE FROM api_tokens WHERE id = ?1
             AND (?2 IS NULL OR user_id = (SELECT id FROM users WHERE name = ?2))",
        )?
        .execute(params![id, user])?;
    if n == 0 {
        return Err(Error::NotFound(format!("token {id} does not exist")));
    }
    Ok(())
}

// ---------------------------------------------------------------- grants

/// A grant request, like Lake Formation's GrantPermissions.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    /// `user:NAME` or `group:NAME`.
    pub principal: String,
    /// `zone:raw|transformed|curated`, `bucket:NAME` or `dataset:ID`.
    pub resource: String,
    pub permission: Permission,
}

/// A stored grant.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GrantView {
    pub id: i64,
    pub principal: String,
    pub resource: String,
    pub permission: Permission,
    pub created_at: String,
    pub created_by: String,
}

/// A grant's resource, parsed and checked to exist.
#[derive(Debug, Clone)]
pub enum ResourceSpec {
    Zone(Zone),
    Bucket {
        id: i64,
        name: String,
        zone: Zone,
    },
    Dataset {
        id: i64,
        bucket_id: i64,
        zone: Zone,
        owner: String,
    },
}

/// Parses `zone:..`, `bucket:..` or `dataset:..` and looks the resource up.
pub fn parse_resource(conn: &Connection, s: &str) -> Result<ResourceSpec, Error> {
    let bad = || {
        Error::invalid(
            "resource",
            format!("{s:?} must be zone:NAME, bucket:NAME or dataset:ID"),
        )
    };
    let (kind, name) = s.split_once(':').ok_or_else(bad)?;
    match kind {
        "zone" => Zone::parse(name)
            .map(ResourceSpec::Zone)
            .ok_or_else(|| Error::invalid("resource", "zone must be raw, transformed or curated")),
        "bucket" => {
            let info = crate::meta::zones::bucket_info_in(conn, name).map_err(|e| match e {
                crate::meta::Error::NoSuchBucket => {
                    Error::NotFound(format!("bucket {name:?} does not exist"))
                }
                e => Error::Db(e),
            })?;
            Ok(ResourceSpec::Bucket {
                id: info.id,
                name: info.name,
                zone: info.zone,
            })
        }
        "dataset" => {
            let id: i64 = name.parse().map_err(|_| bad())?;
            conn.prepare_cached("SELECT bucket_id, zone, owner FROM datasets WHERE id = ?1")?
                .query_row([id], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get(2)?))
                })
                .optional()?
                .and_then(|(bucket_id, zone, owner)| {
                    Some(ResourceSpec::Dataset {
                        id,
                        bucket_id,
                        zone: Zone::parse(&zone)?,
                        owner,
                    })
                })
                .ok_or_else(|| Error::NotFound(format!("dataset {id} does not exist")))
        }
        _ => Err(bad()),
    }
}

enum Holder {
    User(i64),
    Group(i64),
}

fn parse_principal(conn: &Connection, s: &str) -> Result<Holder, Error> {
    match s.split_once(':') {
        Some(("user", n)) => Ok(Holder::User(user_id(conn, n)?)),
        Some(("group", n)) => Ok(Holder::Group(group_id(conn, n)?)),
        _ => Err(Error::invalid(
            "principal",
            format!("{s:?} must be user:NAME or group:NAME"),
        )),
    }
}

fn canonical_resource(r: &ResourceSpec) -> String {
    match r {
        ResourceSpec::Zone(z) => format!("zone:{z}"),
        ResourceSpec::Bucket { name, .. } => format!("bucket:{name}"),
        ResourceSpec::Dataset { id, .. } => format!("dataset:{id}"),
    }
}

/// Stores a grant (after the caller's right to make it was checked).
pub fn create_grant(
    conn: &Connection,
    g: &NewGrant,
    resource: &ResourceSpec,
    by: &str,
) -> Result<GrantView, Error> {
    let holder = parse_principal(conn, &g.principal)?;
    let (uid, gid) = match holder {
        Holder::User(u) => (Some(u), None),
        Holder::Group(x) => (None, Some(x)),
    };
    let (zone, bucket_id, dataset_id) = match resource {
        ResourceSpec::Zone(z) => (Some(z.as_str()), None, None),
        ResourceSpec::Bucket { id, .. } => (None, Some(*id), None),
        ResourceSpec::Dataset { id, .. } => (None, None, Some(*id)),
    };
    let text = canonical_resource(resource);
    let n = conn
        .prepare_cached(
            "INSERT INTO grants (user_id, group_id, resource, zone, bucket_id, dataset_id,
                                 permission, created_at, created_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            uid,
            gid,
            text,
            zone,
            bucket_id,
            dataset_id,
            g.permission.as_str(),
            now_millis(),
            by
        ])?;
    if n == 0 {
        return Err(Error::Conflict(format!(
            "{} already has {} on {text}",
            g.principal,
            g.permission.as_str()
        )));
    }
    get_grant(conn, conn.last_insert_rowid())
}

const GRANT_SELECT: &str = "SELECT g.id,
        CASE WHEN g.user_id IS NOT NULL THEN 'user:' || u.name ELSE 'group:' || gr.name END,
        g.resource, g.permission, g.created_at, g.created_by
     FROM grants g LEFT JOIN users u ON u.id = g.user_id
     LEFT JOIN user_groups gr ON gr.id = g.group_id";

fn row_to_grant(r: &rusqlite::Row<'_>) -> rusqlite::Result<GrantView> {
    Ok(GrantView {
        id: r.get(0)?,
        principal: r.get(1)?,
        resource: r.get(2)?,
        permission: Permission::parse(&r.get::<_, String>(3)?).unwrap_or(Permission::Read),
        created_at: rfc3339(r.get(4)?),
        created_by: r.get(5)?,
    })
}

/// One grant.
pub fn get_grant(conn: &Connection, id: i64) -> Result<GrantView, Error> {
    conn.prepare_cached(&format!("{GRANT_SELECT} WHERE g.id = ?1"))?
        .query_row([id], row_to_grant)
        .optional()?
        .ok_or_else(|| Error::NotFound(format!("grant {id} does not exist")))
}

/// Grants, optionally of one principal (`user:..`/`group:..`) and/or on one resource.
pub fn list_grants(
    conn: &Connection,
    principal: Option<&str>,
    resource: Option<&str>,
) -> Result<Vec<GrantView>, Error> {
    // Grants are few (an admin's hand-made list): filter after reading.
    let mut stmt = conn.prepare_cached(&format!("{GRANT_SELECT} ORDER BY g.id"))?;
    let rows = stmt.query_map([], row_to_grant)?;
    let all: Vec<GrantView> = rows.collect::<Result<_, _>>()?;
    Ok(all
        .into_iter()
        .filter(|g| principal.is_none_or(|p| g.principal == p))
        .filter(|g| resource.is_none_or(|r| g.resource == r))
        .collect())
}

/// Deletes grant `id`.
pub fn delete_grant(conn: &Connection, id: i64) -> Result<(), Error> {
    let n = conn
        .prepare_cached("DELETE FROM grants WHERE id = ?1")?
        .execute([id])?;
    if n == 0 {
        return Err(Error::NotFound(format!("grant {id} does not exist")));
    }
    Ok(())
}
