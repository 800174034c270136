//! Password hashing with argon2id (the argon2 crate's defaults: m=19 MiB, t=2, p=1),
//! run on the blocking pool so that hashing never stalls the async workers.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use codesync_common::ServiceError;
use rand::RngCore;

pub async fn hash_password(password: String) -> Result<String, ServiceError> {
    tokio::task::spawn_blocking(move || hash_password_blocking(&password)).await.map_err(ServiceError::internal)?
}

fn hash_password_blocking(password: &str) -> Result<String, ServiceError> {
    let mut salt_bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut salt_bytes);
    let salt = SaltString::encode_b64(&salt_bytes).map_err(ServiceError::internal)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| ServiceError::internal(format_args!("cannot hash a password: {error}")))
}

/// Checks `password` against `stored_hash`. With no stored hash (unknown
/// account), checks against a dummy hash anyway, so that the answer takes as
/// long as for a real account and does not reveal which emails exist.
pub async fn verify_password(password: String, stored_hash: Option<String>) -> Result<bool, ServiceError> {
    tokio::task::spawn_blocking(move || {
        let account_exists = stored_hash.is_some();
        let hash_text = match stored_hash {
            Some(hash) => hash,
            None => dummy_hash()?.to_string(),
        };
        let parsed = PasswordHash::new(&hash_text)
            .map_err(|error| ServiceError::internal(format_args!("a stored password hash is malformed: {error}")))?;
        let matches = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
        Ok(matches && account_exists)
    })
    .await
    .map_err(ServiceError::internal)?
}

fn dummy_hash() -> Result<&'static str, ServiceError> {
    static DUMMY_HASH: OnceLock<String> = OnceLock::new();
    if let Some(hash) = DUMMY_HASH.get() {
        return Ok(hash);
    }
    let hash = hash_password_blocking("codesync-dummy-password")?;
    Ok(DUMMY_HASH.get_or_init(|| hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_salted_and_verify() {
        let first = hash_password("correct horse".into()).await.unwrap();
        let second = hash_password("correct horse".into()).await.unwrap();
        assert!(first.starts_with("$argon2id$"));
        assert_ne!(first, second, "every hash has its own salt");
        assert!(verify_password("correct horse".into(), Some(first.clone())).await.unwrap());
        assert!(!verify_password("wrong horse".into(), Some(first)).await.unwrap());
        assert!(!verify_password("codesync-dummy-password".into(), None).await.unwrap());
    }
}
