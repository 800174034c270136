//! The history service: file versions (explicit saves, automatic checkpoints, restores), their
//! content and diffs, restore as a forward edit, and each room's event log.
//!
//! Its gRPC contract is `codesync.history.v1.HistoryService` in `proto/`. It owns the
//! `file_versions` and `room_events` tables ([`store`]) and the delta encoding of versions
//! ([`delta`]). It consumes, as the group `history`, `room-events` and `execution-events` (the
//! room event log) and `collaboration-events` (which files were edited, and by whom: the
//! checkpoints); it announces each version on `room-events`.
//!
//! Version numbers are gap-free and race-free per file: a new version takes the number after
//! the newest under the `(file_id, number)` unique constraint, and whoever loses a race takes
//! the next one. Versions of one file are also made one at a time per process, so that a
//! restore's check of the head and its edit are not interleaved with a save's.
//!
//! The files: `grpc.rs` the gRPC adapter; `versions.rs` making a version (access, live text,
//! authors, the numbered record); `checkpoints.rs` the automatic versions; `room_log.rs` what the
//! consumer group does with each event; [`store`] the tables; [`delta`] the encoding. This file
//! wires them together.
#![forbid(unsafe_code)]

mod checkpoints;
use checkpoints::take_checkpoints;
pub mod delta;
mod grpc;
mod room_log;
pub mod store;
mod versions;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use codesync_common::bus::EventBus;
use codesync_common::consumer::{self};
use codesync_common::events::{COLLABORATION_EVENTS, EXECUTION_EVENTS, ROOM_EVENTS};
use codesync_common::grpc::GrpcChannel;
use codesync_common::identity::TokenService;
use codesync_proto::auth::v1::auth_service_client::AuthServiceClient;
use codesync_proto::documents::v1::documents_service_client::DocumentsServiceClient;
use codesync_proto::history::v1 as pb;
use codesync_proto::history::v1::history_service_server::HistoryServiceServer;
use codesync_proto::rooms::v1::rooms_service_client::RoomsServiceClient;

use crate::store::HistoryStore;

/// The consumer group of this service.
pub const CONSUMER_GROUP: &str = "history";
/// A save's message is at most this long.
const MAX_MESSAGE_CHARS: usize = codesync_common::limits::VERSION_MESSAGE_MAX_CHARS;
/// A version's number is taken again at most this often when other writers keep winning.
const NUMBER_ATTEMPTS: usize = 8;
/// A diff between two versions is at most this large; larger ones are refused.
const MAX_DIFF_BYTES: usize = 8 * 1024 * 1024;

/// When checkpoints are taken.
#[derive(Debug, Clone)]
pub struct HistoryConfig {
    /// A file edited and then left alone this long gets a checkpoint.
    pub checkpoint_after_idle: Duration,
    /// A file edited without pause gets one at least this often.
    pub checkpoint_at_most_every: Duration,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self { checkpoint_after_idle: Duration::from_secs(30), checkpoint_at_most_every: Duration::from_secs(300) }
    }
}

/// A checkpoint that failed for a passing reason (the documents service is down) is tried again
/// after this, not on every tick.
const CHECKPOINT_RETRY: Duration = Duration::from_secs(30);

struct Inner {
    store: HistoryStore,
    tokens: TokenService,
    rooms: RoomsServiceClient<GrpcChannel>,
    documents: DocumentsServiceClient<GrpcChannel>,
    auth: AuthServiceClient<GrpcChannel>,
    events: Arc<dyn EventBus>,
    config: HistoryConfig,
    /// One version of a file at a time in this process.
    file_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    figures: Arc<Figures>,
}

/// What an operator watches of history in this process (`/metrics`).
#[derive(Default)]
struct Figures {
    /// Versions made, by kind: save, checkpoint, restore.
    versions: [std::sync::atomic::AtomicU64; 3],
    version_bytes: std::sync::atomic::AtomicU64,
    failed_checkpoints: std::sync::atomic::AtomicU64,
}

const FIGURE_KINDS: [pb::VersionKind; 3] =
    [pb::VersionKind::Save, pb::VersionKind::Checkpoint, pb::VersionKind::Restore];

impl Figures {
    fn made(&self, version: &pb::Version) {
        use std::sync::atomic::Ordering::Relaxed;
        let kind = pb::VersionKind::try_from(version.kind).unwrap_or(pb::VersionKind::Save);
        let index = FIGURE_KINDS.iter().position(|known| *known == kind).unwrap_or(0);
        self.versions[index].fetch_add(1, Relaxed);
        self.version_bytes.fetch_add(u64::try_from(version.size_bytes).unwrap_or(0), Relaxed);
    }
}

impl codesync_common::metrics::Source for Figures {
    fn readings(&self) -> Vec<codesync_common::metrics::Reading> {
        use codesync_common::metrics::Reading;
        use std::sync::atomic::Ordering::Relaxed;
        let mut readings: Vec<Reading> = FIGURE_KINDS
            .iter()
            .zip(&self.versions)
            .map(|(kind, count)| {
                Reading::counter("history_versions", "Versions made, by kind", count.load(Relaxed))
                    .with_label("kind", kind.name())
            })
            .collect();
        readings.push(Reading::counter(
            "history_version_bytes",
            "Size of the files' texts kept as versions",
            self.version_bytes.load(Relaxed),
        ));
        readings.push(Reading::counter(
            "history_failed_checkpoints",
            "Checkpoints that failed and wait to be tried again",
            self.failed_checkpoints.load(Relaxed),
        ));
        readings
    }
}

/// The services history calls, by name: rooms (access), documents (the live text, restores),
/// auth (usernames).
pub struct HistoryPeers {
    pub rooms: GrpcChannel,
    pub documents: GrpcChannel,
    pub auth: GrpcChannel,
}

/// The gRPC implementation of `HistoryService`.
#[derive(Clone)]
pub struct HistoryGrpcService {
    inner: Arc<Inner>,
}

/// What makes a version, besides the file's content.
struct Making {
    kind: pb::VersionKind,
    message: String,
    /// Who the version is by, first the one who saved (if anyone did).
    authors: Vec<String>,
    /// For a restore: what to make current and the head the client saw.
    restore: Option<Restoring>,
}

struct Restoring {
    content: String,
    expected_head: Option<i64>,
    /// Who made the edits since the newest version, which are kept as a checkpoint before the
    /// restore undoes them.
    unsaved_authors: Vec<String>,
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl HistoryGrpcService {
    /// Starts consuming events and taking checkpoints.
    pub fn new(
        store: HistoryStore,
        tokens: TokenService,
        config: HistoryConfig,
        events: Arc<dyn EventBus>,
        peers: HistoryPeers,
    ) -> Self {
        let HistoryPeers { rooms: rooms_channel, documents: documents_channel, auth: auth_channel } = peers;
        let inner = Arc::new(Inner {
            store,
            tokens,
            rooms: RoomsServiceClient::new(rooms_channel),
            documents: DocumentsServiceClient::new(documents_channel)
                .max_decoding_message_size(64 * 1024 * 1024)
                .max_encoding_message_size(64 * 1024 * 1024),
            auth: AuthServiceClient::new(auth_channel),
            events: events.clone(),
            config,
            file_locks: Mutex::default(),
            figures: Arc::default(),
        });
        codesync_common::metrics::register(inner.figures.clone());
        let consuming = Arc::downgrade(&inner);
        tokio::spawn(consumer::run(
            events,
            CONSUMER_GROUP,
            &[ROOM_EVENTS, EXECUTION_EVENTS, COLLABORATION_EVENTS],
            // Rooms' logs take in what the brokers still keep from before.
            consumer::StartFrom::Earliest,
            move |event| {
                let inner = consuming.upgrade();
                async move {
                    match inner {
                        Some(inner) => inner.handle(&event).await,
                        None => Ok(()),
                    }
                }
            },
        ));
        tokio::spawn(take_checkpoints(Arc::downgrade(&inner)));
        Self { inner }
    }

    pub fn into_grpc_server(self) -> HistoryServiceServer<Self> {
        HistoryServiceServer::new(self)
    }
}
