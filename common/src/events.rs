//! The event bus: the events of SPEC "Events" (their schema is `proto/codesync/events/v1`),
//! and the interface every service publishes and consumes through. The embedded default delivers
//! within this process; the Kafka backend (`crate::kafka`) sits behind the
//! same interface for the distributed topology.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prost::Message as _;
use serde_json::{Value, json};
use tokio::sync::broadcast;

pub use codesync_proto::events::v1 as schema;
pub use codesync_proto::events::v1::{
    AI_EVENTS, ANALYTICS_EVENTS, COLLABORATION_EVENTS, DEAD_LETTER_EVENTS, EXECUTION_EVENTS, KIND_NAMES,
    NOTIFICATION_EVENTS, ROOM_EVENTS, TOPICS,
};
use codesync_proto::rooms::v1::Role;
pub use schema::event::Kind;

/// One event: `kind` says what happened, with its details (a message of
/// `proto/codesync/events/v1/events.proto`, which also fixes its topic), `key` what it is about
/// (the partitioning key: a room, file or user id).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub key: String,
    pub occurred_at_ms: i64,
    pub kind: Kind,
}

/// Bytes that are not an event this version knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not a CodeSync event: {0}")]
    Malformed(String),
    /// From a newer producer, most likely: kept whole in the dead letters until this consumer
    /// is upgraded.
    #[error("an event of a kind this version does not know")]
    UnknownKind,
}

impl Event {
    pub fn new(key: &str, kind: Kind) -> Self {
        Self { id: crate::new_id(), key: key.to_string(), occurred_at_ms: crate::now_ms(), kind }
    }

    pub fn topic(&self) -> &'static str {
        self.kind.topic()
    }

    /// The kind's name (`member_joined`, `activity`...).
    pub fn kind_name(&self) -> &'static str {
        self.kind.name()
    }

    /// The event as it goes on the wire (Kafka, the outbox): the protobuf envelope.
    pub fn encode(&self) -> Vec<u8> {
        schema::Event {
            id: self.id.clone(),
            key: self.key.clone(),
            occurred_at_ms: self.occurred_at_ms,
            kind: Some(self.kind.clone()),
        }
        .encode_to_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let envelope = schema::Event::decode(bytes).map_err(|error| DecodeError::Malformed(error.to_string()))?;
        let kind = envelope.kind.ok_or(DecodeError::UnknownKind)?;
        if envelope.id.is_empty() {
            return Err(DecodeError::Malformed("an event without an id".into()));
        }
        Ok(Self { id: envelope.id, key: envelope.key, occurred_at_ms: envelope.occurred_at_ms, kind })
    }

    /// The room the event is about, if any.
    pub fn room_id(&self) -> Option<&str> {
        let room_id = match &self.kind {
            Kind::MemberJoined(change) | Kind::MemberRoleChanged(change) | Kind::MemberRemoved(change) => {
                &change.room_id
            }
            Kind::RoomCreated(change) | Kind::RoomDeleted(change) => &change.room_id,
            Kind::FileCreated(change) | Kind::FileRenamed(change) | Kind::FileDeleted(change) => &change.room_id,
            Kind::VersionCreated(version) => &version.room_id,
            Kind::Activity(activity) => &activity.room_id,
            Kind::RoomPresence(presence) => &presence.room_id,
            Kind::ExecutionFinished(run) => &run.room_id,
            Kind::AiRequestFinished(_)
            | Kind::SystemNotice(_)
            | Kind::NotificationCreated(_)
            | Kind::UserRegistered(_)
            | Kind::SessionStarted(_)
            | Kind::SessionEnded(_)
            | Kind::DeadLetter(_) => return None,
        };
        Some(room_id.as_str()).filter(|room_id| !room_id.is_empty())
    }

    /// Who did it (the member who acted, the user who ran or asked), if anyone.
    pub fn actor(&self) -> Option<&str> {
        let user_id = match &self.kind {
            Kind::MemberJoined(change) | Kind::MemberRoleChanged(change) | Kind::MemberRemoved(change) => &change.by,
            Kind::RoomCreated(change) | Kind::RoomDeleted(change) => &change.by,
            Kind::FileCreated(change) | Kind::FileRenamed(change) | Kind::FileDeleted(change) => &change.by,
            Kind::VersionCreated(version) => &version.by,
            Kind::ExecutionFinished(run) => &run.user_id,
            Kind::AiRequestFinished(answer) => &answer.user_id,
            Kind::SystemNotice(notice) => &notice.user_id,
            Kind::NotificationCreated(created) => match &created.notification {
                Some(notification) => &notification.user_id,
                None => return None,
            },
            Kind::UserRegistered(user) | Kind::SessionStarted(user) => &user.user_id,
            Kind::SessionEnded(ended) => &ended.user_id,
            Kind::Activity(_) | Kind::RoomPresence(_) | Kind::DeadLetter(_) => return None,
        };
        Some(user_id.as_str()).filter(|user_id| !user_id.is_empty())
    }

    /// The event's details as the REST API shows them (the room log's and analytics'
    /// `metadata`): snake_case fields, roles and statuses by name.
    pub fn details(&self) -> Value {
        match &self.kind {
            Kind::MemberJoined(change) | Kind::MemberRoleChanged(change) | Kind::MemberRemoved(change) => json!({
                "room_id": change.room_id,
                "room_name": change.room_name,
                "owner_id": change.owner_id,
                "user_id": change.user_id,
                "role": Role::of(change.role).name(),
                "by": change.by,
                "by_username": change.by_username,
            }),
            Kind::RoomCreated(change) | Kind::RoomDeleted(change) => json!({
                "room_id": change.room_id,
                "room_name": change.room_name,
                "owner_id": change.owner_id,
                "is_public": change.is_public,
                "by": change.by,
                "by_username": change.by_username,
                "file_ids": change.file_ids,
            }),
            Kind::FileCreated(change) | Kind::FileRenamed(change) | Kind::FileDeleted(change) => json!({
                "room_id": change.room_id,
                "file_id": change.file_id,
                "filename": change.filename,
                "old_filename": Some(&change.old_filename).filter(|name| !name.is_empty()),
                "language": Some(&change.language).filter(|language| !language.is_empty()),
                "by": change.by,
                "by_username": change.by_username,
            }),
            Kind::VersionCreated(version) => json!({
                "room_id": version.room_id,
                "file_id": version.file_id,
                "version_id": version.version_id,
                "number": version.number,
                "kind": codesync_proto::history::v1::VersionKind::try_from(version.kind)
                    .unwrap_or_default()
                    .name(),
                "by": version.by,
                "by_username": version.by_username,
                "lines_added": version.lines_added,
                "lines_removed": version.lines_removed,
            }),
            Kind::Activity(activity) => json!({
                "file_id": activity.file_id,
                "room_id": activity.room_id,
                "updates": activity.updates,
                "bytes": activity.bytes,
                "editors": activity.editors,
                "joins": activity.joins,
                "connections": activity.connections,
                "window_ms": activity.window_ms,
            }),
            Kind::RoomPresence(presence) => json!({"room_id": presence.room_id, "online": presence.online}),
            Kind::ExecutionFinished(run) => json!({
                "execution_id": run.execution_id,
                "user_id": run.user_id,
                "room_id": run.room_id,
                "file_id": run.file_id,
                "language": run.language,
                "status": codesync_proto::execution::v1::ExecutionStatus::api_name_of(run.status),
                "exit_code": run.exit_code,
                "signal": run.signal,
                "wall_time_ms": run.wall_time_ms,
                "peak_memory_bytes": run.peak_memory_bytes,
            }),
            Kind::AiRequestFinished(answer) => json!({
                "id": answer.interaction_id,
                "user_id": answer.user_id,
                "file_id": answer.file_id,
                "mode": answer.mode,
                "provider": answer.provider,
                "model": answer.model,
                "status": answer.status,
                "time_to_first_token_ms": answer.time_to_first_token_ms,
                "latency_ms": answer.latency_ms,
                "input_tokens": answer.input_tokens,
                "output_tokens": answer.output_tokens,
                "created_at_ms": answer.created_at_ms,
            }),
            Kind::SystemNotice(notice) => {
                json!({"user_id": notice.user_id, "title": notice.title, "message": notice.message})
            }
            Kind::NotificationCreated(created) => {
                let notification = created.notification.clone().unwrap_or_default();
                json!({"id": notification.id, "user_id": notification.user_id, "title": notification.title})
            }
            Kind::UserRegistered(user) | Kind::SessionStarted(user) => {
                json!({"user_id": user.user_id, "username": user.username})
            }
            // The session id is a credential's family: not for the API.
            Kind::SessionEnded(ended) => json!({"user_id": ended.user_id}),
            Kind::DeadLetter(letter) => json!({
                "consumer": letter.consumer,
                "error": letter.error,
                "poisoned": letter.poisoned,
                "attempts": letter.attempts,
                "topic": letter.topic,
                "event_id": letter.event_id,
                "event_kind": letter.event_kind,
                "bytes": letter.message.len(),
            }),
        }
    }
}

/// A member's role changed or the member left the room, read from `room-events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipChange {
    pub room_id: String,
    pub user_id: String,
    /// The new role; `None` when the member was removed (or left).
    pub role: Option<Role>,
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
        let (change, role) = match &event.kind {
            Kind::MemberRemoved(change) => (change, None),
            Kind::MemberRoleChanged(change) => match Role::of(change.role) {
                Role::Unspecified => continue,
                role => (change, Some(role)),
            },
            _ => continue,
        };
        if change.room_id.is_empty() || change.user_id.is_empty() {
            continue;
        }
        return Some(MembershipChange { room_id: change.room_id.clone(), user_id: change.user_id.clone(), role });
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
        tracing::debug!(topic = event.topic(), kind = event.kind_name(), key = %event.key, "event");
        {
            let mut groups = self.groups.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(queues) = groups.get_mut(event.topic()) {
                queues.retain(|queue| queue.send(crate::consumer::Delivery::unacknowledged(event.clone())).is_ok());
            }
        }
        // No subscriber yet is not an error: nobody is interested.
        let _ = self.sender(event.topic()).send(event);
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

    fn member(kind: fn(schema::MemberChange) -> Kind, user_id: &str, role: Role) -> Event {
        let change = schema::MemberChange {
            room_id: "r".into(),
            user_id: user_id.into(),
            role: role.into(),
            ..Default::default()
        };
        Event::new("r", kind(change))
    }

    #[tokio::test]
    async fn membership_changes_are_read_and_everything_else_skipped() {
        let bus = InProcessBus::default();
        let mut room_events = bus.subscribe(ROOM_EVENTS);
        bus.publish(member(Kind::MemberJoined, "u", Role::Editor));
        bus.publish(member(Kind::MemberRoleChanged, "", Role::Viewer));
        bus.publish(member(Kind::MemberRoleChanged, "u", Role::Unspecified));
        bus.publish(member(Kind::MemberRoleChanged, "u", Role::Viewer));
        bus.publish(member(Kind::MemberRemoved, "u", Role::Unspecified));
        let change = next_membership_change(&mut room_events).await.unwrap();
        assert_eq!(change, MembershipChange { room_id: "r".into(), user_id: "u".into(), role: Some(Role::Viewer) });
        let change = next_membership_change(&mut room_events).await.unwrap();
        assert_eq!(change, MembershipChange { room_id: "r".into(), user_id: "u".into(), role: None });
        drop(bus);
        assert_eq!(next_membership_change(&mut room_events).await, None, "the bus is gone");
    }

    fn activity(updates: u64) -> Event {
        Event::new(
            "file-1",
            Kind::Activity(schema::Activity { file_id: "file-1".into(), updates, ..Default::default() }),
        )
    }

    #[tokio::test]
    async fn a_slow_consumer_group_misses_nothing() {
        let bus = InProcessBus::default();
        let mut group = bus.consume("slow", &[ROOM_EVENTS, COLLABORATION_EVENTS], crate::consumer::StartFrom::Latest);
        let published = 3 * IN_PROCESS_BUFFER;
        for index in 0..published {
            let event = if index % 2 == 0 {
                member(Kind::MemberJoined, &index.to_string(), Role::Editor)
            } else {
                activity(index as u64)
            };
            bus.publish(event);
        }
        for index in 0..published {
            let delivery = group.recv().await.unwrap();
            let seen = match &delivery.event.kind {
                Kind::MemberJoined(change) => change.user_id.parse::<usize>().unwrap(),
                Kind::Activity(activity) => activity.updates as usize,
                other => panic!("{other:?}"),
            };
            assert_eq!(seen, index, "in order, none missing");
            delivery.acknowledge();
        }
    }

    #[tokio::test]
    async fn subscribers_get_their_topic_only() {
        let bus = InProcessBus::shared();
        let mut collaboration = bus.subscribe(COLLABORATION_EVENTS);
        let mut rooms = bus.subscribe(ROOM_EVENTS);
        bus.publish(activity(3));
        let event = collaboration.recv().await.unwrap();
        assert_eq!(event.kind_name(), "activity");
        assert_eq!(event.details()["updates"], 3);
        assert!(rooms.try_recv().is_err());
    }

    #[test]
    fn events_cross_the_wire_whole_and_strangers_are_refused() {
        let event = member(Kind::MemberRoleChanged, "u", Role::Viewer);
        assert_eq!(Event::decode(&event.encode()), Ok(event.clone()));
        assert!(matches!(Event::decode(b"{\"kind\": \"member_joined\"}"), Err(DecodeError::Malformed(_))));
        // An envelope whose kind is one a newer version added (field 1000): known, but not its kind.
        let mut newer =
            schema::Event { id: "e".into(), key: "k".into(), occurred_at_ms: 1, kind: None }.encode_to_vec();
        newer.extend_from_slice(&[0xc2, 0x3e, 0x00]);
        assert_eq!(Event::decode(&newer), Err(DecodeError::UnknownKind));
        assert_eq!(event.details()["role"], "viewer");
        assert_eq!(member(Kind::MemberRemoved, "u", Role::Unspecified).details()["role"], Value::Null);
    }
}
