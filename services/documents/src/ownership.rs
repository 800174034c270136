//! Who owns each file's live document, so that any number of documents replicas can share one
//! store: exactly one replica at a time loads a file, applies its edits and appends to its log;
//! the others forward their clients to it.
//!
//! On SQLite there is one replica, made sure of by a lock on a file beside the database (a
//! second process is refused at start). On PostgreSQL every replica is a node with a lease
//! (`document_nodes`, renewed every quarter of its time to live, in the database's clock: the
//! machines' clocks are never compared), and each file names its owning node and an epoch
//! (`document_owners`). A replica takes a file over only when it has no owner or its owner's
//! lease has run out, and each takeover raises the epoch. Every append carries the epoch it
//! was made under and is checked against the file's row, locked for the append's transaction
//! (`FOR SHARE`; a takeover's update waits for it): a paused or partitioned old owner can never
//! append after a new one took over, and whatever it appended before is in the log the new
//! owner loads.
//!
//! A node that could not renew its lease in time counts as dead: it closes its documents and
//! comes back as a new node. Ownership outlives unloading (a replica that unloaded an idle file
//! still owns it and loads it again when asked), and is handed back on a graceful stop.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use codesync_common::db::{Backend, Database};
use codesync_common::{ServiceError, ServiceResult};
use sqlx::Row;
use tokio::sync::{Notify, RwLock};

/// The epoch every append of the single SQLite replica carries (there is nothing to fence).
pub const SINGLE_NODE_EPOCH: i64 = 0;

/// The database's own clock in milliseconds: leases are measured against it alone.
const NOW_MS: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

#[derive(Debug, thiserror::Error)]
pub enum OwnershipError {
    #[error(
        "another documents process already uses the SQLite database {path}: several documents replicas need \
         PostgreSQL (set CODESYNC_DATABASE_URL=postgres://...), or stop the other process"
    )]
    SqliteTaken { path: PathBuf },
    #[error("cannot lock {path} beside the SQLite database: {source}")]
    Lock { path: PathBuf, source: std::io::Error },
    #[error("cannot register this documents replica in the database: {0}")]
    Register(sqlx::Error),
}

/// Where a file's live document is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// This replica owns it, under this epoch.
    Here { epoch: i64 },
    /// Another replica does; its gRPC address (`host:port`).
    Elsewhere { address: String },
}

/// The replicas' shared record of who owns what.
#[derive(Clone)]
pub enum Ownership {
    /// One replica on SQLite: everything is here.
    Single(Arc<SingleReplica>),
    /// Several replicas on PostgreSQL.
    Leased(Arc<Leases>),
}

/// Holds the lock that keeps a second documents process off an SQLite database.
pub struct SingleReplica {
    _lock: Option<File>,
}

pub struct Leases {
    database: Database,
    address: String,
    ttl: Duration,
    /// This incarnation's node id; replaced when the lease was lost.
    node: RwLock<String>,
    alive: AtomicBool,
    /// Set by a graceful stop: the node does not rejoin.
    stopped: AtomicBool,
    /// Fires when this node lost its lease: every loaded document must close.
    lost: Notify,
}

impl Ownership {
    /// Ownership for the documents service on `database`. `address` is where other replicas
    /// reach this one's gRPC; `ttl` how long a lease outlives its last renewal.
    pub async fn start(database: &Database, address: String, ttl: Duration) -> Result<Self, OwnershipError> {
        match database.backend() {
            Backend::Sqlite => Ok(Self::Single(Arc::new(SingleReplica::lock(database.sqlite_file())?))),
            Backend::Postgres => {
                let leases = Arc::new(Leases {
                    database: database.clone(),
                    address,
                    ttl,
                    node: RwLock::new(codesync_common::new_id()),
                    alive: AtomicBool::new(false),
                    stopped: AtomicBool::new(false),
                    lost: Notify::new(),
                });
                leases.register().await.map_err(OwnershipError::Register)?;
                tokio::spawn(renew(Arc::downgrade(&leases)));
                Ok(Self::Leased(leases))
            }
        }
    }

    /// Who owns `file_id`, taking it over for this replica if it has no live owner.
    pub async fn claim(&self, file_id: &str) -> ServiceResult<Owner> {
        match self {
            Self::Single(_) => Ok(Owner::Here { epoch: SINGLE_NODE_EPOCH }),
            Self::Leased(leases) => leases.claim(file_id).await,
        }
    }

    /// This node's id for fenced writes; `None` where there is nothing to fence.
    pub async fn fence(&self) -> Option<String> {
        match self {
            Self::Single(_) => None,
            Self::Leased(leases) => Some(leases.node.read().await.clone()),
        }
    }

    /// Completes when this replica lost its lease (never on SQLite).
    pub async fn lost(&self) {
        match self {
            Self::Single(_) => std::future::pending().await,
            Self::Leased(leases) => leases.lost.notified().await,
        }
    }

    /// A graceful stop begins: this replica takes no file any more.
    pub fn stop_claiming(&self) {
        if let Self::Leased(leases) = self {
            leases.stopped.store(true, Ordering::SeqCst);
        }
    }

    /// The address of the live replica that owns `file_id`, when that is not this one.
    pub async fn live_owner_elsewhere(&self, file_id: &str) -> ServiceResult<Option<String>> {
        let Self::Leased(leases) = self else { return Ok(None) };
        let node = leases.node.read().await.clone();
        let owner = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT document_nodes.address FROM document_owners JOIN document_nodes \
               ON document_nodes.node_id = document_owners.node_id AND document_nodes.expires_at_ms > {NOW_MS} \
             WHERE document_owners.file_id = $1 AND document_owners.node_id <> $2"
        )))
        .bind(file_id)
        .bind(&node)
        .fetch_optional(leases.database.pool())
        .await?;
        Ok(owner.map(|row| row.try_get("address")).transpose()?)
    }

    /// Gives every file of this replica back (a graceful stop): other replicas take them over
    /// at once instead of after the lease.
    pub async fn release_all(&self) {
        if let Self::Leased(leases) = self {
            leases.release_all().await;
        }
    }

    /// Forgets a deleted file's owner.
    pub async fn forget(&self, file_id: &str) -> ServiceResult<()> {
        if let Self::Leased(leases) = self {
            sqlx::query("DELETE FROM document_owners WHERE file_id = $1")
                .bind(file_id)
                .execute(leases.database.pool())
                .await?;
        }
        Ok(())
    }
}

impl SingleReplica {
    fn lock(database_file: Option<&Path>) -> Result<Self, OwnershipError> {
        let Some(database_file) = database_file else { return Ok(Self { _lock: None }) };
        let mut lock_path = database_file.as_os_str().to_owned();
        lock_path.push(".documents.lock");
        let lock_path = PathBuf::from(lock_path);
        let lock_error = |source| OwnershipError::Lock { path: lock_path.clone(), source };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(lock_error)?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _lock: Some(file) }),
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(OwnershipError::SqliteTaken { path: database_file.to_path_buf() })
            }
            Err(std::fs::TryLockError::Error(source)) => Err(lock_error(source)),
        }
    }
}

impl Leases {
    async fn register(&self) -> Result<(), sqlx::Error> {
        let node = self.node.read().await.clone();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO document_nodes (node_id, address, expires_at_ms) VALUES ($1, $2, {NOW_MS} + $3)"
        )))
        .bind(&node)
        .bind(&self.address)
        .bind(self.ttl_ms())
        .execute(self.database.pool())
        .await?;
        self.alive.store(true, Ordering::SeqCst);
        tracing::info!(node = %node, address = %self.address, "this documents replica joined");
        Ok(())
    }

    fn ttl_ms(&self) -> i64 {
        i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX)
    }

    /// Renews the lease only while it has not run out: a node that was paused past it must not
    /// come back to life under the same id (others may have taken its files).
    async fn renew_once(&self) -> Result<bool, sqlx::Error> {
        let node = self.node.read().await.clone();
        let renewed = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE document_nodes SET expires_at_ms = {NOW_MS} + $1 WHERE node_id = $2 AND expires_at_ms > {NOW_MS}"
        )))
        .bind(self.ttl_ms())
        .bind(&node)
        .execute(self.database.pool())
        .await?
        .rows_affected();
        Ok(renewed == 1)
    }

    async fn claim(&self, file_id: &str) -> ServiceResult<Owner> {
        if self.stopped.load(Ordering::SeqCst) {
            return Err(ServiceError::Restarting { message: "the server is restarting; try again".into() });
        }
        if !self.alive.load(Ordering::SeqCst) {
            return Err(ServiceError::Unavailable {
                message: "this documents replica is rejoining its peers; try again".into(),
            });
        }
        let node = self.node.read().await.clone();
        // Takes the file when it has no live owner; keeps the epoch when it is ours already.
        let claimed = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO document_owners (file_id, node_id, epoch) VALUES ($1, $2, 1) \
             ON CONFLICT (file_id) DO UPDATE SET node_id = excluded.node_id, \
               epoch = CASE WHEN document_owners.node_id = excluded.node_id THEN document_owners.epoch \
                            ELSE document_owners.epoch + 1 END \
             WHERE document_owners.node_id = excluded.node_id OR NOT EXISTS ( \
               SELECT 1 FROM document_nodes WHERE document_nodes.node_id = document_owners.node_id \
               AND document_nodes.expires_at_ms > {NOW_MS}) \
             RETURNING epoch"
        )))
        .bind(file_id)
        .bind(&node)
        .fetch_optional(self.database.pool())
        .await?;
        if let Some(row) = claimed {
            let epoch: i64 = row.try_get("epoch")?;
            return Ok(Owner::Here { epoch });
        }
        let owner = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT document_nodes.address FROM document_owners JOIN document_nodes \
               ON document_nodes.node_id = document_owners.node_id AND document_nodes.expires_at_ms > {NOW_MS} \
             WHERE document_owners.file_id = $1"
        )))
        .bind(file_id)
        .fetch_optional(self.database.pool())
        .await?;
        match owner {
            Some(row) => Ok(Owner::Elsewhere { address: row.try_get("address")? }),
            // The owner's lease ran out between the two statements: the caller asks again.
            None => Err(ServiceError::Unavailable { message: "the file's owner just changed; try again".into() }),
        }
    }

    async fn release_all(&self) {
        let node = self.node.read().await.clone();
        self.stopped.store(true, Ordering::SeqCst);
        self.alive.store(false, Ordering::SeqCst);
        let released = sqlx::query("UPDATE document_owners SET node_id = '' WHERE node_id = $1")
            .bind(&node)
            .execute(self.database.pool())
            .await;
        let left = sqlx::query("DELETE FROM document_nodes WHERE node_id = $1")
            .bind(&node)
            .execute(self.database.pool())
            .await;
        match (released, left) {
            (Ok(released), Ok(_)) => {
                tracing::info!(node = %node, files = released.rows_affected(), "handed this replica's files back");
            }
            (Err(error), _) | (_, Err(error)) => {
                tracing::warn!(node = %node, %error, "cannot hand the files back; others take them over when the lease ends");
            }
        }
    }

    /// The lease ran out: every document of this node closes (the caller's `lost` waiters), and
    /// the node comes back under a new id.
    async fn rejoin(&self) {
        self.alive.store(false, Ordering::SeqCst);
        self.lost.notify_waiters();
        let old = std::mem::replace(&mut *self.node.write().await, codesync_common::new_id());
        tracing::error!(node = %old, "this documents replica lost its lease (paused, or cut off from the database); its files close and it rejoins as a new node");
        let _ =
            sqlx::query("DELETE FROM document_nodes WHERE node_id = $1").bind(&old).execute(self.database.pool()).await;
    }
}

/// Renews the lease every quarter of its time to live; after a renewal that failed or came too
/// late, the node rejoins under a new id.
async fn renew(leases: std::sync::Weak<Leases>) {
    let Some(interval) = leases.upgrade().map(|leases| leases.ttl / 4) else { return };
    let mut ticks = tokio::time::interval(interval.max(Duration::from_millis(50)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_renewal = tokio::time::Instant::now();
    let mut cleanups = 0u32;
    loop {
        ticks.tick().await;
        let Some(leases) = leases.upgrade() else { return };
        if leases.stopped.load(Ordering::SeqCst) {
            return;
        }
        if !leases.alive.load(Ordering::SeqCst) {
            // Rejoining after the lease was lost.
            if leases.register().await.is_ok() {
                last_renewal = tokio::time::Instant::now();
            }
            continue;
        }
        let renewed = tokio::time::timeout(leases.ttl / 2, leases.renew_once()).await;
        match renewed {
            Ok(Ok(true)) if last_renewal.elapsed() < leases.ttl => last_renewal = tokio::time::Instant::now(),
            Ok(Ok(_)) => leases.rejoin().await,
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot renew this documents replica's lease");
                if last_renewal.elapsed() >= leases.ttl {
                    leases.rejoin().await;
                }
            }
            Err(_) => {
                tracing::warn!("renewing this documents replica's lease timed out");
                if last_renewal.elapsed() >= leases.ttl {
                    leases.rejoin().await;
                }
            }
        }
        cleanups = cleanups.wrapping_add(1);
        if cleanups.is_multiple_of(1000) {
            // Nodes long dead: their files are taken over (or released) already.
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM document_nodes WHERE expires_at_ms < {NOW_MS} - 3600000"
            )))
            .execute(leases.database.pool())
            .await;
        }
    }
}
