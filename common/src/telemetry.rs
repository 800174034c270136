//! Logs and traces: a `tracing` subscriber writing text or JSON, plus an
//! OpenTelemetry OTLP exporter when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and
//! W3C trace-context propagation across HTTP and gRPC hops.

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

const DEFAULT_LOG_FILTER: &str = "info,sqlx=warn,h2=warn,hyper=warn,tower=warn,opentelemetry=warn";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid log filter in CODESYNC_LOG or RUST_LOG: {0}")]
    Filter(String),
    #[error("cannot set up the OTLP trace exporter: {0}")]
    Exporter(String),
    #[error("a tracing subscriber is already installed: {0}")]
    AlreadyInstalled(String),
}

/// Flushes buffered spans when dropped.
#[must_use = "traces are flushed when the guard is dropped"]
pub struct TelemetryGuard {
    tracer_provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.tracer_provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Installs the global subscriber. `service_name` labels exported traces.
pub fn init(log_format: LogFormat, service_name: &str) -> Result<TelemetryGuard, TelemetryError> {
    let filter_text = std::env::var("CODESYNC_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| DEFAULT_LOG_FILTER.to_string());
    let filter = EnvFilter::try_new(&filter_text).map_err(|error| TelemetryError::Filter(error.to_string()))?;

    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let tracer_provider = match std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Ok(endpoint) if !endpoint.trim().is_empty() => Some(otlp_tracer_provider(service_name)?),
        _ => None,
    };
    let otel_layer = tracer_provider
        .as_ref()
        .map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer("codesync")));

    let (text_layer, json_layer) = match log_format {
        LogFormat::Text => (Some(tracing_subscriber::fmt::layer().with_target(false)), None),
        LogFormat::Json => (None, Some(tracing_subscriber::fmt::layer().json().flatten_event(true))),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(text_layer)
        .with(json_layer)
        .with(otel_layer)
        .try_init()
        .map_err(|error| TelemetryError::AlreadyInstalled(error.to_string()))?;
    Ok(TelemetryGuard { tracer_provider })
}

fn otlp_tracer_provider(service_name: &str) -> Result<SdkTracerProvider, TelemetryError> {
    // Endpoint, headers and timeout come from the standard OTEL_EXPORTER_OTLP_* variables.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|error| TelemetryError::Exporter(error.to_string()))?;
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(service_name.to_string()).build();
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
}

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let Ok(key) = tonic::metadata::MetadataKey::from_bytes(key.as_bytes()) else {
            return;
        };
        if let Ok(value) = value.parse() {
            self.0.insert(key, value);
        }
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Writes the current span's trace context into outgoing gRPC metadata.
pub fn inject_trace_context(metadata: &mut tonic::metadata::MetadataMap) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut MetadataInjector(metadata));
    });
}

/// The span of one incoming gRPC call, continuing the caller's trace: the same
/// whether the call came over the network or from within the process.
pub fn grpc_request_span<B>(request: &http::Request<B>) -> tracing::Span {
    let span = tracing::info_span!("grpc", path = %request.uri().path());
    adopt_trace_context(&span, request.headers());
    span
}

/// Makes `span` a child of the trace context in incoming HTTP or gRPC headers.
pub fn adopt_trace_context(span: &tracing::Span, headers: &http::HeaderMap) {
    let parent =
        opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(headers)));
    let _ = span.set_parent(parent);
}
