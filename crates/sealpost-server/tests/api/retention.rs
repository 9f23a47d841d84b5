//! `--retention-days`: a pass deletes the entries older than its clock's now − N days, oldest
//! first in batches, raising each mailbox's version and counting in the metrics; entries young
//! enough stay, and sends made while it runs are not lost. The clock is the test's.

use sealpost_client::api::{Page, SendRequest, SendResponse};
use sealpost_server::clock::{now_ms, Clock};
use sealpost_server::retention::{Retention, BATCH};
use sealpost_server::store::testing::Value;

use crate::both;
use crate::helpers::*;

const DAY_MS: i64 = 24 * 3600 * 1000;

async fn send(from: &TestUser, to: &TestUser) -> SendResponse {
    let req = SendRequest {
        to: to.id,
        ciphertext: ciphertext(1),
        key_version: 1,
        sender_key_version: 1,
        sender_copy: None,
    };
    from.api.send(&req).await.unwrap()
}

async fn ids_in(user: &TestUser) -> Vec<uuid::Uuid> {
    let mut ids = Vec::new();
    let mut after = 0;
    loop {
        let page = user
            .api
            .messages(Page::After {
                after,
                limit: Some(200),
            })
            .await
            .unwrap();
        if page.messages.is_empty() {
            return ids;
        }
        ids.extend(page.messages.iter().map(|m| m.id));
        after = page.next_after.unwrap();
    }
}

/// (mailbox_rev, entries) of an account.
async fn version(app: &TestApp, user: &TestUser) -> (i64, i64) {
    let id = [Value::Uuid(user.id)];
    (
        app.sql_scalar("SELECT mailbox_rev FROM users WHERE id = $1", &id)
            .await,
        app.sql_scalar("SELECT entries FROM users WHERE id = $1", &id)
            .await,
    )
}

async fn deleted_counter(app: &TestApp) -> u64 {
    let metrics = app.api().metrics().await.unwrap();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("sealpost_retention_deleted_entries_total "))
        .expect("the retention counter is exported")
        .parse()
        .unwrap()
}

/// Makes entries look `age_ms` old.
async fn backdate(app: &TestApp, ids: &[uuid::Uuid], age_ms: i64) {
    for id in ids {
        let changed = app
            .sql_execute(
                "UPDATE messages SET created_at = $1 WHERE id = $2",
                &[Value::Int(now_ms() - age_ms), Value::Uuid(*id)],
            )
            .await;
        assert_eq!(changed, 1);
    }
}

both!(
    old_entries_go_and_new_ones_stay,
    |app: TestApp| async move {
        let alice = app.user("alice").await;
        let bob = app.user("bob").await;
        let mut sent = Vec::new();
        for _ in 0..6 {
            sent.push(send(&alice, &bob).await.id);
        }
        let (old, young) = sent.split_at(3);
        backdate(&app, old, 10 * DAY_MS).await;
        backdate(&app, &young[..1], 6 * DAY_MS).await;
        let (rev_before, entries_before) = version(&app, &bob).await;
        assert_eq!(entries_before, 6);
        assert_eq!(deleted_counter(&app).await, 0);

        let clock = Clock::manual(now_ms());
        let retention = Retention::new(&app.state, 7, clock.clone());
        assert_eq!(retention.run_once().await.unwrap(), 3);
        assert_eq!(ids_in(&bob).await, young);
        let (rev, entries) = version(&app, &bob).await;
        assert!(rev > rev_before, "the mailbox's version moved");
        assert_eq!(entries, 3);
        assert_eq!(deleted_counter(&app).await, 3);
        // Nothing more is old enough: a second pass deletes nothing.
        assert_eq!(retention.run_once().await.unwrap(), 0);
        assert_eq!(version(&app, &bob).await.0, rev);

        // Two days later, by the job's clock, the six-day-old entry is past seven days.
        clock.set_ms(now_ms() + 2 * DAY_MS);
        assert_eq!(retention.run_once().await.unwrap(), 1);
        assert_eq!(ids_in(&bob).await, &young[1..]);
        // Eight days later everything sent today is gone too.
        clock.set_ms(now_ms() + 8 * DAY_MS);
        assert_eq!(retention.run_once().await.unwrap(), 2);
        assert!(ids_in(&bob).await.is_empty());
        assert_eq!(version(&app, &bob).await.1, 0);
        assert_eq!(deleted_counter(&app).await, 6);
        // The mailbox goes on: the next entry takes the next seq.
        assert_eq!(send(&alice, &bob).await.seq, 7);
    }
);

both!(
    retention_in_batches_loses_no_concurrent_send,
    |app: TestApp| async move {
        let alice = app.user("alice").await;
        let bob = app.user("bob").await;
        // More old entries than one batch holds, so that the pass takes several transactions.
        let old_count = BATCH as usize + 150;
        let mut old = Vec::with_capacity(old_count);
        for chunk in 0..old_count / 50 {
            let sends = (0..50).map(|_| send(&alice, &bob));
            let ids = futures_util::future::join_all(sends).await;
            old.extend(ids.into_iter().map(|s| s.id));
            assert_eq!(old.len(), (chunk + 1) * 50);
        }
        app.sql_execute(
            "UPDATE messages SET created_at = $1 WHERE mailbox = $2",
            &[Value::Int(now_ms() - 30 * DAY_MS), Value::Uuid(bob.id)],
        )
        .await;
        let (rev_before, _) = version(&app, &bob).await;

        let retention = Retention::new(&app.state, 7, Clock::manual(now_ms()));
        let senders = async {
            let mut fresh = Vec::new();
            for _ in 0..10 {
                let sends = (0..5).map(|_| send(&alice, &bob));
                fresh.extend(
                    futures_util::future::join_all(sends)
                        .await
                        .into_iter()
                        .map(|s| s.id),
                );
            }
            fresh
        };
        let (deleted, fresh) = tokio::join!(retention.run_once(), senders);
        assert_eq!(deleted.unwrap(), old_count as u64);
        let mut left = ids_in(&bob).await;
        left.sort();
        let mut fresh = fresh;
        fresh.sort();
        assert_eq!(
            left, fresh,
            "every send made during the pass is kept, nothing old"
        );
        let (rev, entries) = version(&app, &bob).await;
        assert!(rev >= rev_before + 2, "one raise per batch at least");
        assert_eq!(entries, fresh.len() as i64, "the entry count is right");
        assert_eq!(deleted_counter(&app).await, old_count as u64);
    }
);
