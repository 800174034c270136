//! `/api/executions/*` on the real binary, so far the language list.

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

    // The language follows the entry's extension; a compile error is a result, not an HTTP error.
    let (status, result) =
        run(json!({"files": [{"name": "main.c", "content": "int main(void) { return oops; }"}]})).await;
    assert_eq!((status, result["status"].as_str()), (StatusCode::OK, Some("compile_error")), "{result}");
    assert!(result["stderr"].as_str().unwrap().contains("oops"));
    let (_, result) =
        run(json!({"language": "javascript", "files": [{"name": "a.js", "content": "process.exit(3)"}]})).await;
    assert_eq!((result["status"].as_str(), result["exit_code"].as_i64()), (Some("runtime_error"), Some(3)));

    // Bad requests are refused with a reason.
    let (status, body) = run(json!({"language": "cobol", "files": [{"name": "a.cob", "content": ""}]})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("unknown_language")));
    let (status, body) = run(json!({"language": "python", "files": [{"name": "../evil.py", "content": ""}]})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_file_name")));
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
