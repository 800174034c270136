//! `/api/rooms/{room_id}/files` and `/api/files/{file_id}`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use codesync_common::ErrorCode;
use codesync_proto::documents::v1::GetDocumentRequest;
use codesync_proto::rooms::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{none_if_null, timestamp};
use crate::GatewayState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, MaybeSignedIn, SignedIn};

pub fn router() -> OpenApiRouter<GatewayState> {
    OpenApiRouter::new().routes(routes!(list_files, create_file)).routes(routes!(get_file, update_file, delete_file))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateFileBody {
    /// A path in the room (`src/app/main.py`): `/`-separated parts, each 1 to 255 bytes with no
    /// `\`, control characters, `.` or `..`; at most 16 parts and 1024 bytes.
    #[schema(example = "src/main.py")]
    pub filename: String,
    #[serde(default, deserialize_with = "none_if_null")]
    pub content: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateFileBody {
    /// A new name; the language follows it.
    #[serde(default, deserialize_with = "none_if_null")]
    pub filename: Option<String>,
    /// New content, replacing the old.
    #[serde(default, deserialize_with = "none_if_null")]
    pub content: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FileBody {
    pub id: String,
    pub room_id: String,
    pub filename: String,
    /// Derived from the file name: `python`, `javascript`, `java`, `cpp`, ...
    pub language: String,
    /// Present when one file is fetched, created or updated.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub content: Option<String>,
    pub size_bytes: i64,
    pub created_by: String,
    pub updated_by: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FileListBody {
    pub files: Vec<FileBody>,
}

pub(crate) fn file_body(file: pb::File) -> FileBody {
    FileBody {
        id: file.id,
        room_id: file.room_id,
        filename: file.filename,
        language: file.language,
        content: file.content,
        size_bytes: file.size_bytes,
        created_by: file.created_by,
        updated_by: file.updated_by,
        created_at: timestamp(file.created_at_ms),
        updated_at: timestamp(file.updated_at_ms),
    }
}

/// The room's files, without content, by name.
#[utoipa::path(get, path = "/api/rooms/{room_id}/files", tag = "files", security((), ("bearer" = [])), responses(
    (status = 200, description = "files", body = FileListBody),
    (status = 404, description = "no such room", body = ErrorBody),
))]
async fn list_files(
    State(state): State<GatewayState>,
    visitor: MaybeSignedIn,
    ApiPath(room_id): ApiPath<String>,
) -> Result<axum::Json<FileListBody>, ApiError> {
    let files = state.clients.rooms().list_files(visitor.context.request(pb::ListFilesRequest { room_id })).await?;
    Ok(axum::Json(FileListBody { files: files.into_inner().files.into_iter().map(file_body).collect() }))
}

/// Creates a file (owner and editors).
#[utoipa::path(post, path = "/api/rooms/{room_id}/files", tag = "files", security(("bearer" = [])), request_body = CreateFileBody, responses(
    (status = 201, description = "the new file", body = FileBody),
    (status = 400, description = "invalid file name", body = ErrorBody),
    (status = 403, description = "a viewer or a non-member", body = ErrorBody),
    (status = 404, description = "no such room", body = ErrorBody),
    (status = 409, description = "the name is taken in this room", body = ErrorBody),
    (status = 413, description = "content over 1 MiB", body = ErrorBody),
))]
async fn create_file(
    State(state): State<GatewayState>,
    user: SignedIn,
    ApiPath(room_id): ApiPath<String>,
    ApiJson(body): ApiJson<CreateFileBody>,
) -> Result<impl IntoResponse, ApiError> {
    let message = pb::CreateFileRequest { room_id, filename: body.filename, content: body.content.unwrap_or_default() };
    let file = state.clients.rooms().create_file(user.context.request(message)).await?.into_inner();
    Ok((StatusCode::CREATED, axum::Json(file_body(file))))
}

/// One file with its content.
#[utoipa::path(get, path = "/api/files/{file_id}", tag = "files", security((), ("bearer" = [])), responses(
    (status = 200, description = "the file", body = FileBody),
    (status = 404, description = "no such file, or one of a private room of others", body = ErrorBody),
))]
async fn get_file(
    State(state): State<GatewayState>,
    visitor: MaybeSignedIn,
    ApiPath(file_id): ApiPath<String>,
) -> Result<axum::Json<FileBody>, ApiError> {
    let request = visitor.context.request(pb::GetFileRequest { file_id: file_id.clone() });
    let mut file = state.clients.rooms().get_file(request).await?.into_inner();
    // The live document is the content; the rooms service holds the initial text.
    let document = state
        .clients
        .documents()
        .get_document(visitor.context.request(GetDocumentRequest { file_id, include_state: false }))
        .await?;
    let text = document.into_inner().text;
    file.size_bytes = i64::try_from(text.len()).unwrap_or(i64::MAX);
    file.content = Some(text);
    Ok(axum::Json(file_body(file)))
}

/// Renames a file and/or replaces its content (owner and editors).
#[utoipa::path(patch, path = "/api/files/{file_id}", tag = "files", security(("bearer" = [])), request_body = UpdateFileBody, responses(
    (status = 200, description = "the updated file", body = FileBody),
    (status = 400, description = "invalid name, or nothing to change", body = ErrorBody),
    (status = 403, description = "a viewer or a non-member", body = ErrorBody),
    (status = 404, description = "no such file", body = ErrorBody),
    (status = 409, description = "the name is taken in this room", body = ErrorBody),
))]
async fn update_file(
    State(state): State<GatewayState>,
    user: SignedIn,
    ApiPath(file_id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateFileBody>,
) -> Result<axum::Json<FileBody>, ApiError> {
    if body.filename.is_none() && body.content.is_none() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::EmptyUpdate,
            "give a new filename, new content, or both",
        ));
    }
    // The rooms service renames and replaces the live text (a minimal edit that connected editors
    // see), as it does for a direct gRPC caller.
    let message = pb::UpdateFileRequest { file_id, filename: body.filename, content: body.content };
    let file = state.clients.rooms().update_file(user.context.request(message)).await?.into_inner();
    Ok(axum::Json(file_body(file)))
}

/// Deletes a file (owner and editors).
#[utoipa::path(delete, path = "/api/files/{file_id}", tag = "files", security(("bearer" = [])), responses(
    (status = 204, description = "deleted"),
    (status = 403, description = "a viewer or a non-member", body = ErrorBody),
    (status = 404, description = "no such file", body = ErrorBody),
))]
async fn delete_file(
    State(state): State<GatewayState>,
    user: SignedIn,
    ApiPath(file_id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    // The documents service removes the file's document when it hears of the deletion
    // (`file_deleted`), as it does after a direct gRPC `DeleteFile`.
    state.clients.rooms().delete_file(user.context.request(pb::DeleteFileRequest { file_id })).await?;
    Ok(StatusCode::NO_CONTENT)
}
