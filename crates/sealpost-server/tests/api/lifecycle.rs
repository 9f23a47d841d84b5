//! The key lifecycle calls of PROTOCOL §5: password change, recovery, rotation, deletion.

use reqwest::Method;
use sealpost_client::api::{
    ChangePasswordRequest, Kdf, LoginRequest, Page, RawBody, RecoveryWrap, RotateRequest, Secret,
    SecretBytes, SendRequest, SetRecoveryRequest,
};

use crate::both;
use crate::helpers::*;

fn new_password(
    current: Option<SecretBytes>,
    token: Option<Secret>,
    auth_key: &SecretBytes,
) -> ChangePasswordRequest {
    ChangePasswordRequest {
        current_auth_key: current,
        recovery_token: token,
        kdf: Kdf {
            alg: "argon2id13".into(),
            salt: random(16),
            opslimit: 2,
            memlimit: 67_108_864,
        },
        auth_key: auth_key.clone(),
        wrapped_account_key: secret(72),
    }
}

async fn login(
    app: &TestApp,
    email: &str,
    auth_key: &SecretBytes,
) -> Result<sealpost_client::api::LoginResponse, sealpost_client::ApiError> {
    app.api()
        .login(&LoginRequest {
            email: email.into(),
            auth_key: auth_key.clone(),
            device_name: None,
        })
        .await
}

fn send_req(to: uuid::Uuid, key_version: i64) -> SendRequest {
    SendRequest {
        to,
        ciphertext: ciphertext(1),
        key_version,
        sender_key_version: 1,
        sender_copy: None,
    }
}

both!(
    password_change_swaps_and_revokes_other_sessions,
    |app: TestApp| async move {
        let alice = app.user("alice").await;
        let other = login(&app, &alice.email, &alice.auth_key).await.unwrap();
        let mut other_stream = app.stream(&other.access_token, 0).await;
        let new_key = secret(32);
        // Wrong proof: 403 (never 401), and nothing changes.
        let e = alice
            .api
            .change_password(&new_password(Some(secret(32)), None, &new_key))
            .await
            .unwrap_err();
        assert_eq!((e.status(), e.code()), (Some(403), Some("forbidden")));
        // Neither or both proofs: 400.
        let e = alice
            .api
            .change_password(&new_password(None, None, &new_key))
            .await
            .unwrap_err();
        assert_eq!(
            (e.status(), e.field()),
            (Some(400), Some("current_auth_key"))
        );
        let e = alice
            .api
            .change_password(&new_password(
                Some(alice.auth_key.clone()),
                Some("x".into()),
                &new_key,
            ))
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(400));
        // current_auth_key without a bearer token: 401.
        let e = app
            .api()
            .change_password(&new_password(Some(alice.auth_key.clone()), None, &new_key))
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(401));
        let before = app.api().prelogin(&alice.email).await.unwrap();
        let change = new_password(Some(alice.auth_key.clone()), None, &new_key);
        alice.api.change_password(&change).await.unwrap();
        // The new kdf is served; the old key fails, the new one works; the key pair is the same.
        let after = app.api().prelogin(&alice.email).await.unwrap();
        assert_ne!(after.salt, before.salt);
        assert_eq!(after, change.kdf);
        assert_eq!(
            login(&app, &alice.email, &alice.auth_key)
                .await
                .unwrap_err()
                .status(),
            Some(401)
        );
        let fresh = login(&app, &alice.email, &new_key).await.unwrap();
        assert_eq!(fresh.wrapped_account_key, change.wrapped_account_key);
        assert_eq!(fresh.keys.key_version, 1);
        // This session lives on; every other one (and its stream) is revoked.
        assert!(alice.api.sessions().await.is_ok());
        let mut other_api = app.api();
        other_api.set_token(Some(other.access_token.clone()));
        assert_eq!(other_api.sessions().await.unwrap_err().status(), Some(401));
        assert_eq!(hear(&mut other_stream).await, Heard::Closed(Some(4401)));
    }
);

both!(
    recovery_resets_the_password_once,
    |app: TestApp| async move {
        let email = format!("rita-{}@example.test", uuid::Uuid::new_v4().simple());
        let auth_key = secret(32);
        let recovery_auth = secret(32);
        let recovery_wrap = secret(72);
        let mut req = register_request(&email, auth_key.expose());
        req.recovery = Some(RecoveryWrap {
            auth_key: recovery_auth.clone(),
            wrapped_account_key: recovery_wrap.clone(),
        });
        app.api().register(&req).await.unwrap();
        let signed_in = login(&app, &email, &auth_key).await.unwrap();
        let mut session = app.api();
        session.set_token(Some(signed_in.access_token.clone()));
        // A wrong key and an unknown email: the same 401.
        let wrong = app.api().recover(&email, &secret(32)).await.unwrap_err();
        let unknown = app
            .api()
            .recover("nobody@example.test", &secret(32))
            .await
            .unwrap_err();
        assert_eq!((wrong.status(), unknown.status()), (Some(401), Some(401)));
        assert_eq!(wrong.to_string(), unknown.to_string());
        let got = app.api().recover(&email, &recovery_auth).await.unwrap();
        assert_eq!(got.wrapped_account_key, recovery_wrap);
        let new_key = secret(32);
        app.api()
            .change_password(&new_password(
                None,
                Some(got.recovery_token.clone()),
                &new_key,
            ))
            .await
            .unwrap();
        // Every session is revoked after a recovery; the new password works; the token is spent.
        assert_eq!(session.sessions().await.unwrap_err().status(), Some(401));
        login(&app, &email, &new_key).await.unwrap();
        let again = app
            .api()
            .change_password(&new_password(None, Some(got.recovery_token), &secret(32)))
            .await
            .unwrap_err();
        assert_eq!(again.status(), Some(401));
        let e = app
            .api()
            .change_password(&new_password(None, Some("bm9wZQ".into()), &secret(32)))
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(401));
        // A new recovery key replaces the old one.
        let signed_in = login(&app, &email, &new_key).await.unwrap();
        let mut session = app.api();
        session.set_token(Some(signed_in.access_token));
        let replacement = RecoveryWrap {
            auth_key: secret(32),
            wrapped_account_key: secret(72),
        };
        let e = session
            .set_recovery(&SetRecoveryRequest {
                current_auth_key: secret(32),
                recovery: replacement.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(403));
        session
            .set_recovery(&SetRecoveryRequest {
                current_auth_key: new_key.clone(),
                recovery: replacement.clone(),
            })
            .await
            .unwrap();
        assert_eq!(
            app.api()
                .recover(&email, &recovery_auth)
                .await
                .unwrap_err()
                .status(),
            Some(401)
        );
        assert_eq!(
            app.api()
                .recover(&email, &replacement.auth_key)
                .await
                .unwrap()
                .wrapped_account_key,
            replacement.wrapped_account_key
        );
    }
);

both!(recovery_is_rate_limited, |app: TestApp| async move {
    let alice = app.user("alice").await;
    for _ in 0..app.state.config.failed_logins {
        assert_eq!(
            app.api()
                .recover(&alice.email, &secret(32))
                .await
                .unwrap_err()
                .status(),
            Some(401)
        );
    }
    let e = app
        .api()
        .recover(&alice.email, &secret(32))
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(429), Some("rate_limited")));
});

both!(
    rotation_keeps_old_versions_and_stales_old_senders,
    |app: TestApp| async move {
        let alice = app.user("alice").await;
        let bob = app.user("bob").await;
        alice.api.send(&send_req(bob.id, 1)).await.unwrap();
        let v1 = alice.api.user(bob.id).await.unwrap();
        let new_pk = public_key();
        let rotate = |current: SecretBytes, version: i64| RotateRequest {
            current_auth_key: current,
            public_key: new_pk.clone(),
            key_version: version,
            wrapped_secret_key: random(72),
        };
        assert_eq!(
            bob.api
                .rotate_keys(&rotate(secret(32), 2))
                .await
                .unwrap_err()
                .status(),
            Some(403)
        );
        // A small-order key is refused at rotation as at registration, in any encoding.
        for hex in crate::accounts::vectors()["small_order_public_keys"]
            .as_array()
            .unwrap()
        {
            let mut req = rotate(bob.auth_key.clone(), 2);
            req.public_key = crate::accounts::from_hex(hex.as_str().unwrap());
            let e = bob.api.rotate_keys(&req).await.unwrap_err();
            assert_eq!(
                (e.status(), e.code(), e.field()),
                (Some(400), Some("invalid_request"), Some("public_key")),
                "{hex}"
            );
        }
        assert_eq!(alice.api.user(bob.id).await.unwrap().key_version, 1);
        let e = bob
            .api
            .rotate_keys(&rotate(bob.auth_key.clone(), 3))
            .await
            .unwrap_err();
        assert_eq!(
            (e.status(), e.code(), e.field()),
            (Some(409), Some("conflict"), Some("key_version"))
        );
        bob.api
            .rotate_keys(&rotate(bob.auth_key.clone(), 2))
            .await
            .unwrap();
        assert_eq!(
            bob.api
                .rotate_keys(&rotate(bob.auth_key.clone(), 2))
                .await
                .unwrap_err()
                .status(),
            Some(409)
        );
        let v2 = alice.api.user(bob.id).await.unwrap();
        assert_eq!((v2.key_version, &v2.public_key), (2, &new_pk));
        assert_eq!(
            alice.api.user_key(bob.id, 1).await.unwrap().public_key,
            v1.public_key
        );
        // Alice still holds version 1: stale, until she refetches.
        let e = alice.api.send(&send_req(bob.id, 1)).await.unwrap_err();
        assert_eq!(
            (e.status(), e.code(), e.field()),
            (Some(409), Some("stale_key"), Some("key_version"))
        );
        alice.api.send(&send_req(bob.id, 2)).await.unwrap();
        // Bob's own sends must name his new version.
        let e = bob.api.send(&send_req(alice.id, 1)).await.unwrap_err();
        assert_eq!(e.field(), Some("sender_key_version"));
        let mut req = send_req(alice.id, 1);
        req.sender_key_version = 2;
        bob.api.send(&req).await.unwrap();
        // Login hands back every version, newest first.
        let l = login(&app, &bob.email, &bob.auth_key).await.unwrap();
        assert_eq!(l.keys.key_version, 2);
        assert_eq!(
            l.previous_keys
                .iter()
                .map(|k| k.key_version)
                .collect::<Vec<_>>(),
            vec![1]
        );
        let entries = bob.api.messages(Page::default()).await.unwrap().messages;
        assert_eq!(
            entries.iter().map(|m| m.key_version).collect::<Vec<_>>(),
            vec![1, 2]
        );
    }
);

both!(
    deletion_removes_everything_but_the_public_keys,
    |app: TestApp| async move {
        let alice = app.user("alice").await;
        let bob = app.user("bob").await;
        let sent = alice.api.send(&send_req(bob.id, 1)).await.unwrap();
        bob.api.send(&send_req(alice.id, 1)).await.unwrap();
        let mut stream = app.stream(alice.api.token().unwrap(), 0).await;
        let _backlog = hear(&mut stream).await;
        let r = alice.api.raw(Method::POST, "/v1/account/delete", RawBody::Json(serde_json::json!({"current_auth_key": sealpost_crypto::b64::encode(&random(32))}))).await.unwrap();
        assert_eq!(r.status, 403);
        alice.api.delete_account(&alice.auth_key).await.unwrap();
        assert_eq!(hear(&mut stream).await, Heard::Closed(Some(4401)));
        assert_eq!(alice.api.sessions().await.unwrap_err().status(), Some(401));
        assert_eq!(
            login(&app, &alice.email, &alice.auth_key)
                .await
                .unwrap_err()
                .status(),
            Some(401)
        );
        assert_eq!(
            bob.api.user(alice.id).await.unwrap_err().status(),
            Some(404)
        );
        assert_eq!(
            bob.api
                .user_by_email(&alice.email)
                .await
                .unwrap_err()
                .status(),
            Some(404)
        );
        let key = bob.api.user_key(alice.id, 1).await.unwrap();
        assert!(key.deleted);
        assert_eq!(key.email, None);
        // What Alice sent stays in Bob's mailbox; nothing can be sent to her.
        assert_eq!(
            bob.api.messages(Page::default()).await.unwrap().messages[0].id,
            sent.id
        );
        assert_eq!(
            bob.api
                .send(&send_req(alice.id, 1))
                .await
                .unwrap_err()
                .status(),
            Some(404)
        );
        // No table holds her email, auth hash, wrapped keys, sessions or mailbox.
        let text = database_text(&app).await;
        assert!(!text.contains(&alice.email), "the email is still stored");
        for (table, column) in [
            ("sessions", "user_id"),
            ("messages", "mailbox"),
            ("recovery_tokens", "user_id"),
        ] {
            assert_eq!(
                count(
                    &app,
                    &format!("SELECT COUNT(*) FROM {table} WHERE {column} = $1"),
                    alice.id
                )
                .await,
                0,
                "{table}"
            );
        }
        assert_eq!(count(&app, "SELECT COUNT(*) FROM users WHERE id = $1 AND (auth_hash IS NOT NULL OR wrapped_account_key IS NOT NULL OR kdf_salt IS NOT NULL OR recovery_wrapped IS NOT NULL)", alice.id).await, 0);
        assert_eq!(count(&app, "SELECT COUNT(*) FROM user_keys WHERE user_id = $1 AND wrapped_secret_key IS NOT NULL", alice.id).await, 0);
        let hash = sealpost_crypto::b64::encode(&sha256(alice.auth_key.expose()));
        assert!(!text.contains(&hash));
        // The address can register again, as a new user.
        let again = app
            .api()
            .register(&register_request(&alice.email, &random(32)))
            .await
            .unwrap();
        assert_ne!(again.user_id, alice.id);
    }
);

fn sha256(data: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(data).to_vec()
}

async fn count(app: &TestApp, sql: &str, id: uuid::Uuid) -> i64 {
    app.sql_scalar(sql, &[sealpost_server::store::testing::Value::Uuid(id)])
        .await
}

/// A user with a recovery key, signed in; answers (email, auth key, recovery auth key, session).
async fn with_recovery(
    app: &TestApp,
) -> (String, SecretBytes, SecretBytes, sealpost_client::api::Api) {
    let email = format!("rory-{}@example.test", uuid::Uuid::new_v4().simple());
    let auth_key = secret(32);
    let recovery_auth = secret(32);
    let mut req = register_request(&email, auth_key.expose());
    req.recovery = Some(RecoveryWrap {
        auth_key: recovery_auth.clone(),
        wrapped_account_key: secret(72),
    });
    app.api().register(&req).await.unwrap();
    let signed_in = login(app, &email, &auth_key).await.unwrap();
    let mut session = app.api();
    session.set_token(Some(signed_in.access_token));
    (email, auth_key, recovery_auth, session)
}

both!(
    credential_changes_revoke_every_outstanding_recovery_token,
    |app: TestApp| async move {
        let (email, auth_key, recovery_auth, session) = with_recovery(&app).await;
        let spend = |token: Secret| {
            let api = app.api();
            async move {
                api.change_password(&new_password(None, Some(token), &secret(32)))
                    .await
                    .map(|_| ())
                    .map_err(|e| e.status())
            }
        };
        // A password change by the owner ends a token minted before it.
        let minted = app.api().recover(&email, &recovery_auth).await.unwrap();
        let new_key = secret(32);
        session
            .change_password(&new_password(Some(auth_key), None, &new_key))
            .await
            .unwrap();
        assert_eq!(spend(minted.recovery_token).await, Err(Some(401)));
        // A new recovery key ends a token minted with the old one.
        let minted = app.api().recover(&email, &recovery_auth).await.unwrap();
        let replacement = RecoveryWrap {
            auth_key: secret(32),
            wrapped_account_key: secret(72),
        };
        session
            .set_recovery(&SetRecoveryRequest {
                current_auth_key: new_key.clone(),
                recovery: replacement.clone(),
            })
            .await
            .unwrap();
        assert_eq!(spend(minted.recovery_token).await, Err(Some(401)));
        // A recovery with one token ends the others.
        let first = app
            .api()
            .recover(&email, &replacement.auth_key)
            .await
            .unwrap();
        let second = app
            .api()
            .recover(&email, &replacement.auth_key)
            .await
            .unwrap();
        assert_eq!(spend(first.recovery_token).await, Ok(()));
        assert_eq!(spend(second.recovery_token).await, Err(Some(401)));
    }
);

both!(
    a_refresh_race_counts_as_reuse_on_either_store,
    |app: TestApp| async move {
        // Several rounds, so that both requests often read the token unused at once.
        for _ in 0..8 {
            let user = app.user("racer").await;
            let api = app.api();
            let (a, b) = tokio::join!(
                api.refresh(&user.refresh_token),
                api.refresh(&user.refresh_token)
            );
            let winners: Vec<_> = [a, b].into_iter().filter_map(Result::ok).collect();
            assert_eq!(
                winners.len(),
                1,
                "exactly one of two refreshes with one token succeeds"
            );
            // Whatever the interleaving, the loser counted as reuse: the session is gone, and the
            // winner's new refresh token with it.
            assert_eq!(
                api.refresh(&winners[0].refresh_token)
                    .await
                    .unwrap_err()
                    .status(),
                Some(401)
            );
            assert_eq!(user.api.sessions().await.unwrap_err().status(), Some(401));
        }
    }
);
