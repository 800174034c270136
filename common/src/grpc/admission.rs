//! Who may make a gRPC port hold what, decided from a call's headers before its body is read.
//!
//! tonic reads a message whole before a handler sees it, and reserves the length its five-byte
//! prefix declares as soon as that prefix arrives: a caller who declares 70 MiB and sends all but
//! the last byte makes the process hold 70 MiB, before any service has looked at who it is. So
//! every call passes here first:
//! - the caller is named from its headers: a CodeSync process (a valid service credential), a
//!   signed-in user (a valid access token) or an anonymous address; health probes pass;
//! - callers that are not CodeSync processes are rate limited per address (with the REST API's
//!   bucket), and hold at most so many calls per connection and per address, and at most
//!   `CODESYNC_MAX_STREAMS_PER_USER` long-lived calls per user, as the gateway counts WebSockets;
//! - each message's declared length is checked against what its RPC needs (64 KiB for an
//!   anonymous caller, whatever the RPC) before tonic buffers it, and its bytes are reserved from
//!   the process's [`InflightBudget`] in the caller's share. A unary call's message stays
//!   reserved until it is answered; a streamed message until it has arrived whole. A stream
//!   whose caller is out of budget waits (its reading stops, and HTTP/2 flow control stops the
//!   sender); any other call is refused with `busy` and `retry-after`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;

use crate::budget::{Holder, InflightBudget, Refusal, Reservation, Slot, SlotKind, Slots};
use crate::error::{ErrorCode, ServiceError};
use crate::identity::{AUTHORIZATION_METADATA_KEY, SERVICE_METADATA_KEY, TokenService, bearer_token};
use crate::rate_limit::RateLimiter;

/// The limits of [`AdmissionLayer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// The largest message an anonymous caller may send to any RPC.
    pub anonymous_message_bytes: usize,
    /// Calls open at once on one connection from a caller that is not a CodeSync process.
    pub streams_per_connection: usize,
    /// Calls open at once from one address, unless they come from CodeSync processes.
    pub streams_per_address: usize,
    /// Long-lived calls (streams) one user may hold open at once on this process.
    pub streams_per_user: usize,
}

impl Default for AdmissionLimits {
    fn default() -> Self {
        Self {
            anonymous_message_bytes: crate::limits::ANONYMOUS_GRPC_MESSAGE_MAX_BYTES,
            streams_per_connection: 128,
            streams_per_address: 256,
            streams_per_user: 64,
        }
    }
}

/// What one RPC may receive.
#[derive(Debug, Clone, Copy)]
struct RpcPolicy {
    max_message_bytes: usize,
    client_streaming: bool,
    long_lived: bool,
}

/// The largest message each RPC takes from a known caller: [`crate::limits::GRPC_MESSAGE_MAX_BYTES`]
/// unless its service says more (a project import) or less.
#[derive(Debug, Clone)]
pub struct MessageLimits {
    by_path: HashMap<String, RpcPolicy>,
}

impl Default for MessageLimits {
    fn default() -> Self {
        let by_path = codesync_proto::rpcs::all()
            .into_iter()
            .map(|rpc| {
                let policy = RpcPolicy {
                    max_message_bytes: crate::limits::GRPC_MESSAGE_MAX_BYTES,
                    client_streaming: rpc.client_streaming,
                    long_lived: rpc.is_long_lived(),
                };
                (rpc.path, policy)
            })
            .collect();
        Self { by_path }
    }
}

impl MessageLimits {
    /// Every RPC of `service` (`codesync.documents.v1.DocumentsService`) takes up to `bytes`.
    pub fn service(mut self, service: &str, bytes: usize) -> Self {
        let prefix = format!("/{service}/");
        for (path, policy) in &mut self.by_path {
            if path.starts_with(&prefix) {
                policy.max_message_bytes = bytes;
            }
        }
        self
    }

    /// The RPC at `path` (`/codesync.rooms.v1.RoomsService/ImportFiles`) takes up to `bytes`.
    pub fn rpc(mut self, path: &str, bytes: usize) -> Self {
        if let Some(policy) = self.by_path.get_mut(path) {
            policy.max_message_bytes = bytes;
        }
        self
    }

    fn policy(&self, path: &str) -> RpcPolicy {
        self.by_path.get(path).copied().unwrap_or(RpcPolicy {
            // Reflection and anything else that is not ours.
            max_message_bytes: crate::limits::ANONYMOUS_GRPC_MESSAGE_MAX_BYTES,
            client_streaming: true,
            long_lived: true,
        })
    }
}

struct Shared {
    /// The process's connections: a call marks its connection as doing something (a CodeSync
    /// process's for good), so that it is not shed first at the ceiling.
    connections: Option<Arc<crate::connections::ConnectionBudget>>,
    tokens: TokenService,
    limiter: Arc<RateLimiter>,
    budget: Arc<InflightBudget>,
    messages: MessageLimits,
    anonymous_message_bytes: usize,
    per_connection: Arc<Slots<SocketAddr>>,
    per_address: Arc<Slots<IpAddr>>,
    per_user: Arc<Slots<String>>,
}

/// See the module's documentation.
#[derive(Clone)]
pub struct AdmissionLayer {
    shared: Arc<Shared>,
}

impl AdmissionLayer {
    /// `limiter` is the per-address request limit the REST API shares; `budget` the process's.
    pub fn new(
        tokens: TokenService,
        limiter: Arc<RateLimiter>,
        budget: Arc<InflightBudget>,
        messages: MessageLimits,
        limits: AdmissionLimits,
    ) -> Self {
        let calls = |name| SlotKind { name, what: "calls open", code: ErrorCode::TooManyStreams, retry_after_secs: 5 };
        let user_kind = SlotKind {
            name: "grpc_user_streams",
            what: "streams open",
            code: ErrorCode::TooManyConnections,
            retry_after_secs: 5,
        };
        Self {
            shared: Arc::new(Shared {
                connections: None,
                tokens,
                limiter,
                budget,
                messages,
                anonymous_message_bytes: limits.anonymous_message_bytes,
                per_connection: Slots::new(calls("grpc_connection_calls"), limits.streams_per_connection, usize::MAX),
                per_address: Slots::new(calls("grpc_address_calls"), limits.streams_per_address, usize::MAX),
                per_user: Slots::new(user_kind, limits.streams_per_user, usize::MAX),
            }),
        }
    }
}

impl AdmissionLayer {
    /// Calls mark their connections in `budget` (the process's; see [`crate::connections`]).
    pub fn with_connections(mut self, budget: Arc<crate::connections::ConnectionBudget>) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.connections = Some(budget);
        }
        self
    }
}

impl<S> tower::Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Admission<S> {
        Admission { inner, shared: self.shared.clone() }
    }
}

/// See [`AdmissionLayer`].
#[derive(Clone)]
pub struct Admission<S> {
    inner: S,
    shared: Arc<Shared>,
}

type BoxedCall<R, E> = Pin<Box<dyn std::future::Future<Output = Result<R, E>> + Send>>;

/// What a call holds while it is open: its slots and the reservations of its messages.
#[derive(Default)]
struct Held {
    _slots: Vec<Box<dyn std::any::Any + Send + Sync>>,
    reservations: Mutex<Vec<Reservation>>,
}

impl<S> tower::Service<http::Request<tonic::body::Body>> for Admission<S>
where
    S: tower::Service<http::Request<tonic::body::Body>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxedCall<S::Response, S::Error>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        // The clone is not ready; the ready one serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if request.uri().path().starts_with("/grpc.health.v1.Health/") {
            return Box::pin(inner.call(request));
        }
        let shared = self.shared.clone();
        let (parts, body) = request.into_parts();
        Box::pin(async move {
            let admitted = match admit(&shared, &parts).await {
                Ok(admitted) => admitted,
                Err(error) => return Ok(tonic::Status::from(error).into_http()),
            };
            let Admitted { holder, max_message_bytes, client_streaming, slots } = admitted;
            let held = Arc::new(Held { _slots: slots, reservations: Mutex::default() });
            let body = WatchedBody {
                inner: body,
                shared: shared.clone(),
                holder,
                max_message_bytes,
                client_streaming,
                held: held.clone(),
                framing: Framing::default(),
                pending: None,
                retry: None,
            };
            let request = http::Request::from_parts(parts, tonic::body::Body::new(body));
            let response = inner.call(request).await?;
            // The slots and a unary call's message stay held until the answer has gone out
            // (for a stream: until it ends).
            Ok(response.map(|body| tonic::body::Body::new(crate::budget::Holding { inner: body, guard: held })))
        })
    }
}

struct Admitted {
    holder: Holder,
    max_message_bytes: usize,
    client_streaming: bool,
    slots: Vec<Box<dyn std::any::Any + Send + Sync>>,
}

async fn admit(shared: &Shared, request: &http::request::Parts) -> Result<Admitted, ServiceError> {
    let policy = shared.messages.policy(request.uri.path());
    let header = |name: &str| request.headers.get(name).and_then(|value| value.to_str().ok());
    let service = header(SERVICE_METADATA_KEY).and_then(|token| shared.tokens.service_named_by(token));
    let user = header(AUTHORIZATION_METADATA_KEY)
        .and_then(bearer_token)
        .and_then(|token| shared.tokens.verify_access_token(token).ok())
        .map(|caller| caller.user_id);
    let peer = request
        .extensions
        .get::<tonic::transport::server::TcpConnectInfo>()
        .and_then(tonic::transport::server::TcpConnectInfo::remote_addr)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let place = shared.connections.as_ref().and_then(|connections| connections.find(peer));
    if let Some(service) = service {
        // A CodeSync process's connection carries everything between two processes: never shed.
        if let Some(place) = &place {
            place.hold();
        }
        // The gateway and the services limited their callers already; the end user (when the
        // call carries one) still draws on this process's budget in their own share.
        let holder = user.map_or(Holder::Service(service), Holder::User);
        return Ok(Admitted {
            holder,
            max_message_bytes: policy.max_message_bytes,
            client_streaming: policy.client_streaming,
            slots: Vec::new(),
        });
    }
    let key = crate::rate_limit::address_key(peer.ip());
    if let Err(wait) = shared.limiter.try_acquire(&key).await {
        return Err(ServiceError::RateLimited {
            message: "too many requests; slow down".to_string(),
            retry_after_secs: crate::rate_limit::retry_after_secs(wait),
        });
    }
    let mut slots: Vec<Box<dyn std::any::Any + Send + Sync>> = Vec::new();
    if let Some(place) = &place {
        let standing =
            if user.is_some() { crate::connections::Standing::Busy } else { crate::connections::Standing::Anonymous };
        slots.push(Box::new(place.request(standing)));
    }
    slots.push(Box::new(shared.per_connection.take(&peer)?));
    slots.push(Box::new(shared.per_address.take(&peer.ip())?));
    let (holder, max_message_bytes) = match user {
        Some(user_id) => {
            if policy.long_lived {
                let slot: Slot<String> = shared.per_user.take(&user_id).map_err(|refusal| Refusal {
                    message: format!(
                        "you have {} streams open, as many as one person may: close some",
                        shared.per_user.per_key()
                    ),
                    ..refusal
                })?;
                slots.push(Box::new(slot));
            }
            (Holder::User(user_id), policy.max_message_bytes)
        }
        None => (Holder::Anonymous(peer.ip()), policy.max_message_bytes.min(shared.anonymous_message_bytes)),
    };
    Ok(Admitted { holder, max_message_bytes, client_streaming: policy.client_streaming, slots })
}

/// Where the reading of gRPC's length-prefixed messages stands.
#[derive(Debug, Default)]
struct Framing {
    /// Bytes of the next message's five-byte prefix read so far.
    prefix: [u8; 5],
    prefix_read: usize,
    /// Bytes of the current message still to come.
    remaining: usize,
}

/// The request's body, read through: each message's prefix is checked and its bytes reserved
/// before the message reaches tonic.
struct WatchedBody {
    inner: tonic::body::Body,
    shared: Arc<Shared>,
    holder: Holder,
    max_message_bytes: usize,
    client_streaming: bool,
    held: Arc<Held>,
    framing: Framing,
    /// A frame read from the client but not passed on yet, and how far it has been parsed.
    pending: Option<(Bytes, usize)>,
    /// When a stream out of budget tries again.
    retry: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// How long a stream out of budget waits before it asks again.
const BUDGET_RETRY: Duration = Duration::from_millis(50);

enum Parsed {
    Done,
    /// Out of budget at this offset: wait and try again.
    Blocked(usize),
}

impl WatchedBody {
    /// Parses `frame` from `offset`: checks each prefix that completes and reserves its message.
    fn parse(&mut self, frame: &[u8], mut offset: usize) -> Result<Parsed, tonic::Status> {
        while offset < frame.len() {
            let framing = &mut self.framing;
            if framing.remaining > 0 {
                let taken = framing.remaining.min(frame.len() - offset);
                framing.remaining -= taken;
                offset += taken;
                if framing.remaining == 0 {
                    self.message_arrived();
                }
                continue;
            }
            let taken = (5 - framing.prefix_read).min(frame.len() - offset);
            framing.prefix[framing.prefix_read..framing.prefix_read + taken]
                .copy_from_slice(&frame[offset..offset + taken]);
            if framing.prefix_read + taken < 5 {
                framing.prefix_read += taken;
                offset += taken;
                continue;
            }
            let length =
                u32::from_be_bytes([framing.prefix[1], framing.prefix[2], framing.prefix[3], framing.prefix[4]])
                    as usize;
            if length > self.max_message_bytes {
                let message = if self.holder.is_anonymous() {
                    format!(
                        "a message of {length} bytes is more than an anonymous caller may send ({} bytes); sign in",
                        self.max_message_bytes
                    )
                } else {
                    format!(
                        "a message of {length} bytes is more than this call takes ({} bytes)",
                        self.max_message_bytes
                    )
                };
                return Err(ServiceError::too_large(ErrorCode::MessageTooLarge, message).into());
            }
            match self.shared.budget.try_reserve(&self.holder, length + 5) {
                Ok(reservation) => {
                    self.held.reservations.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(reservation);
                }
                // A stream's sender waits; anonymous callers never make the process wait for them.
                Err(refusal)
                    if self.client_streaming && refusal.retry_after_secs.is_some() && !self.holder.is_anonymous() =>
                {
                    return Ok(Parsed::Blocked(offset));
                }
                Err(refusal) => return Err(ServiceError::from(refusal).into()),
            }
            let framing = &mut self.framing;
            framing.prefix_read = 0;
            framing.remaining = length;
            offset += taken;
            if length == 0 {
                self.message_arrived();
            }
        }
        Ok(Parsed::Done)
    }

    /// A whole message reached tonic: a stream's goes to its handler now and is not counted
    /// longer; a unary call's stays reserved until the call is answered.
    fn message_arrived(&self) {
        if self.client_streaming {
            self.held.reservations.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
        }
    }
}

impl http_body::Body for WatchedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        loop {
            if let Some(retry) = self.retry.as_mut() {
                std::task::ready!(retry.as_mut().poll(context));
                self.retry = None;
            }
            if let Some((frame, offset)) = self.pending.take() {
                match self.parse(&frame, offset)? {
                    Parsed::Done => return Poll::Ready(Some(Ok(Frame::data(frame)))),
                    Parsed::Blocked(offset) => {
                        self.pending = Some((frame, offset));
                        self.retry = Some(Box::pin(tokio::time::sleep(BUDGET_RETRY)));
                        continue;
                    }
                }
            }
            let frame = match std::task::ready!(Pin::new(&mut self.inner).poll_frame(context)) {
                Some(Ok(frame)) => frame,
                other => return Poll::Ready(other),
            };
            match frame.into_data() {
                Ok(data) => self.pending = Some((data, 0)),
                Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::InflightLimits;

    fn watched(max_message_bytes: usize, client_streaming: bool, holder: Holder, total: usize) -> WatchedBody {
        let limits = InflightLimits { total, per_caller: total, anonymous_per_address: 1000, anonymous_total: 1000 };
        let tokens = crate::identity::TokenService::signer(
            &crate::identity::SigningKey::from_seed([1; 32]),
            &crate::identity::ServiceKey::from_secret(vec![2; 32]),
            Duration::from_secs(60),
        );
        let layer = AdmissionLayer::new(
            tokens,
            Arc::new(RateLimiter::new(1000, Duration::from_secs(60))),
            InflightBudget::new("test", limits),
            MessageLimits::default(),
            AdmissionLimits::default(),
        );
        WatchedBody {
            inner: tonic::body::Body::empty(),
            shared: layer.shared,
            holder,
            max_message_bytes,
            client_streaming,
            held: Arc::new(Held::default()),
            framing: Framing::default(),
            pending: None,
            retry: None,
        }
    }

    fn prefixed(length: u32) -> Vec<u8> {
        let mut prefix = vec![0];
        prefix.extend_from_slice(&length.to_be_bytes());
        prefix
    }

    #[test]
    fn a_declared_length_past_the_limit_is_refused_before_its_bytes_are_read() {
        let anonymous = Holder::Anonymous("192.0.2.9".parse().unwrap());
        let mut body = watched(64 * 1024, false, anonymous, 1 << 30);
        // The prefix arrives split over two frames, as the network may cut it.
        let prefix = prefixed(70 * 1024 * 1024);
        assert!(matches!(body.parse(&prefix[..2], 0), Ok(Parsed::Done)));
        let status = body.parse(&prefix[2..], 0).err().expect("refused");
        assert_eq!(status.code(), tonic::Code::OutOfRange);
        assert!(status.message().contains("anonymous"), "{}", status.message());
        assert_eq!(body.shared.budget.in_use(), 0, "nothing was reserved");
    }

    #[test]
    fn messages_are_reserved_while_they_arrive_and_a_stream_gives_each_back_when_whole() {
        let user = Holder::User("ada".into());
        let mut body = watched(1000, true, user.clone(), 1 << 20);
        let mut frame = prefixed(10);
        frame.extend_from_slice(&[7; 4]);
        assert!(matches!(body.parse(&frame, 0), Ok(Parsed::Done)));
        assert_eq!(body.shared.budget.in_use(), 15, "the message is reserved, prefix included");
        let mut rest = vec![7; 6];
        rest.extend_from_slice(&prefixed(0));
        assert!(matches!(body.parse(&rest, 0), Ok(Parsed::Done)));
        assert_eq!(body.shared.budget.in_use(), 0, "a stream's whole messages are its handler's");

        let mut unary = watched(1000, false, user, 1 << 20);
        let mut frame = prefixed(3);
        frame.extend_from_slice(&[1, 2, 3]);
        assert!(matches!(unary.parse(&frame, 0), Ok(Parsed::Done)));
        assert_eq!(unary.shared.budget.in_use(), 8, "a unary call's message stays until it is answered");
        drop(unary.held.reservations.lock().unwrap().drain(..));
        assert_eq!(unary.shared.budget.in_use(), 0);
    }

    #[test]
    fn out_of_budget_a_stream_waits_and_a_unary_call_is_refused() {
        let user = Holder::User("ada".into());
        let mut stream = watched(1000, true, user.clone(), 100);
        let _taken = stream.shared.budget.try_reserve(&Holder::User("bob".into()), 90).unwrap();
        assert!(matches!(stream.parse(&prefixed(50), 0), Ok(Parsed::Blocked(0))));
        let mut unary = watched(1000, false, user, 100);
        let _taken = unary.shared.budget.try_reserve(&Holder::User("bob".into()), 90).unwrap();
        let status = unary.parse(&prefixed(50), 0).err().expect("refused");
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    }
}
