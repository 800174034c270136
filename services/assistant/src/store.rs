//! The `ai_interactions` table, in SQL that SQLite and PostgreSQL both accept.

use codesync_common::ServiceResult;
use codesync_common::db::{Database, DatabaseError, Migration};
use sqlx::Row;

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "ai_interactions",
    sql: include_str!("../../../migrations/assistant/0001_ai_interactions.sql"),
}];

/// One request to the assistant, as recorded when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interaction {
    pub id: String,
    pub user_id: String,
    pub file_id: String,
    pub mode: String,
    pub provider: String,
    pub model: String,
    pub status: String,
    /// -1 when no token came.
    pub time_to_first_token_ms: i64,
    pub latency_ms: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub created_at_ms: i64,
}

impl Interaction {
    /// The record as `ai-events` carries it.
    pub fn to_event(&self) -> codesync_common::events::schema::AiRequestFinished {
        codesync_common::events::schema::AiRequestFinished {
            interaction_id: self.id.clone(),
            user_id: self.user_id.clone(),
            file_id: self.file_id.clone(),
            mode: self.mode.clone(),
            provider: self.provider.clone(),
            model: self.model.clone(),
            status: self.status.clone(),
            time_to_first_token_ms: self.time_to_first_token_ms,
            latency_ms: self.latency_ms,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            created_at_ms: self.created_at_ms,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AssistantStore {
    database: Database,
}

impl AssistantStore {
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    pub async fn migrate(&self) -> Result<(), DatabaseError> {
        self.database.migrate("assistant", MIGRATIONS).await
    }

    pub async fn insert(&self, interaction: &Interaction) -> ServiceResult<()> {
        sqlx::query(
            "INSERT INTO ai_interactions (id, user_id, file_id, mode, provider, model, status, time_to_first_token_ms, \
             latency_ms, input_tokens, output_tokens, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&interaction.id)
        .bind(&interaction.user_id)
        .bind(&interaction.file_id)
        .bind(&interaction.mode)
        .bind(&interaction.provider)
        .bind(&interaction.model)
        .bind(&interaction.status)
        .bind(interaction.time_to_first_token_ms)
        .bind(interaction.latency_ms)
        .bind(interaction.input_tokens)
        .bind(interaction.output_tokens)
        .bind(interaction.created_at_ms)
        .execute(self.database.pool())
        .await?;
        Ok(())
    }

    /// The user's latest interactions, newest first.
    pub async fn latest(&self, user_id: &str, limit: u32) -> ServiceResult<Vec<Interaction>> {
        let rows = sqlx::query(
            "SELECT id, user_id, file_id, mode, provider, model, status, time_to_first_token_ms, latency_ms, \
             input_tokens, output_tokens, created_at_ms FROM ai_interactions WHERE user_id = $1 \
             ORDER BY created_at_ms DESC, id DESC LIMIT $2",
        )
        .bind(user_id)
        .bind(i64::from(limit))
        .fetch_all(self.database.pool())
        .await?;
        let interactions = rows
            .into_iter()
            .map(|row| -> Result<Interaction, sqlx::Error> {
                Ok(Interaction {
                    id: row.try_get("id")?,
                    user_id: row.try_get("user_id")?,
                    file_id: row.try_get("file_id")?,
                    mode: row.try_get("mode")?,
                    provider: row.try_get("provider")?,
                    model: row.try_get("model")?,
                    status: row.try_get("status")?,
                    time_to_first_token_ms: row.try_get("time_to_first_token_ms")?,
                    latency_ms: row.try_get("latency_ms")?,
                    input_tokens: row.try_get("input_tokens")?,
                    output_tokens: row.try_get("output_tokens")?,
                    created_at_ms: row.try_get("created_at_ms")?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(interactions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn interactions_are_stored_and_read_back_newest_first() {
        let directory = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", directory.path().join("assistant.db").display());
        let store = AssistantStore::new(Database::connect(&url).await.unwrap());
        store.migrate().await.unwrap();
        let interaction = |id: &str, at: i64| Interaction {
            id: id.into(),
            user_id: "ada".into(),
            file_id: "f".into(),
            mode: "explain".into(),
            provider: "anthropic".into(),
            model: "claude".into(),
            status: "ok".into(),
            time_to_first_token_ms: 120,
            latency_ms: 900,
            input_tokens: 40,
            output_tokens: 12,
            created_at_ms: at,
        };
        store.insert(&interaction("a", 1)).await.unwrap();
        store.insert(&interaction("b", 2)).await.unwrap();
        let latest = store.latest("ada", 10).await.unwrap();
        assert_eq!(latest, [interaction("b", 2), interaction("a", 1)]);
        assert!(store.latest("bob", 10).await.unwrap().is_empty());
    }
}
