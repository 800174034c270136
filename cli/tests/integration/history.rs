//! `/api/history` on the real binary: versions numbered without gaps under concurrent saves (on
//! SQLite and PostgreSQL), diffs, restore as a collaborative edit that two connected clients see
//! and that keeps an edit made concurrently elsewhere, stale restores refused, checkpoints after
//! a pause in editing, and the room's event log.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Cluster, PostgresDatabase, Session};
use crate::yjs_client::{YjsClient, eventually};

/// A room of `owner`'s with one file holding `content`: (room id, file id, invite code).
async fn room_with_file(cluster: &Cluster, owner: &Session, content: &str) -> (String, String, String) {
    let (status, room) =
        cluster.post("/api/rooms", owner.token(), json!({"name": "History", "is_public": false})).await;
    assert_eq!(status, StatusCode::CREATED, "{room}");
    let room_id = room["id"].as_str().unwrap().to_string();
    let (status, file) = cluster
        .post(
            &format!("/api/rooms/{room_id}/files"),
            owner.token(),
            json!({"filename": "notes.txt", "content": content}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    (room_id, file["id"].as_str().unwrap().to_string(), room["invite_code"].as_str().unwrap().to_string())
}

fn numbered_lines(count: usize) -> String {
    (1..=count).map(|line| format!("line {line}\n")).collect()
}

/// The UTF-16 index just after `needle` in `text` (ASCII here).
fn index_after(text: &str, needle: &str) -> u32 {
    let start = text.find(needle).unwrap_or_else(|| panic!("{needle:?} is not in the text"));
    u32::try_from(start + needle.len()).unwrap()
}

async fn save(cluster: &Cluster, user: &Session, file_id: &str, message: &str) -> Value {
    let (status, version) =
        cluster.post(&format!("/api/history/file/{file_id}"), user.token(), json!({"message": message})).await;
    assert_eq!(status, StatusCode::CREATED, "{version}");
    version
}

async fn versions(cluster: &Cluster, user: &Session, file_id: &str) -> Vec<Value> {
    let (status, listed) = cluster.get(&format!("/api/history/file/{file_id}?limit=200"), user.token()).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    listed["versions"].as_array().unwrap().clone()
}

async fn concurrent_saves_take_every_number_once(cluster: &Cluster) {
    let owner = cluster.register("saver").await;
    let editor = cluster.register("cosaver").await;
    let (_, file_id, invite_code) = room_with_file(cluster, &owner, "start\n").await;
    let (status, _) = cluster.post("/api/rooms/join", editor.token(), json!({"invite_code": invite_code})).await;
    assert_eq!(status, StatusCode::OK);
    let saves = (0..24).map(|index| {
        let user = if index % 2 == 0 { owner.clone() } else { editor.clone() };
        let file_id = file_id.clone();
        async move { cluster.post(&format!("/api/history/file/{file_id}"), user.token(), json!({})).await }
    });
    for (status, version) in futures::future::join_all(saves).await {
        assert_eq!(status, StatusCode::CREATED, "{version}");
    }
    let listed = versions(cluster, &owner, &file_id).await;
    let numbers: Vec<i64> = listed.iter().map(|version| version["number"].as_i64().unwrap()).collect();
    assert_eq!(numbers, (1..=24).rev().collect::<Vec<i64>>(), "newest first, every number once");
    assert!(listed.iter().all(|version| version["kind"] == "save"));
    // A save without a body is a save too.
    let response =
        cluster.post_raw(&format!("/api/history/file/{file_id}"), owner.token(), "application/json", Vec::new()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn concurrent_saves_number_versions_without_gaps_on_sqlite() {
    let cluster = Cluster::one_process(&[]).await;
    concurrent_saves_take_every_number_once(&cluster).await;
}

#[tokio::test]
async fn concurrent_saves_number_versions_without_gaps_on_postgres_with_a_process_per_service() {
    let database = PostgresDatabase::create();
    let url = database.url();
    let cluster = Cluster::ten_processes(&[("CODESYNC_DATABASE_URL", &url)]).await;
    concurrent_saves_take_every_number_once(&cluster).await;
    assert_eq!(database.query_one("SELECT COUNT(DISTINCT number) FROM file_versions"), "25");
}

#[tokio::test]
async fn a_restore_reaches_both_clients_keeps_a_concurrent_edit_and_a_stale_one_is_refused() {
    // Edits are announced quickly, so the history knows who made the unsaved ones.
    let cluster = Cluster::one_process(&[("CODESYNC_DOCUMENTS_ACTIVITY_WINDOW_MS", "100")]).await;
    let owner = cluster.register("restorer").await;
    let editor = cluster.register("bystander").await;
    let viewer = cluster.register("onlooker").await;
    let stranger = cluster.register("stranger").await;
    let original = numbered_lines(60);
    let (room_id, file_id, invite_code) = room_with_file(&cluster, &owner, &original).await;
    for user in [&editor, &viewer] {
        let (status, _) = cluster.post("/api/rooms/join", user.token(), json!({"invite_code": invite_code})).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _) = cluster
        .patch(&format!("/api/rooms/{room_id}/members/{}", viewer.user_id), owner.token(), json!({"role": "viewer"}))
        .await;
    assert_eq!(status, StatusCode::OK);

    let connect =
        |user: &Session| YjsClient::new(cluster.ws_url(&format!("/ws/files/{file_id}?token={}", user.access_token)));
    let mut first = connect(&owner);
    let mut second = connect(&editor);
    first.connect().await.unwrap();
    second.connect().await.unwrap();
    eventually("both clients hold the file", Duration::from_secs(10), || {
        first.content() == original && second.content() == original
    })
    .await;

    let version_one = save(&cluster, &owner, &file_id, "the original").await;
    assert_eq!((version_one["number"].as_i64(), version_one["author_username"].as_str()), (Some(1), Some("restorer")));
    assert_eq!(version_one["lines_added"].as_i64(), Some(60));
    // Line 5 changes, and is saved as version 2.
    let at = index_after(&first.content(), "line 5");
    first.insert(at, " (edited)");
    eventually("the edit reaches the other client", Duration::from_secs(10), || {
        second.content().contains("line 5 (edited)\n")
    })
    .await;
    let version_two = save(&cluster, &editor, &file_id, "").await;
    assert_eq!((version_two["number"].as_i64(), version_two["lines_added"].as_i64()), (Some(2), Some(1)));
    assert_eq!(version_two["lines_removed"].as_i64(), Some(1));

    // The diff between them, and each version's content.
    let (status, diff) = cluster
        .get(
            &format!(
                "/api/history/diff?from={}&to={}",
                version_one["id"].as_str().unwrap(),
                version_two["id"].as_str().unwrap()
            ),
            owner.token(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{diff}");
    let unified = diff["unified_diff"].as_str().unwrap();
    assert!(unified.contains("--- version 1") && unified.contains("+++ version 2"), "{unified}");
    assert!(unified.contains("\n-line 5\n+line 5 (edited)\n"), "{unified}");
    let (status, read) =
        cluster.get(&format!("/api/history/version/{}", version_one["id"].as_str().unwrap()), viewer.token()).await;
    assert_eq!((status, read["content"].as_str()), (StatusCode::OK, Some(original.as_str())), "viewers read versions");

    // The bystander types on line 50 at the moment of the restore: the edit is made on its copy
    // before the restore reaches it, and sent after.
    let at = index_after(&second.content(), "line 50");
    let concurrent_edit = second.insert_unsent(at, " (bystander)");
    let (status, restored) = cluster
        .post(
            &format!("/api/history/restore/{}", version_one["id"].as_str().unwrap()),
            owner.token(),
            json!({"expected_head": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{restored}");
    assert_eq!((restored["number"].as_i64(), restored["kind"].as_str()), (Some(3), Some("restore")));
    assert_eq!(restored["message"], "Restored version 1");
    second.send_update(&concurrent_edit);

    let expected = original.replace("line 50\n", "line 50 (bystander)\n");
    eventually("both clients see the restore and the bystander's edit", Duration::from_secs(10), || {
        first.content() == expected && second.content() == expected
    })
    .await;
    let (status, file) = cluster.get(&format!("/api/files/{file_id}"), owner.token()).await;
    assert_eq!((status, file["content"].as_str()), (StatusCode::OK, Some(expected.as_str())), "the server agrees");

    // A restore based on an old head is refused; so are viewers and strangers.
    let restore_path = format!("/api/history/restore/{}", version_two["id"].as_str().unwrap());
    let (status, body) = cluster.post(&restore_path, editor.token(), json!({"expected_head": 2})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("stale_head")), "{body}");
    let (status, _) = cluster.post(&restore_path, viewer.token(), json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = cluster.post(&format!("/api/history/file/{file_id}"), viewer.token(), json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for path in [
        format!("/api/history/file/{file_id}"),
        format!("/api/history/version/{}", version_one["id"].as_str().unwrap()),
    ] {
        let (status, body) = cluster.get(&path, stranger.token()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    let (status, _) = cluster.get(&format!("/api/history/room/{room_id}/events"), stranger.token()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for bad in ["/api/history/diff?from=x", "/api/history/file/x?limit=0", "/api/history/file/x?limit=abc"] {
        let (status, _) = cluster.get(bad, owner.token()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let response = cluster
        .post_raw(&format!("/api/history/file/{file_id}"), owner.token(), "application/json", b"{\"message\":".to_vec())
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "malformed JSON");

    // The newest first: the restore, then the two saves; the restore's content is the result.
    let listed = versions(&cluster, &viewer, &file_id).await;
    let kinds: Vec<(i64, &str)> =
        listed.iter().map(|version| (version["number"].as_i64().unwrap(), version["kind"].as_str().unwrap())).collect();
    assert_eq!(kinds, [(3, "restore"), (2, "save"), (1, "save")]);
    let (_, read) =
        cluster.get(&format!("/api/history/version/{}", restored["id"].as_str().unwrap()), owner.token()).await;
    assert_eq!(read["content"].as_str(), Some(original.as_str()), "the restored content, as the restore made it");

    // The room's log has what happened, newest first.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, log) = cluster.get(&format!("/api/history/room/{room_id}/events"), editor.token()).await;
        assert_eq!(status, StatusCode::OK, "{log}");
        let types: Vec<&str> =
            log["events"].as_array().unwrap().iter().map(|event| event["type"].as_str().unwrap()).collect();
        let has = |kind: &str| types.contains(&kind);
        if has("room_created")
            && has("file_created")
            && has("member_joined")
            && has("member_role_changed")
            && types.iter().filter(|kind| **kind == "version_created").count() == 3
        {
            assert_eq!(types.first(), Some(&"version_created"), "{types:?}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the room's log lacks events: {types:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The bystander's edit is in no version yet: a restore keeps it as one before undoing it,
    // with its author (announced within the 100 ms activity window).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, again) = cluster
        .post(
            &format!("/api/history/restore/{}", version_two["id"].as_str().unwrap()),
            owner.token(),
            json!({"expected_head": 3}),
        )
        .await;
    assert_eq!((status, again["number"].as_i64()), (StatusCode::CREATED, Some(5)), "{again}");
    let listed = versions(&cluster, &owner, &file_id).await;
    assert_eq!((listed[1]["number"].as_i64(), listed[1]["kind"].as_str()), (Some(4), Some("checkpoint")));
    assert_eq!(listed[1]["message"], "Kept before a restore");
    let kept_by: Vec<&str> =
        listed[1]["authors"].as_array().unwrap().iter().map(|author| author["username"].as_str().unwrap()).collect();
    assert!(kept_by.contains(&"bystander"), "the kept edits are (also) the bystander's: {kept_by:?}");
    let (_, kept) =
        cluster.get(&format!("/api/history/version/{}", listed[1]["id"].as_str().unwrap()), owner.token()).await;
    assert_eq!(kept["content"].as_str(), Some(expected.as_str()));
    let version_two_content = original.replace("line 5\n", "line 5 (edited)\n");
    eventually("both clients see version 2 again", Duration::from_secs(10), || {
        first.content() == version_two_content && second.content() == version_two_content
    })
    .await;
    first.disconnect().await;
    second.disconnect().await;
}

#[tokio::test]
async fn a_checkpoint_is_taken_after_a_pause_in_editing_with_every_editor_as_author() {
    let cluster = Cluster::one_process(&[
        ("CODESYNC_HISTORY_CHECKPOINT_IDLE_SECS", "1"),
        ("CODESYNC_DOCUMENTS_ACTIVITY_WINDOW_MS", "200"),
    ])
    .await;
    let owner = cluster.register("typist").await;
    let editor = cluster.register("cotypist").await;
    let (_, file_id, invite_code) = room_with_file(&cluster, &owner, "").await;
    let (status, _) = cluster.post("/api/rooms/join", editor.token(), json!({"invite_code": invite_code})).await;
    assert_eq!(status, StatusCode::OK);
    let mut first = YjsClient::new(cluster.ws_url(&format!("/ws/files/{file_id}?token={}", owner.access_token)));
    let mut second = YjsClient::new(cluster.ws_url(&format!("/ws/files/{file_id}?token={}", editor.access_token)));
    first.connect().await.unwrap();
    second.connect().await.unwrap();
    first.insert(0, "fn main() {}\n");
    second.insert(0, "// by two\n");
    eventually("both edits meet", Duration::from_secs(10), || first.content() == second.content() && first.len() > 20)
        .await;

    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let checkpoint = loop {
        let listed = versions(&cluster, &owner, &file_id).await;
        if let Some(version) = listed.first() {
            break version.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no checkpoint after the pause");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        (checkpoint["number"].as_i64(), checkpoint["kind"].as_str()),
        (Some(1), Some("checkpoint")),
        "{checkpoint}"
    );
    let mut authors: Vec<&str> =
        checkpoint["authors"].as_array().unwrap().iter().map(|author| author["username"].as_str().unwrap()).collect();
    authors.sort_unstable();
    assert_eq!(authors, ["cotypist", "typist"]);
    let (_, read) =
        cluster.get(&format!("/api/history/version/{}", checkpoint["id"].as_str().unwrap()), owner.token()).await;
    assert_eq!(read["content"].as_str(), Some(first.content().as_str()));
    // Nothing new: no second checkpoint.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(versions(&cluster, &owner, &file_id).await.len(), 1);
    first.disconnect().await;
    second.disconnect().await;
}
