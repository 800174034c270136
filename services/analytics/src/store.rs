//! The `analytics_events` and `analytics_rooms` tables, and the aggregates the dashboard shows,
//! in SQL that SQLite and PostgreSQL both accept.

use codesync_common::ServiceResult;
use codesync_common::db::{Database, DatabaseError, Migration};
use codesync_proto::analytics::v1 as pb;
use sqlx::Row;

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "events_and_rooms",
    sql: include_str!("../../../migrations/analytics/0001_events_and_rooms.sql"),
}];

/// The upper bounds (ms) of the latency histograms' buckets; a last one holds the rest.
pub const LATENCY_BUCKETS_MS: [i64; 9] = [50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000];

/// One consumed event, with the figures the aggregates need.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recorded {
    pub id: String,
    pub topic: String,
    pub event_type: String,
    pub user_id: String,
    pub room_id: String,
    pub subject: String,
    pub status: String,
    pub duration_ms: i64,
    pub first_token_ms: i64,
    pub amount: i64,
    pub metadata_json: String,
    pub created_at_ms: i64,
}

/// What an event changes about its room.
#[derive(Debug, Clone, PartialEq)]
pub enum RoomChange {
    Created { name: String },
    MemberJoined { name: String },
    MemberRemoved,
    Deleted,
    Online(i64),
}

#[derive(Debug, Clone)]
pub struct AnalyticsStore {
    database: Database,
}

impl AnalyticsStore {
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    pub async fn migrate(&self) -> Result<(), DatabaseError> {
        self.database.migrate("analytics", MIGRATIONS).await
    }

    /// Stores an event and applies its change to its room, together, once: an event delivered
    /// again changes nothing.
    pub async fn record(&self, recorded: &Recorded, room_change: Option<RoomChange>) -> ServiceResult<bool> {
        let mut transaction = self.database.pool().begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO analytics_events (id, topic, event_type, user_id, room_id, subject, status, duration_ms, \
             first_token_ms, amount, metadata_json, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&recorded.id)
        .bind(&recorded.topic)
        .bind(&recorded.event_type)
        .bind(&recorded.user_id)
        .bind(&recorded.room_id)
        .bind(&recorded.subject)
        .bind(&recorded.status)
        .bind(recorded.duration_ms)
        .bind(recorded.first_token_ms)
        .bind(recorded.amount)
        .bind(&recorded.metadata_json)
        .bind(recorded.created_at_ms)
        .execute(&mut *transaction)
        .await?
        .rows_affected()
            == 1;
        if inserted && let Some(change) = room_change {
            let (room_id, at) = (recorded.room_id.as_str(), recorded.created_at_ms);
            let ensure_room = |name: &str| {
                sqlx::query(
                    "INSERT INTO analytics_rooms (room_id, name, member_count, online_count, online_at_ms, deleted, \
                     updated_at_ms) VALUES ($1, $2, 0, 0, 0, 0, $3) ON CONFLICT (room_id) DO NOTHING",
                )
                .bind(room_id.to_string())
                .bind(name.to_string())
                .bind(at)
            };
            match change {
                RoomChange::Created { name } => {
                    ensure_room(&name).execute(&mut *transaction).await?;
                    sqlx::query("UPDATE analytics_rooms SET name = $2, member_count = member_count + 1, updated_at_ms = $3 WHERE room_id = $1")
                        .bind(room_id)
                        .bind(&name)
                        .bind(at)
                        .execute(&mut *transaction)
                        .await?;
                }
                RoomChange::MemberJoined { name } => {
                    ensure_room(&name).execute(&mut *transaction).await?;
                    sqlx::query(
                        "UPDATE analytics_rooms SET member_count = member_count + 1, updated_at_ms = $2, \
                         name = CASE WHEN name = '' THEN $3 ELSE name END WHERE room_id = $1",
                    )
                    .bind(room_id)
                    .bind(at)
                    .bind(&name)
                    .execute(&mut *transaction)
                    .await?;
                }
                RoomChange::MemberRemoved => {
                    sqlx::query(
                        "UPDATE analytics_rooms SET member_count = CASE WHEN member_count > 0 THEN member_count - 1 ELSE 0 END, \
                         updated_at_ms = $2 WHERE room_id = $1",
                    )
                    .bind(room_id)
                    .bind(at)
                    .execute(&mut *transaction)
                    .await?;
                }
                RoomChange::Deleted => {
                    sqlx::query("UPDATE analytics_rooms SET deleted = 1, online_count = 0, updated_at_ms = $2 WHERE room_id = $1")
                        .bind(room_id)
                        .bind(at)
                        .execute(&mut *transaction)
                        .await?;
                }
                RoomChange::Online(online) => {
                    // A room analytics has not seen created (it came before analytics did) still counts.
                    ensure_room("").execute(&mut *transaction).await?;
                    // Presence reports arrive in order per room; an older one never overwrites a newer.
                    sqlx::query(
                        "UPDATE analytics_rooms SET online_count = $2, online_at_ms = $3 \
                         WHERE room_id = $1 AND online_at_ms <= $3",
                    )
                    .bind(room_id)
                    .bind(online)
                    .bind(at)
                    .execute(&mut *transaction)
                    .await?;
                }
            }
        }
        transaction.commit().await?;
        Ok(inserted)
    }

    async fn count(&self, event_type: &str, since_ms: i64) -> ServiceResult<i64> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM analytics_events WHERE event_type = $1 AND created_at_ms >= $2")
                .bind(event_type)
                .bind(since_ms)
                .fetch_one(self.database.pool())
                .await?;
        Ok(row.try_get("n")?)
    }

    async fn sum_amount(&self, event_type: &str, since_ms: i64) -> ServiceResult<i64> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS n FROM analytics_events \
             WHERE event_type = $1 AND created_at_ms >= $2",
        )
        .bind(event_type)
        .bind(since_ms)
        .fetch_one(self.database.pool())
        .await?;
        Ok(row.try_get("n")?)
    }

    pub async fn overview(&self, day_ago_ms: i64) -> ServiceResult<pb::Overview> {
        let rooms = sqlx::query(
            "SELECT COUNT(*) AS rooms, CAST(COALESCE(SUM(online_count), 0) AS BIGINT) AS online \
             FROM analytics_rooms WHERE deleted = 0",
        )
        .fetch_one(self.database.pool())
        .await?;
        Ok(pb::Overview {
            users: self.count("user_registered", 0).await?,
            sessions: self.count("session_started", 0).await?,
            rooms: rooms.try_get("rooms")?,
            executions: self.count("execution_finished", 0).await?,
            ai_calls: self.count("ai_request_finished", 0).await?,
            collaboration_ops: self.sum_amount("activity", 0).await?,
            executions_last_day: self.count("execution_finished", day_ago_ms).await?,
            ai_calls_last_day: self.count("ai_request_finished", day_ago_ms).await?,
            collaboration_ops_last_day: self.sum_amount("activity", day_ago_ms).await?,
            online_users: rooms.try_get("online")?,
        })
    }

    /// Per subject (language or mode) of `event_type` since `since_ms`: count, average duration,
    /// share of `ok`, average time to the first token (over those that had one).
    async fn by_subject(&self, event_type: &str, since_ms: i64) -> ServiceResult<Vec<(String, i64, f64, f64, f64)>> {
        let rows = sqlx::query(
            "SELECT subject, COUNT(*) AS n, CAST(AVG(duration_ms) AS DOUBLE PRECISION) AS average, \
             CAST(SUM(CASE WHEN status = 'ok' THEN 1 ELSE 0 END) AS BIGINT) AS ok, \
             CAST(COALESCE(AVG(CASE WHEN first_token_ms >= 0 THEN first_token_ms END), 0) AS DOUBLE PRECISION) AS first_token \
             FROM analytics_events WHERE event_type = $1 AND created_at_ms >= $2 GROUP BY subject ORDER BY n DESC, subject",
        )
        .bind(event_type)
        .bind(since_ms)
        .fetch_all(self.database.pool())
        .await?;
        let mut figures = Vec::with_capacity(rows.len());
        for row in rows {
            let count: i64 = row.try_get("n")?;
            let ok: i64 = row.try_get("ok")?;
            let success_rate = if count == 0 { 0.0 } else { ok as f64 / count as f64 };
            figures.push((
                row.try_get("subject")?,
                count,
                row.try_get("average")?,
                success_rate,
                row.try_get("first_token")?,
            ));
        }
        Ok(figures)
    }

    async fn histogram(&self, event_type: &str, since_ms: i64) -> ServiceResult<Vec<pb::LatencyBucket>> {
        let mut case = String::from("CASE");
        for (index, upper) in LATENCY_BUCKETS_MS.iter().enumerate() {
            case.push_str(&format!(" WHEN duration_ms <= {upper} THEN {index}"));
        }
        case.push_str(&format!(" ELSE {} END", LATENCY_BUCKETS_MS.len()));
        // Built from the constant bucket bounds only: nothing of a request is in it.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {case} AS bucket, COUNT(*) AS n FROM analytics_events \
             WHERE event_type = $1 AND created_at_ms >= $2 GROUP BY {case}"
        )))
        .bind(event_type)
        .bind(since_ms)
        .fetch_all(self.database.pool())
        .await?;
        let mut counts = vec![0_i64; LATENCY_BUCKETS_MS.len() + 1];
        for row in rows {
            // SQLite and PostgreSQL type a CASE of small numbers differently: read it either way.
            let bucket: i64 =
                row.try_get::<i64, _>("bucket").or_else(|_| row.try_get::<i32, _>("bucket").map(i64::from))?;
            if let Some(count) = usize::try_from(bucket).ok().and_then(|bucket| counts.get_mut(bucket)) {
                *count = row.try_get("n")?;
            }
        }
        Ok(counts
            .into_iter()
            .enumerate()
            .map(|(index, count)| pb::LatencyBucket {
                upper_ms: LATENCY_BUCKETS_MS.get(index).copied().unwrap_or(0),
                count,
            })
            .collect())
    }

    pub async fn execution_stats(&self, since_ms: i64) -> ServiceResult<pb::ExecutionStats> {
        let languages = self
            .by_subject("execution_finished", since_ms)
            .await?
            .into_iter()
            .map(|(language, count, average_wall_time_ms, success_rate, _)| pb::LanguageStats {
                language,
                count,
                average_wall_time_ms,
                success_rate,
            })
            .collect();
        let wall_time_histogram = self.histogram("execution_finished", since_ms).await?;
        Ok(pb::ExecutionStats { languages, wall_time_histogram })
    }

    pub async fn ai_stats(&self, since_ms: i64) -> ServiceResult<pb::AiStats> {
        let modes = self
            .by_subject("ai_request_finished", since_ms)
            .await?
            .into_iter()
            .map(|(mode, count, average_latency_ms, success_rate, average_time_to_first_token_ms)| pb::ModeStats {
                mode,
                count,
                average_latency_ms,
                success_rate,
                average_time_to_first_token_ms,
            })
            .collect();
        let latency_histogram = self.histogram("ai_request_finished", since_ms).await?;
        Ok(pb::AiStats { modes, latency_histogram })
    }

    /// Rooms with people in them or events since `since_ms`, the busiest first.
    pub async fn active_rooms(&self, since_ms: i64, limit: u32) -> ServiceResult<Vec<pb::ActiveRoom>> {
        let rows = sqlx::query(
            "SELECT r.room_id, r.name, r.member_count, r.online_count, \
             (SELECT COUNT(*) FROM analytics_events e WHERE e.room_id = r.room_id AND e.created_at_ms >= $1) AS recent \
             FROM analytics_rooms r WHERE r.deleted = 0 \
             ORDER BY r.online_count DESC, recent DESC, r.updated_at_ms DESC LIMIT $2",
        )
        .bind(since_ms)
        .bind(i64::from(limit))
        .fetch_all(self.database.pool())
        .await?;
        let mut rooms = Vec::with_capacity(rows.len());
        for row in rows {
            let room = pb::ActiveRoom {
                room_id: row.try_get("room_id")?,
                name: row.try_get("name")?,
                member_count: row.try_get("member_count")?,
                online_count: row.try_get("online_count")?,
                events_last_day: row.try_get("recent")?,
            };
            if room.online_count > 0 || room.events_last_day > 0 {
                rooms.push(room);
            }
        }
        Ok(rooms)
    }

    /// The newest events, of one type or topic if asked.
    pub async fn recent_events(
        &self,
        event_type: &str,
        topic: &str,
        limit: u32,
    ) -> ServiceResult<Vec<pb::PlatformEvent>> {
        let rows = sqlx::query(
            "SELECT id, topic, event_type, user_id, room_id, metadata_json, created_at_ms FROM analytics_events \
             WHERE ($1 = '' OR event_type = $1) AND ($2 = '' OR topic = $2) \
             ORDER BY created_at_ms DESC, id DESC LIMIT $3",
        )
        .bind(event_type)
        .bind(topic)
        .bind(i64::from(limit))
        .fetch_all(self.database.pool())
        .await?;
        let events = rows
            .into_iter()
            .map(|row| -> Result<pb::PlatformEvent, sqlx::Error> {
                Ok(pb::PlatformEvent {
                    id: row.try_get("id")?,
                    topic: row.try_get("topic")?,
                    event_type: row.try_get("event_type")?,
                    user_id: row.try_get("user_id")?,
                    room_id: row.try_get("room_id")?,
                    metadata_json: row.try_get("metadata_json")?,
                    created_at_ms: row.try_get("created_at_ms")?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(events)
    }
}
