//! Regression tests of the second attack campaign's resource findings (issue 27, "Nobody
//! exhausts it"): what a caller can make a process hold, and for how long.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::StatusCode;
use serde_json::json;
use tokio::sync::Mutex;

use crate::harness::{Cluster, Session, relaxed_limits, signed};

/// Resident memory of a process, in bytes.
pub fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the process's status");
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).expect("VmRSS");
    let kib: u64 = line.split_whitespace().nth(1).and_then(|value| value.parse().ok()).expect("a number");
    kib * 1024
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// How one raw gRPC call of [`hold_open`] stands.
#[derive(Debug, Clone, Default)]
struct Call {
    sent: usize,
    /// `grpc-status` and `x-codesync-error-code` once the server answered.
    answer: Option<(String, String)>,
    /// The server stopped taking bytes (flow control) or the whole message but its last byte
    /// went out.
    stalled: bool,
}

/// `connections` HTTP/2 connections to `address`, each with `calls` calls to `path` declaring a
/// message of `declared` bytes and sending all of it but the last byte, as fast as the server
/// takes it, and then holding the call open. Returns each call's state, updated as it goes,
/// and the connections (dropping them ends the calls).
async fn hold_open(
    address: &str,
    path: &str,
    token: Option<&str>,
    connections: usize,
    calls: usize,
    declared: usize,
) -> (Arc<Mutex<Vec<Call>>>, Vec<tokio::task::JoinHandle<()>>) {
    let states = Arc::new(Mutex::new(vec![Call::default(); connections * calls]));
    let mut tasks = Vec::new();
    for connection in 0..connections {
        let tcp = tokio::net::TcpStream::connect(address).await.expect("connect");
        let (client, driver) = h2::client::Builder::new()
            .initial_window_size(16 * 1024 * 1024)
            .handshake::<_, Bytes>(tcp)
            .await
            .expect("HTTP/2 handshake");
        tasks.push(tokio::spawn(async move {
            let _ = driver.await;
        }));
        for call in 0..calls {
            let index = connection * calls + call;
            let states = states.clone();
            let mut client = client.clone();
            let mut request = http::Request::builder()
                .method("POST")
                .uri(format!("http://{address}{path}"))
                .header("content-type", "application/grpc")
                .header("te", "trailers");
            if let Some(token) = token {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            let request = request.body(()).expect("request");
            tasks.push(tokio::spawn(async move {
                let Ok(ready) = client.ready().await else { return };
                client = ready;
                let Ok((response, mut send)) = client.send_request(request, false) else { return };
                let sending = async {
                    let mut prefix = vec![0u8];
                    prefix.extend_from_slice(&(declared as u32).to_be_bytes());
                    let mut to_send = vec![Bytes::from(prefix)];
                    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
                    let mut left = declared - 1;
                    while left > 0 {
                        let size = left.min(chunk.len());
                        to_send.push(chunk.slice(..size));
                        left -= size;
                    }
                    for piece in to_send {
                        let mut piece = piece;
                        while !piece.is_empty() {
                            send.reserve_capacity(piece.len());
                            let granted = tokio::time::timeout(
                                Duration::from_secs(2),
                                futures::future::poll_fn(|context| send.poll_capacity(context)),
                            )
                            .await;
                            let capacity = match granted {
                                Ok(Some(Ok(capacity))) => capacity,
                                // Refused or reset: the answer tells why.
                                Ok(_) => return,
                                // The server takes no more: it is not reading this call.
                                Err(_) => {
                                    states.lock().await[index].stalled = true;
                                    std::future::pending::<()>().await;
                                    return;
                                }
                            };
                            let part = piece.split_to(capacity.min(piece.len()));
                            let length = part.len();
                            if send.send_data(part, false).is_err() {
                                return;
                            }
                            states.lock().await[index].sent += length;
                        }
                    }
                    states.lock().await[index].stalled = true;
                    // Held open: the last byte never comes.
                    std::future::pending::<()>().await;
                };
                let answered = async {
                    let Ok(response) = response.await else { return };
                    let header = |name: &str| {
                        response.headers().get(name).and_then(|value| value.to_str().ok()).unwrap_or("").to_string()
                    };
                    let mut answer = (header("grpc-status"), header("x-codesync-error-code"));
                    if answer.0.is_empty() {
                        let mut body = response.into_body();
                        while let Some(Ok(_)) = body.data().await {}
                        if let Ok(Some(trailers)) = body.trailers().await {
                            let trailer = |name: &str| {
                                trailers.get(name).and_then(|value| value.to_str().ok()).unwrap_or("").to_string()
                            };
                            answer = (trailer("grpc-status"), trailer("x-codesync-error-code"));
                        }
                    }
                    states.lock().await[index].answer = Some(answer);
                };
                tokio::pin!(answered);
                tokio::select! {
                    () = sending => (&mut answered).await,
                    () = &mut answered => {}
                }
            }));
        }
    }
    (states, tasks)
}

/// Waits until every call was answered or stalled (the server reads no more of it), up to
/// `limit`, and returns their states.
async fn settled(states: &Arc<Mutex<Vec<Call>>>, limit: Duration) -> Vec<Call> {
    let started = Instant::now();
    loop {
        let calls = states.lock().await.clone();
        if calls.iter().all(|call| call.answer.is_some() || call.stalled) || started.elapsed() > limit {
            return calls;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const GRPC_OUT_OF_RANGE: &str = "11";
const GRPC_RESOURCE_EXHAUSTED: &str = "8";

/// Finding 1 (high): with no login, gRPC messages just under a service's decode limit, sent all
/// but the last byte and held open, took the rooms process from 34 MiB to 1.4 GiB (20 such calls
/// on one connection) and the documents service to 823 MiB. Anonymous messages are now refused
/// from their length prefix past 64 KiB, before anything is read, and a signed-in caller's are
/// held to their share of the in-flight budget.
async fn anonymous_and_signed_in_floods_stay_under_the_budget(cluster: &Cluster, process: &str) {
    let pid = cluster.pid(process).expect("the process's pid");
    let rooms = cluster.grpc_addr_for("rooms").to_string();
    let documents = cluster.grpc_addr_for("documents").to_string();
    let before = resident_bytes(pid);

    // 20 anonymous 70 MiB messages: 10 calls on one connection to rooms, 10 on five connections
    // to documents.
    let declared = 70 * 1024 * 1024;
    let (rooms_calls, rooms_tasks) =
        hold_open(&rooms, "/codesync.rooms.v1.RoomsService/CreateRoom", None, 1, 10, declared).await;
    let (documents_calls, documents_tasks) =
        hold_open(&documents, "/codesync.documents.v1.DocumentsService/ApplyUpdate", None, 5, 2, declared).await;
    let mut calls = settled(&rooms_calls, Duration::from_secs(60)).await;
    calls.extend(settled(&documents_calls, Duration::from_secs(60)).await);
    let peak = resident_bytes(pid);
    let sent: usize = calls.iter().map(|call| call.sent).sum();
    println!(
        "{process}: 20 anonymous 70 MiB messages held open: resident {:.1} MiB before, {:.1} MiB while held; {:.1} MiB taken from the callers",
        mib(before),
        mib(peak),
        mib(sent as u64)
    );
    assert!(
        peak < before + 64 * 1024 * 1024,
        "anonymous callers made the process hold {:.1} MiB",
        mib(peak.saturating_sub(before))
    );
    for call in &calls {
        let (status, code) = call.answer.clone().unwrap_or_default();
        assert_eq!((status.as_str(), code.as_str()), (GRPC_OUT_OF_RANGE, "message_too_large"), "{call:?}");
    }
    for task in rooms_tasks.into_iter().chain(documents_tasks) {
        task.abort();
    }

    // A signed-in user's 40 messages of 3.9 MiB (under ApplyUpdate's limit), held open: their
    // share of the budget (96 MiB) is taken, the calls past it are refused with `busy`.
    let user = cluster.register(&format!("flood{process}")).await;
    let declared = 3900 * 1024;
    let (user_calls, user_tasks) =
        hold_open(&documents, "/codesync.documents.v1.DocumentsService/ApplyUpdate", user.token(), 4, 10, declared)
            .await;
    let calls = settled(&user_calls, Duration::from_secs(60)).await;
    let peak = resident_bytes(pid);
    let busy = calls
        .iter()
        .filter(|call| {
            call.answer.as_ref().is_some_and(|(status, code)| status == GRPC_RESOURCE_EXHAUSTED && code == "busy")
        })
        .count();
    let held = calls.iter().filter(|call| call.answer.is_none()).count();
    println!(
        "{process}: one user's 40 messages of 3.9 MiB held open: {held} held, {busy} refused `busy`; resident {:.1} MiB",
        mib(peak)
    );
    assert!(busy >= 10 && held <= 25, "the user's share bounds what they hold: {calls:?}");
    assert!(
        peak < before + (96 + 64) * 1024 * 1024,
        "one user made the process hold {:.1} MiB",
        mib(peak.saturating_sub(before))
    );
    for task in user_tasks {
        task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn held_open_grpc_messages_cannot_exhaust_one_process() {
    let env = relaxed_limits();
    let env: Vec<(&str, &str)> = env.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect();
    let cluster = Cluster::one_process(&env).await;
    anonymous_and_signed_in_floods_stay_under_the_budget(&cluster, "all").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn held_open_grpc_messages_cannot_exhaust_the_split_services() {
    let env = relaxed_limits();
    let env: Vec<(&str, &str)> = env.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect();
    let cluster = Cluster::ten_processes(&env).await;
    // Rooms and documents are separate processes here: each is measured on its own flood.
    anonymous_and_signed_in_floods_stay_under_the_budget(&cluster, "documents").await;
    let pid = cluster.pid("rooms").expect("rooms");
    let before = resident_bytes(pid);
    let rooms = cluster.grpc_addr_for("rooms").to_string();
    let (calls, tasks) =
        hold_open(&rooms, "/codesync.rooms.v1.RoomsService/ImportFiles", None, 2, 10, 70 * 1024 * 1024).await;
    let calls = settled(&calls, Duration::from_secs(60)).await;
    let peak = resident_bytes(pid);
    println!("rooms: 20 anonymous 70 MiB imports held open: {:.1} → {:.1} MiB", mib(before), mib(peak));
    assert!(calls.iter().all(|call| call.answer.as_ref().is_some_and(|(status, _)| status == GRPC_OUT_OF_RANGE)));
    assert!(peak < before + 64 * 1024 * 1024);
    for task in tasks {
        task.abort();
    }
}

/// Finding (low): one user held 3,000 presence `JoinRoom` and 300 `Collaborate` streams over
/// direct gRPC, where the WebSocket cap is 64. The streams one user holds open on a service
/// process are capped like their WebSockets at a gateway: the 65th is refused.
#[tokio::test]
async fn one_user_s_65th_grpc_stream_is_refused() {
    use codesync_proto::documents::v1::collaborate_request::Frame;
    use codesync_proto::documents::v1::documents_service_client::DocumentsServiceClient;
    use codesync_proto::documents::v1::{CollaborateRequest, OpenDocument};

    // The default cap, which the harness otherwise relaxes.
    let cluster = Cluster::one_process(&[("CODESYNC_MAX_STREAMS_PER_USER", "64")]).await;
    let user = cluster.register("streamer").await;
    let (status, room) = cluster.post("/api/rooms", user.token(), json!({"name": "Streams", "is_public": false})).await;
    assert_eq!(status, StatusCode::CREATED, "{room}");
    let room_id = room["id"].as_str().expect("room id");
    let (status, file) =
        cluster.post(&format!("/api/rooms/{room_id}/files"), user.token(), json!({"filename": "a.py"})).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    let file_id = file["id"].as_str().expect("file id").to_string();

    let mut client = DocumentsServiceClient::new(cluster.grpc_channel("documents").await);
    let open = |file_id: String| {
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        let first = CollaborateRequest { frame: Some(Frame::Open(OpenDocument { file_id, acknowledge: false })) };
        sender.try_send(first).expect("queue the first frame");
        (sender, tokio_stream::wrappers::ReceiverStream::new(receiver))
    };
    let mut open_streams = Vec::new();
    for number in 1..=64 {
        let (sender, frames) = open(file_id.clone());
        let response = client.collaborate(signed(&user, frames)).await;
        let response = response.unwrap_or_else(|status| panic!("stream {number} was refused: {status:?}"));
        open_streams.push((sender, response.into_inner()));
    }
    let (_sender, frames) = open(file_id.clone());
    let refused = client.collaborate(signed(&user, frames)).await.expect_err("the 65th stream is refused");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "{refused:?}");
    let code = refused.metadata().get("x-codesync-error-code").and_then(|value| value.to_str().ok());
    assert_eq!(code, Some("too_many_connections"));
    assert!(refused.metadata().get("retry-after").is_some());
    // Another user is not held up by the first one's streams.
    let other = cluster.register("other").await;
    let (_sender, frames) = open(file_id.clone());
    let status = client.collaborate(signed(&other, frames)).await.map(|_| ()).expect_err("not a member");
    assert_eq!(status.code(), tonic::Code::NotFound, "refused as a non-member, not for the first one's streams");
    // A stream that ends gives its place back.
    open_streams.pop();
    let given_back = async {
        loop {
            let (sender, frames) = open(file_id.clone());
            if let Ok(response) = client.collaborate(signed(&user, frames)).await {
                return (sender, response);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), given_back).await.expect("a closed stream's place is free again");
}

/// Finding (low): in one process without Redis, REST and gRPC kept separate per-address buckets,
/// though docs/security.md says one. One address's requests now draw from one bucket.
#[tokio::test]
async fn one_address_s_rest_and_grpc_requests_draw_from_one_bucket() {
    use codesync_proto::rooms::v1::ListRoomsRequest;
    use codesync_proto::rooms::v1::rooms_service_client::RoomsServiceClient;

    let cluster = Cluster::one_process(&[
        ("CODESYNC_RATE_LIMIT_PER_MINUTE", "20"),
        ("CODESYNC_REGISTRATIONS_PER_IP_PER_HOUR", "1000"),
    ])
    .await;
    let user: Session = cluster.register("bucket").await;
    let mut rooms = RoomsServiceClient::new(cluster.grpc_channel("rooms").await);
    let grpc_accepted = AtomicUsize::new(0);
    for _ in 0..12 {
        if rooms.list_rooms(signed(&user, ListRoomsRequest::default())).await.is_ok() {
            grpc_accepted.fetch_add(1, Ordering::Relaxed);
        }
    }
    let mut rest_accepted = 0;
    for _ in 0..20 {
        let (status, _) = cluster.get("/api/rooms", user.token()).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        rest_accepted += 1;
    }
    let grpc_accepted = grpc_accepted.load(Ordering::Relaxed);
    println!("one bucket of 20: {grpc_accepted} gRPC calls, then {rest_accepted} REST requests (and the sign-up)");
    assert_eq!(grpc_accepted, 12);
    assert!(rest_accepted <= 8, "REST drew from a bucket of its own: {rest_accepted} requests after 12 gRPC calls");
    let refused = rooms.list_rooms(signed(&user, ListRoomsRequest::default())).await.expect_err("the bucket is empty");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
}

/// The REST side of "authenticate before reading": a body without a valid access token is at
/// most `CODESYNC_ANONYMOUS_REQUEST_BYTES` (64 KiB), refused from its declared length, and one
/// without a declared length is cut off there; a signed-in caller's may be larger.
#[tokio::test]
async fn anonymous_rest_bodies_are_small_and_refused_before_they_are_read() {
    let cluster = Cluster::one_process(&[]).await;
    let client = reqwest::Client::new();
    let url = format!("{}/api/auth/login", cluster.base_url);
    let large = vec![b' '; 200 * 1024];
    let response = client
        .post(&url)
        .header("content-type", "application/json")
        .body(large.clone())
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: serde_json::Value = response.json().await.expect("the error shape");
    assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
    // No declared length (chunked): read only up to the limit.
    let address = cluster.base_url.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&address).await.expect("connect");
    let head = format!(
        "POST /api/auth/login HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    tokio::io::AsyncWriteExt::write_all(&mut stream, head.as_bytes()).await.expect("write");
    let chunk = format!("{:x}\r\n{}\r\n", 8192, " ".repeat(8192));
    for _ in 0..50 {
        if tokio::io::AsyncWriteExt::write_all(&mut stream, chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let mut answer = vec![0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(10), tokio::io::AsyncReadExt::read(&mut stream, &mut answer))
        .await
        .expect("answered in time")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // A small anonymous body is answered as before.
    let (status, body) = cluster
        .post("/api/auth/login", None, json!({"email": "nobody@example.com", "password": "wrong password"}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // Signed in, a 200 KiB body reaches its handler (here: a file's content).
    let user = cluster.register("writer").await;
    let (status, room) = cluster.post("/api/rooms", user.token(), json!({"name": "Big", "is_public": false})).await;
    assert_eq!(status, StatusCode::CREATED, "{room}");
    let content = "x".repeat(200 * 1024);
    let (status, file) = cluster
        .post(
            &format!("/api/rooms/{}/files", room["id"].as_str().expect("room id")),
            user.token(),
            json!({"filename": "big.txt", "content": content}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
}
