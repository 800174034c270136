//! `/api/notifications`: the caller's notifications (listed with filters, counted, marked read),
//! pushed live as server-sent events, and system notices sent by administrators.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use codesync_common::ErrorCode;
use codesync_proto::notifications::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::GatewayState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, SignedIn, SignedInAdmin};
use crate::routes::{limit_param, time_param, timestamp};
use crate::sse::Relayed;

pub fn router() -> OpenApiRouter<GatewayState> {
    OpenApiRouter::new()
        .routes(routes!(list_notifications, send_notice))
        .routes(routes!(unread_count))
        .routes(routes!(mark_read))
        .routes(routes!(mark_all_read))
        .routes(routes!(stream))
}

fn type_name(kind: i32) -> &'static str {
    match pb::NotificationType::try_from(kind) {
        Ok(pb::NotificationType::Execution) => "execution",
        Ok(pb::NotificationType::Invite) => "invite",
        Ok(pb::NotificationType::Room) => "room",
        _ => "system",
    }
}

fn notification_type_schema() -> utoipa::openapi::schema::Schema {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(["execution", "invite", "room", "system"]))
        .into()
}

fn type_from_name(name: &str) -> Option<pb::NotificationType> {
    match name {
        "execution" => Some(pb::NotificationType::Execution),
        "invite" => Some(pb::NotificationType::Invite),
        "room" => Some(pb::NotificationType::Room),
        "system" => Some(pb::NotificationType::System),
        _ => None,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationBody {
    pub id: String,
    /// `execution` (a run finished), `invite` (someone joined your room), `room` (your role
    /// changed, or you were removed) or `system`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: String,
    pub message: String,
    /// Details by type, e.g. `{"language": "python", "status": "ok", "exit_code": 0, "wall_time_ms": 41}`.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    pub read: bool,
    pub created_at: String,
    pub created_at_ms: i64,
}

impl From<pb::Notification> for NotificationBody {
    fn from(notification: pb::Notification) -> Self {
        Self {
            id: notification.id,
            kind: type_name(notification.r#type),
            title: notification.title,
            message: notification.message,
            metadata: serde_json::from_str(&notification.metadata_json).unwrap_or_else(|_| serde_json::json!({})),
            read: notification.read,
            created_at: timestamp(notification.created_at_ms),
            created_at_ms: notification.created_at_ms,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationListBody {
    pub notifications: Vec<NotificationBody>,
    pub unread_count: i64,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListNotificationsParams {
    /// execution, invite, room or system; all types when absent.
    #[serde(rename = "type")]
    #[param(rename = "type", schema_with = notification_type_schema)]
    pub kind: Option<String>,
    /// Created at or after: milliseconds since 1970, an RFC 3339 time, or a date (UTC).
    #[param(schema_with = super::time_query_schema)]
    pub since: Option<String>,
    /// Created before: likewise.
    #[param(schema_with = super::time_query_schema)]
    pub until: Option<String>,
    /// `true` for unread ones only.
    #[param(value_type = Option<bool>)]
    pub unread: Option<String>,
    /// At most 200 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
}

/// The caller's notifications, newest first, and how many are unread.
#[utoipa::path(get, path = "/api/notifications", tag = "notifications", security(("bearer" = [])), params(ListNotificationsParams), responses(
    (status = 200, description = "notifications, newest first", body = NotificationListBody),
    (status = 400, description = "an unknown type, a bad time or limit", body = ErrorBody),
))]
async fn list_notifications(
    State(state): State<GatewayState>,
    user: SignedIn,
    ApiQuery(params): ApiQuery<ListNotificationsParams>,
) -> Result<axum::Json<NotificationListBody>, ApiError> {
    let kind = match params.kind.as_deref() {
        None => pb::NotificationType::Unspecified,
        Some(name) => type_from_name(name).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidType,
                "type must be execution, invite, room or system",
            )
        })?,
    };
    let unread_only = match params.unread.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidQuery,
                "unread must be true or false",
            ));
        }
    };
    let request = pb::ListNotificationsRequest {
        r#type: kind.into(),
        since_ms: time_param("since", params.since.as_deref())?,
        until_ms: time_param("until", params.until.as_deref())?,
        unread_only,
        limit: limit_param(params.limit.as_deref(), 200)?,
    };
    let listed = state.clients.notifications().list_notifications(user.context.request(request)).await?.into_inner();
    Ok(axum::Json(NotificationListBody {
        notifications: listed.notifications.into_iter().map(NotificationBody::from).collect(),
        unread_count: listed.unread_count,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UnreadCountBody {
    pub unread_count: i64,
}

/// How many of the caller's notifications are unread.
#[utoipa::path(get, path = "/api/notifications/unread-count", tag = "notifications", security(("bearer" = [])), responses(
    (status = 200, description = "the count", body = UnreadCountBody),
))]
async fn unread_count(
    State(state): State<GatewayState>,
    user: SignedIn,
) -> Result<axum::Json<UnreadCountBody>, ApiError> {
    let request = pb::GetUnreadCountRequest {};
    let count = state.clients.notifications().get_unread_count(user.context.request(request)).await?.into_inner();
    Ok(axum::Json(UnreadCountBody { unread_count: count.unread_count }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkReadBody {
    /// At most 500; others' ids are ignored.
    pub ids: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MarkedBody {
    /// How many changed from unread to read.
    pub marked: i64,
    pub unread_count: i64,
}

/// Marks some of the caller's notifications read.
#[utoipa::path(post, path = "/api/notifications/read", tag = "notifications", security(("bearer" = [])), request_body = MarkReadBody, responses(
    (status = 200, description = "what changed", body = MarkedBody),
    (status = 413, description = "over 500 ids", body = ErrorBody),
))]
async fn mark_read(
    State(state): State<GatewayState>,
    user: SignedIn,
    ApiJson(body): ApiJson<MarkReadBody>,
) -> Result<axum::Json<MarkedBody>, ApiError> {
    let request = pb::MarkReadRequest { notification_ids: body.ids };
    let marked = state.clients.notifications().mark_read(user.context.request(request)).await?.into_inner();
    Ok(axum::Json(MarkedBody { marked: marked.marked, unread_count: marked.unread_count }))
}

/// Marks all of the caller's notifications read.
#[utoipa::path(post, path = "/api/notifications/read-all", tag = "notifications", security(("bearer" = [])), responses(
    (status = 200, description = "what changed", body = MarkedBody),
))]
async fn mark_all_read(State(state): State<GatewayState>, user: SignedIn) -> Result<axum::Json<MarkedBody>, ApiError> {
    let request = pb::MarkAllReadRequest {};
    let marked = state.clients.notifications().mark_all_read(user.context.request(request)).await?.into_inner();
    Ok(axum::Json(MarkedBody { marked: marked.marked, unread_count: marked.unread_count }))
}

/// The caller's new notifications as they arrive, as server-sent events: a `ready` event once
/// the stream is listening, then one `notification` event each (the body of a listed
/// notification). A `resync` event means some were missed: list them again. Send the token in
/// the `Authorization` header (read the stream with `fetch`).
#[utoipa::path(get, path = "/api/notifications/stream", operation_id = "notification_stream", tag = "notifications", security(("bearer" = [])), responses(
    (status = 200, description = "text/event-stream: ready, then notifications", content_type = "text/event-stream", body = String),
))]
async fn stream(State(state): State<GatewayState>, user: SignedIn) -> Result<impl IntoResponse, ApiError> {
    let slot = state.streams.take(&user.session.caller.user_id)?;
    let request = pb::SubscribeRequest {};
    let notifications = state.clients.notifications().subscribe(user.context.request(request)).await?.into_inner();
    Ok(crate::sse::relay_with_greeting(
        notifications,
        Some(("ready", serde_json::json!({}))),
        move |notification: pb::Notification| {
            // The slot is held as long as the stream is.
            let _held = &slot;
            Relayed {
                event: Some((
                    "notification",
                    serde_json::to_value(NotificationBody::from(notification)).unwrap_or_default(),
                )),
                last: false,
            }
        },
        |status| (status.code() == tonic::Code::ResourceExhausted).then(|| ("resync", serde_json::json!({}))),
        Some(state.stopping.clone()),
        Some(crate::ws::SessionEnd::of(&user.session, &state.tokens)),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoticeBody {
    /// Who gets it.
    pub user_id: String,
    /// 1 to 200 characters.
    pub title: String,
    /// At most 2000 characters.
    #[serde(default)]
    pub message: String,
}

/// Sends a system notice to one user (administrators).
#[utoipa::path(post, path = "/api/notifications", tag = "notifications", security(("bearer" = [])), request_body = NoticeBody, responses(
    (status = 201, description = "the notification", body = NotificationBody),
    (status = 400, description = "a bad title or user", body = ErrorBody),
    (status = 403, description = "not an administrator", body = ErrorBody),
))]
async fn send_notice(
    State(state): State<GatewayState>,
    admin: SignedInAdmin,
    ApiJson(body): ApiJson<NoticeBody>,
) -> Result<impl IntoResponse, ApiError> {
    let request = pb::CreateNotificationRequest {
        user_id: body.user_id,
        r#type: pb::NotificationType::System.into(),
        title: body.title,
        message: body.message,
        metadata_json: String::new(),
    };
    let notification =
        state.clients.notifications().create_notification(admin.context.request(request)).await?.into_inner();
    Ok((StatusCode::CREATED, axum::Json(NotificationBody::from(notification))))
}
