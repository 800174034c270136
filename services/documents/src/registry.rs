//! The open documents: one actor per file, started on first use, unloaded
//! when idle, and, when loaded documents exceed the memory budget, unloaded
//! least recently used first (documents with connections stay).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use codesync_common::{ServiceError, ServiceResult};
use tokio::sync::mpsc;

use crate::actor::{ActorGauges, Command, DocumentActor, Exit, Opening, Shared};

/// Commands queued for one document before senders wait.
const MAILBOX_CAPACITY: usize = 1024;
const BUDGET_CHECK_INTERVAL: Duration = Duration::from_secs(2);

struct Entry {
    generation: u64,
    mailbox: mpsc::Sender<Command>,
    gauges: Arc<ActorGauges>,
    last_used: Instant,
}

pub struct Registry {
    entries: Mutex<HashMap<String, Entry>>,
    next_generation: std::sync::atomic::AtomicU64,
    shared: Shared,
    memory_budget_bytes: usize,
}

impl Registry {
    pub fn start(shared: Shared, memory_budget_bytes: usize) -> Arc<Self> {
        let registry = Arc::new(Self {
            entries: Mutex::new(HashMap::new()),
            next_generation: std::sync::atomic::AtomicU64::new(1),
            shared,
            memory_budget_bytes,
        });
        let weak = Arc::downgrade(&registry);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(BUDGET_CHECK_INTERVAL);
            loop {
                interval.tick().await;
                let Some(registry) = weak.upgrade() else { return };
                registry.enforce_budget();
            }
        });
        registry
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding this lock cannot leave the map half-changed:
        // every critical section is a single insert, remove or read.
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many documents are loaded, and their estimated memory.
    pub fn loaded(&self) -> (usize, usize) {
        let entries = self.entries();
        let bytes = entries.values().map(|entry| entry.gauges.approx_bytes.load(Ordering::Relaxed)).sum();
        (entries.len(), bytes)
    }

    /// Sends a command to the file's actor, starting it if needed. Returns the
    /// mailbox so that a connection can keep talking to the same actor.
    pub async fn send(
        self: &Arc<Self>,
        file_id: &str,
        opening: &Opening,
        mut command: Command,
    ) -> ServiceResult<mpsc::Sender<Command>> {
        // An actor that is unloading closes its mailbox; the retry starts a fresh one.
        for _ in 0..4 {
            let (generation, mailbox) = self.mailbox_of(file_id, opening);
            match mailbox.send(command).await {
                Ok(()) => return Ok(mailbox),
                Err(mpsc::error::SendError(returned)) => {
                    command = returned;
                    self.forget(file_id, generation);
                }
            }
        }
        Err(ServiceError::Unavailable { message: "the document cannot be opened right now; try again".into() })
    }

    /// The mailboxes of every loaded actor.
    pub fn loaded_mailboxes(&self) -> Vec<mpsc::Sender<Command>> {
        self.entries().values().map(|entry| entry.mailbox.clone()).collect()
    }

    /// The mailbox of the file's actor if it is loaded; nothing is started.
    pub fn mailbox_if_loaded(&self, file_id: &str) -> Option<mpsc::Sender<Command>> {
        self.entries().get(file_id).map(|entry| entry.mailbox.clone())
    }

    fn mailbox_of(self: &Arc<Self>, file_id: &str, opening: &Opening) -> (u64, mpsc::Sender<Command>) {
        let mut entries = self.entries();
        if let Some(entry) = entries.get_mut(file_id) {
            entry.last_used = Instant::now();
            return (entry.generation, entry.mailbox.clone());
        }
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let (mailbox, receiver) = mpsc::channel(MAILBOX_CAPACITY);
        let gauges = Arc::new(ActorGauges::default());
        entries.insert(
            file_id.to_string(),
            Entry { generation, mailbox: mailbox.clone(), gauges: gauges.clone(), last_used: Instant::now() },
        );
        drop(entries);
        tokio::spawn(self.clone().run_actor(file_id.to_string(), generation, receiver, gauges, opening.clone()));
        (generation, mailbox)
    }

    fn forget(&self, file_id: &str, generation: u64) {
        let mut entries = self.entries();
        if entries.get(file_id).is_some_and(|entry| entry.generation == generation) {
            entries.remove(file_id);
        }
    }

    async fn run_actor(
        self: Arc<Self>,
        file_id: String,
        generation: u64,
        mut mailbox: mpsc::Receiver<Command>,
        gauges: Arc<ActorGauges>,
        opening: Opening,
    ) {
        self.shared.metrics.documents_loaded.fetch_add(1, Ordering::Relaxed);
        let loaded = DocumentActor::load(file_id.clone(), self.shared.clone(), &opening, gauges).await;
        let actor = match loaded {
            Ok(actor) => actor,
            Err(error) => {
                tracing::warn!(%file_id, %error, "cannot load a document");
                self.forget(&file_id, generation);
                mailbox.close();
                let status = tonic::Status::from(error);
                while let Ok(command) = mailbox.try_recv() {
                    fail_command(command, &status);
                }
                return;
            }
        };
        let registry = self.clone();
        let unload_file_id = file_id.clone();
        let may_unload = move |mailbox: &mut mpsc::Receiver<Command>, force: bool| {
            let mut entries = registry.entries();
            // Under the lock nobody can fetch this mailbox anew; a sender fetched
            // before fails once it is closed and retries with a fresh actor.
            if !mailbox.is_empty() && !force {
                return false;
            }
            if entries.get(&unload_file_id).is_some_and(|entry| entry.generation == generation) {
                entries.remove(&unload_file_id);
            }
            mailbox.close();
            true
        };
        let exit = actor.run(&mut mailbox, may_unload).await;
        if matches!(exit, Exit::Closed) {
            self.forget(&file_id, generation);
        }
        // Commands that raced with the close are answered, not dropped silently.
        let status = tonic::Status::unavailable("the document was unloaded; try again");
        while let Ok(command) = mailbox.try_recv() {
            fail_command(command, &status);
        }
    }

    fn enforce_budget(&self) {
        let entries = self.entries();
        let mut total: usize = entries.values().map(|entry| entry.gauges.approx_bytes.load(Ordering::Relaxed)).sum();
        if total <= self.memory_budget_bytes {
            return;
        }
        let mut idle: Vec<(&String, &Entry)> =
            entries.iter().filter(|(_, entry)| entry.gauges.connections.load(Ordering::Relaxed) == 0).collect();
        idle.sort_by_key(|(_, entry)| entry.last_used);
        for (file_id, entry) in idle {
            if total <= self.memory_budget_bytes {
                break;
            }
            if entry.mailbox.try_send(Command::Unload).is_ok() {
                tracing::debug!(%file_id, "unloading a document to stay within the memory budget");
                total = total.saturating_sub(entry.gauges.approx_bytes.load(Ordering::Relaxed));
            }
        }
    }
}

fn fail_command(command: Command, status: &tonic::Status) {
    // The status as it came (a refusal naming the file's owner keeps its metadata).
    let error = || ServiceError::Peer(status.clone());
    match command {
        Command::Join { outbox, .. } => outbox.close(status.clone()),
        Command::ClientMessage { .. }
        | Command::Leave { .. }
        | Command::Unload
        | Command::Close { .. }
        | Command::MembershipChanged { .. } => {}
        Command::Read { reply, .. } => {
            let _ = reply.send(Err(error()));
        }
        Command::Edit { reply, .. } => {
            let _ = reply.send(Err(error()));
        }
        Command::Delete { reply } => {
            let _ = reply.send(Err(error()));
        }
    }
}
