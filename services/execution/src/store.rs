//! The `executions` table: every run's result, in SQL that SQLite and PostgreSQL both accept.

use codesync_common::ServiceResult;
use codesync_common::bus::Staged;
use codesync_common::db::{Database, DatabaseError, Migration};
use codesync_proto::execution::v1 as pb;
use sqlx::Row;

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "executions",
    sql: include_str!("../../../migrations/execution/0001_executions.sql"),
}];

/// A listing carries the start of each run's output, so that 100 runs that each printed their
/// full 1 MiB stay a small answer; the truncation flags say so.
const LISTED_OUTPUT_CHARS: i64 = 16 * 1024;

/// `ListExecutions` answers at most this many runs.
pub const MAX_LISTED: u32 = 100;
const DEFAULT_LISTED: u32 = 20;

#[derive(Debug, Clone)]
pub struct ExecutionStore {
    database: Database,
}

impl ExecutionStore {
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    pub async fn migrate(&self) -> Result<(), DatabaseError> {
        self.database.migrate("execution", MIGRATIONS).await
    }

    /// Stores a run's result with the events it announces (see `Staged`).
    pub async fn insert(&self, result: &pb::ExecutionResult, staged: &mut Staged<'_>) -> ServiceResult<()> {
        let mut transaction = self.database.pool().begin().await?;
        sqlx::query(
            "INSERT INTO executions (id, user_id, room_id, file_id, language, status, exit_code, signal, \
             wall_time_ms, peak_memory_bytes, stdout, stderr, stdout_truncated, stderr_truncated, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(&result.id)
        .bind(&result.user_id)
        .bind(&result.room_id)
        .bind(&result.file_id)
        .bind(&result.language)
        .bind(pb::ExecutionStatus::api_name_of(result.status))
        .bind(i64::from(result.exit_code))
        .bind(i64::from(result.signal))
        .bind(result.wall_time_ms)
        .bind(result.peak_memory_bytes)
        .bind(storable(&result.stdout))
        .bind(storable(&result.stderr))
        .bind(i64::from(result.stdout_truncated))
        .bind(i64::from(result.stderr_truncated))
        .bind(result.created_at_ms)
        .execute(&mut *transaction)
        .await?;
        staged.store_in(&mut transaction).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// The user's latest runs, newest first; only those of `room_id` unless it is empty.
    pub async fn latest(&self, user_id: &str, room_id: &str, limit: u32) -> ServiceResult<Vec<pb::ExecutionResult>> {
        let limit = if limit == 0 { DEFAULT_LISTED } else { limit.min(MAX_LISTED) };
        let rows = sqlx::query(
            "SELECT id, user_id, room_id, file_id, language, status, exit_code, signal, wall_time_ms, \
             peak_memory_bytes, SUBSTR(stdout, 1, CAST($4 AS INTEGER)) AS stdout, \
             SUBSTR(stderr, 1, CAST($4 AS INTEGER)) AS stderr, CAST(LENGTH(stdout) AS BIGINT) AS stdout_length, \
             CAST(LENGTH(stderr) AS BIGINT) AS stderr_length, \
             stdout_truncated, stderr_truncated, created_at_ms FROM executions \
             WHERE user_id = $1 AND ($2 = '' OR room_id = $2) ORDER BY created_at_ms DESC, id DESC LIMIT $3",
        )
        .bind(user_id)
        .bind(room_id)
        .bind(i64::from(limit))
        .bind(LISTED_OUTPUT_CHARS)
        .fetch_all(self.database.pool())
        .await?;
        let results = rows
            .into_iter()
            .map(|row| -> Result<pb::ExecutionResult, sqlx::Error> {
                let status: String = row.try_get("status")?;
                let small = |column: &str| -> Result<i32, sqlx::Error> {
                    let value: i64 = row.try_get(column)?;
                    Ok(i32::try_from(value).unwrap_or(-1))
                };
                Ok(pb::ExecutionResult {
                    id: row.try_get("id")?,
                    user_id: row.try_get("user_id")?,
                    room_id: row.try_get("room_id")?,
                    file_id: row.try_get("file_id")?,
                    language: row.try_get("language")?,
                    status: pb::ExecutionStatus::from_api_name(&status).into(),
                    exit_code: small("exit_code")?,
                    signal: small("signal")?,
                    wall_time_ms: row.try_get("wall_time_ms")?,
                    peak_memory_bytes: row.try_get("peak_memory_bytes")?,
                    stdout: row.try_get("stdout")?,
                    stderr: row.try_get("stderr")?,
                    stdout_truncated: row.try_get::<i64, _>("stdout_truncated")? != 0
                        || row.try_get::<i64, _>("stdout_length")? > LISTED_OUTPUT_CHARS,
                    stderr_truncated: row.try_get::<i64, _>("stderr_truncated")? != 0
                        || row.try_get::<i64, _>("stderr_length")? > LISTED_OUTPUT_CHARS,
                    created_at_ms: row.try_get("created_at_ms")?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(results)
    }
}

/// PostgreSQL's TEXT holds no NUL character, and a program may well print one: it is kept as
/// U+FFFD, as invalid UTF-8 already is.
fn storable(output: &str) -> String {
    output.replace('\0', "\u{FFFD}")
}

#[cfg(test)]
mod tests {
    use super::*;

    static BUS: std::sync::LazyLock<codesync_common::bus::InProcessBus> = std::sync::LazyLock::new(Default::default);

    /// A write that announces nothing.
    fn nothing() -> Staged<'static> {
        Staged::new(&*BUS, Vec::new())
    }

    fn result(id: &str, user_id: &str, room_id: &str, created_at_ms: i64) -> pb::ExecutionResult {
        pb::ExecutionResult {
            id: id.into(),
            user_id: user_id.into(),
            room_id: room_id.into(),
            file_id: if room_id.is_empty() { String::new() } else { format!("{room_id}-file") },
            language: "python".into(),
            status: pb::ExecutionStatus::RuntimeError.into(),
            stdout: "out ✓".into(),
            stderr: "Traceback".into(),
            exit_code: 1,
            signal: 0,
            wall_time_ms: 42,
            peak_memory_bytes: 9 << 20,
            stdout_truncated: true,
            stderr_truncated: false,
            created_at_ms,
        }
    }

    #[tokio::test]
    async fn runs_are_stored_and_listed_newest_first_per_user_and_room() {
        let directory = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", directory.path().join("execution.db").display());
        let store = ExecutionStore::new(Database::connect(&url).await.unwrap());
        store.migrate().await.unwrap();
        store.insert(&result("a", "ada", "", 1_000), &mut nothing()).await.unwrap();
        store.insert(&result("b", "ada", "room-1", 2_000), &mut nothing()).await.unwrap();
        store.insert(&result("c", "ada", "room-2", 3_000), &mut nothing()).await.unwrap();
        store.insert(&result("d", "bob", "room-1", 4_000), &mut nothing()).await.unwrap();

        let all = store.latest("ada", "", 0).await.unwrap();
        let ids: Vec<&str> = all.iter().map(|run| run.id.as_str()).collect();
        assert_eq!(ids, ["c", "b", "a"]);
        assert_eq!(all[2], result("a", "ada", "", 1_000), "every field comes back as stored");

        let mut noisy = result("e", "cy", "", 5_000);
        noisy.stdout = format!("nul\0{}", "x".repeat(40_000));
        noisy.stdout_truncated = false;
        store.insert(&noisy, &mut nothing()).await.unwrap();
        let listed = &store.latest("cy", "", 0).await.unwrap()[0];
        assert!(listed.stdout.starts_with("nul\u{FFFD}x") && listed.stdout.chars().count() == 16 * 1024);
        assert!(listed.stdout_truncated, "a listing says its output is cut");

        let in_room = store.latest("ada", "room-1", 10).await.unwrap();
        assert_eq!(in_room.iter().map(|run| run.id.as_str()).collect::<Vec<_>>(), ["b"]);
        assert_eq!(store.latest("ada", "", 1).await.unwrap().len(), 1);
    }
}
