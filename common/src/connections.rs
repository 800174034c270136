//! The process's open connections, one budget for every listener (the gateway's HTTP port and
//! the gRPC port), so that a flood of connections cannot leave the process without descriptors.
//!
//! Each address may hold `per_address` connections (CodeSync processes and trusted proxies
//! excepted). The process holds `limit` in all, short of its open-file limit; at that ceiling
//! a new connection is still accepted, and one that does least is closed to make room: first
//! one that has not finished a request's headers yet, then one idle between requests, then one
//! whose request carries no valid credential, oldest first in each. A signed-in user's request
//! under way, a WebSocket, an event stream and a CodeSync process's connection are never shed,
//! so a health probe or a new user always gets in, and what is shed is what an attacker holds.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::metrics::Reading;

/// What a connection is doing, in the order connections are shed at the ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Standing {
    /// Accepted, no request's headers finished yet.
    Fresh = 0,
    /// Between requests (HTTP keep-alive; a gRPC connection with no call open).
    Idle = 1,
    /// A request under way that carries no valid credential.
    Anonymous = 2,
    /// A signed-in user's request under way.
    Busy = 3,
    /// A WebSocket, an event stream, or a CodeSync process's connection: never shed.
    Held = 4,
}

impl Standing {
    fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::Fresh,
            1 => Self::Idle,
            2 => Self::Anonymous,
            3 => Self::Busy,
            _ => Self::Held,
        }
    }

    fn sheddable(self) -> bool {
        self <= Self::Anonymous
    }
}

/// What an open connection shares with the budget: how it stands and whether it must close.
#[derive(Debug)]
struct Shared {
    standing: AtomicU8,
    /// Requests (or calls) under way on it, and the best standing among them.
    busy: Mutex<Vec<Standing>>,
    since: Mutex<Instant>,
    shed: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Shared {
    fn shed(&self) {
        self.shed.store(true, Ordering::SeqCst);
        if let Some(waker) = self.waker.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            waker.wake();
        }
    }

    fn standing(&self) -> Standing {
        Standing::from_u8(self.standing.load(Ordering::Relaxed))
    }

    fn set(&self, standing: Standing) {
        let before = self.standing.swap(standing as u8, Ordering::Relaxed);
        if before != standing as u8 {
            *self.since.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
        }
    }
}

#[derive(Debug, Default)]
struct Open {
    next_id: u64,
    connections: HashMap<u64, (Option<IpAddr>, SocketAddr, Arc<Shared>)>,
    per_address: HashMap<IpAddr, usize>,
    by_peer: HashMap<SocketAddr, u64>,
}

/// See the module's documentation.
#[derive(Debug)]
pub struct ConnectionBudget {
    limit: usize,
    per_address: usize,
    open: Mutex<Open>,
    shed: AtomicU64,
    refused: AtomicU64,
}

impl ConnectionBudget {
    /// `limit` connections in all, `per_address` from one address; reported at `/metrics`.
    pub fn new(limit: usize, per_address: usize) -> Arc<Self> {
        let budget = Arc::new(Self {
            limit: limit.max(1),
            per_address: per_address.max(1),
            open: Mutex::default(),
            shed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        });
        crate::metrics::register(budget.clone());
        budget
    }

    /// The default ceiling: this process's open-file limit less `reserve` descriptors for the
    /// database, the files and the connections it makes itself.
    pub fn ceiling_below_open_files(reserve: usize) -> usize {
        open_files_limit().map_or(50_000, |limit| limit.saturating_sub(reserve).max(64))
    }

    /// A place for a new connection from `peer` (`counted`: whether its address counts against
    /// the per-address limit), or `None` when that address holds as many as it may. At the
    /// ceiling, the connection that does least is told to close, and this one is admitted.
    pub fn admit(self: &Arc<Self>, peer: SocketAddr, counted: bool) -> Option<Connection> {
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let address = counted.then_some(peer.ip());
        if let Some(address) = address {
            let held = open.per_address.get(&address).copied().unwrap_or(0);
            if held >= self.per_address {
                drop(open);
                self.refused.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        }
        if open.connections.len() >= self.limit {
            let victim = open
                .connections
                .values()
                .filter(|(_, _, shared)| shared.standing().sheddable() && !shared.shed.load(Ordering::Relaxed))
                .min_by_key(|(_, _, shared)| {
                    (shared.standing(), *shared.since.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
                })
                .map(|(_, _, shared)| shared.clone());
            match victim {
                Some(victim) => {
                    victim.shed();
                    self.shed.fetch_add(1, Ordering::Relaxed);
                }
                // Every connection is doing something that matters: this one waits its turn
                // in the kernel's backlog no longer, it is closed.
                None => {
                    drop(open);
                    self.refused.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            }
        }
        let id = open.next_id;
        open.next_id += 1;
        let shared = Arc::new(Shared {
            standing: AtomicU8::new(Standing::Fresh as u8),
            busy: Mutex::default(),
            since: Mutex::new(Instant::now()),
            shed: AtomicBool::new(false),
            waker: Mutex::default(),
        });
        open.connections.insert(id, (address, peer, shared.clone()));
        open.by_peer.insert(peer, id);
        if let Some(address) = address {
            *open.per_address.entry(address).or_insert(0) += 1;
        }
        Some(Connection { budget: self.clone(), id, peer, shared })
    }

    /// The connection from `peer`, for the layers that learn what its requests are (the gRPC
    /// admission layer knows a call's caller).
    pub fn find(self: &Arc<Self>, peer: SocketAddr) -> Option<Connection> {
        let open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let id = *open.by_peer.get(&peer)?;
        let (_, _, shared) = open.connections.get(&id)?;
        // A second handle on the same place: dropping it does not release the place (only the
        // handle that `admit` gave does).
        Some(Connection { budget: self.clone(), id: u64::MAX, peer, shared: shared.clone() })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner).connections.len()
    }

    fn release(&self, id: u64, peer: SocketAddr) {
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some((address, _, _)) = open.connections.remove(&id) else { return };
        if open.by_peer.get(&peer) == Some(&id) {
            open.by_peer.remove(&peer);
        }
        if let Some(address) = address
            && let Some(held) = open.per_address.get_mut(&address)
        {
            *held -= 1;
            if *held == 0 {
                open.per_address.remove(&address);
            }
        }
    }
}

impl crate::metrics::Source for ConnectionBudget {
    fn readings(&self) -> Vec<Reading> {
        let mut counts = [0usize; 5];
        let (open, addresses) = {
            let open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for (_, _, shared) in open.connections.values() {
                counts[shared.standing() as usize] += 1;
            }
            (open.connections.len(), open.per_address.len())
        };
        let names = ["fresh", "idle", "anonymous", "busy", "held"];
        let mut readings: Vec<Reading> = names
            .iter()
            .zip(counts)
            .map(|(name, count)| {
                Reading::gauge(
                    "connections_open",
                    "Connections open in this process, by what they are doing",
                    count as f64,
                )
                .with_label("standing", *name)
            })
            .collect();
        readings.push(Reading::gauge(
            "connections_limit",
            "The process's connection ceiling (CODESYNC_MAX_CONNECTIONS)",
            self.limit as f64,
        ));
        readings.push(Reading::gauge("connection_addresses", "Client addresses holding connections", addresses as f64));
        readings.push(Reading::counter(
            "connections_shed",
            "Connections closed at the ceiling to make room (fresh, idle or anonymous ones, oldest first)",
            self.shed.load(Ordering::Relaxed),
        ));
        readings.push(Reading::counter(
            "connections_refused",
            "Connections closed at once: their address held as many as it may, or nothing could be shed",
            self.refused.load(Ordering::Relaxed),
        ));
        let _ = open;
        readings
    }
}

/// One open connection's place in the budget; the place is given back when the handle that
/// [`ConnectionBudget::admit`] returned drops.
#[derive(Debug)]
pub struct Connection {
    budget: Arc<ConnectionBudget>,
    id: u64,
    peer: SocketAddr,
    shared: Arc<Shared>,
}

impl Connection {
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Marks the connection as holding something that is never shed (a WebSocket, a stream, a
    /// CodeSync process's calls).
    pub fn hold(&self) {
        self.shared.set(Standing::Held);
    }

    /// A request (or call) under way, `standing` as its credential says, until the guard drops;
    /// then the connection is idle again unless something else is under way.
    pub fn request(&self, standing: Standing) -> RequestGuard {
        let mut busy = self.shared.busy.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        busy.push(standing);
        if self.shared.standing() != Standing::Held {
            self.shared.set(busy.iter().copied().max().unwrap_or(Standing::Idle));
        }
        RequestGuard { shared: self.shared.clone(), standing }
    }

    /// Whether the budget told this connection to close.
    pub fn is_shed(&self) -> bool {
        self.shared.shed.load(Ordering::SeqCst)
    }

    /// `stream`, closed (its reads fail) once the budget sheds this connection.
    pub fn watch<S>(&self, stream: S) -> Watched<S> {
        Watched { inner: stream, shared: self.shared.clone() }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if self.id != u64::MAX {
            self.budget.release(self.id, self.peer);
        }
    }
}

/// A request's mark on its connection; see [`Connection::request`].
#[derive(Debug)]
pub struct RequestGuard {
    shared: Arc<Shared>,
    standing: Standing,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let mut busy = self.shared.busy.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(index) = busy.iter().position(|standing| *standing == self.standing) {
            busy.swap_remove(index);
        }
        if self.shared.standing() != Standing::Held {
            self.shared.set(busy.iter().copied().max().unwrap_or(Standing::Idle));
        }
    }
}

/// A stream that fails its reads once its connection is shed, so that the server serving it
/// closes it (hyper for HTTP/1.1, tonic's HTTP/2).
#[derive(Debug)]
pub struct Watched<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Watched<S> {
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.shared.shed.load(Ordering::SeqCst) {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "closed to make room for other connections",
            )));
        }
        *self.shared.waker.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(context.waker().clone());
        Pin::new(&mut self.inner).poll_read(context, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(mut self: Pin<&mut Self>, context: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(context, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(context)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(context, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A connection accepted within the budget: its stream, closed once shed, and its place, given
/// back when it drops.
#[derive(Debug)]
pub struct Accepted {
    stream: Watched<tokio::net::TcpStream>,
    place: Arc<Connection>,
}

impl Accepted {
    pub fn place(&self) -> &Arc<Connection> {
        &self.place
    }
}

impl AsyncRead for Accepted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(context, buf)
    }
}

impl AsyncWrite for Accepted {
    fn poll_write(mut self: Pin<&mut Self>, context: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(context, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(context)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(context, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for Accepted {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.get_ref().connect_info()
    }
}

/// The connections `listener` accepts within `budget`, each counted per address (a gRPC port's
/// callers cannot be told apart before their first call), for `tonic`'s
/// `serve_with_incoming`. Accepting never stops: at the descriptor limit it waits a moment.
pub fn incoming(
    listener: tokio::net::TcpListener,
    budget: Arc<ConnectionBudget>,
) -> impl futures::Stream<Item = std::io::Result<Accepted>> {
    futures::stream::unfold((listener, budget), |(listener, budget)| async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a gRPC connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some(place) = budget.admit(peer, true) else {
                tracing::debug!(client.ip = %peer.ip(), "refused a gRPC connection: too many from this address");
                continue;
            };
            let _ = stream.set_nodelay(true);
            let place = Arc::new(place);
            let accepted = Accepted { stream: place.watch(stream), place };
            return Some((Ok(accepted), (listener, budget)));
        }
    })
}

/// File descriptors the process may open (its soft limit), from /proc.
pub fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(last: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, last], port))
    }

    #[test]
    fn connections_are_capped_per_address_and_given_back() {
        let budget = ConnectionBudget::new(10, 2);
        let first = budget.admit(peer(1, 1), true).unwrap();
        let _second = budget.admit(peer(1, 2), true).unwrap();
        assert!(budget.admit(peer(1, 3), true).is_none(), "two per address");
        assert!(budget.admit(peer(1, 4), false).is_some(), "a trusted peer is not counted per address");
        drop(first);
        assert!(budget.admit(peer(1, 5), true).is_some(), "a closed connection frees its place");
        assert!(open_files_limit().is_some_and(|limit| limit > 0));
    }

    #[test]
    fn at_the_ceiling_the_connection_doing_least_is_shed_fresh_then_idle_then_anonymous() {
        let budget = ConnectionBudget::new(5, 100);
        let working = budget.admit(peer(1, 1), true).unwrap();
        let _request = working.request(Standing::Busy);
        let socket = budget.admit(peer(1, 2), true).unwrap();
        socket.hold();
        let anonymous = budget.admit(peer(1, 3), true).unwrap();
        let _anonymous_request = anonymous.request(Standing::Anonymous);
        let idle = budget.admit(peer(1, 4), true).unwrap();
        drop(idle.request(Standing::Busy));
        let fresh = budget.admit(peer(1, 5), true).unwrap();
        let mut newcomers = Vec::new();
        for (port, shed) in [(1, &fresh), (2, &idle), (3, &anonymous)] {
            let newcomer = budget.admit(peer(2, port), true).expect("admitted at the ceiling");
            let request = newcomer.request(Standing::Busy);
            assert!(shed.is_shed(), "shed in order: fresh, idle, anonymous");
            newcomers.push((newcomer, request));
        }
        assert!(!working.is_shed() && !socket.is_shed(), "a user's request and a socket are never shed");
        assert_eq!(budget.open(), 8, "the shed close in their own time");
        drop((fresh, idle, anonymous));
        assert_eq!(budget.open(), 5);
    }

    #[test]
    fn a_connection_with_nothing_sheddable_refuses_the_newcomer() {
        let budget = ConnectionBudget::new(1, 100);
        let socket = budget.admit(peer(1, 1), true).unwrap();
        socket.hold();
        assert!(budget.admit(peer(2, 1), true).is_none());
    }
}
