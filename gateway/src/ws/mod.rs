//! The WebSockets: `/ws/files/{file_id}` (y-websocket, bridged to the
//! documents service's `Collaborate` stream) and `/ws/rooms/{room_id}`.
//!
//! Both check the access token (`?token=` or an `Authorization` header) and
//! open the service stream before upgrading, so a refusal is an ordinary HTTP
//! error in the REST shape, not a socket that opens and closes.

mod bridge;
pub mod files;
pub mod rooms;
pub mod socket;

use axum::http::HeaderMap;
use axum::http::StatusCode;
use codesync_common::ErrorCode;
use codesync_common::grpc::CallContext;
use codesync_common::identity::{Session, bearer_token};
use codesync_common::queue::{self, BoundedSender, SendProblem, Weighed};
use serde::Deserialize;

use self::socket::{CloseFrame, FrameError, Incoming, Message, WebSocket};
use crate::GatewayState;
use crate::error::ApiError;

#[derive(Debug, Deserialize)]
pub struct SocketParams {
    /// The access token; browsers cannot set headers on a WebSocket.
    pub token: Option<String>,
    /// `/ws/files` only: ask for CodeSync's acknowledgement messages.
    #[serde(default)]
    pub ack: Option<String>,
}

/// The caller of a WebSocket, from `?token=` or the `Authorization` header.
pub fn socket_caller(
    state: &GatewayState,
    params: &SocketParams,
    headers: &HeaderMap,
    client_ip: Option<std::net::IpAddr>,
) -> Result<(Session, CallContext), ApiError> {
    let header_token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_token)
        .map(str::to_string);
    let Some(token) = params.token.clone().filter(|token| !token.is_empty()).or(header_token) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::AuthenticationRequired,
            "connect with ?token=<access token>",
        ));
    };
    let session = state.tokens.verify_session(&token)?;
    let context = CallContext { authorization: Some(format!("Bearer {token}")), client_ip, ..CallContext::default() };
    Ok((session, context))
}

/// When a stream opened under a sign-in must end: its access token expired (the client
/// reconnects with the fresh one it refreshed meanwhile), or the sign-in ended (signed out, or a
/// stolen refresh token was reused).
pub struct SessionEnd {
    expires_at: tokio::time::Instant,
    session_id: String,
    ended: tokio::sync::broadcast::Receiver<String>,
}

impl SessionEnd {
    pub fn of(session: &Session, tokens: &codesync_common::identity::TokenService) -> Self {
        let left = u64::try_from(session.expires_at_ms - codesync_common::now_ms()).unwrap_or(0);
        Self {
            expires_at: tokio::time::Instant::now() + std::time::Duration::from_millis(left),
            session_id: session.session_id.clone(),
            ended: tokens.ended_sessions(),
        }
    }

    /// Completes when the session ends.
    pub async fn wait(&mut self) {
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(self.expires_at) => return,
                ended = self.ended.recv() => match ended {
                    Ok(session_id) if session_id == self.session_id => return,
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        tokio::time::sleep_until(self.expires_at).await;
                        return;
                    }
                },
            }
        }
    }
}

/// The close frame of a socket whose session ended.
pub fn session_end_frame() -> CloseFrame {
    CloseFrame { code: 4401, reason: "the session ended; reconnect with a fresh token".into() }
}

/// Completes once the gateway is stopping.
pub async fn stopped(stopping: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

/// The close frame that tells the client why the server ended its socket.
pub fn close_frame_for(status: &tonic::Status) -> CloseFrame {
    if codesync_common::ErrorCode::of_status(status) == codesync_common::ErrorCode::ServiceRestarting {
        // Service restart: the client reconnects at once, and reaches a replica that is up.
        return CloseFrame { code: 1012, reason: status.message().to_string() };
    }
    let code = match status.code() {
        // Private-use code: the file was deleted while open.
        tonic::Code::NotFound => 4404,
        tonic::Code::OutOfRange => 1009,
        tonic::Code::InvalidArgument | tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => 1008,
        tonic::Code::Unavailable | tonic::Code::ResourceExhausted => 1013,
        _ => 1011,
    };
    // The writer fits the reason into a close frame.
    CloseFrame { code, reason: status.message().to_string() }
}

/// How the socket closes when the service's stream ends: normally, or with its error.
pub fn stream_end_frame(error: Option<&tonic::Status>) -> CloseFrame {
    error.map_or(CloseFrame { code: 1000, reason: "".into() }, close_frame_for)
}

/// The connection a socket came on: held (never shed at the process's connection ceiling) for
/// as long as the socket is open, and counted in the budget until then.
pub struct Place(pub Option<std::sync::Arc<codesync_common::connections::Connection>>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Place {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(crate::server::place_of(parts)))
    }
}

impl Place {
    /// The socket is open: its connection is not to be shed.
    pub fn hold(&self) {
        if let Some(place) = &self.0 {
            place.hold();
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct SocketLimits {
    pub max_message_bytes: usize,
    pub max_queued_bytes: usize,
    /// Silence after which a connection is dropped (see [`Liveness`]).
    pub idle_timeout: std::time::Duration,
}

/// Notices a client that went silent without closing (a laptop put to sleep, a network path
/// that died): such a connection would otherwise stay open for good, keeping its document
/// loaded and its user "online" in the room. After half the idle timeout without a frame the
/// server pings; without any frame by the full timeout, it drops the connection. Browsers and
/// WebSocket libraries answer pings by themselves, and stock y-websocket clients also renew
/// their awareness every 15 seconds.
pub struct Liveness {
    idle_timeout: std::time::Duration,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
    pinged: bool,
}

/// What to do when [`Liveness::wait`] fires.
pub enum Silence {
    /// Ping the client and wait the other half.
    Ping,
    /// Still nothing: drop the connection.
    GiveUp,
}

impl Silence {
    /// Pings the client (true), or says the connection should be dropped (false).
    pub fn ping_or_give_up(self, out: &SocketOut) -> bool {
        match self {
            Self::Ping => out.send(Message::Ping(bytes::Bytes::new())),
            Self::GiveUp => {
                tracing::info!("dropping a WebSocket whose client went silent");
                false
            }
        }
    }
}

impl Liveness {
    pub fn new(idle_timeout: std::time::Duration) -> Self {
        Self { idle_timeout, deadline: Box::pin(tokio::time::sleep(idle_timeout / 2)), pinged: false }
    }

    /// Any frame from the client (data, ping, pong, close) proves it is there.
    pub fn heard(&mut self) {
        self.pinged = false;
        self.deadline.as_mut().reset(tokio::time::Instant::now() + self.idle_timeout / 2);
    }

    /// Passes on what the socket yielded, noting that the client was heard if it yielded anything.
    pub fn heard_from<T>(&mut self, incoming: Option<T>) -> Option<T> {
        if incoming.is_some() {
            self.heard();
        }
        incoming
    }

    /// Completes when the client has been silent for too long.
    pub async fn wait(&mut self) -> Silence {
        self.deadline.as_mut().await;
        if self.pinged {
            return Silence::GiveUp;
        }
        self.pinged = true;
        self.deadline.as_mut().reset(tokio::time::Instant::now() + self.idle_timeout / 2);
        Silence::Ping
    }
}

/// What a bridge does with the next thing its client sent.
pub enum Step {
    /// A text or binary message, for the bridge to handle.
    Data(Message),
    /// Handled here (a ping answered, a pong); read on.
    Skip,
    /// Close the socket with this frame (none when the connection itself failed).
    Close(Option<CloseFrame>),
    /// The connection is gone.
    End,
}

/// Handles what every socket handles alike: pings, pongs, close frames,
/// refused frames and the end of the connection.
pub fn next_step(out: &SocketOut, incoming: Option<Result<Message, FrameError>>) -> Step {
    match incoming {
        Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => Step::Data(message),
        Some(Ok(Message::Ping(payload))) => {
            if out.send(Message::Pong(payload)) {
                Step::Skip
            } else {
                Step::End
            }
        }
        Some(Ok(Message::Pong(_))) => Step::Skip,
        Some(Ok(Message::Close(frame))) => Step::Close(Some(close_reply(frame))),
        Some(Err(error)) => Step::Close(error.close_frame()),
        None => Step::End,
    }
}

/// The answer to a client's close frame: its own code echoed, as RFC 6455 asks.
pub fn close_reply(frame: Option<CloseFrame>) -> CloseFrame {
    let code = match frame.map(|frame| frame.code) {
        None => 1000,
        // Codes a peer may send (RFC 6455 section 7.4): the defined ones and the registered ranges.
        Some(code @ (1000..=1003 | 1007..=1014 | 3000..=4999)) => code,
        Some(_) => 1002,
    };
    CloseFrame { code, reason: String::new() }
}

/// Messages queued toward one socket, beside the byte bound.
const SOCKET_QUEUE_MESSAGES: usize = 4096;

/// A message on its way to a socket, weighed by its payload.
struct Outgoing(Message);

impl Outgoing {
    fn weight_of(message: &Message) -> usize {
        match message {
            Message::Binary(bytes) | Message::Ping(bytes) | Message::Pong(bytes) => bytes.len(),
            Message::Text(text) => text.len(),
            Message::Close(_) => 0,
        }
    }
}

impl Weighed for Outgoing {
    fn weight(&self) -> usize {
        Self::weight_of(&self.0)
    }
}

/// The sending half of a socket, written by its own task from a bounded
/// queue: the bridge keeps reading its service stream however slowly the
/// client reads, so a slow client never leaves unread data on the gRPC
/// connection that every other socket shares. A client whose queue fills
/// up is cut off.
pub struct SocketOut {
    queue: BoundedSender<Outgoing>,
    writer: tokio::task::JoinHandle<()>,
}

/// What a socket's outgoing queue draws on: the process's outbound budget, in the share of the
/// socket's user.
pub type OutboundShare =
    Option<(std::sync::Arc<codesync_common::budget::InflightBudget>, codesync_common::budget::Holder)>;

/// What ends a socket besides its client and its service: the gateway's stop, the session's end.
pub struct Ends {
    pub stopping: tokio::sync::watch::Receiver<bool>,
    pub session_end: SessionEnd,
}

/// What a socket draws on: the process's in-flight budget for the client's messages on their
/// way to the service (past the user's share the socket is read no further until they fit), and
/// the outbound budget for what waits for the client.
pub struct SocketBudgets {
    pub inbound: OutboundShare,
    pub outbound: OutboundShare,
}

impl SocketBudgets {
    /// `user_id`'s shares of the gateway's budgets.
    pub fn of(state: &crate::GatewayState, user_id: &str) -> Self {
        let holder = codesync_common::budget::Holder::User(user_id.to_string());
        Self {
            inbound: Some((state.inflight.clone(), holder.clone())),
            outbound: Some((state.outbound.clone(), holder)),
        }
    }
}

/// A message's payload in bytes.
pub fn message_bytes(message: &Message) -> usize {
    Outgoing::weight_of(message)
}

pub fn split(socket: WebSocket, max_queued_bytes: usize, share: OutboundShare) -> (SocketOut, Incoming) {
    let (stream, mut sink) = socket.split();
    let (queue, mut queued) = queue::bounded_in::<Outgoing>(SOCKET_QUEUE_MESSAGES, max_queued_bytes, share);
    let writer = tokio::spawn(async move {
        while let Some(Outgoing(message)) = queued.recv().await {
            let is_close = matches!(message, Message::Close(_));
            if sink.send(message).await.is_err() || is_close {
                return;
            }
        }
    });
    (SocketOut { queue, writer }, stream)
}

impl SocketOut {
    /// Queues a message; false when the socket is gone, or too slow and now cut off.
    pub fn send(&self, message: Message) -> bool {
        match self.queue.try_send(Outgoing(message)) {
            Ok(()) => true,
            Err(SendProblem::Full) => {
                tracing::info!("closing a WebSocket whose client reads too slowly");
                self.writer.abort();
                false
            }
            Err(SendProblem::Closed) => false,
        }
    }

    /// Sends what is queued, then the close frame; a client too slow for that is
    /// cut off. Without a frame (the connection itself failed) nothing more is sent.
    pub async fn close(self, frame: Option<CloseFrame>) {
        let Some(frame) = frame else {
            self.writer.abort();
            return;
        };
        if !self.send(Message::Close(Some(frame))) {
            return;
        }
        let writer = self.writer;
        let abort = writer.abort_handle();
        if tokio::time::timeout(std::time::Duration::from_secs(5), writer).await.is_err() {
            abort.abort();
        }
    }
}
