//! Real-time collaboration through `/ws/files/{id}` on the real binary:
//! convergence under random concurrent edits, disconnects and offline edits;
//! durability across `kill -9`; viewers, non-members and hostile frames.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::json;

use codesync_common::kafka::test_support::TansuBroker;

use crate::harness::{Cluster, PostgresDatabase, Session, signed};
use crate::yjs_client::{YjsClient, eventually};

const PATIENCE: Duration = Duration::from_secs(20);

/// A room with an owner, an editor and a viewer, and one file.
struct Room {
    room_id: String,
    owner: Session,
    editor: Session,
    viewer: Session,
    file_id: String,
}

async fn room_with_file(cluster: &Cluster, content: &str) -> Room {
    room_with_file_of(cluster, content, "").await
}

/// A room of people whose names end in `suffix`: several rooms in one cluster.
async fn room_with_file_of(cluster: &Cluster, content: &str, suffix: &str) -> Room {
    let owner = cluster.register(&format!("owner{suffix}")).await;
    let (status, room) = cluster.post("/api/rooms", owner.token(), json!({"name": "Collab", "is_public": false})).await;
    assert_eq!(status, StatusCode::CREATED, "{room}");
    let room_id = room["id"].as_str().unwrap().to_string();
    let invite_code = room["invite_code"].as_str().unwrap().to_string();
    let editor = cluster.register(&format!("editor{suffix}")).await;
    let viewer = cluster.register(&format!("viewer{suffix}")).await;
    for member in [&editor, &viewer] {
        let (status, body) = cluster.post("/api/rooms/join", member.token(), json!({"invite_code": invite_code})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = cluster
        .patch(&format!("/api/rooms/{room_id}/members/{}", viewer.user_id), owner.token(), json!({"role": "viewer"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, file) = cluster
        .post(&format!("/api/rooms/{room_id}/files"), owner.token(), json!({"filename": "main.py", "content": content}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    Room { room_id, owner, editor, viewer, file_id: file["id"].as_str().unwrap().to_string() }
}

fn file_url(cluster: &Cluster, file_id: &str, session: &Session, extra: &str) -> String {
    cluster.ws_url(&format!("/ws/files/{file_id}?token={}{extra}", session.access_token))
}

async fn connected(url: String) -> YjsClient {
    let mut client = YjsClient::new(url);
    client.connect().await.expect("connect");
    eventually("the first sync completes", PATIENCE, || client.received().synced).await;
    client
}

async fn server_text(cluster: &Cluster, room: &Room) -> String {
    let (status, file) = cluster.get(&format!("/api/files/{}", room.file_id), room.owner.token()).await;
    assert_eq!(status, StatusCode::OK, "{file}");
    file["content"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn two_clients_edit_concurrently_and_converge_with_awareness() {
    let cluster = Cluster::one_process(&[]).await;
    two_clients_converge_with_awareness(&cluster).await;
}

#[tokio::test]
async fn ten_process_topology_collaborates_over_real_grpc() {
    let cluster = Cluster::ten_processes(&[]).await;
    two_clients_converge_with_awareness(&cluster).await;
}

async fn two_clients_converge_with_awareness(cluster: &Cluster) {
    let room = room_with_file(cluster, "print('hi')\n").await;
    let mut alice = connected(file_url(cluster, &room.file_id, &room.owner, "")).await;
    let mut bob = connected(file_url(cluster, &room.file_id, &room.editor, "")).await;
    assert_eq!(alice.content(), "print('hi')\n", "the document is seeded from the file's content");

    alice.insert(0, "# alice\n");
    bob.insert(bob.len(), "# bob\n");
    eventually("both see both edits", PATIENCE, || {
        alice.content() == bob.content() && alice.content().contains("alice") && bob.content().contains("bob")
    })
    .await;
    assert_eq!(alice.content(), "# alice\nprint('hi')\n# bob\n");
    assert_eq!(server_text(cluster, &room).await, alice.content(), "REST reads the live document");

    // Awareness reaches the other client with the server-enforced identity.
    alice.set_awareness(
        alice.doc.client_id().get(),
        1,
        r##"{"user":{"id":"forged","name":"forged","color":"#ff0000"},"cursor":{"anchor":3,"head":3}}"##,
    );
    let alice_client_id = alice.doc.client_id().get();
    eventually("bob sees alice's cursor", PATIENCE, || {
        bob.received().awareness.get(&alice_client_id).is_some_and(Option::is_some)
    })
    .await;
    let state = bob.received().awareness[&alice_client_id].clone().unwrap();
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["user"]["id"], room.owner.user_id.as_str());
    assert_eq!(state["user"]["name"], "owner");
    assert_eq!(state["user"]["color"], "#ff0000");
    assert_eq!(state["cursor"]["anchor"], 3);

    // Leaving clears the state for the others.
    alice.disconnect().await;
    eventually("alice's awareness is cleared", PATIENCE, || {
        bob.received().awareness.get(&alice_client_id).is_some_and(Option::is_none)
    })
    .await;

    // A REST write is a minimal edit that a connected client sees at once.
    let (status, body) = cluster
        .patch(
            &format!("/api/files/{}", room.file_id),
            room.owner.token(),
            json!({"content": "# alice\nprint('bye')\n# bob\n"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    eventually("bob sees the REST edit", PATIENCE, || bob.content() == "# alice\nprint('bye')\n# bob\n").await;
}

/// A message far larger than one frame crosses every hop in pieces (gRPC
/// pieces between the gateway and the documents service, WebSocket fragments
/// toward the client) and arrives whole, both as a relayed update and as a
/// newcomer's first sync.
#[tokio::test]
async fn large_messages_arrive_whole_through_every_hop() {
    let cluster = Cluster::one_process(&[]).await;
    let room = room_with_file(&cluster, "").await;
    let mut alice = connected(file_url(&cluster, &room.file_id, &room.owner, "")).await;
    let bob = connected(file_url(&cluster, &room.file_id, &room.editor, "")).await;
    let pasted: String = (0..300_000).map(|index| char::from(b'a' + (index % 26) as u8)).collect();
    alice.insert(0, &pasted);
    eventually("bob receives the 300 KB paste", PATIENCE, || bob.content() == pasted).await;
    let carol = connected(file_url(&cluster, &room.file_id, &room.viewer, "")).await;
    assert_eq!(carol.content(), pasted, "a newcomer's first sync carries the whole document");
    assert_eq!(server_text(&cluster, &room).await, pasted);
}

/// How a file goes: deleted over REST, over gRPC (no gateway involved), or with its room.
#[derive(Debug, Clone, Copy)]
enum Deletion {
    FileOverRest,
    FileOverGrpc,
    RoomOverRest,
}

/// Deleting a file, however it is deleted, closes its editors' connections and removes its
/// document (the log and the snapshots), on PostgreSQL: the documents service does it when it
/// hears of the deletion (`file_deleted`, `room_deleted`), so a direct gRPC caller gets what a
/// REST caller gets. A PATCH of the content over gRPC reaches the editors as over REST.
#[tokio::test]
async fn deleting_a_file_closes_its_editors_and_removes_its_document() {
    let database = PostgresDatabase::create();
    let cluster = Cluster::one_process(&[("CODESYNC_DATABASE_URL", &database.url())]).await;
    for deletion in [Deletion::FileOverRest, Deletion::FileOverGrpc, Deletion::RoomOverRest] {
        deleting_removes_the_document(&cluster, &database, deletion).await;
    }
}

/// The same with every service in a process of its own, the deletions carried by Kafka to the
/// documents service's consumer group.
#[tokio::test]
async fn deleting_a_file_removes_its_document_across_processes_over_kafka() {
    let broker = TansuBroker::start().await;
    let database = PostgresDatabase::create();
    let cluster = Cluster::ten_processes(&[
        ("CODESYNC_DATABASE_URL", &database.url()),
        ("CODESYNC_KAFKA_BROKERS", &broker.address),
    ])
    .await;
    for deletion in [Deletion::FileOverGrpc, Deletion::RoomOverRest] {
        deleting_removes_the_document(&cluster, &database, deletion).await;
    }
}

async fn deleting_removes_the_document(cluster: &Cluster, database: &PostgresDatabase, deletion: Deletion) {
    use codesync_proto::rooms::v1::rooms_service_client::RoomsServiceClient;
    use codesync_proto::rooms::v1::{DeleteFileRequest, UpdateFileRequest};

    let suffix = format!("{}", deletion as u8);
    let room = room_with_file_of(cluster, "start\n", &suffix).await;
    let mut alice = connected(file_url(cluster, &room.file_id, &room.owner, "&ack=1")).await;
    let bob = connected(file_url(cluster, &room.file_id, &room.editor, "")).await;
    alice.insert(0, "edited ");
    eventually("the edit is stored", PATIENCE, || alice.received().saved >= 1).await;
    let stored_rows = |file_id: &str| {
        database.query_one(&format!(
            "SELECT (SELECT count(*) FROM document_updates WHERE file_id = '{file_id}') + \
                    (SELECT count(*) FROM document_snapshots WHERE file_id = '{file_id}')"
        ))
    };
    assert_ne!(stored_rows(&room.file_id), "0");
    let mut rooms = RoomsServiceClient::new(cluster.grpc_channel("rooms").await);

    // New content over gRPC is a minimal edit of the live document, as over REST.
    let update =
        UpdateFileRequest { file_id: room.file_id.clone(), filename: None, content: Some("over grpc\n".into()) };
    let file = rooms.update_file(signed(&room.owner, update)).await.expect("update over gRPC").into_inner();
    assert_eq!(file.content.as_deref(), Some("over grpc\n"), "{deletion:?}");
    eventually("bob sees the gRPC update", PATIENCE, || bob.content() == "over grpc\n").await;

    match deletion {
        Deletion::FileOverRest => {
            let path = format!("/api/files/{}", room.file_id);
            let (status, body) = cluster.request(reqwest::Method::DELETE, &path, room.owner.token(), None).await;
            assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        }
        Deletion::FileOverGrpc => {
            let delete = DeleteFileRequest { file_id: room.file_id.clone() };
            rooms.delete_file(signed(&room.editor, delete)).await.expect("an editor deletes the file over gRPC");
        }
        Deletion::RoomOverRest => {
            let path = format!("/api/rooms/{}", room.room_id);
            let (status, body) = cluster.request(reqwest::Method::DELETE, &path, room.owner.token(), None).await;
            assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        }
    }
    eventually("alice's connection is closed", PATIENCE, || alice.received().close.is_some()).await;
    assert_eq!(alice.received().close.unwrap().0, 4404, "closed because the file was deleted ({deletion:?})");
    eventually("the document's rows are gone", PATIENCE, || stored_rows(&room.file_id) == "0").await;
    let (status, _) = cluster.get(&format!("/api/files/{}", room.file_id), room.owner.token()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A role change or a removal applies to the member's open connection at
/// once, not at its next connect.
#[tokio::test]
async fn role_changes_and_removals_reach_open_connections() {
    let cluster = Cluster::one_process(&[]).await;
    role_changes_and_removals_reach(&cluster).await;
}

/// The same across processes: rooms and documents in processes of their own,
/// the room events carried by a Kafka-compatible broker.
#[tokio::test]
async fn role_changes_and_removals_cross_processes_over_kafka() {
    let broker = TansuBroker::start().await;
    let cluster = Cluster::ten_processes(&[("CODESYNC_KAFKA_BROKERS", &broker.address)]).await;
    role_changes_and_removals_reach(&cluster).await;
}

async fn role_changes_and_removals_reach(cluster: &Cluster) {
    let room = room_with_file(cluster, "text\n").await;
    let alice = connected(file_url(cluster, &room.file_id, &room.owner, "")).await;
    let mut bob = connected(file_url(cluster, &room.file_id, &room.editor, "")).await;
    bob.insert(0, "bob was here\n");
    eventually("alice sees bob's edit", PATIENCE, || alice.content().contains("bob was here")).await;

    let member_path = format!("/api/rooms/{}/members/{}", room.room_id, room.editor.user_id);
    let (status, body) = cluster.patch(&member_path, room.owner.token(), json!({"role": "viewer"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The change travels as a room event; keep typing until it lands.
    let started = std::time::Instant::now();
    while bob.received().permission_denied.is_empty() {
        assert!(started.elapsed() < PATIENCE, "bob's writes were never refused after the demotion");
        bob.insert(0, "x");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(bob.is_connected(), "a demoted member keeps reading");
    let seen_by_alice = alice.content();
    bob.insert(0, "refused\n");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(alice.content(), seen_by_alice, "nothing a viewer types reaches anyone");

    let (status, body) = cluster.request(reqwest::Method::DELETE, &member_path, room.owner.token(), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    eventually("bob's connection is closed", PATIENCE, || bob.received().close.is_some()).await;
    assert_eq!(bob.received().close.unwrap().0, 1008, "closed by policy: removed from the room");
}

#[tokio::test]
async fn acknowledgements_are_opt_in_and_count_durable_updates() {
    let cluster = Cluster::one_process(&[]).await;
    let room = room_with_file(&cluster, "").await;
    let mut acked = connected(file_url(&cluster, &room.file_id, &room.owner, "&ack=1")).await;
    let mut stock = connected(file_url(&cluster, &room.file_id, &room.editor, "")).await;
    for round in 0..25 {
        acked.insert(acked.len(), &format!("{round},"));
        stock.insert(0, "s");
    }
    // The count covers sync step 2 messages too: the client's answer to the server's step 1 is one.
    let sent = acked.updates_sent + 1;
    eventually("every update of the acked client is acknowledged", PATIENCE, || acked.received().saved >= sent).await;
    assert_eq!(acked.received().saved, sent);
    // "0," to "24," is 65 characters, and 25 times "s".
    eventually("both converge", PATIENCE, || acked.content() == stock.content() && stock.content().len() == 90).await;
    assert_eq!(stock.received().saved, 0, "clients that did not ask get no acknowledgement");
}

#[tokio::test]
async fn viewers_receive_updates_but_their_writes_are_refused() {
    let cluster = Cluster::one_process(&[]).await;
    let room = room_with_file(&cluster, "shared\n").await;
    let mut editor = connected(file_url(&cluster, &room.file_id, &room.editor, "")).await;
    let mut viewer = connected(file_url(&cluster, &room.file_id, &room.viewer, "")).await;

    editor.insert(0, "live ");
    eventually("the viewer sees the editor's edit", PATIENCE, || viewer.content() == "live shared\n").await;

    viewer.insert(0, "vandal ");
    eventually("the viewer is told", PATIENCE, || !viewer.received().permission_denied.is_empty()).await;
    assert!(viewer.received().permission_denied[0].contains("viewers cannot edit"));
    editor.insert(editor.len(), "!");
    eventually("the editor's later edit arrives", PATIENCE, || viewer.content().ends_with('!')).await;
    assert!(!editor.content().contains("vandal"), "the viewer's edit never reached the editor");
    assert_eq!(server_text(&cluster, &room).await, "live shared\n!");
    assert!(viewer.is_connected(), "a refused write does not cost the viewer its connection");
}

#[tokio::test]
async fn strangers_and_bad_tokens_are_refused_the_connection() {
    let cluster = Cluster::one_process(&[]).await;
    let room = room_with_file(&cluster, "secret\n").await;
    let outsider = cluster.register("outsider").await;

    let mut client = YjsClient::new(file_url(&cluster, &room.file_id, &outsider, ""));
    assert_eq!(client.connect().await, Err(404), "a private room's file does not exist for outsiders");
    let mut client = YjsClient::new(cluster.ws_url(&format!("/ws/files/{}", room.file_id)));
    assert_eq!(client.connect().await, Err(401));
    let mut client = YjsClient::new(cluster.ws_url(&format!("/ws/files/{}?token=not-a-token", room.file_id)));
    assert_eq!(client.connect().await, Err(401));
    let mut client = YjsClient::new(file_url(&cluster, "no-such-file", &room.owner, ""));
    assert_eq!(client.connect().await, Err(404));

    // A public room's files are readable over REST, but collaborating needs membership.
    let (status, public_room) =
        cluster.post("/api/rooms", room.owner.token(), json!({"name": "Open", "is_public": true})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, file) = cluster
        .post(
            &format!("/api/rooms/{}/files", public_room["id"].as_str().unwrap()),
            room.owner.token(),
            json!({"filename": "a.py"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut client = YjsClient::new(file_url(&cluster, file["id"].as_str().unwrap(), &outsider, ""));
    assert_eq!(client.connect().await, Err(403));
}

#[tokio::test]
async fn hostile_frames_close_only_the_sender() {
    let cluster = Cluster::one_process(&[("CODESYNC_DOCUMENTS_MAX_MESSAGE_BYTES", "65536")]).await;
    let room = room_with_file(&cluster, "").await;
    let mut alice = connected(file_url(&cluster, &room.file_id, &room.owner, "")).await;
    let mut bob = connected(file_url(&cluster, &room.file_id, &room.editor, "")).await;

    let hostile_frames: Vec<(Vec<u8>, u16)> = vec![
        (vec![0, 2, 5, 1, 2, 3, 4, 5], 1008), // an update that is not a Yjs update
        (vec![0, 2, 0xff, 0xff, 0xff, 0xff, 0x0f], 1008), // a length far beyond the frame
        (vec![0, 0, 3, 0xff, 0xff, 0xff], 1008), // a state vector that is not one
        (vec![42], 1008),                     // an unknown message type
        (vec![1, 5, 1, 1, 1, 9, 0x7b], 1008), // awareness whose string is cut short
        (vec![0, 2, 0], 1008),                // an empty update body
        (vec![0; 70_000], 1009),              // over the message size limit
    ];
    for (frame, expected_close) in hostile_frames {
        let mallory = connected(file_url(&cluster, &room.file_id, &room.editor, "")).await;
        mallory.send_raw(frame.clone());
        eventually("mallory is disconnected", PATIENCE, || mallory.received().close.is_some()).await;
        let (code, reason) = mallory.received().close.unwrap();
        assert_eq!(code, expected_close, "frame {:?}...: closed with {code} {reason}", &frame[..frame.len().min(8)]);
        alice.insert(0, "a");
        bob.insert(0, "b");
        eventually("alice and bob still converge", PATIENCE, || {
            alice.content() == bob.content() && alice.len() as usize == bob.content().len()
        })
        .await;
    }
    let mallory = connected(file_url(&cluster, &room.file_id, &room.editor, "")).await;
    mallory.send_text_frame("{\"json\": true}");
    eventually("a text frame closes the socket", PATIENCE, || mallory.received().close.is_some()).await;
    assert_eq!(mallory.received().close.unwrap().0, 1003);
    assert!(alice.is_connected() && bob.is_connected());
    assert_eq!(server_text(&cluster, &room).await, alice.content());
}

/// Eight clients make random concurrent inserts and deletes with random
/// delays; some go offline, edit, and come back. Everyone converges.
#[tokio::test]
async fn eight_clients_with_random_edits_disconnects_and_offline_edits_converge() {
    let cluster = Cluster::one_process(&[]).await;
    let room = room_with_file(&cluster, "start\n").await;
    for seed in [7_u64, 1_234, 99_999] {
        let mut rng = StdRng::seed_from_u64(seed);
        let sessions = [&room.owner, &room.editor];
        let mut clients = Vec::new();
        for index in 0..8 {
            clients.push(connected(file_url(&cluster, &room.file_id, sessions[index % 2], "")).await);
        }
        for _step in 0..300 {
            let index = rng.random_range(0..clients.len());
            let client = &mut clients[index];
            match rng.random_range(0..100) {
                0..55 => {
                    let position = rng.random_range(0..=client.len());
                    let chunk: String = (0..rng.random_range(1..6)).map(|_| rng.random_range('a'..='z')).collect();
                    let chunk = if rng.random_bool(0.05) { format!("{chunk}é😀") } else { chunk };
                    client.insert(position, &chunk);
                }
                55..85 => {
                    let length = client.len();
                    if length > 0 {
                        let position = rng.random_range(0..length);
                        client.delete(position, rng.random_range(1..4));
                    }
                }
                85..93 => {
                    if client.is_connected() {
                        client.disconnect().await;
                    } else {
                        client.connect().await.expect("reconnect");
                    }
                }
                _ => tokio::time::sleep(Duration::from_millis(rng.random_range(0..15))).await,
            }
            if rng.random_bool(0.1) {
                tokio::task::yield_now().await;
            }
        }
        for client in &mut clients {
            if !client.is_connected() {
                client.connect().await.expect("reconnect for the final sync");
            }
        }
        eventually(&format!("eight clients converge (seed {seed})"), Duration::from_secs(60), || {
            let first = clients[0].content();
            clients.iter().all(|client| client.content() == first)
        })
        .await;
        let expected = clients[0].content();
        assert_eq!(server_text(&cluster, &room).await, expected, "seed {seed}");
        for client in &mut clients {
            client.disconnect().await;
        }
    }
}

/// Over many cycles: an edit seen by a second client survives `kill -9` of
/// the server and is loaded by a fresh client after the restart.
#[tokio::test]
async fn edits_seen_by_others_survive_kill_9() {
    let mut cluster = Cluster::one_process(&[]).await;
    let room = room_with_file(&cluster, "").await;
    for cycle in 0..20 {
        let mut writer = connected(file_url(&cluster, &room.file_id, &room.owner, "")).await;
        let reader = connected(file_url(&cluster, &room.file_id, &room.editor, "")).await;
        let line = format!("line {cycle}\n");
        writer.insert(writer.len(), &line);
        eventually("the second client sees the edit", PATIENCE, || reader.content().ends_with(&line)).await;
        let seen = reader.content();
        cluster.kill_and_restart().await;
        let fresh = connected(file_url(&cluster, &room.file_id, &room.editor, "")).await;
        assert_eq!(fresh.content(), seen, "cycle {cycle}: the edit survived kill -9");
        drop((writer, reader, fresh));
    }
}

/// A client that stops reading is cut off once what is queued for it passes
/// the limit, while the others carry on at full speed.
#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_and_holds_no_one_back() {
    use futures::StreamExt;

    let cluster = Cluster::one_process(&[
        ("CODESYNC_DOCUMENTS_CONNECTION_QUEUE_BYTES", "4194304"),
        ("CODESYNC_DOCUMENTS_MAX_DOCUMENT_BYTES", "268435456"),
    ])
    .await;
    let room = room_with_file(&cluster, "").await;
    let (mut stalled, _) =
        tokio_tungstenite::connect_async(file_url(&cluster, &room.file_id, &room.viewer, "")).await.expect("connect");
    let mut writer = connected(file_url(&cluster, &room.file_id, &room.owner, "")).await;
    let reader = connected(file_url(&cluster, &room.file_id, &room.editor, "")).await;

    // 60 MB of edits, a megabyte at a time: far more than the socket buffers
    // toward the stalled client and its 4 MiB queue can hold, while the
    // reading client is never more than a megabyte behind.
    let chunk = "x".repeat(10_000);
    for round in 1..=60 {
        for _ in 0..100 {
            writer.insert(0, &chunk);
        }
        eventually("the reading client keeps up", PATIENCE, || reader.len() == round * 1_000_000).await;
    }
    assert!(reader.is_connected() && writer.is_connected());

    // The stalled client finds what was buffered for it, then the end of its connection.
    let mut received_bytes = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match tokio::time::timeout_at(deadline, stalled.next()).await.expect("the stalled client is disconnected") {
            Some(Ok(message)) if !message.is_close() => received_bytes += message.len(),
            _ => break,
        }
    }
    assert!(received_bytes < 40_000_000, "it was cut off early, after {received_bytes} bytes");
}
