//! `/ws/files/{file_id}`: the y-websocket protocol, unmodified. Each binary
//! frame is one y-protocols message, passed to the documents service as is.

use std::collections::VecDeque;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use codesync_proto::documents::v1 as pb;
use codesync_proto::pieces;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use futures::StreamExt;

use super::socket::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use super::{Liveness, SocketLimits, SocketParams, Step, next_step, socket_caller, split, stream_end_frame};
use crate::GatewayState;
use crate::error::ApiError;
use crate::extract::{ApiPath, ClientAddress};

/// Frames queued toward the documents service before the socket is read no further.
const INBOUND_QUEUE: usize = 256;

pub async fn file_socket(
    State(state): State<GatewayState>,
    ClientAddress(client_ip): ClientAddress,
    ApiPath(file_id): ApiPath<String>,
    Query(params): Query<SocketParams>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let (session, context) = socket_caller(&state, &params, &headers, client_ip)?;
    let session_end = super::SessionEnd::of(&session, &state.tokens);
    let slot = state.streams.take(&session.caller.user_id)?;
    let acknowledge = params.ack.as_deref().is_some_and(|value| matches!(value, "1" | "true" | "yes"));
    let (requests, request_stream) = mpsc::channel(INBOUND_QUEUE);
    let open = pb::CollaborateRequest {
        frame: Some(pb::collaborate_request::Frame::Open(pb::OpenDocument { file_id, acknowledge })),
    };
    // The channel was just made with room to spare: this cannot wait.
    let _ = requests.try_send(open);
    let responses =
        state.clients.documents().collaborate(context.request(ReceiverStream::new(request_stream))).await?.into_inner();
    let stopping = state.stopping.clone();
    let limits = SocketLimits {
        max_message_bytes: state.ws_max_message_bytes,
        max_queued_bytes: state.ws_queue_bytes,
        idle_timeout: state.ws_idle_timeout,
    };
    Ok(upgrade.max_message_size(limits.max_message_bytes).on_upgrade(move |socket| async move {
        bridge(socket, requests, responses, limits, stopping, session_end).await;
        drop(slot);
    }))
}

async fn bridge(
    socket: WebSocket,
    requests: mpsc::Sender<pb::CollaborateRequest>,
    mut responses: tonic::Streaming<pb::CollaborateResponse>,
    limits: SocketLimits,
    mut stopping: tokio::sync::watch::Receiver<bool>,
    mut session_end: super::SessionEnd,
) {
    let (out, mut incoming) = split(socket, limits.max_queued_bytes);
    // A message larger than the socket's queue could never be sent anyway.
    let mut reassembly = pieces::Reassembly::new(limits.max_queued_bytes);
    // The client's message on its way to the service. While the service is slow to
    // take it, the socket is read no further, but the service's responses still
    // are: leaving them unread would stall the gRPC connection every socket shares.
    let mut pending: VecDeque<pb::CollaborateRequest> = VecDeque::new();
    let mut liveness = Liveness::new(limits.idle_timeout);
    loop {
        tokio::select! {
            // The gateway is stopping: the client reconnects at once, to one that is up.
            () = super::stopped(&mut stopping) => {
                return out.close(Some(CloseFrame { code: 1012, reason: "the server is restarting".into() })).await;
            }
            () = session_end.wait() => return out.close(Some(super::session_end_frame())).await,
            // Only while the socket is read: a slow service is not the client's silence.
            silence = liveness.wait(), if pending.is_empty() => {
                if !silence.ping_or_give_up(&out) {
                    return out.close(None).await;
                }
            }
            permit = requests.reserve(), if !pending.is_empty() => {
                let Ok(permit) = permit else { return };
                if let Some(request) = pending.pop_front() {
                    permit.send(request);
                }
            }
            response = responses.message() => match response {
                Ok(Some(response)) if !response.message_part.is_empty() => {
                    if reassembly.push_part(&response.message_part).is_err() {
                        return out.close(Some(CloseFrame { code: 1009, reason: "a message is too large to send".into() })).await;
                    }
                }
                Ok(Some(response)) => {
                    let Ok(message) = reassembly.finish(response.message) else {
                        return out.close(Some(CloseFrame { code: 1009, reason: "a message is too large to send".into() })).await;
                    };
                    if !out.send(Message::Binary(message)) {
                        return;
                    }
                }
                Ok(None) => return out.close(Some(stream_end_frame(None))).await,
                Err(status) => return out.close(Some(stream_end_frame(Some(&status)))).await,
            },
            message = incoming.next(), if pending.is_empty() => match next_step(&out, liveness.heard_from(message)) {
                Step::Data(Message::Binary(frame)) => {
                    for (piece, last) in pieces::split(frame) {
                        let frame = if last {
                            pb::collaborate_request::Frame::Message(piece)
                        } else {
                            pb::collaborate_request::Frame::MessagePart(piece)
                        };
                        pending.push_back(pb::CollaborateRequest { frame: Some(frame) });
                    }
                }
                Step::Data(_) => {
                    let reason = "y-websocket messages are binary frames";
                    return out.close(Some(CloseFrame { code: 1003, reason: reason.into() })).await;
                }
                Step::Skip => {}
                Step::Close(frame) => return out.close(frame).await,
                Step::End => return,
            },
        }
    }
}
