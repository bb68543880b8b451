//! `tarn admin ...`: user, key and grant operations on the data directory directly,
//! for bootstrapping and scripts. Output is JSON. A running server notices the
//! change within a few seconds (it polls `iam_version`).

use clap::Subcommand;

use crate::config::Settings;
use crate::iam::store::{self, NewGrant, NewUser};
use crate::iam::{self, MasterKey, Permission, Role};
use crate::meta::Db;

/// Errors of an admin command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open the data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Db(#[from] crate::meta::Error),
    #[error(transparent)]
    Key(#[from] iam::crypto::KeyError),
    #[error(transparent)]
    Iam(#[from] iam::Error),
}

/// What to administer.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Users.
    #[command(subcommand)]
    User(UserCmd),
    /// Access keys.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Grants.
    #[command(subcommand)]
    Grant(GrantCmd),
}

/// `tarn admin user ...`
#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Creates a user.
    Create {
        name: String,
        #[arg(long, value_enum, default_value = "member")]
        role: Role,
        /// A group to join (repeatable; it must exist).
        #[arg(long = "group")]
        groups: Vec<String>,
    },
    /// Lists users.
    List,
    /// Deletes a user with their keys, tokens and grants.
    Delete { name: String },
}

/// `tarn admin key ...`
#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Creates an access key for a user and prints its secret (once).
    Create { user: String },
    /// Lists access keys (of one user, or all).
    List { user: Option<String> },
    /// Disables a key.
    Disable { user: String, key: String },
    /// Enables a key.
    Enable { user: String, key: String },
    /// Deletes a key.
    Delete { user: String, key: String },
}

/// `tarn admin grant ...`
#[derive(Debug, Subcommand)]
pub enum GrantCmd {
    /// Grants PERMISSION on RESOURCE (zone:NAME, bucket:NAME, dataset:ID) to PRINCIPAL
    /// (user:NAME, group:NAME).
    Create {
        principal: String,
        resource: String,
        #[arg(value_enum)]
        permission: Permission,
    },
    /// Lists grants.
    List,
    /// Revokes a grant by id.
    Delete { id: i64 },
}

async fn change<R: Send + 'static>(
    db: &Db,
    master: &MasterKey,
    f: impl FnOnce(&rusqlite::Connection, &MasterKey) -> Result<R, iam::Error> + Send + 'static,
) -> Result<R, Error> {
    let iam = iam::Iam::open(db.clone(), master.clone()).await?;
    Ok(iam.change(f).await?)
}

fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// Runs `cmd` against the data directory of `settings`; returns what to print.
pub async fn run(settings: &Settings, cmd: AdminCommand) -> Result<String, Error> {
    let dir = &settings.storage.data_dir;
    std::fs::create_dir_all(dir).map_err(|source| Error::DataDir {
        path: dir.clone(),
        source,
    })?;
    let db = Db::open(&dir.join("tarn.db"))?;
    let master = MasterKey::load(settings.auth.master_key.as_deref(), dir)?;
    let iam = iam::Iam::open(db.clone(), master.clone()).await?;
    let out = match cmd {
        AdminCommand::User(UserCmd::Create { name, role, groups }) => {
            let u = NewUser { name, role, groups };
            json(&change(&db, &master, move |c, _| store::create_user(c, &u)).await?)
        }
        AdminCommand::User(UserCmd::List) => json(&iam.read(store::list_users).await?),
        AdminCommand::User(UserCmd::Delete { name }) => {
            let user = name.clone();
            change(&db, &master, move |c, _| store::delete_user(c, &user)).await?;
            // Their stored manifests go too; the server removes the files of
            // unreferenced blobs when it next starts.
            let bucket = &settings.checkout.manifest_bucket;
            crate::checkout::delete_stored_manifests(&db, bucket, &name).await?;
            // Bump `iam_version` once more, after the last write: a running server
            // empties its object cache when it notices (see `meta::db`).
            change(&db, &master, |_, _| Ok(())).await?;
            "{}".into()
        }
        AdminCommand::Key(KeyCmd::Create { user }) => json(
            &change(&db, &master, move |c, m| {
                store::create_key(c, m, &user, None)
            })
            .await?,
        ),
        AdminCommand::Key(KeyCmd::List { user }) => json(
            &iam.read(move |c| store::list_keys(c, user.as_deref()))
                .await?,
        ),
        AdminCommand::Key(KeyCmd::Disable { user, key }) => json(
            &change(&db, &master, move |c, _| {
                store::set_key_enabled(c, &user, &key, false)
            })
            .await?,
        ),
        AdminCommand::Key(KeyCmd::Enable { user, key }) => json(
            &change(&db, &master, move |c, _| {
                store::set_key_enabled(c, &user, &key, true)
            })
            .await?,
        ),
        AdminCommand::Key(KeyCmd::Delete { user, key }) => {
            change(&db, &master, move |c, _| store::delete_key(c, &user, &key)).await?;
            "{}".into()
        }
        AdminCommand::Grant(GrantCmd::Create {
            principal,
            resource,
            permission,
        }) => {
            let g = NewGrant {
                principal,
                resource,
                permission,
            };
            json(
                &change(&db, &master, move |c, _| {
                    let r = store::parse_resource(c, &g.resource)?;
                    store::create_grant(c, &g, &r, "tarn-admin")
                })
                .await?,
            )
        }
        AdminCommand::Grant(GrantCmd::List) => {
            json(&iam.read(|c| store::list_grants(c, None, None)).await?)
        }
        AdminCommand::Grant(GrantCmd::Delete { id }) => {
            change(&db, &master, move |c, _| store::delete_grant(c, id)).await?;
            "{}".into()
        }
    };
    db.close().await;
    Ok(out)
}
