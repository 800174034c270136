//! The `notifications` table, in SQL that SQLite and PostgreSQL both accept.

use codesync_common::ServiceResult;
use codesync_common::db::{Database, DatabaseError, Migration};
use codesync_proto::notifications::v1 as pb;
use sqlx::Row;

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "notifications",
    sql: include_str!("../../../migrations/notifications/0001_notifications.sql"),
}];

/// A listing answers at most this many notifications.
pub const MAX_LISTED: u32 = 200;
const DEFAULT_LISTED: u32 = 50;

/// How the table and the REST API spell a type.
pub fn type_name(kind: pb::NotificationType) -> &'static str {
    match kind {
        pb::NotificationType::Execution => "execution",
        pb::NotificationType::Invite => "invite",
        pb::NotificationType::Room => "room",
        pb::NotificationType::System | pb::NotificationType::Unspecified => "system",
    }
}

pub fn type_from_name(name: &str) -> Option<pb::NotificationType> {
    [
        pb::NotificationType::Execution,
        pb::NotificationType::Invite,
        pb::NotificationType::Room,
        pb::NotificationType::System,
    ]
    .into_iter()
    .find(|kind| type_name(*kind) == name)
}

/// What a listing keeps of the notifications.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub kind: Option<pb::NotificationType>,
    pub since_ms: i64,
    pub until_ms: i64,
    pub unread_only: bool,
    pub limit: u32,
}

#[derive(Debug, Clone)]
pub struct NotificationsStore {
    database: Database,
}

impl NotificationsStore {
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    pub async fn migrate(&self) -> Result<(), DatabaseError> {
        self.database.migrate("notifications", MIGRATIONS).await
    }

    /// Stores a notification unless one with its id exists: false for a repeat.
    pub async fn insert(&self, notification: &pb::Notification) -> ServiceResult<bool> {
        let kind = pb::NotificationType::try_from(notification.r#type).unwrap_or(pb::NotificationType::System);
        let result = sqlx::query(
            "INSERT INTO notifications (id, user_id, type, title, message, metadata_json, is_read, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&notification.id)
        .bind(&notification.user_id)
        .bind(type_name(kind))
        .bind(&notification.title)
        .bind(&notification.message)
        .bind(&notification.metadata_json)
        .bind(i64::from(notification.read))
        .bind(notification.created_at_ms)
        .execute(self.database.pool())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// The user's notifications that pass `filter`, newest first.
    pub async fn list(&self, user_id: &str, filter: &Filter) -> ServiceResult<Vec<pb::Notification>> {
        let limit = if filter.limit == 0 { DEFAULT_LISTED } else { filter.limit.min(MAX_LISTED) };
        let kind = filter.kind.map(type_name).unwrap_or_default();
        let until_ms = if filter.until_ms <= 0 { i64::MAX } else { filter.until_ms };
        let rows = sqlx::query(
            "SELECT id, user_id, type, title, message, metadata_json, is_read, created_at_ms FROM notifications \
             WHERE user_id = $1 AND ($2 = '' OR type = $2) AND created_at_ms >= $3 AND created_at_ms < $4 \
             AND ($5 = 0 OR is_read = 0) ORDER BY created_at_ms DESC, id DESC LIMIT $6",
        )
        .bind(user_id)
        .bind(kind)
        .bind(filter.since_ms)
        .bind(until_ms)
        .bind(i64::from(filter.unread_only))
        .bind(i64::from(limit))
        .fetch_all(self.database.pool())
        .await?;
        let notifications = rows
            .into_iter()
            .map(|row| -> Result<pb::Notification, sqlx::Error> {
                let kind: String = row.try_get("type")?;
                Ok(pb::Notification {
                    id: row.try_get("id")?,
                    user_id: row.try_get("user_id")?,
                    r#type: type_from_name(&kind).unwrap_or(pb::NotificationType::System).into(),
                    title: row.try_get("title")?,
                    message: row.try_get("message")?,
                    metadata_json: row.try_get("metadata_json")?,
                    read: row.try_get::<i64, _>("is_read")? != 0,
                    created_at_ms: row.try_get("created_at_ms")?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(notifications)
    }

    pub async fn unread_count(&self, user_id: &str) -> ServiceResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS unread FROM notifications WHERE user_id = $1 AND is_read = 0")
            .bind(user_id)
            .fetch_one(self.database.pool())
            .await?;
        Ok(row.try_get::<i64, _>("unread")?)
    }

    /// Marks the user's notifications among `ids` read; others' ids are ignored. How many changed.
    pub async fn mark_read(&self, user_id: &str, ids: &[String]) -> ServiceResult<i64> {
        let mut marked = 0;
        // One statement per id keeps the SQL portable; a request names at most a few hundred.
        for id in ids {
            let result =
                sqlx::query("UPDATE notifications SET is_read = 1 WHERE user_id = $1 AND id = $2 AND is_read = 0")
                    .bind(user_id)
                    .bind(id)
                    .execute(self.database.pool())
                    .await?;
            marked += i64::try_from(result.rows_affected()).unwrap_or(0);
        }
        Ok(marked)
    }

    pub async fn mark_all_read(&self, user_id: &str) -> ServiceResult<i64> {
        let result = sqlx::query("UPDATE notifications SET is_read = 1 WHERE user_id = $1 AND is_read = 0")
            .bind(user_id)
            .execute(self.database.pool())
            .await?;
        Ok(i64::try_from(result.rows_affected()).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification(id: &str, user_id: &str, kind: pb::NotificationType, created_at_ms: i64) -> pb::Notification {
        pb::Notification {
            id: id.into(),
            user_id: user_id.into(),
            r#type: kind.into(),
            title: format!("title {id}"),
            message: "message".into(),
            metadata_json: "{}".into(),
            read: false,
            created_at_ms,
        }
    }

    #[tokio::test]
    async fn notifications_are_stored_once_filtered_counted_and_marked_read() {
        let directory = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", directory.path().join("notifications.db").display());
        let store = NotificationsStore::new(Database::connect(&url).await.unwrap());
        store.migrate().await.unwrap();
        let execution = pb::NotificationType::Execution;
        assert!(store.insert(&notification("a", "ada", execution, 1_000)).await.unwrap());
        assert!(!store.insert(&notification("a", "ada", execution, 1_000)).await.unwrap(), "a repeat is ignored");
        store.insert(&notification("b", "ada", pb::NotificationType::Invite, 2_000)).await.unwrap();
        store.insert(&notification("c", "ada", execution, 3_000)).await.unwrap();
        store.insert(&notification("d", "bob", execution, 4_000)).await.unwrap();

        let ids = |listed: Vec<pb::Notification>| listed.into_iter().map(|n| n.id).collect::<Vec<_>>();
        assert_eq!(ids(store.list("ada", &Filter::default()).await.unwrap()), ["c", "b", "a"]);
        let executions = Filter { kind: Some(execution), ..Filter::default() };
        assert_eq!(ids(store.list("ada", &executions).await.unwrap()), ["c", "a"]);
        let window = Filter { since_ms: 2_000, until_ms: 3_000, ..Filter::default() };
        assert_eq!(ids(store.list("ada", &window).await.unwrap()), ["b"]);
        assert_eq!(store.unread_count("ada").await.unwrap(), 3);

        assert_eq!(
            store.mark_read("ada", &["a".into(), "d".into(), "zzz".into()]).await.unwrap(),
            1,
            "bob's is not ada's"
        );
        assert_eq!(store.unread_count("bob").await.unwrap(), 1);
        let unread = Filter { unread_only: true, ..Filter::default() };
        assert_eq!(ids(store.list("ada", &unread).await.unwrap()), ["c", "b"]);
        assert_eq!(store.mark_all_read("ada").await.unwrap(), 2);
        assert_eq!(store.unread_count("ada").await.unwrap(), 0);
        assert!(store.list("ada", &Filter::default()).await.unwrap().iter().all(|n| n.read));
    }
}
