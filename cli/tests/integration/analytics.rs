//! `/api/analytics` on the real binary: what the dashboard shows equals what the test did
//! (accounts, sign-ins, rooms, runs by language, answers by mode, edits, the event log), only
//! administrators see it, `codesync admin grant` makes more, and every service's health is
//! reported.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Cluster, Session, binary};
use crate::yjs_client::{YjsClient, eventually};

const ENDPOINTS: [&str; 6] = [
    "/api/analytics/overview",
    "/api/analytics/executions",
    "/api/analytics/ai",
    "/api/analytics/active-rooms",
    "/api/analytics/events",
    "/api/analytics/health",
];

async fn eventually_equal(cluster: &Cluster, admin: &Session, path: &str, condition: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = cluster.get(path, admin.token()).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        if condition(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{path} never showed what the test did: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn dashboard_figures_equal_what_the_test_did_and_only_administrators_see_them() {
    let (provider_url, _provider) = crate::assistant::stand_in("openai").await;
    let cluster = Cluster::one_process(&[
        ("CODESYNC_AI_PROVIDER", "openai"),
        ("CODESYNC_AI_BASE_URL", &provider_url),
        ("CODESYNC_AI_API_KEY", "sk-analytics"),
        ("CODESYNC_DOCUMENTS_ACTIVITY_WINDOW_MS", "200"),
    ])
    .await;
    // Three accounts (the first is the administrator) and one more sign-in: four sessions.
    let admin = cluster.register("admin").await;
    let bob = cluster.register("bob").await;
    let carol = cluster.register("carol").await;
    let (status, _) = cluster
        .post("/api/auth/login", None, json!({"email": "bob@example.com", "password": "correct horse battery"}))
        .await;
    assert_eq!(status, StatusCode::OK);

    for path in ENDPOINTS {
        let (status, body) = cluster.get(path, bob.token()).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("admin_required")), "{path}");
        let (status, _) = cluster.get(path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
    }

    // Two rooms; bob joins the first and edits its file with the administrator.
    let (_, busy) = cluster.post("/api/rooms", admin.token(), json!({"name": "Busy room", "is_public": false})).await;
    let (_, quiet) = cluster.post("/api/rooms", carol.token(), json!({"name": "Quiet room", "is_public": true})).await;
    assert!(quiet["id"].is_string());
    let busy_id = busy["id"].as_str().unwrap();
    let (status, _) = cluster.post("/api/rooms/join", bob.token(), json!({"invite_code": busy["invite_code"]})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, file) = cluster
        .post(&format!("/api/rooms/{busy_id}/files"), admin.token(), json!({"filename": "main.py", "content": ""}))
        .await;
    let file_id = file["id"].as_str().unwrap();
    let mut editor = YjsClient::new(cluster.ws_url(&format!("/ws/files/{file_id}?token={}&ack=1", bob.access_token)));
    editor.connect().await.unwrap();
    for index in 0..5 {
        editor.insert(0, &format!("edit {index}\n"));
    }
    eventually("the edits are saved", Duration::from_secs(10), || editor.received().saved >= 5).await;

    // Runs: python ok twice, python failing once, javascript once.
    let mut ran = 0;
    for (user, language, name, content) in [
        (&admin, "python", "ok.py", "print('ok')"),
        (&admin, "python", "ok.py", "print('ok again')"),
        (&bob, "python", "fail.py", "raise SystemExit(3)"),
        (&carol, "javascript", "ok.js", "console.log('ok')"),
    ] {
        let (status, result) = cluster
            .post(
                "/api/executions",
                user.token(),
                json!({"language": language, "files": [{"name": name, "content": content}]}),
            )
            .await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert_ne!(std::env::var("CODESYNC_TEST_REQUIRE_SANDBOX").as_deref(), Ok("1"), "{result}");
            continue;
        }
        assert_eq!(status, StatusCode::OK, "{result}");
        ran += 1;
    }
    // Answers: explain twice, review once.
    for mode in ["explain", "explain", "review"] {
        let response = cluster
            .post_raw(
                "/api/ai/stream",
                bob.token(),
                "application/json",
                json!({"mode": mode, "code": "x = 1"}).to_string().into_bytes(),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let text = response.text().await.unwrap();
        assert!(text.contains("event: done"), "{text}");
    }
    editor.disconnect().await;

    let overview = eventually_equal(&cluster, &admin, "/api/analytics/overview", |body| {
        body["executions"] == ran && body["ai_calls"] == 3 && body["collaboration_ops"].as_i64() >= Some(5)
    })
    .await;
    assert_eq!(
        (overview["users"].as_i64(), overview["sessions"].as_i64(), overview["rooms"].as_i64()),
        (Some(3), Some(4), Some(2)),
        "{overview}"
    );
    assert_eq!(
        (overview["executions_last_day"].as_i64(), overview["ai_calls_last_day"].as_i64()),
        (Some(ran), Some(3))
    );
    if ran == 4 {
        let executions = eventually_equal(&cluster, &admin, "/api/analytics/executions", |body| {
            body["languages"].as_array().is_some_and(|l| l.len() == 2)
        })
        .await;
        let python = &executions["languages"][0];
        assert_eq!((python["language"].as_str(), python["count"].as_i64()), (Some("python"), Some(3)), "{executions}");
        assert!((python["success_rate"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9);
        assert!(python["average_wall_time_ms"].as_f64().unwrap() > 0.0);
        let histogram: i64 =
            executions["wall_time_histogram"].as_array().unwrap().iter().map(|b| b["count"].as_i64().unwrap()).sum();
        assert_eq!(histogram, 4);
    }
    let ai = eventually_equal(&cluster, &admin, "/api/analytics/ai", |body| {
        body["modes"].as_array().is_some_and(|m| m.len() == 2)
    })
    .await;
    assert_eq!((ai["modes"][0]["mode"].as_str(), ai["modes"][0]["count"].as_i64()), (Some("explain"), Some(2)), "{ai}");
    assert_eq!((ai["modes"][1]["mode"].as_str(), ai["modes"][1]["count"].as_i64()), (Some("review"), Some(1)));
    assert_eq!(ai["modes"][0]["success_rate"].as_f64(), Some(1.0));

    let rooms = eventually_equal(&cluster, &admin, "/api/analytics/active-rooms", |body| {
        body["rooms"].as_array().is_some_and(|r| !r.is_empty())
    })
    .await;
    let leader = &rooms["rooms"][0];
    assert_eq!((leader["name"].as_str(), leader["member_count"].as_i64()), (Some("Busy room"), Some(2)), "{rooms}");
    assert!(leader["events_last_day"].as_i64().unwrap() > 3);

    let (status, events) = cluster.get("/api/analytics/events?type=ai_request_finished", admin.token()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(events["events"].as_array().unwrap().len(), 3);
    assert_eq!(events["events"][0]["topic"], "ai-events");
    let (_, events) = cluster.get("/api/analytics/events?limit=500", admin.token()).await;
    let registered = events["events"].as_array().unwrap().iter().filter(|e| e["type"] == "user_registered").count();
    assert_eq!(registered, 3);

    let (status, health) = cluster.get("/api/analytics/health", admin.token()).await;
    assert_eq!(status, StatusCode::OK);
    let services = health["services"].as_array().unwrap();
    assert_eq!(services.len(), 9);
    assert!(services.iter().all(|service| service["status"] == "SERVING"), "{health}");

    // `codesync admin grant bob`: bob's next token is an administrator's.
    let output = std::process::Command::new(binary())
        .args(["admin", "grant", "bob"])
        .env("CODESYNC_DATA_DIR", cluster.data_dir.path().join("data"))
        .env_remove("CODESYNC_DATABASE_URL")
        .output()
        .expect("run codesync admin grant");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("bob (bob@example.com) is now an administrator"));
    let (status, refreshed) =
        cluster.post("/api/auth/refresh", None, json!({"refresh_token": bob.refresh_token})).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let (status, _) = cluster.get("/api/analytics/overview", refreshed["access_token"].as_str()).await;
    assert_eq!(status, StatusCode::OK);
    let output = std::process::Command::new(binary())
        .args(["admin", "grant", "nobody"])
        .env("CODESYNC_DATA_DIR", cluster.data_dir.path().join("data"))
        .output()
        .expect("run codesync admin grant");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no user is named 'nobody'"));
}
