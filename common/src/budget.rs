//! What one caller may hold of what a process has, so that nobody exhausts it for everyone:
//! bytes of requests in flight ([`InflightBudget`]), long-lived streams and expensive work at
//! once ([`Slots`]). Each is per process: what it protects (memory, tasks, threads) belongs to
//! one process, a count shared through Redis would cost a round trip per request and leak its
//! counts when a process dies, and N replicas have N times the memory to give.
//!
//! At a limit the answer is a refusal before any work starts ([`Refusal`], 429 with
//! `Retry-After`, or 413 when the request could never fit), except for an editor's socket,
//! which waits for room instead (its reading pauses; see the gateway's `/ws/files`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{ErrorCode, ServiceError};
use crate::metrics::Reading;

/// Who holds a share: a signed-in user, an anonymous client (by address), or another CodeSync
/// process.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Holder {
    User(String),
    Anonymous(IpAddr),
    Service(String),
}

impl Holder {
    pub fn is_anonymous(&self) -> bool {
        matches!(self, Self::Anonymous(_))
    }
}

/// Why a request was refused by a budget or a slot count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
    /// How long to wait before trying again; `None` when waiting cannot help (too large).
    pub retry_after_secs: Option<u64>,
}

impl From<Refusal> for ServiceError {
    fn from(refusal: Refusal) -> Self {
        match refusal.retry_after_secs {
            Some(retry_after_secs) => {
                ServiceError::Exhausted { code: refusal.code, message: refusal.message, retry_after_secs }
            }
            None => ServiceError::too_large(refusal.code, refusal.message),
        }
    }
}

/// The limits of an [`InflightBudget`], in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InflightLimits {
    /// All requests of the process together.
    pub total: usize,
    /// One signed-in user's (or one CodeSync process's) requests together.
    pub per_caller: usize,
    /// One anonymous address's requests together.
    pub anonymous_per_address: usize,
    /// Every anonymous request together: many addresses cannot take the whole budget either.
    pub anonymous_total: usize,
}

impl Default for InflightLimits {
    fn default() -> Self {
        Self {
            total: 256 * 1024 * 1024,
            // One of the largest messages (a project import, 72 MiB) and some room to spare.
            per_caller: 96 * 1024 * 1024,
            anonymous_per_address: 4 * 1024 * 1024,
            anonymous_total: 32 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Default)]
struct InflightState {
    total: usize,
    anonymous: usize,
    held: HashMap<Holder, usize>,
}

/// Bytes of requests in flight (REST bodies being read, gRPC messages being received and the
/// unary ones being served, archives being expanded), shared out per caller.
#[derive(Debug)]
pub struct InflightBudget {
    /// `inflight` (requests arriving) or `outbound` (messages queued toward slow readers): the
    /// label of its metrics.
    name: &'static str,
    limits: InflightLimits,
    state: Mutex<InflightState>,
    peak: AtomicU64,
    refused: AtomicU64,
}

impl InflightBudget {
    /// A budget reported at `/metrics` (labelled `budget="<name>"`) for as long as it lives.
    pub fn new(name: &'static str, limits: InflightLimits) -> Arc<Self> {
        let budget = Arc::new(Self {
            name,
            limits,
            state: Mutex::default(),
            peak: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        });
        crate::metrics::register(budget.clone());
        budget
    }

    pub fn limits(&self) -> InflightLimits {
        self.limits
    }

    /// The most `holder` may ever hold at once.
    pub fn share_of(&self, holder: &Holder) -> usize {
        match holder {
            Holder::Anonymous(_) => self.limits.anonymous_per_address.min(self.limits.anonymous_total),
            _ => self.limits.per_caller,
        }
        .min(self.limits.total)
    }

    /// `bytes` more for `holder`, given back when the reservation drops; refused (429, or 413
    /// when `bytes` is more than the holder's whole share) when the holder or the process would
    /// hold more than its limit.
    pub fn try_reserve(self: &Arc<Self>, holder: &Holder, bytes: usize) -> Result<Reservation, Refusal> {
        let share = self.share_of(holder);
        if bytes > share {
            self.refused.fetch_add(1, Ordering::Relaxed);
            let message = if holder.is_anonymous() {
                format!("a request of {bytes} bytes is more than an anonymous caller may send ({share}); sign in")
            } else {
                format!("a request of {bytes} bytes is more than one caller may have in flight ({share})")
            };
            return Err(Refusal { code: ErrorCode::PayloadTooLarge, message, retry_after_secs: None });
        }
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let held = state.held.get(holder).copied().unwrap_or(0);
        let busy = if held + bytes > share {
            Some("you have as many requests in flight as one caller may: wait for them to finish")
        } else if state.total + bytes > self.limits.total {
            Some("the server has as many requests in flight as it takes: try again in a moment")
        } else if holder.is_anonymous() && state.anonymous + bytes > self.limits.anonymous_total {
            Some("the server takes no more anonymous requests for the moment: sign in, or try again shortly")
        } else {
            None
        };
        if let Some(message) = busy {
            drop(state);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal { code: ErrorCode::Busy, message: message.to_string(), retry_after_secs: Some(1) });
        }
        state.total += bytes;
        if holder.is_anonymous() {
            state.anonymous += bytes;
        }
        *state.held.entry(holder.clone()).or_insert(0) += bytes;
        self.peak.fetch_max(state.total as u64, Ordering::Relaxed);
        Ok(Reservation { budget: self.clone(), holder: holder.clone(), bytes })
    }

    /// Bytes held now, in all.
    pub fn in_use(&self) -> usize {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).total
    }

    fn release(&self, holder: &Holder, bytes: usize) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.total = state.total.saturating_sub(bytes);
        if holder.is_anonymous() {
            state.anonymous = state.anonymous.saturating_sub(bytes);
        }
        if let Some(held) = state.held.get_mut(holder) {
            *held = held.saturating_sub(bytes);
            if *held == 0 {
                state.held.remove(holder);
            }
        }
    }
}

impl crate::metrics::Source for InflightBudget {
    fn readings(&self) -> Vec<Reading> {
        let (total, anonymous, holders) = {
            let state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            (state.total, state.anonymous, state.held.len())
        };
        let readings = vec![
            Reading::gauge(
                "budget_bytes",
                "Bytes held in a byte budget (inflight: requests; outbound: queued toward clients)",
                total as f64,
            ),
            Reading::gauge("budget_anonymous_bytes", "Bytes held by callers without an access token", anonymous as f64),
            Reading::gauge("budget_holders", "Callers holding bytes of a budget", holders as f64),
            Reading::gauge(
                "budget_limit_bytes",
                "A byte budget's limit (CODESYNC_INFLIGHT_BYTES, CODESYNC_OUTBOUND_BYTES)",
                self.limits.total as f64,
            ),
            Reading::gauge(
                "budget_peak_bytes",
                "The most bytes a budget held at once since the start",
                self.peak.load(Ordering::Relaxed) as f64,
            ),
            Reading::counter(
                "budget_refused",
                "Reservations refused by a byte budget",
                self.refused.load(Ordering::Relaxed),
            ),
        ];
        readings.into_iter().map(|reading| reading.with_label("budget", self.name)).collect()
    }
}

/// Bytes of an [`InflightBudget`], held until dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<InflightBudget>,
    holder: Holder,
    bytes: usize,
}

impl Reservation {
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.release(&self.holder, self.bytes);
    }
}

/// How [`Slots`] name what they count in their refusals and metrics.
#[derive(Debug, Clone, Copy)]
pub struct SlotKind {
    /// The metric's label (`search`, `import`, `grpc_stream`).
    pub name: &'static str,
    /// What one slot is, in a sentence: "searches", "WebSockets and streams".
    pub what: &'static str,
    /// The code of a refusal.
    pub code: ErrorCode,
    pub retry_after_secs: u64,
}

/// Things held at once (streams open, searches running), at most `per_key` for one key and
/// `total` in all.
#[derive(Debug)]
pub struct Slots<K: Eq + std::hash::Hash + Clone + Send + std::fmt::Debug + 'static = String> {
    kind: SlotKind,
    per_key: usize,
    total: usize,
    open: Mutex<(usize, HashMap<K, usize>)>,
    refused: AtomicU64,
    /// Told whenever a slot is given back, for those waiting for one ([`Slots::take_waiting`]).
    freed: tokio::sync::Notify,
}

impl<K: Eq + std::hash::Hash + Clone + Send + Sync + std::fmt::Debug + 'static> Slots<K> {
    /// Slots reported at `/metrics` (labelled with the kind's name) for as long as they live.
    pub fn new(kind: SlotKind, per_key: usize, total: usize) -> Arc<Self> {
        let slots = Arc::new(Self {
            kind,
            per_key: per_key.max(1),
            total: total.max(1),
            open: Mutex::default(),
            refused: AtomicU64::new(0),
            freed: tokio::sync::Notify::new(),
        });
        crate::metrics::register(slots.clone());
        slots
    }

    pub fn per_key(&self) -> usize {
        self.per_key
    }

    /// One more for `key`, given back when the slot drops, or a refusal saying which limit.
    pub fn take(self: &Arc<Self>, key: &K) -> Result<Slot<K>, Refusal> {
        self.try_take(key).map_err(|full| self.refusal(full))
    }

    /// Like [`Self::take`], but when only the process's limit is reached (not `key`'s own), waits
    /// up to `wait` for a slot to be given back: a short queue in front of expensive work, so
    /// that callers under their share are served in turn rather than refused.
    pub async fn take_waiting(self: &Arc<Self>, key: &K, wait: std::time::Duration) -> Result<Slot<K>, Refusal> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before trying, so that a slot given back in between is not missed.
            freed.as_mut().enable();
            match self.try_take(key) {
                Ok(slot) => return Ok(slot),
                Err(Full::Key) => return Err(self.refusal(Full::Key)),
                Err(Full::Total) => {
                    if tokio::time::timeout_at(deadline, freed).await.is_err() {
                        return Err(self.refusal(Full::Total));
                    }
                }
            }
        }
    }

    fn try_take(self: &Arc<Self>, key: &K) -> Result<Slot<K>, Full> {
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let held = open.1.get(key).copied().unwrap_or(0);
        if held >= self.per_key {
            return Err(Full::Key);
        }
        if open.0 >= self.total {
            return Err(Full::Total);
        }
        open.0 += 1;
        *open.1.entry(key.clone()).or_insert(0) += 1;
        Ok(Slot { slots: self.clone(), key: key.clone() })
    }

    fn refusal(&self, full: Full) -> Refusal {
        self.refused.fetch_add(1, Ordering::Relaxed);
        let message = match full {
            Full::Key => format!(
                "you have {} {} going, as many as one caller may: wait for one to end",
                self.per_key, self.kind.what
            ),
            Full::Total => {
                format!("the server has as many {} going as it takes: try again in a moment", self.kind.what)
            }
        };
        Refusal { code: self.kind.code, message, retry_after_secs: Some(self.kind.retry_after_secs) }
    }

    /// Slots held now, in all.
    pub fn in_use(&self) -> usize {
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner).0
    }
}

impl<K: Eq + std::hash::Hash + Clone + Send + Sync + std::fmt::Debug + 'static> crate::metrics::Source for Slots<K> {
    fn readings(&self) -> Vec<Reading> {
        let (open, holders) = {
            let open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            (open.0, open.1.len())
        };
        vec![
            Reading::gauge("slots_in_use", "Streams or expensive requests going, by kind", open as f64)
                .with_label("kind", self.kind.name),
            Reading::gauge("slots_holders", "Callers holding slots, by kind", holders as f64)
                .with_label("kind", self.kind.name),
            Reading::gauge("slots_limit", "Slots of each kind the process has", self.total as f64)
                .with_label("kind", self.kind.name),
            Reading::counter(
                "slots_refused",
                "Requests refused at a slot limit, by kind",
                self.refused.load(Ordering::Relaxed),
            )
            .with_label("kind", self.kind.name),
        ]
    }
}

/// Which limit a slot could not be taken under.
#[derive(Debug, Clone, Copy)]
enum Full {
    Key,
    Total,
}

/// One held slot of [`Slots`], given back when dropped.
#[derive(Debug)]
pub struct Slot<K: Eq + std::hash::Hash + Clone + Send + Sync + std::fmt::Debug + 'static = String> {
    slots: Arc<Slots<K>>,
    key: K,
}

impl<K: Eq + std::hash::Hash + Clone + Send + Sync + std::fmt::Debug + 'static> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        open.0 = open.0.saturating_sub(1);
        if let Some(held) = open.1.get_mut(&self.key) {
            *held -= 1;
            if *held == 0 {
                open.1.remove(&self.key);
            }
        }
        drop(open);
        self.slots.freed.notify_waiters();
    }
}

/// How many expensive requests (a search across a room, a project's import, an archive built or
/// expanded) one caller and the whole process may have going at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpensiveLimits {
    pub per_caller: usize,
    pub total: usize,
}

impl Default for ExpensiveLimits {
    fn default() -> Self {
        // Half the CPUs: the other half keeps answering everyone's ordinary requests.
        Self { per_caller: 2, total: (available_cpus() / 2).max(1) }
    }
}

/// How long an expensive request under its caller's share waits for the process's turn before
/// it is refused.
pub const EXPENSIVE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The slots of a pool of expensive requests (`name`: the metric's label), keyed by caller
/// ([`caller_key`]). Past the caller's share: 429 `too_many_concurrent_requests` at once; past
/// the process's: waits [`EXPENSIVE_WAIT`] for a turn, then the same refusal.
pub fn expensive_slots(name: &'static str, limits: ExpensiveLimits) -> Arc<Slots<String>> {
    let kind = SlotKind {
        name,
        what: "searches, imports or archives",
        code: ErrorCode::TooManyConcurrentRequests,
        retry_after_secs: 2,
    };
    Slots::new(kind, limits.per_caller, limits.total)
}

/// Whom an expensive request counts for: its user, or without one its address.
pub fn caller_key(user_id: Option<&str>, address: Option<IpAddr>) -> String {
    match (user_id, address) {
        (Some(user_id), _) => format!("user:{user_id}"),
        (None, Some(address)) => format!("address:{}", crate::rate_limit::address_key(address)),
        (None, None) => "address:unknown".to_string(),
    }
}

/// A request's or an answer's body that keeps `guard` (its marks, slots and reservations) until
/// the body is done with: a streamed answer holds what its call holds for as long as it streams.
pub struct Holding<B, G> {
    pub inner: B,
    pub guard: G,
}

impl<B: http_body::Body + Unpin, G: Unpin> http_body::Body for Holding<B, G> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_frame(context)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The number of CPUs this process may use (at least 1).
pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Runs CPU-heavy work (a snapshot encode, a log replay, a large diff, a search's matching, an
/// archive) on the process's pool of its own for such work, instead of an async worker, so that
/// one big document or one slow search does not stall every socket on that worker. The pool has
/// one thread per CPU, each at a lower scheduling priority (nice 10) than the async workers: when
/// both want the CPUs, ordinary requests go first. At most [`CPU_POOL_QUEUE`] jobs wait; past
/// that a caller waits for room. A panic in `work` comes back as an internal error.
pub async fn off_the_workers<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ServiceError> {
    let (done, result) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
        let _ = done.send(outcome);
    });
    if CPU_POOL.jobs.send(job).await.is_err() {
        return Err(ServiceError::internal("the CPU pool has stopped"));
    }
    match result.await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_)) => Err(ServiceError::internal(format_args!("{what} panicked"))),
        Err(_) => Err(ServiceError::internal(format_args!("{what} was dropped"))),
    }
}

/// Jobs waiting for the CPU pool at most.
pub const CPU_POOL_QUEUE: usize = 1024;

type Job = Box<dyn FnOnce() + Send>;

struct CpuPool {
    jobs: tokio::sync::mpsc::Sender<Job>,
}

static CPU_POOL: std::sync::LazyLock<CpuPool> = std::sync::LazyLock::new(|| {
    let (jobs, queued) = tokio::sync::mpsc::channel::<Job>(CPU_POOL_QUEUE);
    let queued = Arc::new(Mutex::new(queued));
    for number in 0..available_cpus() {
        let queued = queued.clone();
        let spawned = std::thread::Builder::new().name(format!("codesync-cpu-{number}")).spawn(move || {
            // Below the async workers: nice 10 (of this thread only, on Linux).
            if let Err(error) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 10) {
                tracing::debug!(%error, "cannot lower a CPU pool thread's priority");
            }
            loop {
                let job = queued.lock().unwrap_or_else(std::sync::PoisonError::into_inner).blocking_recv();
                match job {
                    Some(job) => job(),
                    None => return,
                }
            }
        });
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start a CPU pool thread");
        }
    }
    CpuPool { jobs }
});

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn user(name: &str) -> Holder {
        Holder::User(name.to_string())
    }

    fn limits() -> InflightLimits {
        InflightLimits { total: 100, per_caller: 60, anonymous_per_address: 10, anonymous_total: 15 }
    }

    #[test]
    fn one_caller_cannot_take_the_whole_budget_and_bytes_come_back() {
        let budget = InflightBudget::new("test", limits());
        let first = budget.try_reserve(&user("ada"), 50).unwrap();
        let refusal = budget.try_reserve(&user("ada"), 20).unwrap_err();
        assert_eq!(refusal.code, ErrorCode::Busy);
        assert_eq!(refusal.retry_after_secs, Some(1));
        let _bob = budget.try_reserve(&user("bob"), 45).unwrap();
        assert_eq!(budget.try_reserve(&user("cy"), 10).unwrap_err().code, ErrorCode::Busy, "the process is full");
        drop(first);
        assert_eq!(budget.in_use(), 45);
        assert!(budget.try_reserve(&user("cy"), 10).is_ok());
        let too_large = budget.try_reserve(&user("cy"), 61).unwrap_err();
        assert_eq!(too_large.code, ErrorCode::PayloadTooLarge);
        assert_eq!(too_large.retry_after_secs, None, "waiting cannot help");
    }

    #[test]
    fn anonymous_callers_share_a_small_part_per_address_and_in_all() {
        let budget = InflightBudget::new("test", limits());
        let one = Holder::Anonymous("192.0.2.1".parse().unwrap());
        let two = Holder::Anonymous("192.0.2.2".parse().unwrap());
        let _a = budget.try_reserve(&one, 10).unwrap();
        assert_eq!(budget.try_reserve(&one, 1).unwrap_err().code, ErrorCode::Busy);
        let _b = budget.try_reserve(&two, 5).unwrap();
        assert_eq!(budget.try_reserve(&two, 1).unwrap_err().code, ErrorCode::Busy, "15 anonymous bytes in all");
        assert!(budget.try_reserve(&user("ada"), 60).is_ok(), "signed-in callers are not held up");
        assert_eq!(budget.try_reserve(&one, 11).unwrap_err().code, ErrorCode::PayloadTooLarge);
    }

    #[test]
    fn slots_are_capped_per_key_and_in_all_and_given_back() {
        let kind =
            SlotKind { name: "test", what: "tests", code: ErrorCode::TooManyConcurrentRequests, retry_after_secs: 2 };
        let slots: Arc<Slots> = Slots::new(kind, 2, 3);
        let first = slots.take(&"ada".to_string()).unwrap();
        let _second = slots.take(&"ada".to_string()).unwrap();
        let refusal = slots.take(&"ada".to_string()).unwrap_err();
        assert_eq!(refusal.code, ErrorCode::TooManyConcurrentRequests);
        assert!(refusal.message.contains("2 tests going"), "{}", refusal.message);
        let _third = slots.take(&"bob".to_string()).unwrap();
        assert!(slots.take(&"cy".to_string()).is_err(), "three in all");
        drop(first);
        let _fourth = slots.take(&"cy".to_string()).unwrap();
        assert_eq!(slots.in_use(), 3);
    }

    #[tokio::test]
    async fn past_the_process_s_limit_a_caller_under_its_share_waits_its_turn() {
        let kind = SlotKind {
            name: "wait",
            what: "searches",
            code: ErrorCode::TooManyConcurrentRequests,
            retry_after_secs: 1,
        };
        let slots: Arc<Slots> = Slots::new(kind, 1, 1);
        let held = slots.take(&"ada".to_string()).unwrap();
        let own_share = slots.take_waiting(&"ada".to_string(), Duration::from_secs(5)).await;
        assert!(own_share.is_err(), "past one's own share: refused at once");
        let waiting = {
            let slots = slots.clone();
            tokio::spawn(async move { slots.take_waiting(&"bob".to_string(), Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
        let _bob = waiting.await.unwrap().expect("served once a slot is given back");
        let timed_out = slots.take_waiting(&"cy".to_string(), Duration::from_millis(20)).await.unwrap_err();
        assert!(timed_out.message.contains("the server has as many searches"), "{}", timed_out.message);
    }
}
