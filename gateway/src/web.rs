//! The web app (SPEC section 1: the gateway "serves the web app"): the files of `frontend/dist`,
//! embedded in the binary at build time (`build.rs`) or read from `web_dir` when one is
//! configured. Paths that are not files are the app's own routes and get `index.html`; `/api/*`
//! and `/ws/*` never do, so an API typo still gets the JSON error shape.

use std::path::{Component, Path, PathBuf};
use std::time::UNIX_EPOCH;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::GatewayState;
use crate::error::ApiError;

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// Where the web app's files come from.
#[derive(Debug, Clone)]
pub enum WebSource {
    /// Compiled into the binary (`make web` before `cargo build`).
    Embedded,
    /// A built `frontend/dist` on disk, canonicalised (development, or a custom build).
    Directory(PathBuf),
}

// Monaco sets styles from script and loads its workers as same-origin scripts; nothing comes
// from another origin. `connect-src 'self'` covers same-origin WebSockets too.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

struct Asset {
    /// Embedded files are served from the binary without a copy.
    content: Bytes,
    etag: String,
    encoding: Option<&'static str>,
    /// Whether other encodings of the same path exist (then caches must vary by `Accept-Encoding`).
    has_variants: bool,
}

/// The fallback of the whole router: the web app for page paths, the JSON 404 for API paths.
pub async fn fallback(State(state): State<GatewayState>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    if is_api_path(path) {
        return ApiError::not_found().into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return crate::error::method_not_allowed_fallback().await.into_response();
    }
    let Some(requested) = asset_path(path) else {
        return ApiError::not_found().into_response();
    };
    let accepted = AcceptedEncodings::from_headers(&headers);
    let source = &state.web_source;
    let (served_path, asset) = match find(source, &requested, accepted).await {
        Some(asset) => (requested, asset),
        // The app's own routes (`/rooms/…`, `/join/…`) are index.html; a missing file is a 404.
        None if !looks_like_file(&requested) => match find(source, "index.html", accepted).await {
            Some(asset) => ("index.html".to_string(), asset),
            None => return web_app_missing(source),
        },
        None => return ApiError::not_found().into_response(),
    };
    respond(&method, &headers, &served_path, asset)
}

fn is_api_path(path: &str) -> bool {
    ["/api", "/ws"].iter().any(|prefix| path == *prefix || path.starts_with(&format!("{prefix}/")))
}

/// The path under `dist/` that a URL path names; `None` for anything that could climb out of it.
fn asset_path(url_path: &str) -> Option<String> {
    let trimmed = url_path.trim_start_matches('/');
    if trimmed.is_empty() {
        return Some("index.html".to_string());
    }
    let safe = trimmed.split('/').all(|segment| {
        !segment.is_empty() && segment != "." && segment != ".." && !segment.contains(['\\', '\0', ':'])
    });
    safe.then(|| trimmed.to_string())
}

fn looks_like_file(path: &str) -> bool {
    path.rsplit('/').next().is_some_and(|name| name.contains('.'))
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct AcceptedEncodings {
    brotli: bool,
    gzip: bool,
}

impl AcceptedEncodings {
    fn from_headers(headers: &HeaderMap) -> Self {
        let mut accepted = Self::default();
        for value in headers.get_all(header::ACCEPT_ENCODING) {
            let Ok(value) = value.to_str() else { continue };
            for item in value.split(',') {
                let mut parts = item.split(';').map(str::trim);
                let coding = parts.next().unwrap_or_default().to_ascii_lowercase();
                let refused = parts.any(|parameter| {
                    parameter.strip_prefix("q=").is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q <= 0.0))
                });
                match coding.as_str() {
                    "br" => accepted.brotli = !refused,
                    "gzip" => accepted.gzip = !refused,
                    _ => {}
                }
            }
        }
        accepted
    }
}

/// The best encoding of `path` the client accepts: brotli, then gzip, then the file itself.
async fn find(source: &WebSource, path: &str, accepted: AcceptedEncodings) -> Option<Asset> {
    let variants = [("br", accepted.brotli), ("gzip", accepted.gzip)];
    let mut has_variants = false;
    for (encoding, wanted) in variants {
        let suffix = if encoding == "br" { "br" } else { "gz" };
        let encoded_path = format!("{path}.{suffix}");
        if !exists(source, &encoded_path).await {
            continue;
        }
        has_variants = true;
        if wanted && let Some((content, etag)) = read(source, &encoded_path).await {
            return Some(Asset { content, etag, encoding: Some(encoding), has_variants });
        }
    }
    let (content, etag) = read(source, path).await?;
    Some(Asset { content, etag, encoding: None, has_variants })
}

async fn exists(source: &WebSource, path: &str) -> bool {
    match source {
        WebSource::Embedded => WEB_ASSETS.iter().any(|(name, _, _)| *name == path),
        WebSource::Directory(root) => resolve_in(root, path).await.is_some(),
    }
}

async fn read(source: &WebSource, path: &str) -> Option<(Bytes, String)> {
    match source {
        WebSource::Embedded => WEB_ASSETS
            .iter()
            .find(|(name, _, _)| *name == path)
            .map(|(_, content, etag)| (Bytes::from_static(content), (*etag).to_string())),
        WebSource::Directory(root) => {
            let file = resolve_in(root, path).await?;
            let metadata = tokio::fs::metadata(&file).await.ok()?;
            let modified = metadata.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
            let content = Bytes::from(tokio::fs::read(&file).await.ok()?);
            Some((content, format!("\"{:x}-{:x}\"", metadata.len(), modified.as_nanos())))
        }
    }
}

/// The file under `root`, following symlinks only if they stay inside it.
async fn resolve_in(root: &Path, relative: &str) -> Option<PathBuf> {
    let candidate = root.join(relative);
    if candidate.components().any(|component| matches!(component, Component::ParentDir)) {
        return None;
    }
    let canonical = tokio::fs::canonicalize(&candidate).await.ok()?;
    let inside = canonical.starts_with(root);
    let is_file = tokio::fs::metadata(&canonical).await.is_ok_and(|metadata| metadata.is_file());
    (inside && is_file).then_some(canonical)
}

fn respond(method: &Method, request_headers: &HeaderMap, path: &str, asset: Asset) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(path)));
    let cache = if path.starts_with("assets/") { IMMUTABLE } else { "no-cache" };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(etag) = HeaderValue::from_str(&asset.etag) {
        headers.insert(header::ETAG, etag);
    }
    if let Some(encoding) = asset.encoding {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    if asset.has_variants {
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if path.ends_with(".html") {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
        // Invite links carry their code in the path: never hand it to another site.
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    let not_modified = request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split(',').any(|tag| tag.trim() == asset.etag || tag.trim() == "*"));
    if not_modified {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(asset.content.len()));
    let body = if *method == Method::HEAD { Body::empty() } else { Body::from(asset.content) };
    (StatusCode::OK, headers, body).into_response()
}

fn content_type(path: &str) -> &'static str {
    let extension = path.rsplit('.').next().unwrap_or_default().to_ascii_lowercase();
    match extension.as_str() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "ttf" => "font/ttf",
        "wasm" => "application/wasm",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn web_app_missing(source: &WebSource) -> Response {
    let hint = match source {
        WebSource::Embedded => {
            "This codesync binary was built without the web app. Run <code>make web</code> and rebuild \
             (<code>make release</code> does both), or set <code>CODESYNC_WEB_DIR</code> to a built \
             <code>frontend/dist</code>. The REST API and WebSockets work regardless."
        }
        WebSource::Directory(_) => "The configured <code>CODESYNC_WEB_DIR</code> has no index.html.",
    };
    let page = format!(
        "<!doctype html><meta charset=utf-8><title>CodeSync</title><body style=\"font-family:system-ui;margin:4rem\"><h1>CodeSync</h1><p>{hint}</p>"
    );
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, page).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response
}

/// Whether this binary carries the web app.
pub fn embedded_web_app_present() -> bool {
    WEB_ASSETS.iter().any(|(name, _, _)| *name == "index.html")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_paths_never_leave_the_web_root() {
        assert_eq!(asset_path("/").as_deref(), Some("index.html"));
        assert_eq!(asset_path("/assets/index-abc.js").as_deref(), Some("assets/index-abc.js"));
        for hostile in ["/../secrets", "/assets/../../etc/passwd", "/a//b", "/./x", "/a\\..\\b", "/c:/windows", "/x\0y"]
        {
            assert_eq!(asset_path(hostile), None, "{hostile:?}");
        }
    }

    #[test]
    fn api_and_websocket_paths_are_not_the_web_app() {
        for path in ["/api", "/api/", "/api/nope", "/ws", "/ws/files/x"] {
            assert!(is_api_path(path), "{path}");
        }
        for path in ["/", "/apiary", "/rooms/1", "/wsx", "/assets/a.js"] {
            assert!(!is_api_path(path), "{path}");
        }
    }

    #[test]
    fn accept_encoding_is_read_with_its_quality_values() {
        let parse = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
            AcceptedEncodings::from_headers(&headers)
        };
        assert_eq!(parse("gzip, deflate, br, zstd"), AcceptedEncodings { brotli: true, gzip: true });
        assert_eq!(parse("gzip;q=1.0, br;q=0"), AcceptedEncodings { brotli: false, gzip: true });
        assert_eq!(parse("identity"), AcceptedEncodings::default());
        assert_eq!(AcceptedEncodings::from_headers(&HeaderMap::new()), AcceptedEncodings::default());
    }

    #[tokio::test]
    async fn a_directory_serves_the_best_encoding_and_never_follows_a_symlink_out() {
        let root = std::env::temp_dir().join(format!("codesync-web-test-{}", std::process::id()));
        let outside = std::env::temp_dir().join(format!("codesync-web-outside-{}", std::process::id()));
        std::fs::create_dir_all(root.join("assets")).unwrap();
        std::fs::write(&outside, "secret").unwrap();
        std::fs::write(root.join("index.html"), "<!doctype html>").unwrap();
        std::fs::write(root.join("assets/app.js"), "console.log(1)").unwrap();
        std::fs::write(root.join("assets/app.js.gz"), "gzipped").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("assets/leak.js")).unwrap();
        let root = std::fs::canonicalize(&root).unwrap();
        let source = WebSource::Directory(root.clone());

        let gzip = AcceptedEncodings { brotli: true, gzip: true };
        let asset = find(&source, "assets/app.js", gzip).await.unwrap();
        assert_eq!((&asset.content[..], asset.encoding, asset.has_variants), (&b"gzipped"[..], Some("gzip"), true));
        let asset = find(&source, "assets/app.js", AcceptedEncodings::default()).await.unwrap();
        assert_eq!((&asset.content[..], asset.encoding), (&b"console.log(1)"[..], None));
        assert!(find(&source, "assets/leak.js", gzip).await.is_none(), "a symlink out of the root is not served");
        assert!(find(&source, "missing.js", gzip).await.is_none());

        std::fs::remove_dir_all(&root).unwrap();
        std::fs::remove_file(&outside).unwrap();
    }
}
