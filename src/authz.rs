//! Authorization: the one function that decides every action, [`authorize`].
//!
//! S3 handlers, REST handlers, search and (later) checkout describe what they touch as
//! a [`Resource`] and ask for a [`Permission`]; `authorize` answers from the
//! principal's in-memory grants. The rules:
//! - an admin may do everything;
//! - `manage` includes `write`, which includes `read`;
//! - a grant on a zone covers its buckets and their datasets; a grant on a bucket
//!   covers its objects and datasets; a grant on a dataset covers the objects under
//!   its prefix (and listings of prefixes inside it);
//! - a dataset's owner has `manage` on it;
//! - [`Resource::AdminOnly`] is for admins, [`Resource::Authenticated`] for anyone
//!   signed in.
//!
//! Resolving which zone and dataset an object belongs to takes one indexed read
//! ([`resolve_data`]); callers skip it for admins and when a bucket grant already
//! decides ([`fast_allow`]).

use rusqlite::OptionalExtension;

use crate::iam::{GrantResource, Permission, Principal};
use crate::meta::{self, Db, Zone};

/// Why an action was refused (becomes S3 `AccessDenied` or REST 403).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

/// The dataset that covers some data, with what authorization needs of it.
#[derive(Debug, Clone)]
pub struct DatasetRef {
    pub id: i64,
    pub owner: String,
}

/// What an action touches.
#[derive(Debug, Clone)]
pub enum Resource<'a> {
    /// Only admins (users, keys of others, grants at large, audit, bucket creation).
    AdminOnly,
    /// Anyone authenticated (list zones, make a token for oneself).
    Authenticated,
    /// A zone as a whole (granting on it).
    Zone(Zone),
    /// A bucket as a whole (bucket settings, multipart listings, bulk deletes).
    Bucket { id: i64, name: &'a str, zone: Zone },
    /// Objects or a listing prefix inside a bucket, covered by `dataset` if any.
    Data {
        bucket_id: i64,
        bucket: &'a str,
        zone: Zone,
        dataset: Option<DatasetRef>,
    },
}

fn grant_covers_bucket(g: &GrantResource, id: i64, zone: Zone) -> bool {
    match g {
        GrantResource::Zone(z) => *z == zone,
        GrantResource::Bucket { id: b, .. } => *b == id,
        GrantResource::Dataset(_) => false,
    }
}

/// Decides whether `who` may act with `perm` on `resource`.
pub fn authorize(who: &Principal, perm: Permission, resource: &Resource<'_>) -> Result<(), Denied> {
    if who.is_admin() {
        return Ok(());
    }
    let grants = &who.user.grants;
    let allowed = match resource {
        Resource::AdminOnly => false,
        Resource::Authenticated => true,
        Resource::Zone(zone) => grants
            .iter()
            .any(|g| g.permission >= perm && g.resource == GrantResource::Zone(*zone)),
        Resource::Bucket { id, zone, .. } => grants
            .iter()
            .any(|g| g.permission >= perm && grant_covers_bucket(&g.resource, *id, *zone)),
        Resource::Data {
            bucket_id,
            zone,
            dataset,
            ..
        } => {
            grants.iter().any(|g| {
                g.permission >= perm
                    && (grant_covers_bucket(&g.resource, *bucket_id, *zone)
                        || matches!((&g.resource, dataset),
                            (GrantResource::Dataset(d), Some(ds)) if *d == ds.id))
            }) || dataset.as_ref().is_some_and(|d| d.owner == who.user.name)
        }
    };
    if allowed {
        Ok(())
    } else {
        Err(Denied(denial(who, perm, resource)))
    }
}

fn denial(who: &Principal, perm: Permission, r: &Resource<'_>) -> String {
    let what = match r {
        Resource::AdminOnly => return "only an admin may do this".into(),
        Resource::Authenticated => return "authentication required".into(),
        Resource::Zone(z) => format!("zone {z}"),
        Resource::Bucket { name, .. } => format!("bucket {name}"),
        Resource::Data {
            bucket, dataset, ..
        } => match dataset {
            Some(d) => format!("dataset {} in bucket {bucket}", d.id),
            None => format!("bucket {bucket}"),
        },
    };
    format!(
        "user {} has no {} permission on {what}",
        who.name(),
        perm.as_str()
    )
}

/// Whether `who` is allowed without looking anything up: admins, and holders of a
/// bucket grant on `bucket` (by name) with at least `perm`.
pub fn fast_allow(who: &Principal, perm: Permission, bucket: &str) -> bool {
    who.is_admin()
        || who.user.grants.iter().any(|g| {
            g.permission >= perm
                && matches!(&g.resource, GrantResource::Bucket { name, .. } if name == bucket)
        })
}

/// Where some data lives: the bucket's id and zone, and the dataset covering `key`.
#[derive(Debug, Clone)]
pub struct DataLocation {
    pub bucket_id: i64,
    pub zone: Zone,
    pub dataset: Option<DatasetRef>,
}

/// Looks up the bucket and the dataset whose prefix covers `key` (an object key or a
/// listing prefix) in one read. `None` if the bucket does not exist.
pub async fn resolve_data(
    db: &Db,
    bucket: &str,
    key: &str,
) -> Result<Option<DataLocation>, meta::Error> {
    let (bucket, key) = (bucket.to_string(), key.to_string());
    db.read(move |conn| locate_in(conn, &bucket, &key)).await
}

/// [`resolve_data`] inside an open connection.
fn locate_in(
    conn: &rusqlite::Connection,
    bucket: &str,
    key: &str,
) -> Result<Option<DataLocation>, meta::Error> {
    // Prefixes of one bucket never overlap, so the covering dataset, if any, is
    // the one with the greatest prefix <= key.
    let row = conn
        .prepare_cached(
            "SELECT b.id, b.zone, d.id, d.prefix, d.owner FROM buckets b
             LEFT JOIN datasets d ON d.id = (
                 SELECT id FROM datasets WHERE bucket_id = b.id AND prefix <= ?2
                 ORDER BY prefix DESC LIMIT 1)
             WHERE b.name = ?1",
        )?
        .query_row(rusqlite::params![bucket, key], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })
        .optional()?;
    Ok(
        row.map(|(bucket_id, zone, did, prefix, owner)| DataLocation {
            bucket_id,
            zone: Zone::parse(&zone).unwrap_or(Zone::Raw),
            dataset: match (did, prefix, owner) {
                (Some(id), Some(p), Some(owner)) if key.starts_with(&p) => {
                    Some(DatasetRef { id, owner })
                }
                _ => None,
            },
        }),
    )
}

/// The refusal for a bucket the caller may not use (or that does not exist: members
/// are not told which).
fn no_bucket_access(who: &Principal, perm: Permission, bucket: &str) -> AuthzError {
    AuthzError::Denied(Denied(format!(
        "user {} has no {} permission on bucket {bucket}",
        who.name(),
        perm.as_str()
    )))
}

/// Authorizes `perm` on `key` (object or listing prefix) in `bucket`, resolving the
/// location only when needed. A member asking about a bucket that does not exist
/// is denied (existence is not revealed); an admin passes through to the handler's
/// own "no such bucket".
pub async fn authorize_data(
    db: &Db,
    who: &Principal,
    perm: Permission,
    bucket: &str,
    key: &str,
) -> Result<(), AuthzError> {
    if fast_allow(who, perm, bucket) {
        return Ok(());
    }
    let loc = resolve_data(db, bucket, key)
        .await
        .map_err(AuthzError::Db)?
        .ok_or_else(|| no_bucket_access(who, perm, bucket))?;
    authorize(
        who,
        perm,
        &Resource::Data {
            bucket_id: loc.bucket_id,
            bucket,
            zone: loc.zone,
            dataset: loc.dataset,
        },
    )
    .map_err(AuthzError::Denied)
}

/// Authorizes `perm` on each of `keys` in `bucket` (DeleteObjects), resolving every
/// key's dataset in one database job. The outer error refuses the whole request (a
/// member naming a bucket that does not exist learns nothing about it); the inner
/// results say, key by key, what may go ahead.
pub async fn authorize_keys(
    db: &Db,
    who: &Principal,
    perm: Permission,
    bucket: &str,
    keys: &[String],
) -> Result<Vec<Result<(), Denied>>, AuthzError> {
    if fast_allow(who, perm, bucket) {
        return Ok(keys.iter().map(|_| Ok(())).collect());
    }
    let (name, owned) = (bucket.to_string(), keys.to_vec());
    let located = db
        .read(move |conn| {
            let mut out = Vec::with_capacity(owned.len());
            for key in &owned {
                match locate_in(conn, &name, key)? {
                    Some(loc) => out.push(loc),
                    None => return Ok(None),
                }
            }
            Ok(Some(out))
        })
        .await
        .map_err(AuthzError::Db)?;
    let Some(located) = located else {
        return Err(no_bucket_access(who, perm, bucket));
    };
    Ok(located
        .into_iter()
        .map(|loc| {
            authorize(
                who,
                perm,
                &Resource::Data {
                    bucket_id: loc.bucket_id,
                    bucket,
                    zone: loc.zone,
                    dataset: loc.dataset,
                },
            )
        })
        .collect())
}

/// Authorizes `perm` on a bucket as a whole.
pub async fn authorize_bucket(
    db: &Db,
    who: &Principal,
    perm: Permission,
    bucket: &str,
) -> Result<(), AuthzError> {
    if fast_allow(who, perm, bucket) {
        return Ok(());
    }
    let loc = resolve_data(db, bucket, "")
        .await
        .map_err(AuthzError::Db)?
        .ok_or_else(|| no_bucket_access(who, perm, bucket))?;
    authorize(
        who,
        perm,
        &Resource::Bucket {
            id: loc.bucket_id,
            name: bucket,
            zone: loc.zone,
        },
    )
    .map_err(AuthzError::Denied)
}

/// Which of `buckets` `who` may see. `deep` decides what counts:
/// - `false`: buckets it may read as a whole (a zone or bucket grant), the rule of
///   the REST bucket and zone views, whose statistics cover every object;
/// - `true`: also buckets holding a dataset it may read or owns, the rule of S3
///   ListBuckets, which shows names only (the objects themselves stay guarded).
///
/// Admins see everything without a lookup.
pub async fn visible_buckets<B: Send + 'static>(
    db: &Db,
    who: &Principal,
    buckets: Vec<B>,
    id_zone: fn(&B) -> (i64, Zone),
    deep: bool,
) -> Result<Vec<B>, meta::Error> {
    if who.is_admin() {
        return Ok(buckets);
    }
    let with_datasets: std::collections::HashSet<i64> = if deep {
        let mut args = Vec::new();
        let cond = Visibility::of(who)
            .sql(&mut args)
            .unwrap_or_else(|| "1".into());
        db.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT DISTINCT d.bucket_id FROM datasets d WHERE {cond}"
            ))?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await?
    } else {
        Default::default()
    };
    Ok(buckets
        .into_iter()
        .filter(|b| {
            let (id, zone) = id_zone(b);
            with_datasets.contains(&id)
                || who
                    .user
                    .grants
                    .iter()
                    .any(|g| grant_covers_bucket(&g.resource, id, zone))
        })
        .collect())
}

/// A refusal, or a failure to find out.
#[derive(Debug, thiserror::Error)]
pub enum AuthzError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Db(meta::Error),
}

/// What a member may see in listings of datasets and search: used to build SQL
/// filters so that counts and facets are computed after filtering.
#[derive(Debug, Clone, Default)]
pub struct Visibility {
    /// `None`: everything (admins).
    pub restricted: Option<VisibleSet>,
}

/// The datasets a member may read: by zone, bucket, id, or ownership.
#[derive(Debug, Clone, Default)]
pub struct VisibleSet {
    pub zones: Vec<Zone>,
    pub bucket_ids: Vec<i64>,
    pub dataset_ids: Vec<i64>,
    pub owner: String,
}

impl Visibility {
    /// What `who` may read (datasets covered by a read grant, or owned).
    pub fn of(who: &Principal) -> Visibility {
        if who.is_admin() {
            return Visibility { restricted: None };
        }
        let mut s = VisibleSet {
            owner: who.name().to_string(),
            ..VisibleSet::default()
        };
        for g in &who.user.grants {
            match &g.resource {
                GrantResource::Zone(z) => s.zones.push(*z),
                GrantResource::Bucket { id, .. } => s.bucket_ids.push(*id),
                GrantResource::Dataset(id) => s.dataset_ids.push(*id),
            }
        }
        Visibility {
            restricted: Some(s),
        }
    }

    /// An SQL condition on the dataset alias `d` (with its arguments appended to
    /// `args`), `None` when everything is visible. The same rule as [`authorize`]
    /// with `read`: every grant includes read.
    pub fn sql(&self, args: &mut Vec<rusqlite::types::Value>) -> Option<String> {
        let s = self.restricted.as_ref()?;
        let mut parts = vec!["d.owner = ?".to_string()];
        args.push(s.owner.clone().into());
        let list = |n: usize| vec!["?"; n].join(", ");
        if !s.zones.is_empty() {
            parts.push(format!("d.zone IN ({})", list(s.zones.len())));
            args.extend(s.zones.iter().map(|z| z.as_str().to_string().into()));
        }
        if !s.bucket_ids.is_empty() {
            parts.push(format!("d.bucket_id IN ({})", list(s.bucket_ids.len())));
            args.extend(s.bucket_ids.iter().map(|i| (*i).into()));
        }
        if !s.dataset_ids.is_empty() {
            parts.push(format!("d.id IN ({})", list(s.dataset_ids.len())));
            args.extend(s.dataset_ids.iter().map(|i| (*i).into()));
        }
        Some(format!("({})", parts.join(" OR ")))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::iam::{Grant, Role, User};

    fn member(grants: Vec<Grant>) -> Principal {
        Principal {
            user: Arc::new(User {
                id: 2,
                name: "alice".into(),
                role: Role::Member,
                groups: vec![],
                grants,
            }),
            access_key_id: None,
            manifest: None,
        }
    }

    fn data(dataset: Option<DatasetRef>) -> Resource<'static> {
        Resource::Data {
            bucket_id: 1,
            bucket: "raw",
            zone: Zone::Raw,
            dataset,
        }
    }

    #[test]
    fn the_rules() {
        let ds = || {
            Some(DatasetRef {
                id: 7,
                owner: "bob".into(),
            })
        };
        let nobody = member(vec![]);
        assert!(authorize(&nobody, Permission::Read, &data(ds())).is_err());
        assert!(authorize(&nobody, Permission::Read, &Resource::Authenticated).is_ok());
        assert!(authorize(&nobody, Permission::Read, &Resource::AdminOnly).is_err());
        let reader = member(vec![Grant {
            resource: GrantResource::Dataset(7),
            permission: Permission::Read,
        }]);
        assert!(authorize(&reader, Permission::Read, &data(ds())).is_ok());
        assert!(authorize(&reader, Permission::Write, &data(ds())).is_err());
        assert!(authorize(&reader, Permission::Read, &data(None)).is_err());
        let zone_writer = member(vec![Grant {
            resource: GrantResource::Zone(Zone::Raw),
            permission: Permission::Write,
        }]);
        assert!(authorize(&zone_writer, Permission::Read, &data(None)).is_ok());
        assert!(authorize(&zone_writer, Permission::Write, &data(ds())).is_ok());
        assert!(authorize(&zone_writer, Permission::Manage, &data(ds())).is_err());
        let owner = Principal {
            user: Arc::new(User {
                id: 3,
                name: "bob".into(),
                role: Role::Member,
                groups: vec![],
                grants: vec![],
            }),
            access_key_id: None,
            manifest: None,
        };
        assert!(authorize(&owner, Permission::Manage, &data(ds())).is_ok());
        let bucket = Resource::Bucket {
            id: 1,
            name: "raw",
            zone: Zone::Raw,
        };
        assert!(authorize(&reader, Permission::Read, &bucket).is_err());
        assert!(authorize(&zone_writer, Permission::Write, &bucket).is_ok());
    }
}
