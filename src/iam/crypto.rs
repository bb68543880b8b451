//! Sealing access key secrets at rest with the server's master key.
//!
//! XChaCha20-Poly1305 (RustCrypto `chacha20poly1305`): an AEAD, so a tampered row
//! fails to open instead of yielding a wrong secret; its 192-bit nonce makes random
//! nonces safe without a counter; it is pure Rust and constant-time without AES-NI.
//! The access key id is the associated data, so a sealed secret cannot be moved to
//! another key's row.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// Name of the key file created in the data directory when no key is configured.
pub const KEY_FILE: &str = "master.key";

const NONCE_LEN: usize = 24;

/// Why the master key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("master key must be 64 hex digits (32 bytes)")]
    Malformed,
    #[error("master key file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The master key. Its bytes never leave this type (no `Debug` of the key).
#[derive(Clone)]
pub struct MasterKey {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

fn parse_hex(text: &str) -> Result<[u8; 32], KeyError> {
    let bytes = hex::decode(text.trim()).map_err(|_| KeyError::Malformed)?;
    bytes.try_into().map_err(|_| KeyError::Malformed)
}

impl MasterKey {
    /// The configured key (hex) if any, else the key file in `data_dir`, created with
    /// a random key and mode 0600 if it does not exist.
    pub fn load(configured: Option<&str>, data_dir: &Path) -> Result<MasterKey, KeyError> {
        if let Some(hex) = configured {
            return Ok(MasterKey::from_bytes(&parse_hex(hex)?));
        }
        let path = data_dir.join(KEY_FILE);
        let io = |source| KeyError::Io {
            path: path.clone(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => return Ok(MasterKey::from_bytes(&parse_hex(&text)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let key: [u8; 32] = rand::random();
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        f.write_all(format!("{}\n", hex::encode(key)).as_bytes())
            .map_err(io)?;
        f.sync_all().map_err(io)?;
        Ok(MasterKey::from_bytes(&key))
    }

    /// A key from raw bytes.
    pub fn from_bytes(key: &[u8; 32]) -> MasterKey {
        MasterKey {
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// Seals `secret` for `access_key_id`: nonce || ciphertext+tag.
    pub fn seal(&self, access_key_id: &str, secret: &str) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: secret.as_bytes(),
                    aad: access_key_id.as_bytes(),
                },
            )
            // Encryption only fails for inputs beyond 256 GiB.
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens a sealed secret; `None` if it was sealed with another key or tampered with.
    pub fn open(&self, access_key_id: &str, sealed: &[u8]) -> Option<String> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: access_key_id.as_bytes(),
                },
            )
            .ok()?;
        String::from_utf8(plain).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip_and_binding() {
        let k = MasterKey::from_bytes(&[7; 32]);
        let s = k.seal("AKID", "secret-value");
        assert!(!s.windows(6).any(|w| w == b"secret"));
        assert_eq!(k.open("AKID", &s).as_deref(), Some("secret-value"));
        assert_eq!(k.open("OTHER", &s), None, "bound to the key id");
        let other = MasterKey::from_bytes(&[8; 32]);
        assert_eq!(other.open("AKID", &s), None, "needs the same master key");
        let mut t = s.clone();
        t[30] ^= 1;
        assert_eq!(k.open("AKID", &t), None, "tampering is detected");
    }

    #[test]
    fn key_file_is_created_0600_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let a = MasterKey::load(None, dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = MasterKey::load(None, dir.path()).unwrap();
        let s = a.seal("K", "v");
        assert_eq!(b.open("K", &s).as_deref(), Some("v"));
        assert!(MasterKey::load(Some("abc"), dir.path()).is_err());
    }
}
