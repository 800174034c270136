//! Stock Yjs clients from npm (`yjs`, `y-websocket`, `ws`) against the real
//! server: `tests/interop/collaborate.mjs`, run by Node. `make test` installs
//! the packages and sets `CODESYNC_TEST_INTEROP_DIR`.

use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::Cluster;

fn interop_dir() -> String {
    std::env::var("CODESYNC_TEST_INTEROP_DIR")
        .expect("CODESYNC_TEST_INTEROP_DIR is not set: run `make test`, which installs tests/interop's npm packages")
}

#[tokio::test]
async fn stock_yjs_and_y_websocket_clients_converge_and_share_awareness() {
    let cluster = Cluster::one_process(&[]).await;
    stock_clients_converge(&cluster, 0, 0).await;
}

/// Two stock clients, alice through the `gateway_a`th gateway and bob through the `gateway_b`th,
/// type at once into one new file: both converge on the same text, which the server holds, and
/// bob sees alice's cursor with her name.
pub async fn stock_clients_converge(cluster: &Cluster, gateway_a: usize, gateway_b: usize) {
    let directory = interop_dir();
    let alice = cluster.register("alice").await;
    let bob = cluster.register("bob").await;
    let (status, room) =
        cluster.post("/api/rooms", alice.token(), json!({"name": "Interop", "is_public": false})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) =
        cluster.post("/api/rooms/join", bob.token(), json!({"invite_code": room["invite_code"].clone()})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, file) = cluster
        .post(
            &format!("/api/rooms/{}/files", room["id"].as_str().unwrap()),
            alice.token(),
            json!({"filename": "app.js", "content": "console.log(1)\n"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let file_id = file["id"].as_str().unwrap().to_string();

    let (server_a, server_b) = (cluster.ws_url_at(gateway_a, ""), cluster.ws_url_at(gateway_b, ""));
    let (token_a, token_b) = (alice.access_token.clone(), bob.access_token.clone());
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("collaborate.mjs")
            .current_dir(directory)
            .env("CODESYNC_WS", server_a)
            .env("CODESYNC_WS_B", server_b)
            .env("FILE_ID", &file_id)
            .env("TOKEN_A", token_a)
            .env("TOKEN_B", token_b)
            .env("NAME_A", "alice")
            .output()
            .expect("run node (Node.js 20 or later must be installed)")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "the npm clients failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let summary: Value = serde_json::from_str(stdout.trim()).expect("a JSON summary");
    let text = summary["text"].as_str().unwrap();
    assert_eq!(text.matches('a').count(), 40);
    assert_eq!(text.matches('b').count(), 40);
    let original: String = text.chars().filter(|c| !matches!(c, 'a' | 'b' | '|')).collect();
    assert_eq!(original, "console.log(1)\n", "the seeded text is intact around the edits");
    let (status, stored) = cluster.get(&format!("/api/files/{}", file["id"].as_str().unwrap()), bob.token()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stored["content"].as_str().unwrap(), text, "the server holds what both clients converged to");
}
