//! Keyed rate limits: each key (an address, an account, a user) may do `capacity` things per
//! `period`, as a burst or spread out; past that, the answer is how long to wait.
//!
//! With Redis, a limit is shared by every replica (a GCRA kept in one Redis key per limited
//! key, measured by Redis's clock); without it, or while Redis cannot be reached, each process
//! keeps its own buckets in memory (so with N replicas a client gets up to N times the limit
//! for as long as Redis is away: the documented degraded mode). The memory is bounded whatever
//! keys arrive: a full shard forgets idle buckets first, then arbitrary ones, a tenth at a time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fred::prelude::LuaInterface;

use crate::redis::Redis;

/// The name of the per-address request limit (`CODESYNC_RATE_LIMIT_PER_MINUTE`), which the
/// gateway's REST API and the services' gRPC ports share.
pub const CLIENT_ADDRESS_LIMIT: &str = "rest-ip";

/// Buckets held in memory at most (for all keys of one limit).
const MAX_KEYS: usize = 100_000;
const SHARDS: usize = 16;

/// One limit: named (its Redis keys say which), with its capacity and period.
#[derive(Debug)]
pub struct RateLimiter {
    name: &'static str,
    capacity: u32,
    period: Duration,
    local: LocalBuckets,
    redis: Option<Redis>,
}

impl RateLimiter {
    /// `capacity` per `period` in this process alone.
    pub fn new(capacity: u32, period: Duration) -> Self {
        Self::shared("local", capacity, period, None)
    }

    /// `capacity` per `period`, shared through `redis` by every process that names it alike.
    pub fn shared(name: &'static str, capacity: u32, period: Duration, redis: Option<Redis>) -> Self {
        let capacity = capacity.max(1);
        Self { name, capacity, period, local: LocalBuckets::new(capacity, period), redis }
    }

    /// Takes one for `key`, or says how long to wait.
    pub async fn try_acquire(&self, key: &str) -> Result<(), Duration> {
        self.update(key, true).await
    }

    /// Says whether `key` could take one now, without taking it.
    pub async fn check(&self, key: &str) -> Result<(), Duration> {
        self.update(key, false).await
    }

    /// Gives `key` its whole capacity again (e.g. after a successful login).
    pub async fn reset(&self, key: &str) {
        self.local.reset(key);
        if let Some(redis) = &self.redis {
            let _: Result<i64, _> = fred::prelude::KeysInterface::del(redis.client(), self.redis_key(redis, key)).await;
        }
    }

    async fn update(&self, key: &str, take: bool) -> Result<(), Duration> {
        let Some(redis) = self.redis.as_ref().filter(|redis| redis.available()) else {
            return self.local.update(key, take);
        };
        match self.update_shared(redis, key, take).await {
            Ok(answer) => answer,
            Err(error) => {
                redis.failed();
                tracing::warn!(limit = self.name, %error, "Redis cannot be reached: this process limits alone for now");
                self.local.update(key, take)
            }
        }
    }

    fn redis_key(&self, redis: &Redis, key: &str) -> String {
        redis.key(&format!("rate:{}:{key}", self.name))
    }

    /// GCRA in one script, so that concurrent replicas never both take the last token; Redis's
    /// clock is the only one compared.
    async fn update_shared(
        &self,
        redis: &Redis,
        key: &str,
        take: bool,
    ) -> Result<Result<(), Duration>, fred::error::Error> {
        let interval_us = (self.period.as_micros() / u128::from(self.capacity)).max(1);
        let args = vec![interval_us.to_string(), self.capacity.to_string(), u8::from(take).to_string()];
        let wait_us: i64 = redis.client().eval(GCRA_SCRIPT, vec![self.redis_key(redis, key)], args).await?;
        Ok(if wait_us <= 0 { Ok(()) } else { Err(Duration::from_micros(wait_us.unsigned_abs())) })
    }
}

/// KEYS[1]: the bucket; ARGV: microseconds per token, capacity, 1 to take (0 to check).
/// Returns 0 when allowed, else the microseconds to wait. The key holds the theoretical arrival
/// time of the next request and expires once it is in the past.
const GCRA_SCRIPT: &str = r"
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next_tat = tat + interval
local allowed_at = next_tat - interval * capacity
if allowed_at > now then
  return allowed_at - now
end
if ARGV[3] == '1' then
  redis.call('SET', KEYS[1], next_tat, 'PX', math.ceil((next_tat - now) / 1000) + 1)
end
return 0
";

/// Token buckets in this process's memory, bounded in keys.
#[derive(Debug)]
struct LocalBuckets {
    capacity: f64,
    tokens_per_second: f64,
    shards: Vec<Mutex<HashMap<String, Bucket>>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

impl LocalBuckets {
    fn new(capacity: u32, period: Duration) -> Self {
        let capacity = f64::from(capacity.max(1));
        let period_secs = period.as_secs_f64().max(0.001);
        Self {
            capacity,
            tokens_per_second: capacity / period_secs,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, key: &str) -> std::sync::MutexGuard<'_, HashMap<String, Bucket>> {
        // FNV-1a: cheap, and an attacker cannot aim at one shard without also filling it alone.
        let hash = key
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3));
        let index = usize::try_from(hash % SHARDS as u64).unwrap_or(0);
        self.shards[index].lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn reset(&self, key: &str) {
        self.shard(key).remove(key);
    }

    fn update(&self, key: &str, take: bool) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.shard(key);
        if buckets.len() >= MAX_KEYS / SHARDS && !buckets.contains_key(key) {
            self.make_room(&mut buckets, now);
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

    /// Frees a tenth of a full shard: idle (full) buckets first, then arbitrary ones (a key that
    /// loses its bucket gets a full one: more lenient, never a refusal). A tenth at a time keeps
    /// the cost per new key constant on average, whatever keys an attacker sends.
    fn make_room(&self, buckets: &mut HashMap<String, Bucket>, now: Instant) {
        let target = (MAX_KEYS / SHARDS) * 9 / 10;
        buckets.retain(|_, bucket| {
            let elapsed_secs = now.saturating_duration_since(bucket.refilled_at).as_secs_f64();
            bucket.tokens + elapsed_secs * self.tokens_per_second < self.capacity
        });
        if buckets.len() > target {
            let excess = buckets.len() - target;
            let evicted: Vec<String> = buckets.keys().take(excess).cloned().collect();
            for key in evicted {
                buckets.remove(&key);
            }
        }
    }
}

/// Whole seconds to put in a `Retry-After` header: never 0, so a client waits.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// The key an address is limited by: an IPv6 address by its /64 (one host usually holds a
/// whole /64, so its addresses are one client), an IPv4 address as it is.
pub fn address_key(address: std::net::IpAddr) -> String {
    match address {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let segments = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", segments[0], segments[1], segments[2], segments[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_up_to_capacity_passes_then_waits() {
        let limiter = RateLimiter::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(limiter.try_acquire("1.2.3.4").await.is_ok());
        }
        let wait = limiter.try_acquire("1.2.3.4").await.unwrap_err();
        assert!(wait > Duration::from_secs(19) && wait <= Duration::from_secs(20), "{wait:?}");
        assert_eq!(retry_after_secs(wait), 20);
        assert!(limiter.try_acquire("5.6.7.8").await.is_ok(), "keys are independent");
    }

    #[tokio::test]
    async fn tokens_come_back_over_time() {
        let limiter = RateLimiter::new(10, Duration::from_millis(100));
        for _ in 0..10 {
            limiter.try_acquire("k").await.unwrap();
        }
        assert!(limiter.try_acquire("k").await.is_err());
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(limiter.try_acquire("k").await.is_ok());
    }

    #[tokio::test]
    async fn check_does_not_take_and_reset_refills() {
        let limiter = RateLimiter::new(1, Duration::from_secs(60));
        assert!(limiter.check("k").await.is_ok());
        assert!(limiter.check("k").await.is_ok());
        limiter.try_acquire("k").await.unwrap();
        assert!(limiter.check("k").await.is_err());
        limiter.reset("k").await;
        assert!(limiter.check("k").await.is_ok());
    }

    #[test]
    fn retry_after_is_never_zero() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
    }

    #[test]
    fn a_flood_of_keys_stays_bounded_and_cheap() {
        let buckets = LocalBuckets::new(5, Duration::from_secs(60));
        // A spent bucket of a real client, then a flood of new keys.
        for _ in 0..5 {
            buckets.update("victim", true).unwrap();
        }
        let started = Instant::now();
        for index in 0..(3 * MAX_KEYS) {
            let _ = buckets.update(&format!("attacker-{index}"), true);
        }
        let held: usize = buckets.shards.iter().map(|shard| shard.lock().unwrap().len()).sum();
        assert!(held <= MAX_KEYS, "{held} buckets held");
        // A linear sweep per new key made this quadratic (minutes); a tenth at a time is linear.
        assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    }

    #[test]
    fn ipv6_addresses_are_limited_by_their_64() {
        let one: std::net::IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let other: std::net::IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(address_key(one), address_key(other));
        assert_eq!(address_key("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1");
        assert_eq!(address_key("10.0.0.1".parse().unwrap()), "10.0.0.1");
    }

    /// The shared limit on a real Redis (127.0.0.1:6379, `make test` checks it runs), under a
    /// key prefix of this test's own.
    #[tokio::test]
    async fn two_replicas_share_one_limit_through_redis() {
        let prefix = format!("codesync-test-{}:", crate::new_id());
        let redis = Redis::connect("redis://127.0.0.1:6379", &prefix).await.unwrap();
        let first = RateLimiter::shared("test", 4, Duration::from_secs(60), Some(redis.clone()));
        let second = RateLimiter::shared("test", 4, Duration::from_secs(60), Some(redis.clone()));
        for limiter in [&first, &second, &first, &second] {
            limiter.try_acquire("1.2.3.4").await.expect("four in all pass");
        }
        let wait = second.try_acquire("1.2.3.4").await.unwrap_err();
        assert!(wait > Duration::from_secs(14) && wait <= Duration::from_secs(15), "{wait:?}");
        assert!(first.try_acquire("1.2.3.4").await.is_err(), "the other replica sees the same bucket");
        assert!(first.check("5.6.7.8").await.is_ok());
        first.reset("1.2.3.4").await;
        assert!(second.try_acquire("1.2.3.4").await.is_ok(), "a reset is shared too");
    }

    /// Redis that cannot be reached: each process limits alone, at once, without hanging.
    #[tokio::test]
    async fn without_redis_a_limit_falls_back_to_this_process_quickly() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let redis = Redis::connect(&format!("redis://127.0.0.1:{port}"), "x:").await.unwrap();
        let limiter = RateLimiter::shared("test", 2, Duration::from_secs(60), Some(redis));
        let started = Instant::now();
        limiter.try_acquire("k").await.unwrap();
        limiter.try_acquire("k").await.unwrap();
        assert!(limiter.try_acquire("k").await.is_err(), "the local buckets still limit");
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    }
}
