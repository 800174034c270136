//! The chat store: each room's messages, in SQL that SQLite and PostgreSQL both accept.

use codesync_common::ServiceResult;
use codesync_common::db::{Database, DatabaseError, Migration};
use codesync_proto::presence::v1::ChatMessage;
use sqlx::Row;

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "chat_messages",
    sql: include_str!("../../../migrations/presence/0001_chat_messages.sql"),
}];

#[derive(Debug, Clone)]
pub struct PresenceStore {
    database: Database,
}

impl PresenceStore {
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    pub async fn migrate(&self) -> Result<(), DatabaseError> {
        self.database.migrate("presence", MIGRATIONS).await
    }

    pub async fn insert_message(&self, message: &ChatMessage) -> ServiceResult<()> {
        sqlx::query(
            "INSERT INTO chat_messages (id, room_id, user_id, username, text, sent_at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&message.id)
        .bind(&message.room_id)
        .bind(&message.user_id)
        .bind(&message.username)
        .bind(&message.text)
        .bind(message.sent_at_ms)
        .execute(self.database.pool())
        .await?;
        Ok(())
    }

    /// The latest `limit` messages sent before `before_ms` (0: now), oldest first.
    pub async fn latest_messages(&self, room_id: &str, before_ms: i64, limit: u32) -> ServiceResult<Vec<ChatMessage>> {
        let before_ms = if before_ms <= 0 { i64::MAX } else { before_ms };
        let rows = sqlx::query(
            "SELECT id, room_id, user_id, username, text, sent_at_ms FROM chat_messages \
             WHERE room_id = $1 AND sent_at_ms < $2 ORDER BY sent_at_ms DESC, id DESC LIMIT $3",
        )
        .bind(room_id)
        .bind(before_ms)
        .bind(i64::from(limit))
        .fetch_all(self.database.pool())
        .await?;
        let mut messages = rows
            .into_iter()
            .map(|row| -> Result<ChatMessage, sqlx::Error> {
                Ok(ChatMessage {
                    id: row.try_get("id")?,
                    room_id: row.try_get("room_id")?,
                    user_id: row.try_get("user_id")?,
                    username: row.try_get("username")?,
                    text: row.try_get("text")?,
                    sent_at_ms: row.try_get("sent_at_ms")?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        messages.reverse();
        Ok(messages)
    }
}
