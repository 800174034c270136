//! The request-body size limit, answered so that clients can read the answer, and the
//! request's place in the process's budget of bytes in flight.
//!
//! A server that answers 413 and closes while the client is still uploading
//! makes the kernel reset the connection, and the client loses the answer.
//! So a body whose declared length is over the limit is read and discarded
//! (up to a bound in bytes and time) before the 413 goes out. Bodies without
//! a declared length are cut off by the JSON extractor's own limit.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use crate::GatewayState;
use crate::error::{ApiError, payload_too_large};

/// Past this many bytes, or this long, a hostile upload is no longer drained.
const MAX_DRAIN_BYTES: u64 = 64 * 1024 * 1024;
const MAX_DRAIN_TIME: Duration = Duration::from_secs(10);

pub async fn limit_declared_length(State(state): State<GatewayState>, request: Request, next: Next) -> Response {
    let declared_length = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let Some(declared_length) = declared_length else {
        return next.run(request).await;
    };
    let limit = route_limit(&state, request.method(), request.uri().path());
    if declared_length <= limit as u64 {
        return next.run(request).await;
    }
    refuse_too_large(request.into_body(), declared_length).await
}

/// The largest body a route takes: an archive's upload (`POST /api/rooms/{id}/archive`) may be
/// larger than other bodies.
fn route_limit(state: &GatewayState, method: &axum::http::Method, path: &str) -> usize {
    let is_archive_upload =
        method == axum::http::Method::POST && path.starts_with("/api/rooms/") && path.ends_with("/archive");
    if is_archive_upload { codesync_common::limits::ARCHIVE_MAX_BYTES } else { state.max_body_bytes }
}

/// 413 for a body declared longer than its route takes. A body small enough is read and thrown
/// away first: a client still writing it would otherwise meet a reset (a broken pipe) instead of
/// the answer.
async fn refuse_too_large(body: Body, declared_length: u64) -> Response {
    if declared_length <= MAX_DRAIN_BYTES {
        let _ = tokio::time::timeout(MAX_DRAIN_TIME, drain(body)).await;
    }
    let mut response = payload_too_large().into_response();
    response.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
    response
}

/// `refusal`, answered to a client that may still be sending its body: the body is read and
/// thrown away first (up to a bound in bytes and time; nothing of it is kept), else the client,
/// still writing, would lose the answer to a reset.
pub async fn refuse_unread(body: Body, refusal: Response) -> Response {
    let _ = tokio::time::timeout(MAX_DRAIN_TIME, drain(body)).await;
    let mut response = refusal;
    response.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
    response
}

async fn drain(body: Body) {
    let mut stream = body.into_data_stream();
    while let Some(Ok(_chunk)) = stream.next().await {}
}

/// A request body's bytes, reserved in the process's in-flight budget before it is read, in the
/// share of its caller (a signed-in user, or an anonymous address, whose bodies may be at most
/// `anonymous_request_bytes`), and held until the request is answered. Past the budget: 429
/// `busy` with `Retry-After`, before anything is read.
pub async fn reserve_inflight(State(state): State<GatewayState>, request: Request, next: Next) -> Response {
    use axum::http::Method;
    use codesync_common::budget::Holder;
    let carries_body = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !carries_body || !request.uri().path().starts_with("/api/") {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let user = crate::extract::bearer_caller(&mut parts, &state);
    let route_limit = route_limit(&state, &parts.method, parts.uri.path());
    let (holder, limit) = match user {
        Some(caller) => (Holder::User(caller.user_id), route_limit),
        None => {
            let address =
                crate::extract::client_ip(&parts, &state.proxies).unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
            (Holder::Anonymous(address), route_limit.min(state.anonymous_request_bytes))
        }
    };
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if holder.is_anonymous() && declared.is_some_and(|declared| declared > limit as u64) {
        // Without a valid token nothing large is read, not even to be thrown away.
        let mut response = ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            codesync_common::ErrorCode::PayloadTooLarge,
            format!("a request body of more than {limit} bytes needs an access token"),
        )
        .into_response();
        response.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
        return response;
    }
    if let Some(declared) = declared.filter(|declared| *declared > limit as u64) {
        // Refused here, before the body is cut off at the limit below: cut off, the rest of it
        // could not be drained.
        return refuse_too_large(body, declared).await;
    }
    let bytes = declared.map_or(limit, |declared| usize::try_from(declared).unwrap_or(usize::MAX).min(limit));
    let reservation = match state.inflight.try_reserve(&holder, bytes) {
        Ok(reservation) => reservation,
        Err(refusal) => {
            let refused = ApiError::from(codesync_common::ServiceError::from(refusal)).into_response();
            return refuse_unread(body, refused).await;
        }
    };
    // A body without a declared length is cut off at what was reserved (413 from the extractor).
    let body = axum::body::Body::new(http_body_util::Limited::new(body, limit));
    let response = next.run(Request::from_parts(parts, body)).await;
    drop(reservation);
    response
}
