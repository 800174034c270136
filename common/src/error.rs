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

/// Declares [`ErrorCode`]: each code once, with its spelling on the wire.
macro_rules! error_codes {
    ($($variant:ident = $name:literal,)*) => {
        /// Every machine-readable code of the REST contract (`{"error": {"code": ...}}`), which
        /// gRPC carries in `x-codesync-error-code`. Services make errors and test them by this
        /// type, never by a string.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($variant,)*
        }

        impl ErrorCode {
            pub const ALL: &'static [Self] = &[$(Self::$variant,)*];

            /// The code as the REST and gRPC contracts spell it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }

            pub fn from_name(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|code| code.as_str() == name)
            }
        }
    };
}

impl ErrorCode {
    /// The code a gRPC status carries: ours from its metadata; a code this build does not know
    /// (a newer peer's) or none at all (the transport, a foreign service) becomes the general
    /// code of the status's gRPC code, so every caller here deals in codes it knows.
    pub fn of_status(status: &tonic::Status) -> Self {
        let named = status.metadata().get(ERROR_CODE_METADATA_KEY).and_then(|value| value.to_str().ok());
        match named.map(|name| (name, Self::from_name(name))) {
            Some((_, Some(code))) => code,
            Some((name, None)) => {
                tracing::debug!(code = name, "an error code this build does not know; its general code stands in");
                default_code_for(status.code())
            }
            None => default_code_for(status.code()),
        }
    }

    /// The code a message of the wire carries in a field of its own (a chat refusal, an AI
    /// error), known or mapped to `otherwise`.
    pub fn from_wire(name: &str, otherwise: Self) -> Self {
        Self::from_name(name).unwrap_or(otherwise)
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

error_codes! {
    AmbiguousProgram = "ambiguous_program",
    AccountNotFound = "account_not_found",
    AdminRequired = "admin_required",
    AiBadResponse = "ai_bad_response",
    AiNotConfigured = "ai_not_configured",
    AiOverloaded = "ai_overloaded",
    AiRateLimited = "ai_rate_limited",
    AiRequestRejected = "ai_request_rejected",
    AiTimeout = "ai_timeout",
    AiUnauthorized = "ai_unauthorized",
    AiUnreachable = "ai_unreachable",
    AiUpstreamError = "ai_upstream_error",
    AlreadyOpen = "already_open",
    ArchiveRefused = "archive_refused",
    ArchiveTooLarge = "archive_too_large",
    AuthenticationRequired = "authentication_required",
    BinaryFile = "binary_file",
    Busy = "busy",
    CodeTooLarge = "code_too_large",
    Conflict = "conflict",
    DeadlineExceeded = "deadline_exceeded",
    DiffTooLarge = "diff_too_large",
    DocumentElsewhere = "document_elsewhere",
    EmailTaken = "email_taken",
    EmptyMessage = "empty_message",
    EmptyRequest = "empty_request",
    EmptyUpdate = "empty_update",
    FailedPrecondition = "failed_precondition",
    FileExists = "file_exists",
    FileNotFound = "file_not_found",
    FileTooLarge = "file_too_large",
    Forbidden = "forbidden",
    InteractionNotFound = "interaction_not_found",
    InternalError = "internal_error",
    InvalidArchive = "invalid_archive",
    InvalidArgument = "invalid_argument",
    InvalidBody = "invalid_body",
    InvalidContent = "invalid_content",
    InvalidCredentials = "invalid_credentials",
    InvalidDescription = "invalid_description",
    InvalidEmail = "invalid_email",
    InvalidEvent = "invalid_event",
    InvalidFilename = "invalid_filename",
    InvalidHistory = "invalid_history",
    InvalidIndex = "invalid_index",
    InvalidLimit = "invalid_limit",
    InvalidMessage = "invalid_message",
    InvalidMetadata = "invalid_metadata",
    InvalidPassword = "invalid_password",
    InvalidPath = "invalid_path",
    InvalidQuery = "invalid_query",
    InvalidRefreshToken = "invalid_refresh_token",
    InvalidRole = "invalid_role",
    InvalidRoomName = "invalid_room_name",
    InvalidTitle = "invalid_title",
    InvalidToken = "invalid_token",
    InvalidType = "invalid_type",
    InvalidUpdate = "invalid_update",
    InvalidUserId = "invalid_user_id",
    InvalidUsername = "invalid_username",
    InviteNotFound = "invite_not_found",
    LanguageUnavailable = "language_unavailable",
    MalformedJson = "malformed_json",
    MalformedMessage = "malformed_message",
    MemberNotFound = "member_not_found",
    MembersOnly = "members_only",
    MessageTooLarge = "message_too_large",
    MessageTooLong = "message_too_long",
    MethodNotAllowed = "method_not_allowed",
    MissingEvent = "missing_event",
    MissingRefreshToken = "missing_refresh_token",
    MissingResource = "missing_resource",
    MissingVersions = "missing_versions",
    NoFiles = "no_files",
    NoProgram = "no_program",
    NotAMember = "not_a_member",
    NotAWebsocket = "not_a_websocket",
    NotFound = "not_found",
    NotImplemented = "not_implemented",
    OpenFirst = "open_first",
    OwnerCannotLeave = "owner_cannot_leave",
    OwnerOnly = "owner_only",
    OwnerRoleFixed = "owner_role_fixed",
    PathConflict = "path_conflict",
    PayloadTooLarge = "payload_too_large",
    ProgramTooLarge = "program_too_large",
    PromptTooLarge = "prompt_too_large",
    RateLimited = "rate_limited",
    ReadOnly = "read_only",
    RefreshTokenExpired = "refresh_token_expired",
    RefreshTokenReused = "refresh_token_reused",
    RefreshTokenRevoked = "refresh_token_revoked",
    RoomNotFound = "room_not_found",
    ServiceRestarting = "service_restarting",
    ServiceUnavailable = "service_unavailable",
    SessionEnded = "session_ended",
    StaleHead = "stale_head",
    StdinTooLarge = "stdin_too_large",
    SuspiciousCompression = "suspicious_compression",
    Symlink = "symlink",
    Timeout = "timeout",
    TokenExpired = "token_expired",
    TooManyConcurrentRequests = "too_many_concurrent_requests",
    TooManyConnections = "too_many_connections",
    TooManyFiles = "too_many_files",
    TooManyIds = "too_many_ids",
    TooManyStreams = "too_many_streams",
    Unauthenticated = "unauthenticated",
    UnknownEntry = "unknown_entry",
    UnknownLanguage = "unknown_language",
    UnknownMode = "unknown_mode",
    UnsupportedMediaType = "unsupported_media_type",
    UsernameTaken = "username_taken",
    VersionNotFound = "version_not_found",
    WeakPassword = "weak_password",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A request value failed validation (HTTP 400).
    #[error("{message}")]
    InvalidArgument { code: ErrorCode, message: String },
    /// No credentials, or credentials that are wrong, expired or revoked (HTTP 401).
    #[error("{message}")]
    Unauthenticated { code: ErrorCode, message: String },
    /// The caller is known but may not do this (HTTP 403).
    #[error("{message}")]
    PermissionDenied { code: ErrorCode, message: String },
    /// The resource does not exist, or the caller may not know that it does (HTTP 404).
    #[error("{message}")]
    NotFound { code: ErrorCode, message: String },
    /// A unique value is taken (HTTP 409).
    #[error("{message}")]
    AlreadyExists { code: ErrorCode, message: String },
    /// The request was based on a state that has changed since (HTTP 409).
    #[error("{message}")]
    Conflict { code: ErrorCode, message: String },
    /// A value is larger than the service accepts (HTTP 413).
    #[error("{message}")]
    TooLarge { code: ErrorCode, message: String },
    /// Too many requests; try again after `retry_after_secs` (HTTP 429).
    #[error("{message}")]
    RateLimited { message: String, retry_after_secs: u64 },
    /// A limit on what the caller (or everyone) holds at once was reached: requests in flight,
    /// streams, expensive work; try again after `retry_after_secs` (HTTP 429).
    #[error("{message}")]
    Exhausted { code: ErrorCode, message: String, retry_after_secs: u64 },
    /// The operation is not possible in the current configuration (HTTP 422).
    #[error("{message}")]
    FailedPrecondition { code: ErrorCode, message: String },
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
    NotConfigured { code: ErrorCode, message: String },
    /// A bug or an unexpected failure; the detail is logged, never sent (HTTP 500).
    #[error("internal error: {detail}")]
    Internal { detail: String },
    /// Another CodeSync service's decision (e.g. 404 for a private room), passed
    /// on as it came: code, message and metadata. Made by [`ServiceError::from_peer`].
    #[error("{}", .0.message())]
    Peer(tonic::Status),
}

impl ServiceError {
    pub fn invalid(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::InvalidArgument { code, message: message.into() }
    }

    pub fn unauthenticated(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Unauthenticated { code, message: message.into() }
    }

    pub fn forbidden(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::PermissionDenied { code, message: message.into() }
    }

    pub fn not_found(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::NotFound { code, message: message.into() }
    }

    pub fn already_exists(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::AlreadyExists { code, message: message.into() }
    }

    pub fn conflict(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Conflict { code, message: message.into() }
    }

    pub fn too_large(code: ErrorCode, message: impl Into<String>) -> Self {
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

    /// Whether this is the error `code` (also when another service decided it).
    pub fn is(&self, code: ErrorCode) -> bool {
        self.code() == code
    }

    /// The code of the REST contract.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Peer(status) => ErrorCode::of_status(status),
            Self::InvalidArgument { code, .. }
            | Self::Unauthenticated { code, .. }
            | Self::PermissionDenied { code, .. }
            | Self::NotFound { code, .. }
            | Self::AlreadyExists { code, .. }
            | Self::Conflict { code, .. }
            | Self::TooLarge { code, .. }
            | Self::FailedPrecondition { code, .. }
            | Self::Exhausted { code, .. }
            | Self::NotConfigured { code, .. } => *code,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Unavailable { .. } => ErrorCode::ServiceUnavailable,
            Self::DeadlineExceeded { .. } => ErrorCode::DeadlineExceeded,
            Self::Restarting { .. } => ErrorCode::ServiceRestarting,
            Self::Internal { .. } => ErrorCode::InternalError,
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
            Self::RateLimited { .. } | Self::Exhausted { .. } => Code::ResourceExhausted,
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
        status.metadata_mut().insert(ERROR_CODE_METADATA_KEY, MetadataValue::from_static(error.code().as_str()));
        if let ServiceError::RateLimited { retry_after_secs, .. } | ServiceError::Exhausted { retry_after_secs, .. } =
            error
        {
            status.metadata_mut().insert(RETRY_AFTER_METADATA_KEY, MetadataValue::from(retry_after_secs));
        }
        status
    }
}

/// An error as the REST contract shows it: status, snake_case code, sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    pub retry_after_secs: Option<u64>,
}

impl HttpError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after_secs: None }
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
    let is_ours = status
        .metadata()
        .get(ERROR_CODE_METADATA_KEY)
        .and_then(|value| value.to_str().ok())
        .is_some_and(is_snake_case_code);
    let code = ErrorCode::of_status(status);
    // Transport failures and foreign services carry no code of ours; their
    // messages can hold internals, so only our own codes pass their sentence on.
    let message = if is_ours && http_status != StatusCode::INTERNAL_SERVER_ERROR {
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

fn default_code_for(code: Code) -> ErrorCode {
    match code {
        Code::InvalidArgument => ErrorCode::InvalidArgument,
        Code::Unauthenticated => ErrorCode::Unauthenticated,
        Code::PermissionDenied => ErrorCode::Forbidden,
        Code::NotFound => ErrorCode::NotFound,
        Code::AlreadyExists | Code::Aborted => ErrorCode::Conflict,
        Code::OutOfRange => ErrorCode::PayloadTooLarge,
        Code::ResourceExhausted => ErrorCode::RateLimited,
        Code::FailedPrecondition => ErrorCode::FailedPrecondition,
        Code::Unimplemented => ErrorCode::NotImplemented,
        Code::Unavailable | Code::Cancelled => ErrorCode::ServiceUnavailable,
        Code::DeadlineExceeded => ErrorCode::Timeout,
        Code::Ok | Code::Unknown | Code::Internal | Code::DataLoss => ErrorCode::InternalError,
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
    fn every_error_code_is_snake_case_once_and_listed_in_the_protocol_document() {
        let names: std::collections::BTreeSet<&str> = ErrorCode::ALL.iter().map(|code| code.as_str()).collect();
        assert_eq!(names.len(), ErrorCode::ALL.len(), "each code spelt once");
        for code in ErrorCode::ALL {
            assert!(is_snake_case_code(code.as_str()), "{code}");
            assert_eq!(ErrorCode::from_name(code.as_str()), Some(*code));
        }
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/protocol.md");
        let document = std::fs::read_to_string(&path).expect("docs/protocol.md");
        let (start, end) =
            ("<!-- error codes: generated from common/src/error.rs -->\n", "<!-- end of error codes -->");
        let from = document.find(start).expect("the start marker") + start.len();
        let to = document[from..].find(end).expect("the end marker") + from;
        let listed: Vec<String> = names.iter().map(|name| format!("`{name}`")).collect();
        let generated = format!("{}\n", listed.join(", "));
        if document[from..to] != generated {
            if std::env::var_os("CODESYNC_BLESS").is_some() {
                std::fs::write(&path, format!("{}{generated}{}", &document[..from], &document[to..])).expect("write");
            } else {
                panic!(
                    "docs/protocol.md lists other error codes; CODESYNC_BLESS=1 cargo test -p codesync-common rewrites it"
                );
            }
        }
    }

    #[test]
    fn peer_decisions_pass_on_and_transport_failures_become_unavailable() {
        let decision = tonic::Status::from(ServiceError::not_found(ErrorCode::RoomNotFound, "no such room"));
        let passed_on = tonic::Status::from(ServiceError::from_peer("rooms", decision));
        assert_eq!(passed_on.code(), Code::NotFound);
        assert_eq!(http_error_from_status(&passed_on).code, ErrorCode::RoomNotFound);
        assert_eq!(passed_on.message(), "no such room");

        let transport = ServiceError::from_peer("rooms", tonic::Status::unavailable("tcp connect error"));
        assert_eq!(transport.code(), ErrorCode::ServiceUnavailable);
        assert!(!transport.to_string().contains("tcp"), "internals stay inside");
        let crash = ServiceError::from_peer("rooms", tonic::Status::from(ServiceError::internal("boom")));
        assert_eq!(crash.code(), ErrorCode::ServiceUnavailable);
    }

    #[test]
    fn service_errors_reach_http_with_their_code_and_status() {
        let cases = [
            (
                ServiceError::invalid(ErrorCode::InvalidEmail, "bad email"),
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidEmail,
            ),
            (
                ServiceError::unauthenticated(ErrorCode::InvalidToken, "no"),
                StatusCode::UNAUTHORIZED,
                ErrorCode::InvalidToken,
            ),
            (ServiceError::forbidden(ErrorCode::ReadOnly, "viewer"), StatusCode::FORBIDDEN, ErrorCode::ReadOnly),
            (
                ServiceError::not_found(ErrorCode::RoomNotFound, "no room"),
                StatusCode::NOT_FOUND,
                ErrorCode::RoomNotFound,
            ),
            (ServiceError::already_exists(ErrorCode::EmailTaken, "taken"), StatusCode::CONFLICT, ErrorCode::EmailTaken),
            (ServiceError::conflict(ErrorCode::StaleHead, "stale"), StatusCode::CONFLICT, ErrorCode::StaleHead),
            (
                ServiceError::too_large(ErrorCode::FileTooLarge, "big"),
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::FileTooLarge,
            ),
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
        assert_eq!(http_error.code, ErrorCode::ServiceUnavailable);
        assert!(!http_error.message.contains("10.0.0.7"));
    }

    #[test]
    fn a_code_this_build_does_not_know_becomes_the_general_code_of_its_status() {
        let mut status = tonic::Status::not_found("no such thing");
        status.metadata_mut().insert(ERROR_CODE_METADATA_KEY, MetadataValue::from_static("thing_from_the_future"));
        assert_eq!(ErrorCode::of_status(&status), ErrorCode::NotFound);
        let passed_on = ServiceError::from_peer("rooms", status);
        assert_eq!(passed_on.code(), ErrorCode::NotFound);
        assert_eq!(HttpError::from(passed_on).status, StatusCode::NOT_FOUND);
        assert_eq!(ErrorCode::from_wire("ai_overloaded", ErrorCode::InternalError), ErrorCode::AiOverloaded);
        assert_eq!(ErrorCode::from_wire("no_such_code", ErrorCode::InternalError), ErrorCode::InternalError);
    }
}
