//! The analytics service: what administrators see of the platform. It consumes every topic of
//! the event bus as the group `analytics`, keeps each event with the figures it aggregates
//! (`analytics_events`) and each room's members and who is in it (`analytics_rooms`), and
//! answers totals, runs by language, answers by mode, active rooms, the event log, and the
//! health and latency of every service (their gRPC health checks).
//!
//! Its gRPC contract is `codesync.analytics.v1.AnalyticsService` in `proto/`; every call needs
//! an administrator (the first account registered, or one made with `codesync admin grant`).
#![forbid(unsafe_code)]

mod grpc;
pub mod store;

use std::sync::Arc;

use codesync_common::ServiceResult;
use codesync_common::bus::EventBus;
use codesync_common::consumer::{self, HandleError};
use codesync_common::events::{Event, Kind, TOPICS};
use codesync_common::grpc::{CallContext, ServiceChannels};
use codesync_common::identity::TokenService;
use codesync_proto::analytics::v1::analytics_service_server::AnalyticsServiceServer;
use codesync_proto::auth::v1::auth_service_client::AuthServiceClient;
use codesync_proto::execution::v1::ExecutionStatus;
use tonic::Request;

use crate::store::{AnalyticsStore, Recorded, RoomChange};

/// The consumer group of this service.
pub const CONSUMER_GROUP: &str = "analytics";

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
