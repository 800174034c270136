//! The WebSockets: `/ws/files/{file_id}` (y-websocket, bridged to the
//! documents service's `Collaborate` stream) and `/ws/rooms/{room_id}`.
//!
//! Both check the access token (`?token=` or an `Authorization` header) and
//! open the service stream before upgrading, so a refusal is an ordinary HTTP
//! error in the REST shape, not a socket that opens and closes.

pub mod files;
pub mod rooms;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use codesync_common::grpc::CallContext;
use codesync_common::identity::{Caller, bearer_token};
use codesync_common::queue::{self, BoundedSender, SendProblem, Weighed};
use futures::stream::SplitStream;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;

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
) -> Result<(Caller, CallContext), ApiError> {
    let header_token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_token)
        .map(str::to_string);
    let Some(token) = params.token.clone().filter(|token| !token.is_empty()).or(header_token) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authentication_required",
            "connect with ?token=<access token>",
        ));
    };
    let caller = state.tokens.verify_access_token(&token)?;
    let context = CallContext { authorization: Some(format!("Bearer {token}")), client_ip };
    Ok((caller, context))
}

/// The close frame that tells the client why the server ended its socket.
pub fn close_frame_for(status: &tonic::Status) -> CloseFrame {
    let code = match status.code() {
        tonic::Code::OutOfRange => 1009,
        tonic::Code::InvalidArgument | tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => 1008,
        tonic::Code::Unavailable | tonic::Code::ResourceExhausted => 1013,
        _ => 1011,
    };
    CloseFrame { code, reason: truncated_reason(status.message()).into() }
}

/// How the socket closes when the service's stream ends: normally, or with its error.
pub fn stream_end_frame(error: Option<&tonic::Status>) -> CloseFrame {
    error.map_or(CloseFrame { code: 1000, reason: "".into() }, close_frame_for)
}

#[derive(Debug, Clone, Copy)]
pub struct SocketLimits {
    pub max_message_bytes: usize,
    pub max_queued_bytes: usize,
}

/// The close frame for a frame tungstenite refused: too large, or not valid WebSocket.
pub fn frame_error_close(error: &axum::Error, max_message_bytes: usize) -> CloseFrame {
    let text = error.to_string();
    if text.contains("too long") || text.contains("too big") {
        CloseFrame { code: 1009, reason: format!("messages are limited to {max_message_bytes} bytes").into() }
    } else {
        CloseFrame { code: 1002, reason: "invalid WebSocket frame".into() }
    }
}

/// Close reasons may hold 123 bytes.
fn truncated_reason(message: &str) -> String {
    let mut end = message.len().min(123);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message[..end].to_string()
}

/// Messages queued toward one socket, beside the byte bound.
const SOCKET_QUEUE_MESSAGES: usize = 4096;

/// A message on its way to a socket, weighed by its payload.
struct Outgoing(Message);

impl Weighed for Outgoing {
    fn weight(&self) -> usize {
        match &self.0 {
            Message::Binary(bytes) | Message::Ping(bytes) | Message::Pong(bytes) => bytes.len(),
            Message::Text(text) => text.len(),
            Message::Close(_) => 0,
        }
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

pub fn split(socket: WebSocket, max_queued_bytes: usize) -> (SocketOut, SplitStream<WebSocket>) {
    let (mut sink, stream) = socket.split();
    let (queue, mut queued) = queue::bounded::<Outgoing>(SOCKET_QUEUE_MESSAGES, max_queued_bytes);
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

    /// Sends what is queued, then the close frame; a client too slow for that is cut off.
    pub async fn close(self, frame: CloseFrame) {
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

#[cfg(test)]
mod tests {
    use super::truncated_reason;

    #[test]
    fn close_reasons_fit_and_stay_utf8() {
        let long = "é".repeat(100);
        let reason = truncated_reason(&long);
        assert!(reason.len() <= 123);
        assert!(reason.chars().all(|c| c == 'é'));
    }
}
