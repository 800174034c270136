//! `/api/executions`: running code in the sandbox, and the languages it runs.

use axum::extract::State;
use codesync_proto::execution::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::GatewayState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, SignedIn};
use crate::routes::timestamp;

pub fn router() -> OpenApiRouter<GatewayState> {
    OpenApiRouter::new().routes(routes!(list_languages)).routes(routes!(execute))
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
    #[serde(default)]
    pub file_id: Option<String>,
    #[serde(default)]
    #[schema(example = "python")]
    pub language: Option<String>,
    #[serde(default)]
    pub files: Vec<SourceFileBody>,
    #[serde(default)]
    pub entry: Option<String>,
    /// At most 1 MiB.
    #[serde(default)]
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
    /// -1 when the program did not exit by itself (killed at a limit, or by a signal).
    pub exit_code: i32,
    pub wall_time_ms: i64,
    pub peak_memory_bytes: i64,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub created_at: String,
}

fn status_name(status: i32) -> &'static str {
    match pb::ExecutionStatus::try_from(status) {
        Ok(pb::ExecutionStatus::Ok) => "ok",
        Ok(pb::ExecutionStatus::CompileError) => "compile_error",
        Ok(pb::ExecutionStatus::RuntimeError) => "runtime_error",
        Ok(pb::ExecutionStatus::TimeLimit) => "time_limit",
        Ok(pb::ExecutionStatus::MemoryLimit) => "memory_limit",
        Ok(pb::ExecutionStatus::OutputLimit) => "output_limit",
        _ => "internal_error",
    }
}

/// Runs a program in the sandbox and answers when it ended (compile, then run).
#[utoipa::path(post, path = "/api/executions", tag = "executions", security(("bearer" = [])), request_body = ExecuteBody, responses(
    (status = 200, description = "the run's result, whatever the program did", body = ExecutionBody),
    (status = 400, description = "no program, an unknown language or entry, a bad file name", body = ErrorBody),
    (status = 413, description = "files or stdin too large", body = ErrorBody),
    (status = 422, description = "the language is not installed here", body = ErrorBody),
    (status = 503, description = "this server cannot run code (no sandbox)", body = ErrorBody),
))]
async fn execute(
    State(state): State<GatewayState>,
    caller: SignedIn,
    ApiJson(body): ApiJson<ExecuteBody>,
) -> Result<axum::Json<ExecutionBody>, ApiError> {
    let source = match body.file_id {
        Some(file_id) => pb::execute_request::Source::FileId(file_id),
        None => pb::execute_request::Source::Program(pb::InlineProgram {
            language: body.language.unwrap_or_default(),
            files: body
                .files
                .into_iter()
                .map(|file| pb::SourceFile { name: file.name, content: file.content })
                .collect(),
            entry: body.entry.unwrap_or_default(),
        }),
    };
    let request = pb::ExecuteRequest { source: Some(source), stdin: body.stdin.unwrap_or_default() };
    let result = state.clients.execution().execute(caller.context.request(request)).await?.into_inner();
    Ok(axum::Json(ExecutionBody {
        id: result.id,
        language: result.language,
        status: status_name(result.status),
        stdout: result.stdout,
        stderr: result.stderr,
        exit_code: result.exit_code,
        wall_time_ms: result.wall_time_ms,
        peak_memory_bytes: result.peak_memory_bytes,
        stdout_truncated: result.stdout_truncated,
        stderr_truncated: result.stderr_truncated,
        created_at: timestamp(result.created_at_ms),
    }))
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
    let languages =
        state.clients.execution().list_languages(caller.context.request(pb::ListLanguagesRequest {})).await?;
    let languages = languages
        .into_inner()
        .languages
        .into_iter()
        .map(|language| LanguageBody {
            name: language.name,
            version: language.version,
            extensions: language.extensions,
            available: language.available,
        })
        .collect();
    Ok(axum::Json(LanguageListBody { languages }))
}
