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

    /// The latest `limit` messages before the position (`before_ms`, `before_id`)
    /// in the order (time, id), oldest first: before `before_ms` (0: now), or in
    /// the same millisecond with a smaller id.
    pub async fn latest_messages(
        &self,
        room_id: &str,
        before_ms: i64,
        before_id: &str,
        limit: u32,
    ) -> ServiceResult<Vec<ChatMessage>> {
        let before_ms = if before_ms <= 0 { i64::MAX } else { before_ms };
        let rows = sqlx::query(
            "SELECT id, room_id, user_id, username, text, sent_at_ms FROM chat_messages \
             WHERE room_id = $1 AND (sent_at_ms < $2 OR (sent_at_ms = $2 AND id < $3)) \
             ORDER BY sent_at_ms DESC, id DESC LIMIT $4",
        )
        .bind(room_id)
        .bind(before_ms)
        .bind(before_id)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CHAT_HISTORY_ON_JOIN;

    fn message(room_id: &str, index: i64) -> ChatMessage {
        ChatMessage {
            id: format!("{room_id}-{index:03}"),
            room_id: room_id.to_string(),
            user_id: "user-1".into(),
            username: "ada".into(),
            text: format!("message {index}"),
            // Two messages per millisecond: the id breaks the tie.
            sent_at_ms: 1_700_000_000_000 + index / 2,
        }
    }

    #[tokio::test]
    async fn a_join_replays_the_latest_hundred_messages_of_its_room_oldest_first() {
        let directory = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", directory.path().join("presence.db").display());
        let store = PresenceStore::new(Database::connect(&url).await.unwrap());
        store.migrate().await.unwrap();
        for index in 0..105 {
            store.insert_message(&message("room-a", index)).await.unwrap();
        }
        store.insert_message(&message("room-b", 999)).await.unwrap();

        let history = store.latest_messages("room-a", 0, "", CHAT_HISTORY_ON_JOIN).await.unwrap();
        let texts: Vec<String> = history.iter().map(|message| message.text.clone()).collect();
        let expected: Vec<String> = (5..105).map(|index| format!("message {index}")).collect();
        assert_eq!(texts, expected);

        // Paging back from the oldest one shown gives everything before it,
        // including the message sent in the same millisecond.
        let oldest = &history[0];
        let earlier = store.latest_messages("room-a", oldest.sent_at_ms, &oldest.id, 10).await.unwrap();
        let texts: Vec<&str> = earlier.iter().map(|message| message.text.as_str()).collect();
        assert_eq!(texts, ["message 0", "message 1", "message 2", "message 3", "message 4"]);
    }
}
