//! Many concurrent senders into one mailbox while a reader pages with `after`: the reader sees
//! every entry exactly once, in `seq` order (PROTOCOL §4.1).

use std::collections::HashSet;

use sealpost_client::api::{Page, SendRequest};

use crate::both;
use crate::helpers::*;

const SENDERS: usize = 8;
const EACH: usize = 500;

both!(
    concurrent_senders_never_make_the_reader_skip,
    |app: TestApp| async move {
        let bob = app.user("bob").await;
        let mut senders = Vec::new();
        for i in 0..SENDERS {
            senders.push(app.user(&format!("sender{i}")).await);
        }
        let mut tasks = tokio::task::JoinSet::new();
        for s in senders {
            let to = bob.id;
            tasks.spawn(async move {
                let mut ids = Vec::with_capacity(EACH);
                for _ in 0..EACH {
                    let req = SendRequest {
                        to,
                        ciphertext: ciphertext(1),
                        key_version: 1,
                        sender_key_version: 1,
                        sender_copy: None,
                    };
                    ids.push(s.api.send(&req).await.unwrap().id);
                }
                ids
            });
        }
        // The reader pages while the senders send, and keeps going until it has seen them all.
        let total = SENDERS * EACH;
        let mut after = 0;
        let mut seen = Vec::with_capacity(total);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
        while seen.len() < total {
            assert!(
                std::time::Instant::now() < deadline,
                "the reader saw {} of {total}",
                seen.len()
            );
            let page = bob
                .api
                .messages(Page::After {
                    after,
                    limit: Some(200),
                })
                .await
                .unwrap();
            for m in &page.messages {
                assert_eq!(m.seq, after + 1, "the reader skipped or repeated an entry");
                after = m.seq;
                seen.push(m.id);
            }
            if page.messages.is_empty() {
                tokio::task::yield_now().await;
            }
        }
        let mut sent = HashSet::new();
        while let Some(ids) = tasks.join_next().await {
            sent.extend(ids.unwrap());
        }
        assert_eq!(sent.len(), total);
        assert_eq!(seen.iter().copied().collect::<HashSet<_>>(), sent);
        assert!(bob
            .api
            .messages(Page::After { after, limit: None })
            .await
            .unwrap()
            .messages
            .is_empty());
    }
);

both!(
    refused_sends_among_concurrent_ones_leave_no_trace,
    |app: TestApp| async move {
        let bob = app.user("bob").await;
        let alice = app.user("alice").await;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..200 {
            let api = alice.api.clone();
            let to = bob.id;
            // Every other send names a key version Bob does not have: refused, while its neighbours
            // (possibly in the same group commit) are stored.
            let key_version = if i % 2 == 0 { 1 } else { 2 };
            tasks.spawn(async move {
                let req = SendRequest {
                    to,
                    ciphertext: ciphertext(1),
                    key_version,
                    sender_key_version: 1,
                    sender_copy: None,
                };
                (key_version, api.send(&req).await)
            });
        }
        let mut seqs = Vec::new();
        while let Some(done) = tasks.join_next().await {
            match done.unwrap() {
                (1, Ok(r)) => seqs.push(r.seq),
                (2, Err(e)) => assert_eq!(e.code(), Some("stale_key")),
                (v, other) => panic!("version {v}: {other:?}"),
            }
        }
        seqs.sort();
        assert_eq!(
            seqs,
            (1..=100).collect::<Vec<i64>>(),
            "refused sends took or skipped numbers"
        );
        let page = bob
            .api
            .messages(Page::After {
                after: 0,
                limit: Some(200),
            })
            .await
            .unwrap();
        assert_eq!(
            page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
            seqs
        );
    }
);
