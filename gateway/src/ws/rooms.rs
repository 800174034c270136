//! `/ws/rooms/{room_id}`: JSON messages for presence, typing and chat,
//! bridged to the presence service's `JoinRoom` stream.
//!
//! From the client: `{"type":"focus","file_id":"…"|null}`, `{"type":"typing","typing":true}`,
//! `{"type":"chat","text":"…"}`, `{"type":"ping"}`. From the server: `history`, `presence`,
//! `chat`, `typing`, `file_changed`, `error` and `pong`; docs/protocol.md has the fields.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use codesync_common::ErrorCode;
use codesync_proto::presence::v1 as pb;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::bridge::{Codec, FromClient, ToClient, bridge};
use super::socket::{CloseFrame, Message, WebSocketUpgrade};
use super::{SocketLimits, SocketParams, socket_caller};
use crate::GatewayState;
use crate::error::ApiError;
use crate::extract::{ApiPath, ClientAddress};
use crate::routes::timestamp;

/// Room messages are small JSON; a chat message is at most 2000 characters.
const MAX_MESSAGE_BYTES: usize = 16 * 1024;
/// Room events queued toward one socket: a chat history of 100 messages fits many times.
const MAX_QUEUED_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientMessage {
    Focus { file_id: Option<String> },
    Typing { typing: bool },
    Chat { text: String },
    Ping,
}

pub async fn room_socket(
    State(state): State<GatewayState>,
    ClientAddress(client_ip): ClientAddress,
    ApiPath(room_id): ApiPath<String>,
    Query(params): Query<SocketParams>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
    place: super::Place,
) -> Result<Response, ApiError> {
    let (session, context) = socket_caller(&state, &params, &headers, client_ip)?;
    let session_end = super::SessionEnd::of(&session, &state.tokens);
    let slot = state.streams.take(&session.caller.user_id)?;
    let (requests, request_stream) = mpsc::channel(64);
    let open = pb::RoomClientEvent { event: Some(pb::room_client_event::Event::Open(pb::OpenRoom { room_id })) };
    let _ = requests.try_send(open);
    let responses = state.clients.presence().join_room(context.request(ReceiverStream::new(request_stream))).await?;
    let responses = responses.into_inner();
    let stopping = state.stopping.clone();
    let budgets = super::SocketBudgets::of(&state, &session.caller.user_id);
    let limits = SocketLimits {
        max_message_bytes: MAX_MESSAGE_BYTES,
        max_queued_bytes: MAX_QUEUED_BYTES,
        idle_timeout: state.ws_idle_timeout,
    };
    Ok(upgrade.max_message_size(MAX_MESSAGE_BYTES).on_upgrade(move |socket| async move {
        place.hold();
        bridge(socket, RoomMessages, requests, responses, limits, super::Ends { stopping, session_end }, budgets).await;
        drop((slot, place));
    }))
}

/// Room messages (JSON text) to and from the presence service.
struct RoomMessages;

fn text(value: Value) -> Message {
    Message::Text(value.to_string())
}

impl Codec for RoomMessages {
    type Request = pb::RoomClientEvent;
    type Response = pb::RoomServerEvent;

    fn client_message(&mut self, message: Message) -> FromClient<pb::RoomClientEvent> {
        let Message::Text(message) = message else {
            return FromClient::Close(CloseFrame { code: 1003, reason: "room messages are JSON text frames".into() });
        };
        match serde_json::from_str::<ClientMessage>(&message) {
            Ok(ClientMessage::Ping) => FromClient::Reply(text(json!({"type": "pong"}))),
            Ok(message) => FromClient::Requests(vec![pb::RoomClientEvent { event: Some(client_event(message)) }]),
            // A bad message is answered and dropped; the session stays.
            Err(error) => FromClient::Reply(text(json!({
                "type": "error", "code": ErrorCode::MalformedMessage, "message": format!("not a room message: {error}"),
            }))),
        }
    }

    fn service_response(&mut self, event: pb::RoomServerEvent) -> ToClient {
        match event.event.map(server_event_json) {
            Some(json) => ToClient::Send(text(json)),
            None => ToClient::Nothing,
        }
    }
}

fn client_event(message: ClientMessage) -> pb::room_client_event::Event {
    use pb::room_client_event::Event;
    match message {
        ClientMessage::Focus { file_id } => Event::FocusFileId(file_id.unwrap_or_default()),
        ClientMessage::Typing { typing } => Event::Typing(typing),
        ClientMessage::Chat { text } => Event::ChatText(text),
        ClientMessage::Ping => Event::Heartbeat(true),
    }
}

fn chat_json(message: pb::ChatMessage) -> Value {
    json!({
        "id": message.id,
        "room_id": message.room_id,
        "user_id": message.user_id,
        "username": message.username,
        "text": message.text,
        "sent_at": timestamp(message.sent_at_ms),
    })
}

fn server_event_json(event: pb::room_server_event::Event) -> Value {
    use pb::room_server_event::Event;
    let none_if_empty = |text: String| if text.is_empty() { Value::Null } else { Value::String(text) };
    match event {
        Event::History(history) => {
            json!({"type": "history", "messages": history.messages.into_iter().map(chat_json).collect::<Vec<_>>()})
        }
        Event::Presence(snapshot) => json!({
            "type": "presence",
            "users": snapshot.users.into_iter().map(|user| json!({
                "user_id": user.user_id,
                "username": user.username,
                "color": user.color,
                "file_id": none_if_empty(user.file_id),
                "typing": user.typing,
                "last_seen": timestamp(user.last_seen_ms),
            })).collect::<Vec<_>>(),
        }),
        Event::Chat(message) => json!({"type": "chat", "message": chat_json(message)}),
        Event::Typing(typing) => json!({
            "type": "typing",
            "user_id": typing.user_id,
            "username": typing.username,
            "file_id": none_if_empty(typing.file_id),
            "typing": typing.typing,
        }),
        Event::Error(error) => json!({
            "type": "error",
            "code": ErrorCode::from_wire(&error.code, ErrorCode::InternalError),
            "message": error.message,
        }),
        Event::FileChanged(changed) => json!({
            "type": "file_changed",
            "change": changed.change,
            "file_id": none_if_empty(changed.file_id),
            "filename": none_if_empty(changed.filename),
            "old_filename": none_if_empty(changed.old_filename),
            "by": none_if_empty(changed.by_user_id),
        }),
    }
}
