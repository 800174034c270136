//! The API document is exact: Schemathesis (`run --checks all`, PyPI) drives the running server
//! from `/api/openapi.json` alone, as a signed-in user with seeded data, and finds no answer the
//! document does not promise: no 5xx, no undocumented status, no schema-valid request refused,
//! no schema-violating request accepted, every answer in its documented shape.

use std::process::Command;

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::Cluster;

/// The fixed seed keeps runs repeatable; the budget keeps `make test` short.
const SEED: &str = "1";
const EXAMPLES_PER_OPERATION: &str = "30";
const STATEFUL_SCENARIOS: &str = "300";

/// Runs Schemathesis's `phases` against `document` (off the runtime's thread: the AI stand-in
/// answers on this runtime meanwhile).
async fn schemathesis(document: &str, phases: &str, max_examples: &str, config: &std::path::Path) -> (bool, String) {
    let program = std::env::var("CODESYNC_TEST_SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".to_string());
    let mut command = Command::new(&program);
    command.arg("--config-file").arg(config).args(["run", document, "--checks", "all", "--seed", SEED]);
    command.args(["--max-examples", max_examples, "--phases", phases]).env("NO_COLOR", "1");
    // Its example database and reports stay with the test's files, out of the checkout.
    if let Some(directory) = config.parent() {
        command.current_dir(directory);
    }
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the Schemathesis thread")
        .unwrap_or_else(|error| panic!("cannot run {program} ({error}); `make test` installs Schemathesis"));
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// Whether the report says every selected operation was tested.
fn tested_every_operation(report: &str) -> bool {
    let number_after = |label: &str| {
        report
            .lines()
            .find_map(|line| line.trim().strip_prefix(label))
            .and_then(|rest| rest.trim().split(['/', ' ']).next().and_then(|number| number.parse::<usize>().ok()))
    };
    matches!((number_after("Selected:"), number_after("Tested:")), (Some(selected), Some(tested)) if selected == tested && tested > 0)
}

/// The last `lines` lines of a report, where its failures and summary are.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[tokio::test]
async fn schemathesis_finds_the_server_exactly_as_its_openapi_document_says() {
    // A stand-in for the AI vendor's API, so that asking gets answers rather than 503.
    let (env, _provider) = crate::assistant::configured_with_stand_in().await;
    let env: Vec<(&str, &str)> = env.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect();
    let cluster = Cluster::one_process(&env).await;

    // The signed-in user is the first account (an administrator, so that every operation is
    // within reach) and owns the seeded rooms; another account is a member of them.
    let owner = cluster.register("alice").await;
    let member = cluster.register("bob").await;
    let mut rooms = Vec::new();
    for name in ["Seeded", "Sacrificed"] {
        let (status, room) = cluster.post("/api/rooms", owner.token(), json!({"name": name, "is_public": false})).await;
        assert_eq!(status, StatusCode::CREATED, "{room}");
        let (status, body) =
            cluster.post("/api/rooms/join", member.token(), json!({"invite_code": room["invite_code"]})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        rooms.push(room["id"].as_str().expect("room id").to_string());
    }
    let mut files = Vec::new();
    for filename in ["main.py", "doomed.py"] {
        let (status, file) = cluster
            .post(
                &format!("/api/rooms/{}/files", rooms[0]),
                owner.token(),
                json!({"filename": filename, "content": "print(1)\n"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{file}");
        files.push(file["id"].as_str().expect("file id").to_string());
    }
    let mut versions = Vec::new();
    for content in ["print(2)\n", "print(3)\n"] {
        let (status, body) =
            cluster.patch(&format!("/api/files/{}", files[0]), owner.token(), json!({"content": content})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, version) =
            cluster.post(&format!("/api/history/file/{}", files[0]), owner.token(), json!({"message": "seeded"})).await;
        assert_eq!(status, StatusCode::CREATED, "{version}");
        versions.push(version["id"].as_str().expect("version id").to_string());
    }

    // 413 is how this API refuses a body over a limit; Schemathesis's default list of refusals
    // leaves it out.
    let refusals = r#"[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]
"#;
    let headers = format!("headers = {{ Authorization = \"Bearer {}\" }}\n", owner.access_token);
    // Seeded ids for the fuzzing phases; what deletes gets data of its own, so that the rest
    // still finds the seeded room, file and member.
    let (room, other_room, file, doomed_file) = (&rooms[0], &rooms[1], &files[0], &files[1]);
    let member_id = &member.user_id;
    let fuzzing = format!(
        "{headers}[parameters]\nroom_id = \"{room}\"\nfile_id = \"{file}\"\nversion_id = \"{}\"\nuser_id = \"{member_id}\"\n\
         from = \"{}\"\nto = \"{}\"\n\n{refusals}\n\
         [[operations]]\ninclude-name = \"DELETE /api/rooms/{{room_id}}\"\nparameters = {{ room_id = \"{other_room}\" }}\n\n\
         [[operations]]\ninclude-name = \"DELETE /api/rooms/{{room_id}}/members/{{user_id}}\"\n\
         parameters = {{ room_id = \"{other_room}\", user_id = \"{member_id}\" }}\n\n\
         [[operations]]\ninclude-name = \"DELETE /api/files/{{file_id}}\"\nparameters = {{ file_id = \"{doomed_file}\" }}\n\n\
         [[operations]]\ninclude-name = \"POST /api/rooms/{{room_id}}/archive\"\nenabled = false\n",
        versions[0], versions[0], versions[1],
    );
    // An archive upload is a zip, which Schemathesis cannot make (no serializer for
    // application/zip): its contract is projects.rs's, entry by entry.
    // The stateful phase follows the document's links from what it creates: seeded ids would
    // override the ones it follows.
    let stateful = format!(
        "{headers}\n{refusals}\n[phases.stateful]\nmax-steps = 20\n\n\
         [[operations]]\ninclude-name = \"POST /api/rooms/{{room_id}}/archive\"\nenabled = false\n"
    );
    let directory = tempfile::tempdir().expect("temp dir");
    let fuzzing_config = directory.path().join("fuzzing.toml");
    let stateful_config = directory.path().join("stateful.toml");
    std::fs::write(&fuzzing_config, fuzzing).expect("write config");
    std::fs::write(&stateful_config, stateful).expect("write config");

    let document = format!("{}/api/openapi.json", cluster.base_url);
    let (passed, report) =
        schemathesis(&document, "examples,coverage,fuzzing", EXAMPLES_PER_OPERATION, &fuzzing_config).await;
    eprintln!("{}", tail(&report, 25));
    assert!(
        passed && tested_every_operation(&report),
        "schemathesis (examples, coverage, fuzzing):\n{}",
        tail(&report, 200)
    );

    let (passed, report) = schemathesis(&document, "stateful", STATEFUL_SCENARIOS, &stateful_config).await;
    eprintln!("{}", tail(&report, 25));
    assert!(passed && report.contains("✅ Stateful"), "schemathesis (stateful):\n{}", tail(&report, 200));
}
