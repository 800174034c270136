//! `/api/rooms/*`: rooms, joining by invite code, invite codes, members.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use codesync_common::ErrorCode;
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
    OpenApiRouter::new()
        .routes(routes!(list_rooms, create_room))
        .routes(routes!(join_room))
        .routes(routes!(get_room, update_room, delete_room))
        .routes(routes!(regenerate_invite_code))
        .routes(routes!(list_members))
        .routes(routes!(update_member, remove_member))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoomBody {
    /// 1 to 100 characters.
    #[schema(example = "Algorithms study group")]
    pub name: String,
    #[serde(default, deserialize_with = "none_if_null")]
    pub description: Option<String>,
    /// Public rooms are listed to and readable by everyone; only members edit.
    pub is_public: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRoomBody {
    #[serde(default, deserialize_with = "none_if_null")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "none_if_null")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "none_if_null")]
    pub is_public: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinRoomBody {
    pub invite_code: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMemberBody {
    /// `editor` or `viewer`.
    #[schema(example = "viewer")]
    pub role: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoomBody {
    pub id: String,
    pub name: String,
    pub description: String,
    pub is_public: bool,
    pub owner_id: String,
    /// Shown to the owner and editors only; `null` for everyone else.
    #[schema(required = true)]
    pub invite_code: Option<String>,
    /// The caller's role (`owner`, `editor`, `viewer`), `null` when not a member.
    #[schema(required = true)]
    pub my_role: Option<&'static str>,
    pub member_count: i64,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoomListBody {
    pub rooms: Vec<RoomBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberBody {
    pub room_id: String,
    pub user_id: String,
    pub username: String,
    pub role: &'static str,
    pub joined_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberListBody {
    pub members: Vec<MemberBody>,
}

pub fn role_name(role: i32) -> Option<&'static str> {
    pb::Role::of(role).name()
}

fn role_from_name(name: &str) -> Result<pb::Role, ApiError> {
    pb::Role::from_name(name).ok_or_else(|| {
        ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRole, "the role must be 'editor' or 'viewer'")
    })
}

fn room_body(room: pb::Room) -> RoomBody {
    RoomBody {
        my_role: role_name(room.my_role),
        id: room.id,
        name: room.name,
        description: room.description,
        is_public: room.is_public,
        owner_id: room.owner_id,
        invite_code: room.invite_code,
        member_count: room.member_count,
        created_at: timestamp(room.created_at_ms),
        updated_at: timestamp(room.updated_at_ms),
    }
}

fn member_body(member: pb::Member) -> MemberBody {
    MemberBody {
        role: role_name(member.role).unwrap_or("viewer"),
        room_id: member.room_id,
        user_id: member.user_id,
        username: member.username,
        joined_at: timestamp(member.joined_at_ms),
    }
}

/// The caller's rooms and every public room (all public rooms for anonymous callers), most recently updated first.
#[utoipa::path(get, path = "/api/rooms", tag = "rooms", security((), ("bearer" = [])), responses(
    (status = 200, description = "rooms", body = RoomListBody),
))]
async fn list_rooms(
    State(state): State<GatewayState>,
    visitor: MaybeSignedIn,
) -> Result<axum::Json<RoomListBody>, ApiError> {
    let rooms =
        state.clients.rooms().list_rooms(visitor.context.request(pb::ListRoomsRequest {})).await?.into_inner().rooms;
    Ok(axum::Json(RoomListBody { rooms: rooms.into_iter().map(room_body).collect() }))
}

/// Creates a room owned by the caller.
#[utoipa::path(post, path = "/api/rooms", tag = "rooms", security(("bearer" = [])), request_body = CreateRoomBody, responses(
    (status = 201, description = "the new room", body = RoomBody),
    (status = 400, description = "invalid name or description", body = ErrorBody),
    (status = 401, description = "not signed in", body = ErrorBody),
))]
async fn create_room(
    State(state): State<GatewayState>,
    user: SignedIn,
    ApiJson(body): ApiJson<CreateRoomBody>,
) -> Result<impl IntoResponse, ApiError> {
    let message = pb::CreateRoomRequest {
        name: body.name,
        description: body.description.unwrap_or_default(),
        is_public: body.is_public,
    };
    let room = state.clients.rooms().create_room(user.context.request(message)).await?.into_inner();
    Ok((StatusCode::CREATED, axum::Json(room_body(room))))
}

/// Joins the room with this invite code as an editor; a member keeps its role.
#[utoipa::path(post, path = "/api/rooms/join", tag = "rooms", security(("bearer" = [])), request_body = JoinRoomBody, responses(
    (status = 200, description = "the joined room", body = RoomBody),
    (status = 404, description = "no room has this code", body = ErrorBody),
))]
async fn join_room(
    State(state): State<GatewayState>,
    user: SignedIn,
    ApiJson(body): ApiJson<JoinRoomBody>,
) -> Result<axum::Json<RoomBody>, ApiError> {
    let message = pb::JoinRoomRequest { invite_code: body.invite_code };
    let room = state.clients.rooms().join_room(user.context.request(message)).await?.into_inner();
    Ok(axum::Json(room_body(room)))
}

/// One room. A private room is 404 to non-members.
#[utoipa::path(get, path = "/api/rooms/{room_id}", tag = "rooms", security((), ("bearer" = [])), responses(
    (status = 200, description = "the room", body = RoomBody),
    (status = 404, description = "no such room, or a private room of others", body = ErrorBody),
))]
async fn get_room(
    State(state): State<GatewayState>,
    visitor: MaybeSignedIn,
    ApiPath(room_id): ApiPath<String>,
) -> Result<axum::Json<RoomBody>, ApiError> {
    let room =
        state.clients.rooms().get_room(visitor.context.request(pb::GetRoomRequest { room_id })).await?.into_inner();
    Ok(axum::Json(room_body(room)))
}

/// Changes a room's name, description or visibility (owner only).
#[utoipa::path(patch, path = "/api/rooms/{room_id}", tag = "rooms", security(("bearer" = [])), request_body = UpdateRoomBody, responses(
    (status = 200, description = "the updated room", body = RoomBody),
    (status = 403, description = "not the owner", body = ErrorBody),
    (status = 404, description = "no such room", body = ErrorBody),
))]
async fn update_room(
    State(state): State<GatewayState>,
    user: SignedIn,
    ApiPath(room_id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateRoomBody>,
) -> Result<axum::Json<RoomBody>, ApiError> {
    let message =
        pb::UpdateRoomRequest { room_id, name: body.name, description: body.description, is_public: body.is_public };
    let room = state.clients.rooms().update_room(user.context.request(message)).await?.into_inner();
    Ok(axum::Json(room_body(room)))
}

/// Deletes a room with its members and files (owner only).
#[utoipa::path(delete, path = "/api/rooms/{room_id}", tag = "rooms", security(("bearer" = [])), responses(
    (status = 204, description = "deleted"),
    (status = 403, description = "not the owner", body = ErrorBody),
    (status = 404, description = "no such room", body = ErrorBody),
))]
async fn delete_room(
    State(state): State<GatewayState>,
    user: SignedIn,
    ApiPath(room_id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.clients.rooms().delete_room(user.context.request(pb::DeleteRoomRequest { room_id })).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces the room's invite code; the old one stops working (owner only).
#[utoipa::path(post, path = "/api/rooms/{room_id}/invite-code", tag = "rooms", security(("bearer" = [])), responses(
    (status = 200, description = "the room with its new code", body = RoomBody),
    (status = 403, description = "not the owner", body = ErrorBody),
))]
async fn regenerate_invite_code(
    State(state): State<GatewayState>,
    user: SignedIn,
    ApiPath(room_id): ApiPath<String>,
) -> Result<axum::Json<RoomBody>, ApiError> {
    let message = pb::RegenerateInviteCodeRequest { room_id };
    let room = state.clients.rooms().regenerate_invite_code(user.context.request(message)).await?.into_inner();
    Ok(axum::Json(room_body(room)))
}

/// The room's members with their roles.
#[utoipa::path(get, path = "/api/rooms/{room_id}/members", tag = "members", security((), ("bearer" = [])), responses(
    (status = 200, description = "members", body = MemberListBody),
    (status = 404, description = "no such room", body = ErrorBody),
))]
async fn list_members(
    State(state): State<GatewayState>,
    visitor: MaybeSignedIn,
    ApiPath(room_id): ApiPath<String>,
) -> Result<axum::Json<MemberListBody>, ApiError> {
    let members =
        state.clients.rooms().list_members(visitor.context.request(pb::ListMembersRequest { room_id })).await?;
    Ok(axum::Json(MemberListBody { members: members.into_inner().members.into_iter().map(member_body).collect() }))
}

/// Changes a member's role to editor or viewer (owner only).
#[utoipa::path(patch, path = "/api/rooms/{room_id}/members/{user_id}", tag = "members", security(("bearer" = [])), request_body = UpdateMemberBody, responses(
    (status = 200, description = "the member", body = MemberBody),
    (status = 400, description = "invalid role", body = ErrorBody),
    (status = 403, description = "not the owner", body = ErrorBody),
    (status = 404, description = "no such room or member", body = ErrorBody),
))]
async fn update_member(
    State(state): State<GatewayState>,
    user: SignedIn,
    ApiPath((room_id, user_id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<UpdateMemberBody>,
) -> Result<axum::Json<MemberBody>, ApiError> {
    let role = role_from_name(&body.role)?;
    let message = pb::UpdateMemberRoleRequest { room_id, user_id, role: role.into() };
    let member = state.clients.rooms().update_member_role(user.context.request(message)).await?.into_inner();
    Ok(axum::Json(member_body(member)))
}

/// Removes a member (owner), or leaves the room (any member, naming itself).
#[utoipa::path(delete, path = "/api/rooms/{room_id}/members/{user_id}", tag = "members", security(("bearer" = [])), responses(
    (status = 204, description = "removed"),
    (status = 403, description = "not the owner", body = ErrorBody),
    (status = 404, description = "no such room or member", body = ErrorBody),
    (status = 409, description = "the owner cannot leave", body = ErrorBody),
))]
async fn remove_member(
    State(state): State<GatewayState>,
    user: SignedIn,
    ApiPath((room_id, user_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.clients.rooms().remove_member(user.context.request(pb::RemoveMemberRequest { room_id, user_id })).await?;
    Ok(StatusCode::NO_CONTENT)
}
