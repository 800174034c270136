//! Bad input of every kind gets a clear 4xx in the error shape, never a 500,
//! and changes nothing.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{Cluster, read};

#[tokio::test]
async fn malformed_missing_extra_and_mistyped_bodies() {
    let cluster = Cluster::one_process(&[]).await;
    let ada = cluster.register("ada").await;
    let (_, room) = cluster.post("/api/rooms", ada.token(), json!({"name": "R", "is_public": false})).await;
    let room_id = room["id"].as_str().unwrap();
    let endpoints = [
        "/api/auth/register".to_string(),
        "/api/auth/login".to_string(),
        "/api/auth/refresh".to_string(),
        "/api/auth/logout".to_string(),
        "/api/rooms".to_string(),
        "/api/rooms/join".to_string(),
        format!("/api/rooms/{room_id}/files"),
    ];
    for path in &endpoints {
        for (body, expected_status, expected_code) in [
            (&b"{"[..], StatusCode::BAD_REQUEST, "malformed_json"),
            (&b"{,}"[..], StatusCode::BAD_REQUEST, "malformed_json"),
            (&b"not json at all"[..], StatusCode::BAD_REQUEST, "malformed_json"),
            (&b"\xff\xfe\x00garbage"[..], StatusCode::BAD_REQUEST, "malformed_json"),
            (&b"[1, 2, 3]"[..], StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
            (&b"{}"[..], StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
            (&b"null"[..], StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        ] {
            let response = cluster.post_raw(path, ada.token(), "application/json", body.to_vec()).await;
            let (status, answer) = read(response).await;
            assert_eq!(status, expected_status, "{path} {:?}: {answer}", String::from_utf8_lossy(body));
            assert_eq!(answer["error"]["code"], expected_code);
        }
        let response = cluster.post_raw(path, ada.token(), "text/plain", b"{}".to_vec()).await;
        let (status, _) = read(response).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{path}");
    }

    let shape_errors = [
        ("/api/auth/register", json!({"username": "bob", "email": "bob@example.com"})),
        (
            "/api/auth/register",
            json!({"username": "bob", "email": "bob@example.com", "password": "12345678", "is_admin": true}),
        ),
        ("/api/auth/register", json!({"username": 42, "email": "bob@example.com", "password": "12345678"})),
        ("/api/rooms", json!({"name": "x"})),
        ("/api/rooms", json!({"name": "x", "is_public": "yes"})),
        ("/api/rooms", json!({"name": "x", "is_public": false, "owner_id": ada.user_id})),
    ];
    for (path, body) in shape_errors {
        let (status, answer) = cluster.post(path, ada.token(), body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path} {body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains("field") || message.contains("type") || message.contains("expected"), "{message}");
    }
    // Nothing was created by any of it.
    let (_, rooms) = cluster.get("/api/rooms", ada.token()).await;
    assert_eq!(rooms["rooms"].as_array().unwrap().len(), 1);
    let (status, _) =
        cluster.post("/api/auth/login", None, json!({"email": "bob@example.com", "password": "12345678"})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no account was registered by a refused body");
}

#[tokio::test]
async fn oversized_bodies_and_contents_are_413() {
    let cluster = Cluster::one_process(&[]).await;
    let ada = cluster.register("ada").await;
    let (_, room) = cluster.post("/api/rooms", ada.token(), json!({"name": "R", "is_public": false})).await;
    let files_path = format!("/api/rooms/{}/files", room["id"].as_str().unwrap());

    let huge = "x".repeat(3 * 1024 * 1024);
    let body = serde_json::to_vec(&json!({"filename": "big.txt", "content": huge})).unwrap();
    let (status, answer) = read(cluster.post_raw(&files_path, ada.token(), "application/json", body).await).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(answer["error"]["code"], "payload_too_large");

    // Under the body limit but over the file limit.
    let (status, answer) = cluster
        .post(&files_path, ada.token(), json!({"filename": "big.txt", "content": "x".repeat(1024 * 1024 + 1)}))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(answer["error"]["code"], "file_too_large");
    let (_, listing) = cluster.get(&files_path, ada.token()).await;
    assert!(listing["files"].as_array().unwrap().is_empty());

    let (status, _) =
        cluster.post(&files_path, ada.token(), json!({"filename": "ok.txt", "content": "x".repeat(1024 * 1024)})).await;
    assert_eq!(status, StatusCode::CREATED, "exactly 1 MiB is allowed");
}

#[tokio::test]
async fn hostile_names_are_refused_and_unicode_is_welcome() {
    let cluster = Cluster::one_process(&[]).await;
    let ada = cluster.register("ada").await;
    let (_, room) = cluster.post("/api/rooms", ada.token(), json!({"name": "R", "is_public": false})).await;
    let files_path = format!("/api/rooms/{}/files", room["id"].as_str().unwrap());
    let ten_kb = "a".repeat(10 * 1024);

    for filename in [
        "../../etc/passwd",
        "/abs/b.py",
        "a//b.py",
        "..\\win.ini",
        "..",
        ".",
        "",
        "tab\there.py",
        "new\nline.py",
        "nul\u{0}.py",
        "bell\u{7}.py",
        "rtl\u{202E}yp.exe",
        " padded.py",
        ten_kb.as_str(),
    ] {
        let (status, answer) = cluster.post(&files_path, ada.token(), json!({"filename": filename})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{filename:?}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_filename");
    }
    for filename in ["日本語.py", "émoji-🚀.js", "Ωmega.cpp", "with space.txt", ".gitignore"] {
        let (status, answer) = cluster.post(&files_path, ada.token(), json!({"filename": filename})).await;
        assert_eq!(status, StatusCode::CREATED, "{filename:?}: {answer}");
        assert_eq!(answer["filename"], filename);
    }
    for name in ["", "   ", "line\nbreak", "nul\u{0}", ten_kb.as_str()] {
        let (status, answer) = cluster.post("/api/rooms", ada.token(), json!({"name": name, "is_public": true})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name:?}: {answer}");
    }
    let (status, _) =
        cluster.post("/api/rooms", ada.token(), json!({"name": "Ünïcødé 房间 🎉", "is_public": true})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) =
        cluster.post("/api/rooms", ada.token(), json!({"name": "x", "description": ten_kb, "is_public": true})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    for (username, email, password) in [
        (ten_kb.as_str(), "a@example.com", "12345678"),
        ("bob\u{0}", "b@example.com", "12345678"),
        ("bob", &*format!("{ten_kb}@example.com"), "12345678"),
        ("bob", "bob@example.com", ten_kb.as_str()),
        ("bob", "bob@exa\nmple.com", "12345678"),
    ] {
        let (status, answer) = cluster
            .post("/api/auth/register", None, json!({"username": username, "email": email, "password": password}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    }
    let (status, _) = cluster.post("/api/auth/login", None, json!({"email": ten_kb, "password": ten_kb})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn odd_paths_and_methods() {
    let cluster = Cluster::one_process(&[]).await;
    let ada = cluster.register("ada").await;
    let long_id = "x".repeat(4000);
    for path in [
        "/api/rooms/not-a-uuid",
        "/api/rooms/%2e%2e%2fetc",
        "/api/rooms/%00",
        "/api/files/'; DROP TABLE rooms; --",
        &format!("/api/files/{long_id}"),
        "/api/rooms/00000000-0000-0000-0000-000000000000/files",
    ] {
        let (status, answer) = cluster.get(path, ada.token()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {answer}");
    }
    let (status, answer) = cluster.get("/api/nothing/here", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(answer["error"]["code"], "not_found");
    let (status, answer) = cluster.request(Method::PUT, "/api/rooms", ada.token(), Some(json!({}))).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer["error"]["code"], "method_not_allowed");
    let (status, answer) = cluster.request(Method::DELETE, "/api/auth/me", ada.token(), None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{answer}");
    // The rooms table survived the injection attempt above.
    let (status, _) = cluster.post("/api/rooms", ada.token(), json!({"name": "still here", "is_public": false})).await;
    assert_eq!(status, StatusCode::CREATED);
}
