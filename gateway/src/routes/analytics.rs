//! `/api/analytics`: the administrators' dashboard: totals, runs by language, answers by mode,
//! active rooms, the event log, and the health of every service.

use axum::extract::State;
use codesync_proto::analytics::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::GatewayState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiQuery, SignedInAdmin};
use crate::routes::{limit_param, time_param, timestamp};

pub fn router() -> OpenApiRouter<GatewayState> {
    OpenApiRouter::new()
        .routes(routes!(overview))
        .routes(routes!(executions))
        .routes(routes!(ai))
        .routes(routes!(active_rooms))
        .routes(routes!(events))
        .routes(routes!(health))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OverviewBody {
    /// Accounts registered.
    pub users: i64,
    /// Sessions begun: registrations and sign-ins.
    pub sessions: i64,
    /// Rooms that exist.
    pub rooms: i64,
    pub executions: i64,
    pub ai_calls: i64,
    /// Collaborative edits applied to documents.
    pub collaboration_ops: i64,
    pub executions_last_day: i64,
    pub ai_calls_last_day: i64,
    pub collaboration_ops_last_day: i64,
    /// People in rooms now.
    pub online_users: i64,
}

/// Totals since the installation began, and of the last 24 hours.
#[utoipa::path(get, path = "/api/analytics/overview", tag = "analytics", security(("bearer" = [])), responses(
    (status = 200, description = "totals", body = OverviewBody),
    (status = 403, description = "not an administrator", body = ErrorBody),
))]
async fn overview(
    State(state): State<GatewayState>,
    admin: SignedInAdmin,
) -> Result<axum::Json<OverviewBody>, ApiError> {
    let overview =
        state.clients.analytics().get_overview(admin.context.request(pb::GetOverviewRequest {})).await?.into_inner();
    Ok(axum::Json(OverviewBody {
        users: overview.users,
        sessions: overview.sessions,
        rooms: overview.rooms,
        executions: overview.executions,
        ai_calls: overview.ai_calls,
        collaboration_ops: overview.collaboration_ops,
        executions_last_day: overview.executions_last_day,
        ai_calls_last_day: overview.ai_calls_last_day,
        collaboration_ops_last_day: overview.collaboration_ops_last_day,
        online_users: overview.online_users,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SinceParams {
    /// Only what happened since: milliseconds since 1970, an RFC 3339 time, or a date (UTC).
    #[param(schema_with = super::time_query_schema)]
    pub since: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BucketBody {
    /// The bucket holds durations up to this (and above the bucket before); `null` for the
    /// last bucket, which holds everything longer.
    #[schema(required = true)]
    pub upper_ms: Option<i64>,
    pub count: i64,
}

fn buckets(histogram: Vec<pb::LatencyBucket>) -> Vec<BucketBody> {
    histogram
        .into_iter()
        .map(|bucket| BucketBody { upper_ms: (bucket.upper_ms > 0).then_some(bucket.upper_ms), count: bucket.count })
        .collect()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LanguageStatsBody {
    pub language: String,
    pub count: i64,
    pub average_wall_time_ms: f64,
    /// Runs with status `ok`, from 0 to 1.
    pub success_rate: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExecutionStatsBody {
    pub languages: Vec<LanguageStatsBody>,
    pub wall_time_histogram: Vec<BucketBody>,
}

/// Runs by language: how many, how long on average, how many succeeded; and their wall times.
#[utoipa::path(get, path = "/api/analytics/executions", tag = "analytics", security(("bearer" = [])), params(SinceParams), responses(
    (status = 200, description = "runs by language", body = ExecutionStatsBody),
    (status = 403, description = "not an administrator", body = ErrorBody),
))]
async fn executions(
    State(state): State<GatewayState>,
    admin: SignedInAdmin,
    ApiQuery(params): ApiQuery<SinceParams>,
) -> Result<axum::Json<ExecutionStatsBody>, ApiError> {
    let request = pb::GetExecutionStatsRequest { since_ms: time_param("since", params.since.as_deref())? };
    let stats = state.clients.analytics().get_execution_stats(admin.context.request(request)).await?.into_inner();
    Ok(axum::Json(ExecutionStatsBody {
        languages: stats
            .languages
            .into_iter()
            .map(|language| LanguageStatsBody {
                language: language.language,
                count: language.count,
                average_wall_time_ms: language.average_wall_time_ms,
                success_rate: language.success_rate,
            })
            .collect(),
        wall_time_histogram: buckets(stats.wall_time_histogram),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModeStatsBody {
    pub mode: String,
    pub count: i64,
    pub average_latency_ms: f64,
    /// Answers that ended well, from 0 to 1.
    pub success_rate: f64,
    pub average_time_to_first_token_ms: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AiStatsBody {
    pub modes: Vec<ModeStatsBody>,
    pub latency_histogram: Vec<BucketBody>,
}

/// Assistant answers by mode: how many, their latency, how many ended well; and the latencies.
#[utoipa::path(get, path = "/api/analytics/ai", tag = "analytics", security(("bearer" = [])), params(SinceParams), responses(
    (status = 200, description = "answers by mode", body = AiStatsBody),
    (status = 403, description = "not an administrator", body = ErrorBody),
))]
async fn ai(
    State(state): State<GatewayState>,
    admin: SignedInAdmin,
    ApiQuery(params): ApiQuery<SinceParams>,
) -> Result<axum::Json<AiStatsBody>, ApiError> {
    let request = pb::GetAiStatsRequest { since_ms: time_param("since", params.since.as_deref())? };
    let stats = state.clients.analytics().get_ai_stats(admin.context.request(request)).await?.into_inner();
    Ok(axum::Json(AiStatsBody {
        modes: stats
            .modes
            .into_iter()
            .map(|mode| ModeStatsBody {
                mode: mode.mode,
                count: mode.count,
                average_latency_ms: mode.average_latency_ms,
                success_rate: mode.success_rate,
                average_time_to_first_token_ms: mode.average_time_to_first_token_ms,
            })
            .collect(),
        latency_histogram: buckets(stats.latency_histogram),
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LimitParams {
    /// At most 100 (default 10).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActiveRoomBody {
    pub room_id: String,
    pub name: String,
    pub member_count: i64,
    pub online_count: i64,
    pub events_last_day: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActiveRoomsBody {
    pub rooms: Vec<ActiveRoomBody>,
}

/// Rooms with people in them or events in the last 24 hours, the busiest first.
#[utoipa::path(get, path = "/api/analytics/active-rooms", tag = "analytics", security(("bearer" = [])), params(LimitParams), responses(
    (status = 200, description = "the room leaderboard", body = ActiveRoomsBody),
    (status = 403, description = "not an administrator", body = ErrorBody),
))]
async fn active_rooms(
    State(state): State<GatewayState>,
    admin: SignedInAdmin,
    ApiQuery(params): ApiQuery<LimitParams>,
) -> Result<axum::Json<ActiveRoomsBody>, ApiError> {
    let request = pb::ListActiveRoomsRequest { limit: limit_param(params.limit.as_deref(), 100)? };
    let listed = state.clients.analytics().list_active_rooms(admin.context.request(request)).await?.into_inner();
    Ok(axum::Json(ActiveRoomsBody {
        rooms: listed
            .rooms
            .into_iter()
            .map(|room| ActiveRoomBody {
                room_id: room.room_id,
                name: room.name,
                member_count: room.member_count,
                online_count: room.online_count,
                events_last_day: room.events_last_day,
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsParams {
    /// At most 500 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// Only this kind, e.g. `execution_finished`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Only this topic, e.g. `ai-events`.
    pub topic: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlatformEventBody {
    pub id: String,
    pub topic: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub user_id: String,
    pub room_id: String,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    pub created_at: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlatformEventsBody {
    pub events: Vec<PlatformEventBody>,
}

/// The newest events of every topic, newest first.
#[utoipa::path(get, path = "/api/analytics/events", tag = "analytics", security(("bearer" = [])), params(EventsParams), responses(
    (status = 200, description = "events", body = PlatformEventsBody),
    (status = 403, description = "not an administrator", body = ErrorBody),
))]
async fn events(
    State(state): State<GatewayState>,
    admin: SignedInAdmin,
    ApiQuery(params): ApiQuery<EventsParams>,
) -> Result<axum::Json<PlatformEventsBody>, ApiError> {
    let request = pb::ListEventsRequest {
        limit: limit_param(params.limit.as_deref(), 500)?,
        event_type: params.kind.unwrap_or_default(),
        topic: params.topic.unwrap_or_default(),
    };
    let listed = state.clients.analytics().list_events(admin.context.request(request)).await?.into_inner();
    Ok(axum::Json(PlatformEventsBody {
        events: listed
            .events
            .into_iter()
            .map(|event| PlatformEventBody {
                id: event.id,
                topic: event.topic,
                event_type: event.event_type,
                user_id: event.user_id,
                room_id: event.room_id,
                metadata: serde_json::from_str(&event.metadata_json).unwrap_or_else(|_| serde_json::json!({})),
                created_at: timestamp(event.created_at_ms),
                created_at_ms: event.created_at_ms,
            })
            .collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceHealthBody {
    pub service: String,
    /// SERVING, NOT_SERVING or UNREACHABLE.
    pub status: String,
    pub latency_ms: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthReportBody {
    pub services: Vec<ServiceHealthBody>,
}

/// Every service's gRPC health check, asked now, with how long it took to answer.
#[utoipa::path(get, path = "/api/analytics/health", tag = "analytics", security(("bearer" = [])), responses(
    (status = 200, description = "each service's health", body = HealthReportBody),
    (status = 403, description = "not an administrator", body = ErrorBody),
))]
async fn health(
    State(state): State<GatewayState>,
    admin: SignedInAdmin,
) -> Result<axum::Json<HealthReportBody>, ApiError> {
    let request = pb::GetServiceHealthRequest {};
    let report = state.clients.analytics().get_service_health(admin.context.request(request)).await?.into_inner();
    Ok(axum::Json(HealthReportBody {
        services: report
            .services
            .into_iter()
            .map(|service| ServiceHealthBody {
                service: service.service,
                status: service.status,
                latency_ms: service.latency_ms,
            })
            .collect(),
    }))
}
