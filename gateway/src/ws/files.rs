//! `/ws/files/{file_id}`: the y-websocket protocol, unmodified. Each binary
//! frame is one y-protocols message, passed to the documents service as is.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use codesync_proto::documents::v1 as pb;
use codesync_proto::pieces;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::bridge::{Codec, FromClient, ToClient, bridge};
use super::socket::{CloseFrame, Message, WebSocketUpgrade};
use super::{SocketLimits, SocketParams, socket_caller};
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
    place: super::Place,
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
    let budgets = super::SocketBudgets::of(&state, &session.caller.user_id);
    let limits = SocketLimits {
        max_message_bytes: state.ws_max_message_bytes,
        max_queued_bytes: state.ws_queue_bytes,
        idle_timeout: state.ws_idle_timeout,
    };
    Ok(upgrade.max_message_size(limits.max_message_bytes).on_upgrade(move |socket| async move {
        place.hold();
        // A message larger than the socket's queue could never be sent anyway.
        let codec = FileFrames { reassembly: pieces::Reassembly::new(limits.max_queued_bytes) };
        bridge(socket, codec, requests, responses, limits, super::Ends { stopping, session_end }, budgets).await;
        drop((slot, place));
    }))
}

/// y-websocket frames to and from the documents service, in pieces where they are large.
struct FileFrames {
    reassembly: pieces::Reassembly,
}

fn too_large() -> CloseFrame {
    CloseFrame { code: 1009, reason: "a message is too large to send".into() }
}

impl Codec for FileFrames {
    type Request = pb::CollaborateRequest;
    type Response = pb::CollaborateResponse;

    fn client_message(&mut self, message: Message) -> FromClient<pb::CollaborateRequest> {
        let Message::Binary(frame) = message else {
            return FromClient::Close(CloseFrame {
                code: 1003,
                reason: "y-websocket messages are binary frames".into(),
            });
        };
        let requests = pieces::split(frame)
            .map(|(piece, last)| {
                let frame = if last {
                    pb::collaborate_request::Frame::Message(piece)
                } else {
                    pb::collaborate_request::Frame::MessagePart(piece)
                };
                pb::CollaborateRequest { frame: Some(frame) }
            })
            .collect();
        FromClient::Requests(requests)
    }

    fn service_response(&mut self, response: pb::CollaborateResponse) -> ToClient {
        if !response.message_part.is_empty() {
            return match self.reassembly.push_part(&response.message_part) {
                Ok(()) => ToClient::Nothing,
                Err(_) => ToClient::Close(too_large()),
            };
        }
        match self.reassembly.finish(response.message) {
            Ok(message) => ToClient::Send(Message::Binary(message)),
            Err(_) => ToClient::Close(too_large()),
        }
    }
}
