//! Projects, not loose files: paths with folders (each refusal with its code), a folder moved
//! while two people have a file in it open and keep typing, search across the live text of a
//! room's files, and a project in and out as a zip (round trip, and every hostile archive refused
//! without writing anything); in one process and split across processes.

use std::collections::BTreeMap;
use std::io::{Cursor, Read, Write};
use std::time::Duration;

use codesync_proto::rooms::v1 as pb;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Cluster, Session, signed};
use crate::yjs_client::{YjsClient, eventually};

const PATIENCE: Duration = Duration::from_secs(20);

/// A zip archive of text files, deflated.
pub fn zip_of(entries: &[(&str, &str)]) -> Vec<u8> {
    let bytes: Vec<(&str, &[u8])> = entries.iter().map(|(name, text)| (*name, text.as_bytes())).collect();
    zip_of_bytes(&bytes)
}

fn zip_of_bytes(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut archive = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, content) in entries {
        archive.start_file(*name, options).expect("start an entry");
        archive.write_all(content).expect("write an entry");
    }
    archive.finish().expect("finish the archive").into_inner()
}

fn unzip(bytes: &[u8]) -> BTreeMap<String, String> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).expect("a zip archive");
    let mut files = BTreeMap::new();
    for index in 0..archive.len() {
        let mut file = archive.by_index(index).expect("an entry");
        let mut text = String::new();
        file.read_to_string(&mut text).expect("UTF-8 text");
        files.insert(file.name().to_string(), text);
    }
    files
}

async fn room(cluster: &Cluster, owner: &Session, name: &str, is_public: bool) -> String {
    let (status, room) = cluster.post("/api/rooms", owner.token(), json!({"name": name, "is_public": is_public})).await;
    assert_eq!(status, StatusCode::CREATED, "{room}");
    room["id"].as_str().expect("room id").to_string()
}

async fn join(cluster: &Cluster, owner: &Session, room_id: &str, member: &Session, role: &str) {
    let (_, room) = cluster.get(&format!("/api/rooms/{room_id}"), owner.token()).await;
    let (status, body) =
        cluster.post("/api/rooms/join", member.token(), json!({"invite_code": room["invite_code"]})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    if role != "editor" {
        let path = format!("/api/rooms/{room_id}/members/{}", member.user_id);
        let (status, body) = cluster.patch(&path, owner.token(), json!({"role": role})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

async fn create(cluster: &Cluster, session: &Session, room_id: &str, path: &str, content: &str) -> Value {
    let (status, file) = cluster
        .post(&format!("/api/rooms/{room_id}/files"), session.token(), json!({"filename": path, "content": content}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{path}: {file}");
    file
}

async fn paths_of(cluster: &Cluster, session: &Session, room_id: &str) -> Vec<String> {
    let (status, listing) = cluster.get(&format!("/api/rooms/{room_id}/files"), session.token()).await;
    assert_eq!(status, StatusCode::OK, "{listing}");
    listing["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|file| file["filename"].as_str().unwrap().to_string())
        .collect()
}

async fn editor_on(cluster: &Cluster, session: &Session, file_id: &str) -> YjsClient {
    let mut client = YjsClient::new(cluster.ws_url(&format!("/ws/files/{file_id}?token={}", session.access_token)));
    client.connect().await.expect("connect");
    eventually("the first sync completes", PATIENCE, || client.received().synced).await;
    client
}

async fn folders(cluster: &Cluster) {
    let owner = cluster.register("fowner").await;
    let editor = cluster.register("feditor").await;
    let room_id = room(cluster, &owner, "Folders", false).await;
    join(cluster, &owner, &room_id, &editor, "editor").await;
    create(cluster, &owner, &room_id, "src/app/__init__.py", "").await;
    let main = create(cluster, &owner, &room_id, "src/app/main.py", "print('hi')\n").await;
    assert_eq!(main["language"], "python");
    create(cluster, &owner, &room_id, "README.md", "# project\n").await;

    let deep = vec!["d"; 17].join("/");
    let refusals = [
        ("../escape.py", StatusCode::BAD_REQUEST, "invalid_filename"),
        ("/etc/passwd", StatusCode::BAD_REQUEST, "invalid_filename"),
        ("src//x.py", StatusCode::BAD_REQUEST, "invalid_filename"),
        ("src/./x.py", StatusCode::BAD_REQUEST, "invalid_filename"),
        ("src/", StatusCode::BAD_REQUEST, "invalid_filename"),
        ("src\\x.py", StatusCode::BAD_REQUEST, "invalid_filename"),
        ("src/x\u{7}.py", StatusCode::BAD_REQUEST, "invalid_filename"),
        (deep.as_str(), StatusCode::BAD_REQUEST, "invalid_filename"),
        ("src/ma\u{200C}in.py", StatusCode::BAD_REQUEST, "invalid_filename"),
        ("src/app.", StatusCode::BAD_REQUEST, "invalid_filename"),
        ("SRC/app/MAIN.py", StatusCode::CONFLICT, "file_exists"),
        ("ſrc/app/main.py", StatusCode::CONFLICT, "file_exists"),
        ("SRC/other.py", StatusCode::CONFLICT, "file_exists"),
        ("src/app", StatusCode::CONFLICT, "path_conflict"),
        ("README.md/notes.txt", StatusCode::CONFLICT, "path_conflict"),
    ];
    for (path, status, code) in refusals {
        let (got, body) =
            cluster.post(&format!("/api/rooms/{room_id}/files"), owner.token(), json!({"filename": path})).await;
        assert_eq!((got, body["error"]["code"].as_str()), (status, Some(code)), "{path:?}: {body}");
    }
    assert_eq!(paths_of(cluster, &owner, &room_id).await, ["README.md", "src/app/__init__.py", "src/app/main.py"]);

    // Both have src/app/main.py open; one moves the folder; both keep typing.
    let file_id = main["id"].as_str().unwrap().to_string();
    let mut room_socket = crate::presence::join(cluster, &room_id, &owner).await.expect("join the room");
    crate::presence::next_of(&mut room_socket, "presence").await;
    let mut mine = editor_on(cluster, &owner, &file_id).await;
    let mut theirs = editor_on(cluster, &editor, &file_id).await;
    mine.insert(0, "# A\n");
    eventually("the first edit arrives", PATIENCE, || theirs.content().starts_with("# A\n")).await;
    let (status, moved) = cluster
        .post(&format!("/api/rooms/{room_id}/folders/move"), editor.token(), json!({"from": "src", "to": "lib/core"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    let moved_paths: Vec<&str> =
        moved["files"].as_array().unwrap().iter().map(|file| file["filename"].as_str().unwrap()).collect();
    assert_eq!(moved_paths.len(), 2, "{moved}");
    assert!(moved["files"].as_array().unwrap().iter().any(|file| file["id"] == file_id.as_str()
        && file["filename"] == "lib/core/app/main.py"
        && file["language"] == "python"));
    // The others in the room hear of each move at once, whichever process made it. Across
    // processes, news of the files created before the socket joined may still be on its way.
    loop {
        let changed = crate::presence::next_of(&mut room_socket, "file_changed").await;
        if changed["file_id"] == file_id.as_str() && changed["change"] != "created" {
            assert_eq!(
                (changed["change"].as_str(), changed["filename"].as_str(), changed["old_filename"].as_str()),
                (Some("renamed"), Some("lib/core/app/main.py"), Some("src/app/main.py")),
                "{changed}"
            );
            break;
        }
    }
    theirs.insert(theirs.len(), "# B\n");
    mine.insert(mine.len(), "# C\n");
    eventually("both copies converge after the move", PATIENCE, || {
        let text = mine.content();
        text == theirs.content() && ["# A", "# B", "# C", "print('hi')"].iter().all(|part| text.contains(part))
    })
    .await;
    assert_eq!(
        paths_of(cluster, &owner, &room_id).await,
        ["README.md", "lib/core/app/__init__.py", "lib/core/app/main.py"]
    );
    let (status, file) = cluster.get(&format!("/api/files/{file_id}"), owner.token()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(file["content"].as_str(), Some(mine.content().as_str()), "the live text moved with the file");

    // Moves that would break the rules are refused, and change nothing.
    create(cluster, &owner, &room_id, "dst", "").await;
    let move_path = format!("/api/rooms/{room_id}/folders/move");
    for (from, to, status, code) in [
        ("lib", "lib/core/inner", StatusCode::BAD_REQUEST, "invalid_filename"),
        ("lib/core", "dst", StatusCode::CONFLICT, "path_conflict"),
        ("lib/core/app", "LIB/core/app2/../x", StatusCode::BAD_REQUEST, "invalid_filename"),
        ("nothing", "else", StatusCode::NOT_FOUND, "file_not_found"),
    ] {
        let (got, body) = cluster.post(&move_path, owner.token(), json!({"from": from, "to": to})).await;
        assert_eq!((got, body["error"]["code"].as_str()), (status, Some(code)), "{from} -> {to}: {body}");
    }
    // A folder moves into its own parent, over paths its files hold until they move.
    create(cluster, &owner, &room_id, "up/b/x.py", "1").await;
    create(cluster, &owner, &room_id, "up/b/b/x.py", "2").await;
    let (status, body) = cluster.post(&move_path, owner.token(), json!({"from": "up/b", "to": "up"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) =
        cluster.request(Method::DELETE, &format!("/api/rooms/{room_id}/folders?path=up"), owner.token(), None).await;
    assert_eq!((status, body["deleted_file_ids"].as_array().map(Vec::len)), (StatusCode::OK, Some(2)), "{body}");
    // A file moves into a folder by its own rename.
    let readme = paths_of(cluster, &owner, &room_id).await;
    assert!(readme.contains(&"README.md".to_string()));
    let (_, listing) = cluster.get(&format!("/api/rooms/{room_id}/files"), owner.token()).await;
    let readme_id =
        listing["files"].as_array().unwrap().iter().find(|file| file["filename"] == "README.md").unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
    let (status, renamed) =
        cluster.patch(&format!("/api/files/{readme_id}"), owner.token(), json!({"filename": "docs/README.md"})).await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    let (status, clash) =
        cluster.patch(&format!("/api/files/{readme_id}"), owner.token(), json!({"filename": "dst/README.md"})).await;
    assert_eq!((status, clash["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("path_conflict")), "{clash}");

    // A folder goes with what it holds.
    let (status, deleted) =
        cluster.request(Method::DELETE, &format!("/api/rooms/{room_id}/folders?path=lib"), owner.token(), None).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["deleted_file_ids"].as_array().unwrap().len(), 2);
    assert_eq!(paths_of(cluster, &owner, &room_id).await, ["docs/README.md", "dst"]);
    eventually("the open editors are told the file is gone", PATIENCE, || mine.received().close.is_some()).await;
}

async fn search(cluster: &Cluster) {
    let owner = cluster.register("sowner").await;
    let stranger = cluster.register("sstranger").await;
    let room_id = room(cluster, &owner, "Search", false).await;
    create(cluster, &owner, &room_id, "a.py", "def needle():\n    return 1\n").await;
    let b = create(cluster, &owner, &room_id, "src/b.py", "x = Needle\nneedle_two = 2\n").await;
    let search = |query: &str| format!("/api/rooms/{room_id}/search?{query}");

    // What someone just typed, not yet saved anywhere but the live document, is found.
    let mut typist = editor_on(cluster, &owner, b["id"].as_str().unwrap()).await;
    typist.insert(typist.len(), "typed_live_needle\n");
    let mut found = Value::Null;
    let give_up = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < give_up {
        let (status, body) = cluster.get(&search("q=typed_live"), owner.token()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["matches"].as_array().is_some_and(|matches| !matches.is_empty()) {
            found = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(found["matches"][0]["filename"], "src/b.py", "{found}");
    assert_eq!((found["matches"][0]["line"].as_u64(), found["matches"][0]["column"].as_u64()), (Some(3), Some(1)));
    assert_eq!(found["matches"][0]["text"], "typed_live_needle");

    let positions = |body: &Value| -> Vec<(String, u64, u64)> {
        body["matches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|hit| {
                (
                    hit["filename"].as_str().unwrap().to_string(),
                    hit["line"].as_u64().unwrap(),
                    hit["column"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let (_, all) = cluster.get(&search("q=needle"), owner.token()).await;
    let expected = [("a.py", 1, 5), ("src/b.py", 1, 5), ("src/b.py", 2, 1), ("src/b.py", 3, 12)];
    assert_eq!(positions(&all), expected.map(|(file, line, column)| (file.to_string(), line, column)), "{all}");
    assert_eq!((all["truncated"].as_bool(), all["files_searched"].as_u64()), (Some(false), Some(2)));
    let (_, exact) = cluster.get(&search("q=Needle&case_sensitive=true"), owner.token()).await;
    assert_eq!(positions(&exact), [("src/b.py".to_string(), 1, 5)]);
    let (_, words) = cluster.get(&search("q=needle&whole_word=true"), owner.token()).await;
    assert_eq!(positions(&words), [("a.py".to_string(), 1, 5), ("src/b.py".to_string(), 1, 5)]);
    let (_, regex) = cluster.get(&search("q=needle%5C(%5C)&regex=true"), owner.token()).await;
    assert_eq!(positions(&regex), [("a.py".to_string(), 1, 5)]);
    let (_, capped) = cluster.get(&search("q=needle&max_results=1"), owner.token()).await;
    assert_eq!((positions(&capped).len(), capped["truncated"].as_bool()), (1, Some(true)));

    for (query, status, code) in [
        ("q=", StatusCode::BAD_REQUEST, "invalid_query"),
        ("q=(&regex=true", StatusCode::BAD_REQUEST, "invalid_query"),
        ("q=x&max_results=0", StatusCode::BAD_REQUEST, "invalid_limit"),
        ("q=x&max_results=5000", StatusCode::BAD_REQUEST, "invalid_limit"),
        // Matches empty text at every position: quadratic in a long line, and finds nothing.
        ("q=(%3F:a*c)%3F&regex=true", StatusCode::BAD_REQUEST, "invalid_query"),
        ("q=(%3F:a*c)%3F%5Cb&regex=true", StatusCode::BAD_REQUEST, "invalid_query"),
    ] {
        let (got, body) = cluster.get(&search(query), owner.token()).await;
        assert_eq!((got, body["error"]["code"].as_str()), (status, Some(code)), "{query}: {body}");
    }
    // A private room's text is not searched for outsiders, over REST or gRPC.
    for token in [stranger.token(), None] {
        let (status, body) = cluster.get(&search("q=needle"), token).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("room_not_found")), "{body}");
    }
    let mut rooms = pb::rooms_service_client::RoomsServiceClient::new(cluster.grpc_channel("rooms").await);
    let request = pb::SearchFilesRequest { room_id: room_id.clone(), query: "needle".into(), ..Default::default() };
    let status = rooms.search_files(signed(&stranger, request)).await.expect_err("refused");
    assert_eq!(status.code(), tonic::Code::NotFound);
}

async fn upload(cluster: &Cluster, session: &Session, room_id: &str, archive: Vec<u8>) -> (StatusCode, Value) {
    let response =
        cluster.post_raw(&format!("/api/rooms/{room_id}/archive"), session.token(), "application/zip", archive).await;
    crate::harness::read(response).await
}

async fn download(cluster: &Cluster, session: &Session, room_id: &str) -> (StatusCode, Vec<u8>) {
    let mut request = cluster.http.get(format!("{}/api/rooms/{room_id}/archive", cluster.base_url));
    if let Some(token) = session.token() {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("download");
    let status = response.status();
    if status == StatusCode::OK {
        assert_eq!(response.headers()["content-type"], "application/zip");
        assert!(response.headers()["content-disposition"].to_str().unwrap().starts_with("attachment; filename=\""));
    }
    (status, response.bytes().await.expect("body").to_vec())
}

/// A hostile archive: what it is, its bytes, the status and error code it gets, and the code each
/// refused entry gets (when the answer lists entries).
type Hostile<'a> = (&'a str, Vec<u8>, StatusCode, &'a str, Option<&'a str>);

async fn archives(cluster: &Cluster) {
    let owner = cluster.register("zowner").await;
    let viewer = cluster.register("zviewer").await;
    let stranger = cluster.register("zstranger").await;
    let room_a = room(cluster, &owner, "Zip in", false).await;
    join(cluster, &owner, &room_a, &viewer, "viewer").await;

    let project = [
        ("src/app/__init__.py", ""),
        ("src/app/main.py", "from app import util\nprint(util.hello())\n"),
        ("src/app/util.py", "def hello():\n    return 'héllo'\n"),
        ("README.md", "# A project\n"),
    ];
    let mut archive = zip::ZipWriter::new(Cursor::new(Vec::new()));
    archive.add_directory("src/", zip::write::SimpleFileOptions::default()).unwrap();
    for (path, text) in project {
        archive.start_file(path, zip::write::SimpleFileOptions::default()).unwrap();
        archive.write_all(text.as_bytes()).unwrap();
    }
    archive.start_file("__MACOSX/._README.md", zip::write::SimpleFileOptions::default()).unwrap();
    archive.write_all(b"\0\x05\x16\x07").unwrap();
    let (status, report) = upload(cluster, &owner, &room_a, archive.finish().unwrap().into_inner()).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["written"], true);
    let outcomes: Vec<(&str, &str)> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| (file["path"].as_str().unwrap(), file["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("src/app/__init__.py", "created"),
            ("src/app/main.py", "created"),
            ("src/app/util.py", "created"),
            ("README.md", "created"),
            ("src/", "skipped"),
            ("__MACOSX/._README.md", "skipped"),
        ]
    );
    // Uploading again replaces the files at the same paths.
    let (status, report) = upload(cluster, &owner, &room_a, zip_of(&[("README.md", "# Replaced\n")])).await;
    assert_eq!((status, report["files"][0]["outcome"].as_str()), (StatusCode::OK, Some("replaced")), "{report}");
    let expected: BTreeMap<String, String> = project
        .iter()
        .map(|(path, text)| (path.to_string(), if *path == "README.md" { "# Replaced\n" } else { text }.to_string()))
        .collect();

    // Out, into a new room, and out again: the same files.
    let (status, zipped) = download(cluster, &viewer, &room_a).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(unzip(&zipped), expected);
    let room_b = room(cluster, &owner, "Zip round trip", false).await;
    let (status, report) = upload(cluster, &owner, &room_b, zipped).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let (_, again) = download(cluster, &owner, &room_b).await;
    assert_eq!(unzip(&again), expected);

    // Who may: a viewer may not upload, an outsider may not download a private room; who may
    // is settled before the archive is even read.
    let (status, body) = upload(cluster, &viewer, &room_a, zip_of(&[("x.py", "")])).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("read_only")), "{body}");
    let (status, body) = upload(cluster, &viewer, &room_a, b"not a zip".to_vec()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("read_only")), "{body}");
    let (status, body) = upload(cluster, &stranger, &room_a, b"not a zip".to_vec()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("room_not_found")), "{body}");
    let (status, _) = download(cluster, &stranger, &room_a).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A project larger than a gRPC message's usual 4 MiB goes in and out whole.
    let text = |seed: u64| -> String {
        let mut state = seed;
        (0..900_000)
            .map(|_| {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                char::from(b"abcdefghijklmnopqrstuvwxyz \n"[(state >> 59) as usize % 28])
            })
            .collect()
    };
    let big: Vec<(String, String)> = (0..6).map(|index| (format!("data/part{index}.txt"), text(index))).collect();
    let entries: Vec<(&str, &str)> = big.iter().map(|(path, text)| (path.as_str(), text.as_str())).collect();
    let room_big = room(cluster, &owner, "Big project", false).await;
    let (status, report) = upload(cluster, &owner, &room_big, zip_of(&entries)).await;
    assert_eq!((status, report["written"].as_bool()), (StatusCode::OK, Some(true)), "{report}");
    let (status, zipped) = download(cluster, &owner, &room_big).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(unzip(&zipped), big.into_iter().collect::<BTreeMap<_, _>>());

    // Two imports at once cannot take a room past its 1000 files together.
    let room_full = room(cluster, &owner, "Cap", false).await;
    let batch = |prefix: &str| -> Vec<u8> {
        let names: Vec<String> = (0..600).map(|index| format!("{prefix}/f{index}.txt")).collect();
        zip_of(&names.iter().map(|name| (name.as_str(), "x")).collect::<Vec<_>>())
    };
    let (first, second) = tokio::join!(
        upload(cluster, &owner, &room_full, batch("one")),
        upload(cluster, &owner, &room_full, batch("two"))
    );
    let mut statuses = [first.0, second.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT], "{} / {}", first.1, second.1);
    assert_eq!(paths_of(cluster, &owner, &room_full).await.len(), 600);

    // Hostile archives: each refused, and nothing written.
    let room_c = room(cluster, &owner, "Hostile", false).await;
    create(cluster, &owner, &room_c, "keep.py", "kept\n").await;
    let mut symlink = zip::ZipWriter::new(Cursor::new(Vec::new()));
    symlink.start_file("fine.py", zip::write::SimpleFileOptions::default()).unwrap();
    symlink.add_symlink("link.py", "/etc/passwd", zip::write::SimpleFileOptions::default()).unwrap();
    let symlink = symlink.finish().unwrap().into_inner();
    let zeros = "0".repeat(50 * 1024 * 1024);
    let names: Vec<String> = (0..10_000).map(|index| format!("f{index}.txt")).collect();
    let flood: Vec<(&str, &str)> = names.iter().map(|name| (name.as_str(), "x")).collect();
    let hostile: Vec<Hostile> = vec![
        (
            "zip-slip",
            zip_of(&[("fine.py", "ok"), ("../../evil.py", "x")]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "archive_refused",
            Some("invalid_filename"),
        ),
        (
            "absolute",
            zip_of(&[("/etc/cron.d/evil", "x")]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "archive_refused",
            Some("invalid_filename"),
        ),
        ("symlink", symlink, StatusCode::UNPROCESSABLE_ENTITY, "archive_refused", Some("symlink")),
        (
            "bomb",
            zip_of(&[("bomb.txt", &zeros)]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "archive_refused",
            Some("file_too_large"),
        ),
        ("flood", zip_of(&flood), StatusCode::PAYLOAD_TOO_LARGE, "too_many_files", None),
        (
            "binary",
            zip_of_bytes(&[("fine.py", b"ok"), ("logo.png", b"\x89PNG\r\n\x1a\n\0\0")]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "archive_refused",
            Some("binary_file"),
        ),
        (
            "clash",
            zip_of(&[("KEEP.py", "x")]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "archive_refused",
            Some("file_exists"),
        ),
        (
            "twice",
            zip_of(&[("a.py", "1"), ("A.py", "2")]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "archive_refused",
            Some("file_exists"),
        ),
        ("not a zip", b"PK\x03\x04 this is not a zip".to_vec(), StatusCode::BAD_REQUEST, "invalid_archive", None),
    ];
    for (what, archive, status, code, entry_code) in hostile {
        let (got, body) = upload(cluster, &owner, &room_c, archive).await;
        assert_eq!((got, body["error"]["code"].as_str()), (status, Some(code)), "{what}: {body}");
        if let Some(entry_code) = entry_code {
            assert_eq!(body["written"], false, "{what}");
            let refused: Vec<&Value> =
                body["files"].as_array().unwrap().iter().filter(|file| file["outcome"] == "refused").collect();
            assert!(
                !refused.is_empty() && refused.iter().all(|file| file["error_code"] == entry_code),
                "{what}: {body}"
            );
            assert!(refused.iter().all(|file| !file["message"].as_str().unwrap().is_empty()), "{what}: {body}");
        }
        assert_eq!(paths_of(cluster, &owner, &room_c).await, ["keep.py"], "{what} wrote nothing");
    }
    let response = cluster
        .post_raw(&format!("/api/rooms/{room_c}/archive"), owner.token(), "text/plain", zip_of(&[("a.py", "")]))
        .await;
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let oversized: Vec<u8> =
        (0..17 * 1024 * 1024_u32).map(|index| (index.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let (status, body) = upload(cluster, &owner, &room_c, oversized).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")),
        "{body}"
    );

    // A direct gRPC caller meets the same rules.
    let mut rooms = pb::rooms_service_client::RoomsServiceClient::new(cluster.grpc_channel("rooms").await);
    let files = vec![
        pb::SourceFile { path: "fine.py".into(), content: "ok".into() },
        pb::SourceFile { path: "../escape.py".into(), content: "x".into() },
    ];
    let answer = rooms
        .import_files(signed(&owner, pb::ImportFilesRequest { room_id: room_c.clone(), files }))
        .await
        .expect("a report")
        .into_inner();
    assert!(!answer.written);
    assert_eq!(answer.files[1].error_code, "invalid_filename");
    assert_eq!(paths_of(cluster, &owner, &room_c).await, ["keep.py"]);
    // No more text in all than an archive may expand to (64 MiB), however it is sent.
    let megabyte = "x".repeat(1_000_000);
    let files =
        (0..68).map(|index| pb::SourceFile { path: format!("big{index}.txt"), content: megabyte.clone() }).collect();
    let status = rooms
        .import_files(signed(&owner, pb::ImportFilesRequest { room_id: room_c.clone(), files }))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    assert_eq!(paths_of(cluster, &owner, &room_c).await, ["keep.py"]);
}

#[tokio::test]
async fn projects_in_one_process() {
    let cluster = Cluster::one_process(&[]).await;
    folders(&cluster).await;
    search(&cluster).await;
    archives(&cluster).await;
}

/// The services in processes of their own, the room events carried by a Kafka-compatible broker.
#[tokio::test]
async fn projects_split_across_processes() {
    let broker = codesync_common::kafka::test_support::TansuBroker::start().await;
    let cluster = Cluster::ten_processes(&[("CODESYNC_KAFKA_BROKERS", &broker.address)]).await;
    folders(&cluster).await;
    search(&cluster).await;
    archives(&cluster).await;
}
