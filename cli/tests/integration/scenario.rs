//! One collaboration scenario, run against every topology: one process, ten
//! processes with real gRPC between them, and one process on PostgreSQL.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Cluster, PostgresDatabase};

/// register → create room → second user joins by invite → create file →
/// rename → viewer is refused a change → non-member sees 404.
async fn collaboration_scenario(cluster: &Cluster) {
    let owner = cluster.register("owner").await;
    let (status, room) = cluster
        .post(
            "/api/rooms",
            owner.token(),
            json!({"name": "Pair programming", "description": "we code", "is_public": false}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{room}");
    let room_id = room["id"].as_str().unwrap().to_string();
    let invite_code = room["invite_code"].as_str().unwrap().to_string();
    assert_eq!(room["my_role"], "owner");
    assert_eq!(room["owner_id"], owner.user_id.as_str());

    let editor = cluster.register("editor").await;
    let (status, joined) = cluster.post("/api/rooms/join", editor.token(), json!({"invite_code": invite_code})).await;
    assert_eq!(status, StatusCode::OK, "{joined}");
    assert_eq!(joined["id"], room_id.as_str());
    assert_eq!(joined["my_role"], "editor");

    let (status, file) = cluster
        .post(
            &format!("/api/rooms/{room_id}/files"),
            editor.token(),
            json!({"filename": "main.py", "content": "print('hi')\n"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    assert_eq!(file["language"], "python");
    let file_id = file["id"].as_str().unwrap().to_string();

    let (status, renamed) =
        cluster.patch(&format!("/api/files/{file_id}"), editor.token(), json!({"filename": "main.js"})).await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["filename"], "main.js");
    assert_eq!(renamed["language"], "javascript");
    assert_eq!(renamed["content"], "print('hi')\n");

    let viewer = cluster.register("viewer").await;
    let (status, _) = cluster.post("/api/rooms/join", viewer.token(), json!({"invite_code": invite_code})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, member) = cluster
        .patch(&format!("/api/rooms/{room_id}/members/{}", viewer.user_id), owner.token(), json!({"role": "viewer"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{member}");
    assert_eq!(member["role"], "viewer");
    assert_eq!(member["username"], "viewer");

    let (status, body) =
        cluster.patch(&format!("/api/files/{file_id}"), viewer.token(), json!({"content": "hacked"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, file) = cluster.get(&format!("/api/files/{file_id}"), viewer.token()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(file["content"], "print('hi')\n", "the refused change left nothing behind");

    let outsider = cluster.register("outsider").await;
    for path in
        [format!("/api/rooms/{room_id}"), format!("/api/rooms/{room_id}/files"), format!("/api/files/{file_id}")]
    {
        let (status, body) = cluster.get(&path, outsider.token()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }

    // The members' usernames come from the auth service over gRPC.
    let (status, members) = cluster.get(&format!("/api/rooms/{room_id}/members"), owner.token()).await;
    assert_eq!(status, StatusCode::OK);
    let mut names: Vec<&str> =
        members["members"].as_array().unwrap().iter().map(|m| m["username"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["editor", "owner", "viewer"]);
}

#[tokio::test]
async fn scenario_in_one_process() {
    let cluster = Cluster::one_process(&[]).await;
    collaboration_scenario(&cluster).await;
}

#[tokio::test]
async fn scenario_in_ten_processes() {
    let cluster = Cluster::ten_processes(&[]).await;
    collaboration_scenario(&cluster).await;
}

#[tokio::test]
async fn scenario_in_one_process_on_postgresql() {
    let database = PostgresDatabase::create();
    let url = database.url();
    let cluster = Cluster::one_process(&[("CODESYNC_DATABASE_URL", &url)]).await;
    collaboration_scenario(&cluster).await;
}

#[tokio::test]
async fn a_stopped_service_is_a_clear_503_not_a_hang() {
    let mut cluster = Cluster::ten_processes(&[]).await;
    let owner = cluster.register("alice").await;
    cluster.kill("rooms");
    let (status, body) = cluster.get("/api/rooms", owner.token()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "service_unavailable");
    let response = cluster.http.get(format!("{}/readyz", cluster.base_url)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let readiness: serde_json::Value = response.json().await.unwrap();
    assert_eq!(readiness["services"]["rooms"], "UNREACHABLE");
    assert_eq!(readiness["services"]["auth"], "SERVING");
}
