//! The authorisation matrix: every RPC of the nine services, called directly over gRPC as an
//! anonymous caller, a signed-in stranger, a viewer, an editor, the room's owner and an
//! administrator, on a private and on a public room, gives exactly the answer (success, or the
//! same HTTP status and error code) that the same act gives over REST or a WebSocket, and the
//! answer the roles of the spec call for. RPCs no client has a REST equivalent for are checked
//! against what they stand for: internal-only RPCs refuse every user.

use std::collections::BTreeMap;
use std::time::Duration;

use codesync_common::error::http_error_from_status;
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use codesync_proto::analytics::v1 as analytics;
use codesync_proto::assistant::v1 as assistant;
use codesync_proto::auth::v1 as auth;
use codesync_proto::documents::v1 as documents;
use codesync_proto::execution::v1 as execution;
use codesync_proto::history::v1 as history;
use codesync_proto::notifications::v1 as notifications;
use codesync_proto::presence::v1 as presence;
use codesync_proto::rooms::v1 as rooms;

use crate::harness::{Cluster, Session};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Anonymous,
    Stranger,
    Viewer,
    Editor,
    Owner,
    /// The installation's administrator, a member of no room.
    Admin,
}

const ROLES: [Role; 6] = [Role::Anonymous, Role::Stranger, Role::Viewer, Role::Editor, Role::Owner, Role::Admin];

/// What a caller got: success, or the REST answer (status and error code) of a refusal.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Allowed,
    Refused(u16, String),
}

impl Outcome {
    fn of_status(status: &tonic::Status) -> Self {
        let error = http_error_from_status(status);
        Self::Refused(error.status.as_u16(), error.code.as_str().to_string())
    }

    fn of<T>(result: Result<tonic::Response<T>, tonic::Status>) -> Self {
        match result {
            Ok(_) => Self::Allowed,
            Err(status) => Self::of_status(&status),
        }
    }

    fn is_allowed(&self) -> bool {
        matches!(self, Self::Allowed)
    }
}

/// A server stream's answer: refused at once, refused as its first item, or flowing.
async fn first_of<T>(result: Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>, wait: Duration) -> Outcome {
    match result {
        Err(status) => Outcome::of_status(&status),
        Ok(response) => match tokio::time::timeout(wait, response.into_inner().message()).await {
            Ok(Err(status)) => Outcome::of_status(&status),
            _ => Outcome::Allowed,
        },
    }
}

/// Every RPC of every service. The name is the RPC's, prefixed by its service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Rpc {
    AuthRegister,
    AuthLogin,
    AuthRefresh,
    AuthLogout,
    AuthGetCurrentUser,
    AuthGetUserProfiles,
    AuthGetTokenKeys,
    RoomsCreateRoom,
    RoomsListRooms,
    RoomsGetRoom,
    RoomsUpdateRoom,
    RoomsDeleteRoom,
    RoomsJoinRoom,
    RoomsRegenerateInviteCode,
    RoomsListMembers,
    RoomsUpdateMemberRole,
    RoomsRemoveMember,
    RoomsCreateFile,
    RoomsListFiles,
    RoomsGetFile,
    RoomsUpdateFile,
    RoomsDeleteFile,
    RoomsMoveFolder,
    RoomsDeleteFolder,
    RoomsSearchFiles,
    RoomsImportFiles,
    RoomsCheckAccess,
    RoomsCheckDeletedFile,
    DocumentsCollaborate,
    DocumentsGetDocument,
    DocumentsApplyUpdate,
    DocumentsReplaceText,
    DocumentsInsertText,
    DocumentsDeleteDocument,
    HistoryCreateVersion,
    HistoryListVersions,
    HistoryGetVersion,
    HistoryDiffVersions,
    HistoryRestoreVersion,
    HistoryListRoomEvents,
    ExecutionExecute,
    ExecutionExecuteStream,
    ExecutionListLanguages,
    ExecutionListExecutions,
    PresenceJoinRoom,
    PresenceListOnline,
    PresenceSendChatMessage,
    PresenceListChatMessages,
    AssistantAsk,
    AssistantCancel,
    AssistantGetStatus,
    NotificationsListNotifications,
    NotificationsGetUnreadCount,
    NotificationsMarkRead,
    NotificationsMarkAllRead,
    NotificationsSubscribe,
    NotificationsCreateNotification,
    AnalyticsGetOverview,
    AnalyticsGetExecutionStats,
    AnalyticsGetAiStats,
    AnalyticsListActiveRooms,
    AnalyticsListEvents,
    AnalyticsGetServiceHealth,
    AnalyticsRecordEvent,
}

use Rpc::*;

const RPCS: [Rpc; 64] = [
    AuthRegister,
    AuthLogin,
    AuthRefresh,
    AuthLogout,
    AuthGetCurrentUser,
    AuthGetUserProfiles,
    AuthGetTokenKeys,
    RoomsCreateRoom,
    RoomsListRooms,
    RoomsGetRoom,
    RoomsUpdateRoom,
    RoomsDeleteRoom,
    RoomsJoinRoom,
    RoomsRegenerateInviteCode,
    RoomsListMembers,
    RoomsUpdateMemberRole,
    RoomsRemoveMember,
    RoomsCreateFile,
    RoomsListFiles,
    RoomsGetFile,
    RoomsUpdateFile,
    RoomsDeleteFile,
    RoomsMoveFolder,
    RoomsDeleteFolder,
    RoomsSearchFiles,
    RoomsImportFiles,
    RoomsCheckAccess,
    RoomsCheckDeletedFile,
    DocumentsCollaborate,
    DocumentsGetDocument,
    DocumentsApplyUpdate,
    DocumentsReplaceText,
    DocumentsInsertText,
    DocumentsDeleteDocument,
    HistoryCreateVersion,
    HistoryListVersions,
    HistoryGetVersion,
    HistoryDiffVersions,
    HistoryRestoreVersion,
    HistoryListRoomEvents,
    ExecutionExecute,
    ExecutionExecuteStream,
    ExecutionListLanguages,
    ExecutionListExecutions,
    PresenceJoinRoom,
    PresenceListOnline,
    PresenceSendChatMessage,
    PresenceListChatMessages,
    AssistantAsk,
    AssistantCancel,
    AssistantGetStatus,
    NotificationsListNotifications,
    NotificationsGetUnreadCount,
    NotificationsMarkRead,
    NotificationsMarkAllRead,
    NotificationsSubscribe,
    NotificationsCreateNotification,
    AnalyticsGetOverview,
    AnalyticsGetExecutionStats,
    AnalyticsGetAiStats,
    AnalyticsListActiveRooms,
    AnalyticsListEvents,
    AnalyticsGetServiceHealth,
    AnalyticsRecordEvent,
];

impl Rpc {
    /// Acts that change the room, its members or its files get a room of their own per call.
    fn needs_fresh_room(self) -> bool {
        matches!(
            self,
            RoomsDeleteRoom
                | RoomsJoinRoom
                | RoomsRegenerateInviteCode
                | RoomsUpdateMemberRole
                | RoomsRemoveMember
                | RoomsDeleteFile
        )
    }

    /// Who may do this, by the spec's roles, in a private or a public room.
    fn allowed(self, role: Role, public: bool) -> bool {
        use Role::*;
        let signed_in = role != Anonymous;
        let member = matches!(role, Viewer | Editor | Owner);
        let writer = matches!(role, Editor | Owner);
        let reader = member || (public && signed_in);
        let anyone_reads = member || public;
        match self {
            AuthRegister | AuthLogin | AuthRefresh | AuthLogout | AuthGetTokenKeys => true,
            // Anyone sees the public rooms; a signed-in user sees theirs too.
            RoomsListRooms => true,
            AuthGetCurrentUser | AuthGetUserProfiles | RoomsCreateRoom | RoomsJoinRoom => signed_in,
            RoomsGetRoom | RoomsListMembers | RoomsListFiles | RoomsGetFile | HistoryListVersions
            | HistoryGetVersion | HistoryDiffVersions => anyone_reads,
            RoomsCheckAccess | RoomsSearchFiles | DocumentsGetDocument => anyone_reads,
            // Live collaboration (and presence in it) is for members; outsiders read public files.
            DocumentsCollaborate => member,
            RoomsUpdateRoom
            | RoomsDeleteRoom
            | RoomsRegenerateInviteCode
            | RoomsUpdateMemberRole
            | RoomsRemoveMember => role == Owner,
            RoomsCreateFile
            | RoomsUpdateFile
            | RoomsDeleteFile
            | RoomsMoveFolder
            | RoomsDeleteFolder
            | RoomsImportFiles
            | DocumentsApplyUpdate
            | DocumentsReplaceText
            | DocumentsInsertText
            | HistoryCreateVersion
            | HistoryRestoreVersion => writer,
            HistoryListRoomEvents => member,
            ExecutionExecute | ExecutionExecuteStream => reader,
            ExecutionListLanguages | ExecutionListExecutions => signed_in,
            PresenceJoinRoom | PresenceListOnline | PresenceSendChatMessage | PresenceListChatMessages => member,
            AssistantAsk => reader,
            AssistantCancel => false,
            AssistantGetStatus => signed_in,
            NotificationsListNotifications
            | NotificationsGetUnreadCount
            | NotificationsMarkRead
            | NotificationsMarkAllRead
            | NotificationsSubscribe => signed_in,
            NotificationsCreateNotification
            | AnalyticsRecordEvent
            | AnalyticsGetOverview
            | AnalyticsGetExecutionStats
            | AnalyticsGetAiStats
            | AnalyticsListActiveRooms
            | AnalyticsListEvents
            | AnalyticsGetServiceHealth => role == Admin,
            // About a live file: only once rooms has deleted a file may its document go.
            RoomsCheckDeletedFile | DocumentsDeleteDocument => false,
        }
    }
}

/// A room with an owner, an editor and a viewer, one file and two saved versions of it.
#[derive(Clone, Debug)]
struct Room {
    public: bool,
    id: String,
    invite_code: String,
    file_id: String,
    versions: [String; 2],
}

struct Matrix {
    cluster: Cluster,
    users: BTreeMap<Role, (Session, String)>,
    channels: BTreeMap<&'static str, Channel>,
}

const PASSWORD: &str = "correct horse battery";

impl Matrix {
    async fn new(cluster: Cluster) -> Self {
        let mut users = BTreeMap::new();
        // The first account of an installation is its administrator.
        for (role, name) in [
            (Role::Admin, "admin"),
            (Role::Owner, "owner"),
            (Role::Editor, "editor"),
            (Role::Viewer, "viewer"),
            (Role::Stranger, "stranger"),
        ] {
            users.insert(role, (cluster.register(name).await, format!("{name}@example.com")));
        }
        let mut channels = BTreeMap::new();
        for service in crate::harness::SERVICES {
            let address = format!("http://{}", cluster.grpc_addr_for(service));
            let channel = Channel::from_shared(address).expect("endpoint").connect().await.expect("connect");
            channels.insert(service, channel);
        }
        Self { cluster, users, channels }
    }

    fn session(&self, role: Role) -> Option<&Session> {
        self.users.get(&role).map(|(session, _)| session)
    }

    fn token(&self, role: Role) -> Option<&str> {
        self.session(role).map(|session| session.access_token.as_str())
    }

    fn channel(&self, service: &str) -> Channel {
        self.channels[service].clone()
    }

    /// `message` as `role` sends it: with its access token, or none.
    fn request<T>(&self, role: Role, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(token) = self.token(role) {
            let bearer = MetadataValue::try_from(format!("Bearer {token}")).expect("ascii token");
            request.metadata_mut().insert("authorization", bearer);
        }
        request.set_timeout(Duration::from_secs(30));
        request
    }

    async fn room(&self, public: bool) -> Room {
        let owner = self.token(Role::Owner);
        let (status, room) =
            self.cluster.post("/api/rooms", owner, json!({"name": "Matrix", "is_public": public})).await;
        assert_eq!(status, StatusCode::CREATED, "{room}");
        let id = room["id"].as_str().expect("room id").to_string();
        let invite_code = room["invite_code"].as_str().expect("invite code").to_string();
        for role in [Role::Editor, Role::Viewer] {
            let (status, body) =
                self.cluster.post("/api/rooms/join", self.token(role), json!({"invite_code": invite_code})).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        let viewer = &self.session(Role::Viewer).expect("viewer").user_id;
        let (status, body) =
            self.cluster.patch(&format!("/api/rooms/{id}/members/{viewer}"), owner, json!({"role": "viewer"})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, file) = self
            .cluster
            .post(&format!("/api/rooms/{id}/files"), owner, json!({"filename": "main.py", "content": "print(1)\n"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{file}");
        let file_id = file["id"].as_str().expect("file id").to_string();
        let mut versions = Vec::new();
        for (content, message) in [("print(1)\n", "first"), ("print(2)\n", "second")] {
            let (status, body) =
                self.cluster.patch(&format!("/api/files/{file_id}"), owner, json!({"content": content})).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let (status, version) =
                self.cluster.post(&format!("/api/history/file/{file_id}"), owner, json!({"message": message})).await;
            assert_eq!(status, StatusCode::CREATED, "{version}");
            versions.push(version["id"].as_str().expect("version id").to_string());
        }
        let versions = [versions[0].clone(), versions[1].clone()];
        Room { public, id, invite_code, file_id, versions }
    }

    async fn rest(&self, role: Role, method: Method, path: &str, body: Option<Value>) -> Outcome {
        let (status, body) = self.cluster.request(method, path, self.token(role), body).await;
        if status.is_success() { Outcome::Allowed } else { refused(status, &body) }
    }

    /// A REST call that answers with a stream: judged by its status, the stream left unread.
    async fn rest_stream(&self, role: Role, path: &str, body: Option<Value>) -> Outcome {
        let method = if body.is_some() { Method::POST } else { Method::GET };
        let mut request = self.cluster.http.request(method, format!("{}{path}", self.cluster.base_url));
        if let Some(token) = self.token(role) {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("send request");
        let status = response.status();
        if status.is_success() {
            return Outcome::Allowed;
        }
        let (status, body) = crate::harness::read(response).await;
        refused(status, &body)
    }

    /// A WebSocket: refused at the upgrade, closed at once with a 44xx code, or open.
    async fn socket(&self, role: Role, path: &str) -> Outcome {
        let mut url = self.cluster.ws_url(path);
        if let Some(token) = self.token(role) {
            url.push_str(&format!("?token={token}"));
        }
        let (mut socket, _) = match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok(connected) => connected,
            Err(tungstenite::Error::Http(response)) => {
                let body: Value = response
                    .body()
                    .as_deref()
                    .and_then(|bytes| serde_json::from_slice(bytes).ok())
                    .unwrap_or(Value::Null);
                return refused(StatusCode::from_u16(response.status().as_u16()).expect("status"), &body);
            }
            Err(error) => panic!("cannot connect to {path}: {error}"),
        };
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Ok(Some(Ok(tungstenite::Message::Close(Some(frame))))) if u16::from(frame.code) >= 4000 => {
                Outcome::Refused(u16::from(frame.code) - 4000, frame.reason.to_string())
            }
            Ok(Some(Ok(_))) => Outcome::Allowed,
            other => panic!("{path}: the socket neither spoke nor closed: {other:?}"),
        }
    }

    /// A refresh token of `role`'s own (the owner's for an anonymous caller), fresh from a login.
    async fn refresh_token(&self, role: Role) -> String {
        let (_, email) = self.users.get(&role).or_else(|| self.users.get(&Role::Owner)).expect("a user");
        let (status, body) =
            self.cluster.post("/api/auth/login", None, json!({"email": email, "password": PASSWORD})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["refresh_token"].as_str().expect("refresh token").to_string()
    }

    fn email(&self, role: Role) -> String {
        self.users.get(&role).or_else(|| self.users.get(&Role::Owner)).expect("a user").1.clone()
    }

    /// `rpc` as `role` over REST (or the WebSocket) and over gRPC.
    #[allow(clippy::too_many_lines)]
    async fn call(&self, rpc: Rpc, role: Role, room: &Room, serial: usize) -> (Outcome, Outcome) {
        use Method as M;
        let Room { id: room_id, invite_code, file_id, versions, .. } = room;
        let user_of = |role: Role| self.session(role).expect("a user").user_id.clone();
        let mut auth = auth::auth_service_client::AuthServiceClient::new(self.channel("auth"));
        let mut rooms = rooms::rooms_service_client::RoomsServiceClient::new(self.channel("rooms"));
        let mut documents = documents::documents_service_client::DocumentsServiceClient::new(self.channel("documents"));
        let mut history = history::history_service_client::HistoryServiceClient::new(self.channel("history"));
        let mut execution = execution::execution_service_client::ExecutionServiceClient::new(self.channel("execution"));
        let mut presence = presence::presence_service_client::PresenceServiceClient::new(self.channel("presence"));
        let mut assistant = assistant::assistant_service_client::AssistantServiceClient::new(self.channel("assistant"));
        let mut notifications =
            notifications::notifications_service_client::NotificationsServiceClient::new(self.channel("notifications"));
        let mut analytics = analytics::analytics_service_client::AnalyticsServiceClient::new(self.channel("analytics"));
        let brief = Duration::from_millis(300);
        let file_path = format!("/api/files/{file_id}");
        let room_path = format!("/api/rooms/{room_id}");
        match rpc {
            AuthRegister => {
                let name = |surface: &str| format!("new{surface}{serial}");
                let body =
                    json!({"username": name("r"), "email": format!("{}@example.com", name("r")), "password": PASSWORD});
                let message = auth::RegisterRequest {
                    username: name("g"),
                    email: format!("{}@example.com", name("g")),
                    password: PASSWORD.into(),
                };
                (
                    self.rest(role, M::POST, "/api/auth/register", Some(body)).await,
                    Outcome::of(auth.register(self.request(role, message)).await),
                )
            }
            AuthLogin => {
                let email = self.email(role);
                let message = auth::LoginRequest { email: email.clone(), password: PASSWORD.into() };
                (
                    self.rest(role, M::POST, "/api/auth/login", Some(json!({"email": email, "password": PASSWORD})))
                        .await,
                    Outcome::of(auth.login(self.request(role, message)).await),
                )
            }
            AuthRefresh | AuthLogout => {
                let (rest_token, grpc_token) = (self.refresh_token(role).await, self.refresh_token(role).await);
                let path = if rpc == AuthRefresh { "/api/auth/refresh" } else { "/api/auth/logout" };
                let rest = self.rest(role, M::POST, path, Some(json!({"refresh_token": rest_token}))).await;
                let grpc = if rpc == AuthRefresh {
                    Outcome::of(
                        auth.refresh(self.request(role, auth::RefreshRequest { refresh_token: grpc_token })).await,
                    )
                } else {
                    Outcome::of(
                        auth.logout(self.request(role, auth::LogoutRequest { refresh_token: grpc_token })).await,
                    )
                };
                (rest, grpc)
            }
            AuthGetCurrentUser => (
                self.rest(role, M::GET, "/api/auth/me", None).await,
                Outcome::of(auth.get_current_user(self.request(role, auth::GetCurrentUserRequest {})).await),
            ),
            // No REST route: profiles are what signed-in users see of each other, like `me`.
            AuthGetUserProfiles => (
                self.rest(role, M::GET, "/api/auth/me", None).await,
                Outcome::of(
                    auth.get_user_profiles(
                        self.request(role, auth::GetUserProfilesRequest { user_ids: vec![user_of(Role::Owner)] }),
                    )
                    .await,
                ),
            ),
            // The public half of the token keys, for any service to verify tokens with.
            AuthGetTokenKeys => (
                Outcome::Allowed,
                Outcome::of(auth.get_token_keys(self.request(role, auth::GetTokenKeysRequest {})).await),
            ),
            RoomsCreateRoom => (
                self.rest(role, M::POST, "/api/rooms", Some(json!({"name": "Made", "is_public": false}))).await,
                Outcome::of(
                    rooms
                        .create_room(self.request(
                            role,
                            rooms::CreateRoomRequest {
                                name: "Made".into(),
                                description: String::new(),
                                is_public: false,
                            },
                        ))
                        .await,
                ),
            ),
            RoomsListRooms => (
                self.rest(role, M::GET, "/api/rooms", None).await,
                Outcome::of(rooms.list_rooms(self.request(role, rooms::ListRoomsRequest {})).await),
            ),
            RoomsGetRoom => (
                self.rest(role, M::GET, &room_path, None).await,
                Outcome::of(
                    rooms.get_room(self.request(role, rooms::GetRoomRequest { room_id: room_id.clone() })).await,
                ),
            ),
            RoomsUpdateRoom => (
                self.rest(role, M::PATCH, &room_path, Some(json!({"description": "rest"}))).await,
                Outcome::of(
                    rooms
                        .update_room(self.request(
                            role,
                            rooms::UpdateRoomRequest {
                                room_id: room_id.clone(),
                                description: Some("grpc".into()),
                                ..Default::default()
                            },
                        ))
                        .await,
                ),
            ),
            RoomsDeleteRoom => {
                let rest = self.rest(role, M::DELETE, &room_path, None).await;
                let other = self.room_for(rpc, room).await;
                let grpc = Outcome::of(
                    rooms.delete_room(self.request(role, rooms::DeleteRoomRequest { room_id: other.id.clone() })).await,
                );
                (rest, grpc)
            }
            RoomsJoinRoom => {
                let rest = self.rest(role, M::POST, "/api/rooms/join", Some(json!({"invite_code": invite_code}))).await;
                let other = self.room_for(rpc, room).await;
                let grpc = Outcome::of(
                    rooms
                        .join_room(
                            self.request(role, rooms::JoinRoomRequest { invite_code: other.invite_code.clone() }),
                        )
                        .await,
                );
                (rest, grpc)
            }
            RoomsRegenerateInviteCode => {
                let rest = self.rest(role, M::POST, &format!("{room_path}/invite-code"), None).await;
                let other = self.room_for(rpc, room).await;
                let grpc = Outcome::of(
                    rooms
                        .regenerate_invite_code(
                            self.request(role, rooms::RegenerateInviteCodeRequest { room_id: other.id.clone() }),
                        )
                        .await,
                );
                (rest, grpc)
            }
            RoomsListMembers => (
                self.rest(role, M::GET, &format!("{room_path}/members"), None).await,
                Outcome::of(
                    rooms
                        .list_members(self.request(role, rooms::ListMembersRequest { room_id: room_id.clone() }))
                        .await,
                ),
            ),
            RoomsUpdateMemberRole | RoomsRemoveMember => {
                // Another member: removing oneself is leaving, which every member may do.
                let viewer = user_of(if role == Role::Viewer { Role::Editor } else { Role::Viewer });
                let member_path = format!("{room_path}/members/{viewer}");
                let rest = if rpc == RoomsUpdateMemberRole {
                    self.rest(role, M::PATCH, &member_path, Some(json!({"role": "editor"}))).await
                } else {
                    self.rest(role, M::DELETE, &member_path, None).await
                };
                let other = self.room_for(rpc, room).await;
                let grpc = if rpc == RoomsUpdateMemberRole {
                    Outcome::of(
                        rooms
                            .update_member_role(self.request(
                                role,
                                rooms::UpdateMemberRoleRequest {
                                    room_id: other.id.clone(),
                                    user_id: viewer,
                                    role: rooms::Role::Editor.into(),
                                },
                            ))
                            .await,
                    )
                } else {
                    Outcome::of(
                        rooms
                            .remove_member(self.request(
                                role,
                                rooms::RemoveMemberRequest { room_id: other.id.clone(), user_id: viewer },
                            ))
                            .await,
                    )
                };
                (rest, grpc)
            }
            RoomsCreateFile => (
                self.rest(
                    role,
                    M::POST,
                    &format!("{room_path}/files"),
                    Some(json!({"filename": format!("r{serial}.py"), "content": ""})),
                )
                .await,
                Outcome::of(
                    rooms
                        .create_file(self.request(
                            role,
                            rooms::CreateFileRequest {
                                room_id: room_id.clone(),
                                filename: format!("g{serial}.py"),
                                content: String::new(),
                            },
                        ))
                        .await,
                ),
            ),
            RoomsListFiles => (
                self.rest(role, M::GET, &format!("{room_path}/files"), None).await,
                Outcome::of(
                    rooms.list_files(self.request(role, rooms::ListFilesRequest { room_id: room_id.clone() })).await,
                ),
            ),
            RoomsGetFile => (
                self.rest(role, M::GET, &file_path, None).await,
                Outcome::of(
                    rooms.get_file(self.request(role, rooms::GetFileRequest { file_id: file_id.clone() })).await,
                ),
            ),
            RoomsUpdateFile => (
                self.rest(role, M::PATCH, &file_path, Some(json!({"content": "print(3)\n"}))).await,
                Outcome::of(
                    rooms
                        .update_file(self.request(
                            role,
                            rooms::UpdateFileRequest {
                                file_id: file_id.clone(),
                                content: Some("print(4)\n".into()),
                                ..Default::default()
                            },
                        ))
                        .await,
                ),
            ),
            RoomsDeleteFile => {
                let rest = self.rest(role, M::DELETE, &file_path, None).await;
                let other = self.room_for(rpc, room).await;
                let grpc = Outcome::of(
                    rooms
                        .delete_file(self.request(role, rooms::DeleteFileRequest { file_id: other.file_id.clone() }))
                        .await,
                );
                (rest, grpc)
            }
            RoomsMoveFolder | RoomsDeleteFolder => {
                // A folder for each surface, made by the owner.
                for surface in ["r", "g"] {
                    let path = format!("{room_path}/files");
                    let body = json!({"filename": format!("f{serial}{surface}/a.py")});
                    let (status, file) = self.cluster.post(&path, self.token(Role::Owner), body).await;
                    assert_eq!(status, StatusCode::CREATED, "{file}");
                }
                if rpc == RoomsMoveFolder {
                    let body = json!({"from": format!("f{serial}r"), "to": format!("t{serial}r")});
                    let rest = self.rest(role, M::POST, &format!("{room_path}/folders/move"), Some(body)).await;
                    let message = rooms::MoveFolderRequest {
                        room_id: room_id.clone(),
                        from: format!("f{serial}g"),
                        to: format!("t{serial}g"),
                    };
                    (rest, Outcome::of(rooms.move_folder(self.request(role, message)).await))
                } else {
                    let rest = self.rest(role, M::DELETE, &format!("{room_path}/folders?path=f{serial}r"), None).await;
                    let message = rooms::DeleteFolderRequest { room_id: room_id.clone(), path: format!("f{serial}g") };
                    (rest, Outcome::of(rooms.delete_folder(self.request(role, message)).await))
                }
            }
            RoomsSearchFiles => (
                self.rest(role, M::GET, &format!("{room_path}/search?q=print"), None).await,
                Outcome::of(
                    rooms
                        .search_files(self.request(
                            role,
                            rooms::SearchFilesRequest {
                                room_id: room_id.clone(),
                                query: "print".into(),
                                ..Default::default()
                            },
                        ))
                        .await,
                ),
            ),
            RoomsImportFiles => {
                let archive = crate::projects::zip_of(&[(&format!("i{serial}r.py"), "print(5)\n")]);
                let response = self
                    .cluster
                    .post_raw(&format!("{room_path}/archive"), self.token(role), "application/zip", archive)
                    .await;
                let (status, body) = crate::harness::read(response).await;
                let rest = if status.is_success() { Outcome::Allowed } else { refused(status, &body) };
                let message = rooms::ImportFilesRequest {
                    room_id: room_id.clone(),
                    files: vec![rooms::SourceFile { path: format!("i{serial}g.py"), content: "print(6)\n".into() }],
                };
                (rest, Outcome::of(rooms.import_files(self.request(role, message)).await))
            }
            // What a caller may do with a file: answered as reading the file is.
            RoomsCheckAccess => (
                self.rest(role, M::GET, &file_path, None).await,
                Outcome::of(
                    rooms
                        .check_access(self.request(
                            role,
                            rooms::CheckAccessRequest {
                                resource: Some(rooms::check_access_request::Resource::FileId(file_id.clone())),
                            },
                        ))
                        .await,
                ),
            ),
            RoomsCheckDeletedFile => (
                no_rest_equivalent(),
                Outcome::of(
                    rooms
                        .check_deleted_file(
                            self.request(role, rooms::CheckDeletedFileRequest { file_id: file_id.clone() }),
                        )
                        .await,
                ),
            ),
            DocumentsCollaborate => {
                let socket = self.socket(role, &format!("/ws/files/{file_id}")).await;
                let open = documents::CollaborateRequest {
                    frame: Some(documents::collaborate_request::Frame::Open(documents::OpenDocument {
                        file_id: file_id.clone(),
                        acknowledge: false,
                    })),
                };
                // The stream stays open (the sender lives) until the first answer is in.
                let (sender, requests) = tokio::sync::mpsc::channel(4);
                sender.send(open).await.expect("queue the opening frame");
                let grpc = first_of(
                    documents
                        .collaborate(self.request(role, tokio_stream::wrappers::ReceiverStream::new(requests)))
                        .await,
                    Duration::from_secs(10),
                )
                .await;
                drop(sender);
                (socket, grpc)
            }
            DocumentsGetDocument => (
                self.rest(role, M::GET, &file_path, None).await,
                Outcome::of(
                    documents
                        .get_document(self.request(
                            role,
                            documents::GetDocumentRequest { file_id: file_id.clone(), include_state: true },
                        ))
                        .await,
                ),
            ),
            DocumentsApplyUpdate | DocumentsReplaceText | DocumentsInsertText => {
                let rest = self.rest(role, M::PATCH, &file_path, Some(json!({"content": "print(5)\n"}))).await;
                let grpc = match rpc {
                    DocumentsApplyUpdate => Outcome::of(
                        documents
                            .apply_update(self.request(
                                role,
                                documents::ApplyUpdateRequest {
                                    file_id: file_id.clone(),
                                    update: empty_update().into(),
                                },
                            ))
                            .await,
                    ),
                    DocumentsReplaceText => Outcome::of(
                        documents
                            .replace_text(self.request(
                                role,
                                documents::ReplaceTextRequest { file_id: file_id.clone(), text: "print(6)\n".into() },
                            ))
                            .await,
                    ),
                    _ => Outcome::of(
                        documents
                            .insert_text(self.request(
                                role,
                                documents::InsertTextRequest { file_id: file_id.clone(), index: 0, text: "#\n".into() },
                            ))
                            .await,
                    ),
                };
                (rest, grpc)
            }
            // Only rooms, once it has deleted the file, may drop a document.
            DocumentsDeleteDocument => (
                no_rest_equivalent(),
                Outcome::of(
                    documents
                        .delete_document(
                            self.request(role, documents::DeleteDocumentRequest { file_id: file_id.clone() }),
                        )
                        .await,
                ),
            ),
            HistoryCreateVersion => (
                self.rest(role, M::POST, &format!("/api/history/file/{file_id}"), Some(json!({"message": "r"}))).await,
                Outcome::of(
                    history
                        .create_version(self.request(
                            role,
                            history::CreateVersionRequest { file_id: file_id.clone(), message: "g".into() },
                        ))
                        .await,
                ),
            ),
            HistoryListVersions => (
                self.rest(role, M::GET, &format!("/api/history/file/{file_id}"), None).await,
                Outcome::of(
                    history
                        .list_versions(self.request(
                            role,
                            history::ListVersionsRequest { file_id: file_id.clone(), ..Default::default() },
                        ))
                        .await,
                ),
            ),
            HistoryGetVersion => (
                self.rest(role, M::GET, &format!("/api/history/version/{}", versions[0]), None).await,
                Outcome::of(
                    history
                        .get_version(self.request(role, history::GetVersionRequest { version_id: versions[0].clone() }))
                        .await,
                ),
            ),
            HistoryDiffVersions => (
                self.rest(role, M::GET, &format!("/api/history/diff?from={}&to={}", versions[0], versions[1]), None)
                    .await,
                Outcome::of(
                    history
                        .diff_versions(self.request(
                            role,
                            history::DiffVersionsRequest {
                                from_version_id: versions[0].clone(),
                                to_version_id: versions[1].clone(),
                            },
                        ))
                        .await,
                ),
            ),
            HistoryRestoreVersion => (
                self.rest(role, M::POST, &format!("/api/history/restore/{}", versions[0]), Some(json!({}))).await,
                Outcome::of(
                    history
                        .restore_version(self.request(
                            role,
                            history::RestoreVersionRequest { version_id: versions[0].clone(), expected_head: None },
                        ))
                        .await,
                ),
            ),
            HistoryListRoomEvents => (
                self.rest(role, M::GET, &format!("/api/history/room/{room_id}/events"), None).await,
                Outcome::of(
                    history
                        .list_room_events(self.request(
                            role,
                            history::ListRoomEventsRequest { room_id: room_id.clone(), ..Default::default() },
                        ))
                        .await,
                ),
            ),
            ExecutionExecute | ExecutionExecuteStream => {
                let message = execution::ExecuteRequest {
                    source: Some(execution::execute_request::Source::FileId(file_id.clone())),
                    stdin: String::new(),
                };
                let body = json!({"file_id": file_id});
                if rpc == ExecutionExecute {
                    (
                        self.rest(role, M::POST, "/api/executions", Some(body)).await,
                        Outcome::of(execution.execute(self.request(role, message)).await),
                    )
                } else {
                    (
                        self.rest_stream(role, "/api/executions/stream", Some(body)).await,
                        first_of(execution.execute_stream(self.request(role, message)).await, Duration::from_secs(10))
                            .await,
                    )
                }
            }
            ExecutionListLanguages => (
                self.rest(role, M::GET, "/api/executions/languages", None).await,
                Outcome::of(execution.list_languages(self.request(role, execution::ListLanguagesRequest {})).await),
            ),
            ExecutionListExecutions => (
                self.rest(role, M::GET, &format!("/api/executions?room_id={room_id}"), None).await,
                Outcome::of(
                    execution
                        .list_executions(
                            self.request(role, execution::ListExecutionsRequest { room_id: room_id.clone(), limit: 0 }),
                        )
                        .await,
                ),
            ),
            PresenceJoinRoom => {
                let socket = self.socket(role, &format!("/ws/rooms/{room_id}")).await;
                let open = presence::RoomClientEvent {
                    event: Some(presence::room_client_event::Event::Open(presence::OpenRoom {
                        room_id: room_id.clone(),
                    })),
                };
                let (sender, requests) = tokio::sync::mpsc::channel(4);
                sender.send(open).await.expect("queue the opening event");
                let grpc = first_of(
                    presence.join_room(self.request(role, tokio_stream::wrappers::ReceiverStream::new(requests))).await,
                    Duration::from_secs(10),
                )
                .await;
                drop(sender);
                (socket, grpc)
            }
            // Who is here and the chat are what the room's socket carries.
            PresenceListOnline | PresenceSendChatMessage | PresenceListChatMessages => {
                let socket = self.socket(role, &format!("/ws/rooms/{room_id}")).await;
                let grpc = match rpc {
                    PresenceListOnline => Outcome::of(
                        presence
                            .list_online(self.request(role, presence::ListOnlineRequest { room_id: room_id.clone() }))
                            .await,
                    ),
                    PresenceSendChatMessage => Outcome::of(
                        presence
                            .send_chat_message(self.request(
                                role,
                                presence::SendChatMessageRequest { room_id: room_id.clone(), text: "hello".into() },
                            ))
                            .await,
                    ),
                    _ => Outcome::of(
                        presence
                            .list_chat_messages(self.request(
                                role,
                                presence::ListChatMessagesRequest { room_id: room_id.clone(), ..Default::default() },
                            ))
                            .await,
                    ),
                };
                (socket, grpc)
            }
            AssistantAsk => (
                self.rest_stream(role, "/api/ai/stream", Some(json!({"mode": "explain", "file_id": file_id}))).await,
                first_of(
                    assistant
                        .ask(self.request(
                            role,
                            assistant::AskRequest {
                                mode: assistant::Mode::Explain.into(),
                                file_id: file_id.clone(),
                                ..Default::default()
                            },
                        ))
                        .await,
                    Duration::from_secs(10),
                )
                .await,
            ),
            AssistantCancel => {
                (
                    self.rest(role, M::POST, "/api/ai/cancel/no-such-interaction", None).await,
                    Outcome::of(
                        assistant
                            .cancel(self.request(
                                role,
                                assistant::CancelRequest { interaction_id: "no-such-interaction".into() },
                            ))
                            .await,
                    ),
                )
            }
            AssistantGetStatus => (
                self.rest(role, M::GET, "/api/ai/status", None).await,
                Outcome::of(assistant.get_status(self.request(role, assistant::GetStatusRequest {})).await),
            ),
            NotificationsListNotifications => (
                self.rest(role, M::GET, "/api/notifications", None).await,
                Outcome::of(
                    notifications
                        .list_notifications(self.request(role, notifications::ListNotificationsRequest::default()))
                        .await,
                ),
            ),
            NotificationsGetUnreadCount => (
                self.rest(role, M::GET, "/api/notifications/unread-count", None).await,
                Outcome::of(
                    notifications.get_unread_count(self.request(role, notifications::GetUnreadCountRequest {})).await,
                ),
            ),
            NotificationsMarkRead => (
                self.rest(role, M::POST, "/api/notifications/read", Some(json!({"ids": []}))).await,
                Outcome::of(
                    notifications
                        .mark_read(self.request(role, notifications::MarkReadRequest { notification_ids: Vec::new() }))
                        .await,
                ),
            ),
            NotificationsMarkAllRead => (
                self.rest(role, M::POST, "/api/notifications/read-all", None).await,
                Outcome::of(
                    notifications.mark_all_read(self.request(role, notifications::MarkAllReadRequest {})).await,
                ),
            ),
            NotificationsSubscribe => (
                self.rest_stream(role, "/api/notifications/stream", None).await,
                first_of(notifications.subscribe(self.request(role, notifications::SubscribeRequest {})).await, brief)
                    .await,
            ),
            NotificationsCreateNotification => {
                let target = user_of(Role::Stranger);
                (
                    self.rest(
                        role,
                        M::POST,
                        "/api/notifications",
                        Some(json!({"user_id": target, "title": "Notice", "message": "rest"})),
                    )
                    .await,
                    Outcome::of(
                        notifications
                            .create_notification(self.request(
                                role,
                                notifications::CreateNotificationRequest {
                                    user_id: target,
                                    r#type: notifications::NotificationType::System.into(),
                                    title: "Notice".into(),
                                    message: "grpc".into(),
                                    metadata_json: String::new(),
                                },
                            ))
                            .await,
                    ),
                )
            }
            AnalyticsGetOverview => (
                self.rest(role, M::GET, "/api/analytics/overview", None).await,
                Outcome::of(analytics.get_overview(self.request(role, analytics::GetOverviewRequest {})).await),
            ),
            AnalyticsGetExecutionStats => (
                self.rest(role, M::GET, "/api/analytics/executions", None).await,
                Outcome::of(
                    analytics
                        .get_execution_stats(self.request(role, analytics::GetExecutionStatsRequest { since_ms: 0 }))
                        .await,
                ),
            ),
            AnalyticsGetAiStats => (
                self.rest(role, M::GET, "/api/analytics/ai", None).await,
                Outcome::of(
                    analytics.get_ai_stats(self.request(role, analytics::GetAiStatsRequest { since_ms: 0 })).await,
                ),
            ),
            AnalyticsListActiveRooms => (
                self.rest(role, M::GET, "/api/analytics/active-rooms", None).await,
                Outcome::of(
                    analytics
                        .list_active_rooms(self.request(role, analytics::ListActiveRoomsRequest { limit: 0 }))
                        .await,
                ),
            ),
            AnalyticsListEvents => (
                self.rest(role, M::GET, "/api/analytics/events", None).await,
                Outcome::of(analytics.list_events(self.request(role, analytics::ListEventsRequest::default())).await),
            ),
            AnalyticsGetServiceHealth => (
                self.rest(role, M::GET, "/api/analytics/health", None).await,
                Outcome::of(
                    analytics.get_service_health(self.request(role, analytics::GetServiceHealthRequest {})).await,
                ),
            ),
            // Events come from the services over the bus; an administrator may add one by hand.
            AnalyticsRecordEvent => (
                if role == Role::Admin {
                    Outcome::Allowed
                } else {
                    self.rest(role, M::GET, "/api/analytics/events", None).await
                },
                Outcome::of(
                    analytics
                        .record_event(self.request(
                            role,
                            analytics::RecordEventRequest {
                                event: Some(analytics::PlatformEvent {
                                    topic: "analytics-events".into(),
                                    event_type: "forged".into(),
                                    ..Default::default()
                                }),
                            },
                        ))
                        .await,
                ),
            ),
        }
    }

    /// A room for the gRPC half of an act that changes it: REST has had the fixture's.
    async fn room_for(&self, rpc: Rpc, room: &Room) -> Room {
        if rpc.needs_fresh_room() { self.room(room.public).await } else { room.clone() }
    }
}

fn refused(status: StatusCode, body: &Value) -> Outcome {
    Outcome::Refused(status.as_u16(), body["error"]["code"].as_str().unwrap_or_default().to_string())
}

/// An RPC no REST route stands for: judged by the expectation alone.
fn no_rest_equivalent() -> Outcome {
    Outcome::Refused(0, "no REST equivalent".into())
}

/// A Yjs update that changes nothing: enough to test who may send one.
fn empty_update() -> Vec<u8> {
    vec![0, 0]
}

async fn run(cluster: Cluster) {
    let matrix = Matrix::new(cluster).await;
    let mut failures = Vec::new();
    let mut table = String::new();
    let mut serial = 0;
    for public in [false, true] {
        let shared = matrix.room(public).await;
        for rpc in RPCS {
            for role in ROLES {
                serial += 1;
                let room = if rpc.needs_fresh_room() { matrix.room(public).await } else { shared.clone() };
                let (rest, grpc) = matrix.call(rpc, role, &room, serial).await;
                let expected = rpc.allowed(role, public);
                let rest_text = format!("{rest:?}");
                let visibility = if public { "public" } else { "private" };
                table.push_str(&format!("{visibility:<9} {rpc:<34?} {role:<9?} rest {rest_text:<40} grpc {grpc:?}\n"));
                let same = match &rest {
                    Outcome::Refused(0, _) => !grpc.is_allowed(),
                    _ => rest == grpc,
                };
                if !same || grpc.is_allowed() != expected {
                    failures.push(format!(
                        "{rpc:?} as {role:?} in a {} room: REST {rest:?}, gRPC {grpc:?}, expected {}",
                        if public { "public" } else { "private" },
                        if expected { "success" } else { "a refusal" }
                    ));
                }
            }
        }
    }
    eprintln!("{table}");
    assert!(failures.is_empty(), "{} disagreements:\n{}", failures.len(), failures.join("\n"));
}

#[tokio::test]
async fn every_rpc_answers_each_role_as_rest_does_in_one_process() {
    let (env, _provider) = crate::assistant::configured_with_stand_in().await;
    let env: Vec<(&str, &str)> = env.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect();
    run(Cluster::one_process(&env).await).await;
}

#[tokio::test]
async fn every_rpc_answers_each_role_as_rest_does_split_across_processes() {
    let (env, _provider) = crate::assistant::configured_with_stand_in().await;
    let env: Vec<(&str, &str)> = env.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect();
    run(Cluster::ten_processes(&env).await).await;
}
