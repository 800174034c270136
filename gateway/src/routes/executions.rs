//! `/api/executions`: running code in the sandbox (to the end, or streamed as server-sent
//! events), the caller's past runs, and the languages it runs.

use axum::extract::State;
use codesync_common::ErrorCode;
use codesync_proto::execution::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::GatewayState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, SignedIn};
use crate::routes::timestamp;
use crate::sse::Relayed;

/// A run's deadline: its wait for a slot, its compile and its run each end well before (the
/// execution service bounds them), so this only catches an execution service that hangs.
const RUN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

pub fn router() -> OpenApiRouter<GatewayState> {
    OpenApiRouter::new()
        .routes(routes!(list_languages))
        .routes(routes!(execute, list_executions))
        .routes(routes!(execute_stream))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceFileBody {
    #[schema(example = "main.py")]
    pub name: String,
    pub content: String,
}

/// Either `file_id` (a file of a room), or `language` (optional when the entry's extension
/// says it) with `files` and optionally `entry` (the first file by default).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteBody {
    #[serde(default, deserialize_with = "super::present")]
    pub file_id: Option<String>,
    #[serde(default, deserialize_with = "super::present")]
    #[schema(example = "python")]
    pub language: Option<String>,
    #[serde(default, deserialize_with = "super::present")]
    pub files: Option<Vec<SourceFileBody>>,
    #[serde(default, deserialize_with = "super::present")]
    pub entry: Option<String>,
    /// At most 1 MiB.
    #[serde(default, deserialize_with = "super::present")]
    pub stdin: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExecutionBody {
    pub id: String,
    pub language: String,
    /// `ok`, `compile_error`, `runtime_error`, `time_limit`, `memory_limit`, `output_limit` or `internal_error`.
    pub status: &'static str,
    pub stdout: String,
    pub stderr: String,
    /// -1 when the program did not exit by itself (killed at a limit).
    pub exit_code: i32,
    /// The signal that ended the program (9 when a limit stopped it), 0 if none. A program
    /// killed by signal N inside the sandbox also shows exit code 128 + N.
    pub signal: i32,
    pub wall_time_ms: i64,
    pub peak_memory_bytes: i64,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    /// The room and file run; empty for an inline program.
    pub room_id: String,
    pub file_id: String,
    pub created_at: String,
}

impl From<pb::ExecutionResult> for ExecutionBody {
    fn from(result: pb::ExecutionResult) -> Self {
        Self {
            id: result.id,
            language: result.language,
            status: pb::ExecutionStatus::api_name_of(result.status),
            stdout: result.stdout,
            stderr: result.stderr,
            exit_code: result.exit_code,
            signal: result.signal,
            wall_time_ms: result.wall_time_ms,
            peak_memory_bytes: result.peak_memory_bytes,
            stdout_truncated: result.stdout_truncated,
            stderr_truncated: result.stderr_truncated,
            room_id: result.room_id,
            file_id: result.file_id,
            created_at: timestamp(result.created_at_ms),
        }
    }
}

impl ExecuteBody {
    /// The run asked for: a room's file, or an inline program that names its language and files
    /// (SPEC section 3), never a mix of the two.
    fn into_request(self) -> Result<pb::ExecuteRequest, ApiError> {
        let invalid =
            |code: ErrorCode, message: &str| ApiError::new(axum::http::StatusCode::BAD_REQUEST, code, message);
        let inline = self.language.is_some() || self.files.is_some() || self.entry.is_some();
        let source = match (self.file_id, self.language, self.files) {
            (Some(_), ..) if inline => {
                return Err(invalid(ErrorCode::AmbiguousProgram, "send a file_id, or a language and files, not both"));
            }
            (Some(file_id), ..) => pb::execute_request::Source::FileId(file_id),
            (None, Some(language), Some(files)) => pb::execute_request::Source::Program(pb::InlineProgram {
                language,
                files: files
                    .into_iter()
                    .map(|file| pb::SourceFile { name: file.name, content: file.content })
                    .collect(),
                entry: self.entry.unwrap_or_default(),
            }),
            (None, ..) => {
                return Err(invalid(
                    ErrorCode::NoProgram,
                    "send a file_id, or a language and files (SPEC: {language, files, entry?})",
                ));
            }
        };
        Ok(pb::ExecuteRequest { source: Some(source), stdin: self.stdin.unwrap_or_default() })
    }
}

/// Runs a program in the sandbox and answers when it ended (compile, then run).
#[utoipa::path(post, path = "/api/executions", tag = "executions", security(("bearer" = [])), request_body = ExecuteBody, responses(
    (status = 200, description = "the run's result, whatever the program did", body = ExecutionBody),
    (status = 400, description = "no program, an unknown language or entry, a bad file name", body = ErrorBody),
    (status = 404, description = "no such file, or the entry names none of the files", body = ErrorBody),
    (status = 413, description = "files or stdin too large", body = ErrorBody),
    (status = 422, description = "the language is not installed here", body = ErrorBody),
    (status = 503, description = "this server cannot run code (no sandbox)", body = ErrorBody),
))]
async fn execute(
    State(state): State<GatewayState>,
    caller: SignedIn,
    ApiJson(body): ApiJson<ExecuteBody>,
) -> Result<axum::Json<ExecutionBody>, ApiError> {
    let context = caller.context.with_timeout(RUN_DEADLINE);
    let result = state.clients.execution().execute(context.request(body.into_request()?)).await?.into_inner();
    Ok(axum::Json(ExecutionBody::from(result)))
}

/// Runs a program and streams what it prints while it runs, as server-sent events: `stdout`
/// and `stderr` events (`{"text": "..."}`, in the order printed), then one `result` event (the
/// same body as `POST /api/executions`), or an `error` event (`{"error": {code, message}}`).
/// Closing the stream kills the run. Refusals (bad program, 429, 503) come before the stream,
/// as ordinary JSON errors.
#[utoipa::path(post, path = "/api/executions/stream", tag = "executions", security(("bearer" = [])), request_body = ExecuteBody, responses(
    (status = 200, description = "text/event-stream: stdout, stderr, then result", content_type = "text/event-stream", body = String),
    (status = 400, description = "no program, an unknown language or entry, a bad file name", body = ErrorBody),
    (status = 404, description = "no such file, or the entry names none of the files", body = ErrorBody),
    (status = 413, description = "files or stdin too large", body = ErrorBody),
    (status = 429, description = "too many runs", body = ErrorBody),
    (status = 503, description = "this server cannot run code now", body = ErrorBody),
))]
async fn execute_stream(
    State(state): State<GatewayState>,
    caller: SignedIn,
    ApiJson(body): ApiJson<ExecuteBody>,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    let context = caller.context.with_timeout(RUN_DEADLINE);
    let events = state.clients.execution().execute_stream(context.request(body.into_request()?)).await?;
    let events = events.into_inner();
    let mut stdout = Utf8Chunks::default();
    let mut stderr = Utf8Chunks::default();
    Ok(crate::sse::relay(events, move |event: pb::ExecutionEvent| {
        let text = |name: &'static str, text: Option<String>| Relayed {
            event: text.map(|text| (name, serde_json::json!({ "text": text }))),
            last: false,
        };
        match event.event {
            Some(pb::execution_event::Event::Stdout(bytes)) => text("stdout", stdout.push(&bytes)),
            Some(pb::execution_event::Event::Stderr(bytes)) => text("stderr", stderr.push(&bytes)),
            Some(pb::execution_event::Event::Result(result)) => Relayed {
                event: Some(("result", serde_json::to_value(ExecutionBody::from(result)).unwrap_or_default())),
                last: true,
            },
            None => Relayed { event: None, last: false },
        }
    }))
}

/// Output arrives in chunks cut anywhere, also inside a UTF-8 sequence: the incomplete tail of
/// a chunk waits for the next one. Bytes that are not UTF-8 at all become U+FFFD.
#[derive(Default)]
struct Utf8Chunks {
    pending: Vec<u8>,
}

impl Utf8Chunks {
    fn push(&mut self, bytes: &[u8]) -> Option<String> {
        self.pending.extend_from_slice(bytes);
        let complete = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            // An incomplete sequence at the end (at most 3 bytes) waits for more.
            Err(error) if error.error_len().is_none() && self.pending.len() - error.valid_up_to() < 4 => {
                error.valid_up_to()
            }
            Err(_) => self.pending.len(),
        };
        if complete == 0 {
            return None;
        }
        let rest = self.pending.split_off(complete);
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending = rest;
        Some(text)
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListExecutionsParams {
    /// At most 100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// Only runs of this room's files.
    #[param(schema_with = super::uuid_schema)]
    pub room_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExecutionListBody {
    pub executions: Vec<ExecutionBody>,
}

/// The caller's past runs, newest first.
#[utoipa::path(get, path = "/api/executions", tag = "executions", security(("bearer" = [])), params(ListExecutionsParams), responses(
    (status = 200, description = "runs, newest first", body = ExecutionListBody),
    (status = 400, description = "a bad limit", body = ErrorBody),
))]
async fn list_executions(
    State(state): State<GatewayState>,
    caller: SignedIn,
    ApiQuery(params): ApiQuery<ListExecutionsParams>,
) -> Result<axum::Json<ExecutionListBody>, ApiError> {
    let limit = super::limit_param(params.limit.as_deref(), 100)?;
    let request = pb::ListExecutionsRequest { limit, room_id: params.room_id.unwrap_or_default() };
    let listed = state.clients.execution().list_executions(caller.context.request(request)).await?.into_inner();
    Ok(axum::Json(ExecutionListBody { executions: listed.executions.into_iter().map(ExecutionBody::from).collect() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_split_across_chunks_is_joined_and_garbage_is_replaced() {
        let mut chunks = Utf8Chunks::default();
        let snowman = "☃".as_bytes();
        assert_eq!(chunks.push(b"a"), Some("a".to_string()));
        assert_eq!(chunks.push(&snowman[..1]), None);
        assert_eq!(chunks.push(&snowman[1..2]), None);
        let mut rest = snowman[2..].to_vec();
        rest.extend_from_slice(b"b");
        assert_eq!(chunks.push(&rest), Some("☃b".to_string()));
        assert_eq!(chunks.push(&[0xff, b'c']), Some("\u{fffd}c".to_string()));
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LanguageBody {
    /// The name runs use: `python`, `javascript`, `java`, `cpp`, `c`, ...
    pub name: String,
    /// The installed runtime's own version line; empty when not installed.
    pub version: String,
    pub extensions: Vec<String>,
    /// Whether this server can run it (its compiler or interpreter is installed).
    pub available: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LanguageListBody {
    pub languages: Vec<LanguageBody>,
    /// Why no code can run on this server at all (its sandbox cannot be set up, or cannot enforce
    /// every limit), as a run would be refused with (503); null when runs can happen.
    pub unavailable_reason: Option<String>,
}

/// The languages code can be run in, and whether each is installed on this server.
#[utoipa::path(get, path = "/api/executions/languages", tag = "executions", security(("bearer" = [])), responses(
    (status = 200, description = "languages", body = LanguageListBody),
    (status = 401, description = "not signed in", body = ErrorBody),
))]
async fn list_languages(
    State(state): State<GatewayState>,
    caller: SignedIn,
) -> Result<axum::Json<LanguageListBody>, ApiError> {
    let listed = state.clients.execution().list_languages(caller.context.request(pb::ListLanguagesRequest {})).await?;
    let listed = listed.into_inner();
    let unavailable_reason = Some(listed.unavailable_reason).filter(|reason| !reason.is_empty());
    let languages = listed
        .languages
        .into_iter()
        .map(|language| LanguageBody {
            name: language.name,
            version: language.version,
            extensions: language.extensions,
            available: language.available,
        })
        .collect();
    Ok(axum::Json(LanguageListBody { languages, unavailable_reason }))
}
