//! Server-sent events relayed from a gRPC server stream: what `/api/executions/stream` and
//! `/api/ai/stream` answer with. Each message becomes at most one named event with JSON data;
//! a gRPC error mid-stream becomes an `error` event with the API's error shape, and the
//! response ends. When the client goes away, the gRPC stream is dropped, which stops the work
//! behind it (a run, an answer) at once.

use std::convert::Infallible;

use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::StreamExt;
use serde_json::Value;

use crate::error::ApiError;

/// What one upstream message becomes: an event (name, data), and whether it was the last.
pub struct Relayed {
    pub event: Option<(&'static str, Value)>,
    pub last: bool,
}

pub fn relay<T, F>(upstream: tonic::Streaming<T>, convert: F) -> impl IntoResponse
where
    T: Send + 'static,
    F: FnMut(T) -> Relayed + Send + 'static,
{
    relay_with_greeting(upstream, None, convert, |_| None, None, None)
}

/// Like [`relay`], with an event sent first (so that the client knows the stream listens), and
/// a say in what an upstream error becomes (`None`: the usual `error` event). An endless stream
/// passes the gateway's `stopping`: it ends when the gateway stops, and the client reconnects.
pub fn relay_with_greeting<T, F, E>(
    mut upstream: tonic::Streaming<T>,
    greeting: Option<(&'static str, Value)>,
    mut convert: F,
    on_error: E,
    stopping: Option<tokio::sync::watch::Receiver<bool>>,
    session_end: Option<crate::ws::SessionEnd>,
) -> impl IntoResponse
where
    T: Send + 'static,
    F: FnMut(T) -> Relayed + Send + 'static,
    E: Fn(&tonic::Status) -> Option<(&'static str, Value)> + Send + 'static,
{
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Event, Infallible>>(1);
    let task = tokio::spawn(async move {
        if let Some((name, data)) = greeting
            && sender.send(Ok(Event::default().event(name).data(data.to_string()))).await.is_err()
        {
            return;
        }
        let mut stopping = stopping;
        let stopped = async move {
            match stopping.as_mut() {
                Some(stopping) => {
                    let _ = stopping.wait_for(|stop| *stop).await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::pin!(stopped);
        let mut session_end = session_end;
        let session_ended = async move {
            match session_end.as_mut() {
                Some(session_end) => session_end.wait().await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(session_ended);
        loop {
            let message = tokio::select! {
                message = upstream.next() => message,
                () = &mut stopped => return,
                // The client reconnects with a fresh token (or not at all, signed out).
                () = &mut session_ended => {
                    let body = serde_json::json!({"error": {"code": codesync_common::ErrorCode::SessionEnded, "message": "the session ended; reconnect with a fresh token"}});
                    let _ = sender.send(Ok(Event::default().event("error").data(body.to_string()))).await;
                    return;
                }
            };
            let Some(message) = message else { return };
            let relayed = match message {
                Ok(message) => convert(message),
                Err(status) => match on_error(&status) {
                    Some(event) => Relayed { event: Some(event), last: true },
                    None => {
                        let error = ApiError::from(status).0;
                        let body = serde_json::json!({"error": {"code": error.code, "message": error.message}});
                        Relayed { event: Some(("error", body)), last: true }
                    }
                },
            };
            if let Some((name, data)) = relayed.event {
                let event = Event::default().event(name).data(data.to_string());
                if sender.send(Ok(event)).await.is_err() {
                    return;
                }
            }
            if relayed.last {
                return;
            }
        }
    });
    let guard = AbortOnDrop(task);
    let events = tokio_stream::wrappers::ReceiverStream::new(receiver).map(move |event| {
        let _relay_lives_while_the_response_does = &guard;
        event
    });
    // Proxies that buffer responses (nginx does by default) would hold the events back.
    let unbuffered = [(axum::http::HeaderName::from_static("x-accel-buffering"), "no")];
    (unbuffered, Sse::new(events).keep_alive(KeepAlive::default()))
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
