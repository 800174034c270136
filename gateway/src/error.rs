//! The REST error shape, `{"error": {"code": "...", "message": "..."}}`, on
//! every error path of the gateway: service errors, body and path rejections,
//! unknown routes, wrong methods, rate limits and panics.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use codesync_common::ErrorCode;
use codesync_common::error::{HttpError, http_error_from_status};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable, snake_case, stable.
    #[schema(value_type = String, example = "invalid_email")]
    pub code: ErrorCode,
    /// A sentence for people.
    #[schema(example = "the email address is not valid")]
    pub message: String,
}

/// Any error the gateway answers with.
#[derive(Debug)]
pub struct ApiError(pub HttpError);

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self(HttpError::new(status, code, message))
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "there is nothing at this address")
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        let http_error = http_error_from_status(&status);
        if http_error.status.is_server_error() {
            tracing::warn!(grpc.code = ?status.code(), grpc.message = %status.message(), "a service call failed");
        }
        Self(http_error)
    }
}

impl From<codesync_common::ServiceError> for ApiError {
    fn from(error: codesync_common::ServiceError) -> Self {
        Self(HttpError::from(error))
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonSyntaxError(error) => Self::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::MalformedJson,
                format!("the request body is not valid JSON: {}", innermost_message(&error)),
            ),
            JsonRejection::JsonDataError(error) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::InvalidBody,
                format!("the request body does not have the expected fields: {}", innermost_message(&error)),
            ),
            JsonRejection::MissingJsonContentType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                "send the body as JSON, with 'Content-Type: application/json'",
            ),
            JsonRejection::BytesRejection(error) if error.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                payload_too_large()
            }
            other => Self::new(other.status(), ErrorCode::InvalidBody, "the request body could not be read"),
        }
    }
}

pub fn payload_too_large() -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge, "the request body is too large")
}

/// serde's own sentence (`missing field `email` at line 1 column 2`), without
/// axum's prefix; it names fields and positions but never echoes the body.
fn innermost_message(error: &dyn std::error::Error) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    let message = current.to_string();
    message.chars().take(300).collect()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let HttpError { status, code, message, retry_after_secs } = self.0;
        let body = ErrorBody { error: ErrorDetail { code, message } };
        let mut response = (status, Json(body)).into_response();
        if let Some(seconds) = retry_after_secs {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// A known path with a method it does not have.
pub async fn method_not_allowed_fallback() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "this address does not accept this method",
    )
}

/// Turns a panic in a handler into the JSON error shape.
pub fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::InternalError, "internal error").into_response()
}
