//! Every room, member and file endpoint for owner, editor, viewer, non-member
//! and anonymous callers, on a private and on a public room.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Cluster, Session};

struct Room {
    id: String,
    invite_code: String,
}

struct Cast {
    owner: Session,
    editor: Session,
    viewer: Session,
    outsider: Session,
}

async fn create_room(cluster: &Cluster, owner: &Session, name: &str, is_public: bool) -> Room {
    let (status, room) = cluster.post("/api/rooms", owner.token(), json!({"name": name, "is_public": is_public})).await;
    assert_eq!(status, StatusCode::CREATED, "{room}");
    Room { id: room["id"].as_str().unwrap().into(), invite_code: room["invite_code"].as_str().unwrap().into() }
}

async fn join_as(cluster: &Cluster, owner: &Session, room: &Room, member: &Session, role: &str) {
    let (status, joined) =
        cluster.post("/api/rooms/join", member.token(), json!({"invite_code": room.invite_code})).await;
    assert_eq!(status, StatusCode::OK, "{joined}");
    if role != "editor" {
        let path = format!("/api/rooms/{}/members/{}", room.id, member.user_id);
        let (status, body) = cluster.patch(&path, owner.token(), json!({"role": role})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

async fn cast(cluster: &Cluster) -> Cast {
    Cast {
        owner: cluster.register("owner").await,
        editor: cluster.register("editor").await,
        viewer: cluster.register("viewer").await,
        outsider: cluster.register("outsider").await,
    }
}

async fn create_file(cluster: &Cluster, session: &Session, room: &Room, filename: &str) -> String {
    let (status, file) = cluster
        .post(
            &format!("/api/rooms/{}/files", room.id),
            session.token(),
            json!({"filename": filename, "content": "x = 1\n"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    file["id"].as_str().unwrap().to_string()
}

/// Sends the request as each caller and checks each status.
async fn expect(
    cluster: &Cluster,
    method: Method,
    path: &str,
    body: Option<Value>,
    callers: &[(&str, Option<&Session>, StatusCode)],
) {
    for (who, session, expected) in callers {
        let token = session.map(|session| session.access_token.as_str());
        let (status, answer) = cluster.request(method.clone(), path, token, body.clone()).await;
        assert_eq!(status, *expected, "{method} {path} as {who}: {answer}");
    }
}

#[tokio::test]
async fn private_room_endpoints_for_every_caller() {
    let cluster = Cluster::one_process(&[]).await;
    let Cast { owner, editor, viewer, outsider } = cast(&cluster).await;
    let room = create_room(&cluster, &owner, "Private", false).await;
    join_as(&cluster, &owner, &room, &editor, "editor").await;
    join_as(&cluster, &owner, &room, &viewer, "viewer").await;
    let file_id = create_file(&cluster, &owner, &room, "main.py").await;
    let room_path = format!("/api/rooms/{}", room.id);
    let file_path = format!("/api/files/{file_id}");
    use StatusCode as S;

    // Reading: members only; everyone else is told the room does not exist.
    for path in [room_path.clone(), format!("{room_path}/members"), format!("{room_path}/files"), file_path.clone()] {
        expect(
            &cluster,
            Method::GET,
            &path,
            None,
            &[
                ("owner", Some(&owner), S::OK),
                ("editor", Some(&editor), S::OK),
                ("viewer", Some(&viewer), S::OK),
                ("non-member", Some(&outsider), S::NOT_FOUND),
                ("anonymous", None, S::NOT_FOUND),
            ],
        )
        .await;
    }

    // The invite code is shown to those who may edit.
    let (_, as_editor) = cluster.get(&room_path, editor.token()).await;
    assert_eq!(as_editor["invite_code"], room.invite_code.as_str());
    let (_, as_viewer) = cluster.get(&room_path, viewer.token()).await;
    assert_eq!(as_viewer["invite_code"], Value::Null);
    assert_eq!(as_viewer["my_role"], "viewer");

    // Room settings and invite codes: the owner only.
    expect(
        &cluster,
        Method::PATCH,
        &room_path,
        Some(json!({"description": "changed"})),
        &[
            ("editor", Some(&editor), S::FORBIDDEN),
            ("viewer", Some(&viewer), S::FORBIDDEN),
            ("non-member", Some(&outsider), S::NOT_FOUND),
            ("anonymous", None, S::UNAUTHORIZED),
            ("owner", Some(&owner), S::OK),
        ],
    )
    .await;
    expect(
        &cluster,
        Method::POST,
        &format!("{room_path}/invite-code"),
        None,
        &[
            ("editor", Some(&editor), S::FORBIDDEN),
            ("viewer", Some(&viewer), S::FORBIDDEN),
            ("non-member", Some(&outsider), S::NOT_FOUND),
            ("anonymous", None, S::UNAUTHORIZED),
        ],
    )
    .await;

    // Files: owner and editors change them; viewers may not.
    expect(
        &cluster,
        Method::POST,
        &format!("{room_path}/files"),
        Some(json!({"filename": "new.py"})),
        &[
            ("viewer", Some(&viewer), S::FORBIDDEN),
            ("non-member", Some(&outsider), S::NOT_FOUND),
            ("anonymous", None, S::UNAUTHORIZED),
            ("editor", Some(&editor), S::CREATED),
        ],
    )
    .await;
    expect(
        &cluster,
        Method::POST,
        &format!("{room_path}/files"),
        Some(json!({"filename": "owners.py"})),
        &[("owner", Some(&owner), S::CREATED)],
    )
    .await;
    expect(
        &cluster,
        Method::PATCH,
        &file_path,
        Some(json!({"content": "y = 2\n"})),
        &[
            ("viewer", Some(&viewer), S::FORBIDDEN),
            ("non-member", Some(&outsider), S::NOT_FOUND),
            ("anonymous", None, S::UNAUTHORIZED),
            ("editor", Some(&editor), S::OK),
            ("owner", Some(&owner), S::OK),
        ],
    )
    .await;
    expect(
        &cluster,
        Method::DELETE,
        &file_path,
        None,
        &[
            ("viewer", Some(&viewer), S::FORBIDDEN),
            ("non-member", Some(&outsider), S::NOT_FOUND),
            ("anonymous", None, S::UNAUTHORIZED),
            ("editor", Some(&editor), S::NO_CONTENT),
        ],
    )
    .await;
    let (status, _) = cluster.get(&file_path, owner.token()).await;
    assert_eq!(status, S::NOT_FOUND, "the file is gone");
    let second_file = create_file(&cluster, &owner, &room, "second.py").await;
    expect(
        &cluster,
        Method::DELETE,
        &format!("/api/files/{second_file}"),
        None,
        &[("owner", Some(&owner), S::NO_CONTENT)],
    )
    .await;

    // Members: the owner changes roles and removes; the rest may not.
    let viewer_path = format!("{room_path}/members/{}", viewer.user_id);
    let editor_path = format!("{room_path}/members/{}", editor.user_id);
    expect(
        &cluster,
        Method::PATCH,
        &viewer_path,
        Some(json!({"role": "editor"})),
        &[
            ("editor", Some(&editor), S::FORBIDDEN),
            ("viewer", Some(&viewer), S::FORBIDDEN),
            ("non-member", Some(&outsider), S::NOT_FOUND),
            ("anonymous", None, S::UNAUTHORIZED),
        ],
    )
    .await;
    expect(
        &cluster,
        Method::DELETE,
        &editor_path,
        None,
        &[
            ("viewer", Some(&viewer), S::FORBIDDEN),
            ("non-member", Some(&outsider), S::NOT_FOUND),
            ("anonymous", None, S::UNAUTHORIZED),
        ],
    )
    .await;
    expect(
        &cluster,
        Method::PATCH,
        &format!("{room_path}/members/{}", owner.user_id),
        Some(json!({"role": "viewer"})),
        &[("owner", Some(&owner), S::CONFLICT)],
    )
    .await;
    for role in ["owner", "admin", ""] {
        expect(
            &cluster,
            Method::PATCH,
            &viewer_path,
            Some(json!({"role": role})),
            &[("owner", Some(&owner), S::BAD_REQUEST)],
        )
        .await;
    }
    expect(
        &cluster,
        Method::PATCH,
        &format!("{room_path}/members/{}", outsider.user_id),
        Some(json!({"role": "viewer"})),
        &[("owner", Some(&owner), S::NOT_FOUND)],
    )
    .await;
    expect(&cluster, Method::DELETE, &editor_path, None, &[("owner", Some(&owner), S::NO_CONTENT)]).await;
    let (status, _) = cluster.get(&room_path, editor.token()).await;
    assert_eq!(status, S::NOT_FOUND, "a removed member loses access at once");
    // Any member may leave; the owner may not.
    expect(&cluster, Method::DELETE, &viewer_path, None, &[("viewer", Some(&viewer), S::NO_CONTENT)]).await;
    expect(
        &cluster,
        Method::DELETE,
        &format!("{room_path}/members/{}", owner.user_id),
        None,
        &[("owner", Some(&owner), S::CONFLICT)],
    )
    .await;

    // Deleting the room: the owner only.
    expect(
        &cluster,
        Method::DELETE,
        &room_path,
        None,
        &[
            ("non-member", Some(&outsider), S::NOT_FOUND),
            ("anonymous", None, S::UNAUTHORIZED),
            ("owner", Some(&owner), S::NO_CONTENT),
        ],
    )
    .await;
    expect(&cluster, Method::GET, &room_path, None, &[("owner", Some(&owner), S::NOT_FOUND)]).await;
}

#[tokio::test]
async fn public_rooms_are_readable_by_all_and_changed_by_members() {
    let cluster = Cluster::one_process(&[]).await;
    let Cast { owner, editor, viewer: _, outsider } = cast(&cluster).await;
    let public = create_room(&cluster, &owner, "Open", true).await;
    let private = create_room(&cluster, &owner, "Closed", false).await;
    join_as(&cluster, &owner, &public, &editor, "editor").await;
    let file_id = create_file(&cluster, &editor, &public, "notes.md").await;
    let room_path = format!("/api/rooms/{}", public.id);
    use StatusCode as S;

    for path in [
        room_path.clone(),
        format!("{room_path}/members"),
        format!("{room_path}/files"),
        format!("/api/files/{file_id}"),
    ] {
        expect(
            &cluster,
            Method::GET,
            &path,
            None,
            &[("non-member", Some(&outsider), S::OK), ("anonymous", None, S::OK)],
        )
        .await;
    }
    let (_, as_outsider) = cluster.get(&room_path, outsider.token()).await;
    assert_eq!(as_outsider["invite_code"], Value::Null, "outsiders never see the invite code");
    assert_eq!(as_outsider["my_role"], Value::Null);

    expect(
        &cluster,
        Method::POST,
        &format!("{room_path}/files"),
        Some(json!({"filename": "x.py"})),
        &[("non-member", Some(&outsider), S::FORBIDDEN), ("anonymous", None, S::UNAUTHORIZED)],
    )
    .await;
    expect(
        &cluster,
        Method::PATCH,
        &format!("/api/files/{file_id}"),
        Some(json!({"content": "defaced"})),
        &[("non-member", Some(&outsider), S::FORBIDDEN), ("anonymous", None, S::UNAUTHORIZED)],
    )
    .await;
    expect(
        &cluster,
        Method::PATCH,
        &room_path,
        Some(json!({"name": "mine now"})),
        &[("non-member", Some(&outsider), S::FORBIDDEN), ("editor", Some(&editor), S::FORBIDDEN)],
    )
    .await;

    // Listings: public rooms for everyone, private ones for their members only.
    let names = |body: &Value| -> Vec<String> {
        body["rooms"].as_array().unwrap().iter().map(|room| room["name"].as_str().unwrap().to_string()).collect()
    };
    let (_, anonymous_list) = cluster.get("/api/rooms", None).await;
    assert_eq!(names(&anonymous_list), ["Open"]);
    let (_, outsider_list) = cluster.get("/api/rooms", outsider.token()).await;
    assert_eq!(names(&outsider_list), ["Open"]);
    let (_, owner_list) = cluster.get("/api/rooms", owner.token()).await;
    let mut owner_names = names(&owner_list);
    owner_names.sort();
    assert_eq!(owner_names, ["Closed", "Open"]);
    assert!(!anonymous_list.to_string().contains(&private.id));
}

#[tokio::test]
async fn invite_codes_join_and_regenerate() {
    let cluster = Cluster::one_process(&[]).await;
    let owner = cluster.register("owner").await;
    let guest = cluster.register("guest").await;
    let late = cluster.register("late").await;
    let room = create_room(&cluster, &owner, "Invite only", false).await;

    let (status, body) = cluster.post("/api/rooms/join", None, json!({"invite_code": room.invite_code})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    for wrong in ["", "nope", &"A".repeat(10_000), &room.invite_code.to_lowercase()] {
        let (status, body) = cluster.post("/api/rooms/join", guest.token(), json!({"invite_code": wrong})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    }
    let (status, joined) =
        cluster.post("/api/rooms/join", guest.token(), json!({"invite_code": room.invite_code})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(joined["my_role"], "editor");
    assert_eq!(joined["member_count"], 2);
    // Joining again keeps the role.
    let (_, again) = cluster.post("/api/rooms/join", guest.token(), json!({"invite_code": room.invite_code})).await;
    assert_eq!(again["member_count"], 2);
    // The owner joining by its own code stays owner.
    let (_, owner_again) =
        cluster.post("/api/rooms/join", owner.token(), json!({"invite_code": room.invite_code})).await;
    assert_eq!(owner_again["my_role"], "owner");

    let (status, regenerated) =
        cluster.post(&format!("/api/rooms/{}/invite-code", room.id), owner.token(), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{regenerated}");
    let new_code = regenerated["invite_code"].as_str().unwrap();
    assert_ne!(new_code, room.invite_code);
    let (status, _) = cluster.post("/api/rooms/join", late.token(), json!({"invite_code": room.invite_code})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the old code stopped working");
    let (status, _) = cluster.post("/api/rooms/join", late.token(), json!({"invite_code": new_code})).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn files_are_named_uniquely_and_typed_by_extension() {
    let cluster = Cluster::one_process(&[]).await;
    let owner = cluster.register("owner").await;
    let room = create_room(&cluster, &owner, "Files", false).await;
    let files_path = format!("/api/rooms/{}/files", room.id);
    let cases = [
        ("main.py", "python"),
        ("index.js", "javascript"),
        ("Main.java", "java"),
        ("solver.cpp", "cpp"),
        ("README", "plaintext"),
        ("日本語.ts", "typescript"),
    ];
    for (filename, language) in cases {
        let (status, file) = cluster.post(&files_path, owner.token(), json!({"filename": filename})).await;
        assert_eq!(status, StatusCode::CREATED, "{file}");
        assert_eq!(file["language"], language);
        assert_eq!(file["content"], "");
    }
    let (status, body) = cluster.post(&files_path, owner.token(), json!({"filename": "main.py"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "file_exists");

    let (_, listing) = cluster.get(&files_path, owner.token()).await;
    let files = listing["files"].as_array().unwrap();
    assert_eq!(files.len(), cases.len());
    assert!(files.iter().all(|file| file.get("content").is_none()), "listings carry no content");
    let index_id =
        files.iter().find(|file| file["filename"] == "index.js").unwrap()["id"].as_str().unwrap().to_string();
    let (status, body) =
        cluster.patch(&format!("/api/files/{index_id}"), owner.token(), json!({"filename": "main.py"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "renaming onto a taken name: {body}");
    let (status, body) = cluster.patch(&format!("/api/files/{index_id}"), owner.token(), json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, renamed) = cluster
        .patch(
            &format!("/api/files/{index_id}"),
            owner.token(),
            json!({"filename": "index.ts", "content": "let x = 1;"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(renamed["language"], "typescript");
    assert_eq!(renamed["content"], "let x = 1;");
    assert_eq!(renamed["size_bytes"], 10);

    // The same name in another room is fine.
    let other = create_room(&cluster, &owner, "Other", false).await;
    let (status, _) =
        cluster.post(&format!("/api/rooms/{}/files", other.id), owner.token(), json!({"filename": "main.py"})).await;
    assert_eq!(status, StatusCode::CREATED);
}
