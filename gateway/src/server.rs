//! The gateway's HTTP server: one connection per client socket, with the limits that keep one
//! client from holding the server (slowloris): a request's headers must arrive within
//! `header_timeout` (which also ends keep-alive connections idle that long), and every
//! connection has a place in the process's [`ConnectionBudget`]: each client address holds at
//! most so many (the gateway's trusted proxies excepted), and at the process's ceiling the
//! connection doing least (headers unfinished, idle, anonymous) is closed to make room, so that
//! the health probes and new users keep being answered.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use codesync_common::connections::{Connection, ConnectionBudget};
use hyper_util::rt::{TokioIo, TokioTimer};

use crate::extract::TrustedProxies;

#[derive(Debug, Clone)]
pub struct ServerLimits {
    pub header_timeout: Duration,
    pub proxies: TrustedProxies,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self { header_timeout: Duration::from_secs(10), proxies: TrustedProxies::default() }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets open requests finish (the
/// caller bounds how long).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    limits: ServerLimits,
    connections: Arc<ConnectionBudget>,
) -> std::io::Result<()> {
    let (stopping, _) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors (or a connection reset before it was accepted): the
                    // listener stays, and accepting resumes in a moment.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        // Proxies speak for many clients: each of those is limited by its own address later.
        let counted = !limits.proxies.is_trusted(peer.ip());
        let Some(place) = connections.admit(peer, counted) else {
            tracing::debug!(client.ip = %peer.ip(), "refused a connection: too many from this address");
            drop(stream);
            continue;
        };
        let place = Arc::new(place);
        // Without TCP_NODELAY, a small WebSocket frame written right after another waits for
        // the client's delayed ACK: up to 40 ms of tail latency.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let request_place = place.clone();
        let service = hyper_util::service::TowerToHyperService::new(tower::ServiceExt::map_request(
            app.clone(),
            move |mut request: http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                request.extensions_mut().insert(request_place.clone());
                request
            },
        ));
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(place.watch(stream)), service)
            .with_upgrades();
        let mut stopping = stopping.subscribe();
        tasks.spawn(async move {
            tokio::pin!(connection);
            tokio::select! {
                _ = &mut connection => {}
                () = async { let _ = stopping.wait_for(|stop| *stop).await; } => {
                    // The request under way finishes; the connection takes no other. (An
                    // upgraded WebSocket has left this connection: the gateway closes it.)
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            // An upgraded WebSocket keeps its own handle on the place (see `ws`).
            drop(place);
        });
    }
    stopping.send_replace(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// The connection a request came on, if it came through [`serve`].
pub fn place_of(request: &http::request::Parts) -> Option<Arc<Connection>> {
    request.extensions.get::<Arc<Connection>>().cloned()
}

/// Marks the request's connection as doing something for as long as the request (and its
/// answer's body: an event stream) lasts: for a signed-in user, something not to shed at the
/// ceiling; for anyone else, something to shed after idle connections.
pub async fn mark_request(
    axum::extract::State(state): axum::extract::State<crate::GatewayState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use codesync_common::connections::Standing;
    let (mut parts, body) = request.into_parts();
    let Some(place) = place_of(&parts) else {
        return next.run(axum::extract::Request::from_parts(parts, body)).await;
    };
    let signed_in = crate::extract::bearer_caller(&mut parts, &state).is_some();
    let guard = place.request(if signed_in { Standing::Busy } else { Standing::Anonymous });
    let response = next.run(axum::extract::Request::from_parts(parts, body)).await;
    response.map(|body| axum::body::Body::new(codesync_common::budget::Holding { inner: body, guard }))
}
