//! Who may start a run now: a per-user rate, then a bounded number of runs at once with a
//! bounded queue behind them. Past the queue, or after waiting too long, the caller is told to
//! come back (429 or 503 with a clear sentence) instead of piling more work on the machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use codesync_common::ServiceError;
use codesync_common::rate_limit::{RateLimiter, retry_after_secs};
use codesync_common::redis::Redis;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, Clone, Copy)]
pub struct AdmissionConfig {
    /// Runs at once (each may use a CPU).
    pub concurrent_runs: usize,
    /// Runs waiting for a slot; one more is refused with 429.
    pub queued_runs: usize,
    /// The longest a queued run waits before it is refused with 503.
    pub queue_wait: Duration,
    /// Runs each user may start per minute.
    pub runs_per_user_per_minute: u32,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Self {
            concurrent_runs: cpus.max(2),
            queued_runs: 4 * cpus.max(2),
            queue_wait: Duration::from_secs(20),
            runs_per_user_per_minute: 30,
        }
    }
}

pub struct Admission {
    config: AdmissionConfig,
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    per_user: RateLimiter,
}

/// Held for the length of a run; the slot frees when it drops.
pub struct Admitted {
    _permit: OwnedSemaphorePermit,
}

impl Admission {
    /// With `redis`, the per-user rate is shared by every execution replica.
    pub fn new(config: AdmissionConfig, redis: Option<Redis>) -> Self {
        let per_minute = config.runs_per_user_per_minute.max(1);
        Self {
            config,
            slots: Arc::new(Semaphore::new(config.concurrent_runs.max(1))),
            waiting: AtomicUsize::new(0),
            per_user: RateLimiter::shared("runs", per_minute, Duration::from_secs(60), redis),
        }
    }

    pub async fn admit(&self, user_id: &str) -> Result<Admitted, ServiceError> {
        if let Err(wait) = self.per_user.try_acquire(user_id).await {
            return Err(ServiceError::RateLimited {
                message: format!("at most {} runs a minute; wait a moment", self.config.runs_per_user_per_minute),
                retry_after_secs: retry_after_secs(wait),
            });
        }
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(Admitted { _permit: permit });
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.config.queued_runs {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(ServiceError::RateLimited {
                message:
                    "the server is running as much code as it can and its queue is full; try again in a few seconds"
                        .into(),
                retry_after_secs: 5,
            });
        }
        let waited = tokio::time::timeout(self.config.queue_wait, self.slots.clone().acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        match waited {
            Ok(Ok(permit)) => Ok(Admitted { _permit: permit }),
            _ => Err(ServiceError::Unavailable {
                message: format!(
                    "the server was too busy to start the run within {} s; try again",
                    self.config.queue_wait.as_secs()
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(concurrent_runs: usize, queued_runs: usize, queue_wait_ms: u64, per_minute: u32) -> AdmissionConfig {
        AdmissionConfig {
            concurrent_runs,
            queued_runs,
            queue_wait: Duration::from_millis(queue_wait_ms),
            runs_per_user_per_minute: per_minute,
        }
    }

    #[tokio::test]
    async fn runs_beyond_the_slots_queue_then_are_refused() {
        let admission = Arc::new(Admission::new(config(1, 1, 200, 100), None));
        let running = admission.admit("a").await.unwrap();
        // One waits in the queue; the next finds the queue full (429).
        let queued = tokio::spawn({
            let admission = admission.clone();
            async move { admission.admit("b").await.is_ok() }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let refused = admission.admit("c").await.err().unwrap();
        assert!(matches!(refused, ServiceError::RateLimited { .. }), "{refused}");
        // The queued run gets the slot when the running one ends.
        drop(running);
        assert!(queued.await.unwrap());
    }

    #[tokio::test]
    async fn a_run_waiting_too_long_is_told_the_server_is_busy() {
        let admission = Admission::new(config(1, 4, 50, 100), None);
        let _running = admission.admit("a").await.unwrap();
        let refused = admission.admit("b").await.err().unwrap();
        assert!(matches!(refused, ServiceError::Unavailable { .. }), "{refused}");
    }

    #[tokio::test]
    async fn each_user_has_a_rate() {
        let admission = Admission::new(config(8, 8, 50, 2), None);
        let first = admission.admit("a").await.unwrap();
        let second = admission.admit("a").await.unwrap();
        assert!(
            matches!(admission.admit("a").await.err().unwrap(), ServiceError::RateLimited { retry_after_secs, .. } if retry_after_secs > 0)
        );
        assert!(admission.admit("b").await.is_ok(), "another user is not limited by the first");
        drop((first, second));
    }
}
