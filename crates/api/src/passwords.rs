//! Room passwords: argon2id (default parameters: 19 MiB, 2 passes, 1 lane), hashed and
//! verified on the blocking pool, at most `concurrency` at once so a flood of wrong passwords
//! cannot take every core, and with at most [`QUEUED_PER_SLOT`] waiting per slot: past that a
//! request is answered 503 at once (with `Retry-After`) instead of queueing without bound.

use crate::error::ApiError;
use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use protocol::ErrorCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Requests that may wait for each hashing slot.
pub const QUEUED_PER_SLOT: usize = 8;

#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// Requests waiting for a slot now, at most `max_queued`.
    queued: Arc<AtomicUsize>,
    max_queued: usize,
}

fn busy() -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        "Too many password checks at once; try again in 1 s",
    )
    .retry_after(1)
}

/// One place in the queue, given back however the wait ends (a client that hangs up too).
struct Queued(Arc<AtomicUsize>);

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Passwords {
    pub fn new(concurrency: usize) -> Passwords {
        let slots = concurrency.max(1);
        Passwords {
            permits: Arc::new(Semaphore::new(slots)),
            queued: Arc::default(),
            max_queued: slots * QUEUED_PER_SLOT,
        }
    }

    /// A hashing slot: at once if one is free, after a wait if the queue has room, else busy.
    async fn slot(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok(permit);
        }
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.max_queued {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(busy());
        }
        let _place = Queued(self.queued.clone());
        self.permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| busy())
    }

    /// An argon2id PHC string for `password`.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        let _permit = self.slot().await?;
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
        let _permit = self.slot().await?;
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
    async fn a_full_queue_is_refused_at_once_with_retry_after() {
        let p = Passwords::new(1);
        let phc = p.hash("s3cret".into()).await.expect("hashes");
        // One runs, eight wait, the tenth is refused; the nine are all checked.
        let checks: Vec<_> = (0..10)
            .map(|_| p.verify("s3cret".into(), phc.clone()))
            .collect();
        let results = futures_util::future::join_all(checks).await;
        let refused: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert_eq!(refused.len(), 1, "{results:?}");
        assert_eq!(refused[0].code, ErrorCode::Unavailable);
        assert_eq!(refused[0].retry_after, Some(1));
        assert_eq!(results.iter().filter(|r| matches!(r, Ok(true))).count(), 9);
        assert_eq!(
            p.queued.load(Ordering::Acquire),
            0,
            "every place is given back"
        );
        assert!(p.verify("s3cret".into(), phc).await.expect("a slot again"));
    }

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
