//! Exponential backoff with full jitter for throttled calls.

use crate::StoreError;
use std::future::Future;
use std::time::Duration;

/// How many times a throttled call is tried before giving up.
pub const MAX_ATTEMPTS: u32 = 8;

/// The delay before retry `attempt` (1-based): full jitter over 25 ms * 2^attempt, capped.
pub fn backoff(attempt: u32) -> Duration {
    let cap_ms = (25u64 << attempt.min(8)).min(5_000);
    let mut b = [0u8; 8];
    let jitter = match getrandom_fill(&mut b) {
        Ok(()) => u64::from_le_bytes(b) % (cap_ms + 1),
        Err(()) => cap_ms / 2,
    };
    Duration::from_millis(jitter.max(5))
}

fn getrandom_fill(b: &mut [u8]) -> Result<(), ()> {
    use rand_core::RngCore;
    rand_core::OsRng.try_fill_bytes(b).map_err(|_| ())
}

/// Runs `op`, retrying `Throttled` and `Unavailable` answers with backoff.
pub async fn with_backoff<T, F, Fut>(mut op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match op().await {
            Err(StoreError::Throttled(m) | StoreError::Unavailable(m))
                if attempt < MAX_ATTEMPTS =>
            {
                tracing::debug!(attempt, error = %m, "retrying after backoff");
                tokio::time::sleep(backoff(attempt)).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn backoff_grows_and_is_capped() {
        for a in 1..20 {
            assert!(backoff(a) <= Duration::from_millis(5_000));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_throttles_then_succeeds() {
        let n = AtomicU32::new(0);
        let r = with_backoff(|| async {
            if n.fetch_add(1, Ordering::SeqCst) < 3 {
                Err(StoreError::Throttled("x".into()))
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(r, Ok(7));
        assert_eq!(n.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_and_does_not_retry_conflicts() {
        let n = AtomicU32::new(0);
        let r: Result<(), _> = with_backoff(|| async {
            n.fetch_add(1, Ordering::SeqCst);
            Err(StoreError::Throttled("x".into()))
        })
        .await;
        assert!(matches!(r, Err(StoreError::Throttled(_))));
        assert_eq!(n.load(Ordering::SeqCst), MAX_ATTEMPTS);
        n.store(0, Ordering::SeqCst);
        let r: Result<(), _> = with_backoff(|| async {
            n.fetch_add(1, Ordering::SeqCst);
            Err(StoreError::conflict(
                crate::Contended::LedgerHead {
                    chain: "c".into(),
                    expected: None,
                },
                "moved",
            ))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(n.load(Ordering::SeqCst), 1);
    }
}
