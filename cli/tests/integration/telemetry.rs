//! With OTEL_EXPORTER_OTLP_ENDPOINT set, spans are exported over OTLP/gRPC,
//! and one request is one trace across the HTTP and gRPC hops.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AttributeValue;

use crate::harness::Cluster;

#[derive(Debug, Clone)]
struct ExportedSpan {
    service_name: String,
    name: String,
    trace_id: Vec<u8>,
}

#[derive(Default, Clone)]
struct Collector {
    spans: Arc<Mutex<Vec<ExportedSpan>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service_name = resource_spans
                .resource
                .iter()
                .flat_map(|resource| resource.attributes.iter())
                .find(|attribute| attribute.key == "service.name")
                .and_then(|attribute| attribute.value.as_ref())
                .and_then(|value| match &value.value {
                    Some(AttributeValue::StringValue(text)) => Some(text.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope_spans in resource_spans.scope_spans {
                for span in scope_spans.spans {
                    spans.push(ExportedSpan {
                        service_name: service_name.clone(),
                        name: span.name,
                        trace_id: span.trace_id,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

#[tokio::test]
async fn traces_are_exported_over_otlp_and_cross_the_grpc_hop() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(collector.clone()))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    let server = tokio::spawn(server);

    let cluster =
        Cluster::one_process(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint), ("OTEL_BSP_SCHEDULE_DELAY", "100")]).await;
    cluster.register("ada").await;

    let started = Instant::now();
    let shared_trace = loop {
        let spans = collector.spans.lock().unwrap().clone();
        let shared = spans
            .iter()
            .filter(|span| span.name == "http")
            .find(|http_span| spans.iter().any(|span| span.name == "grpc" && span.trace_id == http_span.trace_id))
            .cloned();
        if let Some(span) = shared {
            break span;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no HTTP and gRPC spans of one trace arrived: {spans:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(shared_trace.service_name, "codesync");
    assert_eq!(shared_trace.trace_id.len(), 16);
    server.abort();
}
