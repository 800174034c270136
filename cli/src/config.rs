//! The configuration of a `codesync` process, parsed once into typed structs:
//! environment variables (`CODESYNC_<KEY>`) over an optional TOML file (`<key>
//! = value`) over defaults. Every key is declared once, in [`keys`]: its name (the
//! same in both places), what it does, its default and whether it is secret. That
//! declaration drives the parsing (a bad value is reported with where it came from and
//! what was expected), `codesync config`, `codesync config --keys` and the table of
//! docs/configuration.md, which a test keeps equal to [`reference_table`].

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use codesync_assistant::AssistantConfig;
use codesync_assistant::provider::{ProviderConfig, ProviderKind};
use codesync_auth::AuthConfig;
use codesync_common::budget::{ExpensiveLimits, InflightLimits};
use codesync_common::grpc::admission::AdmissionLimits;
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

/// A key's default, as docs/configuration.md and `codesync config --keys` give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    /// What parsing gives with nothing set, shown as it is.
    Fixed,
    /// Worked out at start (from the CPUs, the data directory, the host's name) or absent:
    /// described.
    Described(&'static str),
}

/// How `codesync config` shows a key's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    Plain,
    /// Never shown: `<redacted>` when set.
    Secret,
    /// A URL whose credentials are hidden.
    UrlWithCredentials,
}

/// One configuration key.
#[derive(Debug)]
pub struct Key {
    /// The TOML key; `CODESYNC_<NAME>` in the environment.
    pub name: &'static str,
    pub default: DefaultValue,
    pub shown: Shown,
    /// What the key does (Markdown, one paragraph).
    pub meaning: &'static str,
}

impl Key {
    pub fn env_name(&self) -> String {
        env_name(self.name)
    }
}

macro_rules! declare_keys {
    ($($id:ident = $name:literal, $default:expr, $shown:ident, $meaning:expr;)*) => {
        /// Every key, once. The order is that of `codesync config` and of the docs.
        pub mod keys {
            use super::{DefaultValue::*, Key, Shown::*};
            $(pub const $id: Key = Key { name: $name, default: $default, shown: $shown, meaning: $meaning };)*
            pub const ALL: &[Key] = &[$($id),*];
        }
    };
}

declare_keys! {
    DATA_DIR = "data_dir", Fixed, Plain,
        "where the embedded database, keys and work files live";
    HTTP_ADDR = "http_addr", Fixed, Plain,
        "the gateway's address (web app, REST, WebSockets)";
    GRPC_ADDR = "grpc_addr", Fixed, Plain,
        "the gRPC address of the services in this process";
    METRICS_ADDR = "metrics_addr", Described("none: `/metrics` on the gateway's address"), Plain,
        "serve `/metrics` on this address (for Prometheus on a private network): in any process, with the figures of the gateway and the services it runs; the gateway's `CODESYNC_HTTP_ADDR` then serves none";
    DATABASE_URL = "database_url", Described("`sqlite://<data_dir>/codesync.db`"), UrlWithCredentials,
        "`sqlite://...` or `postgres://...`";
    REDIS_URL = "redis_url", Described("none (in-process)"), UrlWithCredentials,
        "Redis (`redis://host:port[/db]`) for what replicas share: the REST, login, registration, run, assistant and chat limits, and presence, typing and chat across presence replicas. Redis that cannot be reached is never waited for: each process then limits alone and presence shows each replica's own sessions (docs/operations.md)";
    REDIS_KEY_PREFIX = "redis_key_prefix", Fixed, Plain,
        "the prefix of every Redis key and channel, so that installations or tests can share one Redis";
    KAFKA_BROKERS = "kafka_brokers", Described("none (in-process bus)"), Plain,
        "Kafka bootstrap servers for the event bus (`host:port,...`); the topics are created if missing; start-up fails if the brokers do not answer";
    EVENT_QUEUE = "event_queue", Fixed, Plain,
        "events one queue of this process holds: published events waiting to be stored in the outbox (with Kafka), and each consumer group's (without). When one is full, because its consumer or the database is behind, activity and analytics events are dropped (counted in `codesync_events_dropped_total`) and durable ones make their producer wait up to 10 s, then refuse its action with 503";
    SANDBOX = "sandbox", Fixed, Plain,
        "`local`, `docker` or `kubernetes` (see \"Code execution backends\" below); a backend that cannot be set up leaves the rest running and runs answer 503 with the reason";
    SANDBOX_RUNS_DIR = "sandbox_runs_dir", Described("`$TMPDIR/codesync-runs`"), Plain,
        "`local` and `docker`: where runs' work directories are made; the local sandbox's uid (65534) must be able to traverse every ancestor";
    DOCKER_SOCKET = "docker_socket", Fixed, Plain,
        "`docker`: the Docker Engine API socket (podman's compatible socket works)";
    DOCKER_IMAGE = "docker_image", Fixed, Plain,
        "`docker`: the image runs start from; it must hold the runtimes at the paths of `services/execution/languages.toml`";
    DOCKER_RUNTIME = "docker_runtime", Described("the engine's default"), Plain,
        "`docker`: the OCI runtime to ask for (`runc`)";
    DOCKER_READ_ONLY_BINDS = "docker_read_only_binds", Described("none"), Plain,
        "`docker`: host paths bound read-only into every container, comma-separated (`/usr` lends the host's runtimes to a skeleton image)";
    KUBERNETES_API_URL = "kubernetes_api_url", Described("the in-cluster service account, else kubeconfig"), Plain,
        "`kubernetes`: the API server";
    KUBERNETES_NAMESPACE = "kubernetes_namespace", Fixed, Plain,
        "`kubernetes`: the namespace of the runs' Jobs and ConfigMaps (the service account needs create, get, list, delete on jobs and configmaps, get, list and delete on pods, and get on pods/log there)";
    KUBERNETES_IMAGE = "kubernetes_image", Fixed, Plain,
        "`kubernetes`: the image runs start from, as for docker";
    EXECUTION_TIME_LIMIT_SECS = "execution_time_limit_secs", Fixed, Plain,
        "wall time of a run, and of its compile phase at most";
    EXECUTION_MEMORY_LIMIT_MB = "execution_memory_limit_mb", Fixed, Plain,
        "memory of a run unless its language needs more (Java: 256)";
    EXECUTION_OUTPUT_LIMIT_BYTES = "execution_output_limit_bytes", Fixed, Plain,
        "stdout and stderr of a run, each; past it the run is stopped with `output_limit`";
    EXECUTION_CONCURRENCY = "execution_concurrency", Described("the number of CPUs, at least 2"), Plain,
        "runs at once";
    EXECUTION_QUEUE = "execution_queue", Described("4 × concurrency"), Plain,
        "runs waiting for a slot; one more is refused with 429, and one that waits 20 s with 503";
    EXECUTION_RUNS_PER_MINUTE = "execution_runs_per_minute", Fixed, Plain,
        "runs each user may start per minute (429 past it)";
    EXECUTION_RUNS_PER_USER = "execution_runs_per_user", Described("half of `execution_concurrency`, at least 1"), Plain,
        "runs one user may have going at once: one person's endless loops hold at most this many slots, and everyone else's runs take the others";
    EXECUTION_QUEUE_PER_USER = "execution_queue_per_user", Fixed, Plain,
        "runs one user may have waiting for a slot; past it, 429 saying how many runs the user has going and waiting. Waiting runs start in order, each as soon as a slot is free and its user is under the cap";
    AI_PROVIDER = "ai_provider", Described("none (assistant off)"), Plain,
        "`openai` (and OpenAI-compatible), `anthropic`, `gemini`";
    AI_BASE_URL = "ai_base_url", Described("`https://api.openai.com/v1`, `https://api.anthropic.com`, `https://generativelanguage.googleapis.com`"), Plain,
        "the provider's endpoint: for `openai` the part before `/chat/completions` (`http://127.0.0.1:11434/v1` for Ollama, vLLM's or llama.cpp's server likewise)";
    AI_API_KEY = "ai_api_key", Described("none"), Secret,
        "the provider's key; sent only to the provider, never to browsers or the logs (`codesync config` shows `<redacted>`)";
    AI_MODEL = "ai_model", Described("`gpt-4o-mini`, `claude-3-5-haiku-latest` or `gemini-2.0-flash`"), Plain,
        "the provider's model";
    AI_REQUESTS_PER_MINUTE = "ai_requests_per_minute", Fixed, Plain,
        "assistant requests each user may make per minute (429 past it)";
    AI_STREAMS_PER_USER = "ai_streams_per_user", Fixed, Plain,
        "answers one user may have streaming at once (429 past it)";
    AI_REQUEST_TIMEOUT_SECS = "ai_request_timeout_secs", Fixed, Plain,
        "the longest one answer may take (then `ai_timeout`); the provider may also go at most 30 s without sending anything";
    JWT_SIGNING_KEY_FILE = "jwt_signing_key_file", Described("`<data_dir>/secrets/jwt-signing-key`"), Plain,
        "the access-token signing key (Ed25519; its first 32 bytes, base64url, are the seed), created with mode 0600 if missing. Only processes that run the auth service read it: no other process can mint a session";
    JWT_PUBLIC_KEY_FILE = "jwt_public_key_file", Described("`<data_dir>/secrets/jwt-public-key`"), Plain,
        "the key every process verifies access tokens with, written (0644) by the auth service beside its signing key; a process that finds no file asks the auth service (`GetTokenKeys`) at start";
    SERVICE_KEY_FILE = "service_key_file", Described("`<data_dir>/secrets/service-key`"), Plain,
        "the key of the credentials CodeSync processes present to each other (only a credential from the gateway makes a service believe a client's address; only one from a service lets it act for a user): every process of an installation needs the same file, no client ever sees it; created with mode 0600 if missing";
    LOG_FORMAT = "log_format", Fixed, Plain,
        "`text` or `json`";
    MIGRATE_ON_START = "migrate_on_start", Fixed, Plain,
        "apply migrations when services start";
    RATE_LIMIT_PER_MINUTE = "rate_limit_per_minute", Fixed, Plain,
        "REST requests per minute per client IP";
    MAX_BODY_BYTES = "max_body_bytes", Fixed, Plain,
        "largest REST request body";
    WS_IDLE_TIMEOUT_SECS = "ws_idle_timeout_secs", Fixed, Plain,
        "a WebSocket client (`/ws/files`, `/ws/rooms`) that sends nothing for this long is dropped; the server pings it at half the time, and browsers answer pings by themselves";
    HTTP_HEADER_TIMEOUT_SECS = "http_header_timeout_secs", Fixed, Plain,
        "a request's headers must arrive within this, and a keep-alive connection idle this long is closed: a client that sends its headers slowly (slowloris) holds nothing for long";
    MAX_CONNECTIONS_PER_ADDRESS = "max_connections_per_address", Fixed, Plain,
        "connections one client address may hold open at once, the gateway's and the gRPC port's together (further ones are closed at once); the trusted proxies (`CODESYNC_TRUSTED_PROXIES`) are exempt at the gateway. See also `CODESYNC_MAX_CONNECTIONS`";
    MAX_CONNECTIONS = "max_connections", Described("the process's open-file limit less 256"), Plain,
        "connections one process holds open, every listener together (the gateway's HTTP port and the gRPC port). At the ceiling a new connection is still accepted and the one doing least is closed to make room: first one whose request's headers are unfinished, then one idle between requests, then one whose request carries no valid access token, oldest first; a signed-in user's request, a WebSocket, an event stream and a CodeSync process's connection are never closed for this. So the health probes and new users are always answered";
    MAX_STREAMS_PER_USER = "max_streams_per_user", Fixed, Plain,
        "WebSockets (`/ws/files`, `/ws/rooms`) and notification streams one user may hold open at once at one gateway, and likewise streaming gRPC calls (`Collaborate`, `JoinRoom`, `Subscribe`, `Ask`, `ExecuteStream`) a direct caller may hold open at one service process; one more is refused with 429 `too_many_connections`. WebSocket upgrades also count against `CODESYNC_RATE_LIMIT_PER_MINUTE`";
    INFLIGHT_BYTES = "inflight_bytes", Fixed, Plain,
        "bytes of requests one process holds in flight at once, all callers together: REST bodies being read, gRPC messages arriving (and unary ones until answered), uploaded archives being expanded. Past it a request is refused with 429 `busy` and `Retry-After`, before any work starts; an editor's WebSocket or gRPC stream waits instead (its reading pauses)";
    INFLIGHT_BYTES_PER_CALLER = "inflight_bytes_per_caller", Fixed, Plain,
        "the share of `CODESYNC_INFLIGHT_BYTES` one signed-in user (or one CodeSync process) may hold, so that one caller cannot spend it for everyone; a single request larger than this is refused with 413";
    ANONYMOUS_INFLIGHT_BYTES_PER_ADDRESS = "anonymous_inflight_bytes_per_address", Fixed, Plain,
        "the share of `CODESYNC_INFLIGHT_BYTES` one address may hold with requests that carry no valid access token";
    ANONYMOUS_INFLIGHT_BYTES = "anonymous_inflight_bytes", Fixed, Plain,
        "bytes of requests without a valid access token the process holds at once, every address together";
    ANONYMOUS_REQUEST_BYTES = "anonymous_request_bytes", Fixed, Plain,
        "the largest REST request body or gRPC message a caller without a valid access token (or service credential) may send: signing up or in needs no more. REST: refused from its declared length with 413 before it is read; gRPC: from the message's length prefix (413 `message_too_large`). Signed-in callers get what each route or RPC needs: REST `CODESYNC_MAX_BODY_BYTES` (an archive 16 MiB); gRPC 4 MiB, a project import 72 MiB, a document's update `CODESYNC_DOCUMENTS_MAX_MESSAGE_BYTES`";
    EXPENSIVE_REQUESTS_PER_CALLER = "expensive_requests_per_caller", Fixed, Plain,
        "searches across a room, project imports and archive downloads or uploads one user (or, signed out, one address) may have going at once in one process; one more is refused with 429 `too_many_concurrent_requests` at once";
    EXPENSIVE_REQUESTS = "expensive_requests", Described("half the number of CPUs, at least 1"), Plain,
        "searches and imports (rooms), and archives (gateway), one process runs at once, each kind on slots of its own; a request under its caller's share waits up to 5 s for a turn, then gets 429 `too_many_concurrent_requests`. The other half of the CPUs keeps answering everyone else";
    OUTBOUND_BYTES = "outbound_bytes", Fixed, Plain,
        "bytes one process holds queued toward slow readers, every WebSocket and documents connection together; a reader whose queue cannot grow within it is cut off as too slow (WebSocket close 1013), the others go on";
    OUTBOUND_BYTES_PER_USER = "outbound_bytes_per_user", Fixed, Plain,
        "the share of `CODESYNC_OUTBOUND_BYTES` the sockets of one user may hold together (besides each socket's own `CODESYNC_DOCUMENTS_CONNECTION_QUEUE_BYTES`)";
    GRPC_CALLS_PER_CONNECTION = "grpc_calls_per_connection", Fixed, Plain,
        "gRPC calls one connection may have open at once unless it comes from a CodeSync process; one more is refused with 429 `too_many_streams`";
    GRPC_CALLS_PER_ADDRESS = "grpc_calls_per_address", Fixed, Plain,
        "gRPC calls one address may have open at once, all its connections together, unless they come from CodeSync processes (429 `too_many_streams`)";
    WEB_DIR = "web_dir", Described("none (embedded)"), Plain,
        "serve the web app from this directory (a built `frontend/dist`, with `index.html`) instead of the copy embedded in the binary; checked at start";
    TRUST_FORWARDED_FOR = "trust_forwarded_for", Fixed, Plain,
        "the gateway's direct peer is a proxy (one that appends to `X-Forwarded-For`): the client's address is the entry it appended, the rightmost, never the leftmost, which the client writes itself";
    TRUSTED_PROXIES = "trusted_proxies", Described("none"), Plain,
        "addresses or networks of the proxies in front of the gateway, comma-separated (`10.0.0.0/8,fd00::/8`): when the peer is one, `X-Forwarded-For` is read from the right past every trusted proxy, and the first address that is none is the client's";
    ACCESS_TOKEN_TTL_SECS = "access_token_ttl_secs", Fixed, Plain,
        "access-token lifetime";
    REFRESH_TOKEN_TTL_SECS = "refresh_token_ttl_secs", Fixed, Plain,
        "refresh-token lifetime";
    LOGIN_ATTEMPTS_PER_IP_PER_MINUTE = "login_attempts_per_ip_per_minute", Fixed, Plain,
        "login attempts per client IP per minute";
    LOGIN_FAILURES_PER_ACCOUNT = "login_failures_per_account", Fixed, Plain,
        "failed logins of one account from one client address per 15 minutes before that address must wait (the account's owner elsewhere is never locked out)";
    REGISTRATIONS_PER_IP_PER_HOUR = "registrations_per_ip_per_hour", Fixed, Plain,
        "accounts one client address may register per hour";
    DOCUMENTS_MEMORY_BUDGET_BYTES = "documents_memory_budget_bytes", Fixed, Plain,
        "estimated memory of loaded documents above which idle ones are unloaded, least recently used first";
    DOCUMENTS_MAX_MESSAGE_BYTES = "documents_max_message_bytes", Fixed, Plain,
        "largest WebSocket message on `/ws/files` (larger: the connection is closed with 1009)";
    DOCUMENTS_MAX_DOCUMENT_BYTES = "documents_max_document_bytes", Fixed, Plain,
        "largest stored size of one document; updates beyond it are refused";
    DOCUMENTS_SNAPSHOT_EVERY_UPDATES = "documents_snapshot_every_updates", Fixed, Plain,
        "log entries before a document's log is compacted into a snapshot";
    DOCUMENTS_IDLE_UNLOAD_SECS = "documents_idle_unload_secs", Fixed, Plain,
        "how long a document without connections stays in memory";
    DOCUMENTS_CONNECTION_QUEUE = "documents_connection_queue", Fixed, Plain,
        "messages queued for one WebSocket before it is closed as too slow (1013)";
    DOCUMENTS_CONNECTION_QUEUE_BYTES = "documents_connection_queue_bytes", Fixed, Plain,
        "bytes queued for one WebSocket before it is closed as too slow (1013); the gateway holds at most as much again per socket";
    DOCUMENTS_ACTIVITY_WINDOW_MS = "documents_activity_window_ms", Fixed, Plain,
        "a file's edits are announced on `collaboration-events` (editors, number of updates) at most this often; history's checkpoints and analytics' edit counts follow them";
    HISTORY_CHECKPOINT_IDLE_SECS = "history_checkpoint_idle_secs", Fixed, Plain,
        "a file edited and then left alone this long gets an automatic version (a checkpoint), if its content changed";
    HISTORY_CHECKPOINT_INTERVAL_SECS = "history_checkpoint_interval_secs", Fixed, Plain,
        "a file edited without pause gets a checkpoint at least this often";
    DOCUMENTS_LEASE_TTL_MS = "documents_lease_ttl_ms", Fixed, Plain,
        "PostgreSQL with several documents replicas: how long a replica's claim on its files outlives its last renewal (renewed every quarter of it). A replica that dies is taken over after this; one that was paused or cut off past it closes its files and rejoins as a new node";
    AUTH_ENDPOINT = "auth_endpoint", Described("`http://<grpc_addr>`"), Plain,
        "gRPC endpoint of the auth service; several replicas as a comma-separated list (`http://a:50051,http://b:50051`): calls go round robin, and a replica that cannot be reached is skipped for a second";
    ROOMS_ENDPOINT = "rooms_endpoint", Described("`http://<grpc_addr>`"), Plain,
        "likewise, rooms";
    DOCUMENTS_ENDPOINT = "documents_endpoint", Described("`http://<grpc_addr>`"), Plain,
        "likewise, documents";
    PRESENCE_ENDPOINT = "presence_endpoint", Described("`http://<grpc_addr>`"), Plain,
        "likewise, presence";
    HISTORY_ENDPOINT = "history_endpoint", Described("`http://<grpc_addr>`"), Plain,
        "likewise, history";
    EXECUTION_ENDPOINT = "execution_endpoint", Described("`http://<grpc_addr>`"), Plain,
        "likewise, execution";
    ASSISTANT_ENDPOINT = "assistant_endpoint", Described("`http://<grpc_addr>`"), Plain,
        "likewise, assistant";
    NOTIFICATIONS_ENDPOINT = "notifications_endpoint", Described("`http://<grpc_addr>`"), Plain,
        "likewise, notifications";
    ANALYTICS_ENDPOINT = "analytics_endpoint", Described("`http://<grpc_addr>`"), Plain,
        "likewise, analytics";
    ADVERTISE_ADDR = "advertise_addr", Described("`grpc_addr`, with the host's name for a wildcard address"), Plain,
        "`host:port` at which the other replicas reach this process's gRPC server (documents replicas forward a file's clients to its owner there); on Kubernetes, the pod's IP and port";
    CALL_TIMEOUT_MS = "call_timeout_ms", Fixed, Plain,
        "the deadline of a call between services that names none of its own, sent as `grpc-timeout`: the time until the answer (its headers, for a stream). A call past it fails with 504 `deadline_exceeded`";
    SHUTDOWN_GRACE_SECS = "shutdown_grace_secs", Fixed, Plain,
        "on SIGTERM: how long the process may take to hand its work over (documents flushed and handed to other replicas, WebSockets closed with 1012, open requests finished) before it stops anyway";
}

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
    /// Every problem found, when there is more than one: all are told at once, so that one
    /// start-up shows everything to fix.
    #[error("{} problems in the configuration:{}", .0.len(), .0.iter().map(|problem| format!("\n  - {problem}")).collect::<String>())]
    Several(Vec<ConfigError>),
}

impl ConfigError {
    /// `problems` as one error, or `None` without any.
    fn of_all(mut problems: Vec<ConfigError>) -> Option<Self> {
        match problems.len() {
            0 => None,
            1 => problems.pop(),
            _ => Some(Self::Several(problems)),
        }
    }
}

/// The whole configuration of one process.
#[derive(Debug, Clone)]
pub struct Config {
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    /// `/metrics` on an address of its own (and not on `http_addr`).
    pub metrics_addr: Option<SocketAddr>,
    pub database_url: String,
    pub redis_url: Option<String>,
    pub redis_key_prefix: String,
    pub kafka_brokers: Option<String>,
    /// Events one queue holds (the outbox's writer, each in-process consumer group).
    pub event_queue: usize,
    /// The assistant service's settings, its provider (if any) resolved.
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
    /// Bytes of requests in flight: the process's budget and each caller's share.
    pub inflight: InflightLimits,
    /// What a gRPC port admits from callers that are not CodeSync processes.
    pub admission: AdmissionLimits,
    /// Bytes queued toward slow readers: the process's budget and each user's share.
    pub outbound: InflightLimits,
    /// Connections the process holds open, every listener together.
    pub max_connections: usize,
    /// Expensive requests at once (searches, imports, archives), per caller and in all.
    pub expensive: ExpensiveLimits,
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
    /// Each key's effective value as `codesync config` shows it (secrets hidden).
    effective: BTreeMap<&'static str, toml::Value>,
}

/// How a parsed value reads in `codesync config`.
trait Showable {
    fn show(&self) -> toml::Value;
}

impl Showable for String {
    fn show(&self) -> toml::Value {
        toml::Value::String(self.clone())
    }
}

impl Showable for &'static str {
    fn show(&self) -> toml::Value {
        toml::Value::String((*self).to_string())
    }
}

impl Showable for PathBuf {
    fn show(&self) -> toml::Value {
        toml::Value::String(self.display().to_string())
    }
}

impl Showable for SocketAddr {
    fn show(&self) -> toml::Value {
        toml::Value::String(self.to_string())
    }
}

impl Showable for bool {
    fn show(&self) -> toml::Value {
        toml::Value::Boolean(*self)
    }
}

impl Showable for Vec<String> {
    fn show(&self) -> toml::Value {
        toml::Value::String(self.join(","))
    }
}

macro_rules! showable_numbers {
    ($($number:ty),*) => {$(
        impl Showable for $number {
            fn show(&self) -> toml::Value {
                i64::try_from(*self).map_or_else(|_| toml::Value::String(self.to_string()), toml::Value::Integer)
            }
        }
    )*};
}
showable_numbers!(u32, u64, usize);

impl<T: Showable> Showable for Option<T> {
    fn show(&self) -> toml::Value {
        self.as_ref().map_or_else(|| toml::Value::String(String::new()), Showable::show)
    }
}

/// What a value must be, and how to read it.
struct Parser<T> {
    expected: &'static str,
    parse: fn(&str) -> Option<T>,
}

fn socket_address(example: &'static str) -> Parser<SocketAddr> {
    Parser { expected: example, parse: |text| text.parse().ok() }
}

fn positive<T: FromStr + PartialOrd + Default>() -> Parser<T> {
    Parser {
        expected: "a positive whole number",
        parse: |text| text.parse().ok().filter(|value| *value > T::default()),
    }
}

const BOOLEAN: Parser<bool> = Parser {
    expected: "a boolean (true or false)",
    parse: |text| match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    },
};

const TEXT: Parser<String> = Parser { expected: "text", parse: |text| Some(text.to_string()) };

const HTTP_URL: Parser<String> = Parser { expected: "an http:// or https:// URL", parse: parse_http_url };

const HTTP_URLS: Parser<Vec<String>> = Parser {
    expected: "http://host:port URLs, comma-separated",
    parse: |text| {
        let urls: Option<Vec<String>> =
            text.split(',').map(str::trim).filter(|url| !url.is_empty()).map(parse_http_url).collect();
        urls.filter(|urls| !urls.is_empty())
    },
};

const LIST: Parser<Vec<String>> = Parser {
    expected: "a comma-separated list",
    parse: |text| Some(text.split(',').map(str::trim).filter(|item| !item.is_empty()).map(String::from).collect()),
};

/// The raw values, where each came from, and each key's effective value once read.
struct Sources {
    file_path: Option<PathBuf>,
    file: BTreeMap<String, toml::Value>,
    env: BTreeMap<String, String>,
    effective: RefCell<BTreeMap<&'static str, toml::Value>>,
    /// What was wrong, in the order the keys were read: a key with a bad value takes its
    /// default meanwhile, so that parsing goes on and finds the rest.
    problems: RefCell<Vec<ConfigError>>,
}

impl Sources {
    /// The value of `key` as text and where it came from: the environment wins over the file.
    fn raw(&self, key: &Key) -> Option<(String, String)> {
        let env_name = key.env_name();
        if let Some(value) = self.env.get(&env_name) {
            return Some((value.clone(), env_name));
        }
        let value = self.file.get(key.name)?;
        let origin = format!(
            "'{}' in {}",
            key.name,
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

    /// `key`'s value, or `None` where it is unset (or empty, or bad: a problem then);
    /// remembered as it shows.
    fn optional<T: Showable>(&self, key: &'static Key, parser: Parser<T>) -> Option<T> {
        let value = match self.raw(key) {
            Some((text, _)) if text.trim().is_empty() => None,
            Some((text, origin)) => {
                let parsed = (parser.parse)(text.trim());
                if parsed.is_none() {
                    self.problem(ConfigError::InvalidValue {
                        origin,
                        value: text.chars().take(200).collect(),
                        expected: parser.expected.to_string(),
                    });
                }
                parsed
            }
            None => None,
        };
        self.remember(key, value.show());
        value
    }

    /// `key`'s value, or `default` where it is unset (or bad: a problem then); remembered as it
    /// shows.
    fn value<T: Showable>(&self, key: &'static Key, parser: Parser<T>, default: T) -> T {
        let value = self.optional(key, parser).unwrap_or(default);
        self.remember(key, value.show());
        value
    }

    fn problem(&self, problem: ConfigError) {
        self.problems.borrow_mut().push(problem);
    }

    /// One of `choices` by name, or `default`.
    fn choice<T: Copy>(
        &self,
        key: &'static Key,
        choices: &[(&'static str, T)],
        default: Option<&'static str>,
    ) -> Option<T> {
        let name = match self.raw(key) {
            Some((text, origin)) if !text.trim().is_empty() => {
                let found = choices.iter().find(|(name, _)| *name == text.trim());
                let Some((name, _)) = found else {
                    let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
                    let expected = match names.split_last() {
                        Some((last, [])) => (*last).to_string(),
                        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                        None => String::new(),
                    };
                    self.problem(ConfigError::InvalidValue {
                        origin,
                        value: text.chars().take(200).collect(),
                        expected,
                    });
                    return None;
                };
                Some(*name)
            }
            _ => default,
        };
        self.remember(key, name.unwrap_or_default().show());
        name.and_then(|name| choices.iter().find(|(known, _)| *known == name).map(|(_, value)| *value))
    }

    fn remember(&self, key: &'static Key, shown: toml::Value) {
        let shown = match (key.shown, shown) {
            (Shown::Secret, toml::Value::String(text)) if !text.is_empty() => toml::Value::String("<redacted>".into()),
            (Shown::UrlWithCredentials, toml::Value::String(url)) => {
                toml::Value::String(codesync_common::redact_url_credentials(&url))
            }
            (_, shown) => shown,
        };
        self.effective.borrow_mut().insert(key.name, shown);
    }
}

fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())
}

fn seconds(value: u64) -> Duration {
    Duration::from_secs(value)
}

fn millis(value: u64) -> Duration {
    Duration::from_millis(value)
}

fn whole_secs(duration: Duration) -> u64 {
    duration.as_secs()
}

fn whole_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Config {
    /// Reads the configuration from `file` (if given) and this process's environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars().filter(|(name, _)| name.starts_with(ENV_PREFIX)).collect();
        Self::from_sources(file, env)
    }

    fn from_sources(file_path: Option<&Path>, env: BTreeMap<String, String>) -> Result<Self, ConfigError> {
        use keys::*;
        let (file, unknown_keys) = match file_path {
            Some(path) => read_toml(path)?,
            None => (BTreeMap::new(), Vec::new()),
        };
        let known: BTreeSet<String> = ALL.iter().map(|key| key.name.to_string()).collect();
        let unknown_env_vars = env
            .keys()
            .filter(|name| !OTHER_ENV_VARS.contains(&name.as_str()))
            .filter(|name| !known.contains(&name[ENV_PREFIX.len()..].to_ascii_lowercase()))
            .cloned()
            .collect();
        let sources = Sources {
            file_path: file_path.map(Path::to_path_buf),
            file,
            env,
            effective: RefCell::default(),
            problems: RefCell::new(unknown_keys),
        };

        let path = Parser::<PathBuf> { expected: "a path", parse: |text| Some(text.into()) };
        let data_dir = sources.value(&DATA_DIR, Parser { ..path }, PathBuf::from("./data"));
        let http_addr = sources.value(
            &HTTP_ADDR,
            socket_address("a socket address such as 127.0.0.1:8080"),
            SocketAddr::from(([127, 0, 0, 1], 8080)),
        );
        let grpc_addr = sources.value(
            &GRPC_ADDR,
            socket_address("a socket address such as 127.0.0.1:50051"),
            SocketAddr::from(([127, 0, 0, 1], 50051)),
        );
        let metrics_addr = sources.optional(&METRICS_ADDR, socket_address("a socket address such as 127.0.0.1:9090"));
        let database_url = sources.value(
            &DATABASE_URL,
            Parser {
                expected: "a sqlite://... or postgres://... URL",
                parse: |text| {
                    let supported =
                        ["sqlite:", "postgres:", "postgresql:"].iter().any(|scheme| text.starts_with(scheme));
                    supported.then(|| text.to_string())
                },
            },
            format!("sqlite://{}", data_dir.join("codesync.db").display()),
        );
        let redis_url = sources.optional(&REDIS_URL, TEXT);
        let redis_key_prefix = sources.value(&REDIS_KEY_PREFIX, TEXT, "codesync:".to_string());
        let kafka_brokers = sources.optional(&KAFKA_BROKERS, TEXT);
        let event_queue = sources.value(&EVENT_QUEUE, positive(), codesync_common::events::EVENT_QUEUE);
        #[derive(Clone, Copy)]
        enum Backend {
            Local,
            Docker,
            Kubernetes,
        }
        let backends = [("local", Backend::Local), ("docker", Backend::Docker), ("kubernetes", Backend::Kubernetes)];
        let sandbox = sources.choice(&SANDBOX, &backends, Some("local")).unwrap_or(Backend::Local);
        let providers: Vec<(&'static str, ProviderKind)> =
            ProviderKind::ALL.iter().map(|kind| (kind.name(), *kind)).collect();
        let provider = sources.choice(&AI_PROVIDER, &providers, None);
        let ai_base_url = sources.optional(&AI_BASE_URL, HTTP_URL);
        let ai_api_key = sources.optional(&AI_API_KEY, TEXT);
        let ai_model = sources.optional(&AI_MODEL, TEXT);
        let secrets = data_dir.join("secrets");
        let jwt_signing_key_file =
            sources.value(&JWT_SIGNING_KEY_FILE, Parser { ..path }, secrets.join("jwt-signing-key"));
        let jwt_public_key_file =
            sources.value(&JWT_PUBLIC_KEY_FILE, Parser { ..path }, secrets.join("jwt-public-key"));
        let service_key_file = sources.value(&SERVICE_KEY_FILE, Parser { ..path }, secrets.join("service-key"));
        let log_format = sources
            .choice(&LOG_FORMAT, &[("text", LogFormat::Text), ("json", LogFormat::Json)], Some("text"))
            .unwrap_or(LogFormat::Text);
        let migrate_on_start = sources.value(&MIGRATE_ON_START, BOOLEAN, true);

        let auth_defaults = AuthConfig::default();
        let auth = AuthConfig {
            refresh_token_ttl: seconds(sources.value(
                &REFRESH_TOKEN_TTL_SECS,
                positive(),
                whole_secs(auth_defaults.refresh_token_ttl),
            )),
            login_attempts_per_ip_per_minute: sources.value(
                &LOGIN_ATTEMPTS_PER_IP_PER_MINUTE,
                positive(),
                auth_defaults.login_attempts_per_ip_per_minute,
            ),
            login_failures_per_account: sources.value(
                &LOGIN_FAILURES_PER_ACCOUNT,
                positive(),
                auth_defaults.login_failures_per_account,
            ),
            registrations_per_ip_per_hour: sources.value(
                &REGISTRATIONS_PER_IP_PER_HOUR,
                positive(),
                auth_defaults.registrations_per_ip_per_hour,
            ),
        };
        let access_token_ttl = seconds(sources.value(&ACCESS_TOKEN_TTL_SECS, positive(), 15 * 60));

        let documents_defaults = DocumentsConfig::default();
        let documents = DocumentsConfig {
            memory_budget_bytes: sources.value(
                &DOCUMENTS_MEMORY_BUDGET_BYTES,
                positive(),
                documents_defaults.memory_budget_bytes,
            ),
            max_message_bytes: sources.value(
                &DOCUMENTS_MAX_MESSAGE_BYTES,
                positive(),
                documents_defaults.max_message_bytes,
            ),
            max_document_bytes: sources.value(
                &DOCUMENTS_MAX_DOCUMENT_BYTES,
                positive(),
                documents_defaults.max_document_bytes,
            ),
            snapshot_every_updates: sources.value(
                &DOCUMENTS_SNAPSHOT_EVERY_UPDATES,
                positive(),
                documents_defaults.snapshot_every_updates,
            ),
            idle_unload_after: seconds(sources.value(
                &DOCUMENTS_IDLE_UNLOAD_SECS,
                positive(),
                whole_secs(documents_defaults.idle_unload_after),
            )),
            connection_queue: sources.value(
                &DOCUMENTS_CONNECTION_QUEUE,
                positive(),
                documents_defaults.connection_queue,
            ),
            connection_queue_bytes: sources.value(
                &DOCUMENTS_CONNECTION_QUEUE_BYTES,
                positive(),
                documents_defaults.connection_queue_bytes,
            ),
            activity_window: millis(sources.value(
                &DOCUMENTS_ACTIVITY_WINDOW_MS,
                positive(),
                whole_millis(documents_defaults.activity_window),
            )),
            lease_ttl: millis(sources.value(
                &DOCUMENTS_LEASE_TTL_MS,
                positive(),
                whole_millis(documents_defaults.lease_ttl),
            )),
        };

        let gateway_defaults = GatewayConfig::default();
        let gateway = GatewayConfig {
            rate_limit_per_minute: sources.value(
                &RATE_LIMIT_PER_MINUTE,
                positive(),
                gateway_defaults.rate_limit_per_minute,
            ),
            max_body_bytes: sources.value(&MAX_BODY_BYTES, positive(), gateway_defaults.max_body_bytes),
            proxies: TrustedProxies {
                peer: sources.value(&TRUST_FORWARDED_FOR, BOOLEAN, gateway_defaults.proxies.peer),
                networks: sources
                    .optional(
                        &TRUSTED_PROXIES,
                        Parser {
                            expected: "addresses or networks such as 10.0.0.0/8, comma-separated",
                            parse: |text| {
                                let all_networks = text
                                    .split(',')
                                    .map(str::trim)
                                    .filter(|entry| !entry.is_empty())
                                    .all(|entry| entry.parse::<Network>().is_ok());
                                all_networks.then(|| text.to_string())
                            },
                        },
                    )
                    .map(|text| text.split(',').filter_map(|entry| entry.trim().parse::<Network>().ok()).collect())
                    .unwrap_or_default(),
            },
            // A WebSocket carries what a documents connection may carry.
            ws_max_message_bytes: documents.max_message_bytes,
            ws_queue_bytes: documents.connection_queue_bytes,
            ws_idle_timeout: seconds(sources.value(
                &WS_IDLE_TIMEOUT_SECS,
                positive(),
                whole_secs(gateway_defaults.ws_idle_timeout),
            )),
            header_timeout: seconds(sources.value(
                &HTTP_HEADER_TIMEOUT_SECS,
                positive(),
                whole_secs(gateway_defaults.header_timeout),
            )),
            max_connections_per_address: sources.value(
                &MAX_CONNECTIONS_PER_ADDRESS,
                positive(),
                gateway_defaults.max_connections_per_address,
            ),
            max_streams_per_user: sources.value(
                &MAX_STREAMS_PER_USER,
                positive(),
                gateway_defaults.max_streams_per_user,
            ),
            metrics_on_main_address: metrics_addr.is_none(),
            web_source: sources
                .optional(
                    &WEB_DIR,
                    Parser {
                        expected: "a directory holding a built web app (with index.html)",
                        parse: |text| {
                            let directory = std::fs::canonicalize(text).ok()?;
                            directory.join("index.html").is_file().then_some(directory)
                        },
                    },
                )
                .map_or(WebSource::Embedded, WebSource::Directory),
        };

        let inflight_defaults = InflightLimits::default();
        let inflight = InflightLimits {
            total: sources.value(&INFLIGHT_BYTES, positive(), inflight_defaults.total),
            per_caller: sources.value(&INFLIGHT_BYTES_PER_CALLER, positive(), inflight_defaults.per_caller),
            anonymous_per_address: sources.value(
                &ANONYMOUS_INFLIGHT_BYTES_PER_ADDRESS,
                positive(),
                inflight_defaults.anonymous_per_address,
            ),
            anonymous_total: sources.value(&ANONYMOUS_INFLIGHT_BYTES, positive(), inflight_defaults.anonymous_total),
        };
        let max_connections = sources.value(
            &MAX_CONNECTIONS,
            positive(),
            codesync_common::connections::ConnectionBudget::ceiling_below_open_files(256),
        );
        let expensive_defaults = ExpensiveLimits::default();
        let expensive = ExpensiveLimits {
            per_caller: sources.value(&EXPENSIVE_REQUESTS_PER_CALLER, positive(), expensive_defaults.per_caller),
            total: sources.value(&EXPENSIVE_REQUESTS, positive(), expensive_defaults.total),
        };
        let outbound = InflightLimits {
            total: sources.value(&OUTBOUND_BYTES, positive(), 256 * 1024 * 1024),
            per_caller: sources.value(&OUTBOUND_BYTES_PER_USER, positive(), 64 * 1024 * 1024),
            // Sockets are signed in.
            anonymous_per_address: 0,
            anonymous_total: 0,
        };
        let admission_defaults = AdmissionLimits::default();
        let grpc_admission = AdmissionLimits {
            anonymous_message_bytes: sources.value(
                &ANONYMOUS_REQUEST_BYTES,
                positive(),
                admission_defaults.anonymous_message_bytes,
            ),
            streams_per_connection: sources.value(
                &GRPC_CALLS_PER_CONNECTION,
                positive(),
                admission_defaults.streams_per_connection,
            ),
            streams_per_address: sources.value(
                &GRPC_CALLS_PER_ADDRESS,
                positive(),
                admission_defaults.streams_per_address,
            ),
            // Equal to the WebSockets and event streams a user may hold at one gateway.
            streams_per_user: gateway.max_streams_per_user,
        };

        let history_defaults = HistoryConfig::default();
        let history = HistoryConfig {
            checkpoint_after_idle: seconds(sources.value(
                &HISTORY_CHECKPOINT_IDLE_SECS,
                positive(),
                whole_secs(history_defaults.checkpoint_after_idle),
            )),
            checkpoint_at_most_every: seconds(sources.value(
                &HISTORY_CHECKPOINT_INTERVAL_SECS,
                positive(),
                whole_secs(history_defaults.checkpoint_at_most_every),
            )),
        };

        let assistant_defaults = AssistantConfig::default();
        let assistant = AssistantConfig {
            provider: provider.map(|kind| ProviderConfig::new(kind, ai_base_url, ai_api_key, ai_model)),
            requests_per_user_per_minute: sources.value(
                &AI_REQUESTS_PER_MINUTE,
                positive(),
                assistant_defaults.requests_per_user_per_minute,
            ),
            streams_per_user: sources.value(&AI_STREAMS_PER_USER, positive(), assistant_defaults.streams_per_user),
            request_timeout: seconds(sources.value(
                &AI_REQUEST_TIMEOUT_SECS,
                positive(),
                whole_secs(assistant_defaults.request_timeout),
            )),
            ..assistant_defaults
        };

        let mut execution = ExecutionConfig::default();
        execution.runs_dir = sources.value(&SANDBOX_RUNS_DIR, Parser { ..path }, execution.runs_dir);
        execution.limits.wall_time =
            seconds(sources.value(&EXECUTION_TIME_LIMIT_SECS, positive(), whole_secs(execution.limits.wall_time)));
        execution.limits.memory_bytes =
            sources.value(&EXECUTION_MEMORY_LIMIT_MB, positive(), execution.limits.memory_bytes >> 20) << 20;
        execution.limits.output_bytes =
            sources.value(&EXECUTION_OUTPUT_LIMIT_BYTES, positive(), execution.limits.output_bytes);
        let admission = &mut execution.admission;
        admission.concurrent_runs = sources.value(&EXECUTION_CONCURRENCY, positive(), admission.concurrent_runs);
        // The queue and the share of one user follow the concurrency unless set themselves.
        admission.queued_runs = sources.value(&EXECUTION_QUEUE, positive(), 4 * admission.concurrent_runs);
        admission.runs_per_user_per_minute =
            sources.value(&EXECUTION_RUNS_PER_MINUTE, positive(), admission.runs_per_user_per_minute);
        admission.runs_per_user_at_once =
            sources.value(&EXECUTION_RUNS_PER_USER, positive(), (admission.concurrent_runs / 2).max(1));
        admission.queued_runs_per_user =
            sources.value(&EXECUTION_QUEUE_PER_USER, positive(), admission.queued_runs_per_user);
        // Every backend's keys are read (and checked), whichever backend runs.
        let docker = DockerConfig {
            socket: sources.value(&DOCKER_SOCKET, TEXT, "unix:///var/run/docker.sock".to_string()),
            image: sources.value(&DOCKER_IMAGE, TEXT, "codesync-runner:latest".to_string()),
            runtime: sources.optional(&DOCKER_RUNTIME, TEXT),
            read_only_binds: sources.value(&DOCKER_READ_ONLY_BINDS, LIST, Vec::new()),
        };
        let kubernetes = KubernetesConfig {
            api_url: sources.optional(&KUBERNETES_API_URL, HTTP_URL),
            namespace: sources.value(&KUBERNETES_NAMESPACE, TEXT, "codesync-runs".to_string()),
            image: sources.value(&KUBERNETES_IMAGE, TEXT, "codesync-runner:latest".to_string()),
        };
        execution.backend = match sandbox {
            Backend::Local => BackendConfig::Local,
            Backend::Docker => BackendConfig::Docker(docker),
            Backend::Kubernetes => BackendConfig::Kubernetes(kubernetes),
        };

        let local_endpoint = format!("http://{}", connectable(grpc_addr));
        let endpoint_keys = [
            &AUTH_ENDPOINT,
            &ROOMS_ENDPOINT,
            &DOCUMENTS_ENDPOINT,
            &PRESENCE_ENDPOINT,
            &HISTORY_ENDPOINT,
            &EXECUTION_ENDPOINT,
            &ASSISTANT_ENDPOINT,
            &NOTIFICATIONS_ENDPOINT,
            &ANALYTICS_ENDPOINT,
        ];
        let mut endpoints = BTreeMap::new();
        for (service, key) in SERVICE_NAMES.iter().zip(endpoint_keys) {
            debug_assert_eq!(key.name.strip_suffix("_endpoint"), Some(*service));
            endpoints.insert(*service, sources.value(key, HTTP_URLS, vec![local_endpoint.clone()]));
        }
        let advertise_addr = sources.value(
            &ADVERTISE_ADDR,
            Parser {
                expected: "a host:port address",
                parse: |text| {
                    let (host, port) = text.rsplit_once(':')?;
                    (!host.is_empty() && port.parse::<u16>().is_ok() && !text.contains("://")).then(|| text.to_string())
                },
            },
            advertised(grpc_addr),
        );
        let call_defaults = CallPolicy::default();
        let calls = CallPolicy {
            default_timeout: millis(sources.value(
                &CALL_TIMEOUT_MS,
                positive(),
                whole_millis(call_defaults.default_timeout),
            )),
            ..call_defaults
        };
        let shutdown_grace = seconds(sources.value(&SHUTDOWN_GRACE_SECS, positive(), 20));

        if let Some(problems) = ConfigError::of_all(sources.problems.into_inner()) {
            return Err(problems);
        }
        let effective = sources.effective.into_inner();
        Ok(Self {
            http_addr,
            grpc_addr,
            metrics_addr,
            database_url,
            redis_url,
            redis_key_prefix,
            kafka_brokers,
            event_queue,
            assistant,
            jwt_signing_key_file,
            jwt_public_key_file,
            service_key_file,
            log_format,
            migrate_on_start,
            access_token_ttl,
            auth,
            gateway,
            documents,
            history,
            execution,
            inflight,
            admission: grpc_admission,
            outbound,
            max_connections,
            expensive,
            endpoints,
            advertise_addr,
            calls,
            shutdown_grace,
            unknown_env_vars,
            effective,
        })
    }

    /// The effective configuration as TOML, every key in its declared order, secrets hidden,
    /// for `codesync config`.
    pub fn describe(&self) -> String {
        keys::ALL
            .iter()
            .map(|key| {
                let value = self.effective.get(key.name).cloned().unwrap_or_else(|| toml::Value::String(String::new()));
                format!("{} = {}", key.name, toml_literal(&value))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A value as TOML writes it (a basic string, a number, a boolean).
fn toml_literal(value: &toml::Value) -> String {
    match value {
        toml::Value::String(text) => {
            let mut literal = String::from('"');
            for character in text.chars() {
                match character {
                    '"' => literal.push_str("\\\""),
                    '\\' => literal.push_str("\\\\"),
                    '\n' => literal.push_str("\\n"),
                    '\t' => literal.push_str("\\t"),
                    control if control.is_control() => literal.push_str(&format!("\\u{:04X}", u32::from(control))),
                    other => literal.push(other),
                }
            }
            literal.push('"');
            literal
        }
        toml::Value::Integer(number) => number.to_string(),
        toml::Value::Boolean(flag) => flag.to_string(),
        other => format!("{other:?}"),
    }
}

/// A key's default as people read it: the value parsing gives with nothing set, or its
/// description.
fn default_text(key: &Key, defaults: &Config) -> String {
    match key.default {
        DefaultValue::Described(text) => text.to_string(),
        DefaultValue::Fixed => match defaults.effective.get(key.name) {
            Some(toml::Value::String(text)) => format!("`{text}`"),
            Some(value) => format!("`{}`", toml_literal(value)),
            None => String::new(),
        },
    }
}

fn defaults() -> Result<Config, ConfigError> {
    Config::from_sources(None, BTreeMap::new())
}

/// The table of keys in docs/configuration.md: each key's variable, meaning and default.
#[cfg(test)]
fn reference_table() -> String {
    let defaults = defaults().expect("the defaults are valid");
    let mut table = String::from("| variable | meaning | default |\n|---|---|---|\n");
    for key in keys::ALL {
        table.push_str(&format!("| {} | {} | {} |\n", key.env_name(), key.meaning, default_text(key, &defaults)));
    }
    table
}

/// `codesync config --keys`: every key, its variable, what it does and its default.
pub fn key_list() -> Result<String, ConfigError> {
    let defaults = defaults()?;
    let lines: Vec<String> = keys::ALL
        .iter()
        .map(|key| {
            format!(
                "{:<34} {:<42} {} (default: {})",
                key.name,
                key.env_name(),
                key.meaning,
                default_text(key, &defaults)
            )
        })
        .collect();
    Ok(lines.join("\n"))
}

/// The file's keys, and a problem for each key it names that is not one.
fn read_toml(path: &Path) -> Result<(BTreeMap<String, toml::Value>, Vec<ConfigError>), ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile { path: path.to_path_buf(), source })?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|error| ConfigError::ParseFile { path: path.to_path_buf(), message: error.to_string() })?;
    let known: BTreeSet<&str> = keys::ALL.iter().map(|key| key.name).collect();
    let unknown = table
        .keys()
        .filter(|key| !known.contains(key.as_str()))
        .map(|key| ConfigError::UnknownKey {
            key: key.clone(),
            path: path.to_path_buf(),
            known: keys::ALL.iter().map(|key| key.name).collect::<Vec<_>>().join(", "),
        })
        .collect();
    Ok((table.into_iter().filter(|(key, _)| known.contains(key.as_str())).collect(), unknown))
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
        assert_eq!(config.database_url, "sqlite://./data/codesync.db");
        assert!(matches!(config.execution.backend, BackendConfig::Local));
        assert!(config.assistant.provider.is_none());
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
    fn every_bad_key_is_reported_at_once() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("codesync.toml");
        std::fs::write(&path, "http_adr = \"127.0.0.1:1\"\nevent_queue = \"many\"\nsandbox = \"vm\"\n").unwrap();
        let error = Config::from_sources(Some(&path), env(&[("CODESYNC_GRPC_ADDR", "nowhere")])).unwrap_err();
        let ConfigError::Several(problems) = &error else { panic!("all problems at once: {error}") };
        assert_eq!(problems.len(), 4, "{error}");
        let told = error.to_string();
        for expected in
            ["4 problems", "unknown key 'http_adr'", "'event_queue' in", "'sandbox' in", "CODESYNC_GRPC_ADDR"]
        {
            assert!(told.contains(expected), "{expected}: {told}");
        }
        // One problem is told as it always was.
        let one = Config::from_sources(None, env(&[("CODESYNC_GRPC_ADDR", "nowhere")])).unwrap_err();
        assert!(matches!(one, ConfigError::InvalidValue { .. }), "{one}");
    }

    #[test]
    fn every_declared_key_is_read() {
        let config = Config::from_sources(None, BTreeMap::new()).unwrap();
        let unread: Vec<&str> =
            keys::ALL.iter().map(|key| key.name).filter(|name| !config.effective.contains_key(name)).collect();
        assert!(unread.is_empty(), "declared but never read: {unread:?}");
    }

    /// docs/configuration.md's table of keys is made from the declarations
    /// (`CODESYNC_BLESS=1 cargo test -p codesync the_configuration_reference` rewrites it).
    #[test]
    fn the_configuration_reference_in_the_docs_is_current() {
        const BEGIN: &str = "<!-- keys: generated from cli/src/config.rs -->\n";
        const END: &str = "<!-- end of keys -->";
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md");
        let docs = std::fs::read_to_string(path).unwrap();
        let (before, rest) = docs.split_once(BEGIN).expect("the docs mark where the keys begin");
        let (current, after) = rest.split_once(END).expect("the docs mark where the keys end");
        let table = reference_table();
        if std::env::var_os("CODESYNC_BLESS").is_some() {
            std::fs::write(path, format!("{before}{BEGIN}{table}{END}{after}")).unwrap();
            return;
        }
        assert_eq!(current, table, "docs/configuration.md is stale: rerun with CODESYNC_BLESS=1");
    }

    #[test]
    fn every_key_is_declared_once_and_shown_by_codesync_config() {
        let names: BTreeSet<&str> = keys::ALL.iter().map(|key| key.name).collect();
        assert_eq!(names.len(), keys::ALL.len(), "a key declared twice");
        let endpoints: BTreeSet<String> = SERVICE_NAMES.iter().map(|service| format!("{service}_endpoint")).collect();
        assert!(endpoints.iter().all(|key| names.contains(key.as_str())), "an endpoint key per service");
        let description = Config::from_sources(None, BTreeMap::new()).unwrap().describe();
        let shown: Vec<&str> = description.lines().filter_map(|line| line.split(" = ").next()).collect();
        assert_eq!(shown, keys::ALL.iter().map(|key| key.name).collect::<Vec<_>>());
        for key in keys::ALL {
            assert!(
                key.meaning.len() > 10 && !key.meaning.contains('\n'),
                "{} needs one paragraph of meaning",
                key.name
            );
        }
        // What `codesync config` prints reads back as the same configuration.
        let directory = tempfile::tempdir().unwrap();
        let file = directory.path().join("codesync.toml");
        let printed =
            Config::from_sources(None, env(&[("CODESYNC_SANDBOX", "docker"), ("CODESYNC_RATE_LIMIT_PER_MINUTE", "7")]))
                .unwrap()
                .describe();
        std::fs::write(&file, &printed).unwrap();
        let again = Config::from_sources(Some(&file), BTreeMap::new()).unwrap();
        assert_eq!(again.describe(), printed);
        assert_eq!(again.gateway.rate_limit_per_minute, 7);
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
