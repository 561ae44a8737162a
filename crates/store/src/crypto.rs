//! Secrets at rest. One 256-bit master key (from `CARTWRIGHT_SECRET_KEY` or a 0600 key file
//! created on first start) is never used directly: purpose-bound keys are derived from it with
//! HKDF-SHA256, and data is sealed with AES-256-GCM under a random nonce.

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use std::fmt;
use std::io::Write;
use std::path::Path;

/// Why a key or a sealed value could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The configured key is not 32 bytes in base64 or hex.
    #[error("secret key must be 32 bytes written as base64 (44 characters) or hex (64 characters)")]
    BadKey,
    /// The key file could not be read or created.
    #[error("key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: String,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// Others can read the key file.
    #[error("key file {0} can be read by other users: run `chmod 600 {0}`")]
    KeyFileOpen(String),
    /// Sealed data was altered, or sealed under another key.
    #[error("a sealed secret could not be opened: wrong key or altered data")]
    Open,
}

/// The master key. Its `Debug` shows nothing.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

impl SecretKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        Self(key)
    }

    /// Reads a key written as base64 or hex.
    pub fn from_text(text: &str) -> Result<Self, CryptoError> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| CryptoError::BadKey)?
        } else {
            B64.decode(text).map_err(|_| CryptoError::BadKey)?
        };
        Ok(Self(bytes.try_into().map_err(|_| CryptoError::BadKey)?))
    }

    /// The key as base64, for writing the key file.
    pub fn to_text(&self) -> String {
        B64.encode(self.0)
    }

    /// Reads the key file at `path`, creating it (mode 0600) with a new key when absent.
    /// Refuses a file that other users can read. Returns whether the file was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), CryptoError> {
        Self::load_or_create_once(path, true)
    }

    fn load_or_create_once(path: &Path, create: bool) -> Result<(Self, bool), CryptoError> {
        let io = |source| CryptoError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
                    if mode & 0o077 != 0 {
                        return Err(CryptoError::KeyFileOpen(path.display().to_string()));
                    }
                }
                Ok((Self::from_text(&text)?, false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                // Written whole to a temporary file first, then linked into place: a crash
                // leaves either no key file or a complete one, never an empty one, and of two
                // processes starting at once only one key wins.
                let key = Self::generate();
                let dir = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                let mut temp = tempfile::Builder::new()
                    .prefix(".secret-key-")
                    .tempfile_in(dir)
                    .map_err(io)?;
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    temp.as_file()
                        .set_permissions(std::fs::Permissions::from_mode(0o600))
                        .map_err(io)?;
                }
                temp.write_all(format!("{}\n", key.to_text()).as_bytes())
                    .map_err(io)?;
                temp.as_file().sync_all().map_err(io)?;
                match std::fs::hard_link(temp.path(), path) {
                    Ok(()) => {
                        if let Ok(d) = std::fs::File::open(dir) {
                            let _ = d.sync_all();
                        }
                        Ok((key, true))
                    }
                    // Another process made it first (or the path is a dangling link: then
                    // reading it again fails rather than trying again forever).
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Self::load_or_create_once(path, false)
                    }
                    Err(e) => Err(io(e)),
                }
            }
            Err(e) => Err(io(e)),
        }
    }

    /// A 32-byte key for one purpose (`"cookies"`, `"jwt"`), so that no two uses share a key.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        hkdf::Hkdf::<sha2::Sha256>::new(Some(b"cartwright/v1"), &self.0)
            .expand(purpose.as_bytes(), &mut out)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        out
    }

    /// A sealer for one purpose.
    pub fn sealer(&self, purpose: &str) -> Sealer {
        Sealer::new(&self.derive(purpose))
    }
}

/// Seals and opens values with AES-256-GCM. A sealed value is `1 ‖ nonce(12) ‖ ciphertext+tag`;
/// the leading version byte leaves room for another scheme later.
#[derive(Clone)]
pub struct Sealer(Aes256Gcm);

const VERSION: u8 = 1;

impl Sealer {
    /// A sealer under a raw 256-bit key.
    pub fn new(key: &[u8; 32]) -> Self {
        Self(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key)))
    }

    /// Encrypts `plain`; `context` (e.g. `b"account-cookies"`) must be given again to open it.
    pub fn seal(&self, plain: &[u8], context: &[u8]) -> Vec<u8> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self
            .0
            .encrypt(
                &nonce,
                Payload {
                    msg: plain,
                    aad: context,
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(1 + nonce.len() + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Decrypts what [`Sealer::seal`] produced with the same `context`.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < 1 + 12 + 16 || sealed[0] != VERSION {
            return Err(CryptoError::Open);
        }
        let nonce = Nonce::from_slice(&sealed[1..13]);
        self.0
            .decrypt(
                nonce,
                Payload {
                    msg: &sealed[13..],
                    aad: context,
                },
            )
            .map_err(|_| CryptoError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_detects_tampering() {
        let key = SecretKey::generate();
        let sealer = key.sealer("cookies");
        let sealed = sealer.seal(b"f.session=s%3Asecret", b"ctx");
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            sealer.open(&sealed, b"ctx").unwrap(),
            b"f.session=s%3Asecret"
        );
        assert!(sealer.open(&sealed, b"other").is_err());
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(sealer.open(&bad, b"ctx").is_err());
        assert!(key.sealer("jwt").open(&sealed, b"ctx").is_err());
        assert!(
            SecretKey::generate()
                .sealer("cookies")
                .open(&sealed, b"ctx")
                .is_err()
        );
    }

    #[test]
    fn keys_read_base64_and_hex() {
        let key = SecretKey::generate();
        assert_eq!(SecretKey::from_text(&key.to_text()).unwrap().0, key.0);
        let hex: String = key.0.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(SecretKey::from_text(&hex).unwrap().0, key.0);
        assert!(SecretKey::from_text("short").is_err());
        assert_eq!(format!("{key:?}"), "SecretKey(***)");
    }

    #[test]
    fn key_file_is_private_and_stable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let (a, created) = SecretKey::load_or_create(&path).unwrap();
        assert!(created);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (b, created) = SecretKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(a.0, b.0);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            SecretKey::load_or_create(&path),
            Err(CryptoError::KeyFileOpen(_))
        ));
    }

    #[test]
    fn the_key_file_appears_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        // Many starts at once: one key wins, every start reads that one.
        let path = dir.path().join("secret.key");
        let keys: Vec<[u8; 32]> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| SecretKey::load_or_create(&path).unwrap().0.0))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.iter().all(|k| *k == keys[0]));
        // No temporary file is left beside it.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["secret.key"]);
        // A dangling link is an error, not an endless retry.
        let link = dir.path().join("dangling.key");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &link).unwrap();
        assert!(SecretKey::load_or_create(&link).is_err());
    }
}
