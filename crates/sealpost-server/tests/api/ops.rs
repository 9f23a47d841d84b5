//! healthz, readyz, metrics, the OpenAPI description, unknown routes.

use reqwest::Method;
use sealpost_client::api::RawBody;

use crate::both;
use crate::helpers::*;

both!(health_metrics_and_openapi, |app: TestApp| async move {
    let api = app.api();
    api.healthz().await.unwrap();
    let health = api
        .raw(Method::GET, "/healthz", RawBody::None)
        .await
        .unwrap();
    assert_eq!(
        health.json,
        serde_json::json!({"status": "ok", "protocol": "1.1"})
    );
    api.readyz().await.unwrap();
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    alice
        .api
        .send(&sealpost_client::api::SendRequest {
            to: bob.id,
            ciphertext: ciphertext(1),
            key_version: 1,
            sender_key_version: 1,
            sender_copy: None,
        })
        .await
        .unwrap();
    let metrics = api.metrics().await.unwrap();
    for needle in [
        "sealpost_http_requests_total{method=\"POST\",route=\"/v1/messages\",status=\"201\"} 1",
        "sealpost_http_request_duration_seconds_bucket{method=\"POST\",route=\"/v1/accounts\"",
        "sealpost_messages_stored_total 1",
        "sealpost_db_pool_connections{",
    ] {
        assert!(
            metrics.contains(needle),
            "metrics lack {needle}:\n{metrics}"
        );
    }
    assert!(
        !metrics.contains(&bob.id.to_string()),
        "metrics must not carry ids"
    );
    let doc = api.openapi().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/v1/accounts",
        "/v1/auth/prelogin",
        "/v1/auth/login",
        "/v1/auth/refresh",
        "/v1/auth/logout",
        "/v1/sessions",
        "/v1/sessions/{id}",
        "/v1/users",
        "/v1/users/{user_id}",
        "/v1/users/{user_id}/keys/{key_version}",
        "/v1/users/{user_id}/keys",
        "/v1/messages",
        "/v1/messages/{id}",
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/openapi.json",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} missing from the OpenAPI description"
        );
    }
    // Every documented operation is routed (so the description cannot promise what is not there).
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let concrete = path
                .replace("{user_id}", &bob.id.to_string())
                .replace("{key_version}", "1")
                .replace("{id}", &uuid::Uuid::new_v4().to_string());
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = alice.api.raw(m, &concrete, RawBody::None).await.unwrap();
            assert_ne!(
                r.status, 405,
                "{method} {path} is documented but not routed"
            );
            if r.status == 404 {
                assert_ne!(
                    r.json["error"]["message"], "no such endpoint; see /v1/openapi.json",
                    "{method} {path}"
                );
            }
        }
    }
    let r = api
        .raw(Method::GET, "/v1/nothing-here", RawBody::None)
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.json["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
});

both!(
    overload_is_shed_with_503_and_slow_bodies_take_no_slot,
    |app: TestApp| async move {
        use tokio::io::AsyncWriteExt as _;
        let backend = app.backend;
        app.stop().await;
        let mut args = test_args();
        args.max_in_flight = 1;
        let app = TestApp::spawn_with(backend, args).await.unwrap();
        // Ten requests whose headers promise a body that never comes. They are waiting for their
        // body, not in flight: with one in-flight slot, everyone else is still served.
        let mut held = Vec::new();
        for _ in 0..10 {
            let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
            s.write_all(
            b"POST /v1/auth/prelogin HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        )
        .await
        .unwrap();
            held.push(s);
        }
        let api = app.api();
        for _ in 0..5 {
            let r = api
                .raw(Method::GET, "/healthz", RawBody::None)
                .await
                .unwrap();
            assert_eq!(
                r.status, 200,
                "a slow body took the in-flight slot: {}",
                r.text
            );
        }
        // Requests past the bound are shed at once with 503: readiness probes, which wait on the
        // database, sent 32 at a time until two of them overlap.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let shed = loop {
            let probes = (0..32).map(|_| api.raw(Method::GET, "/readyz", RawBody::None));
            let answers = futures_util::future::join_all(probes).await;
            if let Some(r) = answers
                .into_iter()
                .map(Result::unwrap)
                .find(|r| r.status == 503)
            {
                break r;
            }
            assert!(std::time::Instant::now() < deadline, "never answered 503");
        };
        assert_eq!(shed.json["error"]["code"], "overloaded");
        // The slot comes back.
        assert_eq!(
            api.raw(Method::GET, "/healthz", RawBody::None)
                .await
                .unwrap()
                .status,
            200
        );
        drop(held);
        assert!(app
            .api()
            .metrics()
            .await
            .unwrap()
            .contains("sealpost_overloaded_total"));
        app.stop().await;
    }
);

both!(
    metrics_parse_as_prometheus_text,
    |app: TestApp| async move {
        let alice = app.user("alice").await;
        let bob = app.user("bob").await;
        for _ in 0..3 {
            alice
                .api
                .send(&sealpost_client::api::SendRequest {
                    to: bob.id,
                    ciphertext: ciphertext(1),
                    key_version: 1,
                    sender_key_version: 1,
                    sender_copy: None,
                })
                .await
                .unwrap();
        }
        let text = app.api().metrics().await.unwrap();
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
        // Every family that has samples is described.
        for sample in &scrape.samples {
            let family = ["_bucket", "_sum", "_count", "_total"]
                .iter()
                .find_map(|s| sample.metric.strip_suffix(s))
                .unwrap_or(&sample.metric);
            assert!(
                scrape.docs.contains_key(family) || scrape.docs.contains_key(&sample.metric),
                "{} has no HELP",
                sample.metric
            );
        }
        let sends = scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == "sealpost_http_requests_total"
                    && s.labels.get("route") == Some("/v1/messages")
                    && s.labels.get("status") == Some("201")
            })
            .expect("a counter of the sends");
        assert!(matches!(sends.value, prometheus_parse::Value::Counter(n) if n == 3.0));
        // The latency histogram: buckets that only grow, up to +Inf, which is the count.
        let histogram = scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == "sealpost_http_request_duration_seconds"
                    && s.labels.get("route") == Some("/v1/messages")
            })
            .expect("a latency histogram of the sends");
        let prometheus_parse::Value::Histogram(buckets) = &histogram.value else {
            panic!("not a histogram: {:?}", histogram.value);
        };
        assert!(buckets.windows(2).all(|w| w[0].count <= w[1].count));
        let last = buckets.last().unwrap();
        assert!(
            last.less_than.is_infinite() && last.count == 3.0,
            "{buckets:?}"
        );
    }
);

#[tokio::test]
async fn readyz_says_unavailable_when_the_database_is_gone() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    app.api().readyz().await.unwrap();
    // The pool closed under the server: the database no longer answers.
    app.store.close().await;
    let raw = app
        .api()
        .raw(Method::GET, "/readyz", RawBody::None)
        .await
        .unwrap();
    assert_eq!(raw.status, 503);
    assert_eq!(raw.json["status"], "unavailable", "{:?}", raw.json);
    app.stop().await;
}
