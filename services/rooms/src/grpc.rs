//! The gRPC adapter of `codesync.rooms.v1.RoomsService`: each method takes the caller from the
//! request's credentials and hands the rest to the domain methods of [`RoomsGrpcService`].

use codesync_common::events::{Kind, schema};
use codesync_common::grpc::CallContext;
use codesync_common::{ErrorCode, ServiceError, now_ms};
use codesync_proto::rooms::v1 as pb;
use codesync_proto::rooms::v1::rooms_service_server::RoomsService;
use tonic::{Request, Response, Status};

use crate::messages::{file_message, room_message};
use crate::{Role, RoomsGrpcService, caller_id};

#[tonic::async_trait]
impl RoomsService for RoomsGrpcService {
    async fn create_room(&self, request: Request<pb::CreateRoomRequest>) -> Result<Response<pb::Room>, Status> {
        let caller = self.tokens.require_caller(request.metadata())?;
        Ok(Response::new(self.create_room(caller, request.into_inner()).await?))
    }

    async fn list_rooms(
        &self,
        request: Request<pb::ListRoomsRequest>,
    ) -> Result<Response<pb::ListRoomsResponse>, Status> {
        let caller = self.tokens.caller_from_metadata(request.metadata())?;
        let rooms = self.store.list_rooms(caller_id(caller.as_ref())).await?;
        Ok(Response::new(pb::ListRoomsResponse { rooms: rooms.iter().map(room_message).collect() }))
    }

    async fn get_room(&self, request: Request<pb::GetRoomRequest>) -> Result<Response<pb::Room>, Status> {
        let caller = self.tokens.caller_from_metadata(request.metadata())?;
        let access = self.room_access(&request.get_ref().room_id, caller.as_ref()).await?;
        Ok(Response::new(room_message(access.room())))
    }

    async fn update_room(&self, request: Request<pb::UpdateRoomRequest>) -> Result<Response<pb::Room>, Status> {
        let caller = self.tokens.require_caller(request.metadata())?;
        Ok(Response::new(self.update_room(caller, request.into_inner()).await?))
    }

    async fn delete_room(
        &self,
        request: Request<pb::DeleteRoomRequest>,
    ) -> Result<Response<pb::DeleteRoomResponse>, Status> {
        let caller = self.tokens.require_caller(request.metadata())?;
        let access = self.room_access(&request.get_ref().room_id, Some(&caller)).await?;
        access.require_owner()?;
        let deleted = schema::RoomChange {
            room_id: access.room().id.clone(),
            room_name: access.room().name.clone(),
            ..Default::default()
        };
        let mut staged = self.staged(Self::room_event(Kind::RoomDeleted, deleted, &caller));
        self.store.delete_room(&access.room().id, &caller.user_id, now_ms(), &mut staged).await?;
        tracing::info!(room.id = %access.room().id, user.id = %caller.user_id, "deleted a room");
        staged.committed().await;
        Ok(Response::new(pb::DeleteRoomResponse {}))
    }

    async fn join_room(&self, request: Request<pb::JoinRoomRequest>) -> Result<Response<pb::Room>, Status> {
        let caller = self.tokens.require_caller(request.metadata())?;
        Ok(Response::new(self.join_room(caller, request.into_inner()).await?))
    }

    async fn regenerate_invite_code(
        &self,
        request: Request<pb::RegenerateInviteCodeRequest>,
    ) -> Result<Response<pb::Room>, Status> {
        let caller = self.tokens.require_caller(request.metadata())?;
        let access = self.room_access(&request.get_ref().room_id, Some(&caller)).await?;
        access.require_owner()?;
        let room_id = access.room().id.clone();
        self.unique_invite_code_write(|invite_code| {
            let room_id = room_id.clone();
            async move { self.store.set_invite_code(&room_id, &invite_code, now_ms()).await }
        })
        .await?;
        Ok(Response::new(self.load_room(&room_id, &caller).await?))
    }

    async fn list_members(
        &self,
        request: Request<pb::ListMembersRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        let caller = self.tokens.caller_from_metadata(request.metadata())?;
        let access = self.room_access(&request.get_ref().room_id, caller.as_ref()).await?;
        let records = self.store.list_members(&access.room().id).await?;
        let members = self.members(&CallContext::from_request(&request, &self.tokens), records).await?;
        Ok(Response::new(pb::ListMembersResponse { members }))
    }

    async fn update_member_role(
        &self,
        request: Request<pb::UpdateMemberRoleRequest>,
    ) -> Result<Response<pb::Member>, Status> {
        let caller = self.tokens.require_caller(request.metadata())?;
        let context = CallContext::from_request(&request, &self.tokens);
        Ok(Response::new(self.update_member_role(&context, caller, request.into_inner()).await?))
    }

    async fn remove_member(
        &self,
        request: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::RemoveMemberResponse>, Status> {
        let caller = self.tokens.require_caller(request.metadata())?;
        Ok(Response::new(self.remove_member(caller, request.into_inner()).await?))
    }

    async fn create_file(&self, request: Request<pb::CreateFileRequest>) -> Result<Response<pb::File>, Status> {
        let caller = self.tokens.require_caller(request.metadata())?;
        Ok(Response::new(self.create_file(caller, request.into_inner()).await?))
    }

    async fn list_files(
        &self,
        request: Request<pb::ListFilesRequest>,
    ) -> Result<Response<pb::ListFilesResponse>, Status> {
        let caller = self.tokens.caller_from_metadata(request.metadata())?;
        let access = self.room_access(&request.get_ref().room_id, caller.as_ref()).await?;
        let files = self.store.list_files(&access.room().id).await?;
        Ok(Response::new(pb::ListFilesResponse { files: files.into_iter().map(file_message).collect() }))
    }

    async fn get_file(&self, request: Request<pb::GetFileRequest>) -> Result<Response<pb::File>, Status> {
        let caller = self.tokens.caller_from_metadata(request.metadata())?;
        let (file, _access) = self.file_access(&request.get_ref().file_id, caller.as_ref(), true).await?;
        Ok(Response::new(file_message(file)))
    }

    async fn update_file(&self, request: Request<pb::UpdateFileRequest>) -> Result<Response<pb::File>, Status> {
        let caller = self.tokens.require_caller(request.metadata())?;
        let context = CallContext::from_request(&request, &self.tokens);
        Ok(Response::new(self.update_file(caller, &context, request.into_inner()).await?))
    }

    async fn delete_file(
        &self,
        request: Request<pb::DeleteFileRequest>,
    ) -> Result<Response<pb::DeleteFileResponse>, Status> {
        let caller = self.tokens.require_caller(request.metadata())?;
        let (file, access) = self.file_access(&request.get_ref().file_id, Some(&caller), false).await?;
        access.require_write()?;
        let mut staged = self.staged(Self::file_event(Kind::FileDeleted, &file, &caller));
        self.store.delete_file(&file, &caller.user_id, now_ms(), &mut staged).await?;
        tracing::info!(file.id = %file.id, room.id = %file.room_id, user.id = %caller.user_id, "deleted a file");
        staged.committed().await;
        Ok(Response::new(pb::DeleteFileResponse {}))
    }

    async fn move_folder(
        &self,
        request: Request<pb::MoveFolderRequest>,
    ) -> Result<Response<pb::MoveFolderResponse>, Status> {
        let caller = self.tokens.require_caller(request.metadata())?;
        Ok(Response::new(self.move_folder(caller, request.into_inner()).await?))
    }

    async fn delete_folder(
        &self,
        request: Request<pb::DeleteFolderRequest>,
    ) -> Result<Response<pb::DeleteFolderResponse>, Status> {
        let caller = self.tokens.require_caller(request.metadata())?;
        Ok(Response::new(self.delete_folder(caller, request.into_inner()).await?))
    }

    async fn search_files(
        &self,
        request: Request<pb::SearchFilesRequest>,
    ) -> Result<Response<pb::SearchFilesResponse>, Status> {
        let caller = self.tokens.caller_from_metadata(request.metadata())?;
        let context = CallContext::from_request(&request, &self.tokens);
        Ok(Response::new(self.search_files(caller, &context, request.into_inner()).await?))
    }

    async fn import_files(
        &self,
        request: Request<pb::ImportFilesRequest>,
    ) -> Result<Response<pb::ImportFilesResponse>, Status> {
        let caller = self.tokens.require_caller(request.metadata())?;
        let context = CallContext::from_request(&request, &self.tokens);
        Ok(Response::new(self.import_files(caller, &context, request.into_inner()).await?))
    }

    async fn check_access(
        &self,
        request: Request<pb::CheckAccessRequest>,
    ) -> Result<Response<pb::CheckAccessResponse>, Status> {
        let caller = self.tokens.caller_from_metadata(request.metadata())?;
        let access = match &request.get_ref().resource {
            Some(pb::check_access_request::Resource::RoomId(room_id)) => {
                self.room_access(room_id, caller.as_ref()).await?
            }
            Some(pb::check_access_request::Resource::FileId(file_id)) => {
                self.file_access(file_id, caller.as_ref(), false).await?.1
            }
            None => return Err(ServiceError::invalid(ErrorCode::MissingResource, "name a room_id or a file_id").into()),
        };
        Ok(Response::new(pb::CheckAccessResponse {
            room_id: access.room().id.clone(),
            role: access.role().map_or(pb::Role::Unspecified, Role::to_proto).into(),
            can_read: true,
            can_write: access.role().is_some_and(Role::can_write),
        }))
    }

    async fn check_deleted_file(
        &self,
        request: Request<pb::CheckDeletedFileRequest>,
    ) -> Result<Response<pb::CheckDeletedFileResponse>, Status> {
        let caller = self.tokens.require_caller(request.metadata())?;
        let deleted = self.deleted_file_access(&request.get_ref().file_id, &caller).await?;
        Ok(Response::new(pb::CheckDeletedFileResponse { room_id: deleted.room_id }))
    }
}
