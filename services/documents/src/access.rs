//! Who may do what with a file, as the rooms service answers it with the caller's
//! credentials, and the seed a document is first loaded from (the file's stored content).

use std::sync::Arc;

use codesync_common::grpc::{CallContext, GrpcChannel};
use codesync_common::identity::Caller;
use codesync_common::{ServiceError, ServiceResult};
use codesync_proto::rooms::v1 as rooms_pb;
use codesync_proto::rooms::v1::rooms_service_client::RoomsServiceClient;

use crate::DocumentsGrpcService;
use crate::actor::{Opening, SeedSource};
use crate::awareness::Identity;

/// The file's stored content, read through the rooms service with the
/// caller's credentials, seeds a document the first time it is opened.
struct RoomsSeed {
    rooms: RoomsServiceClient<GrpcChannel>,
    context: CallContext,
}

#[tonic::async_trait]
impl SeedSource for RoomsSeed {
    async fn initial_text(&self, file_id: &str) -> ServiceResult<String> {
        let request = self.context.request(rooms_pb::GetFileRequest { file_id: file_id.to_string() });
        let file = self
            .rooms
            .clone()
            .get_file(request)
            .await
            .map_err(|status| ServiceError::from_peer("rooms", status))?
            .into_inner();
        Ok(file.content.unwrap_or_default())
    }
}

/// What the caller may do with a file.
pub(crate) struct FileAccess {
    pub(crate) room_id: String,
    pub(crate) identity: Identity,
    pub(crate) is_member: bool,
    pub(crate) can_write: bool,
}

impl DocumentsGrpcService {
    /// The rooms service's answer on the caller's access to a file: its own
    /// refusal (404 for a private room of others) is the answer to give.
    pub(crate) async fn check_file(
        &self,
        context: &CallContext,
        file_id: &str,
    ) -> ServiceResult<rooms_pb::CheckAccessResponse> {
        codesync_common::access::check_file(&self.rooms, context, file_id).await
    }

    pub(crate) async fn file_access(
        &self,
        caller: Caller,
        context: &CallContext,
        file_id: &str,
    ) -> ServiceResult<FileAccess> {
        let access = self.check_file(context, file_id).await?;
        Ok(FileAccess {
            room_id: access.room_id,
            identity: Identity { user_id: caller.user_id, username: caller.username },
            is_member: access.role != rooms_pb::Role::Unspecified as i32,
            can_write: access.can_write,
        })
    }

    pub(crate) fn opening(&self, context: &CallContext, room_id: String) -> Opening {
        Opening { room_id, seed: Arc::new(RoomsSeed { rooms: self.rooms.clone(), context: context.clone() }) }
    }
}
