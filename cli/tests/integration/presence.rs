//! `/ws/rooms/{room_id}` on the real binary: presence, typing, chat with
//! history replay, refusals and bad messages.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, Message};

use crate::harness::{Cluster, Session};

pub(crate) type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn join(cluster: &Cluster, room_id: &str, session: &Session) -> Result<Socket, u16> {
    let url = cluster.ws_url(&format!("/ws/rooms/{room_id}?token={}", session.access_token));
    match tokio_tungstenite::connect_async(url).await {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(error) => panic!("cannot connect: {error}"),
    }
}

async fn send(socket: &mut Socket, message: Value) {
    socket.send(Message::Text(message.to_string().into())).await.expect("send");
}

/// The next JSON message of type `kind`, skipping others.
pub(crate) async fn next_of(socket: &mut Socket, kind: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .unwrap_or_else(|_| panic!("no {kind} message within 10 s"))
            .expect("the socket is open")
            .expect("a message");
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).expect("JSON from the server");
            if value["type"] == kind {
                return value;
            }
        }
    }
}

/// The next presence snapshot that satisfies `condition`.
async fn presence_until(socket: &mut Socket, condition: impl Fn(&Value) -> bool) -> Value {
    loop {
        let presence = next_of(socket, "presence").await;
        if condition(&presence["users"]) {
            return presence;
        }
    }
}

#[tokio::test]
async fn presence_typing_and_chat_reach_the_room() {
    let cluster = Cluster::one_process(&[]).await;
    let owner = cluster.register("owner").await;
    let editor = cluster.register("editor").await;
    let outsider = cluster.register("outsider").await;
    let (_, room) = cluster.post("/api/rooms", owner.token(), json!({"name": "Chat", "is_public": false})).await;
    let room_id = room["id"].as_str().unwrap().to_string();
    let (status, _) =
        cluster.post("/api/rooms/join", editor.token(), json!({"invite_code": room["invite_code"].clone()})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, file) =
        cluster.post(&format!("/api/rooms/{room_id}/files"), owner.token(), json!({"filename": "a.rs"})).await;
    let file_id = file["id"].as_str().unwrap().to_string();

    assert_eq!(join(&cluster, &room_id, &outsider).await.err(), Some(404), "private rooms do not exist for outsiders");
    let url = cluster.ws_url(&format!("/ws/rooms/{room_id}"));
    assert!(
        matches!(tokio_tungstenite::connect_async(url).await, Err(tungstenite::Error::Http(r)) if r.status() == 401)
    );

    let mut alice = join(&cluster, &room_id, &owner).await.unwrap();
    assert_eq!(next_of(&mut alice, "history").await["messages"], json!([]));
    let mut bob = join(&cluster, &room_id, &editor).await.unwrap();
    presence_until(&mut alice, |users| users.as_array().unwrap().len() == 2).await;

    send(&mut bob, json!({"type": "focus", "file_id": file_id})).await;
    let presence = presence_until(&mut alice, |users| {
        users.as_array().unwrap().iter().any(|user| user["username"] == "editor" && user["file_id"] == file_id.as_str())
    })
    .await;
    let bob_entry = presence["users"].as_array().unwrap().iter().find(|user| user["username"] == "editor").unwrap();
    assert!(bob_entry["color"].as_str().unwrap().starts_with('#'));

    send(&mut bob, json!({"type": "typing", "typing": true})).await;
    let typing = next_of(&mut alice, "typing").await;
    assert_eq!(typing["username"], "editor");
    assert_eq!(typing["typing"], true);
    assert_eq!(typing["file_id"], file_id.as_str());

    send(&mut alice, json!({"type": "chat", "text": "  hello bob  "})).await;
    let chat = next_of(&mut bob, "chat").await;
    assert_eq!(chat["message"]["text"], "hello bob");
    assert_eq!(chat["message"]["username"], "owner");
    // The sender gets its own message back, stored: that is its confirmation.
    assert_eq!(next_of(&mut alice, "chat").await["message"]["text"], "hello bob");
    send(&mut bob, json!({"type": "chat", "text": "hi alice ✋"})).await;
    assert_eq!(next_of(&mut alice, "chat").await["message"]["text"], "hi alice ✋");

    // Refused and malformed messages are answered; the session stays.
    send(&mut alice, json!({"type": "chat", "text": "x".repeat(2001)})).await;
    assert_eq!(next_of(&mut alice, "error").await["code"], "message_too_long");
    alice.send(Message::Text("{not json".into())).await.unwrap();
    assert_eq!(next_of(&mut alice, "error").await["code"], "malformed_message");
    send(&mut alice, json!({"type": "teleport"})).await;
    assert_eq!(next_of(&mut alice, "error").await["code"], "malformed_message");
    send(&mut alice, json!({"type": "ping"})).await;
    next_of(&mut alice, "pong").await;

    // The typing indicator goes out by itself when not renewed.
    let stopped = next_of(&mut alice, "typing").await;
    assert_eq!(stopped["typing"], false);

    // Leaving updates everyone's list; rejoining replays the chat, oldest first.
    bob.close(None).await.unwrap();
    presence_until(&mut alice, |users| users.as_array().unwrap().len() == 1).await;
    let mut bob = join(&cluster, &room_id, &editor).await.unwrap();
    let history = next_of(&mut bob, "history").await;
    let texts: Vec<&str> =
        history["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["hello bob", "hi alice ✋"]);

    // Binary frames are not room messages.
    bob.send(Message::Binary(vec![1, 2, 3].into())).await.unwrap();
    loop {
        match bob.next().await {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(u16::from(frame.code), 1003);
                break;
            }
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// A member removed from the room loses their room socket at once (1008), as they lose their
/// file sockets, and everyone else sees them leave.
#[tokio::test]
async fn a_removed_member_is_disconnected_from_the_room_at_once() {
    let cluster = Cluster::one_process(&[]).await;
    let owner = cluster.register("owner").await;
    let member = cluster.register("member").await;
    let (_, room) = cluster.post("/api/rooms", owner.token(), json!({"name": "Team", "is_public": false})).await;
    let room_id = room["id"].as_str().unwrap().to_string();
    let (status, _) =
        cluster.post("/api/rooms/join", member.token(), json!({"invite_code": room["invite_code"].clone()})).await;
    assert_eq!(status, StatusCode::OK);

    let mut alice = join(&cluster, &room_id, &owner).await.unwrap();
    let mut bob = join(&cluster, &room_id, &member).await.unwrap();
    presence_until(&mut alice, |users| users.as_array().unwrap().len() == 2).await;

    let member_path = format!("/api/rooms/{room_id}/members/{}", member.user_id);
    let (status, body) = cluster.request(reqwest::Method::DELETE, &member_path, owner.token(), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, bob.next()).await.expect("closed within 10 s") {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(u16::from(frame.code), 1008);
                assert_eq!(frame.reason.as_str(), "you were removed from the room");
                break;
            }
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
    presence_until(&mut alice, |users| users.as_array().unwrap().len() == 1).await;
    assert_eq!(join(&cluster, &room_id, &member).await.err(), Some(404), "and cannot come back");
}

/// A client that goes silent without closing (its laptop asleep) is pinged, then dropped, and
/// leaves the room's presence; a client that answers pings stays.
#[tokio::test]
async fn a_silent_client_is_pinged_then_dropped_and_leaves_presence() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let cluster = Cluster::one_process(&[("CODESYNC_WS_IDLE_TIMEOUT_SECS", "2")]).await;
    let owner = cluster.register("owner").await;
    let member = cluster.register("member").await;
    let (_, room) = cluster.post("/api/rooms", owner.token(), json!({"name": "Sleepy", "is_public": false})).await;
    let room_id = room["id"].as_str().unwrap().to_string();
    let (status, _) =
        cluster.post("/api/rooms/join", member.token(), json!({"invite_code": room["invite_code"].clone()})).await;
    assert_eq!(status, StatusCode::OK);
    let mut alice = join(&cluster, &room_id, &owner).await.unwrap();

    // Bob completes the handshake on a raw connection, then never answers anything.
    let address = cluster.base_url.trim_start_matches("http://").to_string();
    let mut bob = tokio::net::TcpStream::connect(&address).await.unwrap();
    let handshake = format!(
        "GET /ws/rooms/{room_id}?token={} HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        member.access_token
    );
    bob.write_all(handshake.as_bytes()).await.unwrap();
    presence_until(&mut alice, |users| users.as_array().unwrap().len() == 2).await;

    // Meanwhile Alice's client keeps reading, and so answers the server's pings, as browsers do.
    let started = tokio::time::Instant::now();
    let mut received = Vec::new();
    let read_all = tokio::time::timeout(Duration::from_secs(8), bob.read_to_end(&mut received));
    let (bob_dropped, _) =
        tokio::join!(read_all, presence_until(&mut alice, |users| users.as_array().unwrap().len() == 1));
    bob_dropped.expect("the silent client is dropped").unwrap();
    let elapsed = started.elapsed();
    assert!(received.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&received));
    assert!(received.windows(2).any(|pair| pair == [0x89, 0x00]), "an empty ping was sent before giving up");
    assert!(elapsed >= Duration::from_millis(1500), "not dropped before the timeout: {elapsed:?}");

    // Alice, who answered, is still connected well past the timeout.
    send(&mut alice, json!({"type": "ping"})).await;
    next_of(&mut alice, "pong").await;
}
