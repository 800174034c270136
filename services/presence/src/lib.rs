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

mod shared;
pub mod store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use codesync_common::events::{Event, EventBus, Kind, ROOM_EVENTS, schema};
use codesync_common::grpc::CallContext;
use codesync_common::grpc::GrpcChannel;
use codesync_common::identity::{Caller, TokenService};
use codesync_common::rate_limit::{RateLimiter, retry_after_secs};
use codesync_common::redis::Redis;
use codesync_common::{ErrorCode, ServiceError, ServiceResult};
use codesync_proto::presence::v1 as pb;
use codesync_proto::presence::v1::presence_service_server::{PresenceService, PresenceServiceServer};
use codesync_proto::rooms::v1 as rooms_pb;
use codesync_proto::rooms::v1::rooms_service_client::RoomsServiceClient;
use tokio::sync::{Notify, broadcast, mpsc};
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

use crate::shared::{Incoming, SessionView, SharedPresence};
use crate::store::PresenceStore;

/// Chat messages replayed when someone joins.
pub const CHAT_HISTORY_ON_JOIN: u32 = 100;
/// The longest chat message, in characters.
pub const MAX_CHAT_CHARS: usize = codesync_common::limits::CHAT_MESSAGE_MAX_CHARS;
/// A typing indicator that is not renewed goes out after this long.
const TYPING_TIMEOUT: Duration = Duration::from_secs(6);
/// Events queued for one room before slow sessions start missing them.
const ROOM_EVENT_BUFFER: usize = 256;
const SESSION_OUTBOX: usize = 256;
/// Colours for users without one, assigned by user id so everyone sees the same.
const PALETTE: [&str; 12] = [
    "#e06c75", "#61afef", "#98c379", "#e5c07b", "#c678dd", "#56b6c2", "#d19a66", "#be5046", "#7f9cf5", "#f472b6",
    "#34d399", "#fbbf24",
];

pub fn colour_for(user_id: &str) -> &'static str {
    // FNV-1a: stable across processes and versions, unlike the std hasher.
    let hash = user_id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3));
    PALETTE[(hash % PALETTE.len() as u64) as usize]
}

struct Session {
    user_id: String,
    username: String,
    file_id: String,
    typing_until: Option<Instant>,
    last_seen_ms: i64,
    /// Notified when the user is removed from the room: the session ends.
    removed: Arc<Notify>,
}

/// What a change to one session means for the rest of the room.
enum Publish {
    Nothing,
    Snapshot,
    Event(pb::room_server_event::Event),
}

struct RoomPresence {
    sessions: HashMap<u64, Session>,
    events: broadcast::Sender<pb::RoomServerEvent>,
    /// The room's sessions on the other replicas (with Redis), as last read.
    others: Vec<SessionView>,
}

impl Session {
    fn view(&self) -> SessionView {
        let typing_until_ms = self.typing_until.map_or(0, |until| {
            let left = until.saturating_duration_since(Instant::now());
            codesync_common::now_ms() + i64::try_from(left.as_millis()).unwrap_or(0)
        });
        SessionView {
            user_id: self.user_id.clone(),
            username: self.username.clone(),
            file_id: self.file_id.clone(),
            typing_until_ms,
            last_seen_ms: self.last_seen_ms,
            written_ms: 0,
        }
    }
}

impl RoomPresence {
    fn new() -> Self {
        Self { sessions: HashMap::new(), events: broadcast::channel(ROOM_EVENT_BUFFER).0, others: Vec::new() }
    }

    fn views(&self) -> Vec<(u64, SessionView)> {
        self.sessions.iter().map(|(id, session)| (*id, session.view())).collect()
    }

    /// One entry per user, here and on the other replicas: a user with several tabs shows
    /// once, on the file of the tab used last, typing if any tab is.
    fn snapshot(&self) -> Vec<pb::OnlineUser> {
        let mut users: HashMap<String, pb::OnlineUser> = HashMap::new();
        let now_ms = codesync_common::now_ms();
        let here = self.sessions.values().map(Session::view);
        for session in here.chain(self.others.iter().cloned()) {
            let typing = session.typing_until_ms > now_ms;
            let entry = users.entry(session.user_id.clone()).or_insert_with(|| pb::OnlineUser {
                user_id: session.user_id.clone(),
                username: session.username.clone(),
                color: colour_for(&session.user_id).to_string(),
                file_id: session.file_id.clone(),
                typing,
                last_seen_ms: session.last_seen_ms,
            });
            entry.typing |= typing;
            if session.last_seen_ms > entry.last_seen_ms {
                entry.last_seen_ms = session.last_seen_ms;
                entry.file_id = session.file_id.clone();
            }
        }
        let mut users: Vec<pb::OnlineUser> = users.into_values().collect();
        users.sort_by(|a, b| a.username.cmp(&b.username));
        users
    }

    fn publish(&self, event: pb::room_server_event::Event) {
        // No receivers is fine: nobody is listening.
        let _ = self.events.send(pb::RoomServerEvent { event: Some(event) });
    }

    fn publish_snapshot(&self) {
        self.publish(pb::room_server_event::Event::Presence(pb::PresenceSnapshot { users: self.snapshot() }));
    }
}

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

    /// What the other replicas say: a room to read again, or an event for its sessions here.
    async fn receive_from_other_replicas(self, mut incoming: mpsc::UnboundedReceiver<Incoming>) {
        while let Some(arrived) = incoming.recv().await {
            match arrived {
                Incoming::PresenceChanged { room_id } => self.read_others(&room_id).await,
                Incoming::Event { room_id, event } => {
                    if let Some(room) = self.rooms_state().get(&room_id) {
                        let _ = room.events.send(event);
                    }
                }
            }
        }
    }

    /// Reads the room's sessions on the other replicas, and shows the room to its sessions here.
    async fn read_others(&self, room_id: &str) {
        let Some(shared) = &self.shared else { return };
        let others = shared.others(room_id).await;
        let mut rooms = self.rooms_state();
        if let Some(room) = rooms.get_mut(room_id) {
            room.others = others;
            room.publish_snapshot();
        }
    }

    /// Rewrites this replica's sessions every few seconds (the others drop sessions that are
    /// not), and reads the others' again, so that a replica that died leaves its rooms.
    async fn refresh_shared_presence(self) {
        let mut ticks = tokio::time::interval(shared::REFRESH_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(shared) = self.shared.clone() else { return };
            let rooms: Vec<(String, Vec<(u64, SessionView)>)> =
                self.rooms_state().iter().map(|(room_id, room)| (room_id.clone(), room.views())).collect();
            for (room_id, views) in rooms {
                shared.write(&room_id, &views, &[]).await;
                let others = shared.others(&room_id).await;
                let mut rooms = self.rooms_state();
                if let Some(room) = rooms.get_mut(&room_id)
                    && room.others != others
                {
                    room.others = others;
                    room.publish_snapshot();
                }
            }
        }
    }

    /// Tells the other replicas what this one's sessions of the room are now.
    fn share_sessions(&self, room_id: &str, views: Vec<(u64, SessionView)>, gone: Vec<u64>) {
        let Some(shared) = self.shared.clone() else { return };
        let room_id = room_id.to_string();
        tokio::spawn(async move { shared.write(&room_id, &views, &gone).await });
    }

    /// Passes an event of the room to its sessions on the other replicas.
    fn share_event(&self, room_id: &str, event: pb::room_server_event::Event) {
        let Some(shared) = self.shared.clone() else { return };
        let room_id = room_id.to_string();
        let event = pb::RoomServerEvent { event: Some(event) };
        tokio::spawn(async move { shared.broadcast(&room_id, &event).await });
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

    async fn post_chat(&self, caller: &Caller, room_id: &str, text: &str) -> ServiceResult<pb::ChatMessage> {
        let text = validate_chat_text(text)?;
        if let Err(wait) = self.chat_limiter.try_acquire(&caller.user_id).await {
            return Err(ServiceError::RateLimited {
                message: "too many chat messages; wait a moment".into(),
                retry_after_secs: retry_after_secs(wait),
            });
        }
        let message = pb::ChatMessage {
            id: codesync_common::new_id(),
            room_id: room_id.to_string(),
            user_id: caller.user_id.clone(),
            username: caller.username.clone(),
            text,
            sent_at_ms: codesync_common::now_ms(),
        };
        self.store.insert_message(&message).await?;
        self.figures.chat_messages.fetch_add(1, Ordering::Relaxed);
        if let Some(room) = self.rooms_state().get(room_id) {
            room.publish(pb::room_server_event::Event::Chat(message.clone()));
        }
        self.share_event(room_id, pb::room_server_event::Event::Chat(message.clone()));
        Ok(message)
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

/// Trimmed text of 1 to [`MAX_CHAT_CHARS`] characters; line breaks and tabs
/// are kept, other control characters and direction overrides refused.
pub fn validate_chat_text(text: &str) -> ServiceResult<String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ServiceError::invalid(ErrorCode::EmptyMessage, "a chat message needs some text"));
    }
    if text.chars().count() > MAX_CHAT_CHARS {
        return Err(ServiceError::too_large(
            ErrorCode::MessageTooLong,
            format!("chat messages are limited to {MAX_CHAT_CHARS} characters"),
        ));
    }
    let forbidden = text.chars().any(|c| {
        (c.is_control() && c != '\n' && c != '\t') || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    });
    if forbidden {
        return Err(ServiceError::invalid(ErrorCode::InvalidMessage, "chat messages may not hold control characters"));
    }
    Ok(text.to_string())
}

fn error_event(error: &ServiceError) -> pb::RoomServerEvent {
    pb::RoomServerEvent {
        event: Some(pb::room_server_event::Event::Error(pb::RoomError {
            code: error.code().to_string(),
            message: error.to_string(),
        })),
    }
}

#[tonic::async_trait]
impl PresenceService for PresenceGrpcService {
    async fn join_room(
        &self,
        request: Request<Streaming<pb::RoomClientEvent>>,
    ) -> Result<Response<BoxStream<pb::RoomServerEvent>>, Status> {
        let caller = self.tokens.require_caller(request.metadata())?;
        let context = CallContext::from_request(&request, &self.tokens);
        let mut inbound = request.into_inner();
        let room_id = match inbound.message().await? {
            Some(pb::RoomClientEvent { event: Some(pb::room_client_event::Event::Open(open)) }) => open.room_id,
            _ => {
                return Err(
                    ServiceError::invalid(ErrorCode::OpenFirst, "the first event must name the room (open)").into()
                );
            }
        };
        self.require_member(&context, &room_id).await?;
        if *self.stopping.borrow() {
            return Err(ServiceError::Restarting { message: "the server is restarting; try again".into() }.into());
        }
        let history = self.store.latest_messages(&room_id, 0, "", CHAT_HISTORY_ON_JOIN).await?;

        let session_id = self.next_session.fetch_add(1, Ordering::Relaxed);
        let removed = Arc::new(Notify::new());
        let (outbox, outgoing) = mpsc::channel::<Result<pb::RoomServerEvent, Status>>(SESSION_OUTBOX);
        // The room's channel first: a change made elsewhere once this session is in is heard.
        if let Some(shared) = &self.shared {
            shared.listen(&room_id).await;
        }
        let mut events = {
            let mut rooms = self.rooms_state();
            let room = rooms.entry(room_id.clone()).or_insert_with(RoomPresence::new);
            room.sessions.insert(
                session_id,
                Session {
                    user_id: caller.user_id.clone(),
                    username: caller.username.clone(),
                    file_id: String::new(),
                    typing_until: None,
                    last_seen_ms: codesync_common::now_ms(),
                    removed: removed.clone(),
                },
            );
            let events = room.events.subscribe();
            let _ = outbox.try_send(Ok(pb::RoomServerEvent {
                event: Some(pb::room_server_event::Event::History(pb::ChatHistory { messages: history })),
            }));
            room.publish_snapshot();
            self.announce_presence(&room_id, room);
            self.share_sessions(&room_id, room.views(), Vec::new());
            events
        };
        if self.shared.is_some() {
            let service = self.clone();
            let room_id = room_id.clone();
            tokio::spawn(async move { service.read_others(&room_id).await });
        }

        let service = self.clone();
        let mut stopping = self.stopping.subscribe();
        tokio::spawn(async move {
            let mut typing_check = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    () = async { let _ = stopping.wait_for(|stop| *stop).await; } => {
                        let restarting = ServiceError::Restarting { message: "the server is restarting; reconnect".into() };
                        let _ = outbox.send(Err(Status::from(restarting))).await;
                        break;
                    }
                    client_event = inbound.message() => {
                        let event = match client_event {
                            Ok(Some(pb::RoomClientEvent { event: Some(event) })) => event,
                            Ok(Some(_)) => continue,
                            Ok(None) | Err(_) => break,
                        };
                        service.on_client_event(&caller, &room_id, session_id, event, &outbox).await;
                    }
                    room_event = events.recv() => match room_event {
                        Ok(event) => {
                            if outbox.send(Ok(event)).await.is_err() {
                                break;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            // A slow session catches up from a fresh snapshot; the chat it
                            // missed is in the history (ListChatMessages).
                            tracing::debug!(room_id, session_id, missed, "a presence session fell behind");
                            let snapshot = service.rooms_state().get(&room_id).map(RoomPresence::snapshot);
                            if let Some(users) = snapshot {
                                let event = pb::room_server_event::Event::Presence(pb::PresenceSnapshot { users });
                                if outbox.send(Ok(pb::RoomServerEvent { event: Some(event) })).await.is_err() {
                                    break;
                                }
                            }
                        }
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                    _ = typing_check.tick() => service.expire_typing(&room_id, session_id),
                    () = removed.notified() => {
                        let _ = outbox.send(Err(Status::permission_denied("you were removed from the room"))).await;
                        break;
                    }
                    () = outbox.closed() => break,
                }
            }
            service.leave(&room_id, session_id);
        });
        let stream = futures::stream::unfold(outgoing, |mut outgoing| async move {
            outgoing.recv().await.map(|item| (item, outgoing))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_online(
        &self,
        request: Request<pb::ListOnlineRequest>,
    ) -> Result<Response<pb::ListOnlineResponse>, Status> {
        let room_id = request.get_ref().room_id.clone();
        self.member(&request, &room_id).await?;
        let others = match &self.shared {
            Some(shared) => shared.others(&room_id).await,
            None => Vec::new(),
        };
        // The sessions here and elsewhere, as one room.
        let mut everyone = RoomPresence::new();
        everyone.others = others;
        if let Some(here) = self.rooms_state().get(&room_id) {
            everyone.others.extend(here.sessions.values().map(Session::view));
        }
        Ok(Response::new(pb::ListOnlineResponse { users: everyone.snapshot() }))
    }

    async fn send_chat_message(
        &self,
        request: Request<pb::SendChatMessageRequest>,
    ) -> Result<Response<pb::ChatMessage>, Status> {
        let room_id = request.get_ref().room_id.clone();
        let caller = self.member(&request, &room_id).await?;
        let message = self.post_chat(&caller, &room_id, &request.get_ref().text).await?;
        Ok(Response::new(message))
    }

    async fn list_chat_messages(
        &self,
        request: Request<pb::ListChatMessagesRequest>,
    ) -> Result<Response<pb::ListChatMessagesResponse>, Status> {
        let room_id = request.get_ref().room_id.clone();
        self.member(&request, &room_id).await?;
        let limit = request.get_ref().limit.clamp(1, 500);
        let request = request.get_ref();
        let messages = self.store.latest_messages(&room_id, request.before_ms, &request.before_id, limit).await?;
        Ok(Response::new(pb::ListChatMessagesResponse { messages }))
    }
}

impl PresenceGrpcService {
    async fn on_client_event(
        &self,
        caller: &Caller,
        room_id: &str,
        session_id: u64,
        event: pb::room_client_event::Event,
        outbox: &mpsc::Sender<Result<pb::RoomServerEvent, Status>>,
    ) {
        use pb::room_client_event::Event;
        match event {
            Event::Open(_) => {
                let error = ServiceError::invalid(ErrorCode::AlreadyOpen, "this session has joined its room already");
                let _ = outbox.send(Ok(error_event(&error))).await;
            }
            Event::FocusFileId(file_id) => {
                let file_id = if codesync_common::is_valid_id(&file_id) { file_id } else { String::new() };
                self.change_session(room_id, session_id, |session| {
                    if session.file_id == file_id {
                        return Publish::Nothing;
                    }
                    session.file_id = file_id;
                    Publish::Snapshot
                });
            }
            Event::Typing(typing) => {
                self.change_session(room_id, session_id, |session| {
                    let was_typing = session.typing_until.is_some_and(|until| until > Instant::now());
                    session.typing_until = typing.then(|| Instant::now() + TYPING_TIMEOUT);
                    if was_typing == typing {
                        return Publish::Nothing;
                    }
                    Publish::Event(typing_event(session, typing))
                });
            }
            Event::ChatText(text) => {
                if let Err(error) = self.post_chat(caller, room_id, &text).await {
                    let _ = outbox.send(Ok(error_event(&error))).await;
                }
            }
            Event::Heartbeat(_) => self.change_session(room_id, session_id, |_| Publish::Nothing),
        }
    }

    fn expire_typing(&self, room_id: &str, session_id: u64) {
        let mut rooms = self.rooms_state();
        let Some(room) = rooms.get_mut(room_id) else { return };
        let Some(session) = room.sessions.get_mut(&session_id) else { return };
        if session.typing_until.is_some_and(|until| until <= Instant::now()) {
            session.typing_until = None;
            let event = typing_event(session, false);
            room.publish(event.clone());
            self.share_sessions(room_id, room.views(), Vec::new());
            self.share_event(room_id, event);
        }
    }
}

fn typing_event(session: &Session, typing: bool) -> pb::room_server_event::Event {
    pb::room_server_event::Event::Typing(pb::TypingEvent {
        user_id: session.user_id.clone(),
        username: session.username.clone(),
        file_id: session.file_id.clone(),
        typing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_text_is_validated() {
        assert_eq!(validate_chat_text("  hi there \n").unwrap(), "hi there");
        assert_eq!(validate_chat_text("line\nline\tcol").unwrap(), "line\nline\tcol");
        assert_eq!(validate_chat_text("   ").unwrap_err().code(), "empty_message");
        assert_eq!(validate_chat_text(&"x".repeat(2001)).unwrap_err().code(), "message_too_long");
        assert!(validate_chat_text(&"é".repeat(2000)).is_ok(), "the limit counts characters, not bytes");
        assert_eq!(validate_chat_text("bell\u{7}").unwrap_err().code(), "invalid_message");
        assert_eq!(validate_chat_text("evil\u{202e}txt").unwrap_err().code(), "invalid_message");
    }

    #[test]
    fn colours_are_stable_per_user() {
        assert_eq!(colour_for("user-1"), colour_for("user-1"));
        assert!(PALETTE.contains(&colour_for("anyone")));
        // The web app computes the same colours (frontend/src/collab/protocol.ts, colourForUser);
        // its unit test asserts these same pairs.
        assert_eq!(colour_for("alice"), "#fbbf24");
        assert_eq!(colour_for("0197c1d2-aaaa-7bbb-8ccc-123456789abc"), "#56b6c2");
    }
}
