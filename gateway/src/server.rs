//! The gateway's HTTP server: one connection per client socket, with the limits that keep one
//! client from holding the server (slowloris): a request's headers must arrive within
//! `header_timeout` (which also ends keep-alive connections idle that long), each client
//! address may hold `max_connections_per_address` connections at once (the gateway's trusted
//! proxies excepted), and the server stops accepting short of the process's file descriptors,
//! so that other clients and the health probes keep being answered.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};

use crate::extract::TrustedProxies;

#[derive(Debug, Clone)]
pub struct ServerLimits {
    pub header_timeout: Duration,
    pub max_connections_per_address: usize,
    pub proxies: TrustedProxies,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            max_connections_per_address: 256,
            proxies: TrustedProxies::default(),
        }
    }
}

/// Open connections, per address and in all.
#[derive(Default)]
struct Connections {
    per_address: Mutex<HashMap<IpAddr, usize>>,
    total: AtomicUsize,
}

/// A connection's place in the counts, given back when it closes.
struct Slot {
    connections: Arc<Connections>,
    address: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.connections.total.fetch_sub(1, Ordering::Relaxed);
        if let Some(address) = self.address {
            let mut per_address =
                self.connections.per_address.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(count) = per_address.get_mut(&address) {
                *count -= 1;
                if *count == 0 {
                    per_address.remove(&address);
                }
            }
        }
    }
}

impl Connections {
    /// A slot for a new connection from `address` (`None`: not counted per address), unless
    /// that address, or the server, holds as many as it may.
    fn admit(self: &Arc<Self>, address: Option<IpAddr>, per_address_limit: usize, total_limit: usize) -> Option<Slot> {
        if self.total.fetch_add(1, Ordering::Relaxed) >= total_limit {
            self.total.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        let Some(address) = address else { return Some(Slot { connections: self.clone(), address: None }) };
        let mut per_address = self.per_address.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = per_address.entry(address).or_insert(0);
        if *count >= per_address_limit {
            drop(per_address);
            self.total.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        *count += 1;
        Some(Slot { connections: self.clone(), address: Some(address) })
    }
}

/// File descriptors the process may open (its soft limit), from /proc.
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Serves `app` on `listener` until `shutdown` completes, then lets open requests finish (the
/// caller bounds how long).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    limits: ServerLimits,
) -> std::io::Result<()> {
    // Descriptors are left for the database, the gRPC connections and the files.
    let total_limit = open_files_limit().map_or(50_000, |limit| limit.saturating_sub(256).max(64));
    let connections = Arc::new(Connections::default());
    let (stopping, _) = tokio::sync::watch::channel(false);
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
        };
        // Proxies speak for many clients: each of those is limited by its own address later.
        let counted = (!limits.proxies.is_trusted(peer.ip())).then_some(peer.ip());
        let Some(slot) = connections.admit(counted, limits.max_connections_per_address, total_limit) else {
            tracing::debug!(client.ip = %peer.ip(), "refused a connection: too many from this address");
            drop(stream);
            continue;
        };
        // Without TCP_NODELAY, a small WebSocket frame written right after another waits for
        // the client's delayed ACK: up to 40 ms of tail latency.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let service = hyper_util::service::TowerToHyperService::new(tower::ServiceExt::map_request(
            app.clone(),
            move |mut request: http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                request
            },
        ));
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let mut stopping = stopping.subscribe();
        tokio::spawn(async move {
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
            drop(slot);
        });
    }
    stopping.send_replace(true);
    while connections.total.load(Ordering::Relaxed) > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_capped_per_address_and_in_all_and_given_back() {
        let connections = Arc::new(Connections::default());
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let first = connections.admit(Some(one), 2, 3).unwrap();
        let _second = connections.admit(Some(one), 2, 3).unwrap();
        assert!(connections.admit(Some(one), 2, 3).is_none(), "two per address");
        let _third = connections.admit(Some(other), 2, 3).unwrap();
        assert!(connections.admit(Some("192.0.2.3".parse().unwrap()), 2, 3).is_none(), "three in all");
        drop(first);
        assert!(connections.admit(Some(one), 2, 3).is_some(), "a closed connection frees its place");
        assert!(open_files_limit().is_some_and(|limit| limit > 0));
    }
}
