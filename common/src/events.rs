//! The events of SPEC "Events" (their schema is `proto/codesync/events/v1`): what an event is,
//! how it crosses the wire, and how a consumer group receives one. The bus they travel on is
//! `crate::bus`; this module needs none of it (nor the outbox, nor the consumers), so that those
//! can all depend on it.

use std::sync::Mutex;

use prost::Message as _;
use serde_json::{Value, json};
use tokio::sync::{broadcast, oneshot};

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

/// How long a durable event waits for room in a full queue before its producer is told.
pub const DURABLE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Events waiting in one queue (the outbox's writer, each consumer group of the in-process bus)
/// by default: `CODESYNC_EVENT_QUEUE`.
pub const EVENT_QUEUE: usize = 10_000;

/// The refusal of a durable event whose queue stayed full.
pub fn queue_full(topic: &str) -> crate::ServiceError {
    crate::ServiceError::Unavailable {
        message: format!("events of {topic} cannot be queued now (a consumer or the database is behind); try again"),
    }
}

/// Events dropped (activity and analytics only) or lost (durable ones published without
/// waiting: a bug) by topic, for `/metrics`.
#[derive(Debug, Default)]
pub struct Dropped {
    by_topic: Mutex<std::collections::BTreeMap<(&'static str, &'static str), u64>>,
}

impl Dropped {
    /// Counts `event`, dropped from a full queue.
    pub fn count(&self, event: &Event) {
        let how = if event.kind.may_be_dropped() { "dropped" } else { "lost" };
        if how == "lost" {
            tracing::error!(
                topic = event.topic(),
                kind = event.kind_name(),
                "a durable event was published without waiting into a full queue and is lost"
            );
        }
        let mut by_topic = self.by_topic.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *by_topic.entry((event.kind.topic(), how)).or_insert(0) += 1;
    }
}

impl crate::metrics::Source for Dropped {
    fn readings(&self) -> Vec<crate::metrics::Reading> {
        let by_topic = self.by_topic.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        by_topic
            .iter()
            .map(|((topic, how), count)| {
                crate::metrics::Reading::counter(
                    "events_dropped",
                    "Events dropped from a full queue (activity and analytics: `dropped`; anything else would be `lost`)",
                    *count,
                )
                .with_label("topic", *topic)
                .with_label("how", *how)
            })
            .collect()
    }
}

/// Where a new consumer group starts reading (an existing one goes on from its position).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    /// Everything the brokers still keep: a service that aggregates (analytics, the room log)
    /// takes in what happened before it was deployed.
    Earliest,
    /// What is published from now on: a service that acts on events (notifications) does not
    /// act again on old ones when it is first deployed.
    Latest,
}

/// One event for a group, to acknowledge once handled (or dead-lettered).
#[derive(Debug)]
pub struct Delivery {
    pub event: Event,
    /// The message's bytes as they came from the brokers, for a dead letter to keep whole
    /// (decoding drops fields this version does not know).
    pub(crate) received: Option<Vec<u8>>,
    handled: Option<oneshot::Sender<()>>,
}

impl Delivery {
    /// A delivery that needs no acknowledgement (the in-process bus keeps no position).
    pub fn unacknowledged(event: Event) -> Self {
        Self { event, received: None, handled: None }
    }

    /// A delivery of the message `received`, whose position is committed when `handled` fires.
    pub fn acknowledged_by(event: Event, received: Vec<u8>, handled: oneshot::Sender<()>) -> Self {
        Self { event, received: Some(received), handled: Some(handled) }
    }

    pub fn acknowledge(self) {
        if let Some(handled) = self.handled {
            let _ = handled.send(());
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A membership change of room `r`, for the tests of this crate.
    pub(crate) fn member(kind: fn(schema::MemberChange) -> Kind, user_id: &str, role: Role) -> Event {
        let change = schema::MemberChange {
            room_id: "r".into(),
            user_id: user_id.into(),
            role: role.into(),
            ..Default::default()
        };
        Event::new("r", kind(change))
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
