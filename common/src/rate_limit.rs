//! Keyed token-bucket rate limits, held in this process's memory.
//!
//! Each key (an IP address, an account) has a bucket of `capacity` tokens that
//! refills at `capacity` tokens per `period`. A request takes a token; an empty
//! bucket answers with how long until the next token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys beyond this many trigger a sweep of full (idle) buckets, so that a
/// flood of distinct keys cannot grow memory without bound.
const SWEEP_THRESHOLD_KEYS: usize = 100_000;

#[derive(Debug)]
pub struct RateLimiter {
    capacity: f64,
    tokens_per_second: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

impl RateLimiter {
    /// `capacity` requests per `period`, as a burst or spread out.
    pub fn new(capacity: u32, period: Duration) -> Self {
        let capacity = f64::from(capacity.max(1));
        let period_secs = period.as_secs_f64().max(0.001);
        Self { capacity, tokens_per_second: capacity / period_secs, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes a token for `key`, or says how long to wait for one.
    pub fn try_acquire(&self, key: &str) -> Result<(), Duration> {
        self.update(key, true)
    }

    /// Says whether `key` has a token left, without taking it.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.update(key, false)
    }

    /// Gives `key` a full bucket again (e.g. after a successful login).
    pub fn reset(&self, key: &str) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        buckets.remove(key);
    }

    fn update(&self, key: &str, take: bool) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() >= SWEEP_THRESHOLD_KEYS && !buckets.contains_key(key) {
            self.sweep_full_buckets(&mut buckets, now);
        }
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket { tokens: self.capacity, refilled_at: now });
        let elapsed_secs = now.saturating_duration_since(bucket.refilled_at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed_secs * self.tokens_per_second).min(self.capacity);
        bucket.refilled_at = now;
        if bucket.tokens >= 1.0 {
            if take {
                bucket.tokens -= 1.0;
            }
            return Ok(());
        }
        let missing_tokens = 1.0 - bucket.tokens;
        Err(Duration::from_secs_f64(missing_tokens / self.tokens_per_second))
    }

    fn sweep_full_buckets(&self, buckets: &mut HashMap<String, Bucket>, now: Instant) {
        buckets.retain(|_, bucket| {
            let elapsed_secs = now.saturating_duration_since(bucket.refilled_at).as_secs_f64();
            bucket.tokens + elapsed_secs * self.tokens_per_second < self.capacity
        });
    }
}

/// Whole seconds to put in a `Retry-After` header: never 0, so a client waits.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_up_to_capacity_passes_then_waits() {
        let limiter = RateLimiter::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(limiter.try_acquire("1.2.3.4").is_ok());
        }
        let wait = limiter.try_acquire("1.2.3.4").unwrap_err();
        assert!(wait > Duration::from_secs(19) && wait <= Duration::from_secs(20), "{wait:?}");
        assert_eq!(retry_after_secs(wait), 20);
        assert!(limiter.try_acquire("5.6.7.8").is_ok(), "keys are independent");
    }

    #[test]
    fn tokens_come_back_over_time() {
        let limiter = RateLimiter::new(10, Duration::from_millis(100));
        for _ in 0..10 {
            limiter.try_acquire("k").unwrap();
        }
        assert!(limiter.try_acquire("k").is_err());
        std::thread::sleep(Duration::from_millis(30));
        assert!(limiter.try_acquire("k").is_ok());
    }

    #[test]
    fn check_does_not_take_and_reset_refills() {
        let limiter = RateLimiter::new(1, Duration::from_secs(60));
        assert!(limiter.check("k").is_ok());
        assert!(limiter.check("k").is_ok());
        limiter.try_acquire("k").unwrap();
        assert!(limiter.check("k").is_err());
        limiter.reset("k");
        assert!(limiter.check("k").is_ok());
    }

    #[test]
    fn retry_after_is_never_zero() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
    }
}
