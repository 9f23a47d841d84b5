//! The browser client at `/` (embedded, or `--web-dir`), its headers, and the origin rule. The
//! database plays no part here, so these run on SQLite only.

use reqwest::header;
use sealpost_testkit::{test_args, Backend, TestApp};

async fn spawn(edit: impl FnOnce(&mut sealpost_server::config::ServeArgs)) -> TestApp {
    let mut args = test_args();
    edit(&mut args);
    TestApp::spawn_with(Backend::Sqlite, args).await.unwrap()
}

fn header(r: &reqwest::Response, name: header::HeaderName) -> &str {
    r.headers()
        .get(&name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_else(|| panic!("no {name} header"))
}

#[tokio::test]
async fn the_embedded_client_is_served_at_the_root_under_a_strict_policy() {
    let app = spawn(|_| {}).await;
    let http = reqwest::Client::new();
    let r = http.get(format!("{}/", app.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, header::CONTENT_TYPE), "text/html; charset=utf-8");
    assert_eq!(header(&r, header::CACHE_CONTROL), "no-cache");
    assert_eq!(header(&r, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    assert_eq!(header(&r, header::REFERRER_POLICY), "no-referrer");
    let csp = header(&r, header::CONTENT_SECURITY_POLICY).to_owned();
    for directive in [
        "default-src 'none'",
        "script-src 'self' 'wasm-unsafe-eval'",
        "worker-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(
        !csp.contains("'unsafe-inline'") && !csp.contains(" 'unsafe-eval'"),
        "{csp}"
    );
    let html = r.text().await.unwrap();
    assert!(html.contains("<title>Sealpost</title>"), "{html}");
    // No inline script: every <script> names a file of its own.
    for tag in html.split("<script").skip(1) {
        let tag = tag.split('>').next().unwrap();
        assert!(
            tag.contains(" src=\"/assets/"),
            "inline or foreign script: {tag}"
        );
    }
    // The entry script it names is there, typed, and cached for good (its name is its hash).
    let src = html
        .split("src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let r = http.get(format!("{}{src}", app.base)).send().await.unwrap();
    assert_eq!(r.status(), 200, "{src}");
    assert_eq!(
        header(&r, header::CONTENT_TYPE),
        "text/javascript; charset=utf-8"
    );
    assert_eq!(
        header(&r, header::CACHE_CONTROL),
        "public, max-age=31536000, immutable"
    );
    assert!(r.bytes().await.unwrap().len() > 1000);
    // HEAD answers too; a path that is no file, and any other method, get the API's 404.
    let r = http.head(format!("{}/", app.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    for (method, path) in [
        (reqwest::Method::GET, "/assets/nothing.js"),
        (reqwest::Method::GET, "/v1/nothing"),
        (reqwest::Method::POST, "/"),
    ] {
        let r = http
            .request(method.clone(), format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{method} {path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{method} {path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn web_dir_serves_another_build_and_nothing_outside_it() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    std::fs::create_dir_all(site.join("assets")).unwrap();
    std::fs::write(
        site.join("index.html"),
        "<!doctype html><title>other build</title>",
    )
    .unwrap();
    std::fs::write(site.join("assets/app-1234.js"), "export {};").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "not for the web").unwrap();
    let app = spawn(|a| a.web_dir = Some(site.clone())).await;
    let http = reqwest::Client::new();
    let r = http.get(format!("{}/", app.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(header(&r, header::CONTENT_SECURITY_POLICY).contains("script-src 'self'"));
    assert_eq!(
        r.text().await.unwrap(),
        "<!doctype html><title>other build</title>"
    );
    let r = http
        .get(format!("{}/assets/app-1234.js", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(header(&r, header::CACHE_CONTROL).contains("immutable"));
    assert_eq!(r.text().await.unwrap(), "export {};");
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/assets/../../secret.txt",
        "/assets",
    ] {
        let r = http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_foreign_origin_is_refused_unless_allowed() {
    let app = spawn(|a| a.allowed_origin = vec!["https://app.example.com".to_owned()]).await;
    let http = reqwest::Client::new();
    let prelogin = |origin: Option<&str>| {
        let mut req = http
            .post(format!("{}/v1/auth/prelogin", app.base))
            .json(&serde_json::json!({"email": "someone@example.com"}));
        if let Some(o) = origin {
            req = req.header(header::ORIGIN, o);
        }
        req.send()
    };
    // No Origin (the CLI, a same-origin GET) and the server's own origin pass, without CORS.
    let own = format!("http://{}", app.addr);
    for origin in [None, Some(own.as_str())] {
        let r = prelogin(origin).await.unwrap();
        assert_eq!(r.status(), 200, "{origin:?}");
        assert!(r
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none());
    }
    // Another origin, another port of the same host, and `null` are refused with the §4 body.
    let other_port = format!("http://127.0.0.1:{}", app.addr.port().wrapping_add(1));
    for origin in ["https://evil.example", other_port.as_str(), "null"] {
        let r = prelogin(Some(origin)).await.unwrap();
        assert_eq!(r.status(), 403, "{origin}");
        assert_eq!(header(&r, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "forbidden", "{origin}");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--allowed-origin"));
    }
    // The configured origin is answered with CORS, its preflight too.
    let r = prelogin(Some("https://app.example.com")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, header::ACCESS_CONTROL_ALLOW_ORIGIN),
        "https://app.example.com"
    );
    let r = http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/v1/messages", app.base),
        )
        .header(header::ORIGIN, "https://app.example.com")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(header(&r, header::ACCESS_CONTROL_ALLOW_HEADERS).contains("authorization"));
    assert!(header(&r, header::ACCESS_CONTROL_ALLOW_METHODS).contains("POST"));
    app.stop().await;
}
