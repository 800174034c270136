//! The one loop both WebSockets run between a client and its service stream: pings and
//! silence, the gateway's stop, the session's end, a slow service (the socket is read no
//! further while the client's message waits for the service, but the service's responses still
//! are: leaving them unread would stall the gRPC connection every socket shares) and a slow
//! client (see [`super::SocketOut`]). What differs, how messages turn into requests and
//! responses into messages, is the socket's [`Codec`].

use std::collections::VecDeque;

use futures::StreamExt;
use tokio::sync::mpsc;

use super::socket::{CloseFrame, Message, WebSocket};
use super::{Liveness, SocketLimits, Step, next_step, split, stream_end_frame};

/// How one kind of socket speaks to its service.
pub trait Codec {
    type Request: Send + 'static;
    type Response;
    /// A text or binary message from the client.
    fn client_message(&mut self, message: Message) -> FromClient<Self::Request>;
    /// A response from the service.
    fn service_response(&mut self, response: Self::Response) -> ToClient;
}

/// What a client's message becomes.
pub enum FromClient<R> {
    /// Requests for the service, in order.
    Requests(Vec<R>),
    /// An answer for the client alone (a pong, a malformed message explained); the session stays.
    Reply(Message),
    Close(CloseFrame),
}

/// What a service's response becomes.
pub enum ToClient {
    Send(Message),
    /// Nothing to send (yet: a piece of a larger message).
    Nothing,
    Close(CloseFrame),
}

/// Runs the socket until the client, the service, the session or the gateway ends it.
pub async fn bridge<C: Codec>(
    socket: WebSocket,
    mut codec: C,
    requests: mpsc::Sender<C::Request>,
    mut responses: tonic::Streaming<C::Response>,
    limits: SocketLimits,
    ends: super::Ends,
    budgets: super::SocketBudgets,
) {
    let super::Ends { mut stopping, mut session_end } = ends;
    let (out, mut incoming) = split(socket, limits.max_queued_bytes, budgets.outbound);
    // The client's message on its way to the service, and its bytes in the in-flight budget.
    let mut pending: VecDeque<C::Request> = VecDeque::new();
    let mut _pending_bytes: Option<codesync_common::budget::Reservation> = None;
    // A message read while its user was out of in-flight budget: the socket is read no further
    // (reading pauses, the client's TCP window closes) until it fits; nothing is dropped.
    let mut over_budget: Option<(Vec<C::Request>, usize)> = None;
    let mut liveness = Liveness::new(limits.idle_timeout);
    loop {
        if pending.is_empty() {
            _pending_bytes = None;
        }
        tokio::select! {
            // The gateway is stopping: the client reconnects at once, to one that is up.
            () = super::stopped(&mut stopping) => {
                return out.close(Some(CloseFrame { code: 1012, reason: "the server is restarting".into() })).await;
            }
            () = session_end.wait() => return out.close(Some(super::session_end_frame())).await,
            // Only while the socket is read: a slow service is not the client's silence.
            silence = liveness.wait(), if pending.is_empty() && over_budget.is_none() => {
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
                Ok(Some(response)) => match codec.service_response(response) {
                    ToClient::Send(message) => {
                        if !out.send(message) {
                            return;
                        }
                    }
                    ToClient::Nothing => {}
                    ToClient::Close(frame) => return out.close(Some(frame)).await,
                },
                Ok(None) => return out.close(Some(stream_end_frame(None))).await,
                Err(status) => return out.close(Some(stream_end_frame(Some(&status)))).await,
            },
            () = tokio::time::sleep(BUDGET_RETRY), if over_budget.is_some() => {
                if let Some((requests, bytes)) = over_budget.take() {
                    match reserve(&budgets.inbound, bytes) {
                        Ok(reservation) => {
                            _pending_bytes = reservation;
                            pending.extend(requests);
                        }
                        Err(()) => over_budget = Some((requests, bytes)),
                    }
                }
            }
            message = incoming.next(), if pending.is_empty() && over_budget.is_none() => match next_step(&out, liveness.heard_from(message)) {
                Step::Data(message) => {
                    let bytes = super::message_bytes(&message);
                    match codec.client_message(message) {
                        FromClient::Requests(requests) => match reserve(&budgets.inbound, bytes) {
                            Ok(reservation) => {
                                _pending_bytes = reservation;
                                pending.extend(requests);
                            }
                            Err(()) => over_budget = Some((requests, bytes)),
                        },
                        FromClient::Reply(message) => {
                            if !out.send(message) {
                                return;
                            }
                        }
                        FromClient::Close(frame) => return out.close(Some(frame)).await,
                    }
                }
                Step::Skip => {}
                Step::Close(frame) => return out.close(frame).await,
                Step::End => return,
            },
        }
    }
}

/// How often a socket whose user is out of in-flight budget asks again.
const BUDGET_RETRY: std::time::Duration = std::time::Duration::from_millis(50);

/// `bytes` of the user's in-flight share, or `Err` while it is spent (the caller waits); a
/// message that could never fit the share passes unreserved (the socket's own message limit
/// already bounds it).
fn reserve(share: &super::OutboundShare, bytes: usize) -> Result<Option<codesync_common::budget::Reservation>, ()> {
    let Some((budget, holder)) = share else { return Ok(None) };
    match budget.try_reserve(holder, bytes) {
        Ok(reservation) => Ok(Some(reservation)),
        Err(refusal) if refusal.retry_after_secs.is_some() => Err(()),
        Err(_) => Ok(None),
    }
}
