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
    /// Publishes an activity or analytics event ([`Kind::may_be_dropped`]) without waiting: a
    /// queue that is full (its consumer or the database stalled) drops it, counted in
    /// `events_dropped`. Durable events go through [`EventBus::publish_durable`].
    fn publish(&self, event: Event);
    /// Publishes an event that must not be lost (a sign-out, a dead letter, a change made):
    /// a full queue makes the producer wait for room, up to [`DURABLE_WAIT`]; past that the
    /// answer is `service_unavailable`, and the producer refuses the action it was taking (or,
    /// for a change already committed in one process without Kafka, logs the loss).
    fn publish_durable(&self, event: Event) -> futures::future::BoxFuture<'_, Result<(), crate::ServiceError>>;
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

    /// The write committed: the events go out (stored with it, they need only the relay's
    /// attention; otherwise they are published, waiting for room in a full queue).
    pub async fn committed(self) {
        match self.bus.outbox() {
            Some(outbox) if self.stored => outbox.wake(),
            _ => {
                for event in self.events {
                    let (topic, kind) = (event.topic(), event.kind_name());
                    if let Err(error) = self.bus.publish_durable(event).await {
                        tracing::error!(topic, kind, %error, "an event of a change already made could not be queued");
                    }
                }
            }
        }
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

/// Events per topic held for slow in-process subscribers.
const IN_PROCESS_BUFFER: usize = 4096;

/// The embedded default: delivery to subscribers of this process.
#[derive(Debug)]
pub struct InProcessBus {
    topics: Mutex<HashMap<String, broadcast::Sender<Event>>>,
    /// Each consumer group's queue, by topic, of at most `capacity` events: a group that falls
    /// that far behind makes durable events wait (back-pressure on their producers) and loses
    /// activity and analytics events, counted.
    groups: Mutex<HashMap<String, Vec<tokio::sync::mpsc::Sender<crate::consumer::Delivery>>>>,
    capacity: usize,
    dropped: Arc<Dropped>,
}

impl Default for InProcessBus {
    fn default() -> Self {
        Self::with_capacity(EVENT_QUEUE)
    }
}

impl InProcessBus {
    pub fn shared() -> Arc<dyn EventBus> {
        Arc::new(Self::default())
    }

    /// A bus whose consumer groups each queue at most `capacity` events.
    pub fn with_capacity(capacity: usize) -> Self {
        let dropped = Arc::new(Dropped::default());
        crate::metrics::register(dropped.clone());
        Self { topics: Mutex::default(), groups: Mutex::default(), capacity: capacity.max(1), dropped }
    }

    pub(crate) fn sender(&self, topic: &str) -> broadcast::Sender<Event> {
        let mut topics = self.topics.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        topics.entry(topic.to_string()).or_insert_with(|| broadcast::channel(IN_PROCESS_BUFFER).0).clone()
    }

    fn queues(&self, topic: &str) -> Vec<tokio::sync::mpsc::Sender<crate::consumer::Delivery>> {
        let mut groups = self.groups.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        groups.get_mut(topic).map_or_else(Vec::new, |queues| {
            queues.retain(|queue| !queue.is_closed());
            queues.clone()
        })
    }
}

impl EventBus for InProcessBus {
    fn publish(&self, event: Event) {
        tracing::debug!(topic = event.topic(), kind = event.kind_name(), key = %event.key, "event");
        for queue in self.queues(event.topic()) {
            if let Err(tokio::sync::mpsc::error::TrySendError::Full(_)) =
                queue.try_send(crate::consumer::Delivery::unacknowledged(event.clone()))
            {
                self.dropped.count(&event);
            }
        }
        // No subscriber yet is not an error: nobody is interested.
        let _ = self.sender(event.topic()).send(event);
    }

    fn publish_durable(&self, event: Event) -> futures::future::BoxFuture<'_, Result<(), crate::ServiceError>> {
        Box::pin(async move {
            tracing::debug!(topic = event.topic(), kind = event.kind_name(), key = %event.key, "event");
            for queue in self.queues(event.topic()) {
                let delivery = crate::consumer::Delivery::unacknowledged(event.clone());
                match queue.send_timeout(delivery, DURABLE_WAIT).await {
                    Ok(()) | Err(tokio::sync::mpsc::error::SendTimeoutError::Closed(_)) => {}
                    Err(tokio::sync::mpsc::error::SendTimeoutError::Timeout(_)) => {
                        return Err(queue_full(event.topic()));
                    }
                }
            }
            let _ = self.sender(event.topic()).send(event);
            Ok(())
        })
    }

    fn subscribe(&self, topic: &str) -> broadcast::Receiver<Event> {
        self.sender(topic).subscribe()
    }

    /// In process there is nothing from before: every group starts from now.
    fn consume(
        &self,
        _group: &str,
        topics: &[&str],
        _start: crate::consumer::StartFrom,
    ) -> tokio::sync::mpsc::Receiver<crate::consumer::Delivery> {
        let (queue, queued) = tokio::sync::mpsc::channel(self.capacity);
        let mut groups = self.groups.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for topic in topics {
            groups.entry(topic.to_string()).or_default().push(queue.clone());
        }
        queued
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
    async fn a_slow_consumer_group_misses_nothing_within_its_queue() {
        let bus = InProcessBus::default();
        let mut group = bus.consume("slow", &[ROOM_EVENTS, COLLABORATION_EVENTS], crate::consumer::StartFrom::Latest);
        // More than a live subscriber's buffer, less than a group's queue.
        let published = 2 * IN_PROCESS_BUFFER;
        for index in 0..published {
            if index % 2 == 0 {
                bus.publish_durable(member(Kind::MemberJoined, &index.to_string(), Role::Editor)).await.unwrap();
            } else {
                bus.publish(activity(index as u64));
            }
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

    /// The bounded-memory rule of the in-process consumer groups: a group that stops reading
    /// holds at most its queue; past it, activity is dropped (counted) and a durable event's
    /// producer waits, then is told.
    #[tokio::test(start_paused = true)]
    async fn a_full_group_queue_drops_activity_counted_and_makes_durable_events_wait() {
        let bus = Arc::new(InProcessBus::with_capacity(4));
        let mut group =
            bus.consume("stalled", &[ROOM_EVENTS, COLLABORATION_EVENTS], crate::consumer::StartFrom::Latest);
        for updates in 0..6 {
            bus.publish(activity(updates));
        }
        let counted = || crate::metrics::Source::readings(bus.dropped.as_ref());
        assert_eq!(counted()[0].value, 2.0, "two activity events past the queue of four: dropped");
        assert_eq!(
            counted()[0].labels,
            vec![("topic", COLLABORATION_EVENTS.to_string()), ("how", "dropped".to_string())]
        );
        let waiting = {
            let bus = bus.clone();
            tokio::spawn(async move { bus.publish_durable(member(Kind::MemberJoined, "u", Role::Editor)).await })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiting.is_finished(), "a durable event waits for room");
        group.recv().await.unwrap().acknowledge();
        waiting.await.unwrap().expect("queued once there was room");
        let refused = bus.publish_durable(member(Kind::MemberRemoved, "u", Role::Unspecified)).await.unwrap_err();
        assert_eq!(refused.code(), crate::ErrorCode::ServiceUnavailable, "told after DURABLE_WAIT: {refused}");
        let kinds: Vec<&str> =
            std::iter::from_fn(|| group.try_recv().ok()).map(|delivery| delivery.event.kind_name()).collect();
        assert_eq!(kinds, ["activity", "activity", "activity", "member_joined"], "nothing durable was dropped");
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
