//! The gRPC adapter: `codesync.analytics.v1.AnalyticsService` on [`AnalyticsGrpcService`].

use std::time::{Duration, Instant};

use codesync_common::events::{KIND_NAMES, TOPICS};
use codesync_common::grpc::grpc_service_name;
use codesync_common::{ErrorCode, ServiceError, new_id, now_ms};
use codesync_proto::analytics::v1 as pb;
use codesync_proto::analytics::v1::analytics_service_server::AnalyticsService;
use tonic::{Request, Response, Status};

use crate::AnalyticsGrpcService;
use crate::store::Recorded;

const DAY_MS: i64 = 24 * 3600 * 1000;
/// A service that has not answered its health check within this is reported unreachable.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

#[tonic::async_trait]
impl AnalyticsService for AnalyticsGrpcService {
    async fn get_overview(&self, request: Request<pb::GetOverviewRequest>) -> Result<Response<pb::Overview>, Status> {
        self.require_admin(&request).await?;
        Ok(Response::new(self.store.overview(now_ms() - DAY_MS).await?))
    }

    async fn get_execution_stats(
        &self,
        request: Request<pb::GetExecutionStatsRequest>,
    ) -> Result<Response<pb::ExecutionStats>, Status> {
        self.require_admin(&request).await?;
        Ok(Response::new(self.store.execution_stats(request.get_ref().since_ms.max(0)).await?))
    }

    async fn get_ai_stats(&self, request: Request<pb::GetAiStatsRequest>) -> Result<Response<pb::AiStats>, Status> {
        self.require_admin(&request).await?;
        Ok(Response::new(self.store.ai_stats(request.get_ref().since_ms.max(0)).await?))
    }

    async fn list_active_rooms(
        &self,
        request: Request<pb::ListActiveRoomsRequest>,
    ) -> Result<Response<pb::ListActiveRoomsResponse>, Status> {
        self.require_admin(&request).await?;
        let limit = match request.get_ref().limit {
            0 => 10,
            limit => limit.min(100),
        };
        let rooms = self.store.active_rooms(now_ms() - DAY_MS, limit).await?;
        Ok(Response::new(pb::ListActiveRoomsResponse { rooms }))
    }

    async fn list_events(
        &self,
        request: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        self.require_admin(&request).await?;
        let request = request.into_inner();
        let limit = match request.limit {
            0 => 100,
            limit => limit.min(500),
        };
        let events = self.store.recent_events(request.event_type.trim(), request.topic.trim(), limit).await?;
        Ok(Response::new(pb::ListEventsResponse { events }))
    }

    async fn get_service_health(
        &self,
        request: Request<pb::GetServiceHealthRequest>,
    ) -> Result<Response<pb::ServiceHealthReport>, Status> {
        self.require_admin(&request).await?;
        let checks = self.channels.by_name().map(|(service, channel)| {
            let mut client = tonic_health::pb::health_client::HealthClient::new(channel.clone());
            async move {
                let mut request =
                    tonic::Request::new(tonic_health::pb::HealthCheckRequest { service: grpc_service_name(service) });
                request.set_timeout(HEALTH_TIMEOUT);
                let started = Instant::now();
                let answer = tokio::time::timeout(HEALTH_TIMEOUT, client.check(request)).await;
                let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
                let status = match answer {
                    Ok(Ok(response)) => {
                        tonic_health::pb::health_check_response::ServingStatus::try_from(response.into_inner().status)
                            .map_or_else(|_| "UNKNOWN".to_string(), |status| status.as_str_name().to_string())
                    }
                    Ok(Err(_)) | Err(_) => "UNREACHABLE".to_string(),
                };
                pb::ServiceHealth { service: service.to_string(), status, latency_ms }
            }
        });
        let services = futures::future::join_all(checks).await;
        Ok(Response::new(pb::ServiceHealthReport { services }))
    }

    async fn record_event(
        &self,
        request: Request<pb::RecordEventRequest>,
    ) -> Result<Response<pb::RecordEventResponse>, Status> {
        self.require_admin(&request).await?;
        let event = request
            .into_inner()
            .event
            .ok_or_else(|| ServiceError::invalid(ErrorCode::MissingEvent, "send an event"))?;
        if !TOPICS.contains(&event.topic.as_str()) || event.event_type.trim().is_empty() {
            return Err(
                ServiceError::invalid(ErrorCode::InvalidEvent, "an event needs a known topic and a type").into()
            );
        }
        let metadata: serde_json::Value = if event.metadata_json.trim().is_empty() {
            serde_json::json!({})
        } else {
            serde_json::from_str(&event.metadata_json)
                .ok()
                .filter(serde_json::Value::is_object)
                .ok_or_else(|| ServiceError::invalid(ErrorCode::InvalidMetadata, "metadata must be a JSON object"))?
        };
        // The bus's kinds have their schema (proto/codesync/events/v1) and come from the services
        // that own them; this records what happens outside the bus.
        if KIND_NAMES.contains(&event.event_type.as_str()) {
            return Err(ServiceError::invalid(
                ErrorCode::InvalidEvent,
                format!("{} events come from their service on the event bus, not from RecordEvent", event.event_type),
            )
            .into());
        }
        let recorded = Recorded {
            id: if codesync_common::is_valid_id(&event.id) { event.id } else { new_id() },
            topic: event.topic,
            event_type: event.event_type,
            user_id: event.user_id,
            room_id: event.room_id,
            first_token_ms: -1,
            metadata_json: metadata.to_string(),
            created_at_ms: if event.created_at_ms > 0 { event.created_at_ms } else { now_ms() },
            ..Recorded::default()
        };
        self.store.record(&recorded, None).await?;
        Ok(Response::new(pb::RecordEventResponse {}))
    }
}
