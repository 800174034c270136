//! The per-IP limit on `/api/*` requests and `/ws/*` upgrades (200 a minute by default), and the
//! headers every API answer carries.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use codesync_common::ErrorCode;
use codesync_common::error::HttpError;
use codesync_common::rate_limit::{address_key, retry_after_secs};

use crate::GatewayState;
use crate::error::ApiError;

pub async fn limit_per_ip(State(state): State<GatewayState>, request: Request, next: Next) -> Response {
    // The API and the WebSocket upgrades; the web app's files are not counted.
    let path = request.uri().path();
    if !path.starts_with("/api/") && !path.starts_with("/ws/") {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let client_ip = crate::extract::client_ip(&parts, &state.proxies);
    let key = client_ip.map_or_else(|| "unknown".to_string(), address_key);
    if let Err(wait) = state.rate_limiter.try_acquire(&key).await {
        state.metrics.rate_limited.inc();
        let mut error =
            HttpError::new(StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited, "too many requests; slow down");
        error.retry_after_secs = Some(retry_after_secs(wait));
        return ApiError(error).into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}

/// `nosniff` on every answer (a JSON error is never read as HTML), and `no-store` on the API's:
/// they carry tokens and private files, which no cache along the way may keep.
pub async fn api_headers(request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(axum::http::header::X_CONTENT_TYPE_OPTIONS, axum::http::HeaderValue::from_static("nosniff"));
    if api {
        headers.insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    }
    response
}
