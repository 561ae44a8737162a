//! Password hashing with argon2id, off the async threads and at most one hash per core at a
//! time: each takes tens of milliseconds and 19 MiB by design, so a flood of sign-ins must
//! queue rather than exhaust memory.

use crate::error::ApiError;
use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use cartwright_core::values::Password;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::sync::Semaphore;

fn hashing() -> &'static Semaphore {
    static PERMITS: OnceLock<Semaphore> = OnceLock::new();
    PERMITS.get_or_init(|| {
        Semaphore::new(std::thread::available_parallelism().map_or(2, std::num::NonZero::get))
    })
}

/// Runs `work` on a blocking thread once a hashing permit is free, or answers 503 when the
/// queue has not moved for ten seconds.
async fn with_permit<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let busy = || ApiError::unavailable("the server is busy checking passwords; retry shortly");
    let _permit = tokio::time::timeout(Duration::from_secs(10), hashing().acquire())
        .await
        .map_err(|_| busy())?
        .map_err(|_| busy())?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal(&e))
}

/// Hashes a password into a PHC string (`$argon2id$v=19$…`) with a random salt.
pub async fn hash_password(password: &Password) -> Result<String, ApiError> {
    let password = password.expose().to_owned();
    with_permit(move || hash_blocking(&password)).await?
}

/// Hashes on the calling thread (for the command line).
pub fn hash_blocking(password: &str) -> Result<String, ApiError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| ApiError::internal(&e))
}

/// Checks a password against a stored hash. With no hash (unknown user) a dummy hash is
/// checked anyway, so a wrong username takes as long as a wrong password.
pub async fn verify_password(password: String, hash: Option<String>) -> Result<bool, ApiError> {
    with_permit(move || {
        let known = hash.is_some();
        let hash = hash.as_deref().unwrap_or_else(|| dummy_hash());
        let ok = PasswordHash::new(hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
        ok && known
    })
    .await
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_blocking("cartwright-dummy-password").unwrap_or_default())
}
