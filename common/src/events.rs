//! The event bus: the topics of SPEC "Events", and the interface every
//! service publishes and consumes through. The embedded default delivers
//! within this process; the Kafka backend (`crate::kafka`) sits behind the
//! same interface for the distributed topology.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

pub const ROOM_EVENTS: &str = "room-events";
pub const COLLABORATION_EVENTS: &str = "collaboration-events";
pub const EXECUTION_EVENTS: &str = "execution-events";
pub const AI_EVENTS: &str = "ai-events";
pub const NOTIFICATION_EVENTS: &str = "notification-events";
pub const ANALYTICS_EVENTS: &str = "analytics-events";
pub const DEAD_LETTER_EVENTS: &str = "dead-letter-events";

/// Kinds of `room-events` (payload: `room_id`, `user_id`, `role` or null, `by`).
pub const MEMBER_JOINED: &str = "member_joined";
pub const MEMBER_ROLE_CHANGED: &str = "member_role_changed";
pub const MEMBER_REMOVED: &str = "member_removed";

pub const TOPICS: [&str; 7] = [
    ROOM_EVENTS,
    COLLABORATION_EVENTS,
    EXECUTION_EVENTS,
    AI_EVENTS,
    NOTIFICATION_EVENTS,
    ANALYTICS_EVENTS,
    DEAD_LETTER_EVENTS,
];

/// One event: `kind` says what happened, `key` what it is about (the
/// partitioning key: a room or file id), `payload` the details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub topic: String,
    pub kind: String,
    pub key: String,
    pub occurred_at_ms: i64,
    pub payload: serde_json::Value,
}

impl Event {
    pub fn new(topic: &str, kind: &str, key: &str, payload: serde_json::Value) -> Self {
        Self {
            id: crate::new_id(),
            topic: topic.to_string(),
            kind: kind.to_string(),
            key: key.to_string(),
            occurred_at_ms: crate::now_ms(),
            payload,
        }
    }
}

/// Publishing never waits for consumers; a consumer that falls too far
/// behind an in-process topic learns how many events it missed.
pub trait EventBus: Send + Sync + std::fmt::Debug {
    fn publish(&self, event: Event);
    fn subscribe(&self, topic: &str) -> broadcast::Receiver<Event>;
}

/// Events per topic held for slow in-process subscribers.
const IN_PROCESS_BUFFER: usize = 4096;

/// The embedded default: delivery to subscribers of this process.
#[derive(Debug, Default)]
pub struct InProcessBus {
    topics: Mutex<HashMap<String, broadcast::Sender<Event>>>,
}

impl InProcessBus {
    pub fn shared() -> Arc<dyn EventBus> {
        Arc::new(Self::default())
    }

    pub(crate) fn sender(&self, topic: &str) -> broadcast::Sender<Event> {
        let mut topics = self.topics.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        topics.entry(topic.to_string()).or_insert_with(|| broadcast::channel(IN_PROCESS_BUFFER).0).clone()
    }
}

impl EventBus for InProcessBus {
    fn publish(&self, event: Event) {
        tracing::debug!(topic = %event.topic, kind = %event.kind, key = %event.key, "event");
        // No subscriber yet is not an error: nobody is interested.
        let _ = self.sender(&event.topic).send(event);
    }

    fn subscribe(&self, topic: &str) -> broadcast::Receiver<Event> {
        self.sender(topic).subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_get_their_topic_only() {
        let bus = InProcessBus::shared();
        let mut collaboration = bus.subscribe(COLLABORATION_EVENTS);
        let mut rooms = bus.subscribe(ROOM_EVENTS);
        bus.publish(Event::new(COLLABORATION_EVENTS, "activity", "file-1", serde_json::json!({"updates": 3})));
        let event = collaboration.recv().await.unwrap();
        assert_eq!(event.kind, "activity");
        assert_eq!(event.payload["updates"], 3);
        assert!(rooms.try_recv().is_err());
    }
}
