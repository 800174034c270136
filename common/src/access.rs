//! Asking the rooms service what a caller may do with a room or a file: the one check that
//! documents, presence and history make before they act. The rooms service's own refusal (404
//! for a private room of others) is passed on as it came; an id that cannot be one is refused
//! here, without a call.

use codesync_proto::auth::v1::GetCurrentUserRequest;
use codesync_proto::auth::v1::auth_service_client::AuthServiceClient;
use codesync_proto::rooms::v1::rooms_service_client::RoomsServiceClient;
use codesync_proto::rooms::v1::{CheckAccessRequest, CheckAccessResponse, check_access_request};

use crate::grpc::{CallContext, GrpcChannel};
use crate::{ErrorCode, ServiceError, ServiceResult, is_valid_id};

/// The caller's access to a file (and the file's room).
pub async fn check_file(
    rooms: &RoomsServiceClient<GrpcChannel>,
    context: &CallContext,
    file_id: &str,
) -> ServiceResult<CheckAccessResponse> {
    if !is_valid_id(file_id) {
        return Err(ServiceError::not_found(ErrorCode::FileNotFound, "no such file"));
    }
    check(rooms, context, check_access_request::Resource::FileId(file_id.to_string())).await
}

/// The caller's access to a room.
pub async fn check_room(
    rooms: &RoomsServiceClient<GrpcChannel>,
    context: &CallContext,
    room_id: &str,
) -> ServiceResult<CheckAccessResponse> {
    if !is_valid_id(room_id) {
        return Err(ServiceError::not_found(ErrorCode::RoomNotFound, "no such room"));
    }
    check(rooms, context, check_access_request::Resource::RoomId(room_id.to_string())).await
}

async fn check(
    rooms: &RoomsServiceClient<GrpcChannel>,
    context: &CallContext,
    resource: check_access_request::Resource,
) -> ServiceResult<CheckAccessResponse> {
    let request = context.request(CheckAccessRequest { resource: Some(resource) });
    let access = rooms.clone().check_access(request).await;
    Ok(access.map_err(|status| ServiceError::from_peer("rooms", status))?.into_inner())
}

/// The caller is an administrator now, as the auth service's records say: the claim in an access
/// token holds until the token expires, and a right taken away (`codesync admin revoke`) must end
/// at once.
pub async fn require_admin(
    auth: &AuthServiceClient<GrpcChannel>,
    context: &CallContext,
    caller: &crate::identity::Caller,
    refusal: &'static str,
) -> ServiceResult<()> {
    let forbidden = || ServiceError::forbidden(ErrorCode::AdminRequired, refusal);
    if !caller.is_admin {
        return Err(forbidden());
    }
    let user = auth
        .clone()
        .get_current_user(context.request(GetCurrentUserRequest {}))
        .await
        .map_err(|status| ServiceError::from_peer("auth", status))?
        .into_inner();
    if !user.is_admin {
        return Err(forbidden());
    }
    Ok(())
}
