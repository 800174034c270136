//! `/ws/files/{file_id}`: the y-websocket protocol, unmodified. Each binary
//! frame is one y-protocols message, passed to the documents service as is.

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use codesync_proto::documents::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{SocketParams, close, socket_caller, stream_end_frame};
use crate::GatewayState;
use crate::error::ApiError;
use crate::extract::{ApiPath, MaybeSignedIn};

/// Frames queued toward the documents service before the socket is read no further.
const INBOUND_QUEUE: usize = 256;

pub async fn file_socket(
    State(state): State<GatewayState>,
    visitor: MaybeSignedIn,
    ApiPath(file_id): ApiPath<String>,
    Query(params): Query<SocketParams>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let (_caller, context) = socket_caller(&state, &params, &headers, visitor.context)?;
    let acknowledge = params.ack.as_deref().is_some_and(|value| matches!(value, "1" | "true" | "yes"));
    let (requests, request_stream) = mpsc::channel(INBOUND_QUEUE);
    let open = pb::CollaborateRequest {
        frame: Some(pb::collaborate_request::Frame::Open(pb::OpenDocument { file_id, acknowledge })),
    };
    // The channel was just made with room to spare: this cannot wait.
    let _ = requests.try_send(open);
    let responses =
        state.clients.documents().collaborate(context.request(ReceiverStream::new(request_stream))).await?.into_inner();
    let max_message_bytes = state.ws_max_message_bytes;
    Ok(upgrade
        .max_message_size(max_message_bytes)
        .max_frame_size(max_message_bytes)
        .on_upgrade(move |socket| bridge(socket, requests, responses, max_message_bytes)))
}

async fn bridge(
    mut socket: WebSocket,
    requests: mpsc::Sender<pb::CollaborateRequest>,
    mut responses: tonic::Streaming<pb::CollaborateResponse>,
    max_message_bytes: usize,
) {
    loop {
        tokio::select! {
            response = responses.message() => match response {
                Ok(Some(response)) => {
                    if socket.send(Message::Binary(response.message)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => return close(&mut socket, stream_end_frame(None)).await,
                Err(status) => return close(&mut socket, stream_end_frame(Some(&status))).await,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Binary(frame))) => {
                    let request = pb::CollaborateRequest { frame: Some(pb::collaborate_request::Frame::Message(frame)) };
                    if requests.send(request).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Text(_))) => {
                    let reason = "y-websocket messages are binary frames";
                    close(&mut socket, CloseFrame { code: 1003, reason: reason.into() }).await;
                    return;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | None => return,
                Some(Err(error)) => {
                    // Oversized and malformed frames end here; tungstenite already refused them.
                    let too_big = error.to_string().contains("too long") || error.to_string().contains("too big");
                    let frame = if too_big {
                        CloseFrame { code: 1009, reason: format!("messages are limited to {max_message_bytes} bytes").into() }
                    } else {
                        CloseFrame { code: 1002, reason: "invalid WebSocket frame".into() }
                    };
                    close(&mut socket, frame).await;
                    return;
                }
            },
        }
    }
}
