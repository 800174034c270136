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

use tokio::sync::oneshot;

use crate::events::{DEAD_LETTER_EVENTS, Event, EventBus};

/// What `dead-letter-events` calls an event that a consumer gave up on.
pub const DEAD_LETTER: &str = "dead_letter";

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

/// Where a new consumer group starts reading (an existing one goes on from its position).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    /// Everything the brokers still keep: a service that aggregates (analytics, the room log)
    /// takes in what happened before it was deployed.
    Earliest,
    /// What is published from now on: a service that acts on events (notifications) does not
    /// act again on old ones when it is first deployed.
    Latest,
}

/// One event for a group, to acknowledge once handled (or dead-lettered).
#[derive(Debug)]
pub struct Delivery {
    pub event: Event,
    handled: Option<oneshot::Sender<()>>,
}

impl Delivery {
    /// A delivery that needs no acknowledgement (the in-process bus keeps no position).
    pub fn unacknowledged(event: Event) -> Self {
        Self { event, handled: None }
    }

    /// A delivery whose position is committed when `handled` fires.
    pub fn acknowledged_by(event: Event, handled: oneshot::Sender<()>) -> Self {
        Self { event, handled: Some(handled) }
    }

    pub fn acknowledge(self) {
        if let Some(handled) = self.handled {
            let _ = handled.send(());
        }
    }
}

/// Why a handler could not handle an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandleError {
    /// A dependency failed (the database, another service): worth trying again.
    #[error("{0}")]
    Transient(String),
    /// The event itself is unusable (a payload without the fields its kind needs): trying again
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
            dead_letter(bus.as_ref(), group, &delivery.event, &error, attempts);
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
        tracing::warn!(event.id = %event.id, topic = %event.topic, kind = %event.kind, %error, attempts, "handling an event failed; trying again");
        tokio::time::sleep(*delay).await;
    }
}

/// Sends an event a consumer gave up on to `dead-letter-events`, with who gave up and why. A
/// dead letter that fails again is only logged: dead letters never loop.
pub fn dead_letter(bus: &dyn EventBus, group: &str, event: &Event, error: &HandleError, attempts: u32) {
    tracing::error!(group, event.id = %event.id, topic = %event.topic, kind = %event.kind, %error, attempts, "an event goes to the dead letters");
    if event.topic == DEAD_LETTER_EVENTS {
        return;
    }
    let payload = serde_json::json!({
        "consumer": group,
        "error": error.to_string(),
        "poisoned": matches!(error, HandleError::Poisoned(_)),
        "attempts": attempts,
        "event": event,
    });
    bus.publish(Event::new(DEAD_LETTER_EVENTS, DEAD_LETTER, &event.key, payload));
}

/// The dead letter for a message that is not an event at all (bytes that are not CodeSync's
/// JSON), for the bus to publish; none for the dead-letter topic itself.
pub fn raw_dead_letter(group: &str, topic: &str, key: &str, payload: &[u8], reason: &str) -> Option<Event> {
    tracing::error!(group, topic, reason, "a message that is not an event goes to the dead letters");
    if topic == DEAD_LETTER_EVENTS {
        return None;
    }
    let payload = serde_json::json!({
        "consumer": group,
        "error": reason,
        "poisoned": true,
        "attempts": 1,
        "topic": topic,
        "raw": String::from_utf8_lossy(&payload[..payload.len().min(64 * 1024)]),
    });
    Some(Event::new(DEAD_LETTER_EVENTS, DEAD_LETTER, key, payload))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::events::{EXECUTION_EVENTS, InProcessBus, ROOM_EVENTS};

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
                        match event.kind.as_str() {
                            "poison" => Err(HandleError::poisoned("no user_id")),
                            "always_down" => Err(HandleError::transient("the database is down")),
                            // Fails twice, then works.
                            "flaky" if flaky_attempts.fetch_add(1, Ordering::SeqCst) < 2 => {
                                Err(HandleError::transient("busy"))
                            }
                            _ => {
                                handled.lock().unwrap().push(event.kind.clone());
                                Ok(())
                            }
                        }
                    }
                },
            ))
        };
        tokio::task::yield_now().await;
        for kind in ["first", "poison", "flaky", "always_down", "last"] {
            bus.publish(Event::new(EXECUTION_EVENTS, kind, "k", serde_json::json!({})));
        }
        let poisoned = dead_letters.recv().await.unwrap();
        assert_eq!(poisoned.kind, DEAD_LETTER);
        assert_eq!(poisoned.payload["consumer"], "test");
        assert_eq!(poisoned.payload["event"]["kind"], "poison");
        assert_eq!(
            (poisoned.payload["attempts"].as_u64(), poisoned.payload["poisoned"].as_bool()),
            (Some(1), Some(true))
        );
        let given_up = dead_letters.recv().await.unwrap();
        assert_eq!(given_up.payload["event"]["kind"], "always_down");
        assert_eq!(given_up.payload["attempts"].as_u64(), Some(1 + RETRY_DELAYS.len() as u64));
        assert_eq!(given_up.payload["error"], "the database is down");
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
        let letter = Event::new(DEAD_LETTER_EVENTS, DEAD_LETTER, "k", serde_json::json!({}));
        dead_letter(bus.as_ref(), "analytics", &letter, &HandleError::poisoned("bad"), 1);
        assert!(dead_letters.try_recv().is_err());
    }
}
