//! Who may start a run now, shared fairly: a per-user rate, a number of runs at once with a cap
//! per user, and a queue behind them with a cap per user too, served in order to the first run
//! whose user is under the cap. One user's endless loops hold at most their share of the slots
//! and of the queue; everyone else still runs. Every refusal says why (429 or 503 with a
//! sentence), never piling more work on the machine.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use codesync_common::ServiceError;
use codesync_common::rate_limit::{RateLimiter, retry_after_secs};
use codesync_common::redis::Redis;
use tokio::sync::oneshot;

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
    /// Runs one user may have going at once.
    pub runs_per_user_at_once: usize,
    /// Runs one user may have waiting at once.
    pub queued_runs_per_user: usize,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        let concurrent_runs = cpus.max(2);
        Self {
            concurrent_runs,
            queued_runs: 4 * concurrent_runs,
            queue_wait: Duration::from_secs(20),
            runs_per_user_per_minute: 30,
            runs_per_user_at_once: (concurrent_runs / 2).max(1),
            queued_runs_per_user: 2,
        }
    }
}

struct Waiter {
    ticket: u64,
    user_id: String,
    wake: oneshot::Sender<()>,
}

#[derive(Default)]
struct State {
    running: usize,
    running_by_user: HashMap<String, usize>,
    waiting: VecDeque<Waiter>,
    next_ticket: u64,
}

impl State {
    fn running_of(&self, user_id: &str) -> usize {
        self.running_by_user.get(user_id).copied().unwrap_or(0)
    }

    fn waiting_of(&self, user_id: &str) -> usize {
        self.waiting.iter().filter(|waiter| waiter.user_id == user_id).count()
    }

    fn start(&mut self, user_id: &str) {
        self.running += 1;
        *self.running_by_user.entry(user_id.to_string()).or_insert(0) += 1;
    }

    fn finish(&mut self, user_id: &str) {
        self.running = self.running.saturating_sub(1);
        if let Some(count) = self.running_by_user.get_mut(user_id) {
            *count -= 1;
            if *count == 0 {
                self.running_by_user.remove(user_id);
            }
        }
    }
}

pub struct Admission {
    config: AdmissionConfig,
    state: Arc<Mutex<State>>,
    per_user: RateLimiter,
    /// Reported at `/metrics` for as long as this admission lives.
    _readings: Arc<Readings>,
}

/// Runs going and waiting, for `/metrics`.
struct Readings {
    state: Arc<Mutex<State>>,
    slots: usize,
}

impl codesync_common::metrics::Source for Readings {
    fn readings(&self) -> Vec<codesync_common::metrics::Reading> {
        use codesync_common::metrics::Reading;
        let (running, waiting) = {
            let state = lock(&self.state);
            (state.running, state.waiting.len())
        };
        vec![
            Reading::gauge("execution_runs_running", "Runs holding a slot now", running as f64),
            Reading::gauge("execution_runs_waiting", "Runs waiting for a slot now", waiting as f64),
            Reading::gauge("execution_slots", "Runs this replica runs at once at most", self.slots as f64),
        ]
    }
}

/// Held for the length of a run; its slot goes to the next eligible waiting run when it drops.
pub struct Admitted {
    state: Arc<Mutex<State>>,
    user_id: String,
    config: AdmissionConfig,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut state = lock(&self.state);
        state.finish(&self.user_id);
        grant_waiting(&mut state, &self.config);
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // Every critical section is a few counter and queue operations that cannot stop half-way.
    state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Gives free slots to the waiting runs, in order, skipping those whose user is at the cap.
fn grant_waiting(state: &mut State, config: &AdmissionConfig) {
    while state.running < config.concurrent_runs {
        let Some(position) =
            state.waiting.iter().position(|waiter| state.running_of(&waiter.user_id) < config.runs_per_user_at_once)
        else {
            return;
        };
        let Some(waiter) = state.waiting.remove(position) else { return };
        state.start(&waiter.user_id);
        if waiter.wake.send(()).is_err() {
            // It gave up meanwhile: the slot goes to the next.
            state.finish(&waiter.user_id);
        }
    }
}

impl Admission {
    /// With `redis`, the per-user rate is shared by every execution replica.
    pub fn new(config: AdmissionConfig, redis: Option<Redis>) -> Self {
        let per_minute = config.runs_per_user_per_minute.max(1);
        let config = AdmissionConfig {
            concurrent_runs: config.concurrent_runs.max(1),
            runs_per_user_at_once: config.runs_per_user_at_once.max(1),
            ..config
        };
        let state: Arc<Mutex<State>> = Arc::default();
        let readings = Arc::new(Readings { state: state.clone(), slots: config.concurrent_runs });
        codesync_common::metrics::register(readings.clone());
        Self {
            config,
            state,
            per_user: RateLimiter::shared("runs", per_minute, Duration::from_secs(60), redis),
            _readings: readings,
        }
    }

    pub async fn admit(&self, user_id: &str) -> Result<Admitted, ServiceError> {
        if let Err(wait) = self.per_user.try_acquire(user_id).await {
            return Err(ServiceError::RateLimited {
                message: format!("at most {} runs a minute; wait a moment", self.config.runs_per_user_per_minute),
                retry_after_secs: retry_after_secs(wait),
            });
        }
        let admitted = || Admitted { state: self.state.clone(), user_id: user_id.to_string(), config: self.config };
        let (ticket, woken) = {
            let mut state = lock(&self.state);
            let own_running = state.running_of(user_id);
            if state.running < self.config.concurrent_runs && own_running < self.config.runs_per_user_at_once {
                state.start(user_id);
                return Ok(admitted());
            }
            let own_waiting = state.waiting_of(user_id);
            if own_running >= self.config.runs_per_user_at_once && own_waiting >= self.config.queued_runs_per_user {
                return Err(ServiceError::RateLimited {
                    message: format!(
                        "you have {own_running} runs going and {own_waiting} waiting, as many as one person may: \
                         wait for one to finish (or stop one)"
                    ),
                    retry_after_secs: 5,
                });
            }
            if state.waiting.len() >= self.config.queued_runs {
                return Err(ServiceError::RateLimited {
                    message:
                        "the server is running as much code as it can and its queue is full; try again in a few seconds"
                            .into(),
                    retry_after_secs: 5,
                });
            }
            let ticket = state.next_ticket;
            state.next_ticket += 1;
            let (wake, woken) = oneshot::channel();
            state.waiting.push_back(Waiter { ticket, user_id: user_id.to_string(), wake });
            (ticket, woken)
        };
        match tokio::time::timeout(self.config.queue_wait, woken).await {
            Ok(Ok(())) => Ok(admitted()),
            _ => {
                let mut state = lock(&self.state);
                let still_waiting = state.waiting.iter().position(|waiter| waiter.ticket == ticket);
                match still_waiting {
                    Some(position) => {
                        state.waiting.remove(position);
                        let own_running = state.running_of(user_id);
                        let reason = if own_running >= self.config.runs_per_user_at_once {
                            format!("your other {own_running} runs kept the slots one person may use")
                        } else {
                            "the server was too busy".to_string()
                        };
                        Err(ServiceError::Unavailable {
                            message: format!(
                                "the run could not start within {} s: {reason}; try again",
                                self.config.queue_wait.as_secs()
                            ),
                        })
                    }
                    // Granted just as the wait ended: the slot is this run's.
                    None => Ok(admitted()),
                }
            }
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
            runs_per_user_at_once: concurrent_runs,
            queued_runs_per_user: queued_runs,
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
    async fn one_user_holds_at_most_a_share_and_the_others_still_run() {
        let fair = AdmissionConfig { runs_per_user_at_once: 1, queued_runs_per_user: 2, ..config(2, 8, 5_000, 100) };
        let admission = Arc::new(Admission::new(fair, None));
        // Ten endless runs from one user: one runs, two wait, the rest are told why not.
        let hog_running = admission.admit("hog").await.unwrap();
        let mut hog_waiting = Vec::new();
        for _ in 0..2 {
            let admission = admission.clone();
            hog_waiting.push(tokio::spawn(async move { admission.admit("hog").await.map(|_| ()) }));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        for _ in 0..7 {
            let refused = admission.admit("hog").await.err().unwrap();
            assert!(refused.to_string().contains("as many as one person may"), "{refused}");
        }
        // Someone else runs at once, in the slot the hog may not take.
        let other = tokio::time::timeout(Duration::from_millis(100), admission.admit("ada")).await;
        let other = other.expect("another user is not kept waiting").unwrap();
        // When the other's run ends, the slot is not the hog's (it is at its cap): a third user's.
        drop(other);
        let third = tokio::time::timeout(Duration::from_millis(100), admission.admit("bob")).await.unwrap().unwrap();
        drop(third);
        // When the hog's run ends, its next waiting run starts.
        drop(hog_running);
        let next = tokio::time::timeout(Duration::from_secs(1), hog_waiting.remove(0)).await.unwrap().unwrap();
        assert!(next.is_ok());
    }

    #[tokio::test]
    async fn a_run_waiting_behind_its_own_runs_is_told_so() {
        let fair = AdmissionConfig { runs_per_user_at_once: 1, queued_runs_per_user: 2, ..config(2, 8, 50, 100) };
        let admission = Admission::new(fair, None);
        let _running = admission.admit("a").await.unwrap();
        let refused = admission.admit("a").await.err().unwrap();
        assert!(refused.to_string().contains("your other 1 runs"), "{refused}");
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
