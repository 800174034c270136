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
    context: CallContext,
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
    let context = CallContext { authorization: Some(format!("Bearer {token}")), ..context };
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

/// Close reasons may hold 123 bytes.
fn truncated_reason(message: &str) -> String {
    let mut end = message.len().min(123);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message[..end].to_string()
}

pub async fn close(socket: &mut WebSocket, frame: CloseFrame) {
    let _ = socket.send(Message::Close(Some(frame))).await;
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
