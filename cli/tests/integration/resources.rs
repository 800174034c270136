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

/// Resident memory of a process, in bytes (0 once it is gone).
pub fn resident_bytes(pid: u32) -> u64 {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return 0 };
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap_or_default();
    let kib: u64 = line.split_whitespace().nth(1).and_then(|value| value.parse().ok()).unwrap_or_default();
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

/// Samples a process's resident memory every 50 ms until `until` completes; returns the peak.
async fn peak_while<T>(pid: u32, until: impl std::future::Future<Output = T>) -> (T, u64) {
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(resident_bytes(pid)));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(resident_bytes(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let result = until.await;
    sampler.abort();
    (result, peak.load(Ordering::Relaxed).max(resident_bytes(pid)))
}

/// Waits until the process's resident memory is back within max(20 %, 64 MiB) of `before`
/// (up to `limit`), and returns the figure it settled at.
async fn settles_back(pid: u32, before: u64, limit: Duration) -> u64 {
    let allowed = before + (before / 5).max(64 * 1024 * 1024);
    let started = Instant::now();
    loop {
        let now = resident_bytes(pid);
        if now <= allowed || started.elapsed() > limit {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn within_bound(before: u64, after: u64) -> bool {
    after <= before + (before / 5).max(64 * 1024 * 1024)
}

/// A zip of 62 files of 1,000,000 bytes of source-like text each (62 MB of text, about 15 MB of
/// zip): what the campaign uploaded 20 to 30 times at once.
fn large_project() -> Vec<u8> {
    use std::io::Write;
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut archive = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for file in 0..62 {
        archive.start_file(format!("src/module_{file}.py"), options).expect("entry");
        let mut text = String::with_capacity(1_000_000);
        while text.len() < 999_900 {
            let (a, b, c) = (next() % 1_000_000, next() % 1_000, next() % 100);
            text.push_str(&format!("value_{a} = compute({b}, {c})\n"));
        }
        while text.len() < 1_000_000 {
            text.push('\n');
        }
        archive.write_all(text.as_bytes()).expect("write");
    }
    archive.finish().expect("zip").into_inner()
}

/// Finding (medium): 20–30 concurrent uploads of a project of 62 MB of text by one user took the
/// process from 38 MiB to 1.8 GiB, `/healthz` answered in 8.5 s, and 1.5 GiB stayed held. Imports
/// are now limited per user and in all (`too_many_concurrent_requests`), their bodies and
/// expanded text draw on the in-flight budget, and the allocator gives memory back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_project_imports_leave_memory_where_it_was() {
    let cluster = Cluster::one_process(&[]).await;
    let pid = cluster.pid("all").expect("pid");
    let user = cluster.register("importer").await;
    let (status, room) = cluster.post("/api/rooms", user.token(), json!({"name": "Imports", "is_public": false})).await;
    assert_eq!(status, StatusCode::CREATED, "{room}");
    let url = format!("{}/api/rooms/{}/archive", cluster.base_url, room["id"].as_str().expect("room id"));
    let project = Bytes::from(large_project());
    let client = reqwest::Client::new();
    // One import first: the room holds the files, and the figure before the flood is that of a
    // server that has done this once.
    let response = client
        .post(&url)
        .bearer_auth(user.token().expect("token"))
        .header("content-type", "application/zip")
        .body(project.clone())
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), StatusCode::OK, "{:?}", response.text().await);
    let before = settles_back(pid, resident_bytes(pid), Duration::from_secs(5)).await;
    let flood = async {
        let uploads = (0..20).map(|_| {
            let client = client.clone();
            let url = url.clone();
            let project = project.clone();
            let token = user.token().expect("token").to_string();
            async move {
                let response = client
                    .post(&url)
                    .bearer_auth(token)
                    .header("content-type", "application/zip")
                    .body(project)
                    .send()
                    .await
                    .expect("an answer");
                let status = response.status();
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                (status, body["error"]["code"].as_str().unwrap_or_default().to_string())
            }
        });
        futures::future::join_all(uploads).await
    };
    let (answers, peak) = peak_while(pid, flood).await;
    let imported = answers.iter().filter(|(status, _)| *status == StatusCode::OK).count();
    let refused: Vec<&str> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::TOO_MANY_REQUESTS)
        .map(|(_, code)| code.as_str())
        .collect();
    let after = settles_back(pid, before, Duration::from_secs(30)).await;
    println!(
        "20 concurrent imports of 62 MB of text: {imported} imported, {} refused ({refused:?}); resident {:.1} MiB before, {:.1} MiB at the peak, {:.1} MiB after",
        refused.len(),
        mib(before),
        mib(peak),
        mib(after)
    );
    assert_eq!(imported + refused.len(), 20, "every upload was imported or refused with 429: {answers:?}");
    assert!(imported >= 1, "imports go on, one at a time");
    assert!(refused.iter().all(|code| ["too_many_concurrent_requests", "busy"].contains(code)), "{refused:?}");
    assert!(
        within_bound(before, after),
        "memory stayed held after the flood: {:.1} → {:.1} MiB",
        mib(before),
        mib(after)
    );
    // The server answers at once afterwards.
    let started = Instant::now();
    let (status, _) = cluster.get("/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// Finding (medium): WebSocket clients that never read, beside 16 KiB awareness floods from three
/// users, took the process to about 3 GiB, and 2.46 GiB stayed held after every socket closed.
/// What waits for slow readers now draws on one budget (`CODESYNC_OUTBOUND_BYTES`, a share per
/// user): a reader past it is cut off (1013); and the memory comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_readers_and_awareness_floods_leave_memory_where_it_was() {
    use codesync_documents::protocol;
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite;

    let cluster = Cluster::one_process(&[]).await;
    let pid = cluster.pid("all").expect("pid");
    let owner = cluster.register("flooder0").await;
    let (status, room) = cluster.post("/api/rooms", owner.token(), json!({"name": "Flood", "is_public": false})).await;
    assert_eq!(status, StatusCode::CREATED, "{room}");
    let room_id = room["id"].as_str().expect("room id").to_string();
    let (status, file) =
        cluster.post(&format!("/api/rooms/{room_id}/files"), owner.token(), json!({"filename": "a.py"})).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    let file_id = file["id"].as_str().expect("file id").to_string();
    let mut users = vec![owner];
    for number in 1..3 {
        let user = cluster.register(&format!("flooder{number}")).await;
        let (status, body) =
            cluster.post("/api/rooms/join", user.token(), json!({"invite_code": room["invite_code"]})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        users.push(user);
    }
    let url = |user: &Session| cluster.ws_url(&format!("/ws/files/{file_id}?token={}", user.token().expect("token")));
    let before = resident_bytes(pid);
    let flood = async {
        // Each user: 40 sockets that never read a byte, and one that floods awareness.
        let mut readers = Vec::new();
        for user in &users {
            for _ in 0..40 {
                let (socket, _) = tokio_tungstenite::connect_async(url(user)).await.expect("connect");
                readers.push(socket);
            }
        }
        let floods = users.iter().enumerate().map(|(number, user)| {
            let url = url(user);
            async move {
                let (mut socket, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
                let client_id = 1000 + number as u64;
                let filler = "x".repeat(16 * 1024 - 64);
                let started = Instant::now();
                let mut clock = 0;
                while started.elapsed() < Duration::from_secs(6) {
                    clock += 1;
                    let state = format!("{{\"cursor\":{clock},\"pad\":\"{filler}\"}}");
                    let entry = protocol::AwarenessEntry { client_id, clock, state_json: state };
                    let payload = protocol::encode_awareness_entries(std::iter::once(&entry));
                    let frame = tungstenite::Message::Binary(protocol::encode_awareness(&payload).into());
                    if socket.send(frame).await.is_err() {
                        break;
                    }
                }
                clock
            }
        });
        let sent: Vec<u64> = futures::future::join_all(floods).await;
        (readers, sent)
    };
    let ((readers, sent), peak) = peak_while(pid, flood).await;
    drop(readers);
    let after = settles_back(pid, before, Duration::from_secs(30)).await;
    println!(
        "three users, 120 sockets that never read, {} awareness messages of 16 KiB: resident {:.1} MiB before, {:.1} MiB at the peak, {:.1} MiB after every socket closed",
        sent.iter().sum::<u64>(),
        mib(before),
        mib(peak),
        mib(after)
    );
    assert!(
        peak < before + 512 * 1024 * 1024,
        "what waits for slow readers is bounded: {:.1} MiB at the peak",
        mib(peak)
    );
    assert!(within_bound(before, after), "memory stayed held: {:.1} → {:.1} MiB", mib(before), mib(after));
}

/// Finding (medium): 30 concurrent catastrophic searches by one user held another user's `GET`
/// of a room for 3.4 s; nothing limited searches. A caller now has at most
/// `CODESYNC_EXPENSIVE_REQUESTS_PER_CALLER` searches (and imports, archive downloads) going, the
/// process `CODESYNC_EXPENSIVE_REQUESTS`, on a pool of their own; past its own share a caller
/// gets 429 at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_search_flood_gets_429_and_leaves_other_users_reads_alone() {
    let cluster = Cluster::one_process(&[]).await;
    let flooder = cluster.register("searcher").await;
    let reader = cluster.register("reader").await;
    let (status, room) = cluster.post("/api/rooms", flooder.token(), json!({"name": "Big", "is_public": false})).await;
    assert_eq!(status, StatusCode::CREATED, "{room}");
    let room_id = room["id"].as_str().expect("room id").to_string();
    // Eight files of 1 MB of words with letters beyond ASCII: a pattern of Unicode word
    // boundaries cannot use the regex crate's fast automaton on them, so each search takes a
    // second or more of a CPU (measured here: about 6 MB/s).
    let words = ["café", "naïve", "größe", "añejo", "x1", "y22", "zeta9", "straße"];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for number in 0..8 {
        let mut content = String::with_capacity(1_000_000);
        while content.len() < 990_000 {
            for word in 0..12 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                if word > 0 {
                    content.push(' ');
                }
                content.push_str(words[(state % words.len() as u64) as usize]);
            }
            content.push('\n');
        }
        let (status, body) = cluster
            .post(
                &format!("/api/rooms/{room_id}/files"),
                flooder.token(),
                json!({"filename": format!("data{number}.txt"), "content": content}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, other_room) =
        cluster.post("/api/rooms", reader.token(), json!({"name": "Mine", "is_public": false})).await;
    assert_eq!(status, StatusCode::CREATED, "{other_room}");
    let read_path = format!("/api/rooms/{}", other_room["id"].as_str().expect("room id"));
    let read_times = |samples: usize| {
        let cluster = &cluster;
        let reader = &reader;
        let read_path = read_path.clone();
        async move {
            let mut times = Vec::with_capacity(samples);
            for _ in 0..samples {
                let started = Instant::now();
                let (status, _) = cluster.get(&read_path, reader.token()).await;
                assert_eq!(status, StatusCode::OK);
                times.push(started.elapsed());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            times.sort();
            times[(times.len() * 99 / 100).min(times.len() - 1)]
        }
    };
    let search = format!(
        "{}/api/rooms/{room_id}/search?regex=true&q={}",
        cluster.base_url, "%28%3F%3A%5Cb%5Cw%2B%5Cb%5Cs%29%7B12%7D%5Cb%5Cw%2B%5Cb%5Cd"
    );
    let client = reqwest::Client::new();
    // One search first: the room's documents are loaded and the server is warm; then the reads'
    // figure without a flood.
    let warm = client.get(&search).bearer_auth(flooder.token().expect("token")).send().await.expect("an answer");
    assert_eq!(warm.status(), StatusCode::OK);
    let unloaded_p99 = read_times(200).await;
    let searches = (0..30).map(|_| {
        let client = client.clone();
        let search = search.clone();
        let token = flooder.token().expect("token").to_string();
        async move {
            let response = client.get(&search).bearer_auth(token).send().await.expect("an answer");
            response.status()
        }
    });
    let (statuses, loaded_p99) = tokio::join!(futures::future::join_all(searches), read_times(200));
    let refused = statuses.iter().filter(|status| **status == StatusCode::TOO_MANY_REQUESTS).count();
    let answered = statuses.iter().filter(|status| **status == StatusCode::OK).count();
    println!(
        "30 concurrent slow searches: {answered} answered, {refused} refused with 429; another user's GET room p99 {:.1} ms unloaded, {:.1} ms during the flood",
        unloaded_p99.as_secs_f64() * 1000.0,
        loaded_p99.as_secs_f64() * 1000.0
    );
    assert_eq!(answered + refused, 30, "{statuses:?}");
    assert!(refused >= 25, "the flooder is held to its share: {statuses:?}");
    // Before the limits the reads took seconds (p99 1.3 s, 3.4 s in the campaign); the bound
    // leaves room for the jitter of a machine running other tests beside this one (p99 3× a
    // few milliseconds is noise, not a held worker).
    let bound = (unloaded_p99 * 3).max(unloaded_p99 + Duration::from_millis(250));
    assert!(loaded_p99 <= bound, "the other user's reads slowed from {unloaded_p99:?} to {loaded_p99:?}");
}

/// Finding (medium): 19,900 half-sent requests from 80 addresses, each under the per-address
/// cap, held the process at its descriptor ceiling: `/healthz` and the API refused connections
/// 2–3 s of every 10. At the ceiling a new connection is now admitted and the one doing least
/// (a request's headers unfinished, then idle, then anonymous) is closed to make room.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_the_descriptor_ceiling_health_probes_are_never_refused() {
    use tokio::io::AsyncWriteExt;

    // A low open-file limit, so that 80 addresses reach the ceiling quickly.
    let cluster = Cluster::one_process_with_open_files(1024, &[]).await;
    let address = cluster.base_url.trim_start_matches("http://").to_string();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let opened = Arc::new(AtomicUsize::new(0));
    // 80 attackers, one per address of 127.0.0.0/8, each keeping up to 40 connections whose
    // request never finishes, opening new ones as theirs are closed.
    let attackers: Vec<_> = (2..82u8)
        .map(|last| {
            let stop = stop.clone();
            let opened = opened.clone();
            let address = address.clone();
            tokio::spawn(async move {
                let mut held = std::collections::VecDeque::new();
                while !stop.load(Ordering::Relaxed) {
                    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
                    if socket.bind(std::net::SocketAddr::from(([127, 0, 0, last], 0))).is_err() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    let Ok(Ok(mut stream)) =
                        tokio::time::timeout(Duration::from_secs(1), socket.connect(address.parse().expect("address")))
                            .await
                    else {
                        continue;
                    };
                    if stream.write_all(b"GET /api/rooms HTTP/1.1\r\nhost: x\r\nx-slow: ").await.is_ok() {
                        opened.fetch_add(1, Ordering::Relaxed);
                        held.push_back(stream);
                    }
                    if held.len() >= 40 {
                        held.pop_front();
                    }
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    // Until the ceiling is reached: the process's connections metric at its limit.
    let metrics_client = reqwest::Client::new();
    let started = Instant::now();
    while opened.load(Ordering::Relaxed) < 1500 && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut refused = 0;
    let mut slowest = Duration::ZERO;
    for _ in 0..50 {
        let probe =
            reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 0, 0, 200])).build().expect("client");
        let asked = Instant::now();
        match tokio::time::timeout(Duration::from_secs(5), probe.get(format!("{}/healthz", cluster.base_url)).send())
            .await
        {
            Ok(Ok(response)) if response.status() == StatusCode::OK => {}
            _ => refused += 1,
        }
        slowest = slowest.max(asked.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = match metrics_client.get(format!("{}/metrics", cluster.base_url)).send().await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(error) => format!("/metrics refused: {error}"),
    };
    stop.store(true, Ordering::Relaxed);
    for attacker in attackers {
        let _ = attacker.await;
    }
    let shed =
        metrics.lines().find(|line| line.starts_with("codesync_connections_shed_total")).unwrap_or("").to_string();
    println!(
        "{} half-sent requests from 80 addresses; 50 health probes: {refused} refused, slowest {:.0} ms; {shed}",
        opened.load(Ordering::Relaxed),
        slowest.as_secs_f64() * 1000.0
    );
    assert_eq!(refused, 0, "health probes were refused at the descriptor ceiling");
}
