//! The connections in front of the API (PROTOCOL §7): TLS termination, the header deadline, and
//! the cap on connections, WebSocket streams included.

use std::time::Duration;

use futures_util::SinkExt as _;
use reqwest::Method;
use sealpost_client::api::RawBody;
use sealpost_testkit::tls::TestCa;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

/// Sends a bare GET and reads the whole answer (the request asks to close).
async fn get<S>(mut io: S, path: &str) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    io.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), io.read_to_end(&mut answer))
        .await
        .expect("an answer within 10 s");
    String::from_utf8_lossy(&answer).into_owned()
}

/// Reads until the peer closes; `true` if it closed within `bound`.
async fn closed_within(io: &mut TcpStream, bound: Duration) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(bound, async {
        loop {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_https_and_wss_with_the_given_certificate() {
    let ca = TestCa::new();
    let mut args = test_args();
    args.tls_cert = Some(ca.server_cert.clone());
    args.tls_key = Some(ca.server_key.clone());
    let app = TestApp::spawn_with(Backend::Sqlite, args).await.unwrap();
    let answer = get(
        ca.connect(app.addr).await.expect("a TLS handshake"),
        "/healthz",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"status\":\"ok\""), "{answer}");
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = get(TcpStream::connect(app.addr).await.unwrap(), "/healthz").await;
    assert!(!plain.starts_with("HTTP/1.1 200"), "{plain}");
    // A client that trusts another CA refuses the server.
    let other = TestCa::new();
    assert!(other.connect(app.addr).await.is_err());
    // The stream upgrades over wss and speaks its protocol (a made-up token: 4401). The SDK's
    // and the CLI's own TLS tests sign in and stream for real.
    let tls = ca.connect(app.addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async("wss://localhost/v1/stream", tls)
        .await
        .expect("a WebSocket over TLS");
    let auth = serde_json::json!({"type": "auth", "access_token": "not.a.token", "after": 0});
    ws.send(Message::Text(auth.to_string().into()))
        .await
        .unwrap();
    assert_eq!(hear(&mut ws).await, Heard::Closed(Some(4401)));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_header_is_cut_off() {
    let mut args = test_args();
    args.header_timeout = 1;
    let app = TestApp::spawn_with(Backend::Sqlite, args).await.unwrap();
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: loc")
        .await
        .unwrap();
    assert!(
        closed_within(&mut slow, Duration::from_secs(10)).await,
        "the server kept a connection whose header never ended"
    );
    // Others are served meanwhile and after.
    let answer = get(TcpStream::connect(app.addr).await.unwrap(), "/healthz").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_get_503_and_streams_count() {
    let mut args = test_args();
    args.max_connections = 3;
    let app = TestApp::spawn_with(Backend::Sqlite, args).await.unwrap();
    let alice = app.user("alice").await;
    // A stream holds a slot for as long as it lives; so do two idle connections.
    let token = alice.api.token().unwrap().expose().to_owned();
    let ws = app.stream(&token.into(), 0).await;
    let idle_a = TcpStream::connect(app.addr).await.unwrap();
    let idle_b = TcpStream::connect(app.addr).await.unwrap();
    // The fourth is told 503 overloaded, in PROTOCOL §4's shape. (The slots are taken by the
    // time the server accepts the fourth: it accepts in order.)
    let refused = get(TcpStream::connect(app.addr).await.unwrap(), "/healthz").await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    let body = refused.split("\r\n\r\n").nth(1).unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["error"]["code"], "overloaded");
    // When the stream closes, its slot is free again.
    drop(ws);
    drop(idle_a);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = get(TcpStream::connect(app.addr).await.unwrap(), "/healthz").await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no slot came free within 10 s: {answer}"
        );
        tokio::task::yield_now().await;
    }
    drop(idle_b);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_trickles_in_is_cut_off_at_the_deadline() {
    let mut args = test_args();
    args.body_timeout = 1;
    let app = TestApp::spawn_with(Backend::Sqlite, args).await.unwrap();
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(
        b"POST /v1/auth/prelogin HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"em",
    )
    .await
    .unwrap();
    // The rest never comes: the server answers 400 at its deadline (within 10 s here).
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), slow.read(&mut answer))
        .await
        .expect("an answer before the bound")
        .unwrap();
    let text = String::from_utf8_lossy(&answer[..n]);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("did not arrive"), "{text}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_move_to_an_address_of_their_own() {
    let mut args = test_args();
    args.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let app = TestApp::spawn_with(Backend::Sqlite, args).await.unwrap();
    let api_side = get(TcpStream::connect(app.addr).await.unwrap(), "/metrics").await;
    assert!(api_side.starts_with("HTTP/1.1 404"), "{api_side}");
    let own = app.metrics_addr().expect("a metrics address");
    let metrics = get(TcpStream::connect(own).await.unwrap(), "/metrics").await;
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(
        metrics.contains("sealpost_http_requests_total"),
        "{metrics}"
    );
    // The metrics address serves nothing else.
    let other = get(TcpStream::connect(own).await.unwrap(), "/healthz").await;
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_has_at_most_its_streams() {
    let mut args = test_args();
    args.max_streams_per_account = 2;
    let app = TestApp::spawn_with(Backend::Sqlite, args).await.unwrap();
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let token = alice.api.token().unwrap();
    let first = app.stream(token, 0).await;
    let _second = app.stream(token, 0).await;
    // The third is closed 1013 (try again later), right after its auth frame.
    let mut third = app.ws().await;
    let auth = serde_json::json!({"type": "auth", "access_token": token.expose(), "after": 0});
    third
        .send(Message::Text(auth.to_string().into()))
        .await
        .unwrap();
    assert_eq!(hear(&mut third).await, Heard::Closed(Some(1013)));
    // Bob's are his own.
    let _bob = app.stream(bob.api.token().unwrap(), 0).await;
    // When one of Alice's closes, she may open another (the server notices the close promptly).
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = app.ws().await;
        again
            .send(Message::Text(auth.to_string().into()))
            .await
            .unwrap();
        match hear(&mut again).await {
            Heard::Ready(0) => break,
            Heard::Closed(Some(1013)) if tokio::time::Instant::now() < deadline => {
                tokio::task::yield_now().await
            }
            other => panic!("expected a stream once a slot was free, heard {other:?}"),
        }
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_slow_bodies_keep_nobody_waiting() {
    // The attack of issue 13: many connections promise a large body and trickle it in. With a
    // small in-flight cap (4), they once held every slot, and every request, /healthz included,
    // got 503. A request takes a slot only once its body has arrived, so they hold none.
    let mut args = test_args();
    args.max_in_flight = 4;
    args.body_timeout = 3;
    let app = TestApp::spawn_with(Backend::Sqlite, args).await.unwrap();
    let mut slow = Vec::new();
    for _ in 0..1000 {
        let mut s = TcpStream::connect(app.addr).await.unwrap();
        s.write_all(
            b"POST /v1/auth/prelogin HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{",
        )
        .await
        .unwrap();
        slow.push(s);
    }
    // Throughout, before the body deadline: /healthz and a fresh client's prelogin are answered.
    let api = app.api();
    for i in 0..20 {
        let r = api
            .raw(Method::GET, "/healthz", RawBody::None)
            .await
            .unwrap();
        assert_eq!(r.status, 200, "/healthz #{i}: {}", r.text);
    }
    let fresh = api
        .raw(
            Method::POST,
            "/v1/auth/prelogin",
            RawBody::Json(serde_json::json!({"email": "fresh@example.test"})),
        )
        .await
        .unwrap();
    assert_eq!(fresh.status, 200, "{}", fresh.text);
    // At the deadline each slow client is told 400 and cut off.
    let mut answered = 0;
    for s in &mut slow {
        let mut answer = vec![0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut answer))
            .await
            .expect("an answer before the bound")
            .unwrap_or(0);
        if String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 400") {
            answered += 1;
        }
    }
    assert_eq!(answered, 1000, "every slow body was cut off with 400");
    app.stop().await;
}
