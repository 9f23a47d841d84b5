//! `GET /v1/stream` (PROTOCOL §4.2): backlog then live, in order, once; close codes.

use futures_util::SinkExt as _;
use sealpost_client::api::{SendRequest, SendResponse};
use tokio_tungstenite::tungstenite::Message;

use crate::both;
use crate::helpers::*;

async fn send(from: &TestUser, to: &TestUser, k: usize) -> SendResponse {
    let req = SendRequest {
        to: to.id,
        ciphertext: ciphertext(k),
        key_version: 1,
        sender_key_version: 1,
        sender_copy: None,
    };
    from.api.send(&req).await.unwrap()
}

fn id_of(heard: Heard) -> String {
    match heard {
        Heard::Message(m) => m["id"].as_str().unwrap().to_owned(),
        other => panic!("expected a message, heard {other:?}"),
    }
}

both!(backlog_then_live_in_order, |app: TestApp| async move {
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let first = send(&alice, &bob, 1).await;
    let second = send(&alice, &bob, 1).await;
    let third = send(&alice, &bob, 1).await;
    let mut ws = app.stream(bob.api.token().unwrap(), first.seq).await;
    assert_eq!(id_of(hear(&mut ws).await), second.id.to_string());
    assert_eq!(id_of(hear(&mut ws).await), third.id.to_string());
    for _ in 0..20 {
        let live = send(&alice, &bob, 2).await;
        match hear(&mut ws).await {
            Heard::Message(m) => {
                assert_eq!(m["id"], live.id.to_string());
                assert_eq!(m["seq"], live.seq);
                assert_eq!(m["from"], alice.id.to_string());
                assert_eq!(
                    sealpost_crypto::b64::decode(m["ciphertext"].as_str().unwrap())
                        .unwrap()
                        .len(),
                    88 + 512
                );
            }
            other => panic!("{other:?}"),
        }
    }
    // Alice's stream hears nothing of Bob's mailbox; her sender copies land in her own.
    let mut mine = app.stream(alice.api.token().unwrap(), 0).await;
    let req = SendRequest {
        to: bob.id,
        ciphertext: ciphertext(1),
        key_version: 1,
        sender_key_version: 1,
        sender_copy: Some(sealpost_client::api::SenderCopy {
            ciphertext: ciphertext(1),
            key_version: 1,
        }),
    };
    alice.api.send(&req).await.unwrap();
    match hear(&mut mine).await {
        Heard::Message(m) => assert_eq!(
            (m["seq"].as_i64(), m["to"].as_str()),
            (Some(1), Some(bob.id.to_string().as_str()))
        ),
        other => panic!("{other:?}"),
    }
});

both!(close_codes_for_bad_starts, |app: TestApp| async move {
    let bob = app.user("bob").await;
    // Not an auth frame.
    for first in [
        r#"{"type":"hello"}"#,
        "not json",
        r#"{"type":"auth"}"#,
        r#"{"type":"auth","access_token":"x","after":-1}"#,
    ] {
        let mut ws = app.ws().await;
        ws.send(Message::Text(first.into())).await.unwrap();
        assert_eq!(hear(&mut ws).await, Heard::Closed(Some(4400)), "{first}");
    }
    let mut ws = app.ws().await;
    ws.send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(hear(&mut ws).await, Heard::Closed(Some(4400)));
    // A bad token.
    let mut ws = app.ws().await;
    ws.send(Message::Text(
        r#"{"type":"auth","access_token":"a.b.c"}"#.into(),
    ))
    .await
    .unwrap();
    assert_eq!(hear(&mut ws).await, Heard::Closed(Some(4401)));
    // A revoked session.
    let token = bob.api.token().unwrap().to_owned();
    bob.api.logout().await.unwrap();
    let mut ws = app.ws().await;
    ws.send(Message::Text(
        serde_json::json!({"type":"auth","access_token":token})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    assert_eq!(hear(&mut ws).await, Heard::Closed(Some(4401)));
    // A plain GET is told it needs a WebSocket, in the error shape.
    let r = app
        .api()
        .raw(
            reqwest::Method::GET,
            "/v1/stream",
            sealpost_client::api::RawBody::None,
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.json["error"]["code"].as_str()),
        (400, Some("invalid_request"))
    );
});

both!(silence_is_closed_with_4408, |app: TestApp| async move {
    let backend = app.backend;
    app.stop().await;
    let mut args = test_args();
    args.stream_auth_timeout = 1;
    let app = TestApp::spawn_with(backend, args).await.unwrap();
    let mut ws = app.ws().await;
    assert_eq!(hear(&mut ws).await, Heard::Closed(Some(4408)));
    app.stop().await;
});

both!(
    revoking_a_session_closes_its_stream,
    |app: TestApp| async move {
        let alice = app.user("alice").await;
        let bob = app.user("bob").await;
        let phone = app
            .api()
            .login(&sealpost_client::api::LoginRequest {
                email: bob.email.clone(),
                auth_key: bob.auth_key.clone(),
                device_name: None,
            })
            .await
            .unwrap();
        let mut on_phone = app.stream(&phone.access_token, 0).await;
        let mut on_laptop = app.stream(bob.api.token().unwrap(), 0).await;
        bob.api.revoke_session(phone.session_id).await.unwrap();
        assert_eq!(hear(&mut on_phone).await, Heard::Closed(Some(4401)));
        // The other session's stream goes on.
        let m = send(&alice, &bob, 1).await;
        assert_eq!(id_of(hear(&mut on_laptop).await), m.id.to_string());
        // Reusing a refresh token revokes its session, and so its stream.
        app.api().refresh(&bob.refresh_token).await.unwrap();
        app.api().refresh(&bob.refresh_token).await.unwrap_err();
        assert_eq!(hear(&mut on_laptop).await, Heard::Closed(Some(4401)));
    }
);

both!(
    a_slow_reader_is_cut_off_with_4409,
    |app: TestApp| async move {
        let backend = app.backend;
        app.stop().await;
        let mut args = test_args();
        args.stream_buffer = 4;
        args.stream_stall_ms = 300;
        let app = TestApp::spawn_with(backend, args).await.unwrap();
        let alice = app.user("alice").await;
        let bob = app.user("bob").await;
        let mut ws = app.stream(bob.api.token().unwrap(), 0).await;
        // Bob reads nothing while Alice sends more than the socket buffers and the queue hold,
        // until the server gives up on him (bounded: 2,000 sends of 64 KiB at most).
        let mut total = 0;
        let cut_off = "sealpost_slow_consumer_disconnects_total 1";
        while !app.api().metrics().await.unwrap().contains(cut_off) {
            assert!(total < 2000, "the server never cut the slow reader off");
            send(&alice, &bob, 255).await;
            total += 1;
        }
        // Then Bob reads: what was already on its way, then the close.
        let mut received = 0;
        let code = loop {
            match hear(&mut ws).await {
                Heard::Message(_) => received += 1,
                Heard::Closed(code) => break code,
                Heard::Ready(_) => panic!("a second ready"),
            }
        };
        assert_eq!(code, Some(4409));
        assert!(received < total, "the server queued everything ({received} of {total}) instead of cutting the reader off");
        let metrics = app.api().metrics().await.unwrap();
        assert!(
            metrics.contains("sealpost_slow_consumer_disconnects_total 1"),
            "{metrics}"
        );
        // Resuming from the last seq received delivers the rest.
        let mut ws = app.stream(bob.api.token().unwrap(), received).await;
        for seq in received + 1..=total {
            match hear(&mut ws).await {
                Heard::Message(m) => assert_eq!(m["seq"].as_i64(), Some(seq)),
                other => panic!("{other:?}"),
            }
        }
        app.stop().await;
    }
);

both!(
    shutdown_closes_streams_with_1001,
    |app: TestApp| async move {
        let bob = app.user("bob").await;
        let mut ws = app.stream(bob.api.token().unwrap(), 0).await;
        app.begin_shutdown();
        assert_eq!(hear(&mut ws).await, Heard::Closed(Some(1001)));
    }
);

/// Two nodes on one PostgreSQL database (one SQLite database is one node), the wake-ups carried by
/// `LISTEN/NOTIFY`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_and_messages_reach_every_node() {
    let Some(app) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    reach_every_node(app).await;
}

/// The same through a NATS hub, whose poll is too slow (a minute) to be what delivers: NATS
/// itself must carry the wake-up and the revocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_and_messages_reach_every_node_through_nats() {
    let Some(args) = nats_args(60_000) else {
        return;
    };
    let Some(app) = TestApp::spawn_with(Backend::Postgres, args).await else {
        return;
    };
    reach_every_node(app).await;
}

async fn reach_every_node(app: TestApp) {
    let node_b = app.second_node().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut on_b = node_b.stream(bob.api.token().unwrap(), 0).await;
    let bob_on_b = node_b.api_for(&bob);
    assert!(
        bob_on_b.sessions().await.is_ok(),
        "node B knows the session (and caches it)"
    );
    // A message stored through node A reaches the stream on node B.
    let m = send(&alice, &bob, 1).await;
    assert_eq!(id_of(hear(&mut on_b).await), m.id.to_string());
    // Revoked on node A: the stream on node B closes, and node B refuses the token.
    bob.api.logout().await.unwrap();
    assert_eq!(hear(&mut on_b).await, Heard::Closed(Some(4401)));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while bob_on_b.sessions().await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "node B still accepts a revoked session"
        );
        tokio::task::yield_now().await;
    }
    node_b.stop().await;
    app.stop().await;
}

/// A NATS publish made after a commit can be lost (the node dies between the two). Node A here
/// publishes under a subject prefix nobody listens to, so every one of its wake-ups and
/// revocations is lost for node B: B's poll (every 200 ms) must deliver and close all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_nats_publishes_delay_but_never_lose_a_delivery_or_a_revocation() {
    use futures_util::StreamExt as _;
    let Some(mut args) = nats_args(200) else {
        return;
    };
    let heard_prefix = args.hub_subject_prefix.clone();
    args.hub_subject_prefix = format!("lost{heard_prefix}");
    let Some(node_a) = TestApp::spawn_with(Backend::Postgres, args).await else {
        return;
    };
    let node_b = node_a
        .second_node_with(|args| args.hub_subject_prefix = heard_prefix.clone())
        .await;
    // What node B could hear: nothing of node A's may arrive there.
    let nats = async_nats::connect(nats_url().unwrap()).await.unwrap();
    let mut heard = nats.subscribe(format!("{heard_prefix}.>")).await.unwrap();
    nats.flush().await.unwrap();

    let alice = node_a.user("alice").await;
    let bob = node_a.user("bob").await;
    let mut on_b = node_b.stream(bob.api.token().unwrap(), 0).await;
    let mut sent = Vec::new();
    for k in 1..=3 {
        sent.push(send(&alice, &bob, k).await.id.to_string());
    }
    let mut received = Vec::new();
    for _ in 0..3 {
        received.push(id_of(hear(&mut on_b).await));
    }
    assert_eq!(
        received, sent,
        "in order, once each, through the poll alone"
    );
    bob.api.logout().await.unwrap();
    assert_eq!(hear(&mut on_b).await, Heard::Closed(Some(4401)));

    // The publishes really were lost: only the sentinel, published last, arrives.
    let sentinel = format!("{heard_prefix}.sentinel");
    nats.publish(sentinel.clone(), "".into()).await.unwrap();
    nats.flush().await.unwrap();
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), heard.next())
        .await
        .expect("the sentinel within 10 s")
        .expect("the subscription");
    assert_eq!(
        first.subject.as_str(),
        sentinel,
        "node A's publishes reached node B's subjects"
    );
    node_b.stop().await;
    node_a.stop().await;
}

/// A server whose access tokens live `ttl` seconds, signed with a key the test knows.
async fn short_tokens(ttl: u64) -> (TestApp, sealpost_server::tokens::JwtKey) {
    let secret = [7u8; 32];
    let mut args = test_args();
    args.access_token_ttl = ttl;
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    args.jwt_secret = Some(sealpost_server::config::HexSecret::parse(&hex).unwrap());
    let app = TestApp::spawn_with(Backend::Sqlite, args).await.unwrap();
    (app, sealpost_server::tokens::JwtKey::new(secret.to_vec()))
}

/// A token for `user`'s session that the server accepts, expiring `exp` (Unix seconds).
fn token(key: &sealpost_server::tokens::JwtKey, user: &TestUser, exp: i64) -> String {
    key.sign(&sealpost_server::tokens::Claims {
        sub: user.id,
        sid: user.session_id,
        iat: exp - 1,
        exp,
    })
}

fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ends_4401_when_its_newest_token_expires() {
    let (app, _) = short_tokens(1).await;
    let alice = app.user("alice").await;
    // The token lives 1 s, plus the 5 s leeway of §4.3: the stream closes within 10 s.
    let mut ws = app.stream(alice.api.token().unwrap(), 0).await;
    assert_eq!(hear(&mut ws).await, Heard::Closed(Some(4401)));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_authentication_keeps_a_stream_alive_for_the_same_session_only() {
    let (app, key) = short_tokens(900).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    // Alice's stream starts on a token that the server stops accepting in 2 s (its exp was 3 s
    // ago; the leeway is 5 s) ...
    let dying = token(&key, &alice, now_secs() - 3);
    let mut ws = app.stream(&dying.into(), 0).await;
    // ... and is re-authenticated at once with a fresh token of the same session; the server
    // answers nothing.
    let fresh =
        serde_json::json!({"type": "auth", "access_token": token(&key, &alice, now_secs() + 3600)});
    ws.send(Message::Text(fresh.to_string().into()))
        .await
        .unwrap();
    // Past the first token's end (the time passing is what is tested), the stream still delivers.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let sent = send(&bob, &alice, 1).await;
    assert_eq!(id_of(hear(&mut ws).await), sent.id.to_string());
    // A valid token of another session of the same account ends the stream: 4401.
    let other = app.user("alice-elsewhere").await;
    let foreign =
        serde_json::json!({"type": "auth", "access_token": token(&key, &other, now_secs() + 3600)});
    ws.send(Message::Text(foreign.to_string().into()))
        .await
        .unwrap();
    assert_eq!(hear(&mut ws).await, Heard::Closed(Some(4401)));
    // So does a token that does not verify (a stream past the backlog, so that only the close
    // can come).
    let mut ws = app.stream(alice.api.token().unwrap(), sent.seq).await;
    let bad = serde_json::json!({"type": "auth", "access_token": "x.y.z"});
    ws.send(Message::Text(bad.to_string().into()))
        .await
        .unwrap();
    assert_eq!(hear(&mut ws).await, Heard::Closed(Some(4401)));
    app.stop().await;
}

both!(
    frames_over_16_kib_close_the_stream_1009,
    |app: TestApp| async move {
        let alice = app.user("alice").await;
        let mut ws = app.stream(alice.api.token().unwrap(), 0).await;
        ws.send(Message::Text("x".repeat(16 * 1024 + 1).into()))
            .await
            .unwrap();
        assert_eq!(hear(&mut ws).await, Heard::Closed(Some(1009)));
        // Also as the first frame, before any auth.
        let mut ws = app.ws().await;
        ws.send(Message::Text("x".repeat(20_000).into()))
            .await
            .unwrap();
        assert_eq!(hear(&mut ws).await, Heard::Closed(Some(1009)));
        // A frame at the limit is fine (and, not being an auth frame, ignored).
        let mut ws = app.stream(alice.api.token().unwrap(), 0).await;
        ws.send(Message::Text("x".repeat(16 * 1024).into()))
            .await
            .unwrap();
        let sent = send(&alice, &alice, 1).await;
        assert_eq!(id_of(hear(&mut ws).await), sent.id.to_string());
    }
);
