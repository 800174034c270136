//! The event bus: the interface every service publishes and consumes events through
//! (`crate::events`). The embedded default delivers within this process; the Kafka backend
//! (`crate::kafka`) sits behind the same interface for the distributed topology, and the
//! database outbox (`crate::outbox`) carries what a store write announces.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::events::{DURABLE_WAIT, Delivery, Dropped, EVENT_QUEUE, Event, StartFrom, queue_full};

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
    fn consume(&self, group: &str, topics: &[&str], start: StartFrom) -> tokio::sync::mpsc::Receiver<Delivery>;
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

/// Events per topic held for slow in-process subscribers.
const IN_PROCESS_BUFFER: usize = 4096;

/// The embedded default: delivery to subscribers of this process.
#[derive(Debug)]
pub struct InProcessBus {
    topics: Mutex<HashMap<String, broadcast::Sender<Event>>>,
    /// Each consumer group's queue, by topic, of at most `capacity` events: a group that falls
    /// that far behind makes durable events wait (back-pressure on their producers) and loses
    /// activity and analytics events, counted.
    groups: Mutex<HashMap<String, Vec<tokio::sync::mpsc::Sender<Delivery>>>>,
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

    fn queues(&self, topic: &str) -> Vec<tokio::sync::mpsc::Sender<Delivery>> {
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
                queue.try_send(Delivery::unacknowledged(event.clone()))
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
                let delivery = Delivery::unacknowledged(event.clone());
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
    fn consume(&self, _group: &str, topics: &[&str], _start: StartFrom) -> tokio::sync::mpsc::Receiver<Delivery> {
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

    use codesync_proto::rooms::v1::Role;

    use super::*;
    use crate::events::tests::member;
    use crate::events::{COLLABORATION_EVENTS, Kind, MembershipChange, ROOM_EVENTS, next_membership_change, schema};

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
        let mut group = bus.consume("slow", &[ROOM_EVENTS, COLLABORATION_EVENTS], StartFrom::Latest);
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
        let mut group = bus.consume("stalled", &[ROOM_EVENTS, COLLABORATION_EVENTS], StartFrom::Latest);
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
}
