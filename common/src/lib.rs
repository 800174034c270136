//! Shared plumbing of CodeSync's services: the error type and its one mapping to
//! gRPC status and HTTP codes, caller identity and access tokens, rate limits,
//! input validation, the database with its migrations, and telemetry.
#![forbid(unsafe_code)]

pub mod access;
pub mod budget;
pub mod bus;
pub mod connections;
pub mod consumer;
pub mod db;
pub mod error;
pub mod events;
pub mod grpc;
pub mod identity;
pub mod kafka;
pub mod limits;
pub mod metrics;
pub mod outbox;
pub mod paths;
pub mod queue;
pub mod rate_limit;
pub mod redis;
pub mod telemetry;
pub mod validate;

pub use error::{ErrorCode, ServiceError, ServiceResult};

/// Milliseconds since the Unix epoch, the one time unit of the stores and the protos.
pub fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// A new identifier: a UUIDv7, so that identifiers sort by creation time.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// True when `candidate` has the shape of an identifier made by [`new_id`];
/// lets services answer NOT_FOUND without a database round trip for garbage ids.
pub fn is_valid_id(candidate: &str) -> bool {
    candidate.len() == 36 && uuid::Uuid::parse_str(candidate).is_ok()
}

/// `url` with its credentials hidden, for logs, errors and `codesync config`: a password
/// (`postgres://app:<redacted>@db/...`), or a lone credential, which may be a token
/// (`redis://<redacted>@cache`).
pub fn redact_url_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let Some((credentials, host)) = rest.rsplit_once('@') else { return url.to_string() };
    match credentials.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:<redacted>@{host}"),
        None => format!("{scheme}://<redacted>@{host}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_hidden() {
        assert_eq!(redact_url_credentials("postgres://u:secret@h/db"), "postgres://u:<redacted>@h/db");
        assert_eq!(redact_url_credentials("redis://token@h:6379"), "redis://<redacted>@h:6379");
        assert_eq!(redact_url_credentials("postgres://u:p@ss@h/db"), "postgres://u:<redacted>@h/db");
        assert_eq!(redact_url_credentials("sqlite://./data/codesync.db"), "sqlite://./data/codesync.db");
    }

    #[test]
    fn ids_are_unique_sortable_and_recognised() {
        let first = new_id();
        let second = new_id();
        assert_ne!(first, second);
        assert!(first < second, "v7 ids sort by creation time");
        assert!(is_valid_id(&first));
        assert!(!is_valid_id("../../etc/passwd"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id(&"a".repeat(10_000)));
    }
}
