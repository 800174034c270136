//! The document actor on a real SQLite store, without the network: what it
//! publishes on the event bus, and that it relays only durable updates.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use codesync_common::ServiceResult;
use codesync_common::db::Database;
use codesync_common::events::{COLLABORATION_EVENTS, EventBus, InProcessBus};
use codesync_documents::Metrics;
use codesync_documents::actor::{ActorConfig, Command, Opening, SeedSource, Shared};
use codesync_documents::awareness::Identity;
use codesync_documents::outbox;
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
    let shared = Shared {
        config: ActorConfig {
            snapshot_every_updates: 1000,
            max_document_bytes: 1 << 24,
            idle_unload_after: Duration::from_secs(60),
            activity_window: Duration::from_millis(200),
        },
        writer: Writer::start(store.clone(), 1024, metrics.clone()),
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
    assert_eq!(event.kind, "activity");
    assert_eq!(event.key, "room-1");
    assert_eq!(event.payload["file_id"], "file-1");
    assert_eq!(event.payload["updates"], 50, "fifty keystrokes, one event: {}", event.payload);
    assert_eq!(event.payload["editors"], serde_json::json!(["user-1"]));
    assert_eq!(event.payload["joins"], 1);
    assert!(event.payload["bytes"].as_u64().unwrap() > 50);
    let quiet = tokio::time::timeout(Duration::from_millis(600), collaboration.recv()).await;
    assert!(quiet.is_err(), "no event for a window without activity");
}
