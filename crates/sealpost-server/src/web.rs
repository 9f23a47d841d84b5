//! The browser client at `/`: the build of `web/` embedded in the binary (by `build.rs`), or the
//! files of `--web-dir`, under a strict Content-Security-Policy; and the origin rule for the whole
//! API. The page and the API share one origin, so no CORS is needed: a request that carries an
//! `Origin` other than the server's own (its `Host`) is refused with 403, unless that origin is
//! listed with `--allowed-origin`, which then gets the CORS answers a browser needs.

use std::path::{Component, Path};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

// `FILES`: (path, bytes) of every file of web/dist, sorted by path, made by build.rs.
include!(concat!(env!("OUT_DIR"), "/web_files.rs"));

/// The page's policy: scripts only from this origin, plus `'wasm-unsafe-eval'` because the SDK's
/// libsodium is WebAssembly; no inline script or style; the KDF runs in a same-origin Worker.
pub const CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; \
    worker-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; \
    manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const NOT_FOUND: &str = "no such endpoint; see /v1/openapi.json";

/// The fallback of the router: a file of the client for GET and HEAD outside `/v1`, else the
/// API's 404.
pub async fn page(State(state): State<AppState>, method: Method, uri: Uri) -> Response {
    let path = uri.path();
    if !(method == Method::GET || method == Method::HEAD) || path.starts_with("/v1/") {
        return ApiError::not_found(NOT_FOUND).into_response();
    }
    let path = if path == "/" { "/index.html" } else { path };
    let bytes = match &state.config.web_dir {
        Some(dir) => read_from(dir, path).await,
        None => FILES
            .binary_search_by(|(p, _)| (*p).cmp(path))
            .ok()
            .and_then(|i| FILES.get(i))
            .map(|(_, b)| b.to_vec()),
    };
    let Some(bytes) = bytes else {
        return ApiError::not_found(NOT_FOUND).into_response();
    };
    let cache = if path.starts_with("/assets/") {
        // Vite names every asset by its content's hash: a new build is a new name.
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut response = (StatusCode::OK, bytes).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    response
}

/// A file under `dir`, never outside it: only plain path components are followed.
async fn read_from(dir: &Path, path: &str) -> Option<Vec<u8>> {
    let relative = Path::new(path.trim_start_matches('/'));
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return None;
    }
    let file = dir.join(relative);
    if !tokio::fs::metadata(&file).await.ok()?.is_file() {
        return None;
    }
    tokio::fs::read(file).await.ok()
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json" | "webmanifest") => "application/json",
        Some("wasm") => "application/wasm",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The origin rule, and the headers every answer carries (`nosniff`, `no-referrer`).
pub async fn same_origin(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let origin = req.headers().get(header::ORIGIN).cloned();
    let allowed =
        match &origin {
            None => None,
            Some(o) if is_own(o, req.headers()) => None,
            Some(o)
                if state
                    .config
                    .allowed_origin
                    .iter()
                    .any(|a| a.as_bytes() == o.as_bytes()) =>
            {
                Some(o.clone())
            }
            Some(_) => return with_safety(
                ApiError::Forbidden(
                    "cross-origin requests are refused: use the API from the server's own origin, \
                     or start the server with --allowed-origin"
                        .into(),
                )
                .into_response(),
            ),
        };
    let mut response = match (&allowed, req.method()) {
        (Some(_), &Method::OPTIONS) => {
            let mut r = StatusCode::NO_CONTENT.into_response();
            let h = r.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, DELETE"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("authorization, content-type"),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
            r
        }
        _ => next.run(req).await,
    };
    if let Some(origin) = allowed {
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("retry-after"),
        );
        h.append(header::VARY, HeaderValue::from_static("origin"));
    }
    with_safety(response)
}

/// Whether `origin` names this server: its host and port are the request's `Host`.
fn is_own(origin: &HeaderValue, headers: &HeaderMap) -> bool {
    let (Ok(origin), Some(Ok(host))) = (
        origin.to_str(),
        headers.get(header::HOST).map(HeaderValue::to_str),
    ) else {
        return false;
    };
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    authority.is_some_and(|a| a.eq_ignore_ascii_case(host))
}

fn with_safety(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
