//! Regression tests of the security campaign's findings (issue 15), through the surface each
//! was found on: a direct gRPC caller gets exactly what a REST caller gets.

use reqwest::StatusCode;
use serde_json::json;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use codesync_proto::documents::v1::documents_service_client::DocumentsServiceClient;
use codesync_proto::documents::v1::{DeleteDocumentRequest, GetDocumentRequest, InsertTextRequest};
use codesync_proto::rooms::v1::DeleteFileRequest;
use codesync_proto::rooms::v1::rooms_service_client::RoomsServiceClient;

use crate::harness::{Cluster, Session, signed};

async fn channel(cluster: &Cluster) -> Channel {
    cluster.grpc_channel("rooms").await
}

/// The error code the service put in the status's metadata.
fn error_code(status: &tonic::Status) -> &str {
    status.metadata().get("x-codesync-error-code").and_then(|value| value.to_str().ok()).unwrap_or_default()
}

/// An owner, an editor and a viewer of one room with one file, and a stranger.
struct Roles {
    owner: Session,
    editor: Session,
    viewer: Session,
    stranger: Session,
    file_id: String,
}

async fn room_with_roles(cluster: &Cluster, is_public: bool) -> Roles {
    let prefix = if is_public { "pub" } else { "priv" };
    let owner = cluster.register(&format!("{prefix}owner")).await;
    let editor = cluster.register(&format!("{prefix}editor")).await;
    let viewer = cluster.register(&format!("{prefix}viewer")).await;
    let stranger = cluster.register(&format!("{prefix}stranger")).await;
    let (status, room) = cluster.post("/api/rooms", owner.token(), json!({"name": "R", "is_public": is_public})).await;
    assert_eq!(status, StatusCode::CREATED, "{room}");
    let room_id = room["id"].as_str().unwrap().to_string();
    for member in [&editor, &viewer] {
        let (status, body) =
            cluster.post("/api/rooms/join", member.token(), json!({"invite_code": room["invite_code"]})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = cluster
        .patch(&format!("/api/rooms/{room_id}/members/{}", viewer.user_id), owner.token(), json!({"role": "viewer"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, file) = cluster
        .post(
            &format!("/api/rooms/{room_id}/files"),
            owner.token(),
            json!({"filename": "secret.py", "content": "x = 1\n"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    Roles { owner, editor, viewer, stranger, file_id: file["id"].as_str().unwrap().to_string() }
}

/// Finding 1 (high): `DeleteDocument` from a non-member on a private room's file destroyed the
/// file's live content, because "not found" to the caller was read as "deleted". Now only the
/// document of a deleted file goes, and only at the hands of someone who could delete the file.
#[tokio::test]
async fn delete_document_over_grpc_is_authorised_like_deleting_the_file() {
    let cluster = Cluster::one_process(&[]).await;
    let channel = channel(&cluster).await;
    let mut documents = DocumentsServiceClient::new(channel.clone());
    let mut rooms = RoomsServiceClient::new(channel);

    for is_public in [false, true] {
        let roles = room_with_roles(&cluster, is_public).await;
        let file_id = roles.file_id.clone();
        let edit = InsertTextRequest { file_id: file_id.clone(), index: 0, text: "# edited live\n".into() };
        documents.insert_text(signed(&roles.editor, edit)).await.expect("the editor edits");

        // While the file exists, nobody may remove its document; outsiders of a private room
        // learn nothing about it.
        for (who, session) in [("stranger", &roles.stranger), ("viewer", &roles.viewer), ("owner", &roles.owner)] {
            let refused = documents
                .delete_document(signed(session, DeleteDocumentRequest { file_id: file_id.clone() }))
                .await
                .expect_err(who);
            let expected = if who == "stranger" && !is_public {
                (Code::NotFound, "file_not_found")
            } else {
                (Code::FailedPrecondition, "file_exists")
            };
            assert_eq!((refused.code(), error_code(&refused)), expected, "{who} (public: {is_public}): {refused:?}");
        }
        let document = documents
            .get_document(signed(&roles.owner, GetDocumentRequest { file_id: file_id.clone(), include_state: false }))
            .await
            .expect("the document is still there")
            .into_inner();
        assert_eq!(document.text, "# edited live\nx = 1\n", "every edit survives (public: {is_public})");

        // Once the file is deleted (over gRPC, where the gateway's clean-up does not follow),
        // its document may be removed by whoever could have deleted the file, and by no one else.
        rooms.delete_file(signed(&roles.owner, DeleteFileRequest { file_id: file_id.clone() })).await.expect("delete");
        for (who, session, expected) in [
            (
                "stranger",
                &roles.stranger,
                if is_public { (Code::PermissionDenied, "not_a_member") } else { (Code::NotFound, "file_not_found") },
            ),
            ("viewer", &roles.viewer, (Code::PermissionDenied, "read_only")),
        ] {
            let refused = documents
                .delete_document(signed(session, DeleteDocumentRequest { file_id: file_id.clone() }))
                .await
                .expect_err(who);
            assert_eq!((refused.code(), error_code(&refused)), expected, "{who} (public: {is_public}): {refused:?}");
        }
        for session in [&roles.editor, &roles.owner] {
            documents
                .delete_document(signed(session, DeleteDocumentRequest { file_id: file_id.clone() }))
                .await
                .expect("an editor or the deleter removes a deleted file's document (again: idempotent)");
        }
    }
}

/// Finding 2 (medium): a direct gRPC caller chose its own address in `x-codesync-client-ip`, so
/// 60 logins with 60 invented addresses were never limited, and gRPC `Register` had no limit.
/// Only the gateway vouches for an address now (with its service credential): anyone else is
/// limited by the address it connects from.
#[tokio::test]
async fn grpc_callers_cannot_choose_the_address_they_are_limited_by() {
    use codesync_proto::auth::v1::auth_service_client::AuthServiceClient;
    use codesync_proto::auth::v1::{LoginRequest, RegisterRequest};
    let cluster = Cluster::one_process(&[
        ("CODESYNC_LOGIN_ATTEMPTS_PER_IP_PER_MINUTE", "5"),
        ("CODESYNC_REGISTRATIONS_PER_IP_PER_HOUR", "3"),
    ])
    .await;
    let mut auth = AuthServiceClient::new(channel(&cluster).await);
    let mut limited = 0;
    for index in 0..60 {
        let mut request =
            tonic::Request::new(LoginRequest { email: "nobody@example.com".into(), password: "wrong password".into() });
        request.metadata_mut().insert("x-codesync-client-ip", format!("203.0.113.{index}").parse().unwrap());
        match auth.login(request).await {
            Err(status) if status.code() == Code::ResourceExhausted => limited += 1,
            Err(status) => assert_eq!(error_code(&status), "invalid_credentials", "{status:?}"),
            Ok(_) => panic!("a wrong password signed in"),
        }
    }
    assert_eq!(limited, 55, "five attempts a minute from this address, whatever it claims to be");
    let mut registered = 0;
    for index in 0..10 {
        let mut request = tonic::Request::new(RegisterRequest {
            username: format!("mass{index}"),
            email: format!("mass{index}@example.com"),
            password: "correct horse battery".into(),
        });
        request.metadata_mut().insert("x-codesync-client-ip", format!("198.51.100.{index}").parse().unwrap());
        match auth.register(request).await {
            Ok(_) => registered += 1,
            Err(status) => assert_eq!((status.code(), error_code(&status)), (Code::ResourceExhausted, "rate_limited")),
        }
    }
    assert_eq!(registered, 3, "registrations are limited per address, over gRPC too");
}

/// A pod that calls the services' gRPC port directly is limited per address as a browser is at
/// the gateway (`CODESYNC_RATE_LIMIT_PER_MINUTE`), while the gateway's own calls, which it has
/// limited already, and the health probes pass.
#[tokio::test]
async fn direct_grpc_callers_are_limited_per_address_like_rest_callers() {
    use codesync_proto::rooms::v1::ListRoomsRequest;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let cluster = Cluster::one_process(&[("CODESYNC_RATE_LIMIT_PER_MINUTE", "30")]).await;
    let alice = cluster.register("alice").await;
    let mut rooms = RoomsServiceClient::new(channel(&cluster).await);
    let mut answered = 0;
    let refusal = loop {
        match rooms.list_rooms(signed(&alice, ListRoomsRequest::default())).await {
            Ok(_) => answered += 1,
            Err(status) => break status,
        }
        assert!(answered <= 30, "more direct calls than the per-address limit were answered");
    };
    assert_eq!((refusal.code(), error_code(&refusal)), (Code::ResourceExhausted, "rate_limited"), "{refusal:?}");
    let retry_after: u64 = refusal
        .metadata()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .expect("a retry-after in seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert!(answered >= 25, "the whole allowance was there ({answered})");

    // Forged metadata buys nothing: a made-up service credential or client address.
    let mut forged = signed(&alice, ListRoomsRequest::default());
    forged.metadata_mut().insert("x-codesync-service", MetadataValue::from_static("eyJhbGciOiJIUzI1NiJ9.e30.x"));
    forged.metadata_mut().insert("x-codesync-client-ip", MetadataValue::from_static("203.0.113.9"));
    let status = rooms.list_rooms(forged).await.expect_err("still limited");
    assert_eq!(status.code(), Code::ResourceExhausted);

    // The probes are not held up; nor is the gateway, which presents its credential: a REST
    // request from another address passes (from this one it would not: REST and gRPC draw
    // from one bucket per address).
    let mut health = HealthClient::new(channel(&cluster).await);
    health.check(HealthCheckRequest { service: String::new() }).await.expect("health answers");
    let (status, body) = cluster.get("/api/rooms", alice.token()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "one bucket per address: {body}");
    let elsewhere = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .expect("a client on another loopback address");
    let response = elsewhere
        .get(format!("{}/api/rooms", cluster.base_url))
        .bearer_auth(alice.token().expect("token"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
}

/// Finding 2, behind a proxy: with `CODESYNC_TRUST_FORWARDED_FOR=true` the gateway took the
/// leftmost `X-Forwarded-For` entry, which the client writes itself behind an appending proxy
/// (260 of 260 requests passed). The entry the proxy appended is the client's address now.
#[tokio::test]
async fn behind_an_appending_proxy_the_client_cannot_choose_its_address() {
    let cluster =
        Cluster::one_process(&[("CODESYNC_TRUST_FORWARDED_FOR", "true"), ("CODESYNC_RATE_LIMIT_PER_MINUTE", "10")])
            .await;
    let mut passed = 0;
    for index in 0..40 {
        let response = cluster
            .http
            .get(format!("{}/api/rooms", cluster.base_url))
            .header("x-forwarded-for", format!("10.{index}.0.1, 198.51.100.7"))
            .send()
            .await
            .unwrap();
        if response.status() != StatusCode::TOO_MANY_REQUESTS {
            passed += 1;
        }
    }
    assert_eq!(passed, 10, "one client behind the proxy, whatever it prepends");
    // Another client behind the same proxy has a limit of its own.
    let response = cluster
        .http
        .get(format!("{}/api/rooms", cluster.base_url))
        .header("x-forwarded-for", "198.51.100.8")
        .send()
        .await
        .unwrap();
    assert_ne!(response.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// Finding 3: services vouch for each other with a credential no client holds. A client that
/// claims to be a service acting for a user, or forges a token with a key it guessed, gets
/// nowhere; usernames are no longer given to anyone who asks (finding 6).
#[tokio::test]
async fn what_only_services_may_say_is_refused_from_clients() {
    use codesync_proto::auth::v1::GetUserProfilesRequest;
    use codesync_proto::auth::v1::auth_service_client::AuthServiceClient;
    let cluster = Cluster::one_process(&[]).await;
    let channel = channel(&cluster).await;
    let roles = room_with_roles(&cluster, false).await;
    let mut documents = DocumentsServiceClient::new(channel.clone());
    let mut impersonating =
        tonic::Request::new(GetDocumentRequest { file_id: roles.file_id.clone(), include_state: false });
    impersonating.metadata_mut().insert("x-codesync-acting-for", roles.owner.user_id.parse().unwrap());
    impersonating.metadata_mut().insert("x-codesync-service", "eyJhbGciOiJIUzI1NiJ9.e30.forged".parse().unwrap());
    let refused =
        documents.get_document(impersonating).await.expect_err("no one acts for the owner without a credential");
    assert_eq!(refused.code(), Code::NotFound, "{refused:?}");
    // The old signing key's algorithm: a token signed HS256 is no session, whatever the key.
    let forged = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4IiwibmFtZSI6IngiLCJhZG0iOnRydWUsInR5cCI6ImFjY2VzcyIsImlzcyI6ImNvZGVzeW5jIiwiaWF0IjowLCJleHAiOjk5OTk5OTk5OTksImp0aSI6IngifQ.AAAA";
    let (status, _) = cluster.get("/api/auth/me", Some(forged)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let mut auth = AuthServiceClient::new(channel);
    let anonymous = auth
        .get_user_profiles(GetUserProfilesRequest { user_ids: vec![roles.owner.user_id.clone()] })
        .await
        .expect_err("profiles need a signed-in caller or a service");
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let profiles = auth
        .get_user_profiles(signed(
            &roles.viewer,
            GetUserProfilesRequest { user_ids: vec![roles.owner.user_id.clone()] },
        ))
        .await
        .expect("a signed-in user may look names up")
        .into_inner();
    assert_eq!(profiles.profiles.len(), 1);
}

/// Finding 4 (medium): requests whose headers never finish held their connections for good:
/// 20,000 of them exhausted the file descriptors and `/healthz` timed out. Now one address holds
/// at most `max_connections_per_address` connections, unfinished headers are dropped after
/// `http_header_timeout_secs`, and the health probe (from another address) keeps answering.
#[tokio::test]
async fn slow_headers_cannot_hold_the_server() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cluster = Cluster::one_process(&[
        ("CODESYNC_MAX_CONNECTIONS_PER_ADDRESS", "50"),
        ("CODESYNC_HTTP_HEADER_TIMEOUT_SECS", "2"),
    ])
    .await;
    let address = cluster.base_url.trim_start_matches("http://").to_string();
    let mut held = Vec::new();
    for _ in 0..400 {
        let mut stream = tokio::net::TcpStream::connect(&address).await.expect("connect");
        let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: codesync\r\nX-Slow: ").await;
        held.push(stream);
    }
    let started = std::time::Instant::now();
    let probe = reqwest::Client::builder()
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .timeout(std::time::Duration::from_secs(2))
        .build()
        .unwrap();
    let answer = probe.get(format!("{}/healthz", cluster.base_url)).send().await.expect("the probe is answered");
    assert_eq!(answer.status(), StatusCode::OK);
    eprintln!("/healthz answered in {} ms while 400 slow requests were held", started.elapsed().as_millis());
    // Everything held is closed by the server: the excess at once, the rest at the timeout.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut buffer = [0u8; 256];
    let mut open = held.len();
    while open > 0 {
        assert!(std::time::Instant::now() < deadline, "{open} slow connections are still open");
        open = 0;
        for stream in &mut held {
            match tokio::time::timeout(std::time::Duration::from_millis(5), stream.read(&mut buffer)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {}
                // Still open (or a 408 answer on its way before the close).
                Ok(Ok(_)) | Err(_) => open += 1,
            }
        }
    }
    // The address may connect again.
    let (status, _) = cluster.get("/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
}

/// Finding 5 (medium): ten endless loops from one user held both run slots and the queue, and
/// everyone else got 429 or 503. A user now holds at most a share of the slots and of the queue,
/// and is told why when refused; someone else's run starts at once meanwhile.
#[tokio::test]
async fn one_user_cannot_take_all_code_execution() {
    let cluster =
        Cluster::one_process(&[("CODESYNC_EXECUTION_CONCURRENCY", "2"), ("CODESYNC_EXECUTION_TIME_LIMIT_SECS", "4")])
            .await;
    let hog = cluster.register("hog").await;
    let other = cluster.register("other").await;
    let loop_forever =
        json!({"language": "python", "files": [{"name": "main.py", "content": "while True:\n    pass\n"}]});
    let mut runs = Vec::new();
    for _ in 0..10 {
        let (http, url, token, body) = (
            cluster.http.clone(),
            format!("{}/api/executions", cluster.base_url),
            hog.access_token.clone(),
            loop_forever.clone(),
        );
        runs.push(tokio::spawn(async move {
            let response = http.post(url).bearer_auth(token).json(&body).send().await.unwrap();
            let status = response.status();
            (status, response.json::<serde_json::Value>().await.unwrap_or_default())
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    let (status, result) = cluster
        .post(
            "/api/executions",
            other.token(),
            json!({"language": "python", "files": [{"name": "main.py", "content": "print('mine')"}]}),
        )
        .await;
    if status == StatusCode::SERVICE_UNAVAILABLE {
        assert_ne!(std::env::var("CODESYNC_TEST_REQUIRE_SANDBOX").as_deref(), Ok("1"), "{result}");
        return;
    }
    assert_eq!((status, result["stdout"].as_str()), (StatusCode::OK, Some("mine\n")), "{result}");
    let waited = started.elapsed();
    eprintln!("another user's run finished in {} ms while ten endless loops were sent", waited.as_millis());
    assert!(waited < std::time::Duration::from_secs(3), "it did not wait for the loops: {waited:?}");
    let mut refused = 0;
    let mut timed_out = 0;
    for run in runs {
        let (status, body) = run.await.unwrap();
        match status {
            StatusCode::TOO_MANY_REQUESTS => {
                let message = body["error"]["message"].as_str().unwrap_or_default();
                assert!(message.contains("as many as one person may"), "{body}");
                refused += 1;
            }
            StatusCode::OK => {
                assert_eq!(body["status"], "time_limit", "{body}");
                timed_out += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((timed_out, refused), (3, 7), "one running and two waiting, seven told why not");
}

/// Finding 6 (low): a correctly signed token for a user that does not exist (any more) created
/// a room; and an outsider's run of a public room's file landed in that room's members-only
/// event log.
#[tokio::test]
async fn a_gone_account_makes_nothing_and_an_outsider_s_run_stays_out_of_the_room_s_log() {
    let database = crate::harness::PostgresDatabase::create();
    let cluster = Cluster::one_process(&[("CODESYNC_DATABASE_URL", &database.url())]).await;
    let ghost = cluster.register("ghost").await;
    database.query_one(&format!("DELETE FROM auth_users WHERE id = '{}' RETURNING id", ghost.user_id));
    let (status, body) = cluster.post("/api/rooms", ghost.token(), json!({"name": "Haunted", "is_public": true})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("account_not_found")),
        "{body}"
    );

    let roles = room_with_roles(&cluster, true).await;
    let (_, rooms) = cluster.get(&format!("/api/files/{}", roles.file_id), roles.owner.token()).await;
    let room_id = rooms["room_id"].as_str().unwrap().to_string();
    for (who, session) in [("stranger", &roles.stranger), ("editor", &roles.editor)] {
        let (status, result) =
            cluster.post("/api/executions", session.token(), json!({"file_id": roles.file_id})).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert_ne!(std::env::var("CODESYNC_TEST_REQUIRE_SANDBOX").as_deref(), Ok("1"), "{result}");
            return;
        }
        assert_eq!(status, StatusCode::OK, "{who}: {result}");
    }
    // The editor's run is in the room's log; the stranger's never is.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (status, log) = cluster.get(&format!("/api/history/room/{room_id}/events"), roles.owner.token()).await;
        assert_eq!(status, StatusCode::OK, "{log}");
        let runs: Vec<&str> = log["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|event| event["type"] == "execution_finished")
            .filter_map(|event| event["user_id"].as_str())
            .collect();
        if !runs.is_empty() {
            assert_eq!(runs, [roles.editor.user_id.as_str()], "only the member's run is the room's");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the member's run never reached the room's log");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Hardening: sessions end when they should. An open WebSocket and event stream end at sign-out
/// (and the access token stops working at once, REST and gRPC alike), and at the token's expiry
/// (the client reconnects with the fresh token it refreshed meanwhile).
#[tokio::test]
async fn streams_end_at_sign_out_and_at_expiry_and_a_signed_out_token_is_refused() {
    use futures::StreamExt;
    let cluster = Cluster::one_process(&[("CODESYNC_ACCESS_TOKEN_TTL_SECS", "4")]).await;
    let roles = room_with_roles(&cluster, false).await;
    let file_url = cluster.ws_url(&format!("/ws/files/{}?token={}", roles.file_id, roles.editor.access_token));
    let mut editor = crate::yjs_client::YjsClient::new(file_url);
    editor.connect().await.unwrap();
    let stream = cluster
        .http
        .get(format!("{}/api/notifications/stream", cluster.base_url))
        .bearer_auth(&roles.editor.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let mut events = stream.bytes_stream();
    let (status, _) =
        cluster.post("/api/auth/logout", None, json!({"refresh_token": roles.editor.refresh_token})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    crate::yjs_client::eventually("the socket closes at sign-out", std::time::Duration::from_secs(3), || {
        editor.received().close.is_some()
    })
    .await;
    assert_eq!(editor.received().close.unwrap().0, 4401);
    let mut seen = String::new();
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout(std::time::Duration::from_secs(3), events.next()).await {
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("session_ended"), "the event stream says why it ends: {seen}");
    let (status, body) = cluster.get("/api/auth/me", roles.editor.token()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("session_ended")));
    let refused = DocumentsServiceClient::new(channel(&cluster).await)
        .get_document(signed(
            &roles.editor,
            GetDocumentRequest { file_id: roles.file_id.clone(), include_state: false },
        ))
        .await
        .expect_err("the token is refused over gRPC too");
    assert_eq!((refused.code(), error_code(&refused)), (Code::Unauthenticated, "session_ended"));
    // Another sign-in's socket goes on until its token expires.
    let (status, body) = cluster.get("/api/auth/me", roles.owner.token()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut owner = crate::yjs_client::YjsClient::new(
        cluster.ws_url(&format!("/ws/files/{}?token={}", roles.file_id, roles.owner.access_token)),
    );
    owner.connect().await.unwrap();
    crate::yjs_client::eventually(
        "the socket closes when its token expires",
        std::time::Duration::from_secs(8),
        || owner.received().close.is_some(),
    )
    .await;
    assert_eq!(owner.received().close.unwrap().0, 4401);
}

/// Hardening: a member removed from a room cannot walk straight back in with the invite code
/// they joined with; streams per user are capped; API answers are neither sniffed nor cached;
/// the SQLite file is the owner's alone; `/metrics` can live on an address of its own.
#[tokio::test]
async fn removal_invite_codes_stream_caps_headers_files_and_metrics() {
    let metrics_port = crate::harness::free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let cluster =
        Cluster::one_process(&[("CODESYNC_MAX_STREAMS_PER_USER", "2"), ("CODESYNC_METRICS_ADDR", &metrics_addr)]).await;
    let roles = room_with_roles(&cluster, false).await;
    let (_, file) = cluster.get(&format!("/api/files/{}", roles.file_id), roles.owner.token()).await;
    let room_id = file["room_id"].as_str().unwrap().to_string();
    let (_, room) = cluster.get(&format!("/api/rooms/{room_id}"), roles.owner.token()).await;
    let old_code = room["invite_code"].as_str().unwrap().to_string();
    let (status, _) = cluster
        .request(
            reqwest::Method::DELETE,
            &format!("/api/rooms/{room_id}/members/{}", roles.editor.user_id),
            roles.owner.token(),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = cluster.post("/api/rooms/join", roles.editor.token(), json!({"invite_code": old_code})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("invite_not_found")), "{body}");
    let (_, room) = cluster.get(&format!("/api/rooms/{room_id}"), roles.owner.token()).await;
    assert_ne!(room["invite_code"].as_str().unwrap(), old_code, "the owner has a new code to share");

    // Two sockets per user at most here.
    let url = cluster.ws_url(&format!("/ws/files/{}?token={}", roles.file_id, roles.owner.access_token));
    let mut first = crate::yjs_client::YjsClient::new(url.clone());
    first.connect().await.unwrap();
    let mut second = crate::yjs_client::YjsClient::new(url.clone());
    second.connect().await.unwrap();
    let mut third = crate::yjs_client::YjsClient::new(url.clone());
    assert_eq!(third.connect().await, Err(429));
    first.disconnect().await;
    let mut again = crate::yjs_client::YjsClient::new(url);
    let mut connected = false;
    for _ in 0..50 {
        if again.connect().await.is_ok() {
            connected = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(connected, "a place frees when a socket closes");

    let response = cluster
        .http
        .get(format!("{}/api/rooms", cluster.base_url))
        .bearer_auth(&roles.owner.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let refused = cluster.http.get(format!("{}/api/rooms/{room_id}", cluster.base_url)).send().await.unwrap();
    assert_eq!(refused.headers()["cache-control"], "no-store", "errors too");

    use std::os::unix::fs::PermissionsExt;
    let database = cluster.data_dir.path().join("data").join("codesync.db");
    let mode = std::fs::metadata(&database).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", database.display());

    let public = cluster.http.get(format!("{}/metrics", cluster.base_url)).send().await.unwrap();
    assert!(!public.text().await.unwrap().contains("codesync_http_requests_total"), "not on the clients' address");
    let private = cluster.http.get(format!("http://{metrics_addr}/metrics")).send().await.unwrap();
    assert_eq!(private.status(), StatusCode::OK);
    assert!(private.text().await.unwrap().contains("codesync_http_requests_total"));
}

/// Hardening: `codesync admin revoke` takes effect at once, not when the token expires.
#[tokio::test]
async fn an_administrator_s_rights_end_at_once() {
    let cluster = Cluster::one_process(&[]).await;
    let admin = cluster.register("chief").await;
    let (status, _) = cluster.get("/api/analytics/overview", admin.token()).await;
    assert_eq!(status, StatusCode::OK);
    let output = std::process::Command::new(crate::harness::binary())
        .args(["admin", "revoke", "chief"])
        .env("CODESYNC_DATA_DIR", cluster.data_dir.path().join("data"))
        .env_remove("CODESYNC_DATABASE_URL")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let (status, body) = cluster.get("/api/analytics/overview", admin.token()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("admin_required")), "{body}");
}
