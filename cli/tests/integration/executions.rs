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
