//! The request-body size limit, answered so that clients can read the answer.
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
use crate::error::payload_too_large;

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
    let limit = if crate::routes::archive::is_upload(request.method(), request.uri().path()) {
        codesync_common::limits::ARCHIVE_MAX_BYTES
    } else {
        state.max_body_bytes
    };
    if declared_length <= limit as u64 {
        return next.run(request).await;
    }
    if declared_length <= MAX_DRAIN_BYTES {
        let _ = tokio::time::timeout(MAX_DRAIN_TIME, drain(request.into_body())).await;
    }
    let mut response = payload_too_large().into_response();
    response.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
    response
}

async fn drain(body: Body) {
    let mut stream = body.into_data_stream();
    while let Some(Ok(_chunk)) = stream.next().await {}
}
