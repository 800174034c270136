//! Group commit: one task writes every document's appended updates and
//! snapshots. Whatever queued up while the previous commit was syncing goes
//! into the next transaction, so durability costs one sync per batch, not
//! one per keystroke, and latency stays at one commit when the load is light.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

use crate::ownership::Ownership;
use crate::store::{AppendedUpdate, DocumentsStore, Snapshot};

/// How far a document's log is durable, as the writer reports it to the document's actor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Durability {
    /// Every update with a lower or equal sequence number is durable.
    pub durable_seq: i64,
    /// A batch with this document's updates failed; the actor must reload from the store.
    pub failed: bool,
    /// Another replica took the file over: nothing more of this actor's is stored, it must close.
    pub fenced: bool,
}

pub type DurabilitySender = Arc<watch::Sender<Durability>>;

pub enum WriteRequest {
    Append {
        update: AppendedUpdate,
        report_to: DurabilitySender,
    },
    Snapshot {
        snapshot: Snapshot,
        report_to: DurabilitySender,
    },
    /// Answered once everything queued before it is durable (or failed).
    Barrier(oneshot::Sender<()>),
}

/// Upper bound of one transaction, so a huge backlog still commits in steps.
const MAX_REQUESTS_PER_BATCH: usize = 4096;

#[derive(Clone)]
pub struct Writer {
    requests: mpsc::Sender<WriteRequest>,
}

impl Writer {
    /// Starts the writer task; it ends when every `Writer` handle is dropped.
    pub fn start(
        store: DocumentsStore,
        queue_capacity: usize,
        metrics: Arc<crate::Metrics>,
        ownership: Ownership,
    ) -> Self {
        let (requests, receiver) = mpsc::channel(queue_capacity);
        tokio::spawn(write_loop(store, receiver, metrics, ownership));
        Self { requests }
    }

    pub async fn submit(&self, request: WriteRequest) -> Result<(), WriterGone> {
        self.requests.send(request).await.map_err(|_| WriterGone)
    }

    /// Waits until everything submitted before is durable.
    pub async fn barrier(&self) -> Result<(), WriterGone> {
        let (done, wait) = oneshot::channel();
        self.submit(WriteRequest::Barrier(done)).await?;
        wait.await.map_err(|_| WriterGone)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the document writer has stopped")]
pub struct WriterGone;

async fn write_loop(
    store: DocumentsStore,
    mut receiver: mpsc::Receiver<WriteRequest>,
    metrics: Arc<crate::Metrics>,
    ownership: Ownership,
) {
    let mut batch = Vec::with_capacity(MAX_REQUESTS_PER_BATCH);
    // The writer's own connection, kept from one batch to the next.
    let mut connection = None;
    loop {
        batch.clear();
        if receiver.recv_many(&mut batch, MAX_REQUESTS_PER_BATCH).await == 0 {
            return;
        }
        let mut updates = Vec::new();
        let mut snapshots = Vec::new();
        let mut barriers = Vec::new();
        // The highest sequence number of each document in this batch, by its report channel.
        // The highest sequence number of each document in this batch, by its report channel,
        // and the file it is of.
        let mut reports: HashMap<usize, (DurabilitySender, i64, String)> = HashMap::new();
        for request in batch.drain(..) {
            match request {
                WriteRequest::Append { update, report_to } => {
                    let entry = reports
                        .entry(Arc::as_ptr(&report_to) as usize)
                        .or_insert_with(|| (report_to.clone(), update.seq, update.file_id.clone()));
                    entry.1 = entry.1.max(update.seq);
                    updates.push(update);
                }
                WriteRequest::Snapshot { snapshot, report_to } => {
                    reports
                        .entry(Arc::as_ptr(&report_to) as usize)
                        .or_insert_with(|| (report_to.clone(), i64::MIN, snapshot.file_id.clone()));
                    snapshots.push(snapshot);
                }
                WriteRequest::Barrier(done) => barriers.push(done),
            }
        }
        let started = std::time::Instant::now();
        let fence = ownership.fence().await;
        let result = store
            .write_batch_on(&mut connection, &updates, &snapshots, codesync_common::now_ms(), fence.as_deref())
            .await;
        metrics.record_commit(updates.len(), started.elapsed());
        match result {
            Ok(fenced) => {
                for (report_to, seq, file_id) in reports.into_values() {
                    if fenced.contains(&file_id) {
                        report_to.send_modify(|durability| durability.fenced = true);
                    } else {
                        report_to.send_modify(|durability| durability.durable_seq = durability.durable_seq.max(seq));
                    }
                }
            }
            Err(error) => {
                tracing::error!(%error, updates = updates.len(), snapshots = snapshots.len(), "cannot write document updates");
                for (report_to, _, _) in reports.into_values() {
                    report_to.send_modify(|durability| durability.failed = true);
                }
            }
        }
        for done in barriers {
            let _ = done.send(());
        }
    }
}
