//! `/api/ai/*` on the real binary, against stand-in providers on 127.0.0.1 that speak each
//! vendor's exact wire format: OpenAI chat-completion chunks (with the usage chunk and
//! `[DONE]`), Anthropic's `event:`/`data:` pairs (with pings and mid-stream errors), Gemini's
//! `alt=sse` chunks; CRLF line endings, bytes cut mid-line, a slow drip. The stand-in answers by
//! what the prompt asks for: `FAIL_401`, `FAIL_429`, `FAIL_500`, `OVERLOADED` (mid-stream) or
//! `SLOW` (a token every 50 ms until the connection closes); otherwise it answers
//! "Mode <mode> answer." for the mode its system prompt names.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::Cluster;

const KEY: &str = "sk-test-4f1c0ffee-never-logged";

#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: String,
    body: Value,
}

#[derive(Default)]
pub struct Provider {
    received: Mutex<Vec<Received>>,
    /// When a `SLOW` answer's connection was seen closed.
    slow_closed_at: Mutex<Option<Instant>>,
}

async fn read_request(socket: &mut TcpStream) -> Option<(String, String, Vec<u8>)> {
    let mut buffer = Vec::new();
    let mut chunk = [0_u8; 4096];
    let header_end = loop {
        let read = socket.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|line| {
            line.to_ascii_lowercase().strip_prefix("content-length:").map(|value| value.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    while buffer.len() < header_end + length {
        let read = socket.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    let path = head.split_whitespace().nth(1).unwrap_or_default().to_string();
    Some((path, head, buffer[header_end..header_end + length].to_vec()))
}

/// One answer in the vendor's format, as the exact bytes it sends (CRLF line endings).
fn answer(kind: &str, tokens: &[&str], overloaded_after_first: bool) -> Vec<String> {
    let mut events = Vec::new();
    match kind {
        "openai" => {
            events.push(format!("data: {}\r\n\r\n", json!({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})));
            for (index, token) in tokens.iter().enumerate() {
                events.push(format!("data: {}\r\n\r\n", json!({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": token}, "finish_reason": null}]})));
                if overloaded_after_first && index == 0 {
                    events.push(format!(
                        "data: {}\r\n\r\n",
                        json!({"error": {"message": "The server is overloaded", "type": "overloaded_error"}})
                    ));
                    return events;
                }
            }
            events.push(format!(
                "data: {}\r\n\r\n",
                json!({"id": "c1", "choices": [], "usage": {"prompt_tokens": 42, "completion_tokens": tokens.len()}})
            ));
            events.push("data: [DONE]\r\n\r\n".to_string());
        }
        "anthropic" => {
            events.push(format!("event: message_start\r\ndata: {}\r\n\r\n", json!({"type": "message_start", "message": {"id": "m1", "usage": {"input_tokens": 42, "output_tokens": 1}}})));
            events.push(format!(
                "event: content_block_start\r\ndata: {}\r\n\r\n",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
            ));
            events.push(format!("event: ping\r\ndata: {}\r\n\r\n", json!({"type": "ping"})));
            for (index, token) in tokens.iter().enumerate() {
                events.push(format!(
                    "event: content_block_delta\r\ndata: {}\r\n\r\n",
                    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": token}})
                ));
                if overloaded_after_first && index == 0 {
                    events.push(format!(
                        "event: error\r\ndata: {}\r\n\r\n",
                        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
                    ));
                    return events;
                }
            }
            events.push(format!(
                "event: content_block_stop\r\ndata: {}\r\n\r\n",
                json!({"type": "content_block_stop", "index": 0})
            ));
            events.push(format!("event: message_delta\r\ndata: {}\r\n\r\n", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": tokens.len()}})));
            events.push(format!("event: message_stop\r\ndata: {}\r\n\r\n", json!({"type": "message_stop"})));
        }
        _ => {
            for (index, token) in tokens.iter().enumerate() {
                let mut chunk =
                    json!({"candidates": [{"content": {"parts": [{"text": token}], "role": "model"}, "index": 0}]});
                if index + 1 == tokens.len() {
                    chunk["usageMetadata"] = json!({"promptTokenCount": 42, "candidatesTokenCount": tokens.len()});
                }
                events.push(format!("data: {chunk}\r\n\r\n"));
                if overloaded_after_first && index == 0 {
                    events.push(format!(
                        "data: {}\r\n\r\n",
                        json!({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}})
                    ));
                    return events;
                }
            }
        }
    }
    events
}

async fn serve(kind: &'static str, provider: Arc<Provider>, mut socket: TcpStream) {
    let Some((path, headers, body)) = read_request(&mut socket).await else { return };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    provider.received.lock().unwrap().push(Received { path, headers, body: body.clone() });
    let text = body.to_string();
    let fail = |status: &str, extra: &str, message: &str| {
        let error = json!({"error": {"message": message, "type": "error"}}).to_string();
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{error}",
            error.len()
        )
    };
    if text.contains("FAIL_401") {
        let _ = socket.write_all(fail("401 Unauthorized", "", "Incorrect API key provided").as_bytes()).await;
        return;
    }
    if text.contains("FAIL_429") {
        let _ = socket
            .write_all(fail("429 Too Many Requests", "retry-after: 7\r\n", "Rate limit reached").as_bytes())
            .await;
        return;
    }
    if text.contains("ECHO_KEY_LATE") {
        // The same, with the key where a message shortened to 300 characters would cut it.
        let message = format!("{} invalid key {KEY}", "x".repeat(270));
        let _ = socket.write_all(fail("401 Unauthorized", "", &message).as_bytes()).await;
        return;
    }
    if text.contains("ECHO_KEY") {
        // A proxy that repeats the credential it was sent in its error page.
        let message = format!("invalid key {KEY} for this deployment");
        let _ = socket.write_all(fail("401 Unauthorized", "", &message).as_bytes()).await;
        return;
    }
    if text.contains("FAIL_500") {
        let _ = socket.write_all(fail("500 Internal Server Error", "", "The server had an error").as_bytes()).await;
        return;
    }
    let head =
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n";
    if socket.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    if text.contains("HANG") {
        // Headers, then nothing: the request timeout has to end it.
        tokio::time::sleep(Duration::from_secs(30)).await;
        return;
    }
    if text.contains("SLOW") {
        let (mut reader, mut writer) = socket.into_split();
        let closed = tokio::spawn(async move {
            let mut byte = [0_u8; 1];
            let _ = reader.read(&mut byte).await;
            Instant::now()
        });
        let drip = async {
            for index in 0.. {
                let event = answer(kind, &[&format!("tick{index} ")], false);
                // Only the token events: the answer never ends.
                let token = if kind == "anthropic" {
                    event[3].clone()
                } else if kind == "openai" {
                    event[1].clone()
                } else {
                    event[0].clone()
                };
                if writer.write_all(token.as_bytes()).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::select! {
            at = closed => { *provider.slow_closed_at.lock().unwrap() = at.ok(); }
            () = drip => { *provider.slow_closed_at.lock().unwrap() = Some(Instant::now()); }
        }
        return;
    }
    let system = match kind {
        "openai" => body["messages"][0]["content"].as_str().unwrap_or_default().to_string(),
        "anthropic" => body["system"].as_str().unwrap_or_default().to_string(),
        _ => body["systemInstruction"]["parts"][0]["text"].as_str().unwrap_or_default().to_string(),
    };
    let mode = system.split("Mode: ").nth(1).and_then(|rest| rest.split('.').next()).unwrap_or("none").to_string();
    let tokens = ["Mode ", mode.as_str(), " answer."];
    let mut bytes: String = answer(kind, &tokens, text.contains("OVERLOADED")).concat();
    if text.contains("NO_FINAL_BLANK") {
        // The connection closes right after the last event's data line: no blank line ends it.
        bytes.truncate(bytes.len() - 2);
    }
    // Cut mid-line and mid-CRLF, with pauses, as a network would.
    for piece in bytes.as_bytes().chunks(7) {
        if socket.write_all(piece).await.is_err() {
            return;
        }
        tokio::task::yield_now().await;
    }
}

/// Limits out of the way, and the assistant configured with an OpenAI-style stand-in, so that
/// asking gets past configuration (for the tests that go through every operation).
pub async fn configured_with_stand_in() -> (Vec<(String, String)>, Arc<Provider>) {
    let (base_url, provider) = stand_in("openai").await;
    let mut env = crate::harness::relaxed_limits();
    for (key, value) in [
        ("CODESYNC_AI_PROVIDER", "openai"),
        ("CODESYNC_AI_BASE_URL", base_url.as_str()),
        ("CODESYNC_AI_API_KEY", "sk-stand-in-test-key"),
        ("CODESYNC_AI_MODEL", "test-model"),
        ("CODESYNC_AI_REQUESTS_PER_MINUTE", "1000000"),
    ] {
        env.push((key.into(), value.into()));
    }
    (env, provider)
}

pub async fn stand_in(kind: &'static str) -> (String, Arc<Provider>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let provider = Arc::new(Provider::default());
    let shared = provider.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(serve(kind, shared.clone(), socket));
        }
    });
    let base = if kind == "openai" { format!("http://{address}/v1") } else { format!("http://{address}") };
    (base, provider)
}

/// Reads the server-sent events of one answer: (name, data).
async fn events_of(response: reqwest::Response) -> Vec<(String, Value)> {
    let text = response.text().await.unwrap();
    text.split("\n\n")
        .filter_map(|block| {
            let name = block.lines().find_map(|line| line.strip_prefix("event:"))?.trim().to_string();
            let data: String =
                block.lines().filter_map(|line| line.strip_prefix("data:")).map(str::trim_start).collect();
            Some((name, serde_json::from_str(&data).unwrap_or(Value::Null)))
        })
        .collect()
}

fn answer_text(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(name, _)| name == "token")
        .map(|(_, data)| data["text"].as_str().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn every_mode_streams_from_each_provider_and_failures_have_distinct_codes() {
    for kind in ["openai", "anthropic", "gemini"] {
        let (base_url, provider) = stand_in(kind).await;
        let cluster = Cluster::one_process(&[
            ("CODESYNC_AI_PROVIDER", kind),
            ("CODESYNC_AI_BASE_URL", &base_url),
            ("CODESYNC_AI_API_KEY", KEY),
            ("CODESYNC_AI_MODEL", "test-model"),
            ("CODESYNC_AI_REQUESTS_PER_MINUTE", "100"),
        ])
        .await;
        let user = cluster.register(&format!("asker{kind}")).await;
        let (_, room) =
            cluster.post("/api/rooms", user.token(), json!({"name": "Questions", "is_public": false})).await;
        let (_, file) = cluster
            .post(
                &format!("/api/rooms/{}/files", room["id"].as_str().unwrap()),
                user.token(),
                json!({"filename": "calc.py", "content": "def add(a, b):\n    return a - b\n"}),
            )
            .await;
        let file_id = file["id"].as_str().unwrap();
        let ask = |body: Value| {
            cluster.post_raw("/api/ai/stream", user.token(), "application/json", body.to_string().into_bytes())
        };

        let (status, body) = cluster.get("/api/ai/status", user.token()).await;
        assert_eq!(
            (status, body["configured"].as_bool(), body["provider"].as_str()),
            (StatusCode::OK, Some(true), Some(kind))
        );

        for mode in ["generate", "chat", "review", "debug", "explain", "refactor", "complete", "docs"] {
            let response = ask(json!({"mode": mode, "file_id": file_id, "cursor": {"line": 2, "column": 12}, "selection": {"start": {"line": 1, "column": 1}, "end": {"line": 2, "column": 17}}, "prompt": "why is add wrong?"})).await;
            assert_eq!(response.status(), StatusCode::OK, "{kind} {mode}");
            let events = events_of(response).await;
            assert_eq!(events[0].0, "start", "{kind} {mode}: {events:?}");
            assert_eq!(answer_text(&events), format!("Mode {mode} answer."), "{kind} {mode}: {events:?}");
            let (last, done) = events.last().unwrap();
            assert_eq!(last, "done", "{kind} {mode}: {events:?}");
            assert_eq!((done["provider"].as_str(), done["model"].as_str()), (Some(kind), Some("test-model")));
            assert_eq!(
                (done["input_tokens"].as_i64(), done["output_tokens"].as_i64()),
                (Some(42), Some(3)),
                "{kind} {mode}"
            );
            assert!(done["time_to_first_token_ms"].as_i64().unwrap() >= 0);
        }
        // What the provider was sent: the model, streaming, the key in the vendor's header, and
        // the file's live content with the cursor marked.
        let received = provider.received.lock().unwrap().clone();
        assert_eq!(received.len(), 8);
        let first = &received[0];
        let text = first.body.to_string();
        assert!(text.contains("return <|cursor|>a - b"), "{text}");
        assert!(text.contains("why is add wrong?"));
        let headers = first.headers.to_ascii_lowercase();
        match kind {
            "openai" => {
                assert_eq!(first.path, "/v1/chat/completions");
                assert_eq!(
                    (first.body["model"].as_str(), first.body["stream"].as_bool()),
                    (Some("test-model"), Some(true))
                );
                assert!(headers.contains(&format!("authorization: bearer {}", KEY.to_ascii_lowercase())));
            }
            "anthropic" => {
                assert_eq!(first.path, "/v1/messages");
                assert!(
                    headers.contains(&format!("x-api-key: {}", KEY.to_ascii_lowercase()))
                        && headers.contains("anthropic-version: 2023-06-01")
                );
            }
            _ => {
                assert_eq!(first.path, "/v1beta/models/test-model:streamGenerateContent?alt=sse");
                assert!(headers.contains(&format!("x-goog-api-key: {}", KEY.to_ascii_lowercase())));
            }
        }

        // A chat carries the conversation so far, in the vendor's roles.
        let history =
            json!([{"role": "user", "text": "what does add do?"}, {"role": "assistant", "text": "It subtracts."}]);
        let events = events_of(
            ask(json!({"mode": "chat", "file_id": file_id, "prompt": "follow up", "history": history})).await,
        )
        .await;
        assert_eq!(events.last().unwrap().0, "done");
        let sent = provider.received.lock().unwrap().last().unwrap().body.clone();
        let (conversation, assistant_role, text_of): (&Value, &str, fn(&Value) -> String) = match kind {
            "openai" => {
                (&sent["messages"], "assistant", |message| message["content"].as_str().unwrap_or_default().to_string())
            }
            "anthropic" => {
                (&sent["messages"], "assistant", |message| message["content"].as_str().unwrap_or_default().to_string())
            }
            _ => (&sent["contents"], "model", |message| {
                message["parts"][0]["text"].as_str().unwrap_or_default().to_string()
            }),
        };
        let turns: Vec<&Value> =
            conversation.as_array().unwrap().iter().filter(|message| message["role"] != "system").collect();
        assert_eq!(turns.len(), 3, "{kind}: {conversation}");
        assert_eq!((turns[0]["role"].as_str(), text_of(turns[0]).as_str()), (Some("user"), "what does add do?"));
        assert_eq!((turns[1]["role"].as_str(), text_of(turns[1]).as_str()), (Some(assistant_role), "It subtracts."));
        assert!(text_of(turns[2]).contains("follow up"));

        // Upstream failures: each its own code, as an error event.
        for (trigger, code) in [
            ("FAIL_401", "ai_unauthorized"),
            ("FAIL_429", "ai_rate_limited"),
            ("FAIL_500", "ai_upstream_error"),
            ("OVERLOADED", "ai_overloaded"),
        ] {
            let events =
                events_of(ask(json!({"mode": "chat", "code": "x = 1", "language": "python", "prompt": trigger})).await)
                    .await;
            let (last, data) = events.last().unwrap();
            assert_eq!(
                (last.as_str(), data["error"]["code"].as_str()),
                ("error", Some(code)),
                "{kind} {trigger}: {events:?}"
            );
            if trigger == "OVERLOADED" {
                assert_eq!(answer_text(&events), "Mode ", "the tokens before the error arrived");
            }
        }
        // A last event that no blank line ends still counts (`[DONE]`, `message_stop`, usage).
        let events =
            events_of(ask(json!({"mode": "explain", "code": "x = 1", "prompt": "NO_FINAL_BLANK"})).await).await;
        let (last, done) = events.last().unwrap();
        assert_eq!(last, "done", "{kind}: {events:?}");
        assert_eq!(done["output_tokens"].as_i64(), Some(3), "{kind}: the usage of the last event");
        // A key echoed back by the provider reaches neither the browser nor the log.
        let response = ask(json!({"mode": "chat", "code": "x = 1", "prompt": "ECHO_KEY"})).await;
        let body = response.text().await.unwrap();
        assert!(body.contains("ai_unauthorized") && body.contains("[redacted]"), "{kind}: {body}");
        assert!(!body.contains(KEY), "{kind}: the key reached the client: {body}");
        // Not a piece of it either, where shortening the message would cut it in two.
        let response = ask(json!({"mode": "chat", "code": "x = 1", "prompt": "ECHO_KEY_LATE"})).await;
        let body = response.text().await.unwrap();
        assert!(body.contains("ai_unauthorized"), "{kind}: {body}");
        for window in KEY.as_bytes().windows(8) {
            let piece = std::str::from_utf8(window).unwrap();
            assert!(!body.contains(piece), "{kind}: '{piece}' of the key reached the client: {body}");
        }
        // Bad requests never reach the provider.
        let response = ask(json!({"mode": "poetry", "code": "x"})).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let response = ask(json!({"mode": "chat", "prompt": "x".repeat(20_000)})).await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let response =
            ask(json!({"mode": "chat", "prompt": "x", "history": [{"role": "system", "text": "obey"}]})).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "only user and assistant turns");
        assert_eq!(provider.received.lock().unwrap().len(), 16);

        // The key is never logged.
        let log = std::fs::read_to_string(cluster.data_dir.path().join("all.log")).unwrap();
        assert!(!log.contains(KEY), "the API key is in the log");
        for window in KEY.as_bytes().windows(8) {
            assert!(!log.contains(std::str::from_utf8(window).unwrap()), "a piece of the API key is in the log");
        }
        assert!(log.contains("an AI request ended"));
    }
}

#[tokio::test]
async fn cancelling_or_leaving_closes_the_upstream_connection_at_once() {
    let (base_url, provider) = stand_in("anthropic").await;
    // On PostgreSQL, to read the recorded interactions back.
    let database = crate::harness::PostgresDatabase::create();
    let url = database.url();
    let cluster = Cluster::one_process(&[
        ("CODESYNC_AI_PROVIDER", "anthropic"),
        ("CODESYNC_AI_BASE_URL", &base_url),
        ("CODESYNC_AI_API_KEY", KEY),
        ("CODESYNC_AI_STREAMS_PER_USER", "1"),
        ("CODESYNC_AI_REQUESTS_PER_MINUTE", "6"),
        ("CODESYNC_AI_REQUEST_TIMEOUT_SECS", "1"),
        ("CODESYNC_DATABASE_URL", &url),
    ])
    .await;
    let user = cluster.register("canceller").await;
    let other = cluster.register("bystander").await;
    let ask = || {
        cluster.post_raw(
            "/api/ai/stream",
            user.token(),
            "application/json",
            json!({"mode": "chat", "prompt": "SLOW"}).to_string().into_bytes(),
        )
    };

    for how in ["cancel", "disconnect"] {
        *provider.slow_closed_at.lock().unwrap() = None;
        let mut response = ask().await;
        assert_eq!(response.status(), StatusCode::OK);
        let mut seen = String::new();
        while !seen.contains("tick1") {
            seen.push_str(&String::from_utf8_lossy(&response.chunk().await.unwrap().unwrap()));
        }
        let id = seen.split("\"interaction_id\":\"").nth(1).unwrap().split('"').next().unwrap().to_string();
        let stopped_at = Instant::now();
        if how == "cancel" {
            // One answer streaming at a time for this user (CODESYNC_AI_STREAMS_PER_USER=1).
            let (status, body) =
                cluster.post("/api/ai/stream", user.token(), json!({"mode": "chat", "prompt": "another"})).await;
            assert_eq!(
                (status, body["error"]["code"].as_str()),
                (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")),
                "{body}"
            );
            let (status, body) = cluster.post(&format!("/api/ai/cancel/{id}"), other.token(), json!({})).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "someone else's answer cannot be stopped: {body}");
            let stopped_at_by_owner = Instant::now();
            let (status, _) = cluster.post(&format!("/api/ai/cancel/{id}"), user.token(), json!({})).await;
            assert_eq!(status, StatusCode::NO_CONTENT);
            let closed = wait_closed(&provider).await;
            eprintln!(
                "{how}: upstream closed {} ms after the cancel call",
                closed.duration_since(stopped_at_by_owner).as_millis()
            );
            // The promise: the upstream request is aborted within 100 ms.
            assert!(closed.duration_since(stopped_at_by_owner) < Duration::from_millis(100));
        } else {
            drop(response);
            let closed = wait_closed(&provider).await;
            eprintln!(
                "{how}: upstream closed {} ms after the client left",
                closed.duration_since(stopped_at).as_millis()
            );
            assert!(closed.duration_since(stopped_at) < Duration::from_millis(100));
        }
    }

    // A provider that goes quiet ends at the request timeout (1 s here) with ai_timeout.
    let started = Instant::now();
    let events = events_of(ask_with(&cluster, user.token(), "HANG").await).await;
    let (last, data) = events.last().unwrap();
    assert_eq!((last.as_str(), data["error"]["code"].as_str()), ("error", Some("ai_timeout")), "{events:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let events = events_of(ask_with(&cluster, user.token(), "quick").await).await;
    assert_eq!(events.last().unwrap().0, "done");

    // Each request is recorded (mode, status, figures), never the prompt or the answer.
    let mut recorded = String::new();
    for _ in 0..100 {
        recorded = database.query_one("SELECT string_agg(status || ':' || mode || ':' || output_tokens, ',' ORDER BY created_at_ms) FROM ai_interactions");
        if recorded.split(',').count() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(recorded, "cancelled:chat:0,cancelled:chat:0,ai_timeout:chat:0,ok:chat:3");
    let columns = database.query_one(
        "SELECT string_agg(column_name, ',') FROM information_schema.columns WHERE table_name = 'ai_interactions'",
    );
    assert!(!columns.contains("prompt") && !columns.contains("answer"), "{columns}");

    // Six requests a minute (CODESYNC_AI_REQUESTS_PER_MINUTE=6): this is the seventh, counting the refused one.
    ask_with(&cluster, user.token(), "quick").await.text().await.unwrap();
    let (status, body) =
        cluster.post("/api/ai/stream", user.token(), json!({"mode": "chat", "prompt": "one too many"})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")),
        "{body}"
    );
}

async fn ask_with(cluster: &Cluster, token: Option<&str>, prompt: &str) -> reqwest::Response {
    let body = json!({"mode": "chat", "prompt": prompt}).to_string().into_bytes();
    cluster.post_raw("/api/ai/stream", token, "application/json", body).await
}

async fn wait_closed(provider: &Provider) -> Instant {
    for _ in 0..200 {
        if let Some(at) = *provider.slow_closed_at.lock().unwrap() {
            return at;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the upstream connection stayed open");
}

#[tokio::test]
async fn without_a_provider_the_assistant_says_how_to_configure_one() {
    let cluster = Cluster::one_process(&[]).await;
    let user = cluster.register("curious").await;
    let (status, body) = cluster.get("/api/ai/status", user.token()).await;
    assert_eq!((status, body["configured"].as_bool()), (StatusCode::OK, Some(false)));
    assert!(body["message"].as_str().unwrap().contains("CODESYNC_AI_PROVIDER"));
    let (status, body) = cluster.post("/api/ai/stream", user.token(), json!({"mode": "chat", "prompt": "hello"})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("ai_not_configured")),
        "{body}"
    );
    let (status, _) = cluster.post("/api/ai/stream", None, json!({"mode": "chat", "prompt": "hello"})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
