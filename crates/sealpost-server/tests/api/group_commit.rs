//! Logins and refreshes are group-committed with the sends (one transaction, one fsync for many),
//! and still nothing is answered before its commit.

use std::sync::atomic::Ordering;

use sealpost_client::api::LoginRequest;
use sealpost_proto::SecretBytes;
use sealpost_server::store::{Batch, Committed, NewSession, Refreshed, Rotation};
use sealpost_server::tokens::hash_token;
use sha2::{Digest, Sha256};

use crate::both;
use crate::helpers::*;

const LOGINS: usize = 32;

both!(
    concurrent_logins_and_refreshes_share_commits_and_each_is_durable_when_answered,
    |app: TestApp| async move {
        let user = app.user("storm").await;
        let metrics = &app.state.metrics;
        let commits_before = metrics.group_commits.load(Ordering::Relaxed);
        let written_before = metrics.group_committed_sessions.load(Ordering::Relaxed);
        // A login storm: every answer's session must already be readable by another connection
        // of the pool, since a 200 means committed.
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..LOGINS {
            let (api, store, email, auth_key, user_id) = (
                app.api(),
                app.store.clone(),
                user.email.clone(),
                user.auth_key.clone(),
                user.id,
            );
            tasks.spawn(async move {
                let login = api
                    .login(&LoginRequest {
                        email,
                        auth_key,
                        device_name: Some("storm".into()),
                    })
                    .await
                    .unwrap();
                assert!(
                    store
                        .session_last_used(login.session_id, user_id)
                        .await
                        .unwrap()
                        .is_some(),
                    "a login was answered before its session was committed"
                );
                login.refresh_token
            });
        }
        let mut tokens = Vec::new();
        while let Some(token) = tasks.join_next().await {
            tokens.push(token.unwrap());
        }
        assert_eq!(user.api.sessions().await.unwrap().len(), LOGINS + 1);
        // Refreshes, all at once, each of its own session: every new token works afterwards.
        let mut tasks = tokio::task::JoinSet::new();
        for token in tokens {
            let api = app.api();
            tasks.spawn(async move { api.refresh(&token).await.unwrap().refresh_token });
        }
        let mut rotated = Vec::new();
        while let Some(token) = tasks.join_next().await {
            rotated.push(token.unwrap());
        }
        for token in &rotated {
            app.api().refresh(token).await.unwrap();
        }
        let written = metrics.group_committed_sessions.load(Ordering::Relaxed) - written_before;
        let commits = metrics.group_commits.load(Ordering::Relaxed) - commits_before;
        assert_eq!(
            written,
            3 * LOGINS as u64,
            "every login and refresh went through the writer"
        );
        assert!(
            commits < written,
            "{written} logins and refreshes took {commits} commits: none shared one"
        );
    }
);

both!(
    a_batch_opens_sessions_only_for_live_accounts_whose_key_matches_and_rotates_each_token_once,
    |app: TestApp| async move {
        let live = app.user("live").await;
        let gone = app.user("gone").await;
        assert!(app.store.delete_account(gone.id, now()).await.unwrap());
        let login = |email: &str, auth_key: &[u8]| NewSession {
            email: email.to_owned(),
            presented: SecretBytes::new(Sha256::digest(auth_key).to_vec()),
            device_name: None,
            refresh_hash: random(32),
            now: now(),
            expires_at: now() + 60_000,
        };
        let mut wrong_key = live.auth_key.expose().to_vec();
        wrong_key[31] ^= 1;
        let rotation = |old: &[u8]| Rotation {
            old_hash: old.to_vec(),
            new_hash: random(32),
            now: now(),
            expires_at: now() + 60_000,
        };
        let logins = || {
            vec![
                login(&gone.email, gone.auth_key.expose()),
                login(&live.email, &wrong_key),
                login("nobody@example.com", live.auth_key.expose()),
                // The stored hash itself is not a key: it is hashed again.
                login(&live.email, &Sha256::digest(live.auth_key.expose())),
                login(&live.email, live.auth_key.expose()),
            ]
        };
        let check = |done: &Committed| {
            let refused: Vec<bool> = done.opened[..4].iter().map(Option::is_none).collect();
            assert_eq!(
                refused, [true; 4],
                "a session was opened for a deleted account, a wrong key, an unknown email or \
                 the stored hash"
            );
            let opened = done.opened[4].as_ref().expect("the live account's session");
            assert_eq!(opened.user_id, live.id);
            assert_eq!(opened.keyring.keys.len(), 1, "the account's key comes back");
            opened.session_id
        };
        // Logins alone (on PostgreSQL they skip the transaction), then with refreshes.
        let alone = Batch {
            opens: logins(),
            ..Batch::default()
        };
        let done = app.store.commit_batch(&alone, i64::MAX).await.unwrap();
        let first = check(&done);
        let old = hash_token(live.refresh_token.expose());
        // The live user's token twice in one batch: the second is reuse, and ends the session.
        let batch = Batch {
            sends: Vec::new(),
            opens: logins(),
            rotations: vec![rotation(&old), rotation(&random(32)), rotation(&old)],
        };
        let done = app.store.commit_batch(&batch, i64::MAX).await.unwrap();
        let second = check(&done);
        for session in [first, second] {
            assert!(app
                .store
                .session_last_used(session, live.id)
                .await
                .unwrap()
                .is_some());
        }
        assert!(matches!(
            done.rotated[0],
            Refreshed::Rotated { user_id, session_id } if user_id == live.id && session_id == live.session_id
        ));
        assert!(matches!(done.rotated[1], Refreshed::Invalid));
        assert!(matches!(done.rotated[2], Refreshed::Reused(s) if s == live.session_id));
        assert!(app
            .store
            .session_last_used(live.session_id, live.id)
            .await
            .unwrap()
            .is_none());
    }
);

both!(
    a_refresh_alone_rotates_and_the_same_token_again_ends_its_session,
    |app: TestApp| async move {
        // A batch of one refresh each time: rotated, unknown, then reused.
        let user = app.user("alone").await;
        let old = hash_token(user.refresh_token.expose());
        let alone = |old: &[u8]| Batch {
            rotations: vec![Rotation {
                old_hash: old.to_vec(),
                new_hash: random(32),
                now: now(),
                expires_at: now() + 60_000,
            }],
            ..Batch::default()
        };
        let done = app
            .store
            .commit_batch(&alone(&old), i64::MAX)
            .await
            .unwrap();
        assert!(matches!(
            done.rotated[0],
            Refreshed::Rotated { user_id, session_id } if user_id == user.id && session_id == user.session_id
        ));
        let done = app
            .store
            .commit_batch(&alone(&random(32)), i64::MAX)
            .await
            .unwrap();
        assert!(matches!(done.rotated[0], Refreshed::Invalid));
        assert!(app
            .store
            .session_last_used(user.session_id, user.id)
            .await
            .unwrap()
            .is_some());
        let done = app
            .store
            .commit_batch(&alone(&old), i64::MAX)
            .await
            .unwrap();
        assert!(matches!(done.rotated[0], Refreshed::Reused(s) if s == user.session_id));
        assert!(
            app.store
                .session_last_used(user.session_id, user.id)
                .await
                .unwrap()
                .is_none(),
            "a reused token left its session alive"
        );
    }
);

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
