//! Identity: users, groups, access keys, bearer tokens and grants.
//!
//! The tables live in the metadata database (`migrations/0004_iam.sql`); every change
//! goes through [`store`] inside one write transaction that also bumps
//! `iam_version`. The request path never reads them: [`Iam`] keeps an in-memory
//! [`Snapshot`] (users with their effective grants, decrypted secrets, token hashes),
//! replaced after every change made through this process and reloaded by a
//! background task when `iam_version` moved (a change made by `tarn admin`). Looking
//! up a secret or a principal is therefore a hash-map probe under a read lock.
//!
//! "Last used" times of access keys are kept in memory and written every few seconds,
//! not once per request.

pub mod crypto;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::meta::{self, Db, Zone};
use crate::s3::auth::SecretLookup;
pub use crypto::MasterKey;

/// The name of the bootstrap admin (holder of the root credential).
pub const ROOT_USER: &str = "root";

/// Errors of the identity layer, by meaning; the REST layer maps each to a status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field is malformed (400, naming the field).
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },
    /// A named user, group, key, token, grant or resource does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The thing already exists, or the change would break an invariant (409).
    #[error("{0}")]
    Conflict(String),
    /// The caller may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// The metadata database failed.
    #[error(transparent)]
    Db(#[from] meta::Error),
}

impl Error {
    /// A 400 for `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        Error::Db(e.into())
    }
}

/// What a user may do without grants.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, everywhere.
    Admin,
    /// What grants and dataset ownership allow.
    Member,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }
    fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
}

/// A permission on a resource. Ordered: `manage` includes `write`, which includes
/// `read`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// Get, head and list objects; see datasets, their schema and search hits.
    Read,
    /// Put, copy, delete objects; multipart uploads; register datasets in a bucket.
    Write,
    /// Change or delete the resource and grant it to others.
    Manage,
}

impl Permission {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Write => "write",
            Permission::Manage => "manage",
        }
    }
    /// Parses a stored or requested name.
    pub fn parse(s: &str) -> Option<Permission> {
        match s {
            "read" => Some(Permission::Read),
            "write" => Some(Permission::Write),
            "manage" => Some(Permission::Manage),
            _ => None,
        }
    }
}

/// What a grant is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantResource {
    Zone(Zone),
    /// A bucket, by row id (the name is kept for display and fast checks).
    Bucket {
        id: i64,
        name: String,
    },
    Dataset(i64),
}

/// One grant held by a user (directly or through a group).
#[derive(Debug, Clone)]
pub struct Grant {
    pub resource: GrantResource,
    pub permission: Permission,
}

/// A user as the authorization layer sees it.
#[derive(Debug)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub role: Role,
    /// Names of the groups the user belongs to.
    pub groups: Vec<String>,
    /// The user's grants and those of its groups.
    pub grants: Vec<Grant>,
}

impl User {
    /// Whether the user is an admin.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// Who made a request: the user and how it authenticated. Also a response
/// extension, read by the audit trail and the request log.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: Arc<User>,
    /// The access key that signed the request (`None` for a bearer token), shared with
    /// the principals cache.
    pub access_key_id: Option<Arc<str>>,
    /// Set when the key is the credential of a checkout manifest: `user` is then the
    /// synthetic member `manifest:{id}` without grants, and the S3 layer allows only
    /// downloads of the manifest's entries (see `crate::checkout::access`).
    pub manifest: Option<Arc<ManifestScope>>,
}

/// What a manifest credential stands for.
#[derive(Debug)]
pub struct ManifestScope {
    /// The manifest's id.
    pub id: i64,
    /// The user who checked it out (links stop working if they lose read).
    pub owner: Arc<User>,
}

/// The synthetic principal name of manifest `id` (user names cannot contain `:`).
pub fn manifest_principal_name(id: i64) -> String {
    format!("manifest:{id}")
}

impl Principal {
    /// Whether the principal is an admin.
    pub fn is_admin(&self) -> bool {
        self.user.is_admin()
    }
    /// The user name.
    pub fn name(&self) -> &str {
        &self.user.name
    }
}

struct KeyEntry {
    user_id: i64,
    secret: Arc<str>,
    enabled: bool,
}

struct ManifestKeyEntry {
    manifest_id: i64,
    owner_id: i64,
    secret: Arc<str>,
    /// `manifest:{id}`, a member without grants.
    user: Arc<User>,
}

struct TokenEntry {
    user_id: i64,
    expires_at: Option<i64>,
}

/// Everything the request path needs, loaded from the database in one read.
#[derive(Default)]
pub struct Snapshot {
    version: i64,
    users: HashMap<i64, Arc<User>>,
    keys: HashMap<Arc<str>, KeyEntry>,
    /// Credentials of checkout manifests, by access key id.
    manifest_keys: HashMap<Arc<str>, ManifestKeyEntry>,
    tokens: HashMap<[u8; 32], TokenEntry>,
}

/// The principal store with its in-memory cache. Cheap to share (`Arc<Iam>`).
pub struct Iam {
    db: Db,
    key: MasterKey,
    snap: RwLock<Arc<Snapshot>>,
    /// access key id -> last use (ms), not yet written.
    last_used: Mutex<HashMap<String, i64>>,
}

/// SHA-256 of a bearer token, as stored.
pub fn token_hash(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

impl Iam {
    /// Loads the store from `db`.
    pub async fn open(db: Db, key: MasterKey) -> Result<Iam, Error> {
        let iam = Iam {
            db,
            key,
            snap: RwLock::new(Arc::new(Snapshot::default())),
            last_used: Mutex::new(HashMap::new()),
        };
        iam.reload().await?;
        Ok(iam)
    }

    /// The database this store lives in.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The master key that seals secrets.
    pub fn master_key(&self) -> &MasterKey {
        &self.key
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        match self.snap.read() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Re-reads the tables into a new snapshot (kept only if not older than the
    /// current one, so racing reloads cannot go back in time).
    pub async fn reload(&self) -> Result<(), Error> {
        let key = self.key.clone();
        let snap = self
            .db
            .read(move |conn| store::load_snapshot(conn, &key).map_err(into_meta))
            .await?;
        let mut cur = match self.snap.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if snap.version >= cur.version {
            *cur = Arc::new(snap);
        }
        Ok(())
    }

    /// Runs a change in the writer's transaction (which bumps `iam_version`), then
    /// reloads the cache so the next request sees it.
    pub async fn change<R: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Connection, &MasterKey) -> Result<R, Error> + Send + 'static,
    ) -> Result<R, Error> {
        let key = self.key.clone();
        let res = self
            .db
            .write_with(move |conn| {
                let r = f(conn, &key)?;
                store::bump_version(conn)?;
                Ok::<R, Error>(r)
            })
            .await?;
        self.reload().await?;
        Ok(res)
    }

    /// Runs a read on the tables.
    pub async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> Result<R, Error> + Send + 'static,
    ) -> Result<R, Error> {
        self.db.read_with(f).await
    }

    /// The principal behind an access key that just verified a signature; records the
    /// use. `None` if the key vanished or was disabled in between.
    pub fn principal_for_key(&self, access_key_id: &str) -> Option<Principal> {
        let snap = self.snapshot();
        if let Some((id, m)) = snap.manifest_keys.get_key_value(access_key_id) {
            let owner = snap.users.get(&m.owner_id)?.clone();
            return Some(Principal {
                user: m.user.clone(),
                access_key_id: Some(id.clone()),
                manifest: Some(Arc::new(ManifestScope {
                    id: m.manifest_id,
                    owner,
                })),
            });
        }
        let (id, k) = snap
            .keys
            .get_key_value(access_key_id)
            .filter(|(_, k)| k.enabled)?;
        let user = snap.users.get(&k.user_id)?.clone();
        if let Ok(mut m) = self.last_used.lock() {
            let now = meta::now_millis();
            match m.get_mut(access_key_id) {
                Some(t) => *t = now,
                None => {
                    m.insert(access_key_id.to_string(), now);
                }
            }
        }
        Some(Principal {
            user,
            access_key_id: Some(id.clone()),
            manifest: None,
        })
    }

    /// The principal holding a bearer token, if the token exists and has not expired.
    pub fn principal_for_token(&self, token: &str) -> Option<Principal> {
        let snap = self.snapshot();
        let t = snap.tokens.get(&token_hash(token))?;
        if t.expires_at.is_some_and(|e| e <= meta::now_millis()) {
            return None;
        }
        let user = snap.users.get(&t.user_id)?.clone();
        Some(Principal {
            user,
            access_key_id: None,
            manifest: None,
        })
    }

    /// Writes pending "last used" times and reloads if another process changed the
    /// tables. Run every few seconds by [`Iam::maintain`].
    pub async fn tick(&self) -> Result<(), Error> {
        let pending: Vec<(String, i64)> = match self.last_used.lock() {
            Ok(mut m) => m.drain().collect(),
            Err(_) => Vec::new(),
        };
        if !pending.is_empty() {
            // Only IAM rows change: the object cache stays valid.
            self.db
                .write_uncached(move |conn| {
                    store::record_key_use(conn, &pending).map_err(into_meta)
                })
                .await?;
        }
        let version = self.db.read(store::version).await?;
        if version > self.snapshot().version {
            // Another process (`tarn admin`) wrote: it may also have deleted objects
            // (a deleted user's manifests), which the object cache must not serve.
            self.db.invalidate_cache();
            self.reload().await?;
        }
        Ok(())
    }

    /// The background task: [`Iam::tick`] every `every` until the process ends.
    pub async fn maintain(self: Arc<Self>, every: Duration) {
        let mut t = tokio::time::interval(every);
        loop {
            t.tick().await;
            if let Err(e) = self.tick().await {
                tracing::warn!(error = %e, "refreshing principals failed");
            }
        }
    }
}

fn into_meta(e: Error) -> meta::Error {
    match e {
        Error::Db(e) => e,
        other => meta::Error::Corrupt(other.to_string()),
    }
}

impl SecretLookup for Iam {
    fn secret_for(&self, access_key_id: &str) -> Option<Arc<str>> {
        let snap = self.snapshot();
        if let Some(m) = snap.manifest_keys.get(access_key_id) {
            return Some(m.secret.clone());
        }
        snap.keys
            .get(access_key_id)
            .filter(|k| k.enabled)
            .map(|k| k.secret.clone())
    }
}

/// A random string over `alphabet`.
pub fn random_string(len: usize, alphabet: &[u8]) -> String {
    (0..len)
        .map(|_| alphabet[rand::random_range(0..alphabet.len())] as char)
        .collect()
}

/// A new access key id and secret.
pub fn new_key_pair() -> (String, String) {
    (
        format!(
            "TK{}",
            random_string(18, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        ),
        random_string(
            40,
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        ),
    )
}

/// A new bearer token (shown once; only its hash is stored).
pub fn new_token() -> String {
    format!(
        "tarn_{}",
        random_string(
            43,
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        )
    )
}
