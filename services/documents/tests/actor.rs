//! The document actor on a real SQLite store, without the network: what it
//! publishes on the event bus, and that it relays only durable updates.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use codesync_common::ServiceResult;
use codesync_common::bus::{EventBus, InProcessBus};
use codesync_common::db::Database;
use codesync_common::events::{COLLABORATION_EVENTS, Kind};
use codesync_documents::Metrics;
use codesync_documents::actor::{ActorConfig, Command, Opening, SeedSource, Shared};
use codesync_documents::awareness::Identity;
use codesync_documents::outbox;
use codesync_documents::ownership::Ownership;
use codesync_documents::protocol;
use codesync_documents::registry::Registry;
use codesync_documents::store::DocumentsStore;
use codesync_documents::writer::Writer;
use yrs::{Doc, Text, Transact};

/// The initial text of every file in these tests (the rooms service's part).
struct FixedText(&'static str);

#[tonic::async_trait]
impl SeedSource for FixedText {
    async fn initial_text(&self, _file_id: &str) -> ServiceResult<String> {
        Ok(self.0.to_string())
    }
}

async fn registry(directory: &tempfile::TempDir, events: Arc<dyn EventBus>) -> Arc<Registry> {
    let url = format!("sqlite://{}", directory.path().join("documents.db").display());
    let store = DocumentsStore::new(Database::connect(&url).await.expect("open sqlite"));
    store.migrate().await.expect("migrate");
    let metrics = Arc::new(Metrics::default());
    let ownership =
        Ownership::start(store.database(), "127.0.0.1:1".into(), Duration::from_secs(4)).await.expect("ownership");
    let shared = Shared {
        config: ActorConfig {
            snapshot_every_updates: 1000,
            max_document_bytes: 1 << 24,
            idle_unload_after: Duration::from_secs(60),
            activity_window: Duration::from_millis(200),
        },
        writer: Writer::start(store.clone(), 1024, metrics.clone(), ownership.clone()),
        ownership,
        store,
        metrics,
        events,
    };
    Registry::start(shared, 1 << 30)
}

#[tokio::test]
async fn activity_is_published_as_counts_per_window_not_per_keystroke() {
    let directory = tempfile::tempdir().unwrap();
    let events = InProcessBus::shared();
    let mut collaboration = events.subscribe(COLLABORATION_EVENTS);
    let registry = registry(&directory, events).await;
    let opening = Opening { room_id: "room-1".into(), seed: Arc::new(FixedText("hello")) };

    let (outbox, mut inbox) = outbox::channel(64, 1 << 20);
    let join = Command::Join {
        connection: 1,
        identity: Identity { user_id: "user-1".into(), username: "ada".into() },
        can_write: true,
        wants_ack: false,
        outbox,
    };
    let mailbox = registry.send("file-1", &opening, join).await.expect("join");
    inbox.first().await.expect("the greeting");

    let client = Doc::new();
    let text = client.get_or_insert_text("content");
    for keystroke in 0..50 {
        let update = {
            let mut transaction = client.transact_mut();
            text.insert(&mut transaction, 0, &keystroke.to_string());
            transaction.encode_update_v1()
        };
        let frame = Bytes::from(protocol::encode_update(&update));
        mailbox.send(Command::ClientMessage { connection: 1, frame }).await.unwrap();
    }

    let event = tokio::time::timeout(Duration::from_secs(10), collaboration.recv()).await.expect("an event").unwrap();
    assert_eq!(event.key, "room-1");
    let Kind::Activity(activity) = &event.kind else { panic!("an activity event: {event:?}") };
    assert_eq!(activity.file_id, "file-1");
    assert_eq!(activity.updates, 50, "fifty keystrokes, one event: {activity:?}");
    assert_eq!(activity.editors, ["user-1"]);
    assert_eq!(activity.joins, 1);
    assert!(activity.bytes > 50);
    let quiet = tokio::time::timeout(Duration::from_millis(600), collaboration.recv()).await;
    assert!(quiet.is_err(), "no event for a window without activity");
}

#[cfg(feature = "failpoints")]
fn insert_update(client: &Doc, index: u32, chunk: &str) -> Bytes {
    let text = client.get_or_insert_text("content");
    let update = {
        let mut transaction = client.transact_mut();
        text.insert(&mut transaction, index, chunk);
        transaction.encode_update_v1()
    };
    Bytes::from(protocol::encode_update(&update))
}

#[cfg(feature = "failpoints")]
async fn read_text(mailbox: &tokio::sync::mpsc::Sender<Command>) -> String {
    let (reply, answer) = tokio::sync::oneshot::channel();
    mailbox.send(Command::Read { include_state: false, reply }).await.expect("the actor is running");
    answer.await.expect("an answer").expect("a view").text
}

/// A panic while applying an update (injected with the `failpoints` feature,
/// after the update has changed the in-memory document) costs the sender its
/// connection; the document is rebuilt from its log, and the other
/// connections carry on. Built only with the feature (make test-rust runs it so).
#[cfg(feature = "failpoints")]
#[tokio::test]
async fn a_panic_while_applying_reloads_the_document_and_spares_the_others() {
    use codesync_documents::actor::failpoints::PANIC_MARKER;
    use futures::StreamExt;

    let directory = tempfile::tempdir().unwrap();
    let registry = registry(&directory, InProcessBus::shared()).await;
    let opening = Opening { room_id: "room-1".into(), seed: Arc::new(FixedText("")) };
    let join = |connection, outbox| Command::Join {
        connection,
        identity: Identity { user_id: format!("user-{connection}"), username: format!("user {connection}") },
        can_write: true,
        wants_ack: false,
        outbox,
    };
    let (outbox, mut mallory_inbox) = outbox::channel(64, 1 << 20);
    let mailbox = registry.send("file-1", &opening, join(1, outbox)).await.expect("join");
    mallory_inbox.first().await.expect("the greeting");
    let (outbox, mut bob_inbox) = outbox::channel(64, 1 << 20);
    registry.send("file-1", &opening, join(2, outbox)).await.expect("join");
    bob_inbox.first().await.expect("the greeting");

    let mallory = Doc::new();
    mailbox.send(Command::ClientMessage { connection: 1, frame: insert_update(&mallory, 0, "kept ") }).await.unwrap();
    let marked = insert_update(&mallory, 5, PANIC_MARKER);
    mailbox.send(Command::ClientMessage { connection: 1, frame: marked }).await.unwrap();

    let mallory_end: Vec<_> = tokio::time::timeout(Duration::from_secs(10), mallory_inbox.into_stream().collect())
        .await
        .expect("mallory's connection is closed");
    assert!(
        matches!(mallory_end.last(), Some(Err(status)) if status.code() == tonic::Code::InvalidArgument),
        "the sender is disconnected with a reason: {mallory_end:?}"
    );
    assert_eq!(read_text(&mailbox).await, "kept ", "the half-applied update is gone, the durable one stays");

    let bob = Doc::new();
    mailbox.send(Command::ClientMessage { connection: 2, frame: insert_update(&bob, 0, "bob ") }).await.unwrap();
    let text = read_text(&mailbox).await;
    assert!(text.contains("kept ") && text.contains("bob ") && !text.contains("failpoint"), "{text:?}");

    // What survived is what the log holds: a fresh load reads the same text.
    drop(bob_inbox);
    mailbox.send(Command::Leave { connection: 2, reason: None }).await.unwrap();
    mailbox.send(Command::Unload).await.unwrap();
    let (outbox, mut carol_inbox) = outbox::channel(64, 1 << 20);
    let mailbox = registry.send("file-1", &opening, join(3, outbox)).await.expect("join after unload");
    carol_inbox.first().await.expect("the greeting");
    assert_eq!(read_text(&mailbox).await, text);
}
