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

mod access;
// The wire format and the awareness rules live apart (the fuzz target builds only them).
pub use codesync_documents_protocol::{awareness, protocol};
pub mod actor;
mod deletion;
pub mod diff;
mod forward;
mod grpc;
mod metrics;
pub mod outbox;
pub mod ownership;
pub mod registry;
pub mod store;
pub mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use codesync_common::bus::EventBus;
use codesync_common::consumer::{self, StartFrom};
use codesync_common::events::ROOM_EVENTS;
use codesync_common::grpc::{CallPolicy, GrpcChannel};
use codesync_common::identity::TokenService;
use codesync_common::{ServiceError, ServiceResult};
use codesync_proto::documents::v1::documents_service_server::DocumentsServiceServer;
use codesync_proto::rooms::v1 as rooms_pb;
use codesync_proto::rooms::v1::rooms_service_client::RoomsServiceClient;
use tokio::sync::oneshot;

use crate::actor::{ActorConfig, Command, DocumentView, Opening, Shared};
use crate::forward::Peers;
pub use crate::metrics::Metrics;
use crate::ownership::Ownership;
use crate::registry::Registry;
use crate::store::DocumentsStore;
use crate::writer::Writer;

/// The consumer group that ends the documents of deleted files and rooms.
pub const CONSUMER_GROUP: &str = "documents";

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
    /// What waits for slow connections is drawn from this budget (the process's, shared with
    /// the gateway's sockets), in each connection's user's share.
    outbound: Option<Arc<codesync_common::budget::InflightBudget>>,
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
            outbound: None,
        };
        // Deleting a file or a room (REST or gRPC, on any replica) ends its documents here.
        let deleting = service.clone();
        tokio::spawn(consumer::run(consumer_events, CONSUMER_GROUP, &[ROOM_EVENTS], StartFrom::Latest, move |event| {
            let service = deleting.clone();
            async move { service.delete_documents_of_deleted(&event).await }
        }));
        service
    }

    /// Messages queued toward slow connections draw on `budget` (the process's outbound budget),
    /// in each connection's user's share.
    pub fn with_outbound_budget(mut self, budget: Arc<codesync_common::budget::InflightBudget>) -> Self {
        self.outbound = Some(budget);
        self
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

    /// The largest message any of this service's RPCs takes: a WebSocket message with room for
    /// its envelope, and at least what every other service takes.
    pub fn grpc_message_limit(&self) -> usize {
        (self.config.max_message_bytes + 64 * 1024).max(codesync_common::limits::GRPC_MESSAGE_MAX_BYTES)
    }

    pub fn into_grpc_server(self) -> DocumentsServiceServer<Self> {
        let limit = self.grpc_message_limit();
        DocumentsServiceServer::new(self).max_decoding_message_size(limit)
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
            // One document whose mailbox is full must not hold up the others (nor this loop,
            // whose broadcast would lag and lose membership changes): it gets its change in a
            // task of its own, waiting for room as long as a call may take.
            if let Err(tokio::sync::mpsc::error::TrySendError::Full(command)) = mailbox.try_send(command) {
                tokio::spawn(async move {
                    let _ = mailbox.send_timeout(command, Duration::from_secs(30)).await;
                });
            }
        }
    }
}

/// Documents touched since start, for the operations endpoints.
pub fn loaded_documents(service: &DocumentsGrpcService) -> (usize, usize) {
    service.registry.loaded()
}
