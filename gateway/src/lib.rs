//! The gateway: the REST API of SPEC section 3 translated to the services'
//! gRPC clients, with JWT checks, a per-IP rate limit, a body-size limit, one
//! JSON error shape on every path, the OpenAPI document generated from the
//! handlers, liveness and readiness probes, and Prometheus metrics.
#![forbid(unsafe_code)]

mod body_limit;
mod error;
mod extract;
mod metrics;
mod openapi;
mod rate_limit;
mod routes;
mod server;
mod sse;
mod streams;
mod web;
mod ws;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router, middleware};
use codesync_common::grpc::GrpcChannel;
use codesync_common::grpc::{ServiceChannels, grpc_service_name};
use codesync_common::identity::TokenService;
use codesync_common::rate_limit::RateLimiter;
use codesync_proto::analytics::v1::analytics_service_client::AnalyticsServiceClient;
use codesync_proto::assistant::v1::assistant_service_client::AssistantServiceClient;
use codesync_proto::auth::v1::auth_service_client::AuthServiceClient;
use codesync_proto::documents::v1::documents_service_client::DocumentsServiceClient;
use codesync_proto::execution::v1::execution_service_client::ExecutionServiceClient;
use codesync_proto::history::v1::history_service_client::HistoryServiceClient;
use codesync_proto::notifications::v1::notifications_service_client::NotificationsServiceClient;
use codesync_proto::presence::v1::presence_service_client::PresenceServiceClient;
use codesync_proto::rooms::v1::rooms_service_client::RoomsServiceClient;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use crate::error::ApiError;
pub use crate::extract::{Network, TrustedProxies};
pub use crate::metrics::Metrics as GatewayMetrics;
pub use crate::web::{WebSource, embedded_web_app_present};

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Requests per minute per client IP on `/api/*`.
    pub rate_limit_per_minute: u32,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// The proxies whose `X-Forwarded-For` entries are believed.
    pub proxies: TrustedProxies,
    /// The largest WebSocket message accepted, in bytes.
    pub ws_max_message_bytes: usize,
    /// Bytes queued toward one `/ws/files` socket before its client counts as too slow.
    pub ws_queue_bytes: usize,
    /// Where the web app's files come from.
    pub web_source: WebSource,
    /// A WebSocket client silent this long is dropped (pinged at half of it).
    pub ws_idle_timeout: Duration,
    /// A request's headers must arrive within this (and a keep-alive connection idle this long
    /// is closed).
    pub header_timeout: Duration,
    /// Connections one client address may hold at once.
    pub max_connections_per_address: usize,
    /// `/metrics` on the gateway's own address (else only on `CODESYNC_METRICS_ADDR`).
    pub metrics_on_main_address: bool,
    /// WebSockets and event streams one user may hold open at once.
    pub max_streams_per_user: usize,
}

impl GatewayConfig {
    /// The limits of the HTTP server's connections.
    pub fn server_limits(&self) -> ServerLimits {
        ServerLimits { header_timeout: self.header_timeout, proxies: self.proxies.clone() }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            rate_limit_per_minute: 200,
            max_body_bytes: 2 * 1024 * 1024,
            proxies: TrustedProxies::default(),
            ws_max_message_bytes: 1024 * 1024,
            ws_queue_bytes: 16 * 1024 * 1024,
            web_source: WebSource::Embedded,
            ws_idle_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(10),
            max_connections_per_address: 256,
            metrics_on_main_address: true,
            max_streams_per_user: 64,
        }
    }
}

/// The gRPC clients of the services the gateway talks to.
#[derive(Clone)]
pub struct ServiceClients {
    channels: ServiceChannels,
}

impl ServiceClients {
    pub fn auth(&self) -> AuthServiceClient<GrpcChannel> {
        AuthServiceClient::new(self.channels.auth.clone())
    }

    pub fn rooms(&self) -> RoomsServiceClient<GrpcChannel> {
        use codesync_common::limits::ROOMS_MESSAGE_MAX_BYTES;
        RoomsServiceClient::new(self.channels.rooms.clone())
            .max_decoding_message_size(ROOMS_MESSAGE_MAX_BYTES)
            .max_encoding_message_size(ROOMS_MESSAGE_MAX_BYTES)
    }

    pub fn presence(&self) -> PresenceServiceClient<GrpcChannel> {
        PresenceServiceClient::new(self.channels.presence.clone())
    }

    pub fn assistant(&self) -> AssistantServiceClient<GrpcChannel> {
        AssistantServiceClient::new(self.channels.assistant.clone())
    }

    pub fn execution(&self) -> ExecutionServiceClient<GrpcChannel> {
        ExecutionServiceClient::new(self.channels.execution.clone())
    }

    pub fn history(&self) -> HistoryServiceClient<GrpcChannel> {
        // Versions carry whole files (up to the documents' 16 MiB).
        HistoryServiceClient::new(self.channels.history.clone()).max_decoding_message_size(64 * 1024 * 1024)
    }

    pub fn notifications(&self) -> NotificationsServiceClient<GrpcChannel> {
        NotificationsServiceClient::new(self.channels.notifications.clone())
    }

    pub fn analytics(&self) -> AnalyticsServiceClient<GrpcChannel> {
        AnalyticsServiceClient::new(self.channels.analytics.clone())
    }

    pub fn documents(&self) -> DocumentsServiceClient<GrpcChannel> {
        DocumentsServiceClient::new(self.channels.documents.clone())
            .max_decoding_message_size(64 * 1024 * 1024)
            .max_encoding_message_size(64 * 1024 * 1024)
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct GatewayState {
    clients: ServiceClients,
    tokens: TokenService,
    rate_limiter: Arc<RateLimiter>,
    /// The process's budget of bytes in flight (request bodies, archives being expanded).
    inflight: Arc<codesync_common::budget::InflightBudget>,
    /// The largest body a request without a valid access token may carry.
    anonymous_request_bytes: usize,
    /// The process's budget of bytes queued toward slow WebSocket readers.
    outbound: Arc<codesync_common::budget::InflightBudget>,
    /// Archives built or expanded at once, per user and in all.
    archives: Arc<codesync_common::budget::Slots<String>>,
    metrics: Arc<metrics::Metrics>,
    openapi: Arc<openapi::Served>,
    proxies: TrustedProxies,
    max_body_bytes: usize,
    ws_max_message_bytes: usize,
    ws_queue_bytes: usize,
    ws_idle_timeout: Duration,
    web_source: WebSource,
    /// Turns true when the gateway stops: open WebSockets and event streams end.
    stopping: tokio::sync::watch::Receiver<bool>,
    /// The long-lived connections each user holds.
    streams: Arc<streams::StreamSlots>,
}

fn api_router() -> OpenApiRouter<GatewayState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(routes::auth::router())
        .merge(routes::rooms::router())
        .merge(routes::files::router())
        .merge(routes::folders::router())
        .merge(routes::search::router())
        .merge(routes::archive::router())
        .merge(routes::executions::router())
        .merge(routes::assistant::router())
        .merge(routes::history::router())
        .merge(routes::notifications::router())
        .merge(routes::analytics::router())
        .routes(utoipa_axum::routes!(healthz))
        .routes(utoipa_axum::routes!(readyz))
}

/// The OpenAPI document of the REST API, as served at `/api/openapi.json`.
pub fn openapi() -> serde_json::Value {
    let mut document = serde_json::to_value(api_router().split_for_parts().1).unwrap_or_default();
    openapi::complete(&mut document);
    document
}

/// `/metrics` alone, for `CODESYNC_METRICS_ADDR` (an address of its own, out of the clients'
/// reach): the gateway's HTTP figures when this process runs it (`metrics`, the same the
/// [`router`] was made with), and every service's of this process.
pub fn metrics_router(metrics: Option<Arc<GatewayMetrics>>) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move { metrics_response(metrics.as_deref()) }
        }),
    )
}

fn metrics_response(metrics: Option<&metrics::Metrics>) -> Response {
    // Two encodings in one exposition: the first loses its end-of-exposition marker.
    let gateway = metrics.map(metrics::Metrics::encode).unwrap_or_default();
    let mut text = gateway.strip_suffix("# EOF\n").unwrap_or(&gateway).to_string();
    text.push_str(&codesync_common::metrics::encode());
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// What the gateway shares with the gRPC port of its process: one bucket per client address
/// (`CODESYNC_RATE_LIMIT_PER_MINUTE`, through Redis when there is one, so every gateway and
/// service shares it), and the budget of bytes in flight.
#[derive(Clone)]
pub struct ProcessLimits {
    pub client_addresses: Arc<RateLimiter>,
    pub inflight: Arc<codesync_common::budget::InflightBudget>,
    /// The largest request body (or gRPC message) a caller without a valid access token sends.
    pub anonymous_request_bytes: usize,
    /// Bytes queued toward slow readers (WebSockets here, documents connections beside them).
    pub outbound: Arc<codesync_common::budget::InflightBudget>,
    /// Expensive requests (archives) at once, per caller and in all.
    pub expensive: codesync_common::budget::ExpensiveLimits,
}

/// The gateway's whole HTTP application. When `stopping` turns true, its WebSockets close with
/// 1012 (service restart) and its event streams end, so that clients reconnect elsewhere.
pub fn router(
    channels: ServiceChannels,
    tokens: TokenService,
    config: &GatewayConfig,
    stopping: tokio::sync::watch::Receiver<bool>,
    limits: ProcessLimits,
    metrics: Arc<GatewayMetrics>,
) -> Router {
    let (api_routes, _) = api_router().split_for_parts();
    let state = GatewayState {
        clients: ServiceClients { channels },
        tokens,
        rate_limiter: limits.client_addresses,
        inflight: limits.inflight,
        anonymous_request_bytes: limits.anonymous_request_bytes,
        outbound: limits.outbound,
        archives: codesync_common::budget::expensive_slots("archives", limits.expensive),
        metrics,
        openapi: Arc::new(openapi::Served::new(openapi())),
        proxies: config.proxies.clone(),
        max_body_bytes: config.max_body_bytes,
        ws_max_message_bytes: config.ws_max_message_bytes,
        ws_queue_bytes: config.ws_queue_bytes,
        ws_idle_timeout: config.ws_idle_timeout,
        web_source: config.web_source.clone(),
        stopping,
        streams: streams::StreamSlots::new(config.max_streams_per_user),
    };
    let metrics_here = config.metrics_on_main_address;
    let routes = api_routes.route("/api/openapi.json", get(openapi_document));
    let routes = if metrics_here { routes.route("/metrics", get(prometheus_metrics)) } else { routes };
    routes
        .route("/ws/files/{file_id}", get(ws::files::file_socket))
        .route("/ws/rooms/{room_id}", get(ws::rooms::room_socket))
        .route_layer(middleware::from_fn(metrics::remember_route))
        .fallback(web::fallback)
        .method_not_allowed_fallback(error::method_not_allowed_fallback)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), body_limit::limit_declared_length))
        .layer(middleware::from_fn_with_state(state.clone(), body_limit::reserve_inflight))
        .layer(middleware::from_fn_with_state(state.clone(), rate_limit::limit_per_ip))
        .layer(middleware::from_fn_with_state(state.clone(), server::mark_request))
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(middleware::from_fn(rate_limit::api_headers))
        .layer(middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let span = tracing::info_span!("http", method = %request.method(), path = %request.uri().path());
            codesync_common::telemetry::adopt_trace_context(&span, request.headers());
            span
        }))
        .with_state(state)
}

pub use crate::server::{ServerLimits, serve};

#[derive(serde::Serialize, utoipa::ToSchema)]
struct HealthBody {
    status: &'static str,
}

/// Liveness: the gateway answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "alive", body = HealthBody)))]
async fn healthz() -> Json<HealthBody> {
    Json(HealthBody { status: "ok" })
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct ReadinessBody {
    status: &'static str,
    /// Each service's gRPC health: `SERVING`, `NOT_SERVING` or `UNREACHABLE`.
    services: std::collections::BTreeMap<&'static str, String>,
}

/// Readiness: every service answers its gRPC health check with SERVING.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "every service is serving", body = ReadinessBody),
    (status = 503, description = "some service is not", body = ReadinessBody),
))]
async fn readyz(State(state): State<GatewayState>) -> Response {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let checks = state.clients.channels.by_name().map(|(service, channel)| {
        let mut client = HealthClient::new(channel.clone());
        async move {
            let mut request = tonic::Request::new(HealthCheckRequest { service: grpc_service_name(service) });
            request.set_timeout(Duration::from_secs(2));
            let status = match client.check(request).await {
                Ok(response) => ServingStatus::try_from(response.into_inner().status)
                    .map_or_else(|_| "UNKNOWN".to_string(), |status| status.as_str_name().to_string()),
                Err(_) => "UNREACHABLE".to_string(),
            };
            (service, status)
        }
    });
    let services: std::collections::BTreeMap<_, _> = futures::future::join_all(checks).await.into_iter().collect();
    let ready = services.values().all(|status| status == "SERVING");
    let status_code = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = ReadinessBody { status: if ready { "ready" } else { "not_ready" }, services };
    (status_code, Json(body)).into_response()
}

async fn openapi_document(State(state): State<GatewayState>) -> Response {
    let document = state.openapi.current(&state.clients).await;
    let mut response = document.as_str().to_string().into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

async fn prometheus_metrics(State(state): State<GatewayState>) -> Response {
    metrics_response(Some(&state.metrics))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_openapi_document_covers_the_rest_contract() {
        let document = super::openapi();
        let paths: Vec<&str> = document["paths"].as_object().unwrap().keys().map(String::as_str).collect();
        for expected in [
            "/api/auth/register",
            "/api/auth/login",
            "/api/auth/refresh",
            "/api/auth/logout",
            "/api/auth/me",
            "/api/rooms",
            "/api/rooms/join",
            "/api/rooms/{room_id}",
            "/api/rooms/{room_id}/invite-code",
            "/api/rooms/{room_id}/members",
            "/api/rooms/{room_id}/members/{user_id}",
            "/api/rooms/{room_id}/files",
            "/api/files/{file_id}",
            "/api/executions",
            "/api/ai/stream",
            "/api/history/file/{file_id}",
            "/api/history/version/{version_id}",
            "/api/history/diff",
            "/api/history/restore/{version_id}",
            "/api/history/room/{room_id}/events",
            "/api/notifications",
            "/api/notifications/read-all",
            "/api/analytics/overview",
            "/api/analytics/executions",
            "/api/analytics/ai",
            "/api/analytics/active-rooms",
            "/api/analytics/events",
            "/healthz",
            "/readyz",
        ] {
            assert!(paths.contains(&expected), "{expected} is missing from {paths:?}");
        }
        let json = document.to_string();
        assert!(json.contains("ErrorBody") && json.contains("bearer"));
    }
}
