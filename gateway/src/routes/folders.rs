//! `/api/rooms/{room_id}/folders`: a folder moved or deleted with everything in it.

use axum::extract::State;
use codesync_proto::rooms::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::files::{FileBody, file_body};
use crate::GatewayState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, SignedIn};

pub fn router() -> OpenApiRouter<GatewayState> {
    OpenApiRouter::new().routes(routes!(move_folder)).routes(routes!(delete_folder))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveFolderBody {
    /// The folder's path.
    #[schema(example = "src/app")]
    pub from: String,
    /// Its new path; the files keep their ids and live documents.
    #[schema(example = "lib/app")]
    pub to: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MovedFolderBody {
    /// The moved files at their new paths.
    pub files: Vec<FileBody>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FolderQuery {
    /// The folder's path.
    pub path: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedFolderBody {
    pub deleted_file_ids: Vec<String>,
}

/// Moves or renames a folder with every file in it, at once (owner and editors).
#[utoipa::path(post, path = "/api/rooms/{room_id}/folders/move", tag = "files", security(("bearer" = [])), request_body = MoveFolderBody, responses(
    (status = 200, description = "the moved files", body = MovedFolderBody),
    (status = 400, description = "an invalid path, or a folder moved into itself", body = ErrorBody),
    (status = 403, description = "a viewer or a non-member", body = ErrorBody),
    (status = 404, description = "no such room, or no file in that folder", body = ErrorBody),
    (status = 409, description = "a moved file would clash with another (`file_exists`, `path_conflict`)", body = ErrorBody),
))]
async fn move_folder(
    State(state): State<GatewayState>,
    user: SignedIn,
    ApiPath(room_id): ApiPath<String>,
    ApiJson(body): ApiJson<MoveFolderBody>,
) -> Result<axum::Json<MovedFolderBody>, ApiError> {
    let message = pb::MoveFolderRequest { room_id, from: body.from, to: body.to };
    let moved = state.clients.rooms().move_folder(user.context.request(message)).await?.into_inner();
    Ok(axum::Json(MovedFolderBody { files: moved.files.into_iter().map(file_body).collect() }))
}

/// Deletes a folder and every file in it (owner and editors).
#[utoipa::path(delete, path = "/api/rooms/{room_id}/folders", tag = "files", security(("bearer" = [])), params(FolderQuery), responses(
    (status = 200, description = "the deleted files", body = DeletedFolderBody),
    (status = 403, description = "a viewer or a non-member", body = ErrorBody),
    (status = 404, description = "no such room, or no file in that folder", body = ErrorBody),
))]
async fn delete_folder(
    State(state): State<GatewayState>,
    user: SignedIn,
    ApiPath(room_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<FolderQuery>,
) -> Result<axum::Json<DeletedFolderBody>, ApiError> {
    let message = pb::DeleteFolderRequest { room_id, path: query.path };
    let deleted = state.clients.rooms().delete_folder(user.context.request(message)).await?.into_inner();
    Ok(axum::Json(DeletedFolderBody { deleted_file_ids: deleted.deleted_file_ids }))
}
