//! The presence service: who is online in each room and on which file,
//! typing indicators, and the room's persisted chat (the latest 100 messages
//! replayed on join), pushed live to the room's members.
//!
//! Its gRPC contract is `codesync.presence.v1.PresenceService` in `proto/`.
//! The gateway bridges each WebSocket of `/ws/rooms/{room_id}` to one
//! `JoinRoom` stream. Presence is held in this process's memory: a session
//! exists while its stream is open. A member removed from the room (a
//! `member_removed` room event) has their sessions ended at once with
//! PERMISSION_DENIED, which the gateway turns into close code 1008.
#![forbid(unsafe_code)]

mod chat;
mod grpc;
mod replicas;
mod room;
mod shared;
pub mod store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use codesync_common::bus::EventBus;
use codesync_common::events::{Event, Kind, ROOM_EVENTS, schema};
use codesync_common::grpc::{CallContext, GrpcChannel};
use codesync_common::identity::{Caller, TokenService};
use codesync_common::rate_limit::RateLimiter;
use codesync_common::redis::Redis;
use codesync_common::{ErrorCode, ServiceError, ServiceResult};
use codesync_proto::presence::v1::presence_service_server::PresenceServiceServer;
use codesync_proto::rooms::v1 as rooms_pb;
use codesync_proto::rooms::v1::rooms_service_client::RoomsServiceClient;
use tokio::sync::broadcast;
use tonic::Request;

pub use crate::chat::{CHAT_HISTORY_ON_JOIN, MAX_CHAT_CHARS, validate_chat_text};
pub use crate::room::colour_for;
use crate::room::{Publish, RoomPresence, Session};
use crate::shared::SharedPresence;
use crate::store::PresenceStore;

/// What an operator watches of presence on this replica (`/metrics`).
struct Figures {
    rooms: std::sync::Weak<Mutex<HashMap<String, RoomPresence>>>,
    chat_messages: AtomicU64,
    shared: bool,
}

impl codesync_common::metrics::Source for Figures {
    fn readings(&self) -> Vec<codesync_common::metrics::Reading> {
        use codesync_common::metrics::Reading;
        let (rooms, sessions) = match self.rooms.upgrade() {
            Some(rooms) => {
                let rooms = rooms.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let occupied = rooms.values().filter(|room| !room.sessions.is_empty()).count();
                (occupied, rooms.values().map(|room| room.sessions.len()).sum::<usize>())
            }
            None => (0, 0),
        };
        vec![
            Reading::gauge(
                "presence_sessions",
                "Room sessions (a tab in a room) held by this replica",
                sessions as f64,
            ),
            Reading::gauge("presence_rooms", "Rooms with a session on this replica", rooms as f64),
            Reading::counter(
                "presence_chat_messages",
                "Chat messages posted through this replica",
                self.chat_messages.load(Ordering::Relaxed),
            ),
            Reading::gauge(
                "presence_shared",
                "1 when presence and chat are shared with the other replicas through Redis",
                if self.shared { 1.0 } else { 0.0 },
            ),
        ]
    }
}

#[derive(Clone)]
pub struct PresenceGrpcService {
    store: PresenceStore,
    tokens: TokenService,
    rooms: RoomsServiceClient<GrpcChannel>,
    rooms_state: Arc<Mutex<HashMap<String, RoomPresence>>>,
    chat_limiter: Arc<RateLimiter>,
    next_session: Arc<AtomicU64>,
    /// Who is in a room is announced on `collaboration-events` (for analytics).
    events: Arc<dyn EventBus>,
    /// Presence and chat across replicas, with Redis.
    shared: Option<Arc<SharedPresence>>,
    /// Turns true on a graceful stop: every session ends with `service_restarting`.
    stopping: Arc<tokio::sync::watch::Sender<bool>>,
    figures: Arc<Figures>,
}

impl PresenceGrpcService {
    /// With `redis`, any number of replicas show each room as one: see [`shared`].
    pub fn new(
        store: PresenceStore,
        tokens: TokenService,
        rooms_channel: GrpcChannel,
        events: Arc<dyn EventBus>,
        redis: Option<Redis>,
    ) -> Self {
        let rooms_state: Arc<Mutex<HashMap<String, RoomPresence>>> = Arc::default();
        tokio::spawn(end_sessions_of_removed_members(events.subscribe(ROOM_EVENTS), Arc::downgrade(&rooms_state)));
        tokio::spawn(announce_file_changes(events.subscribe(ROOM_EVENTS), Arc::downgrade(&rooms_state)));
        let shared = match redis.clone().map(SharedPresence::start).transpose() {
            Ok(started) => started,
            Err(error) => {
                tracing::error!(%error, "presence cannot use Redis; each replica shows its own sessions only");
                None
            }
        };
        let figures = Arc::new(Figures {
            rooms: Arc::downgrade(&rooms_state),
            chat_messages: AtomicU64::new(0),
            shared: shared.is_some(),
        });
        codesync_common::metrics::register(figures.clone());
        let service = Self {
            figures,
            store,
            tokens,
            rooms: RoomsServiceClient::new(rooms_channel),
            rooms_state,
            // 20 messages per 10 seconds per user: a conversation, not a flood.
            chat_limiter: Arc::new(RateLimiter::shared("chat", 20, Duration::from_secs(10), redis)),
            next_session: Arc::new(AtomicU64::new(1)),
            events,
            shared: shared.as_ref().map(|(shared, _)| shared.clone()),
            stopping: Arc::new(tokio::sync::watch::channel(false).0),
        };
        if let Some((_, incoming)) = shared {
            tokio::spawn(service.clone().receive_from_other_replicas(incoming));
            tokio::spawn(service.clone().refresh_shared_presence());
        }
        service
    }

    /// A graceful stop: every session ends with `service_restarting` (WebSocket close code 1012),
    /// and its client reconnects to a replica that is up.
    pub fn drain(&self) {
        self.stopping.send_replace(true);
    }

    pub fn into_grpc_server(self) -> PresenceServiceServer<Self> {
        PresenceServiceServer::new(self)
    }

    fn rooms_state(&self) -> MutexGuard<'_, HashMap<String, RoomPresence>> {
        // Every critical section is a few map operations that cannot leave it half-done.
        self.rooms_state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The caller, who must be a member of the room.
    async fn member<T>(&self, request: &Request<T>, room_id: &str) -> ServiceResult<Caller> {
        let caller = self.tokens.require_caller(request.metadata())?;
        self.require_member(&CallContext::from_request(request, &self.tokens), room_id).await?;
        Ok(caller)
    }

    async fn require_member(&self, context: &CallContext, room_id: &str) -> ServiceResult<()> {
        let access = codesync_common::access::check_room(&self.rooms, context, room_id).await?;
        if access.role == rooms_pb::Role::Unspecified as i32 {
            return Err(ServiceError::forbidden(ErrorCode::NotAMember, "join the room to see who is here and to chat"));
        }
        Ok(())
    }

    /// Applies a client's change to its session, then tells the room what it needs to know.
    fn change_session(&self, room_id: &str, session_id: u64, change: impl FnOnce(&mut Session) -> Publish) {
        let mut rooms = self.rooms_state();
        let Some(room) = rooms.get_mut(room_id) else { return };
        let Some(session) = room.sessions.get_mut(&session_id) else { return };
        session.last_seen_ms = codesync_common::now_ms();
        match change(session) {
            Publish::Nothing => {}
            Publish::Snapshot => {
                room.publish_snapshot();
                self.share_sessions(room_id, room.views(), Vec::new());
            }
            Publish::Event(event) => {
                room.publish(event.clone());
                self.share_sessions(room_id, room.views(), Vec::new());
                self.share_event(room_id, event);
            }
        }
    }

    fn leave(&self, room_id: &str, session_id: u64) {
        let mut rooms = self.rooms_state();
        let Some(room) = rooms.get_mut(room_id) else { return };
        room.sessions.remove(&session_id);
        self.announce_presence(room_id, room);
        self.share_sessions(room_id, Vec::new(), vec![session_id]);
        if room.sessions.is_empty() {
            rooms.remove(room_id);
            if let Some(shared) = self.shared.clone() {
                let room_id = room_id.to_string();
                tokio::spawn(async move { shared.stop_listening(&room_id).await });
            }
        } else {
            room.publish_snapshot();
        }
    }

    /// How many people are in the room now (here and on the other replicas), on
    /// `collaboration-events`.
    fn announce_presence(&self, room_id: &str, room: &RoomPresence) {
        let presence = schema::RoomPresence { room_id: room_id.to_string(), online: room.snapshot().len() as u64 };
        self.events.publish(Event::new(room_id, Kind::RoomPresence(presence)));
    }
}

/// Tells each room's sessions here that its files changed, whichever replica of the rooms service
/// changed them: every presence replica hears every `room-events` event.
async fn announce_file_changes(
    mut room_events: broadcast::Receiver<codesync_common::events::Event>,
    rooms_state: std::sync::Weak<Mutex<HashMap<String, RoomPresence>>>,
) {
    use codesync_proto::presence::v1 as pb;
    use pb::room_server_event::Event as Server;
    loop {
        let event = match room_events.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "file changes were missed; every room lists its files again");
                let Some(rooms_state) = rooms_state.upgrade() else { return };
                let rooms = rooms_state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                for room in rooms.values() {
                    room.publish(Server::FileChanged(pb::FileChanged {
                        change: "resync".into(),
                        ..Default::default()
                    }));
                }
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let (change, what) = match &event.kind {
            Kind::FileCreated(change) => (change, "created"),
            Kind::FileRenamed(change) => (change, "renamed"),
            Kind::FileDeleted(change) => (change, "deleted"),
            _ => continue,
        };
        let Some(rooms_state) = rooms_state.upgrade() else { return };
        let rooms = rooms_state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(room) = rooms.get(&change.room_id) {
            room.publish(Server::FileChanged(pb::FileChanged {
                change: what.into(),
                file_id: change.file_id.clone(),
                filename: change.filename.clone(),
                old_filename: change.old_filename.clone(),
                by_user_id: change.by.clone(),
            }));
        }
    }
}

/// Ends the sessions of members removed from their room (or who left it from another tab).
async fn end_sessions_of_removed_members(
    mut room_events: broadcast::Receiver<codesync_common::events::Event>,
    rooms_state: std::sync::Weak<Mutex<HashMap<String, RoomPresence>>>,
) {
    while let Some(change) = codesync_common::events::next_membership_change(&mut room_events).await {
        if change.role.is_some() {
            continue;
        }
        let Some(rooms_state) = rooms_state.upgrade() else { return };
        let rooms = rooms_state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(room) = rooms.get(&change.room_id) else { continue };
        for session in room.sessions.values().filter(|session| session.user_id == change.user_id) {
            session.removed.notify_one();
        }
    }
}
