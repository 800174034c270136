//! `/api/history`: a file's versions (save, list, read, diff, restore) and a room's event log.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use codesync_common::ErrorCode;
use codesync_proto::history::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::GatewayState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiPath, ApiQuery, MaybeSignedIn, OptionalJson, SignedIn};
use crate::routes::{limit_param, number_param, timestamp};

pub fn router() -> OpenApiRouter<GatewayState> {
    OpenApiRouter::new()
        .routes(routes!(save_version, list_versions))
        .routes(routes!(get_version))
        .routes(routes!(diff_versions))
        .routes(routes!(restore_version))
        .routes(routes!(list_room_events))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveBody {
    /// What this version is, at most 500 characters.
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreBody {
    /// The newest version number the client saw: if another version came since, the restore
    /// is refused with 409 rather than undoing it unseen.
    #[serde(default, deserialize_with = "super::optional_whole_number")]
    pub expected_head: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuthorBody {
    pub id: String,
    pub username: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionBody {
    pub id: String,
    pub file_id: String,
    pub room_id: String,
    /// 1, 2, 3, ... per file, without gaps.
    pub number: i64,
    /// `save` (explicit), `checkpoint` (automatic) or `restore`.
    pub kind: &'static str,
    /// Who saved, or who edited first since the previous version.
    pub author_id: String,
    pub author_username: String,
    /// Everyone who edited since the previous version.
    pub authors: Vec<AuthorBody>,
    pub message: String,
    pub lines_added: i64,
    pub lines_removed: i64,
    pub size_bytes: i64,
    pub created_at: String,
    /// Present when one version is fetched.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub content: Option<String>,
}

impl From<pb::Version> for VersionBody {
    fn from(version: pb::Version) -> Self {
        let kind = match pb::VersionKind::try_from(version.kind) {
            Ok(pb::VersionKind::Checkpoint) => "checkpoint",
            Ok(pb::VersionKind::Restore) => "restore",
            _ => "save",
        };
        Self {
            id: version.id,
            file_id: version.file_id,
            room_id: version.room_id,
            number: version.number,
            kind,
            author_id: version.author_id,
            author_username: version.author_username,
            authors: version
                .authors
                .into_iter()
                .map(|author| AuthorBody { id: author.id, username: author.username })
                .collect(),
            message: version.message,
            lines_added: version.lines_added,
            lines_removed: version.lines_removed,
            size_bytes: version.size_bytes,
            created_at: timestamp(version.created_at_ms),
            content: version.content,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionListBody {
    pub versions: Vec<VersionBody>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListVersionsParams {
    /// At most 200 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// Versions numbered below this one (for the next page).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 9223372036854775807_i64)]
    pub before: Option<String>,
}

/// Saves the file's current content as a new version (owner and editors).
#[utoipa::path(post, path = "/api/history/file/{file_id}", tag = "history", security(("bearer" = [])), request_body = Option<SaveBody>, responses(
    (status = 201, description = "the new version", body = VersionBody),
    (status = 400, description = "a message over 500 characters", body = ErrorBody),
    (status = 403, description = "a viewer", body = ErrorBody),
    (status = 404, description = "no such file", body = ErrorBody),
))]
async fn save_version(
    State(state): State<GatewayState>,
    user: SignedIn,
    ApiPath(file_id): ApiPath<String>,
    OptionalJson(body): OptionalJson<SaveBody>,
) -> Result<impl IntoResponse, ApiError> {
    let request = pb::CreateVersionRequest { file_id, message: body.message.unwrap_or_default() };
    let version = state.clients.history().create_version(user.context.request(request)).await?.into_inner();
    Ok((StatusCode::CREATED, axum::Json(VersionBody::from(version))))
}

/// The file's versions, newest first, without content.
#[utoipa::path(get, path = "/api/history/file/{file_id}", tag = "history", security((), ("bearer" = [])), params(ListVersionsParams), responses(
    (status = 200, description = "versions, newest first", body = VersionListBody),
    (status = 400, description = "a bad limit", body = ErrorBody),
    (status = 404, description = "no such file", body = ErrorBody),
))]
async fn list_versions(
    State(state): State<GatewayState>,
    visitor: MaybeSignedIn,
    ApiPath(file_id): ApiPath<String>,
    ApiQuery(params): ApiQuery<ListVersionsParams>,
) -> Result<axum::Json<VersionListBody>, ApiError> {
    let limit = limit_param(params.limit.as_deref(), 200)?;
    let before_number = number_param("before", params.before.as_deref())?;
    let request = pb::ListVersionsRequest { file_id, limit, before_number };
    let listed = state.clients.history().list_versions(visitor.context.request(request)).await?.into_inner();
    Ok(axum::Json(VersionListBody { versions: listed.versions.into_iter().map(VersionBody::from).collect() }))
}

/// One version with its content.
#[utoipa::path(get, path = "/api/history/version/{version_id}", tag = "history", security((), ("bearer" = [])), responses(
    (status = 200, description = "the version with its content", body = VersionBody),
    (status = 404, description = "no such version", body = ErrorBody),
))]
async fn get_version(
    State(state): State<GatewayState>,
    visitor: MaybeSignedIn,
    ApiPath(version_id): ApiPath<String>,
) -> Result<axum::Json<VersionBody>, ApiError> {
    let request = pb::GetVersionRequest { version_id };
    let version = state.clients.history().get_version(visitor.context.request(request)).await?.into_inner();
    Ok(axum::Json(VersionBody::from(version)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiffParams {
    /// The older version's id.
    #[param(required = true, schema_with = super::uuid_schema)]
    pub from: Option<String>,
    /// The newer version's id.
    #[param(required = true, schema_with = super::uuid_schema)]
    pub to: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DiffBody {
    pub from: String,
    pub to: String,
    /// A unified diff (`--- version N`, `+++ version M`, hunks with 3 lines of context).
    pub unified_diff: String,
    pub lines_added: i64,
    pub lines_removed: i64,
}

/// The unified diff between two versions of one file.
#[utoipa::path(get, path = "/api/history/diff", tag = "history", security((), ("bearer" = [])), params(DiffParams), responses(
    (status = 200, description = "the diff", body = DiffBody),
    (status = 400, description = "from or to missing", body = ErrorBody),
    (status = 404, description = "no such version, or versions of different files", body = ErrorBody),
))]
async fn diff_versions(
    State(state): State<GatewayState>,
    visitor: MaybeSignedIn,
    ApiQuery(params): ApiQuery<DiffParams>,
) -> Result<axum::Json<DiffBody>, ApiError> {
    let (Some(from), Some(to)) = (params.from, params.to) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::MissingVersions,
            "name two versions: ?from=ID&to=ID",
        ));
    };
    let request = pb::DiffVersionsRequest { from_version_id: from.clone(), to_version_id: to.clone() };
    let diff = state.clients.history().diff_versions(visitor.context.request(request)).await?.into_inner();
    Ok(axum::Json(DiffBody {
        from,
        to,
        unified_diff: diff.unified_diff,
        lines_added: diff.lines_added,
        lines_removed: diff.lines_removed,
    }))
}

/// Makes a version's content current again, as an edit every connected client sees at once
/// (edits made elsewhere in the file meanwhile are kept), recorded as a new version.
#[utoipa::path(post, path = "/api/history/restore/{version_id}", tag = "history", security(("bearer" = [])), request_body = Option<RestoreBody>, responses(
    (status = 201, description = "the new version holding the restored content", body = VersionBody),
    (status = 403, description = "a viewer", body = ErrorBody),
    (status = 404, description = "no such version", body = ErrorBody),
    (status = 409, description = "expected_head is not the newest version any more", body = ErrorBody),
))]
async fn restore_version(
    State(state): State<GatewayState>,
    user: SignedIn,
    ApiPath(version_id): ApiPath<String>,
    OptionalJson(body): OptionalJson<RestoreBody>,
) -> Result<impl IntoResponse, ApiError> {
    let request = pb::RestoreVersionRequest { version_id, expected_head: body.expected_head };
    let version = state.clients.history().restore_version(user.context.request(request)).await?.into_inner();
    Ok((StatusCode::CREATED, axum::Json(VersionBody::from(version))))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RoomEventsParams {
    /// At most 200 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// For the next page: the last event's `created_at_ms`...
    #[param(value_type = Option<i64>, minimum = 0, maximum = 9223372036854775807_i64)]
    pub before: Option<String>,
    /// ...and its `id` (events of the same millisecond are then neither repeated nor skipped).
    pub before_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoomEventBody {
    pub id: String,
    pub room_id: String,
    /// member_joined, member_role_changed, member_removed, room_created, file_created,
    /// file_renamed, file_deleted, version_created, execution_finished.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Who did it.
    pub user_id: String,
    /// The event's details.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    pub created_at: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoomEventListBody {
    pub events: Vec<RoomEventBody>,
}

/// The room's event log, newest first (members only).
#[utoipa::path(get, path = "/api/history/room/{room_id}/events", tag = "history", security(("bearer" = [])), params(RoomEventsParams), responses(
    (status = 200, description = "events, newest first", body = RoomEventListBody),
    (status = 403, description = "not a member", body = ErrorBody),
    (status = 404, description = "no such room", body = ErrorBody),
))]
async fn list_room_events(
    State(state): State<GatewayState>,
    user: SignedIn,
    ApiPath(room_id): ApiPath<String>,
    ApiQuery(params): ApiQuery<RoomEventsParams>,
) -> Result<axum::Json<RoomEventListBody>, ApiError> {
    let limit = limit_param(params.limit.as_deref(), 200)?;
    let before_ms = number_param("before", params.before.as_deref())?;
    let request =
        pb::ListRoomEventsRequest { room_id, limit, before_ms, before_id: params.before_id.unwrap_or_default() };
    let listed = state.clients.history().list_room_events(user.context.request(request)).await?.into_inner();
    let events = listed
        .events
        .into_iter()
        .map(|event| RoomEventBody {
            id: event.id,
            room_id: event.room_id,
            event_type: event.event_type,
            user_id: event.user_id,
            metadata: serde_json::from_str(&event.metadata_json).unwrap_or_else(|_| serde_json::json!({})),
            created_at: timestamp(event.created_at_ms),
            created_at_ms: event.created_at_ms,
        })
        .collect();
    Ok(axum::Json(RoomEventListBody { events }))
}
