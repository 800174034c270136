//! The documents service: each file's text as a Yjs-compatible CRDT (`yrs`),
//! synchronised with the unmodified y-websocket / y-protocols wire format,
//! durable across crashes (a per-file update log written with group commit
//! and compacted into snapshots), under a memory budget.
//!
//! Its gRPC contract is `codesync.documents.v1.DocumentsService` in `proto/`.
//! The gateway bridges each WebSocket of `/ws/files/{file_id}` to one
//! `Collaborate` stream. Any number of replicas share a PostgreSQL store: each file has one
//! owner at a time (`ownership`), and a replica that is asked about a file another one owns
//! forwards the call there (`forward`).
#![forbid(unsafe_code)]

pub mod actor;
pub mod awareness;
pub mod diff;
mod forward;
pub mod outbox;
pub mod ownership;
pub mod protocol;
pub mod registry;
pub mod store;
pub mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use codesync_common::consumer::{self, HandleError, StartFrom};
use codesync_common::events::{Event, EventBus, Kind, ROOM_EVENTS};
use codesync_common::grpc::{CallContext, CallPolicy, GrpcChannel, is_transport_failure};
use codesync_common::identity::{Caller, TokenService};
use codesync_common::{ErrorCode, ServiceError, ServiceResult};
use codesync_proto::documents::v1 as pb;
use codesync_proto::documents::v1::documents_service_client::DocumentsServiceClient;
use codesync_proto::documents::v1::documents_service_server::{DocumentsService, DocumentsServiceServer};
use codesync_proto::pieces;
use codesync_proto::rooms::v1 as rooms_pb;
use codesync_proto::rooms::v1::rooms_service_client::RoomsServiceClient;
use tokio::sync::oneshot;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::actor::{ActorConfig, Command, DocumentView, Opening, SeedSource, ServerEdit, Shared, moved_to};
use crate::awareness::Identity;
use crate::forward::Peers;
use crate::ownership::Ownership;
use crate::registry::Registry;
use crate::store::DocumentsStore;
use crate::writer::Writer;

/// The consumer group that ends the documents of deleted files and rooms.
pub const CONSUMER_GROUP: &str = "documents";
/// How long the removal of one deleted file's document may take (it may be forwarded).
const PURGE_TIMEOUT: Duration = Duration::from_secs(30);

/// The service's settings, from the `documents_*` configuration keys.
#[derive(Debug, Clone)]
pub struct DocumentsConfig {
    /// Estimated memory of loaded documents above which idle ones are unloaded.
    pub memory_budget_bytes: usize,
    /// The largest y-protocols message accepted from a client.
    pub max_message_bytes: usize,
    /// The largest a document may grow, in stored bytes.
    pub max_document_bytes: usize,
    pub snapshot_every_updates: usize,
    pub idle_unload_after: Duration,
    /// Messages queued for one connection before it counts as too slow and is closed.
    pub connection_queue: usize,
    /// Bytes queued for one connection before it counts as too slow and is closed.
    pub connection_queue_bytes: usize,
    /// A file's edits are announced on `collaboration-events` at most this often (history's
    /// checkpoints and analytics count them).
    pub activity_window: Duration,
    /// How long a replica's claim on its files outlives its last renewal (PostgreSQL): the
    /// time until another replica takes over the files of one that died.
    pub lease_ttl: Duration,
}

impl Default for DocumentsConfig {
    fn default() -> Self {
        Self {
            memory_budget_bytes: 512 * 1024 * 1024,
            max_message_bytes: 1024 * 1024,
            max_document_bytes: 16 * 1024 * 1024,
            snapshot_every_updates: 1000,
            idle_unload_after: Duration::from_secs(60),
            connection_queue: 4096,
            connection_queue_bytes: 16 * 1024 * 1024,
            activity_window: Duration::from_secs(10),
            lease_ttl: Duration::from_secs(4),
        }
    }
}

/// Counters of what the service did, for `/metrics` and the benchmarks.
#[derive(Debug, Default)]
pub struct Metrics {
    pub documents_loaded: AtomicU64,
    pub relayed_updates: AtomicU64,
    pub malformed_messages: AtomicU64,
    pub refused_writes: AtomicU64,
    pub apply_panics: AtomicU64,
    pub slow_clients_dropped: AtomicU64,
    pub snapshots: AtomicU64,
    pub commits: AtomicU64,
    pub committed_updates: AtomicU64,
    pub commit_micros: AtomicU64,
}

impl codesync_common::metrics::Source for Metrics {
    fn readings(&self) -> Vec<codesync_common::metrics::Reading> {
        use codesync_common::metrics::Reading;
        let count = |value: &AtomicU64| value.load(Ordering::Relaxed);
        vec![
            Reading::counter("documents_loads", "Documents loaded from the store", count(&self.documents_loaded)),
            Reading::counter(
                "documents_relayed_updates",
                "Updates relayed to the other connections of a document",
                count(&self.relayed_updates),
            ),
            Reading::counter("documents_commits", "Group commits (each synced to disk)", count(&self.commits)),
            Reading::counter(
                "documents_committed_updates",
                "Updates made durable by group commits",
                count(&self.committed_updates),
            ),
            Reading::total(
                "documents_commit_seconds",
                "Time spent in group commits (its rate over the commits' rate is the mean commit time)",
                count(&self.commit_micros) as f64 / 1e6,
            ),
            Reading::counter("documents_snapshots", "Logs compacted into snapshots", count(&self.snapshots)),
            Reading::counter(
                "documents_malformed_messages",
                "Client messages refused as malformed",
                count(&self.malformed_messages),
            ),
            Reading::counter(
                "documents_refused_writes",
                "Updates refused (a viewer, a document over its size limit)",
                count(&self.refused_writes),
            ),
            Reading::counter(
                "documents_slow_clients_dropped",
                "Connections closed because they fell too far behind",
                count(&self.slow_clients_dropped),
            ),
            Reading::counter("documents_apply_panics", "Updates whose application panicked", count(&self.apply_panics)),
        ]
    }
}

impl Metrics {
    fn record_commit(&self, updates: usize, elapsed: Duration) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.committed_updates.fetch_add(updates as u64, Ordering::Relaxed);
        self.commit_micros.fetch_add(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

/// The gRPC implementation of `DocumentsService`.
#[derive(Clone)]
pub struct DocumentsGrpcService {
    registry: Arc<Registry>,
    store: DocumentsStore,
    tokens: TokenService,
    rooms: RoomsServiceClient<GrpcChannel>,
    config: DocumentsConfig,
    next_connection: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
    ownership: Ownership,
    peers: Peers,
    /// Set on a graceful stop: no file is opened here any more.
    draining: Arc<AtomicBool>,
}

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
struct FileAccess {
    room_id: String,
    identity: Identity,
    is_member: bool,
    can_write: bool,
}

/// How a replica stands among the others: which files it may load, and how it reaches the
/// replicas that own the rest.
pub struct Replicas {
    pub ownership: Ownership,
    pub calls: CallPolicy,
    /// Presented to the other replicas on the calls it forwards to them.
    pub credential: Arc<codesync_common::identity::ServiceCredential>,
}

impl DocumentsGrpcService {
    /// Starts the writer and the registry; call inside the runtime.
    pub fn new(
        store: DocumentsStore,
        tokens: TokenService,
        rooms_channel: GrpcChannel,
        events: Arc<dyn EventBus>,
        config: DocumentsConfig,
        replicas: Replicas,
    ) -> Self {
        let Replicas { ownership, calls, credential } = replicas;
        let metrics = Arc::new(Metrics::default());
        codesync_common::metrics::register(metrics.clone());
        let writer = Writer::start(store.clone(), 65_536, metrics.clone(), ownership.clone());
        let actor_config = ActorConfig {
            snapshot_every_updates: config.snapshot_every_updates.max(1),
            max_document_bytes: config.max_document_bytes,
            idle_unload_after: config.idle_unload_after,
            activity_window: config.activity_window,
        };
        let room_events = events.subscribe(ROOM_EVENTS);
        let consumer_events = events.clone();
        let shared = Shared {
            config: actor_config,
            store: store.clone(),
            writer,
            metrics: metrics.clone(),
            events,
            ownership: ownership.clone(),
        };
        let registry = Registry::start(shared, config.memory_budget_bytes);
        tokio::spawn(apply_membership_changes(room_events, Arc::downgrade(&registry)));
        tokio::spawn(close_when_ownership_is_lost(ownership.clone(), Arc::downgrade(&registry)));
        let max_message_bytes = config.max_message_bytes + 64 * 1024;
        let service = Self {
            registry,
            store,
            tokens,
            rooms: RoomsServiceClient::new(rooms_channel).max_decoding_message_size(64 * 1024 * 1024),
            config,
            next_connection: Arc::new(AtomicU64::new(1)),
            metrics,
            ownership,
            peers: Peers::new(calls, max_message_bytes, credential),
            draining: Arc::new(AtomicBool::new(false)),
        };
        // Deleting a file or a room (REST or gRPC, on any replica) ends its documents here.
        let deleting = service.clone();
        tokio::spawn(consumer::run(consumer_events, CONSUMER_GROUP, &[ROOM_EVENTS], StartFrom::Latest, move |event| {
            let service = deleting.clone();
            async move { service.delete_documents_of_deleted(&event).await }
        }));
        service
    }

    /// A graceful stop: nothing is opened here any more; every open document makes what it
    /// holds durable and closes its connections with `service_restarting` (WebSocket close code
    /// 1012: the clients reconnect at once, to another replica); then the files are handed back,
    /// so that the replica they reconnect to takes them over without waiting for a lease.
    pub async fn drain(&self, grace: Duration) {
        self.draining.store(true, Ordering::SeqCst);
        self.ownership.stop_claiming();
        let status =
            tonic::Status::from(ServiceError::Restarting { message: "the server is restarting; reconnect".into() });
        let mailboxes = self.registry.loaded_mailboxes();
        let count = mailboxes.len();
        for mailbox in mailboxes {
            let _ = mailbox.send(Command::Close { status: status.clone(), flush: true }).await;
        }
        let started = std::time::Instant::now();
        while self.registry.loaded().0 > 0 && started.elapsed() < grace {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.ownership.release_all().await;
        tracing::info!(documents = count, elapsed_ms = started.elapsed().as_millis() as u64, "documents handed over");
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    pub fn into_grpc_server(self) -> DocumentsServiceServer<Self> {
        let limit = self.config.max_message_bytes + 64 * 1024;
        DocumentsServiceServer::new(self).max_decoding_message_size(limit.max(4 * 1024 * 1024))
    }

    /// The rooms service's answer on the caller's access to a file: its own
    /// refusal (404 for a private room of others) is the answer to give.
    async fn check_file(&self, context: &CallContext, file_id: &str) -> ServiceResult<rooms_pb::CheckAccessResponse> {
        codesync_common::access::check_file(&self.rooms, context, file_id).await
    }

    /// Removes a deleted file's document (its live copy, log and snapshots), for a caller who
    /// could have deleted the file: the `DeleteDocument` call, and this service's own reaction to
    /// `file_deleted` and `room_deleted` (acting for whoever deleted them). "Not found" from an
    /// access check is not enough: a private room's live file is not found for outsiders too.
    async fn delete_document_of(&self, context: &CallContext, file_id: &str, forwarded: bool) -> Result<(), Status> {
        match self.check_file(context, file_id).await {
            Ok(_) => {
                return Err(ServiceError::FailedPrecondition {
                    code: ErrorCode::FileExists,
                    message: "delete the file through the rooms service first".into(),
                }
                .into());
            }
            Err(error) if error.is(ErrorCode::FileNotFound) => {}
            Err(error) => return Err(error.into()),
        }
        let check = context.request(rooms_pb::CheckDeletedFileRequest { file_id: file_id.to_string() });
        self.rooms
            .clone()
            .check_deleted_file(check)
            .await
            .map_err(|status| ServiceError::from_peer("rooms", status))?;
        // Where the document is open, its actor closes it and deletes it; elsewhere the rows go.
        if let Some(mailbox) = self.registry.mailbox_if_loaded(file_id) {
            let (reply, answer) = oneshot::channel();
            if mailbox.send(Command::Delete { reply }).await.is_ok() {
                answer.await.map_err(|_| ServiceError::Unavailable {
                    message: "the document was unloaded during deletion; try again".into(),
                })??;
                self.ownership.forget(file_id).await?;
                return Ok(());
            }
        }
        if !forwarded && let Some(owner) = self.ownership.live_owner_elsewhere(file_id).await? {
            let mut client = self.peers.client(&owner)?;
            let request = pb::DeleteDocumentRequest { file_id: file_id.to_string() };
            client.delete_document(forward::forwarded(context, request)).await?;
            return Ok(());
        }
        self.store.delete_document(file_id).await?;
        self.ownership.forget(file_id).await?;
        Ok(())
    }

    /// A room event that ends documents: a file deleted, or a room with its files. Each is
    /// removed as whoever deleted it, wherever it is open, whoever deleted it (REST or gRPC).
    async fn delete_documents_of_deleted(&self, event: &Event) -> Result<(), HandleError> {
        let (file_ids, by) = match &event.kind {
            Kind::FileDeleted(deleted) => (vec![deleted.file_id.clone()], &deleted.by),
            Kind::RoomDeleted(deleted) => (deleted.file_ids.clone(), &deleted.by),
            _ => return Ok(()),
        };
        if by.is_empty() {
            return Err(HandleError::poisoned(format!("a {} event without who deleted it", event.kind_name())));
        }
        for file_id in file_ids {
            let context = CallContext::acting_for(by).with_timeout(PURGE_TIMEOUT);
            match self.delete_document_of(&context, &file_id, false).await {
                Ok(()) => tracing::info!(file.id = %file_id, "removed a deleted file's document"),
                // Never a file here, or its room is gone with its rows: nothing to remove.
                Err(status) if status.code() == tonic::Code::NotFound => {}
                Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                    return Err(HandleError::poisoned(format!(
                        "the file {file_id} is not deleted: {}",
                        status.message()
                    )));
                }
                Err(status) => return Err(HandleError::transient(status.message())),
            }
        }
        Ok(())
    }

    async fn file_access(&self, caller: Caller, context: &CallContext, file_id: &str) -> ServiceResult<FileAccess> {
        let access = self.check_file(context, file_id).await?;
        Ok(FileAccess {
            room_id: access.room_id,
            identity: Identity { user_id: caller.user_id, username: caller.username },
            is_member: access.role != rooms_pb::Role::Unspecified as i32,
            can_write: access.can_write,
        })
    }

    fn opening(&self, context: &CallContext, room_id: String) -> Opening {
        Opening { room_id, seed: Arc::new(RoomsSeed { rooms: self.rooms.clone(), context: context.clone() }) }
    }

    fn refuse_while_draining(&self) -> ServiceResult<()> {
        if self.draining.load(Ordering::SeqCst) {
            return Err(ServiceError::Restarting { message: "the server is restarting; try again".into() });
        }
        Ok(())
    }

    async fn read(&self, file_id: &str, include_state: bool, opening: &Opening) -> ServiceResult<DocumentView> {
        let (reply, answer) = oneshot::channel();
        self.registry.send(file_id, opening, Command::Read { include_state, reply }).await?;
        answer
            .await
            .map_err(|_| ServiceError::Unavailable { message: "the document was unloaded; try again".into() })?
    }

    /// A server-side edit, authorised as a collaborator's, made where the file is open.
    async fn edit<T: Clone>(
        &self,
        request: &Request<T>,
        file_id: &str,
        edit: ServerEdit,
        forward: impl Fn(DocumentsServiceClient<GrpcChannel>, Request<T>) -> forward::UnaryCall<pb::ApplyUpdateResponse>,
    ) -> Result<Response<pb::ApplyUpdateResponse>, Status> {
        let caller = self.tokens.require_caller(request.metadata())?;
        let context = CallContext::from_request(request, &self.tokens);
        let access = self.file_access(caller, &context, file_id).await?;
        // The same answers as rooms gives a REST caller: an outsider is told to join first.
        if !access.is_member {
            return Err(ServiceError::forbidden(ErrorCode::NotAMember, "only members of this room may do this").into());
        }
        if !access.can_write {
            return Err(ServiceError::forbidden(ErrorCode::ReadOnly, "viewers cannot edit this file").into());
        }
        self.refuse_while_draining()?;
        let (reply, answer) = oneshot::channel();
        let opening = self.opening(&context, access.room_id);
        let local = async {
            self.registry.send(file_id, &opening, Command::Edit { edit, reply }).await?;
            answer
                .await
                .map_err(|_| ServiceError::Unavailable { message: "the document was unloaded; try again".into() })?
        };
        match local.await {
            Ok(text) => Ok(Response::new(pb::ApplyUpdateResponse { text })),
            Err(error) => {
                let status = Status::from(error);
                self.forward_unary(status, request, &context, forward).await
            }
        }
    }

    /// After a local attempt failed with `status`: when it names the replica that owns the file,
    /// the call goes there (once: a forwarded call is never forwarded again) and that answer is
    /// the answer.
    async fn forward_unary<T: Clone, R>(
        &self,
        status: Status,
        request: &Request<T>,
        context: &CallContext,
        call: impl Fn(DocumentsServiceClient<GrpcChannel>, Request<T>) -> forward::UnaryCall<R>,
    ) -> Result<Response<R>, Status> {
        let Some(owner) = moved_to(&status) else { return Err(status) };
        if forward::is_forwarded(request.metadata()) {
            return Err(status);
        }
        let client = self.peers.client(&owner)?;
        call(client, forward::forwarded(context, request.get_ref().clone())).await
    }
}

/// Every open document closes when this replica lost its lease: another replica may own its
/// files by now, and their clients reconnect to it.
async fn close_when_ownership_is_lost(ownership: Ownership, registry: std::sync::Weak<Registry>) {
    loop {
        ownership.lost().await;
        let Some(registry) = registry.upgrade() else { return };
        let status = tonic::Status::from(ServiceError::Unavailable {
            message: "this server lost contact with the others; reconnect".into(),
        });
        for mailbox in registry.loaded_mailboxes() {
            let _ = mailbox.send(Command::Close { status: status.clone(), flush: false }).await;
        }
    }
}

/// Role changes and removals from `room-events` reach the open connections of
/// that user in that room at once. (With the in-process bus this needs rooms
/// and documents in one process; across processes it needs the Kafka bus.)
async fn apply_membership_changes(
    mut room_events: tokio::sync::broadcast::Receiver<codesync_common::events::Event>,
    registry: std::sync::Weak<Registry>,
) {
    while let Some(change) = codesync_common::events::next_membership_change(&mut room_events).await {
        // None: no longer a member; an unknown role writes nothing.
        let can_write = change.role.map(rooms_pb::Role::can_write);
        let Some(registry) = registry.upgrade() else { return };
        for mailbox in registry.loaded_mailboxes() {
            let command = Command::MembershipChanged {
                room_id: change.room_id.clone(),
                user_id: change.user_id.clone(),
                can_write,
            };
            let _ = mailbox.send(command).await;
        }
    }
}

#[tonic::async_trait]
impl DocumentsService for DocumentsGrpcService {
    async fn collaborate(
        &self,
        request: Request<Streaming<pb::CollaborateRequest>>,
    ) -> Result<Response<tonic::codegen::BoxStream<pb::CollaborateResponse>>, Status> {
        let caller = self.tokens.require_caller(request.metadata())?;
        let context = CallContext::from_request(&request, &self.tokens);
        let forwarded = forward::is_forwarded(request.metadata());
        let mut inbound = request.into_inner();
        let open = match inbound.message().await? {
            Some(pb::CollaborateRequest { frame: Some(pb::collaborate_request::Frame::Open(open)) }) => open,
            _ => {
                return Err(
                    ServiceError::invalid(ErrorCode::OpenFirst, "the first frame must name the file (open)").into()
                );
            }
        };
        let access = self.file_access(caller, &context, &open.file_id).await?;
        if !access.is_member {
            return Err(
                ServiceError::forbidden(ErrorCode::NotAMember, "join the room to collaborate on its files").into()
            );
        }
        let inbound = forward::SharedInbound::new(inbound);
        // Until the file's owner answers: a dead owner's lease must run out before another
        // replica (this one, most likely) takes the file over.
        let give_up_at = tokio::time::Instant::now() + self.config.lease_ttl * 2 + Duration::from_secs(2);
        loop {
            self.refuse_while_draining()?;
            let status = match self.join_here(&access, &open, &context, inbound.clone()).await {
                Ok(stream) => return Ok(Response::new(stream)),
                Err(status) => status,
            };
            let Some(owner) = moved_to(&status).filter(|_| !forwarded) else { return Err(status) };
            match self.peers.collaborate(&owner, &context, open.clone(), inbound.clone()).await {
                Ok(stream) => return Ok(Response::new(stream)),
                Err(status) if is_transport_failure(&status) && tokio::time::Instant::now() < give_up_at => {
                    tracing::debug!(file_id = %open.file_id, %owner, "the file's owner cannot be reached; asking again");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(status) if is_transport_failure(&status) => {
                    return Err(ServiceError::Unavailable {
                        message: "the server holding this file cannot be reached; try again".into(),
                    }
                    .into());
                }
                Err(status) if moved_to(&status).is_some() => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(status) => return Err(status),
            }
        }
    }

    async fn delete_document(
        &self,
        request: Request<pb::DeleteDocumentRequest>,
    ) -> Result<Response<pb::DeleteDocumentResponse>, Status> {
        self.tokens.require_caller(request.metadata())?;
        let context = CallContext::from_request(&request, &self.tokens);
        let forwarded = forward::is_forwarded(request.metadata());
        self.delete_document_of(&context, &request.get_ref().file_id, forwarded).await?;
        Ok(Response::new(pb::DeleteDocumentResponse {}))
    }

    async fn get_document(&self, request: Request<pb::GetDocumentRequest>) -> Result<Response<pb::Document>, Status> {
        let file_id = request.get_ref().file_id.clone();
        // A token that is present must be valid; reading otherwise needs what
        // reading the file through the rooms service needs (public rooms are readable).
        self.tokens.caller_from_metadata(request.metadata())?;
        let context = CallContext::from_request(&request, &self.tokens);
        let access = self.check_file(&context, &file_id).await?;
        self.refuse_while_draining()?;
        let opening = self.opening(&context, access.room_id);
        match self.read(&file_id, request.get_ref().include_state, &opening).await {
            Ok(view) => Ok(Response::new(pb::Document {
                file_id,
                text: view.text,
                state_vector: view.state_vector.into(),
                state: view.state.into(),
            })),
            Err(error) => {
                let forward =
                    |mut client: DocumentsServiceClient<GrpcChannel>, request| -> forward::UnaryCall<pb::Document> {
                        Box::pin(async move { client.get_document(request).await })
                    };
                self.forward_unary(Status::from(error), &request, &context, forward).await
            }
        }
    }

    async fn apply_update(
        &self,
        request: Request<pb::ApplyUpdateRequest>,
    ) -> Result<Response<pb::ApplyUpdateResponse>, Status> {
        let file_id = request.get_ref().file_id.clone();
        let update = request.get_ref().update.to_vec();
        let forward =
            |mut client: DocumentsServiceClient<GrpcChannel>, request| -> forward::UnaryCall<pb::ApplyUpdateResponse> {
                Box::pin(async move { client.apply_update(request).await })
            };
        self.edit(&request, &file_id, ServerEdit::Update(update), forward).await
    }

    async fn replace_text(
        &self,
        request: Request<pb::ReplaceTextRequest>,
    ) -> Result<Response<pb::ApplyUpdateResponse>, Status> {
        let file_id = request.get_ref().file_id.clone();
        let text = request.get_ref().text.clone();
        let forward =
            |mut client: DocumentsServiceClient<GrpcChannel>, request| -> forward::UnaryCall<pb::ApplyUpdateResponse> {
                Box::pin(async move { client.replace_text(request).await })
            };
        self.edit(&request, &file_id, ServerEdit::Replace { text }, forward).await
    }

    async fn insert_text(
        &self,
        request: Request<pb::InsertTextRequest>,
    ) -> Result<Response<pb::ApplyUpdateResponse>, Status> {
        let file_id = request.get_ref().file_id.clone();
        let edit = ServerEdit::Insert { index: request.get_ref().index, text: request.get_ref().text.clone() };
        let forward =
            |mut client: DocumentsServiceClient<GrpcChannel>, request| -> forward::UnaryCall<pb::ApplyUpdateResponse> {
                Box::pin(async move { client.insert_text(request).await })
            };
        self.edit(&request, &file_id, edit, forward).await
    }
}

impl DocumentsGrpcService {
    /// Joins the file's document in this replica, which loads it if it owns the file (or takes
    /// it over); a refusal that names another owner comes back as the error.
    async fn join_here(
        &self,
        access: &FileAccess,
        open: &pb::OpenDocument,
        context: &CallContext,
        inbound: forward::SharedInbound,
    ) -> Result<tonic::codegen::BoxStream<pb::CollaborateResponse>, Status> {
        let connection = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let (outbox, mut inbox) = outbox::channel(self.config.connection_queue, self.config.connection_queue_bytes);
        let join = Command::Join {
            connection,
            identity: access.identity.clone(),
            can_write: access.can_write,
            wants_ack: open.acknowledge,
            outbox,
        };
        let opening = self.opening(context, access.room_id.clone());
        let mailbox = self.registry.send(&open.file_id, &opening, join).await?;
        // The first thing out is the greeting, or why the document cannot be opened here.
        let first = inbox.first().await?;
        let max_message_bytes = self.config.max_message_bytes;
        tokio::spawn(async move {
            let mut reassembly = pieces::Reassembly::new(max_message_bytes);
            let mut end = None;
            loop {
                let piece = match inbound.message().await {
                    Ok(Some(pb::CollaborateRequest { frame: Some(pb::collaborate_request::Frame::Message(last)) })) => {
                        reassembly.finish(last)
                    }
                    Ok(Some(pb::CollaborateRequest {
                        frame: Some(pb::collaborate_request::Frame::MessagePart(part)),
                    })) => match reassembly.push_part(&part) {
                        Ok(()) => continue,
                        Err(too_large) => Err(too_large),
                    },
                    Ok(Some(_)) => {
                        end = Some(Status::invalid_argument("only the first frame may open a document"));
                        break;
                    }
                    Ok(None) | Err(_) => break,
                };
                let frame = match piece {
                    Ok(frame) => frame,
                    Err(too_large) => {
                        end = Some(Status::out_of_range(format!(
                            "a message is over the limit of {} bytes",
                            too_large.limit
                        )));
                        break;
                    }
                };
                if mailbox.send(Command::ClientMessage { connection, frame }).await.is_err() {
                    break;
                }
            }
            let _ = mailbox.send(Command::Leave { connection, reason: end }).await;
        });
        let first = tokio_stream::once(Ok(first));
        // Each message goes out as its pieces; nothing is collected on the way (every relayed edit passes here).
        let stream = futures::StreamExt::flat_map(first.chain(inbox.into_stream()), |item: Result<Bytes, Status>| {
            let (message, error) = match item {
                Ok(message) => (Some(message), None),
                Err(status) => (None, Some(status)),
            };
            let responses = message.into_iter().flat_map(pieces::split).map(|(piece, last)| {
                Ok(if last {
                    pb::CollaborateResponse { message: piece, message_part: Bytes::new() }
                } else {
                    pb::CollaborateResponse { message: Bytes::new(), message_part: piece }
                })
            });
            futures::stream::iter(responses.chain(error.map(Err)))
        });
        Ok(Box::pin(stream))
    }
}

/// Documents touched since start, for the operations endpoints.
pub fn loaded_documents(service: &DocumentsGrpcService) -> (usize, usize) {
    service.registry.loaded()
}
