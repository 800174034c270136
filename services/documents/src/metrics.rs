//! Counters of what the service did, for `/metrics` and the benchmarks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counters of what the service did, for `/metrics` and the benchmarks.
#[derive(Debug, Default)]
pub struct Metrics {
    pub documents_loaded: AtomicU64,
    pub relayed_updates: AtomicU64,
    pub malformed_messages: AtomicU64,
    pub refused_writes: AtomicU64,
    pub apply_panics: AtomicU64,
    pub slow_clients_dropped: AtomicU64,
    pub snapshots: AtomicU64,
    pub commits: AtomicU64,
    pub committed_updates: AtomicU64,
    pub commit_micros: AtomicU64,
}

impl codesync_common::metrics::Source for Metrics {
    fn readings(&self) -> Vec<codesync_common::metrics::Reading> {
        use codesync_common::metrics::Reading;
        let count = |value: &AtomicU64| value.load(Ordering::Relaxed);
        vec![
            Reading::counter("documents_loads", "Documents loaded from the store", count(&self.documents_loaded)),
            Reading::counter(
                "documents_relayed_updates",
                "Updates relayed to the other connections of a document",
                count(&self.relayed_updates),
            ),
            Reading::counter("documents_commits", "Group commits (each synced to disk)", count(&self.commits)),
            Reading::counter(
                "documents_committed_updates",
                "Updates made durable by group commits",
                count(&self.committed_updates),
            ),
            Reading::total(
                "documents_commit_seconds",
                "Time spent in group commits (its rate over the commits' rate is the mean commit time)",
                count(&self.commit_micros) as f64 / 1e6,
            ),
            Reading::counter("documents_snapshots", "Logs compacted into snapshots", count(&self.snapshots)),
            Reading::counter(
                "documents_malformed_messages",
                "Client messages refused as malformed",
                count(&self.malformed_messages),
            ),
            Reading::counter(
                "documents_refused_writes",
                "Updates refused (a viewer, a document over its size limit)",
                count(&self.refused_writes),
            ),
            Reading::counter(
                "documents_slow_clients_dropped",
                "Connections closed because they fell too far behind",
                count(&self.slow_clients_dropped),
            ),
            Reading::counter("documents_apply_panics", "Updates whose application panicked", count(&self.apply_panics)),
        ]
    }
}

impl Metrics {
    pub(crate) fn record_commit(&self, updates: usize, elapsed: Duration) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.committed_updates.fetch_add(updates as u64, Ordering::Relaxed);
        self.commit_micros.fetch_add(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}
