//! Presence across replicas, through Redis: each replica keeps its own sessions, writes them into
//! one hash per room (`presence:{room}`, a field per session, refreshed every few seconds), and
//! tells the room's channel (`room:{room}`) when they change; chat and typing go out on the same
//! channel. A replica listens to the channels of the rooms it has sessions in, and shows its
//! sessions the room as the hash has it. A replica that dies stops refreshing its fields, which
//! the others then drop.
//!
//! Redis that cannot be reached degrades presence to each replica's own sessions (and chat to
//! the people on the same replica, the rest reading it from the history when they rejoin);
//! nothing waits for it longer than a command's short deadline.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use codesync_common::redis::{Redis, RedisError};
use codesync_proto::presence::v1 as pb;
use fred::prelude::{EventInterface, HashesInterface, KeysInterface, PubsubInterface};
use prost::Message as _;
use serde::{Deserialize, Serialize};

/// How often a replica rewrites its sessions' fields.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5);
/// A field not rewritten for this long belongs to a replica that is gone.
const STALE_AFTER_MS: i64 = 20_000;

/// One session as the other replicas see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    pub user_id: String,
    pub username: String,
    pub file_id: String,
    /// Typing until then (ms since the epoch); 0 when not typing.
    pub typing_until_ms: i64,
    pub last_seen_ms: i64,
    /// When its replica last wrote it.
    #[serde(default)]
    pub written_ms: i64,
}

/// Writes to Redis (sessions, chat and typing events) one replica has under way at most.
pub const MAX_WRITES_IN_FLIGHT: usize = 256;

/// Writes to Redis this replica skipped because too many were under way.
pub static SKIPPED_WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Rooms waiting to be read again at most: past it a notice is dropped (counted), and the
/// refresh every [`REFRESH_EVERY`] reads the room anyway.
pub const MAX_ROOMS_TO_READ: usize = 10_000;
/// Chat and typing events from the other replicas waiting to be shown at most: past it they are
/// dropped (counted). Typing is gone in seconds anyway, and chat is in the database: a session
/// that rejoins reads it.
pub const MAX_EVENTS_WAITING: usize = 1024;

/// What the other replicas said, waiting for this one: bounded whatever they say. A room to
/// read again is kept once however often it changed.
#[derive(Default)]
pub struct Arrivals {
    rooms: std::sync::Mutex<std::collections::HashSet<String>>,
    events: std::sync::Mutex<std::collections::VecDeque<(String, pb::RoomServerEvent)>>,
    arrived: tokio::sync::Notify,
    dropped: std::sync::atomic::AtomicU64,
}

impl Arrivals {
    /// Someone's session in the room changed: read the room again.
    pub fn room_changed(&self, room_id: String) {
        let mut rooms = self.rooms.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if rooms.len() >= MAX_ROOMS_TO_READ && !rooms.contains(&room_id) {
            self.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        rooms.insert(room_id);
        drop(rooms);
        self.arrived.notify_one();
    }

    /// A chat message or a typing event for the room's sessions here.
    pub fn event(&self, room_id: String, event: pb::RoomServerEvent) {
        let mut events = self.events.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if events.len() >= MAX_EVENTS_WAITING {
            self.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        events.push_back((room_id, event));
        drop(events);
        self.arrived.notify_one();
    }

    /// What arrived since the last call (waiting for something if nothing did): rooms to read
    /// again, events to show.
    pub async fn next(&self) -> (Vec<String>, Vec<(String, pb::RoomServerEvent)>) {
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let rooms: Vec<String> =
                self.rooms.lock().unwrap_or_else(std::sync::PoisonError::into_inner).drain().collect();
            let events: Vec<_> =
                self.events.lock().unwrap_or_else(std::sync::PoisonError::into_inner).drain(..).collect();
            if !rooms.is_empty() || !events.is_empty() {
                return (rooms, events);
            }
            arrived.await;
        }
    }
}

impl codesync_common::metrics::Source for Arrivals {
    fn readings(&self) -> Vec<codesync_common::metrics::Reading> {
        use codesync_common::metrics::Reading;
        let rooms = self.rooms.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len();
        let events = self.events.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len();
        vec![
            Reading::gauge(
                "presence_replica_rooms_waiting",
                "Rooms other replicas changed, waiting to be read again",
                rooms as f64,
            ),
            Reading::gauge(
                "presence_replica_events_waiting",
                "Chat and typing events from other replicas waiting to be shown",
                events as f64,
            ),
            Reading::counter(
                "presence_replica_dropped",
                "Notices from other replicas dropped because too many were waiting, and writes to Redis skipped because too many were under way",
                self.dropped.load(std::sync::atomic::Ordering::Relaxed)
                    + SKIPPED_WRITES.load(std::sync::atomic::Ordering::Relaxed),
            ),
        ]
    }
}

#[derive(Serialize, Deserialize)]
struct Notice {
    origin: String,
    /// `presence`, or `event` with the event's protobuf bytes (base64).
    kind: String,
    #[serde(default)]
    event: String,
}

pub struct SharedPresence {
    /// Writes to Redis under way at once: past [`MAX_WRITES_IN_FLIGHT`] (Redis is slow), a change
    /// is not written (counted in `presence_replica_dropped`); the refresh every
    /// [`REFRESH_EVERY`] writes every session anyway, and typing is gone in seconds.
    writes: Arc<tokio::sync::Semaphore>,
    redis: Redis,
    subscriber: fred::clients::SubscriberClient,
    /// This replica's name in the hash's fields and the channels' notices.
    replica: String,
}

impl SharedPresence {
    /// Starts listening; what the other replicas say arrives in the returned [`Arrivals`].
    pub fn start(redis: Redis) -> Result<(Arc<Self>, Arc<Arrivals>), RedisError> {
        let subscriber = redis.subscriber()?;
        let shared = Arc::new(Self {
            writes: Arc::new(tokio::sync::Semaphore::new(MAX_WRITES_IN_FLIGHT)),
            redis,
            subscriber,
            replica: codesync_common::new_id(),
        });
        let arrivals = Arc::new(Arrivals::default());
        codesync_common::metrics::register(arrivals.clone());
        let incoming = Arc::downgrade(&arrivals);
        let mut messages = shared.subscriber.message_rx();
        let listener = Arc::downgrade(&shared);
        tokio::spawn(async move {
            loop {
                let message = match messages.recv().await {
                    Ok(message) => message,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "presence notices were missed; rooms refresh on the next change");
                        continue;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                let Some(shared) = listener.upgrade() else { return };
                let Some(room_id) = shared.room_of_channel(&message.channel) else { continue };
                let Some(text) = message.value.as_str().map(|text| text.to_string()) else { continue };
                let Ok(notice) = serde_json::from_str::<Notice>(&text) else { continue };
                if notice.origin == shared.replica {
                    continue;
                }
                let Some(incoming) = incoming.upgrade() else { return };
                match notice.kind.as_str() {
                    "presence" => incoming.room_changed(room_id),
                    "event" => {
                        let decoded = base64::engine::general_purpose::STANDARD
                            .decode(&notice.event)
                            .ok()
                            .and_then(|bytes| pb::RoomServerEvent::decode(bytes.as_slice()).ok());
                        let Some(event) = decoded else { continue };
                        incoming.event(room_id, event);
                    }
                    _ => {}
                }
            }
        });
        Ok((shared, arrivals))
    }

    /// A turn to write to Redis, or `None` (counted) when too many writes are under way.
    pub fn write_turn(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let turn = self.writes.clone().try_acquire_owned().ok();
        if turn.is_none() {
            SKIPPED_WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        turn
    }

    fn channel(&self, room_id: &str) -> String {
        self.redis.key(&format!("room:{room_id}"))
    }

    fn room_of_channel(&self, channel: &str) -> Option<String> {
        channel.strip_prefix(&self.redis.key("room:")).map(str::to_string)
    }

    fn hash(&self, room_id: &str) -> String {
        self.redis.key(&format!("presence:{room_id}"))
    }

    fn field(&self, session_id: u64) -> String {
        format!("{}:{session_id}", self.replica)
    }

    /// Listens to the room's channel (the first session of the room in this replica).
    pub async fn listen(&self, room_id: &str) {
        if let Err(error) = self.subscriber.subscribe(self.channel(room_id)).await {
            tracing::warn!(room_id, %error, "cannot listen to the room's presence in Redis; showing this replica's sessions");
        }
    }

    /// Stops listening to the room's channel (its last session here left).
    pub async fn stop_listening(&self, room_id: &str) {
        let _ = self.subscriber.unsubscribe(self.channel(room_id)).await;
    }

    /// Writes this replica's sessions of the room (and removes `gone`), then tells the others.
    pub async fn write(&self, room_id: &str, sessions: &[(u64, SessionView)], gone: &[u64]) {
        if !self.redis.available() {
            return;
        }
        let written = async {
            let hash = self.hash(room_id);
            let now = codesync_common::now_ms();
            if !sessions.is_empty() {
                let fields: Vec<(String, String)> = sessions
                    .iter()
                    .map(|(session_id, view)| {
                        let view = SessionView { written_ms: now, ..view.clone() };
                        (self.field(*session_id), serde_json::to_string(&view).unwrap_or_default())
                    })
                    .collect();
                let () = self.redis.client().hset(&hash, fields).await?;
            }
            if !gone.is_empty() {
                let fields: Vec<String> = gone.iter().map(|session_id| self.field(*session_id)).collect();
                let _: i64 = self.redis.client().hdel(&hash, fields).await?;
            }
            // The hash outlives every session by far; a room nobody is in is forgotten.
            let _: bool = self.redis.client().expire(&hash, 3600, None).await?;
            self.notify(room_id, Notice { origin: self.replica.clone(), kind: "presence".into(), event: String::new() })
                .await
        };
        if let Err(error) = written.await {
            self.redis.failed();
            tracing::warn!(room_id, %error, "cannot share presence through Redis; showing this replica's sessions");
        }
    }

    /// Sends a chat message or a typing event to the room's sessions on the other replicas.
    pub async fn broadcast(&self, room_id: &str, event: &pb::RoomServerEvent) {
        if !self.redis.available() {
            return;
        }
        let encoded = base64::engine::general_purpose::STANDARD.encode(event.encode_to_vec());
        let notice = Notice { origin: self.replica.clone(), kind: "event".into(), event: encoded };
        if let Err(error) = self.notify(room_id, notice).await {
            self.redis.failed();
            tracing::warn!(room_id, %error, "cannot pass a room event to the other replicas");
        }
    }

    async fn notify(&self, room_id: &str, notice: Notice) -> Result<(), fred::error::Error> {
        let text = serde_json::to_string(&notice).unwrap_or_default();
        let _: i64 = self.redis.client().publish(self.channel(room_id), text).await?;
        Ok(())
    }

    /// The room's sessions on the other replicas (stale ones are dropped, and removed).
    pub async fn others(&self, room_id: &str) -> Vec<SessionView> {
        if !self.redis.available() {
            return Vec::new();
        }
        let hash = self.hash(room_id);
        let fields: Result<HashMap<String, String>, _> = self.redis.client().hgetall(&hash).await;
        let fields = match fields {
            Ok(fields) => fields,
            Err(error) => {
                self.redis.failed();
                tracing::warn!(room_id, %error, "cannot read the room's presence from Redis");
                return Vec::new();
            }
        };
        let now = codesync_common::now_ms();
        let mine = format!("{}:", self.replica);
        let mut stale = Vec::new();
        let mut others = Vec::new();
        for (field, value) in fields {
            if field.starts_with(&mine) {
                continue;
            }
            match serde_json::from_str::<SessionView>(&value) {
                Ok(view) if now - view.written_ms <= STALE_AFTER_MS => others.push(view),
                _ => stale.push(field),
            }
        }
        if !stale.is_empty() {
            let _: Result<i64, _> = self.redis.client().hdel(&hash, stale).await;
        }
        others
    }
}

#[cfg(test)]
mod arrivals_tests {
    use super::*;

    fn chat(text: &str) -> pb::RoomServerEvent {
        pb::RoomServerEvent {
            event: Some(pb::room_server_event::Event::Chat(pb::ChatMessage {
                text: text.into(),
                ..Default::default()
            })),
        }
    }

    /// The bounded-memory rule of presence's queue from the other replicas: whatever they say,
    /// it holds at most MAX_ROOMS_TO_READ rooms and MAX_EVENTS_WAITING events, each room once.
    #[tokio::test]
    async fn a_flood_from_other_replicas_is_held_to_its_bounds_and_counted() {
        let arrivals = Arrivals::default();
        for _ in 0..3 {
            for room in 0..(MAX_ROOMS_TO_READ + 5) {
                arrivals.room_changed(format!("room-{room}"));
            }
        }
        for number in 0..(MAX_EVENTS_WAITING + 7) {
            arrivals.event("room-1".into(), chat(&number.to_string()));
        }
        let dropped = arrivals.dropped.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(dropped, 3 * 5 + 7, "what does not fit is counted");
        let (rooms, events) = arrivals.next().await;
        assert_eq!(rooms.len(), MAX_ROOMS_TO_READ, "a room changed three times is read once");
        assert_eq!(events.len(), MAX_EVENTS_WAITING);
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), arrivals.next()).await;
        assert!(waiting.is_err(), "nothing left: the reader waits");
    }
}
