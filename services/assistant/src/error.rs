//! What can go wrong with a provider, each with a distinct code the API and the web app show.

use codesync_common::ErrorCode;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AiError {
    /// 401 or 403: the key is wrong, revoked, or lacks access to the model.
    #[error("the AI provider refused the configured API key ({0})")]
    Unauthorized(String),
    #[error("the AI provider is rate limiting requests; try again shortly")]
    RateLimited { retry_after_secs: Option<u64> },
    #[error("the AI provider is overloaded; try again shortly")]
    Overloaded,
    #[error("the AI provider failed ({status}: {message})")]
    Upstream { status: u16, message: String },
    /// 400, 404, 422: the request (model name, size) is not what the provider accepts.
    #[error("the AI provider rejected the request ({status}: {message})")]
    Rejected { status: u16, message: String },
    #[error("the AI provider did not answer in time")]
    Timeout,
    #[error("the AI provider's answer could not be read: {0}")]
    BadResponse(String),
    #[error("the AI provider cannot be reached: {0}")]
    Unreachable(String),
}

impl AiError {
    /// The stable code of the API's error shape.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Unauthorized(_) => ErrorCode::AiUnauthorized,
            Self::RateLimited { .. } => ErrorCode::AiRateLimited,
            Self::Overloaded => ErrorCode::AiOverloaded,
            Self::Upstream { .. } => ErrorCode::AiUpstreamError,
            Self::Rejected { .. } => ErrorCode::AiRequestRejected,
            Self::Timeout => ErrorCode::AiTimeout,
            Self::BadResponse(_) => ErrorCode::AiBadResponse,
            Self::Unreachable(_) => ErrorCode::AiUnreachable,
        }
    }

    pub fn from_status(status: u16, retry_after_secs: Option<u64>, message: &str) -> Self {
        match status {
            401 | 403 => Self::Unauthorized(message.to_string()),
            429 => Self::RateLimited { retry_after_secs },
            // Anthropic's "overloaded"; a 503 that says so is the same thing.
            529 => Self::Overloaded,
            503 if message.to_ascii_lowercase().contains("overload") => Self::Overloaded,
            400 | 404 | 413 | 422 => Self::Rejected { status, message: message.to_string() },
            _ => Self::Upstream { status, message: message.to_string() },
        }
    }

    /// An error sent inside the stream (`{"type": "overloaded_error", "message": ...}` from
    /// Anthropic; `{"code": 429, "status": ..., "message": ...}` from Gemini and OpenAI).
    pub fn from_stream_error(error: &Value) -> Self {
        let kind = error["type"].as_str().or_else(|| error["status"].as_str()).unwrap_or_default().to_ascii_lowercase();
        // Whole: the key is redacted from the whole message before it is shortened.
        let message = error["message"].as_str().unwrap_or("no details").to_string();
        if kind.contains("overloaded") || kind == "unavailable" {
            return Self::Overloaded;
        }
        if kind.contains("rate_limit") || kind == "resource_exhausted" {
            return Self::RateLimited { retry_after_secs: None };
        }
        if kind.contains("authentication") || kind.contains("permission") {
            return Self::Unauthorized(message);
        }
        let status = error["code"].as_u64().and_then(|code| u16::try_from(code).ok()).unwrap_or(500);
        Self::Upstream { status, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_distinct_codes() {
        assert_eq!(AiError::from_status(401, None, "bad key").code(), ErrorCode::AiUnauthorized);
        assert_eq!(AiError::from_status(429, Some(7), "slow down"), AiError::RateLimited { retry_after_secs: Some(7) });
        assert_eq!(AiError::from_status(529, None, "Overloaded").code(), ErrorCode::AiOverloaded);
        assert_eq!(AiError::from_status(503, None, "The model is overloaded").code(), ErrorCode::AiOverloaded);
        assert_eq!(AiError::from_status(502, None, "bad gateway").code(), ErrorCode::AiUpstreamError);
        assert_eq!(AiError::from_status(404, None, "no such model").code(), ErrorCode::AiRequestRejected);
        assert_eq!(AiError::Timeout.code(), ErrorCode::AiTimeout);
        let overloaded = serde_json::json!({"type": "overloaded_error", "message": "Overloaded"});
        assert_eq!(AiError::from_stream_error(&overloaded), AiError::Overloaded);
    }
}
