//! One open document: a task that owns the `yrs` document, its awareness and
//! its connections, and is the only thing that touches them (an actor).
//!
//! The rule every client can see: an update is relayed to the other
//! connections only after the writer reports it durable. Updates are applied
//! in memory at once (that is how a malformed one is caught before anyone sees
//! it), appended to the log, and held in `pending` until their sequence number
//! is durable.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use codesync_common::{ErrorCode, ServiceError, ServiceResult};
use tokio::sync::{mpsc, oneshot, watch};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, GetString, OffsetKind, Options, ReadTxn, StateVector, Text, TextRef, Transact, Update};

use crate::awareness::{ConnectionId, DocumentAwareness, Identity};
use crate::ownership::{Owner, Ownership};
use codesync_common::error::ERROR_CODE_METADATA_KEY;
use codesync_common::queue::SendProblem;

use crate::outbox::Outbox;
use crate::protocol::{self, Message};
use crate::store::{AppendedUpdate, DocumentsStore, Snapshot, StoredDocument};
use crate::writer::{Durability, DurabilitySender, WriteRequest, Writer};
use codesync_common::bus::EventBus;
use codesync_common::events::{Event, Kind, schema};

/// The name of the shared text in every file's document, as the spec fixes it.
pub const TEXT_NAME: &str = "content";
/// Awareness entries one message may carry.
const MAX_AWARENESS_ENTRIES: usize = 64;
const SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// What happened in a document since its last `collaboration-events` event.
#[derive(Debug, Default)]
struct Activity {
    started: Option<Instant>,
    updates: u64,
    bytes: u64,
    editors: std::collections::BTreeSet<String>,
    joins: u64,
}

impl Activity {
    fn start(&mut self) {
        self.started.get_or_insert_with(Instant::now);
    }
}

#[derive(Debug, Clone)]
pub struct ActorConfig {
    /// Updates in a document's log before it is compacted into a snapshot.
    pub snapshot_every_updates: usize,
    /// The largest a document may grow (its encoded state plus its log), in bytes.
    pub max_document_bytes: usize,
    /// How long a document without connections stays loaded.
    pub idle_unload_after: Duration,
    /// Collaboration activity is published as counts at most this often per
    /// document: one event per document and window, not one per keystroke.
    pub activity_window: Duration,
}

pub enum Command {
    Join {
        connection: ConnectionId,
        identity: Identity,
        can_write: bool,
        wants_ack: bool,
        outbox: Outbox,
    },
    ClientMessage {
        connection: ConnectionId,
        frame: Bytes,
    },
    /// The connection's stream ended; with a reason when it broke a rule.
    Leave {
        connection: ConnectionId,
        reason: Option<tonic::Status>,
    },
    Read {
        include_state: bool,
        reply: oneshot::Sender<ServiceResult<DocumentView>>,
    },
    Edit {
        edit: ServerEdit,
        reply: oneshot::Sender<ServiceResult<String>>,
    },
    /// Unload if no one is connected (the memory budget asks).
    Unload,
    /// The file was deleted: close every connection, remove what is stored, unload.
    Delete {
        reply: oneshot::Sender<ServiceResult<()>>,
    },
    /// Close every connection with `status` and unload, whoever is connected: this replica
    /// hands its files over (after making what it holds durable, `flush`) or lost them.
    Close {
        status: tonic::Status,
        flush: bool,
    },
    /// A member of `room_id` changed role (`can_write`) or was removed (`None`):
    /// applies at once to that user's open connections, not at their next connect.
    MembershipChanged {
        room_id: String,
        user_id: String,
        can_write: Option<bool>,
    },
}

/// A change made on the server's side, as a collaborator would.
pub enum ServerEdit {
    /// A Yjs v1 update.
    Update(Vec<u8>),
    /// Insert at a UTF-16 index.
    Insert { index: u32, text: String },
    /// Make the text equal this, by a minimal forward edit.
    Replace { text: String },
}

#[derive(Debug, Clone)]
pub struct DocumentView {
    pub text: String,
    pub state_vector: Vec<u8>,
    pub state: Vec<u8>,
}

/// What every document actor of the service shares.
#[derive(Clone)]
pub struct Shared {
    pub config: ActorConfig,
    pub store: DocumentsStore,
    pub writer: Writer,
    pub metrics: Arc<crate::Metrics>,
    pub events: Arc<dyn EventBus>,
    pub ownership: Ownership,
}

/// gRPC metadata naming the replica that owns a file (`host:port`), on a refusal that says the
/// file's live document is there.
pub const OWNER_METADATA_KEY: &str = "x-codesync-document-owner";
/// "Ask `address`": the file's live document is on that replica.
pub fn moved_status(address: &str) -> tonic::Status {
    let mut status = tonic::Status::unavailable("the file is open on another replica");
    status.metadata_mut().insert(
        ERROR_CODE_METADATA_KEY,
        tonic::metadata::MetadataValue::from_static(ErrorCode::DocumentElsewhere.as_str()),
    );
    if let Ok(value) = tonic::metadata::MetadataValue::try_from(address) {
        status.metadata_mut().insert(OWNER_METADATA_KEY, value);
    }
    status
}

/// The replica a refusal sends the caller to, if it is one of those.
pub fn moved_to(status: &tonic::Status) -> Option<String> {
    let metadata = status.metadata();
    let is_moved = ErrorCode::of_status(status) == ErrorCode::DocumentElsewhere;
    is_moved.then(|| metadata.get(OWNER_METADATA_KEY)?.to_str().ok().map(str::to_string)).flatten()
}

/// How a document is first opened: the room it belongs to (every caller has
/// checked access and so knows it) and where its initial text comes from.
#[derive(Clone)]
pub struct Opening {
    pub room_id: String,
    pub seed: Arc<dyn SeedSource>,
}

/// Where a new document's initial text comes from (the file's stored content).
#[tonic::async_trait]
pub trait SeedSource: Send + Sync + 'static {
    async fn initial_text(&self, file_id: &str) -> ServiceResult<String>;
}

/// The handle the registry keeps and the actor updates.
#[derive(Debug, Default)]
pub struct ActorGauges {
    pub approx_bytes: AtomicUsize,
    pub connections: AtomicUsize,
}

struct Connection {
    identity: Identity,
    can_write: bool,
    wants_ack: bool,
    outbox: Outbox,
    /// Update-bearing messages received from this connection.
    updates_received: u64,
    /// Of those, how many are durable (or needed no write).
    updates_durable: u64,
    updates_durable_sent: u64,
}

/// An applied update waiting to be durable, or a marker that a connection's
/// no-op update may be acknowledged once everything before it is.
struct PendingItem {
    seq: i64,
    origin: Option<ConnectionId>,
    /// The update to relay (v1), or `None` for an acknowledgement marker.
    update: Option<Bytes>,
    ack_count: Option<u64>,
    reply: Option<(oneshot::Sender<ServiceResult<String>>, String)>,
}

struct DeferredSync {
    connection: ConnectionId,
    state_vector: StateVector,
    after_seq: i64,
}

pub struct DocumentActor {
    file_id: String,
    room_id: String,
    shared: Shared,
    doc: Doc,
    text: TextRef,
    awareness: DocumentAwareness,
    connections: HashMap<ConnectionId, Connection>,
    next_seq: i64,
    durable_seq: i64,
    pending: VecDeque<PendingItem>,
    deferred_syncs: Vec<DeferredSync>,
    durability_sender: DurabilitySender,
    durability: watch::Receiver<Durability>,
    updates_since_snapshot: usize,
    stored_bytes: usize,
    gauges: Arc<ActorGauges>,
    last_activity: Instant,
    activity: Activity,
    /// The file was deleted and its rows removed: every later command is refused.
    deleted: bool,
    /// The ownership epoch of every append (see `ownership`).
    epoch: i64,
    /// The actor must unload now, whoever is connected: another replica took the file over,
    /// or this one is handing its files over.
    closing: bool,
}

/// Why the actor's loop ended.
pub enum Exit {
    /// Unloaded; the registry entry must go.
    Unloaded,
    /// Every handle is gone.
    Closed,
}

fn new_doc() -> Doc {
    // A fresh client id per load: the server's own edits must never reuse an
    // (id, clock) pair that a previous load of the same document already spent.
    let mut options = Options::with_client_id(yrs::block::ClientID::random());
    options.offset_kind = OffsetKind::Utf16;
    Doc::with_options(options)
}

/// Decodes a v1 update from an untrusted source: counts that exceed the bytes
/// are refused before yrs reserves memory for them, and a panic inside yrs is
/// an error like any other.
fn decode_update(bytes: &[u8]) -> Result<Update, String> {
    protocol::check_update(bytes).map_err(|error| error.to_string())?;
    match std::panic::catch_unwind(AssertUnwindSafe(|| Update::decode_v1(bytes))) {
        Ok(Ok(update)) => Ok(update),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("the update cannot be decoded".to_string()),
    }
}

/// The messages that carry `updates`: one merged update normally. They were
/// all decoded and applied already, so merging should not fail; if it does,
/// they go out one by one rather than not at all.
fn relay_messages<'a>(updates: impl Iterator<Item = &'a Bytes>) -> Vec<Bytes> {
    let updates: Vec<&Bytes> = updates.collect();
    if updates.len() > 1 {
        match yrs::merge_updates_v1(updates.iter().map(|update| update.as_ref())) {
            Ok(update) => return vec![Bytes::from(protocol::encode_update(&update))],
            Err(error) => tracing::error!(%error, "cannot merge durable updates; relaying them one by one"),
        }
    }
    updates.into_iter().map(|update| Bytes::from(protocol::encode_update(update))).collect()
}

/// Builds a document from its stored state; a stored update that no longer
/// applies is logged and skipped rather than making the file unreadable.
fn doc_from_stored(file_id: &str, stored: &StoredDocument) -> (Doc, TextRef) {
    let doc = new_doc();
    let text = doc.get_or_insert_text(TEXT_NAME);
    let parts = stored
        .snapshot
        .iter()
        .map(|state| (-1, state.as_slice()))
        .chain(stored.updates.iter().map(|(seq, update)| (*seq, update.as_slice())));
    for (seq, bytes) in parts {
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| -> Result<(), String> {
            let update = decode_update(bytes)?;
            doc.transact_mut().apply_update(update).map_err(|error| error.to_string())
        }));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(file_id, seq, %error, "a stored update does not apply; skipped"),
            Err(_) => tracing::error!(file_id, seq, "a stored update panicked while applying; skipped"),
        }
    }
    (doc, text)
}

/// [`doc_from_stored`] on the blocking pool: replaying a log of a thousand updates, or a
/// 16 MiB snapshot, would otherwise stall every socket on the async worker that did it.
async fn rebuild(file_id: &str, stored: StoredDocument) -> ServiceResult<(Doc, TextRef)> {
    let file_id = file_id.to_string();
    codesync_common::budget::off_the_workers("replaying a document's log", move || doc_from_stored(&file_id, &stored))
        .await
}

/// Documents at or past this many stored bytes have their full-state encodes, syncs and reads
/// done on the blocking pool; keystroke-sized work stays where it is (the hop costs more).
const LARGE_DOCUMENT_BYTES: usize = 256 * 1024;

impl DocumentActor {
    /// Loads the document (seeding it from the file's content the first time)
    /// and returns the actor, ready to run.
    pub async fn load(
        file_id: String,
        shared: Shared,
        opening: &Opening,
        gauges: Arc<ActorGauges>,
    ) -> ServiceResult<Self> {
        // Only the file's owner loads it; every append carries the epoch it holds it under.
        let epoch = match shared.ownership.claim(&file_id).await? {
            Owner::Here { epoch } => epoch,
            Owner::Elsewhere { address } => return Err(ServiceError::Peer(moved_status(&address))),
        };
        let store = &shared.store;
        let mut stored = store.load(&file_id).await?;
        if stored.is_empty() {
            let initial_text = opening.seed.initial_text(&file_id).await?;
            let seed_doc = new_doc();
            let seed_text = seed_doc.get_or_insert_text(TEXT_NAME);
            {
                let mut transaction = seed_doc.transact_mut();
                seed_text.insert(&mut transaction, 0, &initial_text);
            }
            let seed_update = seed_doc.transact().encode_state_as_update_v1(&StateVector::default());
            // Another node may seed at the same moment: only one seed may exist,
            // or the text would appear twice once both merged.
            store.insert_seed(&file_id, &seed_update, codesync_common::now_ms()).await?;
            stored = store.load(&file_id).await?;
        }
        let next_seq = stored.next_seq();
        let updates_since_snapshot = stored.updates.len();
        let stored_bytes = stored.stored_bytes();
        let (doc, text) = rebuild(&file_id, stored).await?;
        let (durability_sender, durability) =
            watch::channel(Durability { durable_seq: next_seq - 1, ..Durability::default() });
        let actor = Self {
            file_id,
            room_id: opening.room_id.clone(),
            shared,
            doc,
            text,
            awareness: DocumentAwareness::default(),
            connections: HashMap::new(),
            next_seq,
            durable_seq: next_seq - 1,
            pending: VecDeque::new(),
            deferred_syncs: Vec::new(),
            durability_sender: Arc::new(durability_sender),
            durability,
            updates_since_snapshot,
            stored_bytes,
            gauges,
            last_activity: Instant::now(),
            activity: Activity::default(),
            deleted: false,
            epoch,
            closing: false,
        };
        actor.update_gauges();
        Ok(actor)
    }

    fn update_gauges(&self) {
        // yrs keeps roughly a few times the encoded size in memory; the
        // stored size is a stable, cheap proxy for what the budget counts.
        self.gauges.approx_bytes.store(self.stored_bytes.saturating_mul(4) + 16 * 1024, Ordering::Relaxed);
        self.gauges.connections.store(self.connections.len(), Ordering::Relaxed);
    }

    /// Runs until unloaded or until every sender is gone. `may_unload` is asked,
    /// under the registry's lock, whether the mailbox is empty and the entry can go (with
    /// `true`, it goes whatever is queued: the registry refuses what is left).
    pub async fn run(
        mut self,
        mailbox: &mut mpsc::Receiver<Command>,
        may_unload: impl Fn(&mut mpsc::Receiver<Command>, bool) -> bool,
    ) -> Exit {
        let mut sweep = tokio::time::interval(SWEEP_INTERVAL.min(self.shared.config.activity_window));
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = mailbox.recv() => {
                    let Some(command) = command else { return Exit::Closed };
                    self.last_activity = Instant::now();
                    let unload_requested = matches!(command, Command::Unload | Command::Delete { .. });
                    self.handle(command).await;
                    if self.closing {
                        may_unload(mailbox, true);
                        return Exit::Unloaded;
                    }
                    if unload_requested && self.connections.is_empty() && self.try_unload(mailbox, &may_unload).await {
                        return Exit::Unloaded;
                    }
                }
                changed = self.durability.changed() => {
                    if changed.is_err() {
                        return Exit::Closed;
                    }
                    let durability = *self.durability.borrow_and_update();
                    self.on_durability(durability).await;
                    if self.closing {
                        may_unload(mailbox, true);
                        return Exit::Unloaded;
                    }
                }
                _ = sweep.tick() => {
                    if self.activity.started.is_some_and(|started| started.elapsed() >= self.shared.config.activity_window) {
                        self.publish_activity();
                    }
                    let removals = self.awareness.sweep(Instant::now());
                    self.broadcast_awareness(&removals);
                    let idle = self.connections.is_empty() && self.last_activity.elapsed() >= self.shared.config.idle_unload_after;
                    if idle && self.try_unload(mailbox, &may_unload).await {
                        return Exit::Unloaded;
                    }
                }
            }
        }
    }

    /// Publishes the activity counted since the last event, if there was any.
    fn publish_activity(&mut self) {
        let Some(started) = self.activity.started else { return };
        let activity = std::mem::take(&mut self.activity);
        let activity = schema::Activity {
            file_id: self.file_id.clone(),
            room_id: self.room_id.clone(),
            updates: activity.updates,
            bytes: activity.bytes,
            editors: activity.editors.into_iter().collect(),
            joins: activity.joins,
            connections: self.connections.len() as u64,
            window_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        self.shared.events.publish(Event::new(&self.room_id, Kind::Activity(activity)));
    }

    async fn try_unload(
        &mut self,
        mailbox: &mut mpsc::Receiver<Command>,
        may_unload: &impl Fn(&mut mpsc::Receiver<Command>, bool) -> bool,
    ) -> bool {
        // A deleted document stores nothing again.
        if self.updates_since_snapshot > 0 && !self.deleted {
            self.submit_snapshot().await;
        }
        // Everything must be durable before the entry goes: a new load reads the store.
        if self.shared.writer.barrier().await.is_err() {
            return false;
        }
        let durability = *self.durability.borrow_and_update();
        self.on_durability(durability).await;
        if !self.pending.is_empty() || !mailbox.is_empty() {
            return false;
        }
        let unloaded = may_unload(mailbox, false);
        if unloaded {
            self.publish_activity();
            tracing::debug!(file_id = %self.file_id, "document unloaded");
        }
        unloaded
    }

    async fn handle(&mut self, command: Command) {
        if self.deleted {
            return refuse_after_deletion(command);
        }
        match command {
            Command::Join { connection, identity, can_write, wants_ack, outbox } => {
                self.activity.start();
                self.activity.joins += 1;
                let mut greeting =
                    vec![Bytes::from(protocol::encode_sync_step_1(&self.doc.transact().state_vector().encode_v1()))];
                let present = self.awareness.present_states();
                if !present.is_empty() {
                    greeting.push(Bytes::from(protocol::encode_awareness(&protocol::encode_awareness_entries(
                        present.iter(),
                    ))));
                }
                for message in greeting {
                    let _ = outbox.try_send(message);
                }
                self.connections.insert(
                    connection,
                    Connection {
                        identity,
                        can_write,
                        wants_ack,
                        outbox,
                        updates_received: 0,
                        updates_durable: 0,
                        updates_durable_sent: 0,
                    },
                );
                self.update_gauges();
            }
            Command::ClientMessage { connection, frame } => self.on_client_message(connection, frame).await,
            Command::Leave { connection, reason } => self.remove_connection(connection, reason),
            Command::Read { include_state, reply } => {
                let (doc, text) = (self.doc.clone(), self.text.clone());
                let view = move || {
                    let transaction = doc.transact();
                    let state = if include_state {
                        transaction.encode_state_as_update_v1(&StateVector::default())
                    } else {
                        Vec::new()
                    };
                    DocumentView {
                        text: text.get_string(&transaction),
                        state_vector: transaction.state_vector().encode_v1(),
                        state,
                    }
                };
                // A whole large document (search, archives, runs read every file): off the workers.
                let view = if include_state || self.stored_bytes >= LARGE_DOCUMENT_BYTES {
                    codesync_common::budget::off_the_workers("reading a document", view).await
                } else {
                    Ok(view())
                };
                let _ = reply.send(view);
            }
            Command::Edit { edit, reply } => self.on_server_edit(edit, reply).await,
            Command::Unload => {}
            Command::MembershipChanged { room_id, user_id, can_write } => {
                if room_id == self.room_id {
                    self.on_membership_changed(&user_id, can_write);
                }
            }
            Command::Close { status, flush } => {
                if flush {
                    if self.updates_since_snapshot > 0 {
                        self.submit_snapshot().await;
                    }
                    let _ = self.shared.writer.barrier().await;
                    let durability = *self.durability.borrow_and_update();
                    self.on_durability(durability).await;
                }
                self.fail_pending(&status);
                self.close_all(status);
                self.publish_activity();
                self.closing = true;
            }
            Command::Delete { reply } => {
                self.close_all(tonic::Status::not_found("the file was deleted"));
                // Appends still queued for this file land before the rows go.
                let _ = self.shared.writer.barrier().await;
                let deleted = self.shared.store.delete_document(&self.file_id).await;
                if deleted.is_ok() {
                    self.deleted = true;
                    tracing::info!(file_id = %self.file_id, "deleted a document");
                }
                let _ = reply.send(deleted);
            }
        }
    }

    fn send(&mut self, connection: ConnectionId, message: Bytes) {
        let Some(target) = self.connections.get(&connection) else { return };
        if let Err(problem) = target.outbox.try_send(message) {
            self.drop_connection(connection, problem);
        }
    }

    fn broadcast_to(&mut self, include: impl Fn(ConnectionId) -> bool, message: &Bytes) {
        let mut dropped = Vec::new();
        for (id, target) in &self.connections {
            if !include(*id) {
                continue;
            }
            if let Err(problem) = target.outbox.try_send(message.clone()) {
                dropped.push((*id, problem));
            }
        }
        for (id, problem) in dropped {
            self.drop_connection(id, problem);
        }
    }

    /// A connection whose queue is full is cut off: it never holds the document back.
    fn drop_connection(&mut self, connection: ConnectionId, problem: SendProblem) {
        let reason = match problem {
            SendProblem::Full => {
                self.shared.metrics.slow_clients_dropped.fetch_add(1, Ordering::Relaxed);
                Some(tonic::Status::resource_exhausted(
                    "the connection fell too far behind the document and was closed; reconnect",
                ))
            }
            SendProblem::Closed => None,
        };
        self.remove_connection(connection, reason);
    }

    fn broadcast_awareness(&mut self, entries: &[protocol::AwarenessEntry]) {
        if entries.is_empty() {
            return;
        }
        let message = Bytes::from(protocol::encode_awareness(&protocol::encode_awareness_entries(entries.iter())));
        // Senders get their own awareness back, as from the reference server:
        // y-websocket clients count it as a sign of life.
        self.broadcast_to(|_| true, &message);
    }

    fn on_membership_changed(&mut self, user_id: &str, can_write: Option<bool>) {
        let affected: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|(_, connection)| connection.identity.user_id == user_id)
            .map(|(id, _)| *id)
            .collect();
        for connection in affected {
            match can_write {
                None => {
                    let reason = tonic::Status::permission_denied("you were removed from the room");
                    self.remove_connection(connection, Some(reason));
                }
                Some(can_write) => {
                    if let Some(client) = self.connections.get_mut(&connection) {
                        client.can_write = can_write;
                    }
                }
            }
        }
    }

    fn remove_connection(&mut self, connection: ConnectionId, reason: Option<tonic::Status>) {
        let Some(removed) = self.connections.remove(&connection) else { return };
        if let Some(reason) = reason {
            tracing::info!(file_id = %self.file_id, connection, user_id = %removed.identity.user_id, reason = %reason.message(), "connection closed by the server");
            removed.outbox.close(reason);
        }
        self.deferred_syncs.retain(|deferred| deferred.connection != connection);
        let removals = self.awareness.remove_connection(connection);
        self.update_gauges();
        self.broadcast_awareness(&removals);
    }

    async fn on_client_message(&mut self, connection: ConnectionId, frame: Bytes) {
        let Some(client) = self.connections.get(&connection) else { return };
        let identity = client.identity.clone();
        let can_write = client.can_write;
        let message = match protocol::decode_message(&frame) {
            Ok(message) => message,
            Err(error) => return self.refuse_malformed(connection, format!("malformed y-protocols message: {error}")),
        };
        match message {
            Message::SyncStep1(state_vector) => match protocol::check_state_vector(state_vector)
                .map_err(|error| error.to_string())
                .and_then(|()| StateVector::decode_v1(state_vector).map_err(|error| error.to_string()))
            {
                Ok(state_vector) => {
                    let after_seq = self.next_seq - 1;
                    if after_seq <= self.durable_seq {
                        self.answer_sync(connection, &state_vector).await;
                    } else {
                        // Answer once what was applied before the question is durable.
                        self.deferred_syncs.push(DeferredSync { connection, state_vector, after_seq });
                    }
                }
                Err(error) => self.refuse_malformed(connection, format!("malformed state vector: {error}")),
            },
            Message::SyncStep2(update) | Message::Update(update) => {
                let update = frame.slice_ref(update);
                self.on_client_update(connection, can_write, update).await;
            }
            Message::Awareness(payload) => match protocol::decode_awareness(payload, MAX_AWARENESS_ENTRIES) {
                Ok(entries) => {
                    let accepted = self.awareness.apply(connection, &identity, entries, Instant::now());
                    self.broadcast_awareness(&accepted);
                }
                Err(error) => self.refuse_malformed(connection, format!("malformed awareness update: {error}")),
            },
            Message::QueryAwareness => {
                let present = self.awareness.present_states();
                let message =
                    Bytes::from(protocol::encode_awareness(&protocol::encode_awareness_entries(present.iter())));
                self.send(connection, message);
            }
            Message::Auth => {}
        }
    }

    /// Closes a connection that sent something malformed; the others are untouched.
    fn refuse_malformed(&mut self, connection: ConnectionId, reason: String) {
        self.shared.metrics.malformed_messages.fetch_add(1, Ordering::Relaxed);
        self.remove_connection(connection, Some(tonic::Status::invalid_argument(reason)));
    }

    async fn answer_sync(&mut self, connection: ConnectionId, state_vector: &StateVector) {
        // A new client's diff is the whole document: a large one is encoded off the workers.
        let diff = if self.stored_bytes >= LARGE_DOCUMENT_BYTES {
            let (doc, state_vector) = (self.doc.clone(), state_vector.clone());
            codesync_common::budget::off_the_workers("a sync's diff", move || {
                doc.transact().encode_diff_v1(&state_vector)
            })
            .await
        } else {
            Ok(self.doc.transact().encode_diff_v1(state_vector))
        };
        match diff {
            Ok(diff) => self.send(connection, Bytes::from(protocol::encode_sync_step_2(&diff))),
            Err(error) => self.remove_connection(connection, Some(tonic::Status::from(error))),
        }
    }

    async fn on_client_update(&mut self, connection: ConnectionId, can_write: bool, update_bytes: Bytes) {
        let update = match decode_update(&update_bytes) {
            Ok(update) => update,
            Err(error) => return self.refuse_malformed(connection, format!("malformed update: {error}")),
        };
        if update.is_empty() {
            self.acknowledge_when_durable(connection);
            return;
        }
        if !can_write {
            self.shared.metrics.refused_writes.fetch_add(1, Ordering::Relaxed);
            let message =
                protocol::encode_permission_denied("viewers cannot edit this file: the update was not applied");
            self.send(connection, Bytes::from(message));
            return;
        }
        if self.stored_bytes + update_bytes.len() > self.shared.config.max_document_bytes {
            let message = protocol::encode_permission_denied(
                "the document has reached its size limit: the update was not applied",
            );
            self.send(connection, Bytes::from(message));
            return;
        }
        if let Err(problem) = self.apply(update, &update_bytes) {
            self.refuse_malformed(connection, problem.to_string());
            self.recover().await;
            return;
        }
        let Some(client) = self.connections.get_mut(&connection) else { return };
        client.updates_received += 1;
        let ack_count = client.updates_received;
        self.activity.editors.insert(client.identity.user_id.clone());
        self.append(update_bytes, Some(connection), Some(ack_count), None).await;
    }

    /// Applies an update to the in-memory document, containing panics.
    fn apply(&mut self, update: Update, _update_v1: &[u8]) -> Result<(), ApplyProblem> {
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let applied = self.doc.transact_mut().apply_update(update);
            #[cfg(feature = "failpoints")]
            failpoints::panic_if_marked(_update_v1);
            applied
        }));
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(ApplyProblem::Refused(error.to_string())),
            Err(_) => {
                self.shared.metrics.apply_panics.fetch_add(1, Ordering::Relaxed);
                tracing::error!(file_id = %self.file_id, "applying an update panicked; the document is reloaded from its log");
                Err(ApplyProblem::Panicked)
            }
        }
    }

    /// The in-memory document may be half-changed: wait until the log holds
    /// everything accepted so far, and rebuild the document from it.
    async fn recover(&mut self) {
        let _ = self.shared.writer.barrier().await;
        let durability = *self.durability.borrow_and_update();
        self.on_durability(durability).await;
        let reloaded = match self.shared.store.load(&self.file_id).await {
            Ok(stored) => {
                let (stored_bytes, updates) = (stored.stored_bytes(), stored.updates.len());
                rebuild(&self.file_id, stored).await.map(|rebuilt| (rebuilt, stored_bytes, updates))
            }
            Err(error) => Err(error),
        };
        match reloaded {
            Ok(((doc, text), stored_bytes, updates)) => {
                self.doc = doc;
                self.text = text;
                self.stored_bytes = stored_bytes;
                self.updates_since_snapshot = updates;
            }
            Err(error) => {
                tracing::error!(file_id = %self.file_id, %error, "cannot reload the document; closing its connections");
                self.close_all(tonic::Status::unavailable("the document is being reloaded; reconnect"));
            }
        }
    }

    fn close_all(&mut self, status: tonic::Status) {
        for (_, connection) in self.connections.drain() {
            connection.outbox.close(status.clone());
        }
        self.awareness = DocumentAwareness::default();
        self.deferred_syncs.clear();
        self.update_gauges();
    }

    fn acknowledge_when_durable(&mut self, connection: ConnectionId) {
        let Some(client) = self.connections.get_mut(&connection) else { return };
        client.updates_received += 1;
        let ack_count = client.updates_received;
        if self.pending.is_empty() {
            client.updates_durable = ack_count;
            self.send_acks();
        } else {
            let seq = self.next_seq - 1;
            self.pending.push_back(PendingItem {
                seq,
                origin: Some(connection),
                update: None,
                ack_count: Some(ack_count),
                reply: None,
            });
        }
    }

    async fn append(
        &mut self,
        update_v1: Bytes,
        origin: Option<ConnectionId>,
        ack_count: Option<u64>,
        reply: Option<(oneshot::Sender<ServiceResult<String>>, String)>,
    ) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.stored_bytes += update_v1.len();
        self.activity.start();
        self.activity.updates += 1;
        self.activity.bytes += update_v1.len() as u64;
        self.updates_since_snapshot += 1;
        self.pending.push_back(PendingItem { seq, origin, update: Some(update_v1.clone()), ack_count, reply });
        let request = WriteRequest::Append {
            update: AppendedUpdate { file_id: self.file_id.clone(), epoch: self.epoch, seq, update_v1 },
            report_to: self.durability_sender.clone(),
        };
        if self.shared.writer.submit(request).await.is_err() {
            self.close_all(tonic::Status::unavailable("the document store is shutting down"));
        }
        if self.updates_since_snapshot >= self.shared.config.snapshot_every_updates {
            self.submit_snapshot().await;
        }
        self.update_gauges();
    }

    async fn submit_snapshot(&mut self) {
        // The whole state: off the async workers (the actor handles nothing else meanwhile).
        let doc = self.doc.clone();
        let encoded = codesync_common::budget::off_the_workers("a snapshot's encode", move || {
            doc.transact().encode_state_as_update_v1(&StateVector::default())
        })
        .await;
        let state_v1 = match encoded {
            Ok(state_v1) => state_v1,
            Err(error) => {
                tracing::error!(file_id = %self.file_id, %error, "cannot encode a snapshot; the log grows until the next");
                return;
            }
        };
        let covers_seq = self.next_seq - 1;
        self.stored_bytes = state_v1.len();
        self.updates_since_snapshot = 0;
        let snapshot = Snapshot { file_id: self.file_id.clone(), epoch: self.epoch, covers_seq, state_v1 };
        let request = WriteRequest::Snapshot { snapshot, report_to: self.durability_sender.clone() };
        let _ = self.shared.writer.submit(request).await;
        self.shared.metrics.snapshots.fetch_add(1, Ordering::Relaxed);
    }

    /// Answers the server edits still waiting to be durable: they never will be here.
    fn fail_pending(&mut self, status: &tonic::Status) {
        for item in self.pending.drain(..) {
            if let Some((reply, _)) = item.reply {
                let _ = reply.send(Err(ServiceError::Unavailable { message: status.message().to_string() }));
            }
        }
    }

    async fn on_durability(&mut self, durability: Durability) {
        if durability.fenced {
            // Another replica owns the file now: what was not durable here is still with the
            // clients that sent it, and they send it again to the new owner on reconnect.
            tracing::warn!(file_id = %self.file_id, epoch = self.epoch, "another replica took this file over; closing it here");
            let status = tonic::Status::from(ServiceError::Unavailable {
                message: "the file moved to another server; reconnect".into(),
            });
            self.fail_pending(&status);
            self.close_all(status);
            self.closing = true;
            return;
        }
        if durability.failed {
            // Updates that were applied here may not be in the log: the clients
            // that sent them still have them and send them again on reconnect.
            self.durability_sender.send_modify(|durability| durability.failed = false);
            for item in self.pending.drain(..) {
                if let Some((reply, _)) = item.reply {
                    let _ = reply.send(Err(ServiceError::Unavailable {
                        message: "the document could not be saved; try again".into(),
                    }));
                }
            }
            self.close_all(tonic::Status::unavailable("the document could not be saved; reconnect"));
            if let Ok(stored) = self.shared.store.load(&self.file_id).await {
                let (next_seq, stored_bytes, updates) =
                    (stored.next_seq(), stored.stored_bytes(), stored.updates.len());
                if let Ok((doc, text)) = rebuild(&self.file_id, stored).await {
                    self.doc = doc;
                    self.text = text;
                    self.next_seq = self.next_seq.max(next_seq);
                    self.stored_bytes = stored_bytes;
                    self.updates_since_snapshot = updates;
                }
            }
            self.durable_seq = self.next_seq - 1;
            return;
        }
        if durability.durable_seq <= self.durable_seq {
            return;
        }
        self.durable_seq = durability.durable_seq;
        let mut durable_updates = Vec::new();
        while self.pending.front().is_some_and(|item| item.seq <= self.durable_seq) {
            let Some(item) = self.pending.pop_front() else { break };
            if let Some(update) = item.update {
                durable_updates.push((item.origin, update));
            }
            if let (Some(origin), Some(ack_count)) = (item.origin, item.ack_count)
                && let Some(client) = self.connections.get_mut(&origin)
            {
                client.updates_durable = client.updates_durable.max(ack_count);
            }
            if let Some((reply, text)) = item.reply {
                let _ = reply.send(Ok(text));
            }
        }
        self.relay(durable_updates);
        self.send_acks();
        if !self.deferred_syncs.is_empty() {
            let durable_seq = self.durable_seq;
            let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.deferred_syncs)
                .into_iter()
                .partition(|deferred| deferred.after_seq <= durable_seq);
            self.deferred_syncs = waiting;
            for deferred in ready {
                self.answer_sync(deferred.connection, &deferred.state_vector).await;
            }
        }
    }

    /// Relays updates that just became durable, each to every connection but
    /// its origin. One commit can release thousands at once: they go out
    /// merged into one message per connection, so a burst costs each client
    /// one queue slot, not thousands.
    fn relay(&mut self, updates: Vec<(Option<ConnectionId>, Bytes)>) {
        self.shared.metrics.relayed_updates.fetch_add(updates.len() as u64, Ordering::Relaxed);
        if updates.is_empty() {
            return;
        }
        // Usually one or two origins: one merge for everyone else, one per origin.
        let origins: std::collections::BTreeSet<ConnectionId> =
            updates.iter().filter_map(|(origin, _)| *origin).collect();
        for message in relay_messages(updates.iter().map(|(_, update)| update)) {
            self.broadcast_to(|connection| !origins.contains(&connection), &message);
        }
        for origin in origins {
            let others = updates.iter().filter(|(from, _)| *from != Some(origin)).map(|(_, update)| update);
            for message in relay_messages(others) {
                self.send(origin, message);
            }
        }
    }

    fn send_acks(&mut self) {
        let due: Vec<(ConnectionId, u64)> = self
            .connections
            .iter_mut()
            .filter(|(_, client)| client.wants_ack && client.updates_durable > client.updates_durable_sent)
            .map(|(id, client)| {
                client.updates_durable_sent = client.updates_durable;
                (*id, client.updates_durable)
            })
            .collect();
        for (connection, count) in due {
            self.send(connection, Bytes::from(protocol::encode_saved(count)));
        }
    }

    async fn on_server_edit(&mut self, edit: ServerEdit, reply: oneshot::Sender<ServiceResult<String>>) {
        // The same size limit as a collaborator's updates meet (a direct gRPC caller gets no more).
        let adds = match &edit {
            ServerEdit::Update(bytes) => bytes.len(),
            ServerEdit::Insert { text, .. } | ServerEdit::Replace { text } => text.len(),
        };
        if self.stored_bytes + adds > self.shared.config.max_document_bytes {
            let _ = reply.send(Err(ServiceError::too_large(
                ErrorCode::FileTooLarge,
                format!(
                    "the document would pass its size limit ({} bytes stored of at most {})",
                    self.stored_bytes, self.shared.config.max_document_bytes
                ),
            )));
            return;
        }
        // The update the edit made; `None` when it changed nothing.
        let update_v1: Option<Vec<u8>> = match edit {
            ServerEdit::Update(bytes) => {
                let update = match decode_update(&bytes) {
                    Ok(update) => update,
                    Err(error) => {
                        let _ = reply.send(Err(ServiceError::invalid(
                            ErrorCode::InvalidUpdate,
                            format!("malformed update: {error}"),
                        )));
                        return;
                    }
                };
                if update.is_empty() {
                    None
                } else if let Err(problem) = self.apply(update, &bytes) {
                    let _ = reply.send(Err(ServiceError::invalid(ErrorCode::InvalidUpdate, problem.to_string())));
                    if matches!(problem, ApplyProblem::Panicked) {
                        self.recover().await;
                    }
                    return;
                } else {
                    Some(bytes)
                }
            }
            ServerEdit::Insert { index, text } => {
                let mut transaction = self.doc.transact_mut();
                let length = self.text.len(&transaction);
                if index > length {
                    let message = format!("index {index} is beyond the end of the text ({length} UTF-16 units)");
                    let _ = reply.send(Err(ServiceError::invalid(ErrorCode::InvalidIndex, message)));
                    return;
                }
                if text.is_empty() {
                    None
                } else {
                    self.text.insert(&mut transaction, index, &text);
                    Some(transaction.encode_update_v1())
                }
            }
            ServerEdit::Replace { text } => {
                // The diff of two large texts, and applying it, take a while: off the async
                // workers. The actor applies nothing else meanwhile, so the text it diffed is
                // still the text.
                let (doc, shared_text) = (self.doc.clone(), self.text.clone());
                let replaced = codesync_common::budget::off_the_workers("a replacement's edits", move || {
                    let current = shared_text.get_string(&doc.transact());
                    let edits = crate::diff::minimal_edits(&current, &text);
                    if edits.is_empty() {
                        return None;
                    }
                    let mut transaction = doc.transact_mut();
                    // From the last to the first: each edit's start is counted in the text before any.
                    for edit in edits.iter().rev() {
                        if edit.removed > 0 {
                            shared_text.remove_range(&mut transaction, edit.start, edit.removed);
                        }
                        if !edit.inserted.is_empty() {
                            shared_text.insert(&mut transaction, edit.start, &edit.inserted);
                        }
                    }
                    Some(transaction.encode_update_v1())
                })
                .await;
                match replaced {
                    Ok(update) => update,
                    Err(error) => {
                        let _ = reply.send(Err(error));
                        return;
                    }
                }
            }
        };
        let text = self.text.get_string(&self.doc.transact());
        let Some(update_v1) = update_v1 else {
            let _ = reply.send(Ok(text));
            return;
        };
        self.append(Bytes::from(update_v1), None, None, Some((reply, text))).await;
    }
}

#[derive(Debug, thiserror::Error)]
enum ApplyProblem {
    #[error("the update cannot be applied: {0}")]
    Refused(String),
    #[error("the update cannot be applied")]
    Panicked,
}

/// Commands that reach an actor after its file was deleted (they were queued
/// before the deletion): nothing is loaded or stored again.
fn refuse_after_deletion(command: Command) {
    let gone = || ServiceError::not_found(ErrorCode::FileNotFound, "the file was deleted");
    match command {
        Command::Join { outbox, .. } => outbox.close(tonic::Status::from(gone())),
        Command::Edit { reply, .. } => {
            let _ = reply.send(Err(gone()));
        }
        Command::Delete { reply } => {
            let _ = reply.send(Ok(()));
        }
        Command::Read { reply, .. } => {
            let _ = reply.send(Err(gone()));
        }
        Command::ClientMessage { .. }
        | Command::Leave { .. }
        | Command::Unload
        | Command::Close { .. }
        | Command::MembershipChanged { .. } => {}
    }
}

/// Test-only faults, compiled in with the `failpoints` feature (never in a release build).
#[cfg(feature = "failpoints")]
pub mod failpoints {
    /// An update that inserts this text panics right after it is applied: the
    /// in-memory document is then half-changed, as after a real panic inside
    /// the CRDT library. (A v1 update holds inserted strings verbatim.)
    pub const PANIC_MARKER: &str = "\u{1}failpoint:panic\u{1}";

    pub(super) fn panic_if_marked(update_v1: &[u8]) {
        let marker = PANIC_MARKER.as_bytes();
        if update_v1.windows(marker.len()).any(|window| window == marker) {
            panic!("failpoint: an update panicked while being applied");
        }
    }
}
