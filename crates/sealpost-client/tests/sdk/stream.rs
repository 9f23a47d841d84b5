//! The live stream through the SDK (PROTOCOL §4.2): backlog then live, in `seq` order, opened;
//! resuming by itself after the server cuts it off (4409); refreshing a refused token; ending when
//! the session is revoked; re-authenticating the open stream after a refresh (§4.2 of 1.1).

use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::StreamExt as _;
use sealpost_client::keystore::Keystore as _;
use sealpost_client::{Client, Error, MemoryKeystore, StreamEvent};
use sealpost_testkit::evil::EvilProxy;
use serde_json::{json, Value};

use crate::both;
use crate::helpers::*;
use crate::support::*;

pub(crate) type Live = BoxStream<'static, Result<StreamEvent, Error>>;

/// The next event, within 30 s.
pub(crate) async fn next(live: &mut Live) -> Result<StreamEvent, Error> {
    tokio::time::timeout(Duration::from_secs(30), live.next())
        .await
        .expect("the stream said nothing within 30 s")
        .expect("the stream ended")
}

/// The next event, which must be a message that opened: its seq and text.
async fn message(live: &mut Live) -> (i64, String) {
    match next(live).await.unwrap() {
        StreamEvent::Message(received) => {
            let text = received.message.unwrap().text;
            (received.entry.seq, text)
        }
        other => panic!("expected a message, got {other:?}"),
    }
}

both!(
    backlog_live_and_resume_after_4409,
    |app: TestApp| async move {
        let backend = app.backend;
        app.stop().await;
        let mut args = test_args();
        args.stream_buffer = 4;
        args.stream_stall_ms = 300;
        let app = TestApp::spawn_with(backend, args).await.unwrap();
        let alice = person(&app, "alice").await;
        let bob = person(&app, "bob").await;

        alice.client.send(&bob.email, "one").await.unwrap();
        alice.client.send(&bob.email, "two").await.unwrap();
        let mut live = bob.client.stream(0);
        assert!(matches!(
            next(&mut live).await.unwrap(),
            StreamEvent::Connected { after: 0 }
        ));
        // The backlog, then a live one.
        assert_eq!(message(&mut live).await, (1, "one".to_owned()));
        assert_eq!(message(&mut live).await, (2, "two".to_owned()));
        alice.client.send(&bob.email, "three").await.unwrap();
        assert_eq!(message(&mut live).await, (3, "three".to_owned()));

        // Bob stops reading while a sender posts far more than the sockets and the server's queue
        // hold: the server cuts him off, and the stream resumes from the last seq it gave. (The
        // messages are sealed beforehand, so that Bob is back to reading soon enough for the
        // server's 4409 close frame to reach him; a server that gives up on sending it resets the
        // connection instead, which the stream must survive just the same.)
        let carol = raw_sender(&app, "carol").await;
        let bob_key = bob.client.lookup(&bob.email).await.unwrap().public_key;
        let total = 400;
        let filler = "x".repeat(60_000);
        let sealed: Vec<_> = (0..total)
            .map(|i| seal_from(&carol, &bob, &bob_key, &format!("{i} {filler}")))
            .collect();
        for ciphertext in sealed {
            carol.post(bob.id, ciphertext).await;
        }
        let mut expected = 4;
        let mut cut_off = false;
        let mut resumed = false;
        while expected <= 3 + total {
            match next(&mut live).await.unwrap() {
                StreamEvent::Message(received) => {
                    assert_eq!(received.entry.seq, expected, "out of order or repeated");
                    let text = received.message.unwrap().text;
                    assert!(text.starts_with(&format!("{} x", expected - 4)));
                    expected += 1;
                }
                StreamEvent::Disconnected { code, reason } => {
                    assert!(matches!(code, Some(4409) | None), "{code:?} {reason}");
                    cut_off = true;
                }
                StreamEvent::Connected { after } => {
                    assert!(cut_off);
                    assert_eq!(after, expected - 1);
                    resumed = true;
                }
            }
        }
        assert!(cut_off && resumed, "the server never cut the stream off");
        // And it is still live after resuming.
        alice.client.send(&bob.email, "after").await.unwrap();
        assert_eq!(message(&mut live).await, (4 + total, "after".to_owned()));
        app.stop().await;
    }
);

both!(
    a_refused_token_is_refreshed_and_a_revoked_session_ends_it,
    |app: TestApp| async move {
        let alice = person(&app, "alice").await;
        let bob = person(&app, "bob").await;
        alice.client.send(&bob.email, "one").await.unwrap();

        // The access token is refused (4401): the stream refreshes once and goes on.
        let mut stored = bob.keystore.load().unwrap();
        stored
            .account
            .as_mut()
            .unwrap()
            .session
            .as_mut()
            .unwrap()
            .access_token = "x.y.z".into();
        bob.keystore.save(&stored).unwrap();
        let mut live = bob.client.stream(0);
        assert!(matches!(
            next(&mut live).await.unwrap(),
            StreamEvent::Connected { after: 0 }
        ));
        assert_eq!(message(&mut live).await, (1, "one".to_owned()));

        // Bob's other device revokes this session: the stream ends with SignedOut.
        let phone = Client::new(&app.base, MemoryKeystore::new());
        phone.login(&bob.email, PASSWORD, None).await.unwrap();
        let this = bob
            .keystore
            .load()
            .unwrap()
            .account
            .unwrap()
            .session
            .unwrap()
            .session_id;
        phone.revoke_session(this).await.unwrap();
        loop {
            match next(&mut live).await {
                Ok(StreamEvent::Disconnected { code, .. }) => assert_eq!(code, Some(4401)),
                Err(Error::SignedOut) => break,
                other => panic!("{other:?}"),
            }
        }
        let end = tokio::time::timeout(Duration::from_secs(10), live.next())
            .await
            .unwrap();
        assert!(end.is_none());
    }
);

both!(
    the_open_stream_carries_each_refreshed_token,
    |app: TestApp| async move {
        // The proxy is honest here: it only records what the client says on the stream.
        let proxy = EvilProxy::start(&app.base).await;
        let alice = person(&app, "alice").await;
        let bob = person_at(&proxy.base, "bob").await;
        let first = bob.access_token();
        let mut live = bob.client.stream(0);
        assert!(matches!(
            next(&mut live).await.unwrap(),
            StreamEvent::Connected { after: 0 }
        ));
        alice.client.send(&bob.email, "before").await.unwrap();
        assert_eq!(message(&mut live).await, (1, "before".to_owned()));

        // The access token goes stale: the next call refreshes the session.
        let mut stored = bob.keystore.load().unwrap();
        if let Some(session) = stored.account.as_mut().and_then(|a| a.session.as_mut()) {
            session.access_token = "stale".into();
        }
        bob.keystore.save(&stored).unwrap();
        bob.client.sessions().await.unwrap();
        // (The same bytes as the first when both were minted within one second.)
        let fresh = bob.access_token();

        // The same connection goes on (no Disconnected in between) and carries the new token.
        alice.client.send(&bob.email, "after").await.unwrap();
        assert_eq!(message(&mut live).await, (2, "after".to_owned()));
        let frames = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let frames = proxy.client_frames();
                if frames.len() >= 2 {
                    return frames;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("no second frame on the stream within 10 s");
        let frames: Vec<Value> = frames
            .iter()
            .map(|f| serde_json::from_str(f).unwrap())
            .collect();
        assert_eq!(
            frames,
            [
                json!({"type": "auth", "access_token": first.expose(), "after": 0}),
                json!({"type": "auth", "access_token": fresh.expose()}),
            ]
        );
    }
);
