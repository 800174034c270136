//! What travels with every gRPC call between CodeSync processes: the end
//! user's access token and address, and the trace context; the deadline every call carries, and
//! what a gRPC port admits from callers that are not CodeSync processes ([`admission`]).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tonic::metadata::MetadataValue;

pub mod admission;

use crate::identity::{
    ACTING_FOR_METADATA_KEY, AUTHORIZATION_METADATA_KEY, CLIENT_IP_METADATA_KEY, SERVICE_METADATA_KEY,
    ServiceCredential, TokenService,
};

/// The end user behind a call, carried from the gateway through every service, with the
/// call's deadline.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    /// The `Authorization` header value (`Bearer ...`), if the user sent one.
    pub authorization: Option<String>,
    pub client_ip: Option<IpAddr>,
    /// When the call that brought this context must be answered: calls made on its behalf
    /// carry what is left of it (unless they name a deadline of their own).
    pub deadline: Option<Instant>,
    /// The user a service acts for (with its service credential), passed on to the services it
    /// calls on that user's behalf.
    pub acting_for: Option<String>,
}

impl CallContext {
    /// The context of an incoming gRPC request, to pass on to the next service: what `tokens`
    /// believes of it (an address only the gateway vouches for, a user a service acts for).
    pub fn from_request<T>(request: &tonic::Request<T>, tokens: &TokenService) -> Self {
        let authorization = request
            .metadata()
            .get(AUTHORIZATION_METADATA_KEY)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        let deadline = request
            .metadata()
            .get(GRPC_TIMEOUT_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| {
                let mut headers = http::HeaderMap::new();
                headers.insert(GRPC_TIMEOUT_HEADER, http::HeaderValue::from_str(text).ok()?);
                parse_grpc_timeout(&headers)
            })
            .map(|timeout| Instant::now() + timeout);
        let acting_for = match &authorization {
            Some(_) => None,
            None => tokens.caller_from_metadata(request.metadata()).ok().flatten().map(|caller| caller.user_id),
        };
        Self { authorization, client_ip: tokens.client_ip(request), deadline, acting_for }
    }

    /// A context acting for `user_id`, for a service's own work on a user's behalf.
    pub fn acting_for(user_id: &str) -> Self {
        Self { acting_for: Some(user_id.to_string()), ..Self::default() }
    }

    /// This context with a deadline `timeout` from now.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.deadline = Some(Instant::now() + timeout);
        self
    }

    /// A request carrying this context, its deadline, and the current trace context.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(deadline) = self.deadline {
            request.set_timeout(deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1)));
        }
        let metadata = request.metadata_mut();
        if let Some(Ok(value)) = self.authorization.as_deref().map(MetadataValue::try_from) {
            metadata.insert(AUTHORIZATION_METADATA_KEY, value);
        }
        if let Some(Ok(value)) = self.client_ip.map(|client_ip| MetadataValue::try_from(client_ip.to_string())) {
            metadata.insert(CLIENT_IP_METADATA_KEY, value);
        }
        if let Some(Ok(value)) = self.acting_for.as_deref().map(MetadataValue::try_from) {
            metadata.insert(ACTING_FOR_METADATA_KEY, value);
        }
        crate::telemetry::inject_trace_context(metadata);
        request
    }
}

/// The names of the nine services, as `--service` and the configuration spell them.
pub const SERVICE_NAMES: [&str; 9] =
    ["auth", "rooms", "documents", "presence", "history", "execution", "assistant", "notifications", "analytics"];

/// A connection to one service, whatever carries it: HTTP/2 to another process,
/// or a direct call into this process's own gRPC routes.
pub type GrpcChannel =
    tower::util::BoxCloneSyncService<http::Request<tonic::body::Body>, http::Response<tonic::body::Body>, ChannelError>;

/// Why a call did not reach its service. A concrete type rather than a boxed
/// error: the generated clients' bounds on a boxed one defeat the compiler's
/// reasoning about `Send` futures in `async_trait` methods.
#[derive(Debug)]
pub struct ChannelError(tower::BoxError);

impl std::fmt::Display for ChannelError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(formatter)
    }
}

impl std::error::Error for ChannelError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.0.as_ref())
    }
}

/// This process's gRPC routes, for calls from within the process. They are
/// filled in once every service is built, since services are built from the
/// channels that point here.
#[derive(Clone, Default)]
pub struct InProcessRoutes {
    routes: Arc<OnceLock<tonic::service::Routes>>,
}

impl InProcessRoutes {
    /// Hands over the routes; later calls are served by them.
    pub fn install(&self, routes: tonic::service::Routes) {
        let _ = self.routes.set(routes);
    }

    fn channel(&self) -> GrpcChannel {
        let routes = self.routes.clone();
        GrpcChannel::new(tower::service_fn(move |request: http::Request<tonic::body::Body>| {
            let routes = routes.get().cloned();
            let span = crate::telemetry::grpc_request_span(&request);
            tracing::Instrument::instrument(
                async move {
                    let Some(routes) = routes else {
                        return Err(ChannelError("this process's gRPC services are not started yet".into()));
                    };
                    match tower::ServiceExt::oneshot(routes, request).await {
                        Ok(response) => Ok(response),
                        Err(never) => match never {},
                    }
                },
                span,
            )
        }))
    }
}

/// How calls between services behave, whatever carries them.
#[derive(Debug, Clone, Copy)]
pub struct CallPolicy {
    /// The deadline of a call that names none (`grpc-timeout`): the time until the answer's
    /// headers, so a streaming call (a WebSocket's `Collaborate`) lives on once it is open.
    pub default_timeout: Duration,
    /// How long an endpoint that failed to connect is skipped by the calls that follow.
    pub endpoint_backoff: Duration,
}

impl Default for CallPolicy {
    fn default() -> Self {
        Self { default_timeout: Duration::from_secs(10), endpoint_backoff: Duration::from_secs(1) }
    }
}

/// The channel to every service, by name.
#[derive(Clone)]
pub struct ServiceChannels {
    pub auth: GrpcChannel,
    pub rooms: GrpcChannel,
    pub documents: GrpcChannel,
    pub presence: GrpcChannel,
    pub history: GrpcChannel,
    pub execution: GrpcChannel,
    pub assistant: GrpcChannel,
    pub notifications: GrpcChannel,
    pub analytics: GrpcChannel,
}

impl ServiceChannels {
    /// Channels to the `http://host:port` endpoints of each service (several endpoints share the
    /// calls, and one that cannot be reached is skipped), except the services `hosted_here`:
    /// calls to those go to `in_process` and stay in the process, as the same gRPC requests
    /// without HTTP/2 and loopback TCP under them. Every channel applies `policy`'s deadline.
    /// Nothing connects until the first call, so processes may start in any order.
    pub fn connect_lazily(
        endpoints_of: impl Fn(&str) -> Vec<String>,
        in_process: &InProcessRoutes,
        hosted_here: &[&str],
        policy: CallPolicy,
    ) -> Result<Self, tonic::transport::Error> {
        let channel = |service: &'static str| -> Result<GrpcChannel, tonic::transport::Error> {
            let carrier = if hosted_here.contains(&service) {
                in_process.channel()
            } else {
                balanced_channel(&endpoints_of(service), policy.endpoint_backoff)?
            };
            Ok(with_deadline(carrier, service, policy.default_timeout))
        };
        Ok(Self {
            auth: channel("auth")?,
            rooms: channel("rooms")?,
            documents: channel("documents")?,
            presence: channel("presence")?,
            history: channel("history")?,
            execution: channel("execution")?,
            assistant: channel("assistant")?,
            notifications: channel("notifications")?,
            analytics: channel("analytics")?,
        })
    }

    /// The same channels, each call carrying `credential` (what the calling component is).
    pub fn presenting(&self, credential: Arc<ServiceCredential>) -> Self {
        let present = |channel: &GrpcChannel| with_credential(channel.clone(), credential.clone());
        Self {
            auth: present(&self.auth),
            rooms: present(&self.rooms),
            documents: present(&self.documents),
            presence: present(&self.presence),
            history: present(&self.history),
            execution: present(&self.execution),
            assistant: present(&self.assistant),
            notifications: present(&self.notifications),
            analytics: present(&self.analytics),
        }
    }

    /// Each service's name with its channel.
    pub fn by_name(&self) -> [(&'static str, &GrpcChannel); 9] {
        [
            ("auth", &self.auth),
            ("rooms", &self.rooms),
            ("documents", &self.documents),
            ("presence", &self.presence),
            ("history", &self.history),
            ("execution", &self.execution),
            ("assistant", &self.assistant),
            ("notifications", &self.notifications),
            ("analytics", &self.analytics),
        ]
    }
}

/// A channel to the replicas at `urls` (`http://host:port`) of `service`, with `policy`'s
/// deadline: for a replica that calls its peers (documents forwarding to a file's owner).
pub fn remote_channel(
    urls: &[String],
    service: &'static str,
    policy: CallPolicy,
) -> Result<GrpcChannel, tonic::transport::Error> {
    Ok(with_deadline(balanced_channel(urls, policy.endpoint_backoff)?, service, policy.default_timeout))
}

/// True when a call failed without an answer from the service itself (it could not be reached,
/// or the connection broke): a status of the kinds a broken transport produces, with no error
/// code of ours. A service's own refusals (NOT_FOUND for a deleted file, PERMISSION_DENIED for a
/// removed member) are answers, whatever metadata they carry.
pub fn is_transport_failure(status: &tonic::Status) -> bool {
    let transport_kind = matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal | tonic::Code::Cancelled
    );
    transport_kind && status.metadata().get(crate::error::ERROR_CODE_METADATA_KEY).is_none()
}

/// A lazily connected HTTP/2 channel to one `http://host:port` endpoint.
pub fn network_channel(url: &str) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_string())?
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true)
        // A peer that stops answering (paused, partitioned) is noticed within seconds, so the
        // streams through it end and their clients reconnect elsewhere.
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true);
    Ok(endpoint.connect_lazy())
}

struct Member {
    url: String,
    channel: tonic::transport::Channel,
    /// Until when (ms since the process started) this endpoint is skipped.
    skipped_until_ms: AtomicU64,
}

/// Round robin over the endpoints of one service. An endpoint whose connection fails is
/// skipped for `backoff`; when all are being skipped, the next in turn is tried anyway, so a
/// service that comes back is found at once.
fn balanced_channel(urls: &[String], backoff: Duration) -> Result<GrpcChannel, tonic::transport::Error> {
    let members: Vec<Arc<Member>> = urls
        .iter()
        .map(|url| {
            Ok(Arc::new(Member {
                url: url.clone(),
                channel: network_channel(url)?,
                skipped_until_ms: AtomicU64::new(0),
            }))
        })
        .collect::<Result<_, tonic::transport::Error>>()?;
    let members: Arc<[Arc<Member>]> = members.into();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    Ok(GrpcChannel::new(tower::service_fn(move |request: http::Request<tonic::body::Body>| {
        let now_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let first = next.fetch_add(1, Ordering::Relaxed);
        let member = (0..members.len())
            .map(|offset| &members[(first + offset) % members.len().max(1)])
            .find(|member| member.skipped_until_ms.load(Ordering::Relaxed) <= now_ms)
            .or_else(|| members.get(first % members.len().max(1)))
            .cloned();
        let backoff_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX);
        async move {
            let Some(member) = member else {
                return Err(ChannelError("no endpoint is configured for this service".into()));
            };
            match tower::ServiceExt::oneshot(member.channel.clone(), request).await {
                Ok(response) => Ok(response),
                Err(error) => {
                    let until =
                        u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX).saturating_add(backoff_ms);
                    member.skipped_until_ms.store(until, Ordering::Relaxed);
                    tracing::warn!(endpoint = %member.url, %error, "a service endpoint cannot be reached; skipping it for a moment");
                    Err(ChannelError(error.into()))
                }
            }
        }
    })))
}

/// Every call through `inner` carries `credential` (replacing whatever the request said).
pub fn with_credential(inner: GrpcChannel, credential: Arc<ServiceCredential>) -> GrpcChannel {
    GrpcChannel::new(tower::service_fn(move |mut request: http::Request<tonic::body::Body>| {
        if let Ok(value) = http::HeaderValue::try_from(credential.token()) {
            request.headers_mut().insert(SERVICE_METADATA_KEY, value);
        }
        tower::ServiceExt::oneshot(inner.clone(), request)
    }))
}

/// gRPC's deadline header: how long the caller waits for the answer.
pub const GRPC_TIMEOUT_HEADER: &str = "grpc-timeout";

/// Every call gets a deadline: the one it names in `grpc-timeout`, or `default` (then written
/// into `grpc-timeout`, so the serving process knows it too). A call still unanswered at its
/// deadline ends with DEADLINE_EXCEEDED, in this process and on the network alike.
fn with_deadline(inner: GrpcChannel, service: &'static str, default: Duration) -> GrpcChannel {
    GrpcChannel::new(tower::service_fn(move |mut request: http::Request<tonic::body::Body>| {
        let timeout = match parse_grpc_timeout(request.headers()) {
            Some(timeout) => timeout,
            None => {
                if let Ok(value) = http::HeaderValue::try_from(encode_grpc_timeout(default)) {
                    request.headers_mut().insert(GRPC_TIMEOUT_HEADER, value);
                }
                default
            }
        };
        let call = tower::ServiceExt::oneshot(inner.clone(), request);
        async move {
            match tokio::time::timeout(timeout, call).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::warn!(
                        service,
                        timeout_ms = timeout.as_millis() as u64,
                        "a call to another service passed its deadline"
                    );
                    let error = crate::ServiceError::DeadlineExceeded {
                        message: format!("the {service} service did not answer within {} ms", timeout.as_millis()),
                    };
                    Ok(tonic::Status::from(error).into_http())
                }
            }
        }
    }))
}

/// The deadline a request names in `grpc-timeout` (a number of up to 8 digits and a unit).
pub fn parse_grpc_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get(GRPC_TIMEOUT_HEADER)?.to_str().ok()?;
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// `duration` as `grpc-timeout` spells it, in milliseconds (at most 8 digits).
pub fn encode_grpc_timeout(duration: Duration) -> String {
    let millis = duration.as_millis().clamp(1, 99_999_999);
    format!("{millis}m")
}

/// The fully qualified gRPC name of a service (`codesync.rooms.v1.RoomsService`).
pub fn grpc_service_name(service: &str) -> String {
    let mut type_name = String::new();
    let mut characters = service.chars();
    if let Some(first) = characters.next() {
        type_name.extend(first.to_uppercase());
        type_name.push_str(characters.as_str());
    }
    format!("codesync.{service}.v1.{type_name}Service")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn grpc_timeouts_are_parsed_and_written_as_the_protocol_spells_them() {
        let mut headers = http::HeaderMap::new();
        for (text, expected) in [
            ("250m", Duration::from_millis(250)),
            ("3S", Duration::from_secs(3)),
            ("2M", Duration::from_secs(120)),
            ("1H", Duration::from_secs(3600)),
            ("99999999u", Duration::from_micros(99_999_999)),
        ] {
            headers.insert(GRPC_TIMEOUT_HEADER, http::HeaderValue::from_static(text));
            assert_eq!(parse_grpc_timeout(&headers), Some(expected), "{text}");
        }
        for bad in ["", "m", "123456789m", "10x", "-1S"] {
            headers.insert(GRPC_TIMEOUT_HEADER, http::HeaderValue::from_str(bad).unwrap());
            assert_eq!(parse_grpc_timeout(&headers), None, "{bad:?}");
        }
        assert_eq!(encode_grpc_timeout(Duration::from_secs(10)), "10000m");
        assert_eq!(encode_grpc_timeout(Duration::ZERO), "1m");
        assert_eq!(encode_grpc_timeout(Duration::from_secs(10_000_000)), "99999999m");
    }

    #[tokio::test]
    async fn a_call_past_its_deadline_ends_with_deadline_exceeded() {
        let never = GrpcChannel::new(tower::service_fn(|_request: http::Request<tonic::body::Body>| async {
            std::future::pending::<Result<http::Response<tonic::body::Body>, ChannelError>>().await
        }));
        let channel = with_deadline(never, "rooms", Duration::from_millis(20));
        let request = http::Request::new(tonic::body::Body::empty());
        let response = tower::ServiceExt::oneshot(channel, request).await.unwrap();
        let status = tonic::Status::from_header_map(response.headers()).unwrap();
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
        assert!(status.message().contains("rooms service did not answer within 20 ms"), "{}", status.message());
    }

    #[tokio::test]
    async fn a_named_deadline_wins_and_the_default_is_written_for_the_server() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorder = {
            let seen = seen.clone();
            GrpcChannel::new(tower::service_fn(move |request: http::Request<tonic::body::Body>| {
                seen.lock().unwrap().push(request.headers().get(GRPC_TIMEOUT_HEADER).cloned());
                async { Ok::<_, ChannelError>(http::Response::new(tonic::body::Body::empty())) }
            }))
        };
        let channel = with_deadline(recorder, "rooms", Duration::from_secs(10));
        tower::ServiceExt::oneshot(channel.clone(), http::Request::new(tonic::body::Body::empty())).await.unwrap();
        let mut named = http::Request::new(tonic::body::Body::empty());
        named.headers_mut().insert(GRPC_TIMEOUT_HEADER, http::HeaderValue::from_static("5S"));
        tower::ServiceExt::oneshot(channel, named).await.unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].as_ref().unwrap(), "10000m");
        assert_eq!(seen[1].as_ref().unwrap(), "5S");
    }

    #[tokio::test]
    async fn calls_are_spread_over_endpoints_and_one_that_cannot_be_reached_is_skipped() {
        use tonic_health::pb::HealthCheckRequest;
        use tonic_health::pb::health_client::HealthClient;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live = format!("http://{}", listener.local_addr().unwrap());
        let (_reporter, health) = tonic_health::server::health_reporter();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(health)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let dead = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", listener.local_addr().unwrap())
        };
        let channel = balanced_channel(&[dead, live], Duration::from_secs(60)).unwrap();
        let mut client = HealthClient::new(channel);
        let mut failures = 0;
        for _ in 0..10 {
            if client.check(HealthCheckRequest { service: String::new() }).await.is_err() {
                failures += 1;
            }
        }
        assert_eq!(failures, 1, "the dead endpoint fails one call, then it is skipped");
    }

    #[test]
    fn grpc_service_names_follow_the_packages() {
        assert_eq!(super::grpc_service_name("rooms"), "codesync.rooms.v1.RoomsService");
        assert_eq!(super::grpc_service_name("notifications"), "codesync.notifications.v1.NotificationsService");
    }
}
