//! The web app as the binary serves it: the build embedded at compile time, or a directory
//! given by CODESYNC_WEB_DIR; the app's routes get index.html, API paths never do.

use reqwest::StatusCode;
use reqwest::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
    REFERRER_POLICY, VARY,
};

use crate::harness::Cluster;

fn http() -> reqwest::Client {
    reqwest::Client::builder().build().expect("http client")
}

/// `make test` builds the web app before the Rust tests, so there the binary must carry it.
fn web_app_expected() -> bool {
    std::env::var("CODESYNC_TEST_EXPECT_WEB_APP").is_ok_and(|value| value == "1")
}

#[tokio::test]
async fn the_binary_serves_the_web_app_it_embeds() {
    let cluster = Cluster::one_process(&[]).await;
    let index = http().get(format!("{}/", cluster.base_url)).send().await.unwrap();
    if index.status() == StatusCode::SERVICE_UNAVAILABLE {
        let page = index.text().await.unwrap();
        assert!(page.contains("make web"), "a binary without the app says how to build it: {page}");
        assert!(!web_app_expected(), "make test built frontend/dist first, yet the binary does not embed it");
        return;
    }
    assert_eq!(index.status(), StatusCode::OK);
    assert_eq!(index.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(index.headers()[CACHE_CONTROL], "no-cache");
    assert!(index.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap().contains("default-src 'self'"));
    assert_eq!(index.headers()[REFERRER_POLICY], "no-referrer");
    let html = index.text().await.unwrap();
    let script = html
        .split("src=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap())
        .find(|src| src.starts_with("/assets/") && src.ends_with(".js"))
        .expect("index.html loads its bundle from /assets/")
        .to_string();

    // The app's own routes are index.html too.
    let route = http().get(format!("{}/rooms/some-room?file=x", cluster.base_url)).send().await.unwrap();
    assert_eq!(route.status(), StatusCode::OK);
    assert_eq!(route.text().await.unwrap(), html);

    // The bundle: brotli when accepted, immutable (its name carries a hash), 304 on a match.
    let bundle =
        http().get(format!("{}{script}", cluster.base_url)).header(ACCEPT_ENCODING, "gzip, br").send().await.unwrap();
    assert_eq!(bundle.status(), StatusCode::OK);
    assert_eq!(bundle.headers()[CONTENT_ENCODING], "br");
    assert_eq!(bundle.headers()[VARY], "Accept-Encoding");
    assert_eq!(bundle.headers()[CACHE_CONTROL], "public, max-age=31536000, immutable");
    assert_eq!(bundle.headers()[CONTENT_TYPE], "text/javascript; charset=utf-8");
    let etag = bundle.headers()[ETAG].clone();
    let compressed = bundle.bytes().await.unwrap().len();
    let plain = http().get(format!("{}{script}", cluster.base_url)).send().await.unwrap();
    assert!(plain.headers().get(CONTENT_ENCODING).is_none());
    assert!(plain.bytes().await.unwrap().len() > compressed, "the brotli copy is the smaller one");
    let again = http()
        .get(format!("{}{script}", cluster.base_url))
        .header(ACCEPT_ENCODING, "br")
        .header(IF_NONE_MATCH, etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn a_configured_directory_is_served_and_api_paths_keep_their_errors() {
    let web = tempfile::tempdir().unwrap();
    std::fs::create_dir(web.path().join("assets")).unwrap();
    std::fs::write(web.path().join("index.html"), "<!doctype html><title>custom build</title>").unwrap();
    std::fs::write(web.path().join("assets/app-1.js"), "console.log('plain')").unwrap();
    std::fs::write(web.path().join("assets/app-1.js.gz"), "pretend gzip").unwrap();
    let cluster = Cluster::one_process(&[("CODESYNC_WEB_DIR", web.path().to_str().unwrap())]).await;
    let base = &cluster.base_url;

    let page = http().get(format!("{base}/join/ABC123")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.text().await.unwrap(), "<!doctype html><title>custom build</title>");
    let gzip = http().get(format!("{base}/assets/app-1.js")).header(ACCEPT_ENCODING, "gzip").send().await.unwrap();
    assert_eq!(gzip.headers()[CONTENT_ENCODING], "gzip");
    assert_eq!(gzip.text().await.unwrap(), "pretend gzip");
    let head = http().head(format!("{base}/assets/app-1.js")).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()[reqwest::header::CONTENT_LENGTH], "20");

    // A missing file is a 404, not the app; API paths keep the JSON error shape.
    let missing = http().get(format!("{base}/assets/missing.js")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    for path in ["/api/nothing-here", "/ws/nothing-here"] {
        let (status, body) = cluster.get(path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["error"]["code"], "not_found", "{path}");
    }
    let wrong_method = http().post(format!("{base}/rooms/x")).send().await.unwrap();
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    // Sent raw: an HTTP client would resolve the dots itself before sending.
    // Escaped slashes are never decoded into separators either.
    for path in ["/assets/../../etc/passwd", "/assets/..\\..\\secrets.txt", "/./index.html", "/..%2f..%2fetc%2fpasswd"]
    {
        let answer = raw_get(base, path).await;
        assert!(answer.starts_with("HTTP/1.1 404"), "{path}: {answer}");
    }
}

async fn raw_get(base_url: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base_url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_web_dir_without_a_build_stops_the_start_with_a_clear_error() {
    let empty = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(crate::harness::binary())
        .arg("config")
        .env("CODESYNC_WEB_DIR", empty.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("CODESYNC_WEB_DIR") && stderr.contains("index.html"), "{stderr}");
}
