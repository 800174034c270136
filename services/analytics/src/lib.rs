//! The analytics service: what administrators see of the platform. It consumes every topic of
//! the event bus as the group `analytics`, keeps each event with the figures it aggregates
//! (`analytics_events`) and each room's members and who is in it (`analytics_rooms`), and
//! answers totals, runs by language, answers by mode, active rooms, the event log, and the
//! health and latency of every service (their gRPC health checks).
//!
//! Its gRPC contract is `codesync.analytics.v1.AnalyticsService` in `proto/`; every call needs
//! an administrator (the first account registered, or one made with `codesync admin grant`).
#![forbid(unsafe_code)]

pub mod store;

use std::sync::Arc;
use std::time::{Duration, Instant};

use codesync_common::consumer::{self, HandleError};
use codesync_common::events::{Event, EventBus, KIND_NAMES, Kind, TOPICS};
use codesync_common::grpc::{CallContext, ServiceChannels, grpc_service_name};
use codesync_common::identity::TokenService;
use codesync_common::{ErrorCode, ServiceError, ServiceResult, new_id, now_ms};
use codesync_proto::analytics::v1 as pb;
use codesync_proto::analytics::v1::analytics_service_server::{AnalyticsService, AnalyticsServiceServer};
use codesync_proto::auth::v1::auth_service_client::AuthServiceClient;
use codesync_proto::execution::v1::ExecutionStatus;
use tonic::{Request, Response, Status};

use crate::store::{AnalyticsStore, Recorded, RoomChange};

/// The consumer group of this service.
pub const CONSUMER_GROUP: &str = "analytics";
const DAY_MS: i64 = 24 * 3600 * 1000;
/// A service that has not answered its health check within this is reported unreachable.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// The gRPC implementation of `AnalyticsService`.
#[derive(Clone)]
pub struct AnalyticsGrpcService {
    store: AnalyticsStore,
    tokens: TokenService,
    channels: ServiceChannels,
}

impl AnalyticsGrpcService {
    /// Starts consuming every topic.
    pub fn new(
        store: AnalyticsStore,
        tokens: TokenService,
        events: Arc<dyn EventBus>,
        channels: ServiceChannels,
    ) -> Self {
        let consuming = store.clone();
        tokio::spawn(consumer::run(events, CONSUMER_GROUP, &TOPICS, consumer::StartFrom::Earliest, move |event| {
            let store = consuming.clone();
            async move { record(&store, &event).await }
        }));
        Self { store, tokens, channels }
    }

    pub fn into_grpc_server(self) -> AnalyticsServiceServer<Self> {
        AnalyticsServiceServer::new(self)
    }

    async fn require_admin<T>(&self, request: &Request<T>) -> ServiceResult<()> {
        let caller = self.tokens.require_caller(request.metadata())?;
        let context = CallContext::from_request(request, &self.tokens);
        let auth = AuthServiceClient::new(self.channels.auth.clone());
        codesync_common::access::require_admin(
            &auth,
            &context,
            &caller,
            "only administrators see the platform's analytics",
        )
        .await
    }
}

/// Keeps one event and what it changes about its room.
pub async fn record(store: &AnalyticsStore, event: &Event) -> Result<(), HandleError> {
    let Some((recorded, room_change)) = what_to_record(event)? else { return Ok(()) };
    store.record(&recorded, room_change).await.map_err(HandleError::transient)?;
    Ok(())
}

/// The row an event becomes, and its room's change; `None` for the notifications service's
/// announcements of stored notifications (bookkeeping for live pushes, not something that happened).
pub fn what_to_record(event: &Event) -> Result<Option<(Recorded, Option<RoomChange>)>, HandleError> {
    if let Kind::NotificationCreated(_) = event.kind {
        return Ok(None);
    }
    let mut recorded = Recorded {
        id: event.id.clone(),
        topic: event.topic().to_string(),
        event_type: event.kind_name().to_string(),
        user_id: event.actor().unwrap_or_default().to_string(),
        room_id: event.room_id().unwrap_or_default().to_string(),
        first_token_ms: -1,
        metadata_json: event.details().to_string(),
        created_at_ms: event.occurred_at_ms,
        ..Recorded::default()
    };
    let mut room_change = None;
    match &event.kind {
        Kind::ExecutionFinished(run) => {
            recorded.subject = run.language.clone();
            recorded.status = ExecutionStatus::api_name_of(run.status).to_string();
            recorded.duration_ms = run.wall_time_ms;
            if recorded.subject.is_empty() || run.status == ExecutionStatus::Unspecified as i32 {
                return Err(HandleError::poisoned("a run without its language or status"));
            }
        }
        Kind::AiRequestFinished(answer) => {
            recorded.subject = answer.mode.clone();
            recorded.status = answer.status.clone();
            recorded.duration_ms = answer.latency_ms;
            recorded.first_token_ms = answer.time_to_first_token_ms;
            if recorded.subject.is_empty() {
                return Err(HandleError::poisoned("an assistant answer without its mode"));
            }
        }
        Kind::Activity(activity) => {
            recorded.amount = i64::try_from(activity.updates).unwrap_or(i64::MAX);
            // Activity is per file and has many editors: it is nobody's in particular.
            recorded.user_id = String::new();
        }
        Kind::RoomPresence(presence) => {
            room_change = Some(RoomChange::Online(i64::try_from(presence.online).unwrap_or(i64::MAX)));
        }
        Kind::RoomCreated(created) => room_change = Some(RoomChange::Created { name: created.room_name.clone() }),
        // A membership event is about the member, whoever acted.
        Kind::MemberJoined(joined) => {
            recorded.user_id = joined.user_id.clone();
            room_change = Some(RoomChange::MemberJoined { name: joined.room_name.clone() });
        }
        Kind::MemberRoleChanged(changed) => recorded.user_id = changed.user_id.clone(),
        Kind::MemberRemoved(removed) => {
            recorded.user_id = removed.user_id.clone();
            room_change = Some(RoomChange::MemberRemoved);
        }
        Kind::RoomDeleted(_) => room_change = Some(RoomChange::Deleted),
        // Everything else is kept as it came: it shows in the log and counts by type.
        _ => {}
    }
    if room_change.is_some() && recorded.room_id.is_empty() {
        return Err(HandleError::poisoned(format!("a {} event without room_id", event.kind_name())));
    }
    Ok(Some((recorded, room_change)))
}

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

#[cfg(test)]
mod tests {
    use codesync_common::db::Database;
    use codesync_common::events::schema;

    use super::*;

    #[tokio::test]
    async fn figures_are_the_counts_of_the_events_each_counted_once() {
        let directory = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", directory.path().join("analytics.db").display());
        let store = AnalyticsStore::new(Database::connect(&url).await.unwrap());
        store.migrate().await.unwrap();
        let user = |kind: fn(schema::UserChange) -> Kind| {
            Event::new("k", kind(schema::UserChange { user_id: "ada".into(), username: "ada".into() }))
        };
        let run = |user_id: &str, room_id: &str, language: &str, status: ExecutionStatus, wall_time_ms: i64| {
            let run = schema::ExecutionFinished {
                user_id: user_id.into(),
                room_id: room_id.into(),
                language: language.into(),
                status: status.into(),
                wall_time_ms,
                ..Default::default()
            };
            Event::new("k", Kind::ExecutionFinished(run))
        };
        let room = |name: &str| schema::RoomChange {
            room_id: "r1".into(),
            room_name: name.into(),
            by: "ada".into(),
            ..Default::default()
        };
        let joined = schema::MemberChange {
            room_id: "r1".into(),
            room_name: "Pairing".into(),
            user_id: "bob".into(),
            ..Default::default()
        };
        let answer = schema::AiRequestFinished {
            user_id: "ada".into(),
            mode: "explain".into(),
            status: "ok".into(),
            latency_ms: 1200,
            time_to_first_token_ms: 300,
            ..Default::default()
        };
        let events = [
            user(Kind::UserRegistered),
            user(Kind::SessionStarted),
            user(Kind::SessionStarted),
            Event::new("r1", Kind::RoomCreated(room("Pairing"))),
            Event::new("r1", Kind::MemberJoined(joined)),
            Event::new("r1", Kind::RoomPresence(schema::RoomPresence { room_id: "r1".into(), online: 2 })),
            Event::new(
                "r1",
                Kind::Activity(schema::Activity { room_id: "r1".into(), updates: 40, ..Default::default() }),
            ),
            run("ada", "r1", "python", ExecutionStatus::Ok, 40),
            run("ada", "", "python", ExecutionStatus::RuntimeError, 60),
            run("bob", "", "cpp", ExecutionStatus::Ok, 700),
            Event::new("ada", Kind::AiRequestFinished(answer)),
        ];
        for event in &events {
            record(&store, event).await.unwrap();
        }
        // Delivered again: counted once.
        record(&store, &events[7]).await.unwrap();
        record(&store, &events[4]).await.unwrap();

        let overview = store.overview(0).await.unwrap();
        assert_eq!(
            (
                overview.users,
                overview.sessions,
                overview.rooms,
                overview.executions,
                overview.ai_calls,
                overview.collaboration_ops
            ),
            (1, 2, 1, 3, 1, 40)
        );
        assert_eq!(overview.online_users, 2);
        let executions = store.execution_stats(0).await.unwrap();
        let python = executions.languages.iter().find(|stats| stats.language == "python").unwrap();
        assert_eq!((python.count, python.average_wall_time_ms, python.success_rate), (2, 50.0, 0.5));
        assert_eq!(executions.wall_time_histogram.iter().map(|bucket| bucket.count).sum::<i64>(), 3);
        assert_eq!(executions.wall_time_histogram[0].count, 1, "40 ms is in the first bucket (<= 50 ms)");
        let ai = store.ai_stats(0).await.unwrap();
        assert_eq!(
            (ai.modes[0].mode.as_str(), ai.modes[0].count, ai.modes[0].average_time_to_first_token_ms),
            ("explain", 1, 300.0)
        );
        let rooms = store.active_rooms(0, 10).await.unwrap();
        assert_eq!((rooms[0].name.as_str(), rooms[0].member_count, rooms[0].online_count), ("Pairing", 2, 2));
        assert_eq!(store.recent_events("execution_finished", "", 10).await.unwrap().len(), 3);

        let poisoned = run("x", "", "", ExecutionStatus::Ok, 1);
        assert!(matches!(record(&store, &poisoned).await, Err(HandleError::Poisoned(_))));
    }
}
