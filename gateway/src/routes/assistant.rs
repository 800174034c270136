//! `/api/ai`: the assistant's answers as server-sent events, stopping one, and whether a
//! provider is configured.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use codesync_common::ErrorCode;
use codesync_proto::assistant::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::GatewayState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, SignedIn};
use crate::sse::Relayed;

pub fn router() -> OpenApiRouter<GatewayState> {
    OpenApiRouter::new().routes(routes!(stream)).routes(routes!(cancel)).routes(routes!(status))
}

/// A place in the file: 1-based line and column, as the editor counts them.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PositionBody {
    #[serde(deserialize_with = "super::whole_number")]
    pub line: u32,
    #[serde(deserialize_with = "super::whole_number")]
    pub column: u32,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectionBody {
    pub start: PositionBody,
    pub end: PositionBody,
}

/// A question for the assistant: the mode, and a file of a room (`file_id`, whose live content
/// is read with the caller's access) or inline `code`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AskBody {
    /// generate, chat, review, debug, explain, refactor, complete or docs
    #[schema(example = "explain")]
    pub mode: String,
    #[serde(default)]
    pub file_id: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub selection: Option<SelectionBody>,
    #[serde(default)]
    pub cursor: Option<PositionBody>,
    #[serde(default)]
    pub prompt: Option<String>,
    /// Earlier turns of the conversation, oldest first; the latest that fit are sent on.
    #[serde(default)]
    pub history: Vec<HistoryTurnBody>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryTurnBody {
    /// `user` or `assistant`
    pub role: String,
    pub text: String,
}

const MODES: &str = "generate, chat, review, debug, explain, refactor, complete or docs";

/// Streams the answer as server-sent events: `start` (`{interaction_id}`, which
/// `POST /api/ai/cancel/{id}` takes), `token` (`{text}`) as the provider sends them, then `done`
/// (`{interaction_id, provider, model, latency_ms, time_to_first_token_ms, input_tokens,
/// output_tokens}`) or `error` (`{"error": {code, message}}`: `ai_unauthorized`,
/// `ai_rate_limited`, `ai_overloaded`, `ai_upstream_error`, `ai_request_rejected`, `ai_timeout`,
/// `ai_bad_response`, `ai_unreachable`). Closing the stream aborts the upstream request.
#[utoipa::path(post, path = "/api/ai/stream", operation_id = "ask", tag = "assistant", security(("bearer" = [])), request_body = AskBody, responses(
    (status = 200, description = "text/event-stream: start, token..., then done or error", content_type = "text/event-stream", body = String),
    (status = 400, description = "an unknown mode, nothing to ask about", body = ErrorBody),
    (status = 404, description = "the file does not exist or is not the caller's to read", body = ErrorBody),
    (status = 413, description = "the prompt or the code is too large", body = ErrorBody),
    (status = 429, description = "too many requests, or too many answers streaming at once", body = ErrorBody),
    (status = 503, description = "ai_not_configured: no provider is configured on this server", body = ErrorBody),
))]
async fn stream(
    State(state): State<GatewayState>,
    caller: SignedIn,
    ApiJson(body): ApiJson<AskBody>,
) -> Result<impl IntoResponse, ApiError> {
    let mode = pb::Mode::from_api_name(&body.mode).ok_or_else(|| {
        ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::UnknownMode, format!("mode must be {MODES}"))
    })?;
    if let Some(turn) = body.history.iter().find(|turn| turn.role != "user" && turn.role != "assistant") {
        let message = format!("a history turn's role is \"user\" or \"assistant\", not {:?}", turn.role);
        return Err(ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidHistory, message));
    }
    // An id that cannot name a file names none the caller may read.
    if body.file_id.as_deref().is_some_and(|file_id| !codesync_common::is_valid_id(file_id)) {
        return Err(ApiError::new(StatusCode::NOT_FOUND, ErrorCode::FileNotFound, "no such file"));
    }
    let position = |position: PositionBody| pb::Position { line: position.line, column: position.column };
    let request = pb::AskRequest {
        mode: mode.into(),
        file_id: body.file_id.unwrap_or_default(),
        code: body.code.unwrap_or_default(),
        language: body.language.unwrap_or_default(),
        selection: body.selection.map(|selection| pb::Selection {
            start: Some(position(selection.start)),
            end: Some(position(selection.end)),
        }),
        cursor: body.cursor.map(position),
        prompt: body.prompt.unwrap_or_default(),
        history: body
            .history
            .into_iter()
            .map(|turn| pb::HistoryTurn { from_assistant: turn.role == "assistant", text: turn.text })
            .collect(),
    };
    let answer = state.clients.assistant().ask(caller.context.request(request)).await?.into_inner();
    Ok(crate::sse::relay(answer, |event: pb::AskEvent| match event.event {
        Some(pb::ask_event::Event::Started(started)) => Relayed {
            event: Some(("start", serde_json::json!({"interaction_id": started.interaction_id}))),
            last: false,
        },
        Some(pb::ask_event::Event::Token(text)) => {
            Relayed { event: Some(("token", serde_json::json!({ "text": text }))), last: false }
        }
        Some(pb::ask_event::Event::Done(done)) => Relayed {
            event: Some((
                "done",
                serde_json::json!({
                    "interaction_id": done.interaction_id,
                    "provider": done.provider,
                    "model": done.model,
                    "latency_ms": done.latency_ms,
                    "time_to_first_token_ms": done.time_to_first_token_ms,
                    "input_tokens": done.input_tokens,
                    "output_tokens": done.output_tokens,
                }),
            )),
            last: true,
        },
        Some(pb::ask_event::Event::Error(error)) => Relayed {
            event: Some((
                "error",
                serde_json::json!({"error": {
                    "code": ErrorCode::from_wire(&error.code, ErrorCode::InternalError),
                    "message": error.message,
                }}),
            )),
            last: true,
        },
        None => Relayed { event: None, last: false },
    }))
}

/// Stops one of the caller's answers in flight, and its upstream request.
#[utoipa::path(post, path = "/api/ai/cancel/{id}", operation_id = "cancel_answer", tag = "assistant", security(("bearer" = [])), params(("id" = String, Path, description = "the interaction id of the `start` event")), responses(
    (status = 204, description = "stopped"),
    (status = 404, description = "no answer of the caller's with this id is in flight", body = ErrorBody),
))]
async fn cancel(
    State(state): State<GatewayState>,
    caller: SignedIn,
    Path(interaction_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.clients.assistant().cancel(caller.context.request(pb::CancelRequest { interaction_id })).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssistantStatusBody {
    pub configured: bool,
    /// openai, anthropic or gemini; empty when not configured.
    pub provider: String,
    pub model: String,
    /// When not configured: how to configure a provider.
    pub message: String,
}

/// Whether an AI provider is configured, and which; the key is never shown.
#[utoipa::path(get, path = "/api/ai/status", operation_id = "assistant_status", tag = "assistant", security(("bearer" = [])), responses(
    (status = 200, description = "the assistant's status", body = AssistantStatusBody),
))]
async fn status(
    State(state): State<GatewayState>,
    caller: SignedIn,
) -> Result<axum::Json<AssistantStatusBody>, ApiError> {
    let status =
        state.clients.assistant().get_status(caller.context.request(pb::GetStatusRequest {})).await?.into_inner();
    Ok(axum::Json(AssistantStatusBody {
        configured: status.configured,
        provider: status.provider,
        model: status.model,
        message: status.message,
    }))
}
