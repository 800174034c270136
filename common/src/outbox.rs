//! No event is lost while the broker is down, however long: with Kafka, an event is first
//! stored in the database's outbox (`event_outbox`), then relayed to Kafka, and removed only
//! once the brokers have acknowledged it. A process that restarts, or a broker that comes back
//! after an hour, finds the events where they were left.
//!
//! A service that changes its tables stores its events in the same transaction
//! ([`stage`]); any other event is stored as it is published, by a writer that batches them.
//! One process per database relays (a lease in `event_outbox_relay`, taken over when its
//! holder stops renewing it): events go out in the order they were stored, so the events of
//! one key keep their order. Delivery is at least once: an event whose acknowledgement was lost
//! goes out again, and consumers are idempotent by event id.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::Row;
use tokio::sync::{Notify, mpsc};

use crate::db::{Database, Migration};
use crate::events::Event;

pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "event_outbox", sql: include_str!("../../migrations/events/0001_event_outbox.sql") },
    Migration {
        version: 2,
        name: "event_outbox_message",
        sql: include_str!("../../migrations/events/0002_event_outbox_message.sql"),
    },
];

/// Events relayed in one round.
const BATCH: i64 = 500;
/// How long the relay's lease holds without renewal.
const RELAY_LEASE: Duration = Duration::from_secs(5);
/// How often the relay looks for events stored by other processes.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// The longest wait between attempts while the brokers are unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub async fn migrate(database: &Database) -> Result<(), crate::db::DatabaseError> {
    database.migrate("events", MIGRATIONS).await
}

/// Stores `event` in the outbox within the caller's transaction: it is relayed once the
/// transaction commits, and never if it rolls back.
pub async fn stage(connection: &mut sqlx::AnyConnection, event: &Event) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO event_outbox (id, topic, event_key, payload, message, created_at_ms) \
         VALUES ($1, $2, $3, '', $4, $5) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&event.id)
    .bind(event.topic())
    .bind(&event.key)
    .bind(event.encode())
    .bind(event.occurred_at_ms)
    .execute(connection)
    .await?;
    Ok(())
}

/// This process's way into the outbox: a writer that stores published events in batches, and
/// the relay that sends stored events to Kafka when this process holds the relay's lease.
pub struct Outbox {
    /// Events waiting to be stored, at most `CODESYNC_EVENT_QUEUE`: while the database is down,
    /// activity and analytics events past it are dropped (counted), durable ones make their
    /// producers wait and then refuse their action (`EventBus::publish_durable`).
    writes: mpsc::Sender<Event>,
    dropped: Arc<crate::events::Dropped>,
    wake: Arc<Notify>,
    /// Reported at `/metrics` for as long as this outbox lives.
    _figures: Arc<Figures>,
}

/// What the relay did and what waits, for `/metrics`.
#[derive(Default)]
struct Figures {
    relayed: std::sync::atomic::AtomicU64,
    failures: std::sync::atomic::AtomicU64,
    leading: std::sync::atomic::AtomicBool,
    /// Events waiting, by topic, as the relay last counted them (only the relaying process
    /// counts: the others report none).
    backlog: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

impl crate::metrics::Source for Figures {
    fn readings(&self) -> Vec<crate::metrics::Reading> {
        use crate::metrics::Reading;
        use std::sync::atomic::Ordering;
        let mut readings = vec![
            Reading::counter(
                "outbox_relayed_events",
                "Events this process relayed from the outbox to Kafka",
                self.relayed.load(Ordering::Relaxed),
            ),
            Reading::counter(
                "outbox_relay_failures",
                "Relay rounds the brokers or the database failed",
                self.failures.load(Ordering::Relaxed),
            ),
            Reading::gauge(
                "outbox_relaying",
                "1 while this process holds the relay's lease",
                f64::from(u8::from(self.leading.load(Ordering::Relaxed))),
            ),
        ];
        let backlog = self.backlog.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (topic, waiting) in backlog.iter() {
            readings.push(
                Reading::gauge("outbox_backlog", "Events waiting in the outbox for Kafka, by topic", *waiting as f64)
                    .with_label("topic", topic.clone()),
            );
        }
        readings
    }
}

/// How often the relay counts what waits.
const COUNT_EVERY: Duration = Duration::from_secs(5);

impl std::fmt::Debug for Outbox {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Outbox")
    }
}

impl Outbox {
    /// Starts the writer and the relay on `database`, sending with `producer`; at most
    /// `queue` events wait to be stored.
    pub fn start(database: Database, producer: FutureProducer, queue: usize) -> Self {
        let (writes, pending) = mpsc::channel(queue.max(1));
        let wake = Arc::new(Notify::new());
        let figures = Arc::new(Figures::default());
        crate::metrics::register(figures.clone());
        let dropped = Arc::new(crate::events::Dropped::default());
        crate::metrics::register(dropped.clone());
        tokio::spawn(write_events(database.clone(), pending, wake.clone()));
        tokio::spawn(relay(database, producer, wake.clone(), Arc::downgrade(&figures)));
        Self { writes, dropped, wake, _figures: figures }
    }

    /// Stores `event` (soon, in a batch) and relays it; dropped, counted, when the writer's queue
    /// is full (for activity and analytics events: see the bus's `EventBus::publish`).
    pub fn publish(&self, event: Event) {
        match self.writes.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(event)) => self.dropped.count(&event),
            Err(mpsc::error::TrySendError::Closed(event)) => tracing::error!(
                topic = event.topic(),
                kind = event.kind_name(),
                "the outbox writer has stopped; an event is lost"
            ),
        }
    }

    /// Stores `event`, waiting for room in the writer's queue (the database is behind) up to
    /// [`crate::events::DURABLE_WAIT`]; then refuses.
    pub async fn publish_durable(&self, event: Event) -> Result<(), crate::ServiceError> {
        let topic = event.topic();
        match self.writes.send_timeout(event, crate::events::DURABLE_WAIT).await {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => Err(crate::events::queue_full(topic)),
            Err(mpsc::error::SendTimeoutError::Closed(_)) => {
                Err(crate::ServiceError::internal("the outbox writer has stopped"))
            }
        }
    }

    /// Events were staged in a transaction that just committed: relay them now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// Stores published events, everything that queued up meanwhile in one transaction; retries
/// while the database is down (the events wait in memory meanwhile).
async fn write_events(database: Database, mut pending: mpsc::Receiver<Event>, wake: Arc<Notify>) {
    let mut batch = Vec::new();
    let mut backoff = Duration::from_millis(100);
    loop {
        if batch.is_empty() && pending.recv_many(&mut batch, 1000).await == 0 {
            return;
        }
        while batch.len() < 1000 {
            match pending.try_recv() {
                Ok(event) => batch.push(event),
                Err(_) => break,
            }
        }
        match store_batch(&database, &batch).await {
            Ok(()) => {
                batch.clear();
                backoff = Duration::from_millis(100);
                wake.notify_one();
            }
            Err(error) => {
                tracing::warn!(%error, events = batch.len(), "cannot store events in the outbox yet; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn store_batch(database: &Database, events: &[Event]) -> Result<(), sqlx::Error> {
    let mut transaction = database.pool().begin().await?;
    for event in events {
        stage(&mut transaction, event).await?;
    }
    transaction.commit().await
}

/// The relay: while this process holds the lease, sends the stored events in order and removes
/// each once the brokers acknowledged it.
async fn relay(database: Database, producer: FutureProducer, wake: Arc<Notify>, figures: std::sync::Weak<Figures>) {
    use std::sync::atomic::Ordering;
    let me = crate::new_id();
    let mut backoff = Duration::from_millis(200);
    let mut leading = false;
    let mut counted_at: Option<std::time::Instant> = None;
    loop {
        let Some(figures) = figures.upgrade() else { return };
        match hold_lease(&database, &me).await {
            Ok(holds) => {
                if holds && !leading {
                    tracing::info!("this process relays the outbox's events to Kafka");
                }
                leading = holds;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot reach the outbox's relay lease");
                leading = false;
            }
        }
        figures.leading.store(leading, Ordering::Relaxed);
        if !leading {
            figures.backlog.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
            drop(figures);
            tokio::time::sleep(RELAY_LEASE / 3).await;
            continue;
        }
        if counted_at.is_none_or(|at| at.elapsed() >= COUNT_EVERY) {
            counted_at = Some(std::time::Instant::now());
            if let Ok(backlog) = count_backlog(&database).await {
                let mut figures_backlog = figures.backlog.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                // Every topic is reported, a drained one as 0.
                figures_backlog.values_mut().for_each(|waiting| *waiting = 0);
                for topic in crate::events::TOPICS {
                    figures_backlog.entry(topic.to_string()).or_insert(0);
                }
                figures_backlog.extend(backlog);
            }
        }
        let result = relay_batch(&database, &producer).await;
        match &result {
            Ok(relayed) => {
                figures.relayed.fetch_add(*relayed as u64, Ordering::Relaxed);
            }
            Err(_) => {
                figures.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        drop(figures);
        match result {
            Ok(0) => {
                backoff = Duration::from_millis(200);
                let _ = tokio::time::timeout(POLL_INTERVAL, wake.notified()).await;
            }
            Ok(_) => backoff = Duration::from_millis(200),
            Err(error) => {
                tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "events wait in the outbox");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Events waiting, by topic.
async fn count_backlog(database: &Database) -> Result<std::collections::BTreeMap<String, u64>, sqlx::Error> {
    let rows = sqlx::query("SELECT topic, COUNT(*) AS waiting FROM event_outbox GROUP BY topic")
        .fetch_all(database.pool())
        .await?;
    let mut backlog = std::collections::BTreeMap::new();
    for row in rows {
        let topic: String = row.try_get("topic")?;
        let waiting: i64 = row.try_get("waiting")?;
        backlog.insert(topic, u64::try_from(waiting).unwrap_or(0));
    }
    Ok(backlog)
}

/// Takes or renews the relay's lease; true while this process holds it.
async fn hold_lease(database: &Database, me: &str) -> Result<bool, sqlx::Error> {
    let now = crate::now_ms();
    let until = now + i64::try_from(RELAY_LEASE.as_millis()).unwrap_or(i64::MAX);
    sqlx::query(
        "INSERT INTO event_outbox_relay (name, holder, expires_at_ms) VALUES ('relay', $1, $2) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at_ms = excluded.expires_at_ms \
         WHERE event_outbox_relay.holder = excluded.holder OR event_outbox_relay.expires_at_ms < $3",
    )
    .bind(me)
    .bind(until)
    .bind(now)
    .execute(database.pool())
    .await?;
    let row =
        sqlx::query("SELECT holder FROM event_outbox_relay WHERE name = 'relay'").fetch_one(database.pool()).await?;
    Ok(row.try_get::<String, _>("holder")? == me)
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("the outbox cannot be read: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the brokers did not take an event: {0}")]
    Broker(String),
}

/// Sends up to [`BATCH`] stored events in order, all queued at once; removes those acknowledged
/// (every one before the first that failed). How many went out.
async fn relay_batch(database: &Database, producer: &FutureProducer) -> Result<usize, RelayError> {
    let rows = sqlx::query("SELECT id, topic, event_key, payload, message FROM event_outbox ORDER BY id LIMIT $1")
        .bind(BATCH)
        .fetch_all(database.pool())
        .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut deliveries = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: String = row.try_get("id")?;
        let topic: String = row.try_get("topic")?;
        let key: String = row.try_get("event_key")?;
        // A row stored before events were protobuf goes out as it was stored.
        let message = match row.try_get::<Option<Vec<u8>>, _>("message")? {
            Some(message) => message,
            None => row.try_get::<String, _>("payload")?.into_bytes(),
        };
        let record = FutureRecord::to(&topic).key(&key).payload(&message);
        match producer.send_result(record) {
            Ok(delivery) => deliveries.push((id, delivery)),
            // The producer's queue is full: what was queued goes out, the rest next round.
            Err((error, _)) => {
                tracing::debug!(%error, "the producer's queue is full");
                break;
            }
        }
    }
    let mut delivered = Vec::new();
    let mut failure = None;
    for (id, delivery) in deliveries {
        match delivery.await {
            Ok(Ok(_)) if failure.is_none() => delivered.push(id),
            Ok(Ok(_)) => {}
            Ok(Err((error, _))) => {
                failure.get_or_insert_with(|| error.to_string());
            }
            Err(_) => {
                failure.get_or_insert_with(|| "the delivery was abandoned".to_string());
            }
        }
    }
    for chunk in delivered.chunks(200) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|index| format!("${index}")).collect();
        let sql = format!("DELETE FROM event_outbox WHERE id IN ({})", placeholders.join(", "));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            query = query.bind(id);
        }
        query.execute(database.pool()).await?;
    }
    match failure {
        Some(error) => Err(RelayError::Broker(error)),
        None => Ok(delivered.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Kind, schema};

    fn activity(updates: u64) -> Event {
        Event::new(
            "file-1",
            Kind::Activity(schema::Activity { file_id: "file-1".into(), updates, ..Default::default() }),
        )
    }

    fn ended(session: &str) -> Event {
        Event::new("u", Kind::SessionEnded(schema::SessionEnded { user_id: "u".into(), session_id: session.into() }))
    }

    /// The bounded-memory rule of the outbox's writer: while the database takes no writes, at
    /// most its queue (and one batch) waits; activity past it is dropped and counted, and a
    /// durable event's producer waits, then is refused; nothing durable is lost, and what waited
    /// is stored once the database is back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_database_that_takes_no_writes_fills_the_queue_to_its_bound_and_no_further() {
        let directory = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", directory.path().join("outbox.db").display());
        let database = Database::connect(&url).await.unwrap();
        migrate(&database).await.unwrap();
        // No broker: the relay fails and retries; only the writer matters here.
        let producer: FutureProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:9")
            .set("message.timeout.ms", "1000")
            .create()
            .unwrap();
        let outbox = Outbox::start(database.clone(), producer, 100);
        // Another writer holds SQLite's write lock: the outbox's writes wait, then fail, and
        // are tried again, for as long as it is held.
        let mut blocker = database.pool().acquire().await.unwrap();
        sqlx::query("BEGIN EXCLUSIVE").execute(&mut *blocker).await.unwrap();
        outbox.publish_durable(ended("first")).await.unwrap();
        // The writer takes what waits as one batch (up to 1000) and is stuck with it; give it
        // that batch, then fill the queue behind it.
        tokio::time::sleep(Duration::from_millis(300)).await;
        for updates in 0..150 {
            outbox.publish(activity(updates));
        }
        let dropped: u64 =
            crate::metrics::Source::readings(outbox.dropped.as_ref()).iter().map(|reading| reading.value as u64).sum();
        assert_eq!(dropped, 50, "a queue of 100: the 50 past it are dropped and counted");
        let refused = outbox.publish_durable(ended("second")).await.unwrap_err();
        assert_eq!(
            refused.code(),
            crate::ErrorCode::ServiceUnavailable,
            "a durable event waits, then is refused: {refused}"
        );
        sqlx::query("ROLLBACK").execute(&mut *blocker).await.unwrap();
        drop(blocker);
        let stored = async {
            loop {
                let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM event_outbox")
                    .fetch_one(database.pool())
                    .await
                    .unwrap_or(0);
                if count >= 101 {
                    return count;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        let count =
            tokio::time::timeout(Duration::from_secs(60), stored).await.expect("stored once the database is back");
        assert_eq!(count, 101, "the first durable event and the 100 that fitted; the refused one was never taken");
    }
}
