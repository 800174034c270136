//! The configuration of a `codesync` process, parsed once into typed structs:
//! environment variables (`CODESYNC_<KEY>`) over an optional TOML file (`<key>
//! = value`) over defaults. Every key has the same name in both places, and a
//! bad value is reported with where it came from and what was expected.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use codesync_assistant::AssistantConfig;
use codesync_assistant::provider::{ProviderConfig, ProviderKind};
use codesync_auth::AuthConfig;
use codesync_common::grpc::{CallPolicy, SERVICE_NAMES};
use codesync_common::telemetry::LogFormat;
use codesync_documents::DocumentsConfig;
use codesync_execution::ExecutionConfig;
use codesync_execution::sandbox::BackendConfig;
use codesync_execution::sandbox::docker::DockerConfig;
use codesync_execution::sandbox::kubernetes::KubernetesConfig;
use codesync_gateway::{GatewayConfig, Network, TrustedProxies, WebSource};
use codesync_history::HistoryConfig;

const ENV_PREFIX: &str = "CODESYNC_";

/// Every key, with what it means, for `--help`, the docs and error messages.
pub const KEYS: &[(&str, &str)] = &[
    ("data_dir", "where the embedded database, keys and work files live (default ./data)"),
    ("http_addr", "the gateway's address: web app, REST, WebSockets (default 127.0.0.1:8080)"),
    ("grpc_addr", "the gRPC address of the services in this process (default 127.0.0.1:50051)"),
    (
        "metrics_addr",
        "serve /metrics on this address only, out of the clients' reach (default: on http_addr with the rest)",
    ),
    ("database_url", "sqlite://... or postgres://... (default: SQLite file codesync.db in the data dir)"),
    ("redis_url", "Redis for cross-node fan-out, presence and rate limits (default: none, in-process)"),
    (
        "redis_key_prefix",
        "the prefix of every Redis key and channel, so that installations (or tests) can share a Redis (default codesync:)",
    ),
    ("kafka_brokers", "Kafka bootstrap servers for the event bus (default: none, in-process bus)"),
    ("sandbox", "code execution backend: local, docker or kubernetes (default local)"),
    (
        "sandbox_runs_dir",
        "where runs' work directories are made; every ancestor must be traversable by others (default $TMPDIR/codesync-runs)",
    ),
    ("docker_socket", "sandbox=docker: the Docker Engine API socket (default unix:///var/run/docker.sock)"),
    (
        "docker_image",
        "sandbox=docker: the image runs start from, holding the runtimes (default codesync-runner:latest)",
    ),
    ("docker_runtime", "sandbox=docker: the OCI runtime to ask for, such as runc (default: the engine's)"),
    (
        "docker_read_only_binds",
        "sandbox=docker: host paths lent read-only to every container, comma-separated, such as /usr (default none)",
    ),
    (
        "kubernetes_api_url",
        "sandbox=kubernetes: the API server (default: the in-cluster service account, else kubeconfig)",
    ),
    ("kubernetes_namespace", "sandbox=kubernetes: the namespace runs' Jobs go in (default codesync-runs)"),
    (
        "kubernetes_image",
        "sandbox=kubernetes: the image runs start from, holding the runtimes (default codesync-runner:latest)",
    ),
    ("execution_time_limit_secs", "wall time of a run (and of a compile) at most (default 30)"),
    ("execution_memory_limit_mb", "memory of a run, unless its language needs more (default 128)"),
    ("execution_output_limit_bytes", "stdout and stderr of a run, each, before it is stopped (default 1048576)"),
    ("execution_concurrency", "runs at once (default: the number of CPUs, at least 2)"),
    ("execution_queue", "runs waiting for a slot before more are refused with 429 (default 4 x concurrency)"),
    ("execution_runs_per_minute", "runs each user may start per minute (default 30)"),
    (
        "execution_runs_per_user",
        "runs one user may have going at once, so that nobody takes every slot (default: half of execution_concurrency, at least 1)",
    ),
    ("execution_queue_per_user", "runs one user may have waiting for a slot (default 2)"),
    ("ai_provider", "openai (and OpenAI-compatible servers), anthropic or gemini (default: none, assistant off)"),
    ("ai_base_url", "the AI provider's endpoint (default: the vendor's public endpoint)"),
    ("ai_api_key", "the AI provider's API key"),
    ("ai_model", "the AI provider's model"),
    ("ai_requests_per_minute", "assistant requests each user may make per minute (default 20)"),
    ("ai_streams_per_user", "answers one user may have streaming at once (default 2)"),
    ("ai_request_timeout_secs", "the longest one answer may take (default 120)"),
    (
        "jwt_signing_key_file",
        "the access-token signing key (Ed25519), held by the auth service only, created with mode 0600 if missing (default <data_dir>/secrets/jwt-signing-key)",
    ),
    (
        "jwt_public_key_file",
        "the key access tokens are verified with, written by the auth service (default <data_dir>/secrets/jwt-public-key; asked of the auth service when missing)",
    ),
    (
        "service_key_file",
        "the key of the credentials CodeSync processes present to each other: the same file for all of them, created with mode 0600 if missing (default <data_dir>/secrets/service-key)",
    ),
    ("log_format", "text or json (default text); the level comes from CODESYNC_LOG or RUST_LOG"),
    ("migrate_on_start", "apply database migrations when services start (default true)"),
    ("rate_limit_per_minute", "REST requests per minute per client IP (default 200)"),
    ("max_body_bytes", "largest REST request body in bytes (default 2097152)"),
    ("ws_idle_timeout_secs", "a WebSocket client silent this long is dropped; it is pinged at half of it (default 60)"),
    (
        "http_header_timeout_secs",
        "a request's headers must arrive within this, and a keep-alive connection idle this long is closed (default 10)",
    ),
    ("max_streams_per_user", "WebSockets and event streams one user may hold open at once (default 64)"),
    (
        "max_connections_per_address",
        "connections one client address may hold open at the gateway; trusted proxies are exempt (default 256)",
    ),
    (
        "web_dir",
        "serve the web app from this built frontend/dist instead of the copy embedded in the binary (default: embedded)",
    ),
    (
        "trust_forwarded_for",
        "the gateway's direct peer is a proxy: believe the X-Forwarded-For entry it appended (default false)",
    ),
    (
        "trusted_proxies",
        "addresses or networks of proxies (comma-separated, such as 10.0.0.0/8): X-Forwarded-For is read from the right past them (default none)",
    ),
    ("access_token_ttl_secs", "lifetime of access tokens (default 900)"),
    ("refresh_token_ttl_secs", "lifetime of refresh tokens (default 604800)"),
    ("login_attempts_per_ip_per_minute", "login attempts per client IP per minute (default 20)"),
    (
        "login_failures_per_account",
        "failed logins per account from one address per 15 minutes before that address waits (default 10)",
    ),
    ("registrations_per_ip_per_hour", "accounts one client address may register per hour (default 20)"),
    (
        "documents_memory_budget_bytes",
        "estimated memory of loaded documents before idle ones are unloaded (default 536870912)",
    ),
    ("documents_max_message_bytes", "largest WebSocket message on /ws/files in bytes (default 1048576)"),
    ("documents_max_document_bytes", "largest stored size of one document in bytes (default 16777216)"),
    ("documents_snapshot_every_updates", "log entries before a document is compacted into a snapshot (default 1000)"),
    ("documents_idle_unload_secs", "seconds a document without connections stays loaded (default 60)"),
    ("documents_connection_queue", "messages queued for one connection before it is closed as too slow (default 4096)"),
    (
        "documents_connection_queue_bytes",
        "bytes queued for one connection before it is closed as too slow (default 16777216)",
    ),
    (
        "documents_activity_window_ms",
        "a file's edits are announced (for checkpoints and analytics) at most this often (default 10000)",
    ),
    ("history_checkpoint_idle_secs", "a checkpoint is taken after editing pauses this long (default 30)"),
    ("history_checkpoint_interval_secs", "and at least this often while editing goes on (default 300)"),
    (
        "auth_endpoint",
        "gRPC endpoint of the auth service when not in this process; several replicas comma-separated (default http://<grpc_addr>)",
    ),
    ("rooms_endpoint", "likewise for the rooms service"),
    ("documents_endpoint", "likewise for the documents service"),
    ("presence_endpoint", "likewise for the presence service"),
    ("history_endpoint", "likewise for the history service"),
    ("execution_endpoint", "likewise for the execution service"),
    ("assistant_endpoint", "likewise for the assistant service"),
    ("notifications_endpoint", "likewise for the notifications service"),
    ("analytics_endpoint", "likewise for the analytics service"),
    (
        "advertise_addr",
        "the host:port other replicas reach this process's gRPC at (default: grpc_addr, with this host's name for a wildcard address)",
    ),
    ("call_timeout_ms", "deadline of a call between services that names none of its own (default 10000)"),
    ("shutdown_grace_secs", "on SIGTERM, how long open requests and streams may take to finish (default 20)"),
    (
        "documents_lease_ttl_ms",
        "how long a documents replica's claim on its files outlives its last renewal: the failover time (default 4000)",
    ),
];

/// Environment variables of ours that are not configuration keys.
const OTHER_ENV_VARS: &[&str] = &["CODESYNC_CONFIG", "CODESYNC_LOG"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    ReadFile { path: PathBuf, source: std::io::Error },
    #[error("the configuration file {path} is not valid TOML: {message}")]
    ParseFile { path: PathBuf, message: String },
    #[error("unknown key '{key}' in {path}; known keys: {known}")]
    UnknownKey { key: String, path: PathBuf, known: String },
    #[error("invalid value for {origin}: '{value}' is not {expected}")]
    InvalidValue { origin: String, value: String, expected: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxBackend {
    Local,
    Docker,
    Kubernetes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AiProvider {
    OpenAi,
    Anthropic,
    Gemini,
}

#[derive(Clone)]
pub struct AiConfig {
    pub provider: Option<AiProvider>,
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    pub model: Option<String>,
}

impl std::fmt::Debug for AiConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AiConfig")
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .finish()
    }
}

/// The whole configuration of one process.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    /// `/metrics` on an address of its own (and not on `http_addr`).
    pub metrics_addr: Option<SocketAddr>,
    pub database_url: String,
    pub redis_url: Option<String>,
    pub redis_key_prefix: String,
    pub kafka_brokers: Option<String>,
    pub sandbox: SandboxBackend,
    pub ai: AiConfig,
    /// The assistant service's settings, with the provider of `ai` resolved.
    pub assistant: AssistantConfig,
    pub jwt_signing_key_file: PathBuf,
    pub jwt_public_key_file: PathBuf,
    pub service_key_file: PathBuf,
    pub log_format: LogFormat,
    pub migrate_on_start: bool,
    pub access_token_ttl: Duration,
    pub auth: AuthConfig,
    pub gateway: GatewayConfig,
    pub documents: DocumentsConfig,
    pub history: HistoryConfig,
    pub execution: ExecutionConfig,
    /// The gRPC endpoints (`http://host:port`, one per replica) of each of the nine services.
    pub endpoints: BTreeMap<&'static str, Vec<String>>,
    /// The address other replicas reach this process's gRPC server at.
    pub advertise_addr: String,
    /// How calls between services behave (deadlines, endpoints that fail).
    pub calls: CallPolicy,
    /// On SIGTERM, how long open requests and streams may take to finish.
    pub shutdown_grace: Duration,
    /// `CODESYNC_*` variables that are not keys, probably misspelt; logged at start.
    pub unknown_env_vars: Vec<String>,
}

/// The raw values and where each came from.
struct Sources {
    file_path: Option<PathBuf>,
    file: BTreeMap<String, toml::Value>,
    env: BTreeMap<String, String>,
}

impl Sources {
    /// The value of `key` as text and where it came from: the environment wins over the file.
    fn raw(&self, key: &str) -> Option<(String, String)> {
        let env_name = env_name(key);
        if let Some(value) = self.env.get(&env_name) {
            return Some((value.clone(), env_name));
        }
        let value = self.file.get(key)?;
        let origin = format!(
            "'{key}' in {}",
            self.file_path.as_deref().unwrap_or(Path::new("the configuration file")).display()
        );
        let text = match value {
            toml::Value::String(text) => text.clone(),
            toml::Value::Integer(number) => number.to_string(),
            toml::Value::Float(number) => number.to_string(),
            toml::Value::Boolean(flag) => flag.to_string(),
            // Tables, arrays and dates fit no key; the parser will call them invalid.
            _ => "<not a single value>".to_string(),
        };
        Some((text, origin))
    }

    fn parse<T>(&self, key: &str, expected: &str, parse: impl Fn(&str) -> Option<T>) -> Result<Option<T>, ConfigError> {
        let Some((text, origin)) = self.raw(key) else {
            return Ok(None);
        };
        parse(text.trim()).map(Some).ok_or_else(|| ConfigError::InvalidValue {
            origin,
            value: text.chars().take(200).collect(),
            expected: expected.to_string(),
        })
    }

    fn string(&self, key: &str) -> Option<String> {
        self.raw(key).map(|(text, _)| text.trim().to_string()).filter(|text| !text.is_empty())
    }

    fn parsed<T: FromStr>(&self, key: &str, expected: &str) -> Result<Option<T>, ConfigError> {
        self.parse(key, expected, |text| text.parse().ok())
    }

    fn boolean(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        self.parse(key, "a boolean (true or false)", |text| match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(true),
            "false" | "0" | "no" | "off" => Some(false),
            _ => None,
        })
    }

    fn positive<T: FromStr + PartialOrd + Default>(&self, key: &str) -> Result<Option<T>, ConfigError> {
        self.parse(key, "a positive whole number", |text| text.parse().ok().filter(|value| *value > T::default()))
    }
}

fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())
}

impl Config {
    /// Reads the configuration from `file` (if given) and this process's environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars().filter(|(name, _)| name.starts_with(ENV_PREFIX)).collect();
        Self::from_sources(file, env)
    }

    fn from_sources(file_path: Option<&Path>, env: BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let file = match file_path {
            Some(path) => read_toml(path)?,
            None => BTreeMap::new(),
        };
        let known: BTreeSet<String> = KEYS.iter().map(|(key, _)| key.to_string()).collect();
        let unknown_env_vars = env
            .keys()
            .filter(|name| !OTHER_ENV_VARS.contains(&name.as_str()))
            .filter(|name| !known.contains(&name[ENV_PREFIX.len()..].to_ascii_lowercase()))
            .cloned()
            .collect();
        let sources = Sources { file_path: file_path.map(Path::to_path_buf), file, env };

        let data_dir = sources.string("data_dir").map_or_else(|| PathBuf::from("./data"), PathBuf::from);
        let http_addr = sources
            .parsed("http_addr", "a socket address such as 127.0.0.1:8080")?
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let grpc_addr = sources
            .parsed("grpc_addr", "a socket address such as 127.0.0.1:50051")?
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 50051)));
        let metrics_addr = sources.parsed("metrics_addr", "a socket address such as 127.0.0.1:9090")?;
        let database_url = match sources.parse("database_url", "a sqlite://... or postgres://... URL", |text| {
            let supported = ["sqlite:", "postgres:", "postgresql:"].iter().any(|scheme| text.starts_with(scheme));
            supported.then(|| text.to_string())
        })? {
            Some(url) => url,
            None => format!("sqlite://{}", data_dir.join("codesync.db").display()),
        };
        let sandbox = sources
            .parse("sandbox", "local, docker or kubernetes", |text| match text {
                "local" => Some(SandboxBackend::Local),
                "docker" => Some(SandboxBackend::Docker),
                "kubernetes" => Some(SandboxBackend::Kubernetes),
                _ => None,
            })?
            .unwrap_or(SandboxBackend::Local);
        let ai = AiConfig {
            provider: sources.parse("ai_provider", "openai, anthropic or gemini", |text| match text {
                "openai" => Some(AiProvider::OpenAi),
                "anthropic" => Some(AiProvider::Anthropic),
                "gemini" => Some(AiProvider::Gemini),
                _ => None,
            })?,
            base_url: sources.parse("ai_base_url", "an http:// or https:// URL", parse_http_url)?,
            api_key: sources.string("ai_api_key"),
            model: sources.string("ai_model"),
        };
        let jwt_signing_key_file = sources
            .string("jwt_signing_key_file")
            .map_or_else(|| data_dir.join("secrets").join("jwt-signing-key"), PathBuf::from);
        let jwt_public_key_file = sources
            .string("jwt_public_key_file")
            .map_or_else(|| data_dir.join("secrets").join("jwt-public-key"), PathBuf::from);
        let service_key_file = sources
            .string("service_key_file")
            .map_or_else(|| data_dir.join("secrets").join("service-key"), PathBuf::from);
        let log_format = sources
            .parse("log_format", "text or json", |text| match text {
                "text" => Some(LogFormat::Text),
                "json" => Some(LogFormat::Json),
                _ => None,
            })?
            .unwrap_or(LogFormat::Text);

        let auth_defaults = AuthConfig::default();
        let auth = AuthConfig {
            refresh_token_ttl: sources
                .positive::<u64>("refresh_token_ttl_secs")?
                .map_or(auth_defaults.refresh_token_ttl, Duration::from_secs),
            login_attempts_per_ip_per_minute: sources
                .positive("login_attempts_per_ip_per_minute")?
                .unwrap_or(auth_defaults.login_attempts_per_ip_per_minute),
            login_failures_per_account: sources
                .positive("login_failures_per_account")?
                .unwrap_or(auth_defaults.login_failures_per_account),
            registrations_per_ip_per_hour: sources
                .positive("registrations_per_ip_per_hour")?
                .unwrap_or(auth_defaults.registrations_per_ip_per_hour),
        };
        let gateway_defaults = GatewayConfig::default();
        let gateway = GatewayConfig {
            rate_limit_per_minute: sources
                .positive("rate_limit_per_minute")?
                .unwrap_or(gateway_defaults.rate_limit_per_minute),
            max_body_bytes: sources.positive("max_body_bytes")?.unwrap_or(gateway_defaults.max_body_bytes),
            proxies: TrustedProxies {
                peer: sources.boolean("trust_forwarded_for")?.unwrap_or(gateway_defaults.proxies.peer),
                networks: sources
                    .parse("trusted_proxies", "addresses or networks such as 10.0.0.0/8, comma-separated", |text| {
                        text.split(',')
                            .map(str::trim)
                            .filter(|entry| !entry.is_empty())
                            .map(|entry| entry.parse::<Network>().ok())
                            .collect::<Option<Vec<_>>>()
                    })?
                    .unwrap_or_default(),
            },
            ws_max_message_bytes: gateway_defaults.ws_max_message_bytes,
            ws_queue_bytes: gateway_defaults.ws_queue_bytes,
            ws_idle_timeout: sources
                .positive::<u64>("ws_idle_timeout_secs")?
                .map_or(gateway_defaults.ws_idle_timeout, Duration::from_secs),
            header_timeout: sources
                .positive::<u64>("http_header_timeout_secs")?
                .map_or(gateway_defaults.header_timeout, Duration::from_secs),
            max_connections_per_address: sources
                .positive("max_connections_per_address")?
                .unwrap_or(gateway_defaults.max_connections_per_address),
            max_streams_per_user: sources
                .positive("max_streams_per_user")?
                .unwrap_or(gateway_defaults.max_streams_per_user),
            metrics_on_main_address: gateway_defaults.metrics_on_main_address,
            web_source: sources
                .parse("web_dir", "a directory holding a built web app (with index.html)", |text| {
                    let directory = std::fs::canonicalize(text).ok()?;
                    directory.join("index.html").is_file().then_some(directory)
                })?
                .map_or(WebSource::Embedded, WebSource::Directory),
        };

        let documents_defaults = DocumentsConfig::default();
        let documents = DocumentsConfig {
            memory_budget_bytes: sources
                .positive("documents_memory_budget_bytes")?
                .unwrap_or(documents_defaults.memory_budget_bytes),
            max_message_bytes: sources
                .positive("documents_max_message_bytes")?
                .unwrap_or(documents_defaults.max_message_bytes),
            max_document_bytes: sources
                .positive("documents_max_document_bytes")?
                .unwrap_or(documents_defaults.max_document_bytes),
            snapshot_every_updates: sources
                .positive("documents_snapshot_every_updates")?
                .unwrap_or(documents_defaults.snapshot_every_updates),
            idle_unload_after: sources
                .positive::<u64>("documents_idle_unload_secs")?
                .map_or(documents_defaults.idle_unload_after, Duration::from_secs),
            connection_queue: sources
                .positive("documents_connection_queue")?
                .unwrap_or(documents_defaults.connection_queue),
            connection_queue_bytes: sources
                .positive("documents_connection_queue_bytes")?
                .unwrap_or(documents_defaults.connection_queue_bytes),
            activity_window: sources
                .positive::<u64>("documents_activity_window_ms")?
                .map_or(documents_defaults.activity_window, Duration::from_millis),
            lease_ttl: sources
                .positive::<u64>("documents_lease_ttl_ms")?
                .map_or(documents_defaults.lease_ttl, Duration::from_millis),
        };

        let history_defaults = HistoryConfig::default();
        let history = HistoryConfig {
            checkpoint_after_idle: sources
                .positive::<u64>("history_checkpoint_idle_secs")?
                .map_or(history_defaults.checkpoint_after_idle, Duration::from_secs),
            checkpoint_at_most_every: sources
                .positive::<u64>("history_checkpoint_interval_secs")?
                .map_or(history_defaults.checkpoint_at_most_every, Duration::from_secs),
        };

        let assistant_defaults = AssistantConfig::default();
        let assistant = AssistantConfig {
            provider: ai.provider.map(|provider| {
                let kind = match provider {
                    AiProvider::OpenAi => ProviderKind::OpenAi,
                    AiProvider::Anthropic => ProviderKind::Anthropic,
                    AiProvider::Gemini => ProviderKind::Gemini,
                };
                ProviderConfig::new(kind, ai.base_url.clone(), ai.api_key.clone(), ai.model.clone())
            }),
            requests_per_user_per_minute: sources
                .positive("ai_requests_per_minute")?
                .unwrap_or(assistant_defaults.requests_per_user_per_minute),
            streams_per_user: sources.positive("ai_streams_per_user")?.unwrap_or(assistant_defaults.streams_per_user),
            request_timeout: sources
                .positive::<u64>("ai_request_timeout_secs")?
                .map_or(assistant_defaults.request_timeout, Duration::from_secs),
            ..assistant_defaults
        };

        let execution_defaults = ExecutionConfig::default();
        let mut execution = execution_defaults.clone();
        if let Some(runs_dir) = sources.string("sandbox_runs_dir") {
            execution.runs_dir = PathBuf::from(runs_dir);
        }
        if let Some(seconds) = sources.positive::<u64>("execution_time_limit_secs")? {
            execution.limits.wall_time = Duration::from_secs(seconds);
        }
        if let Some(megabytes) = sources.positive::<u64>("execution_memory_limit_mb")? {
            execution.limits.memory_bytes = megabytes * 1024 * 1024;
        }
        if let Some(bytes) = sources.positive::<usize>("execution_output_limit_bytes")? {
            execution.limits.output_bytes = bytes;
        }
        if let Some(concurrency) = sources.positive::<usize>("execution_concurrency")? {
            execution.admission.concurrent_runs = concurrency;
            execution.admission.queued_runs = 4 * concurrency;
            execution.admission.runs_per_user_at_once = (concurrency / 2).max(1);
        }
        if let Some(queued) = sources.positive::<usize>("execution_queue")? {
            execution.admission.queued_runs = queued;
        }
        if let Some(per_minute) = sources.positive::<u32>("execution_runs_per_minute")? {
            execution.admission.runs_per_user_per_minute = per_minute;
        }
        if let Some(at_once) = sources.positive::<usize>("execution_runs_per_user")? {
            execution.admission.runs_per_user_at_once = at_once;
        }
        if let Some(queued) = sources.positive::<usize>("execution_queue_per_user")? {
            execution.admission.queued_runs_per_user = queued;
        }
        execution.backend = match sandbox {
            SandboxBackend::Local => BackendConfig::Local,
            SandboxBackend::Docker => BackendConfig::Docker(DockerConfig {
                socket: sources.string("docker_socket").unwrap_or_else(|| "unix:///var/run/docker.sock".into()),
                image: sources.string("docker_image").unwrap_or_else(|| "codesync-runner:latest".into()),
                runtime: sources.string("docker_runtime"),
                read_only_binds: sources
                    .string("docker_read_only_binds")
                    .map(|paths| {
                        paths.split(',').map(str::trim).filter(|path| !path.is_empty()).map(String::from).collect()
                    })
                    .unwrap_or_default(),
            }),
            SandboxBackend::Kubernetes => BackendConfig::Kubernetes(KubernetesConfig {
                api_url: sources.parse("kubernetes_api_url", "an http(s)://host:port URL", parse_http_url)?,
                namespace: sources.string("kubernetes_namespace").unwrap_or_else(|| "codesync-runs".into()),
                image: sources.string("kubernetes_image").unwrap_or_else(|| "codesync-runner:latest".into()),
            }),
        };

        let gateway = GatewayConfig {
            ws_max_message_bytes: documents.max_message_bytes,
            ws_queue_bytes: documents.connection_queue_bytes,
            ..gateway
        };

        let local_endpoint = format!("http://{}", connectable(grpc_addr));
        let mut endpoints = BTreeMap::new();
        for service in SERVICE_NAMES {
            let key = format!("{service}_endpoint");
            let expected = "http://host:port URLs, comma-separated";
            let listed = sources.parse(&key, expected, |text| {
                let urls: Option<Vec<String>> =
                    text.split(',').map(str::trim).filter(|url| !url.is_empty()).map(parse_http_url).collect();
                urls.filter(|urls| !urls.is_empty())
            })?;
            endpoints.insert(service, listed.unwrap_or_else(|| vec![local_endpoint.clone()]));
        }
        let advertise_addr = match sources.string("advertise_addr") {
            Some(address) => sources
                .parse("advertise_addr", "a host:port address", |text| {
                    let (host, port) = text.rsplit_once(':')?;
                    (!host.is_empty() && port.parse::<u16>().is_ok() && !text.contains("://")).then(|| address.clone())
                })?
                .unwrap_or(address),
            None => advertised(grpc_addr),
        };
        let call_defaults = CallPolicy::default();
        let calls = CallPolicy {
            default_timeout: sources
                .positive::<u64>("call_timeout_ms")?
                .map_or(call_defaults.default_timeout, Duration::from_millis),
            ..call_defaults
        };
        let shutdown_grace = Duration::from_secs(sources.positive("shutdown_grace_secs")?.unwrap_or(20));

        let gateway = GatewayConfig { metrics_on_main_address: metrics_addr.is_none(), ..gateway };
        Ok(Self {
            data_dir,
            http_addr,
            grpc_addr,
            metrics_addr,
            database_url,
            redis_url: sources.string("redis_url"),
            redis_key_prefix: sources.string("redis_key_prefix").unwrap_or_else(|| "codesync:".to_string()),
            kafka_brokers: sources.string("kafka_brokers"),
            sandbox,
            ai,
            assistant,
            jwt_signing_key_file,
            jwt_public_key_file,
            service_key_file,
            log_format,
            migrate_on_start: sources.boolean("migrate_on_start")?.unwrap_or(true),
            access_token_ttl: Duration::from_secs(sources.positive("access_token_ttl_secs")?.unwrap_or(15 * 60)),
            auth,
            gateway,
            documents,
            history,
            execution,
            endpoints,
            advertise_addr,
            calls,
            shutdown_grace,
            unknown_env_vars,
        })
    }

    /// The effective configuration as TOML, secrets redacted, for `codesync config`.
    pub fn describe(&self) -> String {
        let optional = |value: &Option<String>| value.clone().unwrap_or_default();
        let mut lines = vec![
            format!("data_dir = {:?}", self.data_dir.display().to_string()),
            format!("http_addr = \"{}\"", self.http_addr),
            format!("grpc_addr = \"{}\"", self.grpc_addr),
            format!("metrics_addr = {:?}", self.metrics_addr.map(|address| address.to_string()).unwrap_or_default()),
            format!("database_url = {:?}", redact_url_password(&self.database_url)),
            format!("redis_url = {:?}", redact_url_password(&optional(&self.redis_url))),
            format!("redis_key_prefix = {:?}", self.redis_key_prefix),
            format!("kafka_brokers = {:?}", optional(&self.kafka_brokers)),
            format!(
                "sandbox = \"{}\"",
                match self.sandbox {
                    SandboxBackend::Local => "local",
                    SandboxBackend::Docker => "docker",
                    SandboxBackend::Kubernetes => "kubernetes",
                }
            ),
            format!(
                "ai_provider = \"{}\"",
                match self.ai.provider {
                    None => "",
                    Some(AiProvider::OpenAi) => "openai",
                    Some(AiProvider::Anthropic) => "anthropic",
                    Some(AiProvider::Gemini) => "gemini",
                }
            ),
            format!("ai_base_url = {:?}", optional(&self.ai.base_url)),
            format!("ai_api_key = \"{}\"", if self.ai.api_key.is_some() { "<redacted>" } else { "" }),
            format!("ai_model = {:?}", optional(&self.ai.model)),
            format!("ai_requests_per_minute = {}", self.assistant.requests_per_user_per_minute),
            format!("ai_streams_per_user = {}", self.assistant.streams_per_user),
            format!("ai_request_timeout_secs = {}", self.assistant.request_timeout.as_secs()),
            format!("jwt_signing_key_file = {:?}", self.jwt_signing_key_file.display().to_string()),
            format!("jwt_public_key_file = {:?}", self.jwt_public_key_file.display().to_string()),
            format!("service_key_file = {:?}", self.service_key_file.display().to_string()),
            format!("log_format = \"{}\"", if self.log_format == LogFormat::Json { "json" } else { "text" }),
            format!("migrate_on_start = {}", self.migrate_on_start),
            format!("rate_limit_per_minute = {}", self.gateway.rate_limit_per_minute),
            format!("max_body_bytes = {}", self.gateway.max_body_bytes),
            format!("trust_forwarded_for = {}", self.gateway.proxies.peer),
            format!("trusted_proxies = {:?}", if self.gateway.proxies.networks.is_empty() { "" } else { "(set)" }),
            format!("ws_idle_timeout_secs = {}", self.gateway.ws_idle_timeout.as_secs()),
            format!("http_header_timeout_secs = {}", self.gateway.header_timeout.as_secs()),
            format!("max_connections_per_address = {}", self.gateway.max_connections_per_address),
            format!("max_streams_per_user = {}", self.gateway.max_streams_per_user),
            format!(
                "web_dir = {:?}",
                match &self.gateway.web_source {
                    WebSource::Embedded => String::new(),
                    WebSource::Directory(directory) => directory.display().to_string(),
                }
            ),
            format!("access_token_ttl_secs = {}", self.access_token_ttl.as_secs()),
            format!("refresh_token_ttl_secs = {}", self.auth.refresh_token_ttl.as_secs()),
            format!("login_attempts_per_ip_per_minute = {}", self.auth.login_attempts_per_ip_per_minute),
            format!("login_failures_per_account = {}", self.auth.login_failures_per_account),
            format!("registrations_per_ip_per_hour = {}", self.auth.registrations_per_ip_per_hour),
            format!("documents_memory_budget_bytes = {}", self.documents.memory_budget_bytes),
            format!("documents_max_message_bytes = {}", self.documents.max_message_bytes),
            format!("documents_max_document_bytes = {}", self.documents.max_document_bytes),
            format!("documents_snapshot_every_updates = {}", self.documents.snapshot_every_updates),
            format!("documents_idle_unload_secs = {}", self.documents.idle_unload_after.as_secs()),
            format!("documents_connection_queue = {}", self.documents.connection_queue),
            format!("documents_connection_queue_bytes = {}", self.documents.connection_queue_bytes),
            format!("documents_activity_window_ms = {}", self.documents.activity_window.as_millis()),
            format!("history_checkpoint_idle_secs = {}", self.history.checkpoint_after_idle.as_secs()),
            format!("history_checkpoint_interval_secs = {}", self.history.checkpoint_at_most_every.as_secs()),
            format!("sandbox_runs_dir = {:?}", self.execution.runs_dir.display().to_string()),
            format!("execution_time_limit_secs = {}", self.execution.limits.wall_time.as_secs()),
            match &self.execution.backend {
                BackendConfig::Docker(docker) => format!(
                    "docker_socket = {:?}\ndocker_image = {:?}\ndocker_runtime = {:?}\ndocker_read_only_binds = {:?}",
                    docker.socket,
                    docker.image,
                    docker.runtime.clone().unwrap_or_default(),
                    docker.read_only_binds.join(",")
                ),
                BackendConfig::Kubernetes(kubernetes) => format!(
                    "kubernetes_api_url = {:?}\nkubernetes_namespace = {:?}\nkubernetes_image = {:?}",
                    kubernetes.api_url.clone().unwrap_or_default(),
                    kubernetes.namespace,
                    kubernetes.image
                ),
                BackendConfig::Local => {
                    "# docker_* and kubernetes_* keys apply with sandbox = \"docker\" or \"kubernetes\"".to_string()
                }
            },
            format!("execution_memory_limit_mb = {}", self.execution.limits.memory_bytes / (1024 * 1024)),
            format!("execution_output_limit_bytes = {}", self.execution.limits.output_bytes),
            format!("execution_concurrency = {}", self.execution.admission.concurrent_runs),
            format!("execution_queue = {}", self.execution.admission.queued_runs),
            format!("execution_runs_per_minute = {}", self.execution.admission.runs_per_user_per_minute),
            format!("execution_runs_per_user = {}", self.execution.admission.runs_per_user_at_once),
            format!("execution_queue_per_user = {}", self.execution.admission.queued_runs_per_user),
        ];
        for (service, endpoints) in &self.endpoints {
            lines.push(format!("{service}_endpoint = {:?}", endpoints.join(",")));
        }
        lines.push(format!("advertise_addr = {:?}", self.advertise_addr));
        lines.push(format!("call_timeout_ms = {}", self.calls.default_timeout.as_millis()));
        lines.push(format!("shutdown_grace_secs = {}", self.shutdown_grace.as_secs()));
        lines.push(format!("documents_lease_ttl_ms = {}", self.documents.lease_ttl.as_millis()));
        lines.join("\n")
    }
}

fn read_toml(path: &Path) -> Result<BTreeMap<String, toml::Value>, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile { path: path.to_path_buf(), source })?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|error| ConfigError::ParseFile { path: path.to_path_buf(), message: error.to_string() })?;
    let known: BTreeSet<&str> = KEYS.iter().map(|(key, _)| *key).collect();
    if let Some(unknown) = table.keys().find(|key| !known.contains(key.as_str())) {
        return Err(ConfigError::UnknownKey {
            key: unknown.clone(),
            path: path.to_path_buf(),
            known: KEYS.iter().map(|(key, _)| *key).collect::<Vec<_>>().join(", "),
        });
    }
    Ok(table.into_iter().collect())
}

fn parse_http_url(text: &str) -> Option<String> {
    let rest = text.strip_prefix("http://").or_else(|| text.strip_prefix("https://"))?;
    let host = rest.split('/').next().unwrap_or_default();
    (!host.is_empty() && !text.contains(char::is_whitespace)).then(|| text.trim_end_matches('/').to_string())
}

/// The address other hosts reach a server bound to `address` at: a wildcard bind address is
/// this host's name (a pod's, on Kubernetes, where a headless Service resolves it).
fn advertised(address: SocketAddr) -> String {
    if !address.ip().is_unspecified() {
        return address.to_string();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "127.0.0.1".to_string());
    format!("{host}:{}", address.port())
}

/// An address others can connect to: a wildcard bind address means this host.
fn connectable(address: SocketAddr) -> SocketAddr {
    if address.ip().is_unspecified() {
        return SocketAddr::from(([127, 0, 0, 1], address.port()));
    }
    address
}

fn redact_url_password(url: &str) -> String {
    match url
        .split_once("://")
        .and_then(|(scheme, rest)| rest.split_once('@').map(|(credentials, host)| (scheme, credentials, host)))
    {
        Some((scheme, credentials, host)) if credentials.contains(':') => {
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:<redacted>@{host}")
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect()
    }

    #[test]
    fn the_sandbox_backend_and_the_execution_limits_are_configured_by_their_keys() {
        let config = Config::from_sources(
            None,
            env(&[
                ("CODESYNC_SANDBOX", "docker"),
                ("CODESYNC_DOCKER_SOCKET", "unix:///run/podman/podman.sock"),
                ("CODESYNC_DOCKER_READ_ONLY_BINDS", "/usr, /etc/alternatives,"),
                ("CODESYNC_EXECUTION_TIME_LIMIT_SECS", "5"),
                ("CODESYNC_EXECUTION_MEMORY_LIMIT_MB", "256"),
                ("CODESYNC_EXECUTION_CONCURRENCY", "3"),
            ]),
        )
        .unwrap();
        let BackendConfig::Docker(docker) = &config.execution.backend else { panic!("{:?}", config.execution.backend) };
        assert_eq!(docker.socket, "unix:///run/podman/podman.sock");
        assert_eq!(docker.image, "codesync-runner:latest");
        assert_eq!(docker.read_only_binds, ["/usr", "/etc/alternatives"]);
        assert_eq!(config.execution.limits.wall_time, Duration::from_secs(5));
        assert_eq!(config.execution.limits.memory_bytes, 256 * 1024 * 1024);
        assert_eq!((config.execution.admission.concurrent_runs, config.execution.admission.queued_runs), (3, 12));
        assert!(config.describe().contains("docker_socket = \"unix:///run/podman/podman.sock\""));

        let config = Config::from_sources(
            None,
            env(&[("CODESYNC_SANDBOX", "kubernetes"), ("CODESYNC_KUBERNETES_API_URL", "https://10.0.0.1:6443/")]),
        )
        .unwrap();
        let BackendConfig::Kubernetes(kubernetes) = &config.execution.backend else { panic!() };
        assert_eq!(kubernetes.api_url.as_deref(), Some("https://10.0.0.1:6443"));
        assert_eq!(kubernetes.namespace, "codesync-runs");
        let refused = Config::from_sources(None, env(&[("CODESYNC_EXECUTION_TIME_LIMIT_SECS", "0")]));
        assert!(refused.is_err(), "a zero time limit is refused");
    }

    #[test]
    fn defaults_need_no_configuration() {
        let config = Config::from_sources(None, BTreeMap::new()).unwrap();
        assert_eq!(config.http_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(config.grpc_addr.to_string(), "127.0.0.1:50051");
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert_eq!(config.database_url, "sqlite://./data/codesync.db");
        assert_eq!(config.sandbox, SandboxBackend::Local);
        assert!(config.ai.provider.is_none());
        assert_eq!(config.access_token_ttl, Duration::from_secs(900));
        assert_eq!(config.gateway.rate_limit_per_minute, 200);
        assert_eq!(config.endpoints["rooms"], ["http://127.0.0.1:50051"]);
        assert_eq!(config.advertise_addr, "127.0.0.1:50051");
        assert_eq!(config.calls.default_timeout, Duration::from_secs(10));
        assert_eq!(config.jwt_signing_key_file, PathBuf::from("./data/secrets/jwt-signing-key"));
    }

    #[test]
    fn the_environment_wins_over_the_file() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("codesync.toml");
        std::fs::write(
            &path,
            "http_addr = \"0.0.0.0:9000\"\ngrpc_addr = \"0.0.0.0:9001\"\nrate_limit_per_minute = 50\n",
        )
        .unwrap();
        let config = Config::from_sources(Some(&path), env(&[("CODESYNC_HTTP_ADDR", "127.0.0.1:7000")])).unwrap();
        assert_eq!(config.http_addr.to_string(), "127.0.0.1:7000");
        assert_eq!(config.grpc_addr.to_string(), "0.0.0.0:9001");
        assert_eq!(config.gateway.rate_limit_per_minute, 50);
        assert_eq!(
            config.endpoints["auth"],
            ["http://127.0.0.1:9001"],
            "a wildcard bind address is reached on loopback"
        );
    }

    #[test]
    fn bad_values_say_where_and_what() {
        let error = Config::from_sources(None, env(&[("CODESYNC_HTTP_ADDR", "localhost")])).unwrap_err().to_string();
        assert!(error.contains("CODESYNC_HTTP_ADDR") && error.contains("socket address"), "{error}");
        let error = Config::from_sources(None, env(&[("CODESYNC_SANDBOX", "vm")])).unwrap_err().to_string();
        assert!(error.contains("local, docker or kubernetes"), "{error}");
        let error = Config::from_sources(None, env(&[("CODESYNC_DATABASE_URL", "mysql://x")])).unwrap_err().to_string();
        assert!(error.contains("postgres"), "{error}");
        let error =
            Config::from_sources(None, env(&[("CODESYNC_RATE_LIMIT_PER_MINUTE", "0")])).unwrap_err().to_string();
        assert!(error.contains("positive"), "{error}");
        let error =
            Config::from_sources(None, env(&[("CODESYNC_ROOMS_ENDPOINT", "rooms:50051")])).unwrap_err().to_string();
        assert!(error.contains("http://"), "{error}");
        let error =
            Config::from_sources(None, env(&[("CODESYNC_ROOMS_ENDPOINT", "http://a:1, b:2")])).unwrap_err().to_string();
        assert!(error.contains("comma-separated"), "every listed endpoint is checked: {error}");
        let config =
            Config::from_sources(None, env(&[("CODESYNC_DOCUMENTS_ENDPOINT", " http://a:1 ,http://b:2/,")])).unwrap();
        assert_eq!(config.endpoints["documents"], ["http://a:1", "http://b:2"]);
    }

    #[test]
    fn unknown_keys_in_the_file_are_errors_and_in_the_environment_warnings() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("codesync.toml");
        std::fs::write(&path, "http_adr = \"127.0.0.1:1\"\n").unwrap();
        let error = Config::from_sources(Some(&path), BTreeMap::new()).unwrap_err().to_string();
        assert!(error.contains("unknown key 'http_adr'"), "{error}");
        let config = Config::from_sources(None, env(&[("CODESYNC_HTTP_ADR", "x"), ("CODESYNC_LOG", "debug")])).unwrap();
        assert_eq!(config.unknown_env_vars, vec!["CODESYNC_HTTP_ADR".to_string()]);
    }

    #[test]
    fn the_configuration_docs_list_every_key() {
        let docs = include_str!("../../docs/configuration.md");
        for (key, _) in KEYS {
            assert!(docs.contains(&format!("| {} |", env_name(key))), "docs/configuration.md lacks {}", env_name(key));
        }
    }

    #[test]
    fn secrets_are_redacted_in_descriptions() {
        let config = Config::from_sources(
            None,
            env(&[
                ("CODESYNC_DATABASE_URL", "postgres://app:hunter2@db/codesync"),
                ("CODESYNC_AI_API_KEY", "sk-secret"),
            ]),
        )
        .unwrap();
        let description = config.describe();
        assert!(!description.contains("hunter2") && !description.contains("sk-secret"), "{description}");
        assert!(!format!("{config:?}").contains("sk-secret"));
    }
}
