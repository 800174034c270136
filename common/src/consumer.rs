//! Durable consumers: a named group reads topics of the event bus and handles each event, retrying
//! what fails for a passing reason, and sending what it cannot handle to `dead-letter-events`
//! before it carries on. One bad event never stops a consumer.
//!
//! On Kafka the group's position is committed after each event is handled (at least once: an
//! event may come again after a crash, so handlers are idempotent); in process, the group reads
//! what is published after it started.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::bus::EventBus;
use crate::events::{DEAD_LETTER_EVENTS, Event, Kind, schema};
pub use crate::events::{Delivery, StartFrom};

/// Waits between the attempts at an event that failed for a passing reason: about 48 s in all,
/// enough for a database to restart or a peer service to come back.
pub const RETRY_DELAYS: [Duration; 6] = [
    Duration::from_millis(100),
    Duration::from_millis(500),
    Duration::from_secs(2),
    Duration::from_secs(5),
    Duration::from_secs(10),
    Duration::from_secs(30),
];

/// Why a handler could not handle an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandleError {
    /// A dependency failed (the database, another service): worth trying again.
    #[error("{0}")]
    Transient(String),
    /// The event itself is unusable (without the fields its kind needs): trying again
    /// cannot help, so it goes to the dead letters at once.
    #[error("{0}")]
    Poisoned(String),
}

impl HandleError {
    pub fn poisoned(message: impl Into<String>) -> Self {
        Self::Poisoned(message.into())
    }

    pub fn transient(message: impl std::fmt::Display) -> Self {
        Self::Transient(message.to_string())
    }
}

/// Handles `group`'s events of `topics` with `handler` until the bus goes away: each event is
/// tried up to `1 + RETRY_DELAYS.len()` times while it fails for a passing reason, and then, or
/// at once when it is poisoned, published to `dead-letter-events` with the reason.
pub async fn run<Handler, Handled>(
    bus: Arc<dyn EventBus>,
    group: &'static str,
    topics: &'static [&'static str],
    start: StartFrom,
    handler: Handler,
) where
    Handler: Fn(Event) -> Handled,
    Handled: Future<Output = Result<(), HandleError>>,
{
    let mut deliveries = bus.consume(group, topics, start);
    tracing::info!(group, ?topics, "consuming events");
    while let Some(delivery) = deliveries.recv().await {
        if let Err((error, attempts)) = handle_with_retries(&handler, &delivery.event).await {
            let message = delivery.received.clone().unwrap_or_else(|| delivery.event.encode());
            dead_letter(bus.as_ref(), group, &delivery.event, message, &error, attempts).await;
        }
        delivery.acknowledge();
    }
}

async fn handle_with_retries<Handler, Handled>(handler: &Handler, event: &Event) -> Result<(), (HandleError, u32)>
where
    Handler: Fn(Event) -> Handled,
    Handled: Future<Output = Result<(), HandleError>>,
{
    let mut attempts = 0;
    loop {
        attempts += 1;
        let error = match handler(event.clone()).await {
            Ok(()) => return Ok(()),
            Err(error) => error,
        };
        let delay = match &error {
            HandleError::Transient(_) => RETRY_DELAYS.get(attempts as usize - 1),
            HandleError::Poisoned(_) => None,
        };
        let Some(delay) = delay else { return Err((error, attempts)) };
        tracing::warn!(event.id = %event.id, topic = event.topic(), kind = event.kind_name(), %error, attempts, "handling an event failed; trying again");
        tokio::time::sleep(*delay).await;
    }
}

/// Sends an event a consumer gave up on to `dead-letter-events`, with who gave up and why, and
/// the `message` it came in, byte for byte. A dead letter that fails again is only logged: dead
/// letters never loop.
pub async fn dead_letter(
    bus: &dyn EventBus,
    group: &str,
    event: &Event,
    message: Vec<u8>,
    error: &HandleError,
    attempts: u32,
) {
    tracing::error!(group, event.id = %event.id, topic = event.topic(), kind = event.kind_name(), %error, attempts, "an event goes to the dead letters");
    if event.topic() == DEAD_LETTER_EVENTS {
        return;
    }
    let letter = schema::DeadLetter {
        consumer: group.to_string(),
        error: error.to_string(),
        poisoned: matches!(error, HandleError::Poisoned(_)),
        attempts,
        topic: event.topic().to_string(),
        message,
        event_id: event.id.clone(),
        event_kind: event.kind_name().to_string(),
    };
    if let Err(error) = bus.publish_durable(Event::new(&event.key, Kind::DeadLetter(letter))).await {
        tracing::error!(group, event.id = %event.id, %error, "a dead letter could not be queued");
    }
}

/// The dead letter for a message that is not an event this version can read (bytes that are
/// not an envelope, or a kind it does not know), kept whole, for the bus to publish; none for
/// the dead-letter topic itself.
pub fn raw_dead_letter(group: &str, topic: &str, key: &str, message: &[u8], reason: &str) -> Option<Event> {
    tracing::error!(group, topic, reason, "a message that is not an event goes to the dead letters");
    if topic == DEAD_LETTER_EVENTS {
        return None;
    }
    let letter = schema::DeadLetter {
        consumer: group.to_string(),
        error: reason.to_string(),
        poisoned: true,
        attempts: 1,
        topic: topic.to_string(),
        message: message.to_vec(),
        ..Default::default()
    };
    Some(Event::new(key, Kind::DeadLetter(letter)))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::bus::InProcessBus;
    use crate::events::{EXECUTION_EVENTS, ROOM_EVENTS};

    /// A finished run whose language names what the test's handler does with it.
    fn finished_run(language: &str) -> Event {
        let finished = schema::ExecutionFinished { language: language.into(), ..Default::default() };
        Event::new("k", Kind::ExecutionFinished(finished))
    }

    fn run_language(event: &Event) -> &str {
        match &event.kind {
            Kind::ExecutionFinished(finished) => &finished.language,
            _ => "",
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_poisoned_event_is_dead_lettered_and_the_consumer_goes_on() {
        let bus = InProcessBus::shared();
        let mut dead_letters = bus.subscribe(DEAD_LETTER_EVENTS);
        let handled = Arc::new(Mutex::new(Vec::new()));
        let flaky_attempts = Arc::new(AtomicU32::new(0));
        let consumer = {
            let (handled, flaky_attempts) = (handled.clone(), flaky_attempts.clone());
            tokio::spawn(run(
                bus.clone(),
                "test",
                &[EXECUTION_EVENTS, ROOM_EVENTS],
                StartFrom::Latest,
                move |event: Event| {
                    let (handled, flaky_attempts) = (handled.clone(), flaky_attempts.clone());
                    async move {
                        match run_language(&event) {
                            "poison" => Err(HandleError::poisoned("no user_id")),
                            "always_down" => Err(HandleError::transient("the database is down")),
                            // Fails twice, then works.
                            "flaky" if flaky_attempts.fetch_add(1, Ordering::SeqCst) < 2 => {
                                Err(HandleError::transient("busy"))
                            }
                            _ => {
                                handled.lock().unwrap().push(run_language(&event).to_string());
                                Ok(())
                            }
                        }
                    }
                },
            ))
        };
        tokio::task::yield_now().await;
        let mut published = Vec::new();
        for language in ["first", "poison", "flaky", "always_down", "last"] {
            let event = finished_run(language);
            published.push(event.clone());
            bus.publish(event);
        }
        let Kind::DeadLetter(poisoned) = dead_letters.recv().await.unwrap().kind else { panic!("a dead letter") };
        assert_eq!((poisoned.consumer.as_str(), poisoned.event_kind.as_str()), ("test", "execution_finished"));
        assert_eq!(Event::decode(&poisoned.message).unwrap(), published[1], "the event, whole");
        assert_eq!((poisoned.attempts, poisoned.poisoned), (1, true));
        let Kind::DeadLetter(given_up) = dead_letters.recv().await.unwrap().kind else { panic!("a dead letter") };
        assert_eq!(Event::decode(&given_up.message).unwrap(), published[3]);
        assert_eq!((given_up.attempts, given_up.poisoned), (1 + RETRY_DELAYS.len() as u32, false));
        assert_eq!(given_up.error, "the database is down");
        // The consumer went on after both.
        while handled.lock().unwrap().len() < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(*handled.lock().unwrap(), ["first", "flaky", "last"]);
        assert_eq!(flaky_attempts.load(Ordering::SeqCst), 3);
        consumer.abort();
    }

    #[tokio::test]
    async fn dead_letters_never_loop() {
        let bus = InProcessBus::shared();
        let mut dead_letters = bus.subscribe(DEAD_LETTER_EVENTS);
        let letter = Event::new("k", Kind::DeadLetter(schema::DeadLetter::default()));
        dead_letter(bus.as_ref(), "analytics", &letter, letter.encode(), &HandleError::poisoned("bad"), 1).await;
        assert!(dead_letters.try_recv().is_err());
    }
}
