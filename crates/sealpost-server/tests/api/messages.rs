//! Sending, paging and deleting (PROTOCOL §4, §4.1), with every error path of a send.

use reqwest::Method;
use sealpost_client::api::{Page, RawBody, SendRequest, SenderCopy};
use serde_json::json;

use crate::both;
use crate::helpers::*;

fn send_req(to: uuid::Uuid) -> SendRequest {
    SendRequest {
        to,
        ciphertext: ciphertext(1),
        key_version: 1,
        sender_key_version: 1,
        sender_copy: None,
    }
}

async fn count_entries(app: &TestApp) -> i64 {
    app.sql_scalar("SELECT COUNT(*) FROM messages", &[]).await
}

both!(send_fetch_and_sender_copy, |app: TestApp| async move {
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut sent = Vec::new();
    for k in 1..=3 {
        let req = SendRequest {
            ciphertext: ciphertext(k),
            ..send_req(bob.id)
        };
        let r = alice.api.send(&req).await.unwrap();
        sent.push((r, req.ciphertext));
    }
    assert_eq!(
        sent.iter().map(|(r, _)| r.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let page = bob.api.messages(Page::default()).await.unwrap();
    assert_eq!(page.messages.len(), 3);
    assert_eq!(page.next_after, Some(3));
    for (m, (r, ct)) in page.messages.iter().zip(&sent) {
        assert_eq!((m.id, m.seq, m.from, m.to), (r.id, r.seq, alice.id, bob.id));
        assert_eq!(
            (&m.ciphertext, m.key_version, m.sender_key_version),
            (ct, 1, 1)
        );
        assert_eq!(m.created_at, r.created_at);
    }
    // Alice's mailbox holds nothing of it, until she sends with a sender copy.
    assert!(alice
        .api
        .messages(Page::default())
        .await
        .unwrap()
        .messages
        .is_empty());
    let copy = ciphertext(2);
    let r = alice
        .api
        .send(&SendRequest {
            sender_copy: Some(SenderCopy {
                ciphertext: copy.clone(),
                key_version: 1,
            }),
            ..send_req(bob.id)
        })
        .await
        .unwrap();
    assert_eq!(r.seq, 4, "the answer is the recipient's entry");
    let mine = alice.api.messages(Page::default()).await.unwrap().messages;
    assert_eq!(mine.len(), 1);
    assert_eq!(
        (mine[0].seq, mine[0].from, mine[0].to, &mine[0].ciphertext),
        (1, alice.id, bob.id, &copy)
    );
    assert_ne!(mine[0].id, r.id);
    // A note to self: allowed, without a sender copy.
    let note = alice.api.send(&send_req(alice.id)).await.unwrap();
    assert_eq!(note.seq, 2);
    let e = alice
        .api
        .send(&SendRequest {
            sender_copy: Some(SenderCopy {
                ciphertext: ciphertext(1),
                key_version: 1,
            }),
            ..send_req(alice.id)
        })
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.field()), (Some(400), Some("sender_copy")));
});

both!(paging_both_ways, |app: TestApp| async move {
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    for _ in 0..7 {
        alice.api.send(&send_req(bob.id)).await.unwrap();
    }
    let seqs = |p: &sealpost_client::api::MessagePage| {
        p.messages.iter().map(|m| m.seq).collect::<Vec<_>>()
    };
    let p = bob
        .api
        .messages(Page::After {
            after: 2,
            limit: Some(3),
        })
        .await
        .unwrap();
    assert_eq!((seqs(&p), p.next_after), (vec![3, 4, 5], Some(5)));
    let p = bob
        .api
        .messages(Page::After {
            after: 5,
            limit: Some(3),
        })
        .await
        .unwrap();
    assert_eq!((seqs(&p), p.next_after), (vec![6, 7], Some(7)));
    let p = bob
        .api
        .messages(Page::After {
            after: 7,
            limit: None,
        })
        .await
        .unwrap();
    assert_eq!((seqs(&p), p.next_after), (vec![], Some(7)));
    let p = bob
        .api
        .messages(Page::Before {
            before: i64::MAX,
            limit: Some(3),
        })
        .await
        .unwrap();
    assert_eq!((seqs(&p), p.next_before), (vec![7, 6, 5], Some(5)));
    let p = bob
        .api
        .messages(Page::Before {
            before: 3,
            limit: None,
        })
        .await
        .unwrap();
    assert_eq!((seqs(&p), p.next_before), (vec![2, 1], Some(1)));
    let p = bob
        .api
        .messages(Page::Before {
            before: 1,
            limit: None,
        })
        .await
        .unwrap();
    assert_eq!((seqs(&p), p.next_before), (vec![], Some(1)));
    for (query, field) in [
        ("after=1&before=5", "before"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("after=abc", "after"),
        ("after=-1", "after"),
        ("since=3", "since"),
    ] {
        let r = bob
            .api
            .raw(Method::GET, &format!("/v1/messages?{query}"), RawBody::None)
            .await
            .unwrap();
        assert_eq!(
            (r.status, r.json["error"]["field"].as_str()),
            (400, Some(field)),
            "{query}"
        );
    }
    let p = bob
        .api
        .messages(Page::After {
            after: 0,
            limit: Some(200),
        })
        .await
        .unwrap();
    assert_eq!(p.messages.len(), 7);
});

both!(
    send_errors_in_order_and_nothing_written,
    |app: TestApp| async move {
        let alice = app.user("alice").await;
        let bob = app.user("bob").await;
        let good = sealpost_crypto::b64::encode(&ciphertext(1));
        let base =
            json!({"to": bob.id, "ciphertext": good, "key_version": 1, "sender_key_version": 1});
        let with = |k: &str, v: serde_json::Value| {
            let mut b = base.clone();
            b[k] = v;
            b
        };
        let huge = sealpost_crypto::b64::encode(&vec![0u8; 65_536 + 1]);
        let cases: Vec<(serde_json::Value, u16, &str, Option<&str>)> = vec![
            (
                with("ciphertext", json!(format!("{good}="))),
                400,
                "invalid_request",
                Some("ciphertext"),
            ),
            (
                with("ciphertext", json!("not base64 !")),
                400,
                "invalid_request",
                Some("ciphertext"),
            ),
            (
                with("ciphertext", json!(sealpost_crypto::b64::encode(&[0; 345]))),
                400,
                "invalid_request",
                Some("ciphertext"),
            ),
            (
                with("to", json!("not-a-uuid")),
                400,
                "invalid_request",
                Some("to"),
            ),
            (
                with("to", json!(bob.id.to_string().to_uppercase())),
                400,
                "invalid_request",
                Some("to"),
            ),
            (
                with("key_version", json!(0)),
                400,
                "invalid_request",
                Some("key_version"),
            ),
            (
                with("key_version", json!("1")),
                400,
                "invalid_request",
                Some("key_version"),
            ),
            // An integer written with a zero fraction is the integer; any other number is not.
            (
                with("key_version", json!(1.5)),
                400,
                "invalid_request",
                Some("key_version"),
            ),
            (
                with("sender_key_version", json!(1e300)),
                400,
                "invalid_request",
                Some("sender_key_version"),
            ),
            (
                with("plaintext", json!("Hello, Bob!")),
                400,
                "invalid_request",
                Some("plaintext"),
            ),
            (with("cc", json!([])), 400, "invalid_request", Some("cc")),
            (
                with(
                    "sender_copy",
                    json!({"ciphertext": good, "key_version": 1, "x": 1}),
                ),
                400,
                "invalid_request",
                Some("sender_copy.x"),
            ),
            (
                with("sender_copy", json!({"ciphertext": good})),
                400,
                "invalid_request",
                Some("sender_copy.key_version"),
            ),
            (
                with("ciphertext", json!(huge)),
                413,
                "payload_too_large",
                Some("ciphertext"),
            ),
            (
                with("sender_copy", json!({"ciphertext": huge, "key_version": 1})),
                413,
                "payload_too_large",
                Some("sender_copy.ciphertext"),
            ),
            // 413 ranks before a 400 of another field.
            (
                {
                    let mut b = with("ciphertext", json!(huge));
                    b["to"] = json!("nope");
                    b
                },
                413,
                "payload_too_large",
                Some("ciphertext"),
            ),
            (
                with("to", json!(uuid::Uuid::new_v4())),
                404,
                "not_found",
                Some("to"),
            ),
            (
                with("key_version", json!(2)),
                409,
                "stale_key",
                Some("key_version"),
            ),
            (
                with("sender_key_version", json!(2)),
                409,
                "stale_key",
                Some("sender_key_version"),
            ),
            (
                with("sender_copy", json!({"ciphertext": good, "key_version": 2})),
                409,
                "stale_key",
                Some("sender_copy.key_version"),
            ),
        ];
        for (body, status, code, field) in cases {
            let r = alice
                .api
                .raw(Method::POST, "/v1/messages", RawBody::Json(body.clone()))
                .await
                .unwrap();
            assert_eq!(
                (
                    r.status,
                    r.json["error"]["code"].as_str(),
                    r.json["error"]["field"].as_str()
                ),
                (status, Some(code), field),
                "{}",
                r.text
            );
        }
        let r = alice
            .api
            .raw(
                Method::POST,
                "/v1/messages",
                RawBody::Text {
                    content_type: Some("application/json".into()),
                    body: "{not json".into(),
                },
            )
            .await
            .unwrap();
        assert_eq!(r.status, 400);
        // 401 before 415: no token and no JSON.
        let r = app
            .api()
            .raw(
                Method::POST,
                "/v1/messages",
                RawBody::Text {
                    content_type: Some("text/plain".into()),
                    body: "hi".into(),
                },
            )
            .await
            .unwrap();
        assert_eq!(r.status, 401);
        let r = alice
            .api
            .raw(
                Method::POST,
                "/v1/messages",
                RawBody::Text {
                    content_type: Some("text/plain".into()),
                    body: "hi".into(),
                },
            )
            .await
            .unwrap();
        assert_eq!(r.status, 415);
        assert_eq!(
            count_entries(&app).await,
            0,
            "a refused send wrote something"
        );
        // The counters did not move either: the next send is seq 1.
        assert_eq!(alice.api.send(&send_req(bob.id)).await.unwrap().seq, 1);
        // JSON has one kind of number: `1.0` is the key version 1 (schemathesis sends such).
        let mut floats = base.clone();
        floats["key_version"] = json!(1.0);
        floats["sender_key_version"] = json!(1.0);
        let r = alice
            .api
            .raw(Method::POST, "/v1/messages", RawBody::Json(floats))
            .await
            .unwrap();
        assert_eq!(
            (r.status, r.json["seq"].as_i64()),
            (201, Some(2)),
            "{}",
            r.text
        );
    }
);

both!(delete_only_own_entries, |app: TestApp| async move {
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let a = alice.api.send(&send_req(bob.id)).await.unwrap();
    let b = alice.api.send(&send_req(bob.id)).await.unwrap();
    assert_eq!(
        alice.api.delete_message(a.id).await.unwrap_err().status(),
        Some(404)
    );
    bob.api.delete_message(a.id).await.unwrap();
    assert_eq!(
        bob.api.delete_message(a.id).await.unwrap_err().status(),
        Some(404)
    );
    assert_eq!(
        bob.api
            .delete_message(uuid::Uuid::new_v4())
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    let left: Vec<_> = bob
        .api
        .messages(Page::default())
        .await
        .unwrap()
        .messages
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(left, vec![b.id]);
    // A deleted entry leaves its number unused.
    assert_eq!(alice.api.send(&send_req(bob.id)).await.unwrap().seq, 3);
});

/// The newest-page cache: a page is served again only while its mailbox is unchanged.
fn newest(limit: u32) -> Page {
    Page::Before {
        before: i64::MAX,
        limit: Some(limit),
    }
}

async fn newest_ids(user: &TestUser, limit: u32) -> Vec<uuid::Uuid> {
    let page = user.api.messages(newest(limit)).await.unwrap();
    page.messages.into_iter().map(|m| m.id).collect()
}

/// The `sealpost_page_cache_hits_total` counter of a node.
async fn page_cache_hits(app: &TestApp) -> u64 {
    let metrics = app.api().metrics().await.unwrap();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("sealpost_page_cache_hits_total "))
        .and_then(|v| v.parse().ok())
        .expect("the metrics have sealpost_page_cache_hits_total")
}

both!(
    newest_page_cache_follows_every_change,
    |app: TestApp| async move {
        let alice = app.user("alice").await;
        let bob = app.user("bob").await;
        let a = alice.api.send(&send_req(bob.id)).await.unwrap();
        let b = alice.api.send(&send_req(bob.id)).await.unwrap();
        let hits = page_cache_hits(&app).await;
        let newest_two = || {
            bob.api.raw(
                Method::GET,
                "/v1/messages?before=9223372036854775807&limit=2",
                RawBody::None,
            )
        };
        let read = newest_two().await.unwrap();
        assert_eq!(page_cache_hits(&app).await, hits);
        // The same page again comes from the cache: the same bytes the database read gave.
        let cached = newest_two().await.unwrap();
        assert_eq!(page_cache_hits(&app).await, hits + 1);
        assert_eq!((read.status, cached.status), (200, 200));
        assert_eq!(cached.text, read.text);
        assert_eq!(read.json["next_before"], a.seq);
        assert_eq!(newest_ids(&bob, 2).await, vec![b.id, a.id]);
        // Another limit is another page.
        assert_eq!(newest_ids(&bob, 1).await, vec![b.id]);
        // A send shows at once.
        let c = alice.api.send(&send_req(bob.id)).await.unwrap();
        assert_eq!(newest_ids(&bob, 2).await, vec![c.id, b.id]);
        // So does a deletion, which does not move the mailbox's last seq.
        bob.api.delete_message(c.id).await.unwrap();
        assert_eq!(newest_ids(&bob, 2).await, vec![b.id, a.id]);
        // Paging back from a bound inside the mailbox is never cached, and stays right.
        let older = bob
            .api
            .messages(Page::Before {
                before: b.seq,
                limit: Some(2),
            })
            .await
            .unwrap();
        assert_eq!(
            older.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
            vec![a.id]
        );
        // A sender copy changes the sender's own mailbox.
        assert!(newest_ids(&alice, 2).await.is_empty());
        let mut with_copy = send_req(bob.id);
        with_copy.sender_copy = Some(SenderCopy {
            ciphertext: ciphertext(1),
            key_version: 1,
        });
        let d = alice.api.send(&with_copy).await.unwrap();
        assert_eq!(newest_ids(&alice, 2).await.len(), 1);
        assert_eq!(newest_ids(&bob, 1).await, vec![d.id]);
    }
);

/// Two nodes on one PostgreSQL database: node B's cached page never outlives a change made
/// through node A, with no wait for a notification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newest_page_cache_is_right_on_every_node() {
    let Some(app) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    let node_b = app.second_node().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let bob_on_b = node_b.api_for(&bob);
    let ids = |page: sealpost_client::api::MessagePage| {
        page.messages.into_iter().map(|m| m.id).collect::<Vec<_>>()
    };
    let a = alice.api.send(&send_req(bob.id)).await.unwrap();
    let b = alice.api.send(&send_req(bob.id)).await.unwrap();
    assert_eq!(
        ids(bob_on_b.messages(newest(5)).await.unwrap()),
        vec![b.id, a.id]
    );
    let hits = page_cache_hits(&node_b).await;
    assert_eq!(
        ids(bob_on_b.messages(newest(5)).await.unwrap()),
        vec![b.id, a.id]
    );
    assert_eq!(
        page_cache_hits(&node_b).await,
        hits + 1,
        "node B cached the page"
    );
    // Changed through node A; node B's very next answer has the change.
    bob.api.delete_message(b.id).await.unwrap();
    assert_eq!(ids(bob_on_b.messages(newest(5)).await.unwrap()), vec![a.id]);
    let c = alice.api.send(&send_req(bob.id)).await.unwrap();
    assert_eq!(
        ids(bob_on_b.messages(newest(5)).await.unwrap()),
        vec![c.id, a.id]
    );
    node_b.stop().await;
    app.stop().await;
}
