//! The documents store: a per-file log of Yjs updates and a snapshot that
//! compacts it, in SQL that SQLite and PostgreSQL both accept.

use std::collections::{BTreeMap, BTreeSet};

use codesync_common::ServiceResult;
use codesync_common::db::{Database, DatabaseError, Migration};
use sqlx::pool::PoolConnection;
use sqlx::{Any, Row};

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "document_log",
        sql: include_str!("../../../migrations/documents/0001_document_log.sql"),
    },
    Migration { version: 2, name: "ownership", sql: include_str!("../../../migrations/documents/0002_ownership.sql") },
];

/// Rows per multi-row INSERT: well under both engines' limits on bound parameters.
const ROWS_PER_INSERT: usize = 200;

/// A file's stored state: apply the snapshot, then the updates in order.
#[derive(Debug, Default)]
pub struct StoredDocument {
    pub snapshot: Option<Vec<u8>>,
    pub covers_seq: i64,
    pub updates: Vec<(i64, Vec<u8>)>,
}

impl StoredDocument {
    pub fn is_empty(&self) -> bool {
        self.snapshot.is_none() && self.updates.is_empty()
    }

    /// The sequence number the next appended update gets.
    pub fn next_seq(&self) -> i64 {
        let last_update = self.updates.last().map_or(-1, |(seq, _)| *seq);
        last_update.max(if self.snapshot.is_some() { self.covers_seq } else { -1 }) + 1
    }

    pub fn stored_bytes(&self) -> usize {
        self.snapshot.as_ref().map_or(0, Vec::len) + self.updates.iter().map(|(_, update)| update.len()).sum::<usize>()
    }
}

#[derive(Debug, Clone)]
pub struct AppendedUpdate {
    pub file_id: String,
    /// The ownership epoch it was made under (see `ownership`).
    pub epoch: i64,
    pub seq: i64,
    pub update_v1: bytes::Bytes,
}

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub file_id: String,
    pub epoch: i64,
    pub covers_seq: i64,
    pub state_v1: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct DocumentsStore {
    database: Database,
}

impl DocumentsStore {
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    pub fn database(&self) -> &Database {
        &self.database
    }

    pub async fn migrate(&self) -> Result<(), DatabaseError> {
        self.database.migrate("documents", MIGRATIONS).await
    }

    /// Removes everything stored for a file's document.
    pub async fn delete_document(&self, file_id: &str) -> ServiceResult<()> {
        let mut transaction = self.database.pool().begin().await?;
        sqlx::query("DELETE FROM document_updates WHERE file_id = $1").bind(file_id).execute(&mut *transaction).await?;
        sqlx::query("DELETE FROM document_snapshots WHERE file_id = $1")
            .bind(file_id)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(())
    }

    pub async fn load(&self, file_id: &str) -> ServiceResult<StoredDocument> {
        let mut document = StoredDocument::default();
        let snapshot = sqlx::query("SELECT covers_seq, state_v1 FROM document_snapshots WHERE file_id = $1")
            .bind(file_id)
            .fetch_optional(self.database.pool())
            .await?;
        if let Some(row) = snapshot {
            document.covers_seq = row.try_get("covers_seq")?;
            document.snapshot = Some(row.try_get("state_v1")?);
        }
        let after_seq = if document.snapshot.is_some() { document.covers_seq } else { -1 };
        let rows =
            sqlx::query("SELECT seq, update_v1 FROM document_updates WHERE file_id = $1 AND seq > $2 ORDER BY seq")
                .bind(file_id)
                .bind(after_seq)
                .fetch_all(self.database.pool())
                .await?;
        for row in rows {
            document.updates.push((row.try_get("seq")?, row.try_get("update_v1")?));
        }
        Ok(document)
    }

    /// Stores the first update of a file that has none; false if another writer was first.
    pub async fn insert_seed(&self, file_id: &str, update_v1: &[u8], now_ms: i64) -> ServiceResult<bool> {
        let inserted = sqlx::query(
            "INSERT INTO document_updates (file_id, seq, update_v1, created_at_ms) VALUES ($1, 0, $2, $3) \
             ON CONFLICT (file_id, seq) DO NOTHING",
        )
        .bind(file_id)
        .bind(update_v1)
        .bind(now_ms)
        .execute(self.database.pool())
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    /// Writes appended updates and snapshots in one transaction: one commit,
    /// one sync to disk, for everything that queued up meanwhile.
    ///
    /// With a `fence` (this replica's node id), only the writes of files whose ownership row
    /// still names this node and the write's epoch go in, with those rows locked until the
    /// commit, so that no takeover lands in between; the files refused are returned.
    pub async fn write_batch(
        &self,
        updates: &[AppendedUpdate],
        snapshots: &[Snapshot],
        now_ms: i64,
        fence: Option<&str>,
    ) -> ServiceResult<BTreeSet<String>> {
        self.write_batch_on(&mut None, updates, snapshots, now_ms, fence).await
    }

    /// [`Self::write_batch`] on a connection the writer keeps between batches (taken from the
    /// pool when `held` is empty, and dropped after a failure): a commit is then its statements
    /// alone, without a checkout from the pool before each. With SQLite every statement is a
    /// round trip to the connection's own thread, and at light load every edit is a commit.
    pub async fn write_batch_on(
        &self,
        held: &mut Option<PoolConnection<Any>>,
        updates: &[AppendedUpdate],
        snapshots: &[Snapshot],
        now_ms: i64,
        fence: Option<&str>,
    ) -> ServiceResult<BTreeSet<String>> {
        let connection = match held {
            Some(connection) => connection,
            None => held.insert(self.database.pool().acquire().await?),
        };
        let result = Self::write_batch_in(connection, updates, snapshots, now_ms, fence).await;
        if result.is_err() {
            // Whatever failed may have been the connection: the next batch takes another.
            *held = None;
        }
        result
    }

    async fn write_batch_in(
        connection: &mut PoolConnection<Any>,
        updates: &[AppendedUpdate],
        snapshots: &[Snapshot],
        now_ms: i64,
        fence: Option<&str>,
    ) -> ServiceResult<BTreeSet<String>> {
        // Appends alone that fit one statement need no transaction around it: one statement is
        // atomic and, with `synchronous=FULL` (SQLite) or `synchronous_commit` (PostgreSQL),
        // durable when it returns. At light load that is every commit: one round trip, not three.
        if fence.is_none() && snapshots.is_empty() && updates.len() <= ROWS_PER_INSERT {
            if !updates.is_empty() {
                let updates: Vec<&AppendedUpdate> = updates.iter().collect();
                insert_updates(&mut **connection, &updates, now_ms).await?;
            }
            return Ok(BTreeSet::new());
        }
        let mut transaction = sqlx::Connection::begin(&mut **connection).await?;
        let mut fenced = BTreeSet::new();
        if let Some(node_id) = fence {
            let mut epochs: BTreeMap<&str, i64> = BTreeMap::new();
            for (file_id, epoch) in updates
                .iter()
                .map(|update| (update.file_id.as_str(), update.epoch))
                .chain(snapshots.iter().map(|snapshot| (snapshot.file_id.as_str(), snapshot.epoch)))
            {
                epochs.insert(file_id, epoch);
            }
            let files: Vec<&str> = epochs.keys().copied().collect();
            let mut owned: BTreeMap<String, i64> = BTreeMap::new();
            for chunk in files.chunks(ROWS_PER_INSERT) {
                let placeholders: Vec<String> = (0..chunk.len()).map(|index| format!("${}", index + 2)).collect();
                let sql = format!(
                    "SELECT file_id, epoch FROM document_owners WHERE node_id = $1 AND file_id IN ({}) FOR SHARE",
                    placeholders.join(", ")
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(node_id);
                for file_id in chunk {
                    query = query.bind(*file_id);
                }
                for row in query.fetch_all(&mut *transaction).await? {
                    owned.insert(row.try_get("file_id")?, row.try_get("epoch")?);
                }
            }
            for (file_id, epoch) in epochs {
                if owned.get(file_id) != Some(&epoch) {
                    fenced.insert(file_id.to_string());
                }
            }
        }
        let updates: Vec<&AppendedUpdate> = updates.iter().filter(|update| !fenced.contains(&update.file_id)).collect();
        let snapshots: Vec<&Snapshot> =
            snapshots.iter().filter(|snapshot| !fenced.contains(&snapshot.file_id)).collect();
        for chunk in updates.chunks(ROWS_PER_INSERT) {
            insert_updates(&mut *transaction, chunk, now_ms).await?;
        }
        for snapshot in snapshots {
            sqlx::query(
                "INSERT INTO document_snapshots (file_id, covers_seq, state_v1, updated_at_ms) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (file_id) DO UPDATE SET covers_seq = excluded.covers_seq, state_v1 = excluded.state_v1, \
                 updated_at_ms = excluded.updated_at_ms WHERE document_snapshots.covers_seq < excluded.covers_seq",
            )
            .bind(snapshot.file_id.as_str())
            .bind(snapshot.covers_seq)
            .bind(snapshot.state_v1.as_slice())
            .bind(now_ms)
            .execute(&mut *transaction)
            .await?;
            sqlx::query("DELETE FROM document_updates WHERE file_id = $1 AND seq <= $2")
                .bind(snapshot.file_id.as_str())
                .bind(snapshot.covers_seq)
                .execute(&mut *transaction)
                .await?;
        }
        transaction.commit().await?;
        Ok(fenced)
    }
}

/// One multi-row INSERT of appended updates.
async fn insert_updates<'e, E>(executor: E, updates: &[&AppendedUpdate], now_ms: i64) -> ServiceResult<()>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let mut sql = String::from("INSERT INTO document_updates (file_id, seq, update_v1, created_at_ms) VALUES ");
    for index in 0..updates.len() {
        let base = index * 4;
        if index > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("(${}, ${}, ${}, ${})", base + 1, base + 2, base + 3, base + 4));
    }
    // A retried batch may meet rows it already wrote; the same seq holds the same update.
    sql.push_str(" ON CONFLICT (file_id, seq) DO NOTHING");
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for update in updates {
        query = query.bind(update.file_id.as_str()).bind(update.seq).bind(update.update_v1.as_ref()).bind(now_ms);
    }
    query.execute(executor).await?;
    Ok(())
}
