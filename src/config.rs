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
    pub zones: ZoneSettings,
}

/// `[zones]`: how buckets are bound to zones.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZoneSettings {
    /// Zone of a bucket created through S3 CreateBucket: `raw`, `transformed` or
    /// `curated` (default raw). Env `TARN_DEFAULT_ZONE` overrides.
    pub default_zone: String,
    /// Create the buckets `raw`, `transformed` and `curated` on first start (default
    /// true). Env `TARN_CREATE_ZONE_BUCKETS` (`true`/`false`) overrides.
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
}

/// `[storage]`: where data lives and how it is written.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// Data directory: the SQLite database and object bytes (default ./data).
    pub data_dir: PathBuf,
    /// fsync object files and directories before acknowledging writes (default true).
    pub fsync: bool,
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
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 9000)),
        }
    }
}

impl Default for StorageSettings {
    fn default() -> Self {
        StorageSettings {
            data_dir: PathBuf::from("./data"),
            fsync: true,
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
        let mut s = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| Error::Read {
                    path: p.to_path_buf(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| Error::Parse {
                    path: p.to_path_buf(),
                    message: e.to_string(),
                })?
            }
            None => Settings::default(),
        };
        if let Ok(v) = std::env::var("TARN_ROOT_ACCESS_KEY") {
            s.auth.root_access_key = Some(v);
        }
        if let Ok(v) = std::env::var("TARN_ROOT_SECRET_KEY") {
            s.auth.root_secret_key = Some(v);
        }
        if let Ok(v) = std::env::var("TARN_DEFAULT_ZONE") {
            s.zones.default_zone = v;
        }
        if let Ok(v) = std::env::var("TARN_CREATE_ZONE_BUCKETS") {
            s.zones.create_zone_buckets = v.trim().eq_ignore_ascii_case("true");
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
}
