//! `/api/notifications` on the real binary: a finished run reaches its user's open stream within
//! a second; invites and role changes notify the right people; listing filters by type and
//! date, and marking read counts; system notices are for administrators to send; and, over a
//! real Kafka-compatible broker, poisoned messages end in `dead-letter-events` while the
//! consumer goes on.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::executions::EventReader;
use crate::harness::{Cluster, Session};

async fn open_stream(cluster: &Cluster, user: &Session) -> EventReader {
    let response = cluster
        .http
        .get(format!("{}/api/notifications/stream", cluster.base_url))
        .bearer_auth(&user.access_token)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("open the notification stream");
    assert_eq!(response.status(), StatusCode::OK);
    let mut stream = EventReader::new(response);
    let (name, _, _) = stream.next().await.expect("the stream greets");
    assert_eq!(name, "ready");
    stream
}

async fn listed(cluster: &Cluster, user: &Session, query: &str) -> Value {
    let (status, body) = cluster.get(&format!("/api/notifications{query}"), user.token()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Waits until the user's listing satisfies `condition`.
async fn eventually_listed(
    cluster: &Cluster,
    user: &Session,
    query: &str,
    condition: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = listed(cluster, user, query).await;
        if condition(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "the notifications never became as expected: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_finished_run_reaches_the_open_stream_within_a_second_and_listing_filters_and_marks_read() {
    let cluster = Cluster::one_process(&[]).await;
    let owner = cluster.register("notified").await;
    let joiner = cluster.register("joiner").await;
    let mut stream = open_stream(&cluster, &owner).await;

    let (status, result) = cluster
        .post(
            "/api/executions",
            owner.token(),
            json!({"language": "python", "files": [{"name": "main.py", "content": "print(6 * 7)"}]}),
        )
        .await;
    if status == StatusCode::SERVICE_UNAVAILABLE {
        assert_ne!(std::env::var("CODESYNC_TEST_REQUIRE_SANDBOX").as_deref(), Ok("1"), "{result}");
        return;
    }
    let finished = Instant::now();
    assert_eq!((status, result["status"].as_str()), (StatusCode::OK, Some("ok")), "{result}");
    let (name, notification, arrived) =
        tokio::time::timeout(Duration::from_secs(5), stream.next()).await.expect("a notification arrives").unwrap();
    let latency = arrived.saturating_duration_since(finished);
    eprintln!("the run's notification arrived {} ms after its result", latency.as_millis());
    assert!(latency < Duration::from_secs(1), "{} ms", latency.as_millis());
    assert_eq!(name, "notification");
    assert_eq!(
        (notification["type"].as_str(), notification["title"].as_str()),
        (Some("execution"), Some("Your python run finished"))
    );
    assert_eq!(notification["metadata"]["exit_code"].as_i64(), Some(0));
    assert_eq!(notification["metadata"]["language"].as_str(), Some("python"));
    assert_eq!(notification["read"].as_bool(), Some(false));

    // Someone joins the owner's room: an invite notification, pushed too.
    let (_, room) = cluster.post("/api/rooms", owner.token(), json!({"name": "Lab", "is_public": false})).await;
    let room_id = room["id"].as_str().unwrap();
    let (status, _) =
        cluster.post("/api/rooms/join", joiner.token(), json!({"invite_code": room["invite_code"]})).await;
    assert_eq!(status, StatusCode::OK);
    let (name, invite, _) = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.unwrap().unwrap();
    assert_eq!(
        (name.as_str(), invite["type"].as_str(), invite["title"].as_str()),
        ("notification", Some("invite"), Some("joiner joined Lab"))
    );
    // The owner makes the joiner a viewer: the joiner is told.
    let (status, _) = cluster
        .patch(&format!("/api/rooms/{room_id}/members/{}", joiner.user_id), owner.token(), json!({"role": "viewer"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    // The list and the count are two reads: wait for both to show it.
    let joiners = eventually_listed(&cluster, &joiner, "", |body| {
        body["unread_count"] == 1 && body["notifications"].as_array().is_some_and(|listed| listed.len() == 1)
    })
    .await;
    assert_eq!(joiners["notifications"][0]["title"], "You are now viewer in Lab");
    assert_eq!(joiners["notifications"][0]["type"], "room");

    // The owner's list: both, newest first; by type; by date; unread only.
    let all = listed(&cluster, &owner, "").await;
    assert_eq!(all["unread_count"], 2);
    let types: Vec<&str> =
        all["notifications"].as_array().unwrap().iter().map(|n| n["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["invite", "execution"]);
    assert_eq!(listed(&cluster, &owner, "?type=execution").await["notifications"].as_array().unwrap().len(), 1);
    assert_eq!(listed(&cluster, &owner, "?until=2000-01-01").await["notifications"].as_array().unwrap().len(), 0);
    let today = all["notifications"][0]["created_at"].as_str().unwrap()[..10].to_string();
    assert_eq!(
        listed(&cluster, &owner, &format!("?since={today}")).await["notifications"].as_array().unwrap().len(),
        2
    );
    for bad in ["?type=spam", "?since=yesterday", "?limit=0", "?unread=maybe"] {
        let (status, body) = cluster.get(&format!("/api/notifications{bad}"), owner.token()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }

    // Marking read: one by id (another user's id changes nothing), then all.
    let execution_id = all["notifications"][1]["id"].as_str().unwrap();
    let (status, marked) = cluster
        .post(
            "/api/notifications/read",
            owner.token(),
            json!({"ids": [execution_id, joiners["notifications"][0]["id"]]}),
        )
        .await;
    assert_eq!(
        (status, marked["marked"].as_i64(), marked["unread_count"].as_i64()),
        (StatusCode::OK, Some(1), Some(1))
    );
    assert_eq!(listed(&cluster, &owner, "?unread=true").await["notifications"][0]["type"], "invite");
    let (status, marked) = cluster.post("/api/notifications/read-all", owner.token(), json!({})).await;
    assert_eq!(
        (status, marked["marked"].as_i64(), marked["unread_count"].as_i64()),
        (StatusCode::OK, Some(1), Some(0))
    );
    let (_, count) = cluster.get("/api/notifications/unread-count", owner.token()).await;
    assert_eq!(count["unread_count"], 0);
    assert_eq!(listed(&cluster, &joiner, "").await["unread_count"], 1, "the joiner's stay unread");

    // System notices: administrators only (the first account is one).
    let (status, notice) = cluster
        .post("/api/notifications", owner.token(), json!({"user_id": joiner.user_id, "title": "Maintenance at noon"}))
        .await;
    assert_eq!((status, notice["type"].as_str()), (StatusCode::CREATED, Some("system")), "{notice}");
    let (status, body) =
        cluster.post("/api/notifications", joiner.token(), json!({"user_id": owner.user_id, "title": "Hi"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("admin_required")));
    let (status, _) = cluster.get("/api/notifications", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// Over Kafka: a message that is not an event, an event of a kind this version does not know (from
/// a newer producer) and an event without the fields its kind needs all end in
/// `dead-letter-events` with their bytes unchanged, and the consumer goes on to the next, which
/// reaches its user's stream.
#[tokio::test]
async fn poisoned_messages_end_in_dead_letters_and_the_consumer_goes_on() {
    use codesync_common::bus::EventBus;
    use codesync_common::events::{DEAD_LETTER_EVENTS, EXECUTION_EVENTS, Event, Kind, schema};
    use codesync_common::kafka::KafkaBus;
    use codesync_common::kafka::test_support::TansuBroker;
    use prost::Message as _;
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let broker = TansuBroker::start().await;
    let cluster = Cluster::one_process(&[("CODESYNC_KAFKA_BROKERS", &broker.address)]).await;
    let user = cluster.register("consumer").await;
    let mut stream = open_stream(&cluster, &user).await;
    let observer = KafkaBus::connect(&broker.address, None).await.expect("connect to the broker");
    let mut dead_letters = observer.subscribe(DEAD_LETTER_EVENTS);
    // The subscription reads from the end as of now; give it a moment to be in place.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let producer: FutureProducer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", &broker.address).create().expect("a producer");
    producer
        .send(FutureRecord::to(EXECUTION_EVENTS).key("poison").payload("this is not JSON"), Duration::from_secs(10))
        .await
        .expect("the raw message is accepted");
    // An envelope whose kind is field 1000: a kind a later version may add.
    let mut newer =
        schema::Event { id: "e-newer".into(), key: "k".into(), occurred_at_ms: 1, kind: None }.encode_to_vec();
    newer.extend_from_slice(&[0xc2, 0x3e, 0x00]);
    producer
        .send(FutureRecord::to(EXECUTION_EVENTS).key("newer").payload(&newer), Duration::from_secs(10))
        .await
        .expect("the newer message is accepted");
    let finished = |user_id: &str, language: &str| {
        let run = schema::ExecutionFinished {
            user_id: user_id.into(),
            language: language.into(),
            status: codesync_proto::execution::v1::ExecutionStatus::Ok.into(),
            wall_time_ms: 5,
            ..Default::default()
        };
        Event::new(&user.user_id, Kind::ExecutionFinished(run))
    };
    let without_user = finished("", "python");
    observer.publish(without_user.clone());
    observer.publish(finished(&user.user_id, "perl"));

    let (name, notification, _) =
        tokio::time::timeout(Duration::from_secs(60), stream.next()).await.expect("the consumer went on").unwrap();
    assert_eq!((name.as_str(), notification["title"].as_str()), ("notification", Some("Your perl run finished")));

    let mut letters = Vec::new();
    while letters.len() < 3 {
        let letter = tokio::time::timeout(Duration::from_secs(30), dead_letters.recv())
            .await
            .expect("the dead letters arrive")
            .expect("no dead letter is missed");
        // Other consumers (history, analytics) may also give up on the same messages.
        if let Kind::DeadLetter(letter) = letter.kind
            && letter.consumer == "notifications"
        {
            letters.push(letter);
        }
    }
    let came_as = |bytes: &[u8]| letters.iter().find(|letter| letter.message == bytes);
    let raw = came_as(b"this is not JSON").unwrap_or_else(|| panic!("{letters:?}"));
    assert!(raw.poisoned && raw.error.starts_with("not a CodeSync event"), "{raw:?}");
    let newer = came_as(&newer).unwrap_or_else(|| panic!("the newer kind, bytes unchanged: {letters:?}"));
    assert!(newer.error.contains("kind this version does not know"), "{newer:?}");
    let poisoned = letters.iter().find(|letter| letter.event_id == without_user.id).expect("the run without its user");
    assert_eq!(Event::decode(&poisoned.message).unwrap(), without_user);
    assert!(poisoned.error.contains("user_id") && poisoned.event_kind == "execution_finished", "{poisoned:?}");
}

/// Ten processes with Kafka between them: a run in the execution process reaches its user's open
/// stream through the notifications process, the dashboard counts it through the analytics
/// process, and the history process writes it into the room's log.
#[tokio::test]
async fn over_kafka_a_run_is_notified_counted_and_logged_by_other_processes() {
    use codesync_common::kafka::test_support::TansuBroker;

    let broker = TansuBroker::start().await;
    let cluster = Cluster::ten_processes(&[("CODESYNC_KAFKA_BROKERS", &broker.address)]).await;
    let admin = cluster.register("spreadadmin").await;
    let mut stream = open_stream(&cluster, &admin).await;
    let (_, room) = cluster.post("/api/rooms", admin.token(), json!({"name": "Spread", "is_public": false})).await;
    let room_id = room["id"].as_str().unwrap();
    let (_, file) = cluster
        .post(
            &format!("/api/rooms/{room_id}/files"),
            admin.token(),
            json!({"filename": "main.py", "content": "print(40 + 2)"}),
        )
        .await;
    let (status, result) = cluster.post("/api/executions", admin.token(), json!({"file_id": file["id"]})).await;
    if status == StatusCode::SERVICE_UNAVAILABLE {
        assert_ne!(std::env::var("CODESYNC_TEST_REQUIRE_SANDBOX").as_deref(), Ok("1"), "{result}");
        return;
    }
    assert_eq!((status, result["stdout"].as_str()), (StatusCode::OK, Some("42\n")), "{result}");

    // The consumer groups join within seconds of the processes' start.
    let (name, notification, _) = tokio::time::timeout(Duration::from_secs(60), stream.next())
        .await
        .expect("the notification crosses Kafka")
        .unwrap();
    assert_eq!((name.as_str(), notification["title"].as_str()), ("notification", Some("Your python run finished")));
    assert_eq!(notification["metadata"]["room_id"].as_str(), Some(room_id));

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, overview) = cluster.get("/api/analytics/overview", admin.token()).await;
        let (_, log) = cluster.get(&format!("/api/history/room/{room_id}/events"), admin.token()).await;
        let logged = log["events"]
            .as_array()
            .is_some_and(|events| events.iter().any(|event| event["type"] == "execution_finished"));
        if overview["executions"] == 1 && overview["rooms"] == 1 && logged {
            break;
        }
        assert!(Instant::now() < deadline, "analytics {overview} or the room's log {log} never had the run");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
