//! Prometheus metrics of the gateway, served at `/metrics`.

use std::sync::atomic::AtomicU64;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::GatewayState;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    method: String,
    route: String,
}

type HistogramConstructor = fn() -> Histogram;

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<DurationLabels, Histogram, HistogramConstructor>,
    in_flight: Gauge<i64, std::sync::atomic::AtomicI64>,
    pub rate_limited: Counter<u64, AtomicU64>,
}

fn duration_histogram() -> Histogram {
    // 1 ms to about 33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("codesync");
        let requests = Family::<RequestLabels, Counter>::default();
        let durations = Family::<DurationLabels, Histogram, HistogramConstructor>::new_with_constructor(
            duration_histogram as HistogramConstructor,
        );
        let in_flight = Gauge::default();
        let rate_limited = Counter::default();
        registry.register("http_requests", "HTTP requests answered, by route and status", requests.clone());
        registry.register("http_request_duration_seconds", "Time to answer HTTP requests", durations.clone());
        registry.register("http_requests_in_flight", "HTTP requests being answered", in_flight.clone());
        registry.register("http_rate_limited", "HTTP requests refused by the per-IP rate limit", rate_limited.clone());
        Self { registry, requests, durations, in_flight, rate_limited }
    }
}

impl Metrics {
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(%error, "cannot encode metrics");
        }
        text
    }
}

/// The route template a request matched, carried out to [`track`] in the response.
#[derive(Clone)]
struct MatchedRoute(String);

/// Inside routing: remembers the matched route template (never the raw path,
/// which would give every room id its own time series).
pub async fn remember_route(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|path| path.as_str().to_string());
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(MatchedRoute(route));
    }
    response
}

/// Outside routing: counts and times every request, unmatched ones included.
pub async fn track(State(state): State<GatewayState>, request: Request, next: Next) -> Response {
    let metrics = &state.metrics;
    let method = request.method().as_str().to_string();
    let started = Instant::now();
    metrics.in_flight.inc();
    let response = next.run(request).await;
    metrics.in_flight.dec();
    let route = response
        .extensions()
        .get::<MatchedRoute>()
        .map_or_else(|| "unmatched".to_string(), |MatchedRoute(route)| route.clone());
    metrics
        .durations
        .get_or_create(&DurationLabels { method: method.clone(), route: route.clone() })
        .observe(started.elapsed().as_secs_f64());
    metrics.requests.get_or_create(&RequestLabels { method, route, status: response.status().as_u16() }).inc();
    response
}
