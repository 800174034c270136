//! The notifications service: typed notifications per user (a run finished, someone joined your
//! room, your role changed, a system notice), made from `execution-events`, `room-events` and
//! `notification-events`, stored, counted, filtered, marked read and pushed live.
//!
//! Its gRPC contract is `codesync.notifications.v1.NotificationsService` in `proto/`. It consumes
//! as the group `notifications` (an event that cannot be handled ends in `dead-letter-events`),
//! and announces every notification it stores on `notification-events`, so that each replica
//! pushes it to the streams (`Subscribe`) of its own connected users.
#![forbid(unsafe_code)]

pub mod from_events;
mod grpc;
pub mod store;

use std::sync::Arc;

use codesync_common::ServiceError;
use codesync_common::bus::EventBus;
use codesync_common::consumer::{self, HandleError};
use codesync_common::events::{EXECUTION_EVENTS, Event, Kind, NOTIFICATION_EVENTS, ROOM_EVENTS, schema};
use codesync_common::grpc::GrpcChannel;
use codesync_common::identity::TokenService;
use codesync_proto::auth::v1::auth_service_client::AuthServiceClient;
use codesync_proto::notifications::v1 as pb;
use codesync_proto::notifications::v1::notifications_service_server::NotificationsServiceServer;
use tokio::sync::broadcast;

use crate::store::NotificationsStore;

/// The consumer group of this service.
pub const CONSUMER_GROUP: &str = "notifications";
/// A request may mark at most this many notifications read by id.
const MAX_MARKED_PER_REQUEST: usize = codesync_common::limits::MARK_READ_MAX_IDS;
/// Notifications held for live streams that fall behind; a stream that misses some says so.
const LIVE_BUFFER: usize = 1024;

/// The gRPC implementation of `NotificationsService`.
#[derive(Clone)]
pub struct NotificationsGrpcService {
    store: NotificationsStore,
    tokens: TokenService,
    events: Arc<dyn EventBus>,
    /// Every notification stored by any replica, for the live streams of this one.
    live: broadcast::Sender<pb::Notification>,
    auth: AuthServiceClient<GrpcChannel>,
}

impl NotificationsGrpcService {
    /// Starts consuming events and relaying stored notifications to live streams.
    /// `auth_channel` reaches the auth service (who is an administrator now).
    pub fn new(
        store: NotificationsStore,
        tokens: TokenService,
        events: Arc<dyn EventBus>,
        auth_channel: GrpcChannel,
    ) -> Self {
        let live = broadcast::channel(LIVE_BUFFER).0;
        tokio::spawn(relay_stored_notifications(events.subscribe(NOTIFICATION_EVENTS), live.clone()));
        let consuming = (store.clone(), events.clone());
        tokio::spawn(consumer::run(
            events.clone(),
            CONSUMER_GROUP,
            &[EXECUTION_EVENTS, ROOM_EVENTS, NOTIFICATION_EVENTS],
            // A first deployment does not notify anyone of what happened before it.
            consumer::StartFrom::Latest,
            move |event| {
                let (store, events) = consuming.clone();
                async move { handle(&store, events.as_ref(), &event).await }
            },
        ));
        Self { store, tokens, events, live, auth: AuthServiceClient::new(auth_channel) }
    }

    pub fn into_grpc_server(self) -> NotificationsServiceServer<Self> {
        NotificationsServiceServer::new(self)
    }
}

/// Stores the notification an event makes (once, whatever the deliveries) and announces it.
pub async fn handle(store: &NotificationsStore, events: &dyn EventBus, event: &Event) -> Result<(), HandleError> {
    let Some(notification) = from_events::notification_for(event)? else { return Ok(()) };
    store_and_announce(store, events, notification).await.map_err(HandleError::transient)?;
    Ok(())
}

async fn store_and_announce(
    store: &NotificationsStore,
    events: &dyn EventBus,
    notification: pb::Notification,
) -> Result<pb::Notification, ServiceError> {
    if store.insert(&notification).await? {
        let created = schema::NotificationCreated { notification: Some(notification.clone()) };
        events.publish(Event::new(&notification.user_id, Kind::NotificationCreated(created)));
    }
    Ok(notification)
}

/// Hands the notifications that any replica stored to this replica's live streams.
async fn relay_stored_notifications(
    mut notification_events: broadcast::Receiver<Event>,
    live: broadcast::Sender<pb::Notification>,
) {
    loop {
        let event = match notification_events.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "live notifications were missed; users see them on their next listing");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let Kind::NotificationCreated(created) = event.kind else { continue };
        match created.notification {
            // Nobody listening is fine.
            Some(notification) => drop(live.send(notification)),
            None => tracing::warn!(event.id = %event.id, "a notification_created event without a notification"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use codesync_common::bus::InProcessBus;
    use codesync_common::db::Database;
    use codesync_common::events::DEAD_LETTER_EVENTS;
    use codesync_common::identity::{Caller, SigningKey};
    use codesync_common::new_id;
    use codesync_proto::notifications::v1::notifications_service_server::NotificationsService;
    use futures::StreamExt;
    use tonic::Request;

    use super::*;

    #[tokio::test]
    async fn a_finished_run_is_stored_and_pushed_to_its_user_only_and_a_poisoned_event_is_dead_lettered() {
        let directory = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", directory.path().join("notifications.db").display());
        let store = NotificationsStore::new(Database::connect(&url).await.unwrap());
        store.migrate().await.unwrap();
        let key = SigningKey::load_or_create(&directory.path().join("key")).unwrap();
        let service_key = codesync_common::identity::ServiceKey::from_secret(vec![3; 64]);
        let tokens = TokenService::signer(&key, &service_key, Duration::from_secs(60));
        let bus = InProcessBus::shared();
        let mut dead_letters = bus.subscribe(DEAD_LETTER_EVENTS);
        let nowhere =
            codesync_common::grpc::remote_channel(&["http://127.0.0.1:1".to_string()], "auth", Default::default())
                .unwrap();
        let service = NotificationsGrpcService::new(store.clone(), tokens.clone(), bus.clone(), nowhere);
        tokio::task::yield_now().await;

        let ada = Caller { user_id: new_id(), username: "ada".into(), is_admin: false };
        let mut request = Request::new(pb::SubscribeRequest {});
        let bearer = format!("Bearer {}", tokens.issue_access_token(&ada, "s-1").unwrap());
        request.metadata_mut().insert("authorization", bearer.parse().unwrap());
        let mut live = service.subscribe(request).await.unwrap().into_inner();

        let finished = |user_id: &str| {
            let run = schema::ExecutionFinished {
                user_id: user_id.to_string(),
                language: "python".into(),
                status: codesync_proto::execution::v1::ExecutionStatus::Ok.into(),
                wall_time_ms: 7,
                ..Default::default()
            };
            Event::new("k", Kind::ExecutionFinished(run))
        };
        bus.publish(finished("someone-else"));
        let without_user = finished("");
        bus.publish(without_user.clone());
        let event = finished(&ada.user_id);
        bus.publish(event.clone());
        bus.publish(event);

        let pushed = tokio::time::timeout(Duration::from_secs(5), live.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(
            (pushed.user_id.as_str(), pushed.title.as_str()),
            (ada.user_id.as_str(), "Your python run finished")
        );
        let letter = tokio::time::timeout(Duration::from_secs(5), dead_letters.recv()).await.unwrap().unwrap();
        let Kind::DeadLetter(letter) = letter.kind else { panic!("a dead letter: {letter:?}") };
        assert_eq!(letter.consumer, CONSUMER_GROUP);
        assert_eq!(Event::decode(&letter.message).unwrap(), without_user, "the event, whole");
        // The repeat was stored once and pushed once.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(store.unread_count(&ada.user_id).await.unwrap(), 1);
        assert!(tokio::time::timeout(Duration::from_millis(200), live.next()).await.is_err(), "no second push");
    }
}
