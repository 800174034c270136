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
#![forbid(unsafe_code)]

pub mod delta;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use codesync_common::consumer::{self, HandleError};
use codesync_common::events::{
    COLLABORATION_ACTIVITY, COLLABORATION_EVENTS, EXECUTION_EVENTS, EXECUTION_FINISHED, Event, EventBus, ROOM_EVENTS,
    Staged, VERSION_CREATED,
};
use codesync_common::grpc::{CallContext, GrpcChannel};
use codesync_common::identity::TokenService;
use codesync_common::{ServiceError, ServiceResult, new_id, now_ms};
use codesync_proto::auth::v1::GetUserProfilesRequest;
use codesync_proto::auth::v1::auth_service_client::AuthServiceClient;
use codesync_proto::documents::v1::documents_service_client::DocumentsServiceClient;
use codesync_proto::documents::v1::{GetDocumentRequest, ReplaceTextRequest};
use codesync_proto::history::v1 as pb;
use codesync_proto::history::v1::history_service_server::{HistoryService, HistoryServiceServer};
use codesync_proto::rooms::v1 as rooms_pb;
use codesync_proto::rooms::v1::rooms_service_client::RoomsServiceClient;
use tonic::{Request, Response, Status};

use crate::store::{HistoryStore, Inserted, NewVersion, PendingCheckpoint};

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
                    .with_label("kind", store::kind_name(*kind))
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

impl Inner {
    /// One event of the group's topics: an entry of a room's log, or edits to remember.
    async fn handle(&self, event: &Event) -> Result<(), HandleError> {
        match (event.topic.as_str(), event.kind.as_str()) {
            (COLLABORATION_EVENTS, COLLABORATION_ACTIVITY) => self.remember_edits(event).await,
            (ROOM_EVENTS, _) => self.log_room_event(event, "by").await,
            (EXECUTION_EVENTS, EXECUTION_FINISHED)
                if event.payload["room_id"].as_str().is_some_and(|id| !id.is_empty()) =>
            {
                self.log_room_event(event, "user_id").await
            }
            _ => Ok(()),
        }
    }

    async fn log_room_event(&self, event: &Event, who_field: &str) -> Result<(), HandleError> {
        let room_id = event.payload["room_id"]
            .as_str()
            .filter(|room_id| !room_id.is_empty())
            .ok_or_else(|| HandleError::poisoned(format!("a {} event without room_id", event.kind)))?;
        let entry = pb::RoomEvent {
            id: event.id.clone(),
            room_id: room_id.to_string(),
            event_type: event.kind.clone(),
            user_id: event.payload[who_field].as_str().unwrap_or_default().to_string(),
            metadata_json: event.payload.to_string(),
            created_at_ms: event.occurred_at_ms,
        };
        self.store.insert_room_event(&entry).await.map_err(HandleError::transient)
    }

    /// Edits worth a checkpoint: stored before the event is acknowledged, so that they are
    /// remembered across restarts and by whichever replica takes the checkpoint.
    async fn remember_edits(&self, event: &Event) -> Result<(), HandleError> {
        let Some(file_id) = event.payload["file_id"].as_str() else { return Ok(()) };
        let editors: Vec<String> = event.payload["editors"]
            .as_array()
            .map(|editors| editors.iter().filter_map(|editor| editor.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        // Joins and awareness alone change nothing worth a version.
        if event.payload["updates"].as_u64().unwrap_or(0) == 0 || editors.is_empty() {
            return Ok(());
        }
        // When the edits were made (the window's end), not when the event arrived: a backlog
        // read after an outage does not postpone its checkpoints.
        let seen_ms = event.occurred_at_ms;
        self.store.add_pending(file_id, seen_ms, seen_ms, &editors, 0).await.map_err(HandleError::transient)
    }

    fn file_lock(&self, file_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = locked(&self.file_locks);
        // Locks nobody holds or waits for go, so the map does not grow with every file ever saved.
        locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        locks.entry(file_id.to_string()).or_default().clone()
    }

    async fn check_file(&self, context: &CallContext, file_id: &str) -> ServiceResult<rooms_pb::CheckAccessResponse> {
        codesync_common::access::check_file(&self.rooms, context, file_id).await
    }

    async fn check_room(&self, context: &CallContext, room_id: &str) -> ServiceResult<rooms_pb::CheckAccessResponse> {
        codesync_common::access::check_room(&self.rooms, context, room_id).await
    }

    async fn require_writer(&self, context: &CallContext, file_id: &str) -> ServiceResult<String> {
        let access = self.check_file(context, file_id).await?;
        if !access.can_write {
            return Err(ServiceError::forbidden("read_only", "viewers cannot save or restore versions"));
        }
        Ok(access.room_id)
    }

    async fn usernames(&self, context: &CallContext, user_ids: &[String]) -> HashMap<String, String> {
        let request = context.request(GetUserProfilesRequest { user_ids: user_ids.to_vec() });
        match self.auth.clone().get_user_profiles(request).await {
            Ok(response) => {
                response.into_inner().profiles.into_iter().map(|profile| (profile.id, profile.username)).collect()
            }
            Err(status) => {
                tracing::warn!(error = %status, "usernames of a version's authors are unknown");
                HashMap::new()
            }
        }
    }

    /// Records the file's content as a new version; for a restore, first keeps the edits made
    /// since the newest version as a checkpoint, then makes the old content current through the
    /// documents service and records that. `None` when a checkpoint finds nothing new since the
    /// newest version.
    async fn make_version(
        &self,
        context: &CallContext,
        file_id: &str,
        room_id: &str,
        making: Making,
    ) -> ServiceResult<Option<pb::Version>> {
        let lock = self.file_lock(file_id);
        let _one_at_a_time = lock.lock().await;
        let Some(restoring) = making.restore else {
            let text = self.live_text(context, file_id).await?;
            let authors = self.authors(context, &making.authors).await;
            let skip_unchanged = making.kind == pb::VersionKind::Checkpoint;
            return self.record(file_id, room_id, making.kind, &making.message, &authors, text, skip_unchanged).await;
        };
        let head_number = self.store.head(file_id).await?.map_or(0, |head| head.number);
        if let Some(expected) = restoring.expected_head
            && expected != head_number
        {
            return Err(ServiceError::conflict(
                "stale_head",
                format!("the newest version is {head_number}, not {expected}: reload the history and try again"),
            ));
        }
        // Edits nobody saved yet would be undone without a trace: they become a version first.
        let live = self.live_text(context, file_id).await?;
        let kept_by = if restoring.unsaved_authors.is_empty() { &making.authors } else { &restoring.unsaved_authors };
        let kept_authors = self.authors(context, kept_by).await;
        let kept = "Kept before a restore";
        self.record(file_id, room_id, pb::VersionKind::Checkpoint, kept, &kept_authors, live, true).await?;
        let request = ReplaceTextRequest { file_id: file_id.to_string(), text: restoring.content };
        let replaced = self.documents.clone().replace_text(context.request(request)).await;
        let text = replaced.map_err(|status| ServiceError::from_peer("documents", status))?.into_inner().text;
        let authors = self.authors(context, &making.authors).await;
        self.record(file_id, room_id, pb::VersionKind::Restore, &making.message, &authors, text, false).await
    }

    async fn live_text(&self, context: &CallContext, file_id: &str) -> ServiceResult<String> {
        let request = GetDocumentRequest { file_id: file_id.to_string(), include_state: false };
        let document = self.documents.clone().get_document(context.request(request)).await;
        Ok(document.map_err(|status| ServiceError::from_peer("documents", status))?.into_inner().text)
    }

    async fn authors(&self, context: &CallContext, user_ids: &[String]) -> Vec<pb::Author> {
        let names = self.usernames(context, user_ids).await;
        user_ids
            .iter()
            .map(|id| pb::Author { id: id.clone(), username: names.get(id).cloned().unwrap_or_default() })
            .collect()
    }

    /// Stores `text` as the file's next version, taking the number after the newest (the next
    /// one again if another process takes it first). With `skip_unchanged`, nothing is stored
    /// when the newest version holds `text` already.
    #[allow(clippy::too_many_arguments)]
    async fn record(
        &self,
        file_id: &str,
        room_id: &str,
        kind: pb::VersionKind,
        message: &str,
        authors: &[pb::Author],
        text: String,
        skip_unchanged: bool,
    ) -> ServiceResult<Option<pb::Version>> {
        let text = Arc::new(text);
        for _ in 0..NUMBER_ATTEMPTS {
            let head = self.store.head(file_id).await?;
            let previous = match &head {
                Some(head) => self.store.content(file_id, head.number).await?,
                None => String::new(),
            };
            if skip_unchanged && head.is_some() && previous == *text {
                return Ok(None);
            }
            let number = head.as_ref().map_or(0, |head| head.number) + 1;
            // A line diff of large files takes a while: off the async threads.
            let next = text.clone();
            let encoded = tokio::task::spawn_blocking(move || store::encode(number, &previous, &next))
                .await
                .map_err(ServiceError::internal)?;
            let version = pb::Version {
                id: new_id(),
                file_id: file_id.to_string(),
                room_id: room_id.to_string(),
                number,
                author_id: authors.first().map(|author| author.id.clone()).unwrap_or_default(),
                author_username: authors.first().map(|author| author.username.clone()).unwrap_or_default(),
                kind: kind.into(),
                message: message.to_string(),
                lines_added: encoded.lines_added,
                lines_removed: encoded.lines_removed,
                content: None,
                created_at_ms: now_ms(),
                authors: authors.to_vec(),
                size_bytes: i64::try_from(text.len()).unwrap_or(i64::MAX),
            };
            let new_version = NewVersion { version: &version, encoding: encoded.encoding, body: encoded.body };
            let mut staged = Staged::new(self.events.as_ref(), vec![version_created(&version)]);
            match self.store.insert(new_version, &mut staged).await? {
                Inserted::Done => {
                    staged.committed();
                    self.figures.made(&version);
                    return Ok(Some(version));
                }
                // Another process made this number meanwhile: the next one is ours.
                Inserted::NumberTaken => {
                    tracing::debug!(file.id = %file_id, number, "a version number was taken meanwhile; taking the next");
                }
            }
        }
        Err(ServiceError::Unavailable { message: "too many versions are being made at once; try again".into() })
    }
}

/// `version_created` on `room-events`, for the room's log and its readers.
fn version_created(version: &pb::Version) -> Event {
    {
        let kind = pb::VersionKind::try_from(version.kind).unwrap_or(pb::VersionKind::Save);
        let payload = serde_json::json!({
            "room_id": version.room_id,
            "file_id": version.file_id,
            "version_id": version.id,
            "number": version.number,
            "kind": store::kind_name(kind),
            "by": version.author_id,
            "by_username": version.author_username,
            "lines_added": version.lines_added,
            "lines_removed": version.lines_removed,
        });
        Event::new(ROOM_EVENTS, VERSION_CREATED, &version.room_id, payload)
    }
}

impl Inner {
    /// Editors of the file not yet in a version, taken for a version that includes their edits.
    async fn take_unsaved(&self, file_id: &str) -> ServiceResult<Option<PendingCheckpoint>> {
        for _ in 0..5 {
            let Some(pending) = self.store.pending(file_id).await? else { return Ok(None) };
            if self.store.take_pending(&pending).await? {
                return Ok(Some(pending));
            }
        }
        Ok(None)
    }

    /// Edits taken for a version that was not made after all: still waiting for one.
    async fn put_back_unsaved(&self, pending: Option<PendingCheckpoint>, retry_at_ms: i64) {
        let Some(pending) = pending else { return };
        let put_back = self
            .store
            .add_pending(&pending.file_id, pending.first_seen_ms, pending.last_seen_ms, &pending.editors, retry_at_ms)
            .await;
        if let Err(error) = put_back {
            tracing::warn!(file.id = %pending.file_id, %error, "edits waiting for a checkpoint could not be put back");
        }
    }

    /// Who a save or restore by `caller` is by: the caller, then the file's unsaved editors.
    fn authors_with(caller: &str, unsaved: Option<&PendingCheckpoint>) -> Vec<String> {
        let mut authors = vec![caller.to_string()];
        authors.extend(unsaved.into_iter().flat_map(|edits| edits.editors.iter()).filter(|id| *id != caller).cloned());
        authors
    }

    /// Checkpoints of the files whose editing paused, or went on too long without one. Each is
    /// taken by one replica (the row as it was read), and put back to wait if it fails.
    async fn checkpoint_due_files(&self) {
        let millis = |duration: Duration| i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        let now_ms = codesync_common::now_ms();
        let idle_ms = millis(self.config.checkpoint_after_idle);
        let interval_ms = millis(self.config.checkpoint_at_most_every);
        let due = match self.store.due_pending(now_ms, idle_ms, interval_ms).await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "cannot read the pending checkpoints");
                return;
            }
        };
        for pending in due {
            match self.store.take_pending(&pending).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(error) => {
                    tracing::warn!(file.id = %pending.file_id, %error, "cannot take a pending checkpoint");
                    continue;
                }
            }
            let file_id = pending.file_id.clone();
            match self.checkpoint(&file_id, pending.editors.clone()).await {
                Ok(Some(version)) => {
                    tracing::info!(file.id = %file_id, number = version.number, "took a checkpoint");
                }
                Ok(None) => {}
                // The file is gone, or none of its editors may read it any more: nothing to keep.
                Err(error) if matches!(error.code(), "file_not_found" | "room_not_found") => {}
                Err(error) => {
                    tracing::warn!(file.id = %file_id, %error, "a checkpoint failed; trying again later");
                    self.figures.failed_checkpoints.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let retry_at_ms = codesync_common::now_ms() + millis(CHECKPOINT_RETRY);
                    self.put_back_unsaved(Some(pending), retry_at_ms).await;
                }
            }
        }
    }

    /// A checkpoint reads and records the file as one of its editors would: this service acts for
    /// that editor (with its service credential; it signs no user's token), so it never reads what
    /// its authors could not. The editors are tried in turn: one may have left the room since.
    async fn checkpoint(&self, file_id: &str, authors: Vec<String>) -> ServiceResult<Option<pb::Version>> {
        let mut refusal = ServiceError::not_found("file_not_found", "no such file");
        for editor in &authors {
            let context = CallContext::acting_for(editor);
            // The room as the rooms service knows it now (a file never moves, but it may be gone).
            let room_id = match self.check_file(&context, file_id).await {
                Ok(access) => access.room_id,
                Err(error) if matches!(error.code(), "file_not_found" | "room_not_found") => {
                    refusal = error;
                    continue;
                }
                Err(error) => return Err(error),
            };
            let making = Making { kind: pb::VersionKind::Checkpoint, message: String::new(), authors, restore: None };
            return self.make_version(&context, file_id, &room_id, making).await;
        }
        Err(refusal)
    }
}

async fn take_checkpoints(inner: std::sync::Weak<Inner>) {
    let every = {
        let Some(inner) = inner.upgrade() else { return };
        (inner.config.checkpoint_after_idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(5))
    };
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        inner.checkpoint_due_files().await;
    }
}

#[tonic::async_trait]
impl HistoryService for HistoryGrpcService {
    async fn create_version(
        &self,
        request: Request<pb::CreateVersionRequest>,
    ) -> Result<Response<pb::Version>, Status> {
        let caller = self.inner.tokens.require_caller(request.metadata())?;
        let context = CallContext::from_request(&request, &self.inner.tokens);
        let request = request.into_inner();
        let message = request.message.trim().to_string();
        if message.chars().count() > MAX_MESSAGE_CHARS {
            let text = format!("a save's message is at most {MAX_MESSAGE_CHARS} characters");
            return Err(ServiceError::invalid("message_too_long", text).into());
        }
        let room_id = self.inner.require_writer(&context, &request.file_id).await?;
        let unsaved = self.inner.take_unsaved(&request.file_id).await?;
        let authors = Inner::authors_with(&caller.user_id, unsaved.as_ref());
        let making = Making { kind: pb::VersionKind::Save, message, authors, restore: None };
        let made = self.inner.make_version(&context, &request.file_id, &room_id, making).await;
        let version = match made {
            Ok(Some(version)) => version,
            Ok(None) => return Err(ServiceError::internal("a save made no version").into()),
            Err(error) => {
                self.inner.put_back_unsaved(unsaved, 0).await;
                return Err(error.into());
            }
        };
        Ok(Response::new(version))
    }

    async fn list_versions(
        &self,
        request: Request<pb::ListVersionsRequest>,
    ) -> Result<Response<pb::ListVersionsResponse>, Status> {
        self.inner.tokens.caller_from_metadata(request.metadata())?;
        let context = CallContext::from_request(&request, &self.inner.tokens);
        let request = request.into_inner();
        self.inner.check_file(&context, &request.file_id).await?;
        let versions = self.inner.store.list(&request.file_id, request.before_number, request.limit).await?;
        Ok(Response::new(pb::ListVersionsResponse { versions }))
    }

    async fn get_version(&self, request: Request<pb::GetVersionRequest>) -> Result<Response<pb::Version>, Status> {
        self.inner.tokens.caller_from_metadata(request.metadata())?;
        let context = CallContext::from_request(&request, &self.inner.tokens);
        let version = self.readable_version(&context, &request.get_ref().version_id).await?;
        let content = self.inner.store.content(&version.file_id, version.number).await?;
        Ok(Response::new(pb::Version { content: Some(content), ..version }))
    }

    async fn diff_versions(
        &self,
        request: Request<pb::DiffVersionsRequest>,
    ) -> Result<Response<pb::DiffVersionsResponse>, Status> {
        self.inner.tokens.caller_from_metadata(request.metadata())?;
        let context = CallContext::from_request(&request, &self.inner.tokens);
        let request = request.into_inner();
        let from = self.readable_version(&context, &request.from_version_id).await?;
        let to = self
            .inner
            .store
            .find(&request.to_version_id)
            .await?
            .filter(|to| to.file_id == from.file_id)
            .ok_or_else(|| ServiceError::not_found("version_not_found", "no such version of the same file"))?;
        let old = self.inner.store.content(&from.file_id, from.number).await?;
        let new = self.inner.store.content(&to.file_id, to.number).await?;
        let headers = (format!("version {}", from.number), format!("version {}", to.number));
        let (change, unified_diff) = tokio::task::spawn_blocking(move || {
            let change = delta::change(&old, &new);
            let unified_diff = similar::TextDiff::configure()
                .deadline(std::time::Instant::now() + Duration::from_secs(2))
                .diff_lines(&old, &new)
                .unified_diff()
                .context_radius(3)
                .header(&headers.0, &headers.1)
                .to_string();
            (change, unified_diff)
        })
        .await
        .map_err(ServiceError::internal)?;
        if unified_diff.len() > MAX_DIFF_BYTES {
            return Err(ServiceError::too_large("diff_too_large", "the diff is larger than 8 MiB").into());
        }
        Ok(Response::new(pb::DiffVersionsResponse {
            unified_diff,
            lines_added: change.lines_added,
            lines_removed: change.lines_removed,
        }))
    }

    async fn restore_version(
        &self,
        request: Request<pb::RestoreVersionRequest>,
    ) -> Result<Response<pb::Version>, Status> {
        let caller = self.inner.tokens.require_caller(request.metadata())?;
        let context = CallContext::from_request(&request, &self.inner.tokens);
        let request = request.into_inner();
        let version = self.readable_version(&context, &request.version_id).await?;
        let room_id = self.inner.require_writer(&context, &version.file_id).await?;
        let content = self.inner.store.content(&version.file_id, version.number).await?;
        let unsaved = self.inner.take_unsaved(&version.file_id).await?;
        let unsaved_authors = unsaved.as_ref().map(|edits| edits.editors.clone()).unwrap_or_default();
        let making = Making {
            kind: pb::VersionKind::Restore,
            message: format!("Restored version {}", version.number),
            authors: vec![caller.user_id.clone()],
            restore: Some(Restoring { content, expected_head: request.expected_head, unsaved_authors }),
        };
        let made = self.inner.make_version(&context, &version.file_id, &room_id, making).await;
        let restored = match made {
            Ok(Some(restored)) => restored,
            Ok(None) => return Err(ServiceError::internal("a restore made no version").into()),
            Err(error) => {
                self.inner.put_back_unsaved(unsaved, 0).await;
                return Err(error.into());
            }
        };
        Ok(Response::new(restored))
    }

    async fn list_room_events(
        &self,
        request: Request<pb::ListRoomEventsRequest>,
    ) -> Result<Response<pb::ListRoomEventsResponse>, Status> {
        // Only members read the log, so a caller must say who they are first.
        self.inner.tokens.require_caller(request.metadata())?;
        let context = CallContext::from_request(&request, &self.inner.tokens);
        let request = request.into_inner();
        let access = self.inner.check_room(&context, &request.room_id).await?;
        // A public room is readable by all, its log (who joined, who ran what) only by members.
        if access.role == rooms_pb::Role::Unspecified as i32 {
            return Err(ServiceError::forbidden("members_only", "only the room's members see its event log").into());
        }
        let events = self
            .inner
            .store
            .list_room_events(&access.room_id, request.before_ms, &request.before_id, request.limit)
            .await?;
        Ok(Response::new(pb::ListRoomEventsResponse { events }))
    }
}

impl HistoryGrpcService {
    /// A version whose file the caller may read; NOT_FOUND otherwise, whatever the reason.
    async fn readable_version(&self, context: &CallContext, version_id: &str) -> ServiceResult<pb::Version> {
        let not_found = || ServiceError::not_found("version_not_found", "no such version");
        if !codesync_common::is_valid_id(version_id) {
            return Err(not_found());
        }
        let version = self.inner.store.find(version_id).await?.ok_or_else(not_found)?;
        match self.inner.check_file(context, &version.file_id).await {
            Ok(_) => Ok(version),
            Err(error) if error.code() == "file_not_found" => Err(not_found()),
            Err(error) => Err(error),
        }
    }
}
