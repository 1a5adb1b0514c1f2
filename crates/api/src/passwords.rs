//! Room passwords: argon2id (default parameters: 19 MiB, 2 passes, 1 lane), hashed and
//! verified on the blocking pool, at most `concurrency` at once so a flood of wrong passwords
//! cannot take every core.

use crate::error::ApiError;
use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use protocol::ErrorCode;
use std::sync::Arc;
use tokio::sync::Semaphore;

#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
}

fn busy() -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        "Password check unavailable, try again",
    )
}

impl Passwords {
    pub fn new(concurrency: usize) -> Passwords {
        Passwords {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    /// An argon2id PHC string for `password`.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        let _permit = self.permits.acquire().await.map_err(|_| busy())?;
        tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
        })
        .await
        .map_err(|_| busy())?
        .map_err(|_| ApiError::invalid("password cannot be hashed"))
    }

    /// Whether `password` matches the PHC string.
    pub async fn verify(&self, password: String, phc: String) -> Result<bool, ApiError> {
        let _permit = self.permits.acquire().await.map_err(|_| busy())?;
        tokio::task::spawn_blocking(move || {
            PasswordHash::new(&phc).is_ok_and(|hash| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &hash)
                    .is_ok()
            })
        })
        .await
        .map_err(|_| busy())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let p = Passwords::new(2);
        let phc = p.hash("s3cret".into()).await.expect("hashes");
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(!phc.contains("s3cret"));
        assert!(
            p.verify("s3cret".into(), phc.clone())
                .await
                .expect("verifies")
        );
        assert!(!p.verify("wrong".into(), phc).await.expect("verifies"));
        assert!(
            !p.verify("x".into(), "not a hash".into())
                .await
                .expect("verifies")
        );
    }
}
