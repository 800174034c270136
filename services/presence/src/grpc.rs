//! The gRPC adapter: `codesync.presence.v1.PresenceService` on [`PresenceGrpcService`],
//! a `JoinRoom` stream per session and the client events it carries.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use codesync_common::grpc::CallContext;
use codesync_common::identity::Caller;
use codesync_common::{ErrorCode, ServiceError};
use codesync_proto::presence::v1 as pb;
use codesync_proto::presence::v1::presence_service_server::PresenceService;
use tokio::sync::{Notify, broadcast, mpsc};
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

use crate::PresenceGrpcService;
use crate::chat::CHAT_HISTORY_ON_JOIN;
use crate::room::{Publish, RoomPresence, Session, TYPING_TIMEOUT, typing_event};

/// Events queued for one session before the room's channel waits for it.
const SESSION_OUTBOX: usize = 256;

fn error_event(error: &ServiceError) -> pb::RoomServerEvent {
    pb::RoomServerEvent {
        event: Some(pb::room_server_event::Event::Error(pb::RoomError {
            code: error.code().as_str().to_string(),
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
