//! The gRPC adapter: `codesync.notifications.v1.NotificationsService` on
//! [`NotificationsGrpcService`]: a user's listing, counts, marking read, the live stream, and an
//! administrator's system notice.

use std::pin::Pin;

use codesync_common::grpc::CallContext;
use codesync_common::limits::{NOTICE_MESSAGE_MAX_CHARS, NOTICE_TITLE_MAX_CHARS};
use codesync_common::{ErrorCode, ServiceError, new_id, now_ms};
use codesync_proto::notifications::v1 as pb;
use codesync_proto::notifications::v1::notifications_service_server::NotificationsService;
use tokio::sync::broadcast;
use tonic::{Request, Response, Status};

use crate::store::Filter;
use crate::{MAX_MARKED_PER_REQUEST, NotificationsGrpcService, store_and_announce};

type NotificationStream = Pin<Box<dyn futures::Stream<Item = Result<pb::Notification, Status>> + Send>>;

#[tonic::async_trait]
impl NotificationsService for NotificationsGrpcService {
    async fn list_notifications(
        &self,
        request: Request<pb::ListNotificationsRequest>,
    ) -> Result<Response<pb::ListNotificationsResponse>, Status> {
        let caller = self.tokens.require_caller(request.metadata())?;
        let request = request.into_inner();
        let kind = match pb::NotificationType::try_from(request.r#type) {
            Ok(pb::NotificationType::Unspecified) => None,
            Ok(kind) => Some(kind),
            Err(_) => return Err(ServiceError::invalid(ErrorCode::InvalidType, "unknown notification type").into()),
        };
        let filter = Filter {
            kind,
            since_ms: request.since_ms,
            until_ms: request.until_ms,
            unread_only: request.unread_only,
            limit: request.limit,
        };
        let notifications = self.store.list(&caller.user_id, &filter).await?;
        let unread_count = self.store.unread_count(&caller.user_id).await?;
        Ok(Response::new(pb::ListNotificationsResponse { notifications, unread_count }))
    }

    async fn get_unread_count(
        &self,
        request: Request<pb::GetUnreadCountRequest>,
    ) -> Result<Response<pb::GetUnreadCountResponse>, Status> {
        let caller = self.tokens.require_caller(request.metadata())?;
        let unread_count = self.store.unread_count(&caller.user_id).await?;
        Ok(Response::new(pb::GetUnreadCountResponse { unread_count }))
    }

    async fn mark_read(&self, request: Request<pb::MarkReadRequest>) -> Result<Response<pb::MarkReadResponse>, Status> {
        let caller = self.tokens.require_caller(request.metadata())?;
        let ids = request.into_inner().notification_ids;
        if ids.len() > MAX_MARKED_PER_REQUEST {
            let message = format!("mark at most {MAX_MARKED_PER_REQUEST} notifications at once, or all of them");
            return Err(ServiceError::too_large(ErrorCode::TooManyIds, message).into());
        }
        let ids: Vec<String> = ids.into_iter().filter(|id| codesync_common::is_valid_id(id)).collect();
        let marked = self.store.mark_read(&caller.user_id, &ids).await?;
        let unread_count = self.store.unread_count(&caller.user_id).await?;
        Ok(Response::new(pb::MarkReadResponse { marked, unread_count }))
    }

    async fn mark_all_read(
        &self,
        request: Request<pb::MarkAllReadRequest>,
    ) -> Result<Response<pb::MarkReadResponse>, Status> {
        let caller = self.tokens.require_caller(request.metadata())?;
        let marked = self.store.mark_all_read(&caller.user_id).await?;
        let unread_count = self.store.unread_count(&caller.user_id).await?;
        Ok(Response::new(pb::MarkReadResponse { marked, unread_count }))
    }

    async fn subscribe(&self, request: Request<pb::SubscribeRequest>) -> Result<Response<NotificationStream>, Status> {
        let caller = self.tokens.require_caller(request.metadata())?;
        let receiver = self.live.subscribe();
        let user_id = caller.user_id;
        let stream = futures::stream::unfold(receiver, move |mut receiver| {
            let user_id = user_id.clone();
            async move {
                loop {
                    match receiver.recv().await {
                        Ok(notification) if notification.user_id == user_id => {
                            return Some((Ok(notification), receiver));
                        }
                        Ok(_) => {}
                        // The client lists what it missed when it reconnects.
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            let status =
                                Status::resource_exhausted("too many notifications at once; list them instead");
                            return Some((Err(status), receiver));
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn create_notification(
        &self,
        request: Request<pb::CreateNotificationRequest>,
    ) -> Result<Response<pb::Notification>, Status> {
        let caller = self.tokens.require_caller(request.metadata())?;
        let context = CallContext::from_request(&request, &self.tokens);
        codesync_common::access::require_admin(
            &self.auth,
            &context,
            &caller,
            "only administrators send system notices",
        )
        .await?;
        let request = request.into_inner();
        let title = request.title.trim();
        if title.is_empty() || title.chars().count() > NOTICE_TITLE_MAX_CHARS {
            let message = format!("a title of 1 to {NOTICE_TITLE_MAX_CHARS} characters");
            return Err(ServiceError::invalid(ErrorCode::InvalidTitle, message).into());
        }
        if request.message.chars().count() > NOTICE_MESSAGE_MAX_CHARS {
            let message = format!("a message of at most {NOTICE_MESSAGE_MAX_CHARS} characters");
            return Err(ServiceError::too_large(ErrorCode::MessageTooLong, message).into());
        }
        if !codesync_common::is_valid_id(&request.user_id) {
            return Err(ServiceError::invalid(ErrorCode::InvalidUserId, "user_id must name a user").into());
        }
        let metadata_json =
            if request.metadata_json.trim().is_empty() { "{}".to_string() } else { request.metadata_json };
        if !serde_json::from_str::<serde_json::Value>(&metadata_json).is_ok_and(|value| value.is_object()) {
            return Err(ServiceError::invalid(ErrorCode::InvalidMetadata, "metadata must be a JSON object").into());
        }
        let kind = pb::NotificationType::try_from(request.r#type)
            .ok()
            .filter(|kind| *kind != pb::NotificationType::Unspecified)
            .unwrap_or(pb::NotificationType::System);
        let notification = pb::Notification {
            id: new_id(),
            user_id: request.user_id,
            r#type: kind.into(),
            title: title.to_string(),
            message: request.message,
            metadata_json,
            read: false,
            created_at_ms: now_ms(),
        };
        let notification = store_and_announce(&self.store, self.events.as_ref(), notification).await?;
        Ok(Response::new(notification))
    }
}
