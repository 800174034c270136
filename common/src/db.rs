//! The database: one connection pool over SQLite (the embedded default, in WAL
//! mode) or PostgreSQL, chosen by URL, and a small migrator that applies each
//! service's own migrations under a lock.
//!
//! Services write SQL that both engines accept (`$1` placeholders, TEXT ids,
//! BIGINT millisecond timestamps, BIGINT 0/1 flags), so the backend is a matter of
//! configuration, not of service code.

use std::str::FromStr;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor, Row};

#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("unsupported database url '{url}': expected sqlite://... or postgres://...")]
    UnsupportedUrl { url: String },
    #[error("cannot open the database at '{url}': {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("cannot create the directory of the database file {path}: {source}")]
    CreateDirectory { path: String, source: std::io::Error },
    #[error("cannot create the database file {path}: {source}")]
    CreateFile { path: String, source: std::io::Error },
    #[error("migration {version} ({name}) of the {service} service failed: {source}")]
    Migration { service: String, version: i64, name: String, source: sqlx::Error },
    #[error(
        "migration {version} ({name}) of the {service} service was changed after it was applied; \
         restore the original file or add a new migration instead"
    )]
    MigrationChanged { service: String, version: i64, name: String },
    #[error("the migration history of the database could not be read: {0}")]
    MigrationHistory(sqlx::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One migration of one service, embedded in the binary.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// A pool of connections to the configured database.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
    /// The database file, for SQLite on disk.
    sqlite_file: Option<std::path::PathBuf>,
}

/// How often the write-ahead log is copied into the database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// Copies the SQLite write-ahead log into the database file every
/// [`CHECKPOINT_INTERVAL`] on a connection of its own. PASSIVE checkpoints never
/// block writers; a checkpoint that another process holds is simply skipped.
fn checkpoint_in_background(pool: AnyPool) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(CHECKPOINT_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if pool.is_closed() {
                return;
            }
            if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").fetch_optional(&pool).await {
                tracing::debug!(%error, "a write-ahead log checkpoint did not run");
            }
        }
    });
}

impl Database {
    /// Opens the database at `url`, creating an SQLite file (and its directory) if needed.
    pub async fn connect(url: &str) -> Result<Self, DatabaseError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(DatabaseError::UnsupportedUrl { url: url.to_string() });
        };
        let connect_error = |source| DatabaseError::Connect { url: crate::redact_url_credentials(url), source };
        let url_with_options = match backend {
            Backend::Sqlite => sqlite_url_with_create_mode(url)?,
            Backend::Postgres => url.to_string(),
        };
        let options = AnyConnectOptions::from_str(&url_with_options).map_err(connect_error)?;
        let pool_options = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 8,
                Backend::Postgres => 16,
            })
            .acquire_timeout(Duration::from_secs(10))
            // A SQLite connection is a file this process holds open, with nothing between to fail;
            // checking it before each use is a round trip to its thread for nothing.
            .test_before_acquire(backend == Backend::Postgres);
        let pool_options = match backend {
            Backend::Sqlite => pool_options.after_connect(|connection, _metadata| {
                Box::pin(async move {
                    // WAL lets readers run beside the one writer; busy_timeout makes
                    // writers of several processes (one per service) wait their turn.
                    // Checkpoints run in the background (`checkpoint_in_background`), not in
                    // whichever commit crosses the threshold: that commit would otherwise
                    // wait for the database file's pages and sync, and so would every edit
                    // waiting to be relayed behind it.
                    connection
                        .execute(
                            "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 15000; \
                             PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 0;",
                        )
                        .await?;
                    Ok(())
                })
            }),
            Backend::Postgres => pool_options,
        };
        let pool = pool_options.connect_with(options).await.map_err(connect_error)?;
        if backend == Backend::Sqlite {
            checkpoint_in_background(pool.clone());
        }
        let sqlite_file = match backend {
            Backend::Sqlite => {
                let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
                let path = path.split('?').next().unwrap_or_default();
                (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
            }
            Backend::Postgres => None,
        };
        Ok(Self { pool, backend, sqlite_file })
    }

    /// The database file, when the database is SQLite on disk.
    pub fn sqlite_file(&self) -> Option<&std::path::Path> {
        self.sqlite_file.as_deref()
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies the migrations of `service` that this database has not seen,
    /// each in its own transaction, holding a lock that other processes
    /// migrating the same database wait for.
    pub async fn migrate(&self, service: &str, migrations: &[Migration]) -> Result<(), DatabaseError> {
        let mut connection = self.pool.acquire().await.map_err(DatabaseError::MigrationHistory)?;
        for migration in migrations {
            let result = self.apply_one(&mut connection, service, migration).await;
            if result.is_err() {
                let _ = connection.execute("ROLLBACK").await;
            }
            result?;
        }
        Ok(())
    }

    async fn apply_one(
        &self,
        connection: &mut sqlx::pool::PoolConnection<sqlx::Any>,
        service: &str,
        migration: &Migration,
    ) -> Result<(), DatabaseError> {
        let migration_error = |source| DatabaseError::Migration {
            service: service.to_string(),
            version: migration.version,
            name: migration.name.to_string(),
            source,
        };
        match self.backend {
            Backend::Sqlite => connection.execute("BEGIN IMMEDIATE").await.map_err(migration_error)?,
            Backend::Postgres => {
                connection.execute("BEGIN").await.map_err(migration_error)?;
                connection.execute("SELECT pg_advisory_xact_lock(7264913325)").await.map_err(migration_error)?
            }
        };
        connection
            .execute(
                "CREATE TABLE IF NOT EXISTS codesync_migrations (\
                   service TEXT NOT NULL, version BIGINT NOT NULL, name TEXT NOT NULL, \
                   checksum TEXT NOT NULL, applied_at_ms BIGINT NOT NULL, \
                   PRIMARY KEY (service, version))",
            )
            .await
            .map_err(migration_error)?;
        let checksum = hex_sha256(migration.sql.as_bytes());
        let applied = sqlx::query("SELECT checksum FROM codesync_migrations WHERE service = $1 AND version = $2")
            .bind(service)
            .bind(migration.version)
            .fetch_optional(&mut **connection)
            .await
            .map_err(migration_error)?;
        if let Some(row) = applied {
            let applied_checksum: String = row.try_get("checksum").map_err(migration_error)?;
            connection.execute("COMMIT").await.map_err(migration_error)?;
            if applied_checksum != checksum {
                return Err(DatabaseError::MigrationChanged {
                    service: service.to_string(),
                    version: migration.version,
                    name: migration.name.to_string(),
                });
            }
            return Ok(());
        }
        connection.execute(sqlx::raw_sql(migration.sql)).await.map_err(migration_error)?;
        sqlx::query(
            "INSERT INTO codesync_migrations (service, version, name, checksum, applied_at_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(service)
        .bind(migration.version)
        .bind(migration.name)
        .bind(checksum)
        .bind(crate::now_ms())
        .execute(&mut **connection)
        .await
        .map_err(migration_error)?;
        connection.execute("COMMIT").await.map_err(migration_error)?;
        tracing::info!(service, version = migration.version, name = migration.name, "applied migration");
        Ok(())
    }
}

/// True when the error is a unique-constraint violation (a duplicate).
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(database_error) => database_error.is_unique_violation(),
        _ => false,
    }
}

fn sqlite_url_with_create_mode(url: &str) -> Result<String, DatabaseError> {
    let path_part = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let path = path_part.split('?').next().unwrap_or_default();
    let directory = std::path::Path::new(path).parent().filter(|parent| !parent.as_os_str().is_empty());
    if let Some(directory) = directory.filter(|_| path != ":memory:") {
        std::fs::create_dir_all(directory)
            .map_err(|source| DatabaseError::CreateDirectory { path: directory.display().to_string(), source })?;
    }
    // A new database file is the owner's alone (it holds password hashes and every file).
    if path != ":memory:" && !path.is_empty() && !std::path::Path::new(path).exists() {
        use std::os::unix::fs::OpenOptionsExt;
        let created = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path);
        if let Err(error) = created
            && error.kind() != std::io::ErrorKind::AlreadyExists
        {
            return Err(DatabaseError::CreateFile { path: path.to_string(), source: error });
        }
    }
    if url.contains("mode=") {
        return Ok(url.to_string());
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    Ok(format!("{url}{separator}mode=rwc"))
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIGRATIONS: [Migration; 2] = [
        Migration { version: 1, name: "things", sql: "CREATE TABLE things (id TEXT PRIMARY KEY, n BIGINT NOT NULL);" },
        Migration { version: 2, name: "flag", sql: "ALTER TABLE things ADD COLUMN flag BIGINT NOT NULL DEFAULT 0;" },
    ];

    #[tokio::test]
    async fn migrations_apply_once_and_detect_edits() {
        let directory = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/nested/test.db", directory.path().display());
        let database = Database::connect(&url).await.unwrap();
        database.migrate("test", &MIGRATIONS).await.unwrap();
        database.migrate("test", &MIGRATIONS).await.unwrap();
        sqlx::query("INSERT INTO things (id, n, flag) VALUES ($1, $2, $3)")
            .bind("a")
            .bind(5_i64)
            .bind(1_i64)
            .execute(database.pool())
            .await
            .unwrap();
        let row =
            sqlx::query("SELECT n, flag FROM things WHERE id = $1").bind("a").fetch_one(database.pool()).await.unwrap();
        assert_eq!(row.get::<i64, _>("n"), 5);
        assert_eq!(row.get::<i64, _>("flag"), 1);

        let mut edited = MIGRATIONS;
        edited[1].sql = "ALTER TABLE things ADD COLUMN other BIGINT;";
        let error = database.migrate("test", &edited).await.unwrap_err();
        assert!(matches!(error, DatabaseError::MigrationChanged { version: 2, .. }), "{error}");
    }

    #[tokio::test]
    async fn the_write_ahead_log_is_checkpointed_in_the_background() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("test.db");
        let database = Database::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        database.migrate("test", &MIGRATIONS).await.unwrap();
        let size_before = std::fs::metadata(&path).unwrap().len();
        for index in 0..2000_i64 {
            sqlx::query("INSERT INTO things (id, n) VALUES ($1, $2)")
                .bind(format!("{index:0>200}"))
                .bind(index)
                .execute(database.pool())
                .await
                .unwrap();
        }
        // Commits do not checkpoint (autocheckpoint is off); the background task does.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&path).unwrap().len() < size_before + 400_000 {
            assert!(std::time::Instant::now() < deadline, "the rows never reached the database file");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    #[tokio::test]
    async fn concurrent_migrations_of_one_file_do_not_race() {
        let directory = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/test.db", directory.path().display());
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                let database = Database::connect(&url).await.unwrap();
                database.migrate("test", &MIGRATIONS).await
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
    }

    #[test]
    fn sqlite_urls_get_the_create_mode() {
        assert_eq!(sqlite_url_with_create_mode("sqlite::memory:").unwrap(), "sqlite::memory:?mode=rwc");
    }
}
