//! The per-IP limit on `/api/*` requests (200 a minute by default).

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use codesync_common::error::HttpError;
use codesync_common::rate_limit::{address_key, retry_after_secs};

use crate::GatewayState;
use crate::error::ApiError;

pub async fn limit_per_ip(State(state): State<GatewayState>, request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with("/api/") {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let client_ip = crate::extract::client_ip(&parts, &state.proxies);
    let key = client_ip.map_or_else(|| "unknown".to_string(), address_key);
    if let Err(wait) = state.rate_limiter.try_acquire(&key).await {
        state.metrics.rate_limited.inc();
        let mut error = HttpError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many requests; slow down");
        error.retry_after_secs = Some(retry_after_secs(wait));
        return ApiError(error).into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}
