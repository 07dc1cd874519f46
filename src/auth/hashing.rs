//! The hashing pool: password hashing is deliberately slow, so it runs on
//! blocking threads, a bounded number at a time. A login that cannot get a
//! slot within `auth.hash_queue_timeout` is refused with `503` rather than
//! let a flood of logins starve every other request.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::config::AuthConfig;
use crate::metrics::Metrics;

/// Why a hashing job did not run.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every slot stayed busy for the whole wait.
    #[error("no hashing slot free within {0:?}")]
    Busy(Duration),
    /// The job panicked.
    #[error("hashing job failed: {0}")]
    Failed(String),
}

/// A bounded pool of hashing slots.
pub struct Hasher {
    slots: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

impl Hasher {
    /// `auth.max_concurrent_hashes` slots (default: one per CPU).
    pub fn new(auth: &AuthConfig, metrics: Arc<Metrics>) -> Hasher {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let slots = auth.max_concurrent_hashes.unwrap_or(cpus).max(1);
        Hasher {
            slots: Arc::new(Semaphore::new(slots)),
            metrics,
        }
    }

    /// Runs `job` on a blocking thread once a slot is free, waiting at most
    /// `wait` for one.
    pub async fn run<R, F>(&self, wait: Duration, job: F) -> Result<R, HashError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.metrics.hash_queue.inc();
        let outcome = self.run_counted(wait, job).await;
        self.metrics.hash_queue.dec();
        if matches!(outcome, Err(HashError::Busy(_))) {
            self.metrics.hash_rejected.inc();
        }
        outcome
    }

    async fn run_counted<R, F>(&self, wait: Duration, job: F) -> Result<R, HashError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let slot = tokio::time::timeout(wait, Arc::clone(&self.slots).acquire_owned()).await;
        let Ok(Ok(permit)) = slot else {
            return Err(HashError::Busy(wait));
        };
        let handle = tokio::task::spawn_blocking(move || {
            let _held = permit;
            job()
        });
        handle.await.map_err(|e| HashError::Failed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher(slots: usize) -> Hasher {
        let auth = AuthConfig {
            max_concurrent_hashes: Some(slots),
            ..AuthConfig::default()
        };
        Hasher::new(&auth, Arc::new(Metrics::new(0).unwrap()))
    }

    #[tokio::test]
    async fn runs_jobs_and_refuses_past_the_bound() {
        let hasher = Arc::new(hasher(1));
        assert_eq!(
            hasher.run(Duration::from_secs(1), || 2 + 2).await.unwrap(),
            4
        );

        // Hold the only slot, then a second job must give up after its wait.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let busy = Arc::clone(&hasher);
        let first = tokio::spawn(async move {
            busy.run(Duration::from_secs(1), move || held.recv().ok())
                .await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = hasher.run(Duration::from_millis(50), || ()).await;
        assert!(matches!(second, Err(HashError::Busy(_))));
        release.send(()).unwrap();
        assert!(first.await.unwrap().is_ok());
        assert_eq!(hasher.metrics.hash_rejected.get(), 1);
    }
}
