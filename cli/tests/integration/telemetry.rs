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

/// Every process's figures at `CODESYNC_METRICS_ADDR`: the gateway's HTTP ones and the services'
/// (documents' group commits, execution's slots), in one exposition, and none on the clients'
/// address.
#[tokio::test]
async fn the_services_figures_are_served_at_the_metrics_address() {
    use reqwest::StatusCode;
    use serde_json::json;
    let metrics_addr = format!("127.0.0.1:{}", crate::harness::free_port());
    // With Kafka, events go through the outbox, whose relay reports too.
    let broker = codesync_common::kafka::test_support::TansuBroker::start().await;
    let cluster =
        Cluster::one_process(&[("CODESYNC_METRICS_ADDR", &metrics_addr), ("CODESYNC_KAFKA_BROKERS", &broker.address)])
            .await;
    let owner = cluster.register("owner").await;
    let (status, room) = cluster.post("/api/rooms", owner.token(), json!({"name": "M", "is_public": false})).await;
    assert_eq!(status, StatusCode::CREATED, "{room}");
    let (status, file) = cluster
        .post(&format!("/api/rooms/{}/files", room["id"].as_str().unwrap()), owner.token(), json!({"filename": "a.py"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    // An edit over the collaboration socket: acknowledged once a group commit made it durable.
    let url = cluster.ws_url(&format!("/ws/files/{}?token={}", file["id"].as_str().unwrap(), owner.access_token));
    let mut editor = crate::yjs_client::YjsClient::new(url);
    editor.connect().await.unwrap();
    editor.insert(0, "print(1)\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    while editor.received().saved == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let url = format!("http://{metrics_addr}/metrics");
    // The consumer groups' lag comes with librdkafka's statistics, every 5 s.
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = cluster.http.get(&url).send().await.unwrap().text().await.unwrap();
        let count = |series: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(series))
                .and_then(|value| value.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        let moved = count("codesync_documents_commits_total ") > 0
            && count("codesync_outbox_relayed_events_total ") > 0
            && text.contains("codesync_consumer_lag{");
        if moved || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for series in [
        "codesync_http_requests_total{",
        "codesync_documents_commits_total ",
        "codesync_documents_commit_seconds_total ",
        "codesync_documents_loads_total ",
        "codesync_execution_runs_running ",
        "codesync_execution_slots ",
        "codesync_outbox_relaying 1",
        "codesync_gateway_streams_open 1",
        "codesync_outbox_backlog{topic=",
        "codesync_consumer_lag{group=\"codesync-notifications\",topic=\"room-events\"}",
        "codesync_presence_sessions ",
        "codesync_presence_shared 0",
        "codesync_history_versions_total{kind=\"checkpoint\"}",
    ] {
        assert!(text.contains(series), "{series} is missing:\n{text}");
    }
    assert!(!text.contains("codesync_documents_commits_total 0\n"), "the edit was committed:\n{text}");
    assert!(!text.contains("codesync_outbox_relayed_events_total 0\n"), "the events were relayed:\n{text}");
    // The Grafana dashboard (deploy/grafana/codesync.json) plots only series that exist.
    let dashboard = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/grafana/codesync.json"))
        .expect("the dashboard");
    let mut plotted: Vec<&str> = dashboard
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("codesync_"))
        .collect();
    plotted.sort_unstable();
    plotted.dedup();
    assert!(plotted.len() >= 10, "{plotted:?}");
    for series in plotted {
        let family = series.strip_suffix("_bucket").unwrap_or(series);
        assert!(text.contains(family), "the dashboard plots {series}, which /metrics does not serve");
    }
    assert_eq!(text.matches("# EOF").count(), 1, "one exposition:\n{text}");
    assert!(text.ends_with("# EOF\n"));
    let public = cluster.http.get(format!("{}/metrics", cluster.base_url)).send().await.unwrap().text().await.unwrap();
    assert!(!public.contains("# TYPE"), "not on the clients' address: {public}");
}
