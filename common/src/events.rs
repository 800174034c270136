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

/// Kinds of `room-events` about members (payload: `room_id`, `room_name`, `owner_id`, `user_id`,
/// `role` or null, `by`, `by_username`).
pub const MEMBER_JOINED: &str = "member_joined";
pub const MEMBER_ROLE_CHANGED: &str = "member_role_changed";
pub const MEMBER_REMOVED: &str = "member_removed";
/// Kinds of `room-events` about rooms and files (payload: `room_id`, `by`, `by_username`, and
/// `room_name`, `owner_id`, `is_public` for rooms, with `file_ids` for a deleted room (the files
/// that went with it); `file_id`, `filename` (and `old_filename`) for files).
pub const ROOM_CREATED: &str = "room_created";
pub const ROOM_DELETED: &str = "room_deleted";
pub const FILE_CREATED: &str = "file_created";
pub const FILE_RENAMED: &str = "file_renamed";
pub const FILE_DELETED: &str = "file_deleted";
/// `execution-events`: a run ended (payload: `execution_id`, `user_id`, `room_id`, `file_id`,
/// `language`, `status`, `exit_code`, `signal`, `wall_time_ms`, `peak_memory_bytes`).
pub const EXECUTION_FINISHED: &str = "execution_finished";
/// `ai-events`: an answer ended (payload: the `ai_interactions` record: `user_id`, `file_id`,
/// `mode`, `provider`, `model`, `status`, `time_to_first_token_ms`, `latency_ms`, tokens).
pub const AI_REQUEST_FINISHED: &str = "ai_request_finished";
/// `collaboration-events` (payload: `file_id`, `room_id`, `updates`, `bytes`, `editors`, `joins`,
/// `connections`, `window_ms`): a file's edits over a short window.
pub const COLLABORATION_ACTIVITY: &str = "activity";
/// `collaboration-events` from presence (payload: `room_id`, `online`): who is in a room changed.
pub const ROOM_PRESENCE: &str = "room_presence";
/// `analytics-events` from auth (payload: `user_id`, `username`): an account was made, a
/// session began (registering or signing in).
pub const USER_REGISTERED: &str = "user_registered";
pub const SESSION_STARTED: &str = "session_started";
/// `analytics-events` from auth (payload: `user_id`, `session_id`): a sign-in ended (signed out,
/// or its refresh token was reused): every process refuses its access tokens and ends its streams.
pub const SESSION_ENDED: &str = "session_ended";
/// `notification-events`: a notice for one user (payload: `user_id`, `title`, `message`), and
/// the notifications service's own announcement of a stored notification (for live pushes).
pub const SYSTEM_NOTICE: &str = "system_notice";
pub const NOTIFICATION_CREATED: &str = "notification_created";
/// `room-events` from history: a version of a file was recorded (payload: `room_id`, `file_id`,
/// `version_id`, `number`, `kind`, `by`, `by_username`, `lines_added`, `lines_removed`).
pub const VERSION_CREATED: &str = "version_created";

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

/// A member's role changed or the member left the room, read from `room-events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipChange {
    pub room_id: String,
    pub user_id: String,
    /// The new role's name; `None` when the member was removed (or left).
    pub role: Option<String>,
}

/// The next role change or removal on a `room-events` subscription; other kinds, and events
/// without a room and user, are skipped. `None` once the bus is gone. Services that apply these
/// to open connections (documents, presence) share this reading.
pub async fn next_membership_change(room_events: &mut broadcast::Receiver<Event>) -> Option<MembershipChange> {
    loop {
        let event = match room_events.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                // The changes still hold at each member's next connection; only live ones lag.
                tracing::warn!(missed, "membership changes were missed; they apply at the next connection");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        let role = match (event.kind.as_str(), event.payload["role"].as_str()) {
            (MEMBER_REMOVED, _) => None,
            (MEMBER_ROLE_CHANGED, Some(role)) => Some(role.to_string()),
            _ => continue,
        };
        let (Some(room_id), Some(user_id)) = (event.payload["room_id"].as_str(), event.payload["user_id"].as_str())
        else {
            continue;
        };
        return Some(MembershipChange { room_id: room_id.to_string(), user_id: user_id.to_string(), role });
    }
}

/// Publishing never waits for consumers; a consumer that falls too far
/// behind an in-process topic learns how many events it missed.
pub trait EventBus: Send + Sync + std::fmt::Debug {
    fn publish(&self, event: Event);
    /// The database outbox events go through, if any: a service that changes its tables
    /// stages its events there in the same transaction ([`crate::outbox::stage`]), then
    /// [`Staged::committed`] wakes the relay.
    fn outbox(&self) -> Option<&crate::outbox::Outbox> {
        None
    }
    /// Every event of `topic` published from now on, for every subscriber (fan-out).
    fn subscribe(&self, topic: &str) -> broadcast::Receiver<Event>;
    /// The events of `topics` for the consumer group `group`: on Kafka, each event goes to one
    /// member of the group and the group's position survives restarts; acknowledge each
    /// delivery once handled. Use it through [`crate::consumer::run`].
    fn consume(
        &self,
        group: &str,
        topics: &[&str],
        start: crate::consumer::StartFrom,
    ) -> tokio::sync::mpsc::Receiver<crate::consumer::Delivery>;
}

/// Events that a store write announces: stored in the outbox within the write's transaction
/// when the bus has an outbox (nothing is lost if the process dies right after the commit), else
/// published once the write committed. A write that did not happen announces nothing: drop it.
pub struct Staged<'a> {
    bus: &'a dyn EventBus,
    events: Vec<Event>,
    stored: bool,
}

impl<'a> Staged<'a> {
    pub fn new(bus: &'a dyn EventBus, events: Vec<Event>) -> Self {
        Self { bus, events, stored: false }
    }

    /// The events, for a write to complete with what it learns inside its transaction.
    pub fn events_mut(&mut self) -> &mut [Event] {
        &mut self.events
    }

    /// Stores the events within the write's transaction (when the bus has an outbox).
    pub async fn store_in(&mut self, connection: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
        if self.bus.outbox().is_some() {
            for event in &self.events {
                crate::outbox::stage(connection, event).await?;
            }
            self.stored = true;
        }
        Ok(())
    }

    /// The write committed: the events go out.
    pub fn committed(self) {
        match self.bus.outbox() {
            Some(outbox) if self.stored => outbox.wake(),
            _ => {
                for event in self.events {
                    self.bus.publish(event);
                }
            }
        }
    }
}

/// Events per topic held for slow in-process subscribers.
const IN_PROCESS_BUFFER: usize = 4096;

/// The embedded default: delivery to subscribers of this process.
#[derive(Debug, Default)]
pub struct InProcessBus {
    topics: Mutex<HashMap<String, broadcast::Sender<Event>>>,
    /// Each consumer group's queue, by topic: unbounded, so that a slow group falls behind
    /// but misses nothing (live subscribers may lag; groups may not).
    groups: Mutex<HashMap<String, Vec<tokio::sync::mpsc::UnboundedSender<crate::consumer::Delivery>>>>,
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
        {
            let mut groups = self.groups.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(queues) = groups.get_mut(&event.topic) {
                queues.retain(|queue| queue.send(crate::consumer::Delivery::unacknowledged(event.clone())).is_ok());
            }
        }
        // No subscriber yet is not an error: nobody is interested.
        let _ = self.sender(&event.topic).send(event);
    }

    fn subscribe(&self, topic: &str) -> broadcast::Receiver<Event> {
        self.sender(topic).subscribe()
    }

    /// In process there is nothing from before: every group starts from now, and misses
    /// nothing from then on however slowly it handles events.
    fn consume(
        &self,
        _group: &str,
        topics: &[&str],
        _start: crate::consumer::StartFrom,
    ) -> tokio::sync::mpsc::Receiver<crate::consumer::Delivery> {
        let (queue, mut queued) = tokio::sync::mpsc::unbounded_channel();
        {
            let mut groups = self.groups.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for topic in topics {
                groups.entry(topic.to_string()).or_default().push(queue.clone());
            }
        }
        let (sender, receiver) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            while let Some(delivery) = queued.recv().await {
                if sender.send(delivery).await.is_err() {
                    return;
                }
            }
        });
        receiver
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn membership_changes_are_read_and_everything_else_skipped() {
        let bus = InProcessBus::default();
        let mut room_events = bus.subscribe(ROOM_EVENTS);
        let member = |kind: &str, payload: serde_json::Value| Event::new(ROOM_EVENTS, kind, "r", payload);
        bus.publish(member(MEMBER_JOINED, serde_json::json!({"room_id": "r", "user_id": "u", "role": "editor"})));
        bus.publish(member(MEMBER_ROLE_CHANGED, serde_json::json!({"room_id": "r"})));
        bus.publish(member(MEMBER_ROLE_CHANGED, serde_json::json!({"room_id": "r", "user_id": "u", "role": "viewer"})));
        bus.publish(member(MEMBER_REMOVED, serde_json::json!({"room_id": "r", "user_id": "u"})));
        let change = next_membership_change(&mut room_events).await.unwrap();
        assert_eq!(change, MembershipChange { room_id: "r".into(), user_id: "u".into(), role: Some("viewer".into()) });
        let change = next_membership_change(&mut room_events).await.unwrap();
        assert_eq!(change, MembershipChange { room_id: "r".into(), user_id: "u".into(), role: None });
        drop(bus);
        assert_eq!(next_membership_change(&mut room_events).await, None, "the bus is gone");
    }

    #[tokio::test]
    async fn a_slow_consumer_group_misses_nothing() {
        let bus = InProcessBus::default();
        let mut group = bus.consume("slow", &[ROOM_EVENTS, COLLABORATION_EVENTS], crate::consumer::StartFrom::Latest);
        let published = 3 * IN_PROCESS_BUFFER;
        for index in 0..published {
            let topic = if index % 2 == 0 { ROOM_EVENTS } else { COLLABORATION_EVENTS };
            bus.publish(Event::new(topic, "k", "r", serde_json::json!({"index": index})));
        }
        for index in 0..published {
            let delivery = group.recv().await.unwrap();
            assert_eq!(delivery.event.payload["index"], index, "in order, none missing");
            delivery.acknowledge();
        }
    }

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
