//! The rooms service: rooms (public or private), members and their roles
//! (owner, editor, viewer), invite codes, and the files of each room.
//!
//! Every request is authorised here, whatever called it: a private room's
//! resources are NOT_FOUND to non-members (their existence never leaks), and a
//! viewer, or a non-member of a public room, gets PERMISSION_DENIED on any change.
#![forbid(unsafe_code)]

mod access;
mod announcements;
mod folders;
mod grpc;
mod import;
pub mod language;
mod messages;
pub mod search;
pub mod store;
mod validation;

use std::sync::Arc;

use codesync_common::bus::{EventBus, Staged};
use codesync_common::events::{Kind, schema};
use codesync_common::grpc::CallContext;
use codesync_common::grpc::GrpcChannel;
use codesync_common::identity::{Caller, TokenService};
use codesync_common::{ErrorCode, ServiceError, ServiceResult, new_id, now_ms};
use codesync_proto::auth::v1::GetUserProfilesRequest;
use codesync_proto::auth::v1::auth_service_client::AuthServiceClient;
use codesync_proto::documents::v1::ReplaceTextRequest;
use codesync_proto::documents::v1::documents_service_client::DocumentsServiceClient;
use codesync_proto::rooms::v1 as pb;
use codesync_proto::rooms::v1::rooms_service_server::RoomsServiceServer;
use rand::Rng;

use crate::access::RoomAccess;
use crate::messages::{file_message, member_message, room_message};
use crate::store::{DeletedFile, FileChanges, FileRecord, MemberRecord, RoomRecord, RoomsStore, UniqueWrite};

/// The largest file content the service stores, in bytes.
pub const MAX_FILE_BYTES: usize = codesync_common::limits::FILE_MAX_BYTES;
/// The most files one room may hold.
pub const MAX_FILES_PER_ROOM: i64 = 1000;

/// The room's cap refuses `adding` more files to the `holding` it has.
pub(crate) fn too_many_files(holding: usize, adding: usize) -> ServiceError {
    let message = if adding == 1 {
        format!("a room may hold at most {MAX_FILES_PER_ROOM} files")
    } else {
        format!("the room holds {holding} files and would hold {}: at most {MAX_FILES_PER_ROOM}", holding + adding)
    };
    ServiceError::conflict(ErrorCode::TooManyFiles, message)
}
const INVITE_CODE_LENGTH: usize = 12;
/// Letters and digits that cannot be mistaken for one another when read aloud or retyped.
const INVITE_CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789";

/// A member's role in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Owner,
    Editor,
    Viewer,
}

impl Role {
    /// The name the database and events use: the contract's (`pb::Role::name`).
    pub fn as_db(self) -> &'static str {
        self.to_proto().name().unwrap_or_default()
    }

    pub fn from_db(value: &str) -> Option<Self> {
        match pb::Role::from_name(value)? {
            pb::Role::Owner => Some(Self::Owner),
            pb::Role::Editor => Some(Self::Editor),
            pb::Role::Viewer => Some(Self::Viewer),
            pb::Role::Unspecified => None,
        }
    }

    fn to_proto(self) -> pb::Role {
        match self {
            Self::Owner => pb::Role::Owner,
            Self::Editor => pb::Role::Editor,
            Self::Viewer => pb::Role::Viewer,
        }
    }

    pub fn can_write(self) -> bool {
        self.to_proto().can_write()
    }
}

/// The gRPC implementation of `codesync.rooms.v1.RoomsService`.
pub struct RoomsGrpcService {
    store: RoomsStore,
    tokens: TokenService,
    auth_client: AuthServiceClient<GrpcChannel>,
    documents: DocumentsServiceClient<GrpcChannel>,
    events: Arc<dyn EventBus>,
    /// Searches and imports going at once, per caller and in all.
    expensive: Arc<codesync_common::budget::Slots<String>>,
}

/// The services rooms calls: auth for members' usernames, documents for a file's live text.
pub struct RoomsPeers {
    pub auth: GrpcChannel,
    pub documents: GrpcChannel,
}

impl RoomsGrpcService {
    /// Membership, room and file changes are published on `room-events`.
    pub fn new(store: RoomsStore, tokens: TokenService, peers: RoomsPeers, events: Arc<dyn EventBus>) -> Self {
        let documents = DocumentsServiceClient::new(peers.documents)
            .max_decoding_message_size(64 * 1024 * 1024)
            .max_encoding_message_size(64 * 1024 * 1024);
        let expensive =
            codesync_common::budget::expensive_slots("rooms", codesync_common::budget::ExpensiveLimits::default());
        Self { store, tokens, auth_client: AuthServiceClient::new(peers.auth), documents, events, expensive }
    }

    /// At most `limits` searches and imports at once, per caller and in all.
    pub fn with_expensive_limits(mut self, limits: codesync_common::budget::ExpensiveLimits) -> Self {
        self.expensive = codesync_common::budget::expensive_slots("rooms", limits);
        self
    }

    /// A turn for one expensive request of `caller` (or of the address in `context`).
    async fn expensive_turn(
        &self,
        caller: Option<&Caller>,
        context: &CallContext,
    ) -> ServiceResult<codesync_common::budget::Slot<String>> {
        let key = codesync_common::budget::caller_key(caller.map(|caller| caller.user_id.as_str()), context.client_ip);
        Ok(self.expensive.take_waiting(&key, codesync_common::budget::EXPENSIVE_WAIT).await?)
    }

    /// The one RPC that takes more than a few MiB: a project, whole (`ROOMS_MESSAGE_MAX_BYTES`).
    pub const IMPORT_FILES_RPC: &'static str = "/codesync.rooms.v1.RoomsService/ImportFiles";

    pub fn into_grpc_server(self) -> RoomsServiceServer<Self> {
        use codesync_common::limits::ROOMS_MESSAGE_MAX_BYTES;
        RoomsServiceServer::new(self)
            .max_decoding_message_size(ROOMS_MESSAGE_MAX_BYTES)
            .max_encoding_message_size(ROOMS_MESSAGE_MAX_BYTES)
    }

    async fn room_access(&self, room_id: &str, caller: Option<&Caller>) -> ServiceResult<RoomAccess> {
        let room = if codesync_common::is_valid_id(room_id) {
            self.store.find_room(room_id, caller_id(caller)).await?
        } else {
            None
        };
        RoomAccess::evaluate(room, caller.cloned())
    }

    async fn file_access(
        &self,
        file_id: &str,
        caller: Option<&Caller>,
        with_content: bool,
    ) -> ServiceResult<(FileRecord, RoomAccess)> {
        let file_not_found = || ServiceError::not_found(ErrorCode::FileNotFound, "no such file");
        if !codesync_common::is_valid_id(file_id) {
            return Err(file_not_found());
        }
        let file = self.store.find_file(file_id, with_content).await?.ok_or_else(file_not_found)?;
        // A file of a room the caller may not see is as absent as the room.
        let access = self.room_access(&file.room_id, caller).await.map_err(|error| match error {
            ServiceError::NotFound { .. } => file_not_found(),
            other => other,
        })?;
        Ok((file, access))
    }

    /// A deleted file whose remains the caller may remove: it deleted the file (or its room), or
    /// may change the room the file was in. Everyone else learns no more than from
    /// [`Self::file_access`]: a live file, a file that never was and a file of a private room
    /// of others are all `file_not_found`.
    async fn deleted_file_access(&self, file_id: &str, caller: &Caller) -> ServiceResult<DeletedFile> {
        let file_not_found = || ServiceError::not_found(ErrorCode::FileNotFound, "no such file");
        if !codesync_common::is_valid_id(file_id) {
            return Err(file_not_found());
        }
        let deleted = self.store.find_deleted_file(file_id).await?.ok_or_else(file_not_found)?;
        if deleted.deleted_by == caller.user_id {
            return Ok(deleted);
        }
        let access = self.room_access(&deleted.room_id, Some(caller)).await.map_err(|error| match error {
            ServiceError::NotFound { .. } => file_not_found(),
            other => other,
        })?;
        access.require_write()?;
        Ok(deleted)
    }

    async fn unique_invite_code_write<F, Fut>(&self, mut write: F) -> ServiceResult<String>
    where
        F: FnMut(String) -> Fut,
        Fut: std::future::Future<Output = ServiceResult<UniqueWrite<()>>>,
    {
        // 12 characters of a 56-letter alphabet: a collision is astronomically rare, but handled.
        for _ in 0..5 {
            let invite_code = new_invite_code();
            if let UniqueWrite::Done(()) = write(invite_code.clone()).await? {
                return Ok(invite_code);
            }
        }
        Err(ServiceError::internal("could not draw a unique invite code in 5 attempts"))
    }

    /// The caller's account still exists: a valid token of a deleted account (or of another
    /// installation's database under the same key) makes nothing.
    async fn require_account(&self, caller: &Caller) -> ServiceResult<()> {
        let request = tonic::Request::new(GetUserProfilesRequest { user_ids: vec![caller.user_id.clone()] });
        let profiles = self
            .auth_client
            .clone()
            .get_user_profiles(request)
            .await
            .map_err(|status| ServiceError::from_peer("auth", status))?
            .into_inner()
            .profiles;
        if profiles.is_empty() {
            return Err(ServiceError::unauthenticated(
                ErrorCode::AccountNotFound,
                "this account does not exist any more; sign in again",
            ));
        }
        Ok(())
    }

    async fn create_room(&self, caller: Caller, request: pb::CreateRoomRequest) -> ServiceResult<pb::Room> {
        self.require_account(&caller).await?;
        let name = validation::room_name(&request.name)?;
        let description = validation::room_description(&request.description)?;
        let room_id = new_id();
        let now_ms = now_ms();
        let template = RoomRecord {
            id: room_id.clone(),
            name,
            description,
            is_public: request.is_public,
            owner_id: caller.user_id.clone(),
            invite_code: String::new(),
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            member_count: 1,
            caller_role: Some(Role::Owner),
        };
        let created = schema::RoomChange {
            room_id: room_id.clone(),
            room_name: template.name.clone(),
            owner_id: caller.user_id.clone(),
            is_public: template.is_public,
            ..Default::default()
        };
        let created = Self::room_event(Kind::RoomCreated, created, &caller);
        self.unique_invite_code_write(|invite_code| {
            let room = RoomRecord { invite_code, ..template.clone() };
            let mut staged = self.staged(created.clone());
            async move {
                let written = self.store.insert_room(&room, &mut staged).await?;
                if let UniqueWrite::Done(()) = written {
                    staged.committed().await;
                }
                Ok(written)
            }
        })
        .await?;
        tracing::info!(room.id = %room_id, user.id = %caller.user_id, "created a room");
        self.load_room(&room_id, &caller).await
    }

    async fn load_room(&self, room_id: &str, caller: &Caller) -> ServiceResult<pb::Room> {
        let room = self
            .store
            .find_room(room_id, &caller.user_id)
            .await?
            .ok_or_else(|| ServiceError::not_found(ErrorCode::RoomNotFound, "no such room"))?;
        Ok(room_message(&room))
    }

    async fn update_room(&self, caller: Caller, request: pb::UpdateRoomRequest) -> ServiceResult<pb::Room> {
        let access = self.room_access(&request.room_id, Some(&caller)).await?;
        access.require_owner()?;
        let room = access.room();
        let name = match request.name.as_deref() {
            Some(name) => validation::room_name(name)?,
            None => room.name.clone(),
        };
        let description = match request.description.as_deref() {
            Some(description) => validation::room_description(description)?,
            None => room.description.clone(),
        };
        let is_public = request.is_public.unwrap_or(room.is_public);
        self.store.update_room(&room.id, &name, &description, is_public, now_ms()).await?;
        self.load_room(&room.id, &caller).await
    }

    async fn join_room(&self, caller: Caller, request: pb::JoinRoomRequest) -> ServiceResult<pb::Room> {
        self.require_account(&caller).await?;
        let invite_code = request.invite_code.trim();
        let invalid = || ServiceError::not_found(ErrorCode::InviteNotFound, "no room has this invite code");
        if invite_code.is_empty() || invite_code.len() > 64 {
            return Err(invalid());
        }
        let room = self.store.find_room_by_invite_code(invite_code, &caller.user_id).await?.ok_or_else(invalid)?;
        let mut staged = self.staged(Self::membership_event(
            Kind::MemberJoined,
            &room,
            &caller.user_id,
            Some(Role::Editor),
            &caller,
        ));
        if self.store.add_member_if_absent(&room.id, &caller.user_id, Role::Editor, now_ms(), &mut staged).await? {
            tracing::info!(room.id = %room.id, user.id = %caller.user_id, "joined a room by invite code");
            staged.committed().await;
        }
        self.load_room(&room.id, &caller).await
    }

    async fn members(&self, context: &CallContext, members: Vec<MemberRecord>) -> ServiceResult<Vec<pb::Member>> {
        let user_ids = members.iter().map(|member| member.user_id.clone()).collect();
        let mut auth_client = self.auth_client.clone();
        let profiles = auth_client
            .get_user_profiles(context.request(GetUserProfilesRequest { user_ids }))
            .await
            .map_err(|status| {
                tracing::warn!(error = %status, "the auth service did not answer a profile look-up");
                ServiceError::Unavailable { message: "the auth service is unavailable; try again".to_string() }
            })?
            .into_inner()
            .profiles;
        let usernames: std::collections::HashMap<String, String> =
            profiles.into_iter().map(|profile| (profile.id, profile.username)).collect();
        Ok(members
            .into_iter()
            .map(|member| {
                let username = usernames.get(&member.user_id).cloned().unwrap_or_default();
                member_message(member, username)
            })
            .collect())
    }

    async fn update_member_role(
        &self,
        context: &CallContext,
        caller: Caller,
        request: pb::UpdateMemberRoleRequest,
    ) -> ServiceResult<pb::Member> {
        let access = self.room_access(&request.room_id, Some(&caller)).await?;
        access.require_owner()?;
        let role = match pb::Role::try_from(request.role) {
            Ok(pb::Role::Editor) => Role::Editor,
            Ok(pb::Role::Viewer) => Role::Viewer,
            Ok(pb::Role::Owner) => {
                return Err(ServiceError::invalid(
                    ErrorCode::InvalidRole,
                    "a room has one owner; the role must be editor or viewer",
                ));
            }
            Ok(pb::Role::Unspecified) | Err(_) => {
                return Err(ServiceError::invalid(ErrorCode::InvalidRole, "the role must be editor or viewer"));
            }
        };
        let member_not_found =
            || ServiceError::not_found(ErrorCode::MemberNotFound, "this user is not a member of the room");
        let target = self.store.find_member(&access.room().id, &request.user_id).await?.ok_or_else(member_not_found)?;
        if target.role == Role::Owner {
            return Err(ServiceError::conflict(ErrorCode::OwnerRoleFixed, "the owner's role cannot be changed"));
        }
        let changed =
            Self::membership_event(Kind::MemberRoleChanged, access.room(), &target.user_id, Some(role), &caller);
        let mut staged = self.staged(changed);
        if !self.store.set_member_role(&access.room().id, &target.user_id, role, &mut staged).await? {
            return Err(member_not_found());
        }
        staged.committed().await;
        let updated = MemberRecord { role, ..target };
        let mut members = self.members(context, vec![updated]).await?;
        members.pop().ok_or_else(|| ServiceError::internal("a member vanished from its own listing"))
    }

    async fn remove_member(
        &self,
        caller: Caller,
        request: pb::RemoveMemberRequest,
    ) -> ServiceResult<pb::RemoveMemberResponse> {
        let access = self.room_access(&request.room_id, Some(&caller)).await?;
        let leaving_self = request.user_id == caller.user_id;
        if leaving_self {
            access.require_member()?;
            if access.role() == Some(Role::Owner) {
                return Err(ServiceError::conflict(
                    ErrorCode::OwnerCannotLeave,
                    "the owner cannot leave the room; delete it instead",
                ));
            }
        } else {
            access.require_owner()?;
        }
        let mut staged =
            self.staged(Self::membership_event(Kind::MemberRemoved, access.room(), &request.user_id, None, &caller));
        if !self.store.remove_member(&access.room().id, &request.user_id, &mut staged).await? {
            return Err(ServiceError::not_found(ErrorCode::MemberNotFound, "this user is not a member of the room"));
        }
        tracing::info!(room.id = %access.room().id, user.id = %request.user_id, by = %caller.user_id, "removed a member");
        staged.committed().await;
        if !leaving_self {
            // The code they joined with must not let them straight back in.
            let room_id = access.room().id.clone();
            self.unique_invite_code_write(|invite_code| {
                let room_id = room_id.clone();
                async move { self.store.set_invite_code(&room_id, &invite_code, now_ms()).await }
            })
            .await?;
        }
        Ok(pb::RemoveMemberResponse {})
    }

    async fn create_file(&self, caller: Caller, request: pb::CreateFileRequest) -> ServiceResult<pb::File> {
        let access = self.room_access(&request.room_id, Some(&caller)).await?;
        access.require_write()?;
        let filename = validation::filename(&request.filename)?;
        validation::file_content(&request.content)?;
        // A quick refusal; the cap holds under concurrency because the insert checks it again.
        let count = self.store.count_files(&access.room().id).await?;
        if count >= MAX_FILES_PER_ROOM {
            return Err(too_many_files(usize::try_from(count).unwrap_or(usize::MAX), 1));
        }
        let now_ms = now_ms();
        let file = FileRecord {
            id: new_id(),
            room_id: access.room().id.clone(),
            language: language::language_for_filename(&filename).to_string(),
            filename,
            size_bytes: i64::try_from(request.content.len()).unwrap_or(i64::MAX),
            content: Some(request.content),
            created_by: caller.user_id.clone(),
            updated_by: caller.user_id.clone(),
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        };
        let mut created = Self::file_event(Kind::FileCreated, &file, &caller);
        if let Kind::FileCreated(change) = &mut created.kind {
            change.language = file.language.clone();
        }
        let mut staged = self.staged(created);
        if let UniqueWrite::Taken = self.store.insert_file(&file, &mut staged).await? {
            return Err(file_exists());
        }
        tracing::info!(file.id = %file.id, room.id = %file.room_id, "created a file");
        staged.committed().await;
        Ok(file_message(file))
    }

    /// A rename, new content, or both. The content replaces the live document by a minimal edit
    /// (connected editors see it and keep their cursors), after the rename: both parts are
    /// idempotent, so a call that failed half-way (the documents service away) is retried whole.
    async fn update_file(
        &self,
        caller: Caller,
        context: &CallContext,
        request: pb::UpdateFileRequest,
    ) -> ServiceResult<pb::File> {
        let (file, access) = self.file_access(&request.file_id, Some(&caller), false).await?;
        access.require_write()?;
        let rename = match request.filename.as_deref() {
            Some(filename) => {
                let filename = validation::filename(filename)?;
                let language = language::language_for_filename(&filename).to_string();
                Some((filename, language))
            }
            None => None,
        };
        if let Some(content) = request.content.as_deref() {
            validation::file_content(content)?;
        }
        let renamed_to = rename.as_ref().map(|(filename, _)| filename.clone()).filter(|name| *name != file.filename);
        let new_text = request.content.clone();
        let changes = FileChanges { rename, content: request.content };
        let renamed = renamed_to.as_ref().map(|filename| {
            let mut renamed = Self::file_event(Kind::FileRenamed, &file, &caller);
            if let Kind::FileRenamed(change) = &mut renamed.kind {
                change.old_filename = std::mem::replace(&mut change.filename, filename.clone());
            }
            renamed
        });
        let mut staged = Staged::new(self.events.as_ref(), renamed.into_iter().collect());
        if let UniqueWrite::Taken =
            self.store.update_file(&file.room_id, &file.id, &changes, &caller.user_id, now_ms(), &mut staged).await?
        {
            return Err(file_exists());
        }
        staged.committed().await;
        let updated = self
            .store
            .find_file(&file.id, true)
            .await?
            .ok_or_else(|| ServiceError::not_found(ErrorCode::FileNotFound, "no such file"))?;
        let mut message = file_message(updated);
        if let Some(text) = new_text {
            let replace = context.request(ReplaceTextRequest { file_id: file.id.clone(), text });
            let text = self
                .documents
                .clone()
                .replace_text(replace)
                .await
                .map_err(|status| ServiceError::from_peer("documents", status))?
                .into_inner()
                .text;
            message.size_bytes = i64::try_from(text.len()).unwrap_or(i64::MAX);
            message.content = Some(text);
        }
        Ok(message)
    }
}

fn caller_id(caller: Option<&Caller>) -> &str {
    caller.map(|caller| caller.user_id.as_str()).unwrap_or_default()
}

fn file_exists() -> ServiceError {
    ServiceError::already_exists(ErrorCode::FileExists, "a file with this name already exists in the room")
}

fn new_invite_code() -> String {
    let mut random = rand::rng();
    (0..INVITE_CODE_LENGTH)
        .map(|_| char::from(INVITE_CODE_ALPHABET[random.random_range(0..INVITE_CODE_ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_import_rpc_is_named_as_the_contract_names_it() {
        let rpcs = codesync_proto::rpcs::all();
        assert!(rpcs.iter().any(|rpc| rpc.path == super::RoomsGrpcService::IMPORT_FILES_RPC));
    }
}
