//! `/api/executions/*` on the real binary: languages, runs (whole and streamed) and past runs.

use reqwest::StatusCode;

use crate::harness::Cluster;

#[tokio::test]
async fn the_languages_are_listed_with_what_this_host_has_installed() {
    let cluster = Cluster::one_process(&[]).await;
    let (status, body) = cluster.get("/api/executions/languages", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    let user = cluster.register("runner").await;
    let (status, body) = cluster.get("/api/executions/languages", user.token()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let languages = body["languages"].as_array().expect("a list");
    let named =
        |name: &str| languages.iter().find(|language| language["name"] == name).unwrap_or_else(|| panic!("{name}"));
    for required in ["python", "javascript", "java", "cpp", "c"] {
        let language = named(required);
        assert!(language["extensions"].as_array().is_some_and(|extensions| !extensions.is_empty()), "{language}");
        // Installed or not, the answer says which; an installed one names its version.
        let installed = language["available"].as_bool().expect("available is a boolean");
        assert_eq!(installed, !language["version"].as_str().unwrap().is_empty(), "{language}");
    }
    // Python is on every machine this runs on (the service's own runtime probe agrees).
    assert_eq!(named("python")["available"], true);
    assert!(named("python")["version"].as_str().unwrap().starts_with("Python 3"));
    if std::env::var_os("CODESYNC_TEST_REQUIRE_SANDBOX").is_some() {
        assert_eq!(body["unavailable_reason"], serde_json::Value::Null, "code runs here: {body}");
    }
}

/// Started by a user who is not root (nobody), on a host whose cgroups that user cannot divide
/// (this one's are v1, and most laptops delegate none to a plain `codesync run`): the local
/// sandbox could enforce the time, output, file-size and open-file limits but not the memory,
/// process and CPU limits, so it refuses every run, and says so, limit by limit, at start, in
/// the language list the run panel reads, and in the refusal of a run.
#[tokio::test]
async fn started_by_a_user_who_is_not_root_code_execution_names_the_limits_it_cannot_enforce_and_refuses_runs() {
    use serde_json::json;
    const NOBODY: u32 = 65534;
    let cluster = Cluster::one_process_as_user(NOBODY, &[]).await;
    let names_the_limits = |text: &str| {
        ["uid 65534, not root", "the memory limit", "the process limit", "the CPU limit", "refused"]
            .iter()
            .all(|part| text.contains(part))
    };
    let log = cluster.log("all");
    assert!(log.contains("code execution is off") && names_the_limits(&log), "{log}");

    let user = cluster.register("laptop").await;
    let (status, body) = cluster.get("/api/executions/languages", user.token()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let reason = body["unavailable_reason"].as_str().unwrap_or_else(|| panic!("a reason: {body}"));
    assert!(names_the_limits(reason), "{reason}");

    let program = json!({"language": "python", "files": [{"name": "main.py", "content": "print('ran')"}]});
    let (status, refused) = cluster.post("/api/executions", user.token(), program).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{refused}");
    assert_eq!(refused["error"]["code"], "service_unavailable");
    assert_eq!(refused["error"]["message"].as_str(), Some(reason), "the same reason everywhere");
    // Everything else works as for anyone: the server is usable, only runs are refused.
    let (status, room) = cluster.post("/api/rooms", user.token(), json!({"name": "Mine", "is_public": false})).await;
    assert_eq!(status, StatusCode::CREATED, "{room}");
}

#[tokio::test]
async fn code_runs_in_the_sandbox_through_the_api() {
    use serde_json::json;
    let cluster = Cluster::one_process(&[]).await;
    let user = cluster.register("coder").await;
    let run = |body| async { cluster.post("/api/executions", user.token(), body).await };

    let (status, result) = run(json!({"language": "python", "files": [{"name": "main.py", "content": "import sys\nprint('hi', sys.stdin.read())"}], "stdin": "there"})).await;
    if status == StatusCode::SERVICE_UNAVAILABLE {
        // This host cannot run a sandbox (not root, no bwrap): allowed only outside `make test`.
        assert_ne!(std::env::var("CODESYNC_TEST_REQUIRE_SANDBOX").as_deref(), Ok("1"), "{result}");
        return;
    }
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(result["stdout"], "hi there\n");
    assert_eq!(result["language"], "python");
    assert!(result["wall_time_ms"].as_i64().unwrap() > 0 && result["peak_memory_bytes"].as_i64().unwrap() > 0);

    // A compile error is a result, not an HTTP error; an inline program names its language.
    let (status, result) = run(json!({"files": [{"name": "main.c", "content": "x"}]})).await;
    assert_eq!((status, result["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("no_program")), "{result}");
    let (status, result) =
        run(json!({"language": "c", "files": [{"name": "main.c", "content": "int main(void) { return oops; }"}]}))
            .await;
    assert_eq!((status, result["status"].as_str()), (StatusCode::OK, Some("compile_error")), "{result}");
    assert!(result["stderr"].as_str().unwrap().contains("oops"));
    let (_, result) =
        run(json!({"language": "javascript", "files": [{"name": "a.js", "content": "process.exit(3)"}]})).await;
    assert_eq!((result["status"].as_str(), result["exit_code"].as_i64()), (Some("runtime_error"), Some(3)));

    // Bad requests are refused with a reason.
    let (status, body) = run(json!({"language": "cobol", "files": [{"name": "a.cob", "content": ""}]})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("unknown_language")));
    let (status, body) = run(json!({"language": "python", "files": [{"name": "../evil.py", "content": ""}]})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_filename")));
    let (status, body) = run(json!({"language": "python", "files": []})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("no_files")));
    let (status, _) = cluster.post("/api/executions", None, json!({"language": "python", "files": []})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Each user starts at most 30 runs a minute (3 so far); past that, 429 with Retry-After.
    let quick = json!({"language": "bash", "files": [{"name": "a.sh", "content": "exit 0"}]});
    for _ in 3..30 {
        let (status, result) = run(quick.clone()).await;
        assert_eq!(status, StatusCode::OK, "{result}");
    }
    let (status, body) = run(quick.clone()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")),
        "{body}"
    );
    let other = cluster.register("other").await;
    let (status, _) = cluster.post("/api/executions", other.token(), quick).await;
    assert_eq!(status, StatusCode::OK, "another user is not limited by the first");
}

/// A room's file runs with its live content and the room's other files beside it; a private
/// room's file is out of reach for a non-member, as everything else of the room.
#[tokio::test]
async fn a_rooms_file_runs_with_its_live_content_and_its_neighbours() {
    use serde_json::json;
    let cluster = Cluster::one_process(&[]).await;
    let owner = cluster.register("author").await;
    let outsider = cluster.register("stranger").await;
    let (_, room) = cluster.post("/api/rooms", owner.token(), json!({"name": "Scripts", "is_public": false})).await;
    let room_id = room["id"].as_str().unwrap();
    let files = format!("/api/rooms/{room_id}/files");
    let (status, helper) = cluster
        .post(&files, owner.token(), json!({"filename": "helper.py", "content": "GREETING = 'from a neighbour'\n"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{helper}");
    let (_, main) =
        cluster.post(&files, owner.token(), json!({"filename": "main.py", "content": "print('old text')\n"})).await;
    let main_id = main["id"].as_str().unwrap();
    // The live document is what runs: replace the text through the API first.
    let (status, body) = cluster
        .patch(
            &format!("/api/files/{main_id}"),
            owner.token(),
            json!({"content": "import helper\nprint(helper.GREETING)\n"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, result) = cluster.post("/api/executions", owner.token(), json!({"file_id": main_id})).await;
    if status == StatusCode::SERVICE_UNAVAILABLE {
        assert_ne!(std::env::var("CODESYNC_TEST_REQUIRE_SANDBOX").as_deref(), Ok("1"), "{result}");
        return;
    }
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(
        (result["status"].as_str(), result["stdout"].as_str()),
        (Some("ok"), Some("from a neighbour\n")),
        "{result}"
    );
    assert_eq!(result["language"], "python");

    // Files in folders are at their paths: a package imports as it would on disk.
    for (path, content) in [
        ("src/app/__init__.py", ""),
        ("src/app/util.py", "def hello():\n    return 'from a package'\n"),
        (
            "src/run.py",
            "from app import util\nprint(util.hello())\nprint(open('src/app/util.py').readline().strip())\n",
        ),
    ] {
        let (status, file) = cluster.post(&files, owner.token(), json!({"filename": path, "content": content})).await;
        assert_eq!(status, StatusCode::CREATED, "{file}");
        if path == "src/run.py" {
            let (status, result) = cluster.post("/api/executions", owner.token(), json!({"file_id": file["id"]})).await;
            assert_eq!(status, StatusCode::OK, "{result}");
            assert_eq!(
                (result["status"].as_str(), result["stdout"].as_str()),
                (Some("ok"), Some("from a package\ndef hello():\n")),
                "{result}"
            );
        }
    }
    let inline = json!({"language": "python", "entry": "pkg/main.py", "files": [
        {"name": "pkg/main.py", "content": "import helper\nprint(helper.X)\n"},
        {"name": "pkg/helper.py", "content": "X = 'inline folders'\n"},
    ]});
    let (status, result) = cluster.post("/api/executions", owner.token(), inline).await;
    assert_eq!((status, result["stdout"].as_str()), (StatusCode::OK, Some("inline folders\n")), "{result}");
    for hostile in ["pkg/../../x.py", "/abs.py", "pkg//x.py", "-pkg/x.py", "pkg/-x.py"] {
        let body = json!({"language": "python", "files": [{"name": hostile, "content": ""}]});
        let (status, result) = cluster.post("/api/executions", owner.token(), body).await;
        assert_eq!(
            (status, result["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_filename")),
            "{hostile}"
        );
    }

    let (status, _) = cluster.post("/api/executions", outsider.token(), json!({"file_id": main_id})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a private room's file does not exist for others");
}

/// Reads server-sent events from a streamed run: (event name, data as JSON, when it came).
/// Reads server-sent events from a streamed response.
pub struct EventReader {
    pub response: reqwest::Response,
    pub buffered: String,
}

impl EventReader {
    pub fn new(response: reqwest::Response) -> Self {
        Self { response, buffered: String::new() }
    }

    pub async fn next(&mut self) -> Option<(String, serde_json::Value, std::time::Instant)> {
        loop {
            if let Some(end) = self.buffered.find("\n\n") {
                let block: String = self.buffered.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = value.trim().to_string();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return Some((
                    name,
                    serde_json::from_str(&data).expect("event data is JSON"),
                    std::time::Instant::now(),
                ));
            }
            let chunk = self.response.chunk().await.expect("read the stream")?;
            self.buffered.push_str(std::str::from_utf8(&chunk).expect("the stream is UTF-8"));
        }
    }
}

/// Whether a process whose command line holds `marker` is alive on this host.
fn process_alive(marker: &str) -> bool {
    std::fs::read_dir("/proc").into_iter().flatten().flatten().any(|entry| {
        std::fs::read(entry.path().join("cmdline"))
            .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(marker))
    })
}

/// Output reaches the client while the program still runs, then the result; the run is stored
/// and listed; closing the stream kills the run.
#[tokio::test]
async fn output_streams_while_the_program_runs_and_closing_the_stream_kills_it() {
    use serde_json::json;
    let cluster = Cluster::one_process(&[]).await;
    let user = cluster.register("streamer").await;
    let start = |body: serde_json::Value| {
        cluster.post_raw("/api/executions/stream", user.token(), "application/json", body.to_string().into_bytes())
    };
    let program = "import sys, time\nprint('first ☃', flush=True)\nprint('warning', file=sys.stderr, flush=True)\ntime.sleep(2)\nprint('second')\n";
    let response = start(json!({"language": "python", "files": [{"name": "main.py", "content": program}]})).await;
    if response.status() == StatusCode::SERVICE_UNAVAILABLE {
        assert_ne!(std::env::var("CODESYNC_TEST_REQUIRE_SANDBOX").as_deref(), Ok("1"));
        return;
    }
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["x-accel-buffering"], "no", "proxies are asked not to hold the output back");
    let mut events = EventReader { response, buffered: String::new() };
    let mut received = Vec::new();
    while let Some(event) = events.next().await {
        received.push(event);
    }
    let names: Vec<&str> = received.iter().map(|(name, _, _)| name.as_str()).collect();
    let texts: String = received
        .iter()
        .filter(|(name, ..)| name == "stdout")
        .map(|(_, data, _)| data["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, "first ☃\nsecond\n", "{names:?}");
    assert!(names.contains(&"stderr"), "{names:?}");
    let (last_name, result, result_at) = received.last().unwrap().clone();
    assert_eq!(last_name, "result");
    assert_eq!((result["status"].as_str(), result["stdout"].as_str()), (Some("ok"), Some("first ☃\nsecond\n")));
    let first_at = received[0].2;
    assert!(
        result_at.duration_since(first_at) >= std::time::Duration::from_millis(1500),
        "the first line came while the program slept, not with the result"
    );

    // The run is stored and listed, newest first, with its result.
    let (status, listed) = cluster.get("/api/executions?limit=5", user.token()).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["executions"][0]["id"], result["id"]);
    assert_eq!(listed["executions"][0]["stdout"], "first ☃\nsecond\n");
    let (status, body) = cluster.get("/api/executions?limit=1000", user.token()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_limit")));
    let other = cluster.register("bystander").await;
    let (_, listed) = cluster.get("/api/executions", other.token()).await;
    assert_eq!(listed["executions"], json!([]), "runs are private to who ran them");

    // A refused program is an ordinary JSON error before any stream.
    let refused = start(json!({"language": "cobol", "files": [{"name": "a.cob", "content": ""}]})).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);

    // Closing the stream kills the program at once, long before its time limit.
    let marker = format!("endless_{}", std::process::id());
    let endless = "import time\nwhile True:\n    print('tick', flush=True)\n    time.sleep(0.2)\n";
    let response =
        start(json!({"language": "python", "files": [{"name": format!("{marker}.py"), "content": endless}]})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut events = EventReader { response, buffered: String::new() };
    let (name, data, _) = events.next().await.expect("a first event");
    assert_eq!((name.as_str(), data["text"].as_str()), ("stdout", Some("tick\n")));
    assert!(process_alive(&marker), "the program runs while the stream is open");
    drop(events);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while process_alive(&marker) {
        assert!(std::time::Instant::now() < deadline, "the program outlived its closed stream");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Hostile programs through the real server: its database file, its signing key, its own
/// gateway port, PostgreSQL, the outside world and another run's directory are all out of
/// reach, and a run whose children sleep ends at the time limit.
#[tokio::test]
async fn hostile_programs_reach_nothing_of_the_server_and_end_at_their_limits() {
    use serde_json::json;
    let cluster = Cluster::one_process(&[("CODESYNC_EXECUTION_TIME_LIMIT_SECS", "3")]).await;
    let user = cluster.register("attacker").await;
    // The server's own files, which must exist where the attack looks for them, or "refused"
    // would prove nothing.
    let database_file = cluster.data_dir.path().join("data/codesync.db");
    let signing_key_file = cluster.data_dir.path().join("data/secrets/jwt-signing-key");
    assert!(database_file.is_file() && signing_key_file.is_file(), "the server's files are where the attack looks");
    let gateway_port = cluster.base_url.rsplit(':').next().unwrap().to_string();

    // A run that keeps a secret in its work directory while the attacker's run looks for it.
    let keeper =
        "open('secret.txt', 'w').write('the other run')\nimport time\nprint('kept', flush=True)\ntime.sleep(30)\n";
    let response = cluster
        .post_raw(
            "/api/executions/stream",
            user.token(),
            "application/json",
            json!({"language": "python", "files": [{"name": "keeper.py", "content": keeper}]}).to_string().into_bytes(),
        )
        .await;
    if response.status() == StatusCode::SERVICE_UNAVAILABLE {
        assert_ne!(std::env::var("CODESYNC_TEST_REQUIRE_SANDBOX").as_deref(), Ok("1"));
        return;
    }
    let mut keeper = EventReader { response, buffered: String::new() };
    assert_eq!(keeper.next().await.map(|(_, data, _)| data["text"].clone()), Some(json!("kept\n")));
    // The host (root) finds the keeper's work directory; the attack is told its exact path.
    let runs_dir = std::env::temp_dir().join("codesync-runs");
    let other_run_secret = std::fs::read_dir(&runs_dir)
        .expect("the runs directory")
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("secret.txt"))
        .find(|path| std::fs::read_to_string(path).is_ok_and(|text| text == "the other run"))
        .expect("the keeper's secret is on the host");

    let attack = r#"
import glob, os, socket
def attempt(name, action):
    try:
        action()
        print(name, "ALLOWED")
    except Exception as error:
        print(name, "refused", type(error).__name__)
attempt("database", lambda: open("DATABASE_FILE", "rb").read())
attempt("signing-key", lambda: open("SIGNING_KEY_FILE", "rb").read())
attempt("gateway", lambda: socket.create_connection(("127.0.0.1", GATEWAY_PORT), timeout=2))
attempt("postgres", lambda: socket.create_connection(("127.0.0.1", 5432), timeout=2))
attempt("outside", lambda: socket.create_connection(("1.1.1.1", 443), timeout=2))
attempt("shadow", lambda: open("/etc/shadow").read())
def other_run():
    found = ["OTHER_RUN_SECRET"] + glob.glob("/proc/*/root/work/secret.txt") + glob.glob("/proc/*/cwd/secret.txt")
    found = [path for path in found if os.path.exists(path)]
    found = [path for path in found if not path.startswith("/proc/self")]
    if not found:
        raise FileNotFoundError("no other run in sight")
    print(open(found[0]).read())
attempt("other-run", other_run)
attempt("write-outside", lambda: open("/etc/owned", "w").write("x"))
"#
    .replace("DATABASE_FILE", &database_file.display().to_string())
    .replace("SIGNING_KEY_FILE", &signing_key_file.display().to_string())
    .replace("OTHER_RUN_SECRET", &other_run_secret.display().to_string())
    .replace("GATEWAY_PORT", &gateway_port);
    let (status, result) = cluster
        .post(
            "/api/executions",
            user.token(),
            json!({"language": "python", "files": [{"name": "attack.py", "content": attack}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    let report = result["stdout"].as_str().unwrap();
    assert!(!report.contains("ALLOWED"), "{report}\n{}", result["stderr"]);
    for name in ["database", "signing-key", "gateway", "postgres", "outside", "shadow", "other-run", "write-outside"] {
        assert!(report.contains(&format!("{name} refused")), "{name}: {report}");
    }
    drop(keeper);

    // Children that sleep keep the run going until the time limit, then all go.
    let sleeper = "import os, time\nfor _ in range(3):\n    if os.fork() == 0:\n        time.sleep(60)\nos.wait()\n";
    let started = std::time::Instant::now();
    let (status, result) = cluster
        .post(
            "/api/executions",
            user.token(),
            json!({"language": "python", "files": [{"name": "sleepers_marker.py", "content": sleeper}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!((result["status"].as_str(), result["signal"].as_i64()), (Some("time_limit"), Some(9)), "{result}");
    let wall_time_ms = result["wall_time_ms"].as_i64().unwrap();
    assert!((3000..4500).contains(&wall_time_ms), "stopped at the 3 s limit: {wall_time_ms} ms");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(!process_alive("sleepers_marker"), "no sleeping child outlives its run");
}

/// On PostgreSQL, whose TEXT holds no NUL: a run that prints one is stored and listed all the
/// same (the NUL kept as U+FFFD), and a listing carries only the start of long output.
#[tokio::test]
async fn runs_are_stored_on_postgres_even_when_they_print_nul_bytes() {
    use serde_json::json;
    let database = crate::harness::PostgresDatabase::create();
    let cluster = Cluster::one_process(&[("CODESYNC_DATABASE_URL", &database.url())]).await;
    let user = cluster.register("nulprinter").await;
    let program = "print('a\\0b')\nprint('x' * 100000)\n";
    let (status, result) = cluster
        .post(
            "/api/executions",
            user.token(),
            json!({"language": "python", "files": [{"name": "nul.py", "content": program}]}),
        )
        .await;
    if status == StatusCode::SERVICE_UNAVAILABLE {
        assert_ne!(std::env::var("CODESYNC_TEST_REQUIRE_SANDBOX").as_deref(), Ok("1"), "{result}");
        return;
    }
    assert_eq!((status, result["status"].as_str()), (StatusCode::OK, Some("ok")), "{result}");
    assert!(result["stdout"].as_str().unwrap().starts_with("a\u{0}b\n"), "the answer itself is what was printed");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while database.query_one("SELECT COUNT(*) FROM executions") != "1" {
        assert!(std::time::Instant::now() < deadline, "the run was never stored");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, listed) = cluster.get("/api/executions", user.token()).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let run = &listed["executions"][0];
    let stdout = run["stdout"].as_str().unwrap();
    assert!(stdout.starts_with("a\u{FFFD}b\nxxx"), "{}", &stdout[..10]);
    assert_eq!((stdout.chars().count(), run["stdout_truncated"].as_bool()), (16 * 1024, Some(true)));
}

/// The most memory (kB) a process has held: its VmHWM.
fn peak_memory_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the server's status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// 100 MB of output, on stdout and on stderr, through the plain and the streamed API: each run
/// stops at the output limit with the first 1 MiB kept, and the server's memory does not grow
/// with what the program printed.
#[tokio::test]
async fn a_flood_of_output_stops_at_the_limit_and_the_server_memory_stays_bounded() {
    use serde_json::json;
    let cluster = Cluster::one_process(&[]).await;
    let user = cluster.register("flooder").await;
    let pid = cluster.pid("all").expect("the server's pid");
    let flood = |stream: &str| {
        format!("import sys\nchunk = 'x' * 1_000_000\nfor _ in range(100):\n    sys.{stream}.write(chunk)\n")
    };
    let (status, result) = cluster
        .post(
            "/api/executions",
            user.token(),
            json!({"language": "python", "files": [{"name": "warmup.py", "content": "print(1)"}]}),
        )
        .await;
    if status == StatusCode::SERVICE_UNAVAILABLE {
        assert_ne!(std::env::var("CODESYNC_TEST_REQUIRE_SANDBOX").as_deref(), Ok("1"), "{result}");
        return;
    }
    let before = peak_memory_kb(pid);
    for stream in ["stdout", "stderr"] {
        let body = json!({"language": "python", "files": [{"name": "flood.py", "content": flood(stream)}]});
        let (status, result) = cluster.post("/api/executions", user.token(), body.clone()).await;
        assert_eq!((status, result["status"].as_str()), (StatusCode::OK, Some("output_limit")), "{stream}");
        assert_eq!(result[stream].as_str().unwrap().len(), 1024 * 1024, "{stream}: the first 1 MiB is kept");
        assert_eq!(result[format!("{stream}_truncated")].as_bool(), Some(true));
        let response = cluster
            .post_raw("/api/executions/stream", user.token(), "application/json", body.to_string().into_bytes())
            .await;
        let mut events = EventReader::new(response);
        let mut streamed = 0;
        let result = loop {
            let (name, data, _) = events.next().await.expect("the stream ends with a result");
            if name == "result" {
                break data;
            }
            // The other stream may carry a few words (Python's broken-pipe message).
            if name == stream {
                streamed += data["text"].as_str().map_or(0, str::len);
            }
        };
        assert_eq!(result["status"].as_str(), Some("output_limit"), "{stream}, streamed");
        assert!(streamed <= 1024 * 1024, "{stream}: at most the limit is streamed ({streamed} bytes)");
    }
    let grown_kb = peak_memory_kb(pid).saturating_sub(before);
    eprintln!("the server's peak memory grew by {grown_kb} kB over 400 MB printed");
    assert!(grown_kb < 64 * 1024, "the server's memory grew by {grown_kb} kB");
}
