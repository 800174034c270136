//! The one error type of the services, and the one place where errors are
//! mapped to gRPC status codes (services) and to HTTP status codes (gateway).
//!
//! A service returns [`ServiceError`]; it becomes a [`tonic::Status`] whose
//! metadata carries the machine-readable snake_case code and, when rate-limited,
//! the seconds to wait. The gateway turns any `Status` back into an HTTP answer
//! with [`http_error_from_status`], so a code chosen in a service reaches the
//! REST client unchanged, in both topologies.

use http::StatusCode;
use tonic::Code;
use tonic::metadata::MetadataValue;

/// gRPC metadata key carrying the snake_case error code of the REST contract.
pub const ERROR_CODE_METADATA_KEY: &str = "x-codesync-error-code";
/// gRPC metadata key carrying how many seconds a rate-limited caller should wait.
pub const RETRY_AFTER_METADATA_KEY: &str = "retry-after";

/// The error code of [`ServiceError::Restarting`].
pub const RESTARTING_CODE: &str = "service_restarting";

pub type ServiceResult<T> = Result<T, ServiceError>;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A request value failed validation (HTTP 400).
    #[error("{message}")]
    InvalidArgument { code: &'static str, message: String },
    /// No credentials, or credentials that are wrong, expired or revoked (HTTP 401).
    #[error("{message}")]
    Unauthenticated { code: &'static str, message: String },
    /// The caller is known but may not do this (HTTP 403).
    #[error("{message}")]
    PermissionDenied { code: &'static str, message: String },
    /// The resource does not exist, or the caller may not know that it does (HTTP 404).
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// A unique value is taken (HTTP 409).
    #[error("{message}")]
    AlreadyExists { code: &'static str, message: String },
    /// The request was based on a state that has changed since (HTTP 409).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// A value is larger than the service accepts (HTTP 413).
    #[error("{message}")]
    TooLarge { code: &'static str, message: String },
    /// Too many requests; try again after `retry_after_secs` (HTTP 429).
    #[error("{message}")]
    RateLimited { message: String, retry_after_secs: u64 },
    /// The operation is not possible in the current configuration (HTTP 422).
    #[error("{message}")]
    FailedPrecondition { code: &'static str, message: String },
    /// A dependency cannot be reached (HTTP 503).
    #[error("{message}")]
    Unavailable { message: String },
    /// The server is stopping (SIGTERM) and hands its work over: reconnect, to another replica
    /// (HTTP 503; WebSockets close with 1012).
    #[error("{message}")]
    Restarting { message: String },
    /// Another service did not answer before the call's deadline (HTTP 504).
    #[error("{message}")]
    DeadlineExceeded { message: String },
    /// A feature this installation has not set up, with its own code (HTTP 503), such as
    /// `ai_not_configured`.
    #[error("{message}")]
    NotConfigured { code: &'static str, message: String },
    /// A bug or an unexpected failure; the detail is logged, never sent (HTTP 500).
    #[error("internal error: {detail}")]
    Internal { detail: String },
    /// Another CodeSync service's decision (e.g. 404 for a private room), passed
    /// on as it came: code, message and metadata. Made by [`ServiceError::from_peer`].
    #[error("{}", .0.message())]
    Peer(tonic::Status),
}

impl ServiceError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidArgument { code, message: message.into() }
    }

    pub fn unauthenticated(code: &'static str, message: impl Into<String>) -> Self {
        Self::Unauthenticated { code, message: message.into() }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::PermissionDenied { code, message: message.into() }
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::NotFound { code, message: message.into() }
    }

    pub fn already_exists(code: &'static str, message: impl Into<String>) -> Self {
        Self::AlreadyExists { code, message: message.into() }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict { code, message: message.into() }
    }

    pub fn too_large(code: &'static str, message: impl Into<String>) -> Self {
        Self::TooLarge { code, message: message.into() }
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self::Internal { detail: detail.to_string() }
    }

    /// The error to return when a call to another service (`service`) failed:
    /// that service's own answer passes on unchanged; a failure that carries no
    /// code of ours (the transport, a crash) means the service is unavailable.
    pub fn from_peer(service: &str, status: tonic::Status) -> Self {
        let is_ours = status.metadata().get(ERROR_CODE_METADATA_KEY).is_some();
        if is_ours && !matches!(status.code(), Code::Internal | Code::Unknown) {
            return Self::Peer(status);
        }
        tracing::warn!(service, error = %status, "a call to another service failed");
        Self::Unavailable { message: format!("the {service} service cannot be reached; try again") }
    }

    /// The snake_case code of the REST contract.
    pub fn code(&self) -> &str {
        match self {
            Self::Peer(status) => status
                .metadata()
                .get(ERROR_CODE_METADATA_KEY)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("service_unavailable"),
            Self::InvalidArgument { code, .. }
            | Self::Unauthenticated { code, .. }
            | Self::PermissionDenied { code, .. }
            | Self::NotFound { code, .. }
            | Self::AlreadyExists { code, .. }
            | Self::Conflict { code, .. }
            | Self::TooLarge { code, .. }
            | Self::FailedPrecondition { code, .. }
            | Self::NotConfigured { code, .. } => code,
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable { .. } => "service_unavailable",
            Self::DeadlineExceeded { .. } => "deadline_exceeded",
            Self::Restarting { .. } => RESTARTING_CODE,
            Self::Internal { .. } => "internal_error",
        }
    }

    fn grpc_code(&self) -> Code {
        match self {
            Self::InvalidArgument { .. } => Code::InvalidArgument,
            Self::Unauthenticated { .. } => Code::Unauthenticated,
            Self::PermissionDenied { .. } => Code::PermissionDenied,
            Self::NotFound { .. } => Code::NotFound,
            Self::AlreadyExists { .. } => Code::AlreadyExists,
            Self::Conflict { .. } => Code::Aborted,
            Self::TooLarge { .. } => Code::OutOfRange,
            Self::RateLimited { .. } => Code::ResourceExhausted,
            Self::FailedPrecondition { .. } => Code::FailedPrecondition,
            Self::Unavailable { .. } | Self::NotConfigured { .. } | Self::Restarting { .. } => Code::Unavailable,
            Self::DeadlineExceeded { .. } => Code::DeadlineExceeded,
            Self::Internal { .. } => Code::Internal,
            Self::Peer(status) => status.code(),
        }
    }
}

impl From<sqlx::Error> for ServiceError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                Self::Unavailable { message: "the database is unavailable; try again".to_string() }
            }
            other => Self::internal(format_args!("database error: {other}")),
        }
    }
}

impl From<ServiceError> for tonic::Status {
    fn from(error: ServiceError) -> Self {
        let error = match error {
            ServiceError::Peer(status) => return status,
            other => other,
        };
        let message = match &error {
            ServiceError::Internal { detail } => {
                tracing::error!(error.detail = %detail, "internal error");
                "internal error".to_string()
            }
            other => other.to_string(),
        };
        let mut status = tonic::Status::new(error.grpc_code(), message);
        // Every other variant's code is a static snake_case literal.
        if let Ok(code) = MetadataValue::try_from(error.code()) {
            status.metadata_mut().insert(ERROR_CODE_METADATA_KEY, code);
        }
        if let ServiceError::RateLimited { retry_after_secs, .. } = error {
            status.metadata_mut().insert(RETRY_AFTER_METADATA_KEY, MetadataValue::from(retry_after_secs));
        }
        status
    }
}

/// An error as the REST contract shows it: status, snake_case code, sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub retry_after_secs: Option<u64>,
}

impl HttpError {
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { status, code: code.into(), message: message.into(), retry_after_secs: None }
    }
}

impl From<ServiceError> for HttpError {
    fn from(error: ServiceError) -> Self {
        http_error_from_status(&tonic::Status::from(error))
    }
}

/// Maps a gRPC status, from a service of this process or of another, to the
/// HTTP answer of the REST contract.
pub fn http_error_from_status(status: &tonic::Status) -> HttpError {
    let http_status = match status.code() {
        Code::InvalidArgument => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::OutOfRange => StatusCode::PAYLOAD_TOO_LARGE,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::FailedPrecondition => StatusCode::UNPROCESSABLE_ENTITY,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable | Code::Cancelled => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Ok | Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let metadata_code = status
        .metadata()
        .get(ERROR_CODE_METADATA_KEY)
        .and_then(|value| value.to_str().ok())
        .filter(|code| is_snake_case_code(code));
    let code = match metadata_code {
        Some(code) => code.to_string(),
        None => default_code_for(status.code()).to_string(),
    };
    // Transport failures and foreign services carry no code of ours; their
    // messages can hold internals, so only our own codes pass their sentence on.
    let message = if metadata_code.is_some() && http_status != StatusCode::INTERNAL_SERVER_ERROR {
        status.message().to_string()
    } else {
        default_message_for(status.code()).to_string()
    };
    let retry_after_secs = status
        .metadata()
        .get(RETRY_AFTER_METADATA_KEY)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    HttpError { status: http_status, code, message, retry_after_secs }
}

fn is_snake_case_code(candidate: &str) -> bool {
    !candidate.is_empty()
        && candidate.len() <= 64
        && candidate.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_')
}

fn default_code_for(code: Code) -> &'static str {
    match code {
        Code::InvalidArgument => "invalid_argument",
        Code::Unauthenticated => "unauthenticated",
        Code::PermissionDenied => "forbidden",
        Code::NotFound => "not_found",
        Code::AlreadyExists | Code::Aborted => "conflict",
        Code::OutOfRange => "payload_too_large",
        Code::ResourceExhausted => "rate_limited",
        Code::FailedPrecondition => "failed_precondition",
        Code::Unimplemented => "not_implemented",
        Code::Unavailable | Code::Cancelled => "service_unavailable",
        Code::DeadlineExceeded => "timeout",
        Code::Ok | Code::Unknown | Code::Internal | Code::DataLoss => "internal_error",
    }
}

fn default_message_for(code: Code) -> &'static str {
    match code {
        Code::InvalidArgument => "the request is invalid",
        Code::Unauthenticated => "authentication is required",
        Code::PermissionDenied => "you may not do this",
        Code::NotFound => "not found",
        Code::AlreadyExists | Code::Aborted => "the request conflicts with the current state",
        Code::OutOfRange => "the request is too large",
        Code::ResourceExhausted => "too many requests; try again later",
        Code::FailedPrecondition => "the request cannot be carried out now",
        Code::Unimplemented => "this feature is not available yet",
        Code::Unavailable | Code::Cancelled => "a service is unavailable; try again",
        Code::DeadlineExceeded => "a service did not answer in time",
        Code::Ok | Code::Unknown | Code::Internal | Code::DataLoss => "internal error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_decisions_pass_on_and_transport_failures_become_unavailable() {
        let decision = tonic::Status::from(ServiceError::not_found("room_not_found", "no such room"));
        let passed_on = tonic::Status::from(ServiceError::from_peer("rooms", decision));
        assert_eq!(passed_on.code(), Code::NotFound);
        assert_eq!(http_error_from_status(&passed_on).code, "room_not_found");
        assert_eq!(passed_on.message(), "no such room");

        let transport = ServiceError::from_peer("rooms", tonic::Status::unavailable("tcp connect error"));
        assert_eq!(transport.code(), "service_unavailable");
        assert!(!transport.to_string().contains("tcp"), "internals stay inside");
        let crash = ServiceError::from_peer("rooms", tonic::Status::from(ServiceError::internal("boom")));
        assert_eq!(crash.code(), "service_unavailable");
    }

    #[test]
    fn service_errors_reach_http_with_their_code_and_status() {
        let cases = [
            (ServiceError::invalid("invalid_email", "bad email"), StatusCode::BAD_REQUEST, "invalid_email"),
            (ServiceError::unauthenticated("invalid_token", "no"), StatusCode::UNAUTHORIZED, "invalid_token"),
            (ServiceError::forbidden("read_only", "viewer"), StatusCode::FORBIDDEN, "read_only"),
            (ServiceError::not_found("room_not_found", "no room"), StatusCode::NOT_FOUND, "room_not_found"),
            (ServiceError::already_exists("email_taken", "taken"), StatusCode::CONFLICT, "email_taken"),
            (ServiceError::conflict("stale_head", "stale"), StatusCode::CONFLICT, "stale_head"),
            (ServiceError::too_large("file_too_large", "big"), StatusCode::PAYLOAD_TOO_LARGE, "file_too_large"),
        ];
        for (error, expected_status, expected_code) in cases {
            let http_error = HttpError::from(error);
            assert_eq!(http_error.status, expected_status);
            assert_eq!(http_error.code, expected_code);
        }
    }

    #[test]
    fn rate_limits_carry_retry_after() {
        let error = ServiceError::RateLimited { message: "slow down".into(), retry_after_secs: 42 };
        let http_error = HttpError::from(error);
        assert_eq!(http_error.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(http_error.retry_after_secs, Some(42));
    }

    #[test]
    fn internal_details_never_reach_the_client() {
        let http_error = HttpError::from(ServiceError::internal("password column missing in /var/db"));
        assert_eq!(http_error.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(http_error.message, "internal error");
    }

    #[test]
    fn foreign_statuses_get_generic_codes_and_sentences() {
        let status = tonic::Status::unavailable("tcp connect error: 10.0.0.7:50051 refused");
        let http_error = http_error_from_status(&status);
        assert_eq!(http_error.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(http_error.code, "service_unavailable");
        assert!(!http_error.message.contains("10.0.0.7"));
    }
}
