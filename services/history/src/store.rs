//! The `file_versions` and `room_events` tables, in SQL that SQLite and PostgreSQL both accept.

use codesync_common::bus::Staged;
use codesync_common::db::{Database, DatabaseError, Migration, is_unique_violation};
use codesync_common::{ErrorCode, ServiceError, ServiceResult};
use codesync_proto::history::v1 as pb;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::delta;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "versions_and_room_events",
        sql: include_str!("../../../migrations/history/0001_versions_and_room_events.sql"),
    },
    Migration {
        version: 2,
        name: "pending_checkpoints",
        sql: include_str!("../../../migrations/history/0002_pending_checkpoints.sql"),
    },
];

/// Edits of a file not yet in a version, as stored (times in ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCheckpoint {
    pub file_id: String,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    /// In the order they were first seen editing.
    pub editors: Vec<String>,
    pub retry_at_ms: i64,
    revision: i64,
}

/// A listing answers at most this many items.
pub const MAX_LISTED: u32 = 200;
const DEFAULT_LISTED: u32 = 50;

fn listed(limit: u32) -> i64 {
    i64::from(if limit == 0 { DEFAULT_LISTED } else { limit.min(MAX_LISTED) })
}

fn editors_json<'a>(editors: impl Iterator<Item = &'a String>) -> String {
    serde_json::Value::Array(editors.map(|editor| serde_json::Value::String(editor.clone())).collect()).to_string()
}

fn pending_from_row(row: &AnyRow) -> ServiceResult<PendingCheckpoint> {
    let editors_json: String = row.try_get("editors_json")?;
    let editors = serde_json::from_str::<Vec<String>>(&editors_json).map_err(|error| {
        ServiceError::internal(format_args!("a pending checkpoint's editors are not JSON: {error}"))
    })?;
    Ok(PendingCheckpoint {
        file_id: row.try_get("file_id")?,
        first_seen_ms: row.try_get("first_seen_ms")?,
        last_seen_ms: row.try_get("last_seen_ms")?,
        editors,
        retry_at_ms: row.try_get("retry_at_ms")?,
        revision: row.try_get("revision")?,
    })
}

fn kind_from_name(name: &str) -> pb::VersionKind {
    match name {
        "checkpoint" => pb::VersionKind::Checkpoint,
        "restore" => pb::VersionKind::Restore,
        _ => pb::VersionKind::Save,
    }
}

/// A version to store: its record, and its content as stored.
pub struct NewVersion<'a> {
    pub version: &'a pb::Version,
    pub encoding: Encoding,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Full,
    Delta,
}

impl Encoding {
    fn name(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Delta => "delta",
        }
    }
}

/// A version's content as stored, with the line counts of its change.
pub struct Encoded {
    pub encoding: Encoding,
    pub body: Vec<u8>,
    pub lines_added: i64,
    pub lines_removed: i64,
}

/// How version `number`, holding `next`, is stored after a version holding `previous`: in full
/// every [`delta::FULL_EVERY`] versions (and when a delta would be no smaller), else as a delta.
pub fn encode(number: i64, previous: &str, next: &str) -> Encoded {
    let change = delta::change(previous, next);
    let (encoding, body) = if number % delta::FULL_EVERY == 1 || change.delta.len() >= next.len() {
        (Encoding::Full, next.as_bytes().to_vec())
    } else {
        (Encoding::Delta, change.delta)
    };
    Encoded { encoding, body, lines_added: change.lines_added, lines_removed: change.lines_removed }
}

/// Whether a version took its number, or another writer took the number first.
#[derive(Debug, PartialEq, Eq)]
pub enum Inserted {
    Done,
    NumberTaken,
}

/// How much space the versions of a file (or of all files) take.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StorageFigures {
    pub versions: i64,
    pub stored_bytes: i64,
    pub content_bytes: i64,
}

#[derive(Debug, Clone)]
pub struct HistoryStore {
    database: Database,
}

/// A query over `file_versions` with the columns of a version (its content aside).
macro_rules! version_query {
    ($rest:literal) => {
        concat!(
            "SELECT id, file_id, room_id, number, kind, authors_json, message, lines_added, lines_removed, size_bytes, \
             created_at_ms FROM file_versions ",
            $rest
        )
    };
}

impl HistoryStore {
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    /// Adds edits by `editors` at `seen_ms` to the file's pending checkpoint (made if there is
    /// none): the editors merge in order, the earliest first sighting and the latest last one win.
    pub async fn add_pending(
        &self,
        file_id: &str,
        first_seen_ms: i64,
        last_seen_ms: i64,
        editors: &[String],
        retry_at_ms: i64,
    ) -> ServiceResult<()> {
        // Optimistic: read, merge, write back only if nobody changed the row meanwhile.
        for _ in 0..20 {
            match self.pending(file_id).await? {
                None => {
                    let inserted = sqlx::query(
                        "INSERT INTO history_pending_checkpoints \
                         (file_id, first_seen_ms, last_seen_ms, editors_json, retry_at_ms, revision) \
                         VALUES ($1, $2, $3, $4, $5, 1) ON CONFLICT (file_id) DO NOTHING",
                    )
                    .bind(file_id)
                    .bind(first_seen_ms)
                    .bind(last_seen_ms)
                    .bind(editors_json(editors.iter()))
                    .bind(retry_at_ms)
                    .execute(self.database.pool())
                    .await?
                    .rows_affected();
                    if inserted == 1 {
                        return Ok(());
                    }
                }
                Some(current) => {
                    let mut merged = current.editors.clone();
                    for editor in editors {
                        if !merged.contains(editor) {
                            merged.push(editor.clone());
                        }
                    }
                    let updated = sqlx::query(
                        "UPDATE history_pending_checkpoints SET first_seen_ms = $1, last_seen_ms = $2, editors_json = $3, \
                         retry_at_ms = $4, revision = revision + 1 WHERE file_id = $5 AND revision = $6",
                    )
                    .bind(current.first_seen_ms.min(first_seen_ms))
                    .bind(current.last_seen_ms.max(last_seen_ms))
                    .bind(editors_json(merged.iter()))
                    .bind(current.retry_at_ms.max(retry_at_ms))
                    .bind(file_id)
                    .bind(current.revision)
                    .execute(self.database.pool())
                    .await?
                    .rows_affected();
                    if updated == 1 {
                        return Ok(());
                    }
                }
            }
        }
        Err(ServiceError::Unavailable { message: "a pending checkpoint is changing too often; try again".into() })
    }

    pub async fn pending(&self, file_id: &str) -> ServiceResult<Option<PendingCheckpoint>> {
        let row = sqlx::query(
            "SELECT file_id, first_seen_ms, last_seen_ms, editors_json, retry_at_ms, revision \
             FROM history_pending_checkpoints WHERE file_id = $1",
        )
        .bind(file_id)
        .fetch_optional(self.database.pool())
        .await?;
        row.as_ref().map(pending_from_row).transpose()
    }

    /// The pending checkpoints due at `now_ms`: editing paused for `idle_ms`, or went on for
    /// `interval_ms` since the first edit; not those waiting for a retry.
    pub async fn due_pending(
        &self,
        now_ms: i64,
        idle_ms: i64,
        interval_ms: i64,
    ) -> ServiceResult<Vec<PendingCheckpoint>> {
        let rows = sqlx::query(
            "SELECT file_id, first_seen_ms, last_seen_ms, editors_json, retry_at_ms, revision \
             FROM history_pending_checkpoints WHERE retry_at_ms <= $1 AND (last_seen_ms <= $2 OR first_seen_ms <= $3) \
             ORDER BY first_seen_ms LIMIT 100",
        )
        .bind(now_ms)
        .bind(now_ms - idle_ms)
        .bind(now_ms - interval_ms)
        .fetch_all(self.database.pool())
        .await?;
        rows.iter().map(pending_from_row).collect()
    }

    /// Takes the pending checkpoint as it was read (false if it changed or another replica took
    /// it meanwhile): whoever takes it makes the version, or puts it back.
    pub async fn take_pending(&self, pending: &PendingCheckpoint) -> ServiceResult<bool> {
        let deleted = sqlx::query("DELETE FROM history_pending_checkpoints WHERE file_id = $1 AND revision = $2")
            .bind(&pending.file_id)
            .bind(pending.revision)
            .execute(self.database.pool())
            .await?
            .rows_affected();
        Ok(deleted == 1)
    }

    pub async fn migrate(&self) -> Result<(), DatabaseError> {
        self.database.migrate("history", MIGRATIONS).await
    }

    /// The newest version of a file, without content.
    pub async fn head(&self, file_id: &str) -> ServiceResult<Option<pb::Version>> {
        let row = sqlx::query(version_query!("WHERE file_id = $1 ORDER BY number DESC LIMIT 1"))
            .bind(file_id)
            .fetch_optional(self.database.pool())
            .await?;
        row.as_ref().map(version_from_row).transpose().map_err(Into::into)
    }

    pub async fn find(&self, version_id: &str) -> ServiceResult<Option<pb::Version>> {
        let row =
            sqlx::query(version_query!("WHERE id = $1")).bind(version_id).fetch_optional(self.database.pool()).await?;
        row.as_ref().map(version_from_row).transpose().map_err(Into::into)
    }

    /// A file's versions numbered below `before_number` (all when 0), newest first.
    pub async fn list(&self, file_id: &str, before_number: i64, limit: u32) -> ServiceResult<Vec<pb::Version>> {
        let before_number = if before_number <= 0 { i64::MAX } else { before_number };
        let rows = sqlx::query(version_query!("WHERE file_id = $1 AND number < $2 ORDER BY number DESC LIMIT $3"))
            .bind(file_id)
            .bind(before_number)
            .bind(listed(limit))
            .fetch_all(self.database.pool())
            .await?;
        rows.iter().map(version_from_row).collect::<Result<_, _>>().map_err(Into::into)
    }

    /// Stores a version under its number, unless that number is taken, with the events it
    /// announces (see `Staged`).
    pub async fn insert(&self, new: NewVersion<'_>, staged: &mut Staged<'_>) -> ServiceResult<Inserted> {
        let mut transaction = self.database.pool().begin().await?;
        let version = new.version;
        let authors: Vec<serde_json::Value> = version
            .authors
            .iter()
            .map(|author| serde_json::json!({"id": author.id, "username": author.username}))
            .collect();
        let kind = pb::VersionKind::try_from(version.kind).unwrap_or(pb::VersionKind::Save);
        let result = sqlx::query(
            "INSERT INTO file_versions (id, file_id, room_id, number, kind, authors_json, message, lines_added, \
             lines_removed, size_bytes, encoding, body, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&version.id)
        .bind(&version.file_id)
        .bind(&version.room_id)
        .bind(version.number)
        .bind(kind.name())
        .bind(serde_json::Value::Array(authors).to_string())
        .bind(&version.message)
        .bind(version.lines_added)
        .bind(version.lines_removed)
        .bind(version.size_bytes)
        .bind(new.encoding.name())
        .bind(new.body)
        .bind(version.created_at_ms)
        .execute(&mut *transaction)
        .await;
        match result {
            Ok(_) => {
                staged.store_in(&mut transaction).await?;
                transaction.commit().await?;
                Ok(Inserted::Done)
            }
            Err(error) if is_unique_violation(&error) => Ok(Inserted::NumberTaken),
            Err(error) => Err(error.into()),
        }
    }

    /// The content of version `number` of a file: its nearest full copy at or below it, with
    /// the deltas after that applied in order.
    pub async fn content(&self, file_id: &str, number: i64) -> ServiceResult<String> {
        let rows = sqlx::query(
            "SELECT number, encoding, body FROM file_versions WHERE file_id = $1 AND number <= $2 AND number >= \
             (SELECT MAX(number) FROM file_versions WHERE file_id = $1 AND number <= $2 AND encoding = 'full') \
             ORDER BY number",
        )
        .bind(file_id)
        .bind(number)
        .fetch_all(self.database.pool())
        .await?;
        let mut content: Option<String> = None;
        let mut expected_number = None;
        for row in rows {
            let row_number: i64 = row.try_get("number")?;
            if expected_number.is_some_and(|expected| expected != row_number) {
                return Err(ServiceError::internal(format_args!(
                    "version {row_number} of {file_id} has a gap before it"
                )));
            }
            expected_number = Some(row_number + 1);
            let encoding: String = row.try_get("encoding")?;
            let body: Vec<u8> = row.try_get("body")?;
            content = Some(match (encoding.as_str(), content) {
                ("full", _) => String::from_utf8(body).map_err(|_| {
                    ServiceError::internal(format_args!("version {row_number} of {file_id} is not UTF-8"))
                })?,
                ("delta", Some(previous)) => delta::apply(&previous, &body).map_err(ServiceError::internal)?,
                _ => return Err(ServiceError::internal(format_args!("version {row_number} of {file_id} has no base"))),
            });
        }
        match (content, expected_number) {
            (Some(content), Some(next)) if next == number + 1 => Ok(content),
            _ => Err(ServiceError::not_found(ErrorCode::VersionNotFound, "no such version")),
        }
    }

    /// Space taken by the versions of `file_id`, or of every file when it is empty.
    pub async fn storage(&self, file_id: &str) -> ServiceResult<StorageFigures> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS versions, CAST(COALESCE(SUM(LENGTH(body)), 0) AS BIGINT) AS stored, \
             CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT) AS content FROM file_versions WHERE $1 = '' OR file_id = $1",
        )
        .bind(file_id)
        .fetch_one(self.database.pool())
        .await?;
        Ok(StorageFigures {
            versions: row.try_get("versions")?,
            stored_bytes: row.try_get("stored")?,
            content_bytes: row.try_get("content")?,
        })
    }

    /// Stores one entry of a room's event log; an entry seen before (the same event delivered
    /// again) is ignored.
    pub async fn insert_room_event(&self, event: &pb::RoomEvent) -> ServiceResult<()> {
        sqlx::query(
            "INSERT INTO room_events (id, room_id, event_type, user_id, metadata_json, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&event.id)
        .bind(&event.room_id)
        .bind(&event.event_type)
        .bind(&event.user_id)
        .bind(&event.metadata_json)
        .bind(event.created_at_ms)
        .execute(self.database.pool())
        .await?;
        Ok(())
    }

    /// A room's events before the event (`before_ms`, `before_id`) in the listing's order (the
    /// newest when `before_ms` is 0; all of that millisecond when `before_id` is empty), newest
    /// first: events sharing a millisecond are never skipped between pages.
    pub async fn list_room_events(
        &self,
        room_id: &str,
        before_ms: i64,
        before_id: &str,
        limit: u32,
    ) -> ServiceResult<Vec<pb::RoomEvent>> {
        let before_ms = if before_ms <= 0 { i64::MAX } else { before_ms };
        let rows = sqlx::query(
            "SELECT id, room_id, event_type, user_id, metadata_json, created_at_ms FROM room_events \
             WHERE room_id = $1 AND (created_at_ms < $2 OR (created_at_ms = $2 AND $3 <> '' AND id < $3)) \
             ORDER BY created_at_ms DESC, id DESC LIMIT $4",
        )
        .bind(room_id)
        .bind(before_ms)
        .bind(before_id)
        .bind(listed(limit))
        .fetch_all(self.database.pool())
        .await?;
        let events = rows
            .into_iter()
            .map(|row| -> Result<pb::RoomEvent, sqlx::Error> {
                Ok(pb::RoomEvent {
                    id: row.try_get("id")?,
                    room_id: row.try_get("room_id")?,
                    event_type: row.try_get("event_type")?,
                    user_id: row.try_get("user_id")?,
                    metadata_json: row.try_get("metadata_json")?,
                    created_at_ms: row.try_get("created_at_ms")?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(events)
    }
}

fn version_from_row(row: &AnyRow) -> Result<pb::Version, sqlx::Error> {
    let authors_json: String = row.try_get("authors_json")?;
    let authors: Vec<pb::Author> = serde_json::from_str::<Vec<serde_json::Value>>(&authors_json)
        .unwrap_or_default()
        .into_iter()
        .map(|author| pb::Author {
            id: author["id"].as_str().unwrap_or_default().to_string(),
            username: author["username"].as_str().unwrap_or_default().to_string(),
        })
        .collect();
    let kind: String = row.try_get("kind")?;
    let first = authors.first().cloned().unwrap_or_default();
    Ok(pb::Version {
        id: row.try_get("id")?,
        file_id: row.try_get("file_id")?,
        room_id: row.try_get("room_id")?,
        number: row.try_get("number")?,
        author_id: first.id,
        author_username: first.username,
        kind: kind_from_name(&kind).into(),
        message: row.try_get("message")?,
        lines_added: row.try_get("lines_added")?,
        lines_removed: row.try_get("lines_removed")?,
        content: None,
        created_at_ms: row.try_get("created_at_ms")?,
        authors,
        size_bytes: row.try_get("size_bytes")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    static BUS: std::sync::LazyLock<codesync_common::bus::InProcessBus> = std::sync::LazyLock::new(Default::default);

    /// A write that announces nothing.
    fn nothing() -> Staged<'static> {
        Staged::new(&*BUS, Vec::new())
    }

    async fn store() -> (tempfile::TempDir, HistoryStore) {
        let directory = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", directory.path().join("history.db").display());
        let store = HistoryStore::new(Database::connect(&url).await.unwrap());
        store.migrate().await.unwrap();
        (directory, store)
    }

    #[tokio::test]
    async fn versions_come_back_through_full_copies_and_deltas_and_numbers_are_taken_once() {
        let (_directory, store) = store().await;
        let mut previous = String::new();
        let mut contents = Vec::new();
        for number in 1..=70_i64 {
            let content: String = (0..number).map(|line| format!("line {line}\n")).collect();
            let encoded = encode(number, &previous, &content);
            assert_eq!(encoded.encoding == Encoding::Full, number % delta::FULL_EVERY == 1, "version {number}");
            let version =
                pb::Version { id: codesync_common::new_id(), file_id: "f".into(), number, ..pb::Version::default() };
            let new = NewVersion { version: &version, encoding: encoded.encoding, body: encoded.body };
            assert_eq!(store.insert(new, &mut nothing()).await.unwrap(), Inserted::Done);
            previous = content.clone();
            contents.push(content);
        }
        for number in [1_i64, 2, 32, 33, 34, 64, 65, 70] {
            assert_eq!(store.content("f", number).await.unwrap(), contents[number as usize - 1], "version {number}");
        }
        assert!(store.content("f", 71).await.is_err(), "no such version");
        let taken =
            pb::Version { id: codesync_common::new_id(), file_id: "f".into(), number: 70, ..pb::Version::default() };
        let again = NewVersion { version: &taken, encoding: Encoding::Full, body: b"x".to_vec() };
        assert_eq!(store.insert(again, &mut nothing()).await.unwrap(), Inserted::NumberTaken);
        assert_eq!(store.head("f").await.unwrap().unwrap().number, 70);
    }

    #[tokio::test]
    async fn pages_of_a_room_log_skip_nothing_within_one_millisecond() {
        let (_directory, store) = store().await;
        for id in ["a", "b", "c", "d"] {
            let at = if id == "d" { 900 } else { 1_000 };
            let event = pb::RoomEvent {
                id: id.into(),
                room_id: "r".into(),
                event_type: "file_created".into(),
                user_id: "u".into(),
                metadata_json: "{}".into(),
                created_at_ms: at,
            };
            store.insert_room_event(&event).await.unwrap();
            store.insert_room_event(&event).await.unwrap();
        }
        let ids = |events: Vec<pb::RoomEvent>| events.into_iter().map(|event| event.id).collect::<Vec<_>>();
        let first = store.list_room_events("r", 0, "", 2).await.unwrap();
        assert_eq!(ids(first.clone()), ["c", "b"]);
        let last = first.last().unwrap();
        let second = store.list_room_events("r", last.created_at_ms, &last.id, 2).await.unwrap();
        assert_eq!(ids(second), ["a", "d"]);
    }
}
