//! The root credential: from settings/environment, or generated on first start and kept
//! in `<data_dir>/root-credentials.json` (mode 0600). At every start it is stored as an
//! access key of the bootstrap admin `root` (see [`crate::iam::store::ensure_root`]).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Access keys the server accepts.
#[derive(Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub access_key_id: String,
    secret_access_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

fn random_string(len: usize, alphabet: &[u8]) -> String {
    (0..len)
        .map(|_| alphabet[rand::random_range(0..alphabet.len())] as char)
        .collect()
}

impl Credentials {
    /// Credentials from explicit values.
    pub fn new(access_key_id: String, secret_access_key: String) -> Credentials {
        Credentials {
            access_key_id,
            secret_access_key,
        }
    }

    /// Loads the stored root credential, generating and storing one if there is none.
    /// Returns the credential and whether it was just generated.
    pub fn load_or_generate(data_dir: &Path) -> std::io::Result<(Credentials, bool)> {
        let path = data_dir.join("root-credentials.json");
        if let Ok(text) = std::fs::read_to_string(&path) {
            let c: Credentials = serde_json::from_str(&text)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            return Ok((c, false));
        }
        let c = Credentials {
            access_key_id: format!(
                "TARN{}",
                random_string(16, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
            ),
            secret_access_key: random_string(
                40,
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            ),
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        f.write_all(serde_json::to_string_pretty(&c)?.as_bytes())?;
        f.sync_all()?;
        Ok((c, true))
    }

    /// The secret (for printing once at first start).
    pub fn secret(&self) -> &str {
        &self.secret_access_key
    }
}
