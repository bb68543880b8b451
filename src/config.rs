//! Settings: embedded defaults, then an optional TOML file, then environment, then flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Errors loading settings; each names the file or key at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid setting {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

/// All settings. Every field has a default, so an empty file is a valid config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub storage: StorageSettings,
    pub s3: S3Settings,
    pub auth: AuthSettings,
    pub tls: TlsSettings,
    pub log: LogSettings,
    pub zones: ZoneSettings,
    pub audit: AuditSettings,
    pub checkout: CheckoutSettings,
}

/// `[checkout]`: manifests of presigned links made from a cart.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckoutSettings {
    /// Lifetime of a manifest's links when checkout names none, in seconds (default
    /// 14400, 4 hours).
    pub default_expiry_secs: u64,
    /// Longest lifetime a checkout may ask for, in seconds (default and at most 604800,
    /// 7 days: the SigV4 limit for presigned URLs).
    pub max_expiry_secs: u64,
    /// Bucket holding every manifest as an object `<user>/<id>.json`, readable by its
    /// owner through S3 (default `tarn-manifests`; created on first checkout).
    pub manifest_bucket: String,
}

impl Default for CheckoutSettings {
    fn default() -> Self {
        CheckoutSettings {
            default_expiry_secs: 4 * 3600,
            max_expiry_secs: 7 * 24 * 3600,
            manifest_bucket: "tarn-manifests".into(),
        }
    }
}

/// `[audit]`: the audit trail.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSettings {
    /// Write one audit record per S3 and REST request (default true).
    pub enabled: bool,
    /// Records that may wait for the batch writer before requests start handing them
    /// to waiting tasks (default 65536).
    pub queue_capacity: usize,
    /// Records older than this many seconds are deleted; 0 keeps them forever
    /// (default 0).
    pub retention_secs: u64,
    /// How often expired records are deleted, in seconds (default 1 hour).
    pub purge_interval_secs: u64,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            enabled: true,
            queue_capacity: 65536,
            retention_secs: 0,
            purge_interval_secs: 3600,
        }
    }
}

/// `[tls]`: serve HTTPS when both are set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain file.
    pub cert: Option<PathBuf>,
    /// PEM private key file.
    pub key: Option<PathBuf>,
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// `[log]`: logging.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `pretty` or `json` (default pretty). Verbosity comes from `TARN_LOG` (default info).
    pub format: LogFormat,
}

/// `[zones]`: how buckets are bound to zones.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZoneSettings {
    /// Zone of a bucket created through S3 CreateBucket: `raw`, `transformed` or
    /// `curated` (default raw).
    pub default_zone: String,
    /// Create the buckets `raw`, `transformed` and `curated` on first start (default
    /// true).
    pub create_zone_buckets: bool,
}

impl Default for ZoneSettings {
    fn default() -> Self {
        ZoneSettings {
            default_zone: "raw".into(),
            create_zone_buckets: true,
        }
    }
}

/// `[server]`: where to listen.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Address and port to listen on (default 127.0.0.1:9000).
    pub listen: SocketAddr,
    /// The URL clients use to reach this server (for links it generates), e.g.
    /// `https://lake.example.com`; empty means derived from `listen`.
    pub public_url: String,
    /// Seconds allowed to send a request's headers, and to send each piece of a body
    /// (an idle upload is cut off with RequestTimeout). Default 60.
    pub request_timeout_secs: u64,
    /// Largest request header section in bytes (default 8192, as S3).
    pub max_header_bytes: usize,
    /// Requests served at once; more get 503 SlowDown (default 512).
    pub max_concurrent_requests: usize,
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT (default 30).
    pub shutdown_grace_secs: u64,
    /// If set, `/metrics` also accepts `Authorization: Bearer <token>` (for Prometheus);
    /// otherwise it needs a SigV4-signed request.
    pub metrics_token: Option<String>,
    /// CPU scheduling policy of the request and I/O threads: `batch` (default) or
    /// `normal`; see [`crate::sched`].
    pub scheduling: crate::sched::Scheduling,
}

/// `[storage]`: where data lives and how it is written.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// Data directory: the SQLite database and object bytes (default ./data).
    pub data_dir: PathBuf,
    /// fsync object files and directories before acknowledging writes (default true).
    pub fsync: bool,
    /// Writes are refused (507 InsufficientStorage) when the data directory's filesystem
    /// has less free space than this, in bytes, so deletes can still commit (default 64 MiB).
    pub min_free_bytes: u64,
}

/// `[s3]`: protocol behaviour.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Settings {
    /// Region reported to clients and expected in signatures (default us-east-1).
    pub region: String,
    /// Base domain for virtual-host-style addressing (`bucket.<domain>`); empty turns it off.
    pub domain: String,
    /// Largest object accepted by a single PUT or part upload, in bytes (default 5 GiB).
    pub max_object_size: u64,
    /// Smallest size of every multipart part but the last, in bytes (default 5 MiB).
    pub min_part_size: u64,
    /// Multipart uploads older than this many seconds are aborted (default 7 days).
    pub abandoned_upload_age_secs: u64,
    /// How often to look for abandoned uploads, in seconds (default 1 hour).
    pub upload_gc_interval_secs: u64,
}

/// `[auth]`: the root credential.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Root access key id. Env `TARN_ROOT_ACCESS_KEY` overrides. If unset here and in the
    /// environment, one is generated on first start and kept in the data directory.
    pub root_access_key: Option<String>,
    /// Root secret key. Env `TARN_ROOT_SECRET_KEY` overrides.
    pub root_secret_key: Option<String>,
    /// Master key sealing access key secrets at rest: 64 hex digits. Env
    /// `TARN_MASTER_KEY` overrides. If unset, `<data_dir>/master.key` is created on
    /// first start (mode 0600) and used.
    pub master_key: Option<String>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 9000)),
            public_url: String::new(),
            request_timeout_secs: 60,
            max_header_bytes: 8192,
            max_concurrent_requests: 512,
            shutdown_grace_secs: 30,
            metrics_token: None,
            scheduling: crate::sched::Scheduling::default(),
        }
    }
}

impl Default for StorageSettings {
    fn default() -> Self {
        StorageSettings {
            data_dir: PathBuf::from("./data"),
            fsync: true,
            min_free_bytes: 64 * 1024 * 1024,
        }
    }
}

impl Default for S3Settings {
    fn default() -> Self {
        S3Settings {
            region: "us-east-1".into(),
            domain: String::new(),
            max_object_size: 5 * 1024 * 1024 * 1024,
            min_part_size: 5 * 1024 * 1024,
            abandoned_upload_age_secs: 7 * 24 * 3600,
            upload_gc_interval_secs: 3600,
        }
    }
}

impl Settings {
    /// Defaults, overlaid with the TOML file at `path` if given, then with the
    /// environment (`TARN_ROOT_ACCESS_KEY`, `TARN_ROOT_SECRET_KEY`).
    pub fn load(path: Option<&Path>) -> Result<Settings, Error> {
        let (mut table, origin) = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| Error::Read {
                    path: p.to_path_buf(),
                    source,
                })?;
                let table: toml::Table = toml::from_str(&text).map_err(|e| Error::Parse {
                    path: p.to_path_buf(),
                    message: e.to_string(),
                })?;
                (table, p.to_path_buf())
            }
            None => (toml::Table::new(), PathBuf::from("(no file)")),
        };
        apply_env_overrides(&mut table, std::env::vars())?;
        let origin = PathBuf::from(format!("{} + TARN__* environment", origin.display()));
        // Re-parse the merged document so errors name the key at fault.
        let merged = toml::to_string(&table).map_err(|e| Error::Parse {
            path: origin.clone(),
            message: e.to_string(),
        })?;
        let mut s: Settings = toml::from_str(&merged).map_err(|e| Error::Parse {
            path: origin,
            message: e.to_string(),
        })?;
        if let Ok(v) = std::env::var("TARN_ROOT_ACCESS_KEY") {
            s.auth.root_access_key = Some(v);
        }
        if let Ok(v) = std::env::var("TARN_ROOT_SECRET_KEY") {
            s.auth.root_secret_key = Some(v);
        }
        if let Ok(v) = std::env::var("TARN_MASTER_KEY") {
            s.auth.master_key = Some(v);
        }
        Ok(s)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), Error> {
        if self.s3.region.is_empty() {
            return Err(Error::Invalid {
                key: "s3.region",
                message: "must not be empty".into(),
            });
        }
        if crate::meta::Zone::parse(&self.zones.default_zone).is_none() {
            return Err(Error::Invalid {
                key: "zones.default_zone",
                message: "must be raw, transformed or curated".into(),
            });
        }
        if self.s3.min_part_size == 0 {
            return Err(Error::Invalid {
                key: "s3.min_part_size",
                message: "must be positive".into(),
            });
        }
        if self.server.max_concurrent_requests == 0 {
            return Err(Error::Invalid {
                key: "server.max_concurrent_requests",
                message: "must be positive".into(),
            });
        }
        if self.server.request_timeout_secs == 0 {
            return Err(Error::Invalid {
                key: "server.request_timeout_secs",
                message: "must be positive".into(),
            });
        }
        let c = &self.checkout;
        if c.max_expiry_secs == 0 || c.max_expiry_secs > 7 * 24 * 3600 {
            return Err(Error::Invalid {
                key: "checkout.max_expiry_secs",
                message: "must be between 1 and 604800 (7 days, the SigV4 limit)".into(),
            });
        }
        if c.default_expiry_secs == 0 || c.default_expiry_secs > c.max_expiry_secs {
            return Err(Error::Invalid {
                key: "checkout.default_expiry_secs",
                message: "must be between 1 and checkout.max_expiry_secs".into(),
            });
        }
        if !crate::s3::endpoint::valid_bucket_name(&c.manifest_bucket) || c.manifest_bucket == "api"
        {
            return Err(Error::Invalid {
                key: "checkout.manifest_bucket",
                message: "must be a valid S3 bucket name".into(),
            });
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err(Error::Invalid {
                key: "tls.key",
                message: "tls.cert and tls.key must be set together".into(),
            });
        }
        match (&self.auth.root_access_key, &self.auth.root_secret_key) {
            (Some(_), None) | (None, Some(_)) => Err(Error::Invalid {
                key: "auth.root_secret_key",
                message: "root access key and secret key must be set together".into(),
            }),
            (Some(a), Some(s)) if a.len() < 3 || s.len() < 8 => Err(Error::Invalid {
                key: "auth.root_secret_key",
                message: "access key must be at least 3 and secret at least 8 characters".into(),
            }),
            _ => Ok(()),
        }
    }
}

/// Applies `TARN__SECTION__KEY=value` variables to a settings document. Values are read
/// as TOML (numbers, booleans, quoted strings) and otherwise taken as plain strings.
fn apply_env_overrides(
    table: &mut toml::Table,
    vars: impl Iterator<Item = (String, String)>,
) -> Result<(), Error> {
    for (name, raw) in vars {
        let Some(path) = name.strip_prefix("TARN__") else {
            continue;
        };
        let parts: Vec<String> = path.split("__").map(|p| p.to_ascii_lowercase()).collect();
        let [section, key] = parts.as_slice() else {
            return Err(Error::Invalid {
                key: "environment",
                message: format!("{name}: expected TARN__SECTION__KEY"),
            });
        };
        let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.clone()));
        let entry = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match entry {
            toml::Value::Table(t) => {
                t.insert(key.clone(), value);
            }
            _ => {
                return Err(Error::Invalid {
                    key: "environment",
                    message: format!("{name}: [{section}] is not a section"),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_rejected() {
        let err = toml::from_str::<Settings>("[server]\nlisten = \"127.0.0.1:1\"\nbogus = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus"), "{err}");
        let ok: Settings = toml::from_str("[s3]\nregion = \"eu-west-1\"\n").unwrap();
        assert_eq!(ok.s3.region, "eu-west-1");
        assert_eq!(ok.s3.min_part_size, 5 * 1024 * 1024);
    }

    #[test]
    fn env_overrides_types_and_errors() {
        let mut t: toml::Table = toml::from_str("[s3]\nregion = \"a\"\n").unwrap();
        let vars = [
            ("TARN__S3__REGION", "eu-west-1"),
            ("TARN__S3__MAX_OBJECT_SIZE", "1024"),
            ("TARN__STORAGE__FSYNC", "false"),
            ("UNRELATED", "x"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()));
        apply_env_overrides(&mut t, vars.into_iter()).unwrap();
        let s: Settings = toml::from_str(&toml::to_string(&t).unwrap()).unwrap();
        assert_eq!(s.s3.region, "eu-west-1");
        assert_eq!(s.s3.max_object_size, 1024);
        assert!(!s.storage.fsync);
        let bad = [("TARN__S3__BOGUS".to_string(), "1".to_string())];
        let mut t = toml::Table::new();
        apply_env_overrides(&mut t, bad.into_iter()).unwrap();
        let err = toml::from_str::<Settings>(&toml::to_string(&t).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus"), "{err}");
        let typed = [("TARN__S3__MAX_OBJECT_SIZE".to_string(), "lots".to_string())];
        let mut t = toml::Table::new();
        apply_env_overrides(&mut t, typed.into_iter()).unwrap();
        let err = toml::from_str::<Settings>(&toml::to_string(&t).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_object_size"), "{err}");
    }
}
