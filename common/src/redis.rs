//! Redis (`CODESYNC_REDIS_URL`), where replicas share what must not live in one process's
//! memory: rate limits (`rate_limit`) and presence with chat (the presence service). Optional:
//! without it one node behaves as it always did.
//!
//! Redis going away never hangs a request: every command has a short deadline, and the callers
//! fall back to what this process knows alone (documented in docs/operations.md) until the
//! client has reconnected by itself.

use std::time::Duration;

use fred::prelude::{Builder, ClientLike, Config, ReconnectPolicy};

/// The longest a command may take before the caller falls back.
pub const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("CODESYNC_REDIS_URL is not a Redis URL ({0}); expected redis://host:port[/db]")]
    Url(fred::error::Error),
    #[error("cannot set up the Redis client: {0}")]
    Client(fred::error::Error),
}

/// A Redis connection shared by a process's components, and the prefix of every key they use
/// (several installations, or tests, may share one Redis).
#[derive(Clone)]
pub struct Redis {
    client: fred::clients::Client,
    config: Config,
    prefix: String,
    /// After a failed command, Redis is left alone until then (ms since the epoch): the callers
    /// fall back at once instead of each waiting out a command's deadline.
    resting_until_ms: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Redis").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl Redis {
    /// Connects to `url` in the background: a Redis that is down at start is reconnected to
    /// later, and meanwhile every command fails fast. Waits a moment for the first connection.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, RedisError> {
        let mut config = Config::from_url(url).map_err(RedisError::Url)?;
        config.fail_fast = false;
        let client = Self::builder(&config).build().map_err(RedisError::Client)?;
        client.connect();
        match tokio::time::timeout(Duration::from_secs(2), client.wait_for_connect()).await {
            Ok(Ok(())) => tracing::info!(prefix, "Redis is connected"),
            Ok(Err(error)) => tracing::warn!(%error, "Redis cannot be reached yet; going on without it until it can"),
            Err(_) => tracing::warn!("Redis did not answer within 2 s; going on without it until it does"),
        }
        Ok(Self { client, config, prefix: prefix.to_string(), resting_until_ms: Default::default() })
    }

    fn builder(config: &Config) -> Builder {
        let mut builder = Builder::from_config(config.clone());
        builder
            .with_connection_config(|connection| {
                connection.connection_timeout = Duration::from_secs(2);
                connection.internal_command_timeout = Duration::from_secs(2);
                connection.max_command_attempts = 1;
            })
            .with_performance_config(|performance| {
                performance.default_command_timeout = COMMAND_TIMEOUT;
            })
            // Reconnects forever, from 100 ms up to 2 s apart.
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2));
        builder
    }

    /// The client for commands.
    pub fn client(&self) -> &fred::clients::Client {
        &self.client
    }

    /// Whether to try Redis now: connected, and not just failed.
    pub fn available(&self) -> bool {
        self.client.is_connected()
            && self.resting_until_ms.load(std::sync::atomic::Ordering::Relaxed) <= crate::now_ms()
    }

    /// A command failed: callers fall back for a few seconds before Redis is tried again (a
    /// frozen Redis costs one command's deadline per rest, not one per request).
    pub fn failed(&self) {
        self.resting_until_ms.store(crate::now_ms() + 3000, std::sync::atomic::Ordering::Relaxed);
    }

    /// A new client for subscriptions (a subscribed connection carries no other commands); it
    /// subscribes again by itself after a reconnection.
    pub fn subscriber(&self) -> Result<fred::clients::SubscriberClient, RedisError> {
        let subscriber = Self::builder(&self.config).build_subscriber_client().map_err(RedisError::Client)?;
        subscriber.connect();
        subscriber.manage_subscriptions();
        Ok(subscriber)
    }

    /// `name` under this installation's prefix.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}
