//! prelogin, login, refresh, logout, sessions, and access-token checks (PROTOCOL §4, §4.3).

use reqwest::Method;
use sealpost_client::api::{LoginRequest, RawBody, Secret, SecretBytes};
use sealpost_server::tokens::{Claims, JwtKey};
use serde_json::json;

use crate::both;
use crate::helpers::*;

both!(
    prelogin_answers_alike_for_known_and_unknown,
    |app: TestApp| async move {
        let alice = app.user("alice").await;
        let api = app.api();
        let known = api.prelogin(&alice.email).await.unwrap();
        assert_eq!(known.alg, "argon2id13");
        assert_eq!((known.opslimit, known.memlimit), (2, 67_108_864));
        // The case of the address does not matter.
        assert_eq!(
            api.prelogin(&alice.email.to_uppercase()).await.unwrap(),
            known
        );
        let ghost = "ghost@example.test";
        let a = api.prelogin(ghost).await.unwrap();
        let b = api.prelogin(ghost).await.unwrap();
        assert_eq!(a, b, "the fake answer is stable");
        assert_eq!(a.salt.len(), 16);
        assert_eq!(
            (a.opslimit, a.memlimit),
            (app.state.config.kdf_opslimit, app.state.config.kdf_memlimit)
        );
        assert_ne!(
            api.prelogin("other-ghost@example.test").await.unwrap().salt,
            a.salt
        );
        let r = api
            .raw(
                Method::POST,
                "/v1/auth/prelogin",
                RawBody::Json(json!({"email": "x"})),
            )
            .await
            .unwrap();
        assert_eq!(
            (r.status, r.json["error"]["field"].as_str()),
            (400, Some("email"))
        );
    }
);

both!(
    login_answers_keys_and_refuses_alike,
    |app: TestApp| async move {
        let alice = app.user("alice").await;
        let api = app.api();
        let ok = api
            .login(&LoginRequest {
                email: alice.email.clone(),
                auth_key: alice.auth_key.clone(),
                device_name: None,
            })
            .await
            .unwrap();
        assert_eq!(ok.user_id, alice.id);
        assert_eq!(ok.keys.key_version, 1);
        assert_eq!(ok.keys.public_key.len(), 32);
        assert_eq!(ok.keys.wrapped_secret_key.len(), 72);
        assert_eq!(ok.wrapped_account_key.len(), 72);
        assert!(ok.previous_keys.is_empty());
        assert_eq!(ok.expires_in, 900);
        let wrong = api
            .login(&LoginRequest {
                email: alice.email.clone(),
                auth_key: secret(32),
                device_name: None,
            })
            .await
            .unwrap_err();
        let unknown = api
            .login(&LoginRequest {
                email: "nobody@example.test".into(),
                auth_key: secret(32),
                device_name: None,
            })
            .await
            .unwrap_err();
        assert_eq!(
            (wrong.status(), wrong.code()),
            (Some(401), Some("unauthenticated"))
        );
        assert_eq!(
            (unknown.status(), unknown.code()),
            (Some(401), Some("unauthenticated"))
        );
        assert_eq!(
            wrong.to_string(),
            unknown.to_string(),
            "a wrong key and an unknown email look alike"
        );
    }
);

both!(
    failed_logins_are_limited_per_account,
    |app: TestApp| async move {
        let alice = app.user("alice").await;
        let api = app.api();
        let attempt = |key: SecretBytes| {
            let api = api.clone();
            let email = alice.email.clone();
            async move {
                api.login(&LoginRequest {
                    email,
                    auth_key: key,
                    device_name: None,
                })
                .await
            }
        };
        for _ in 0..app.state.config.failed_logins {
            assert_eq!(attempt(secret(32)).await.unwrap_err().status(), Some(401));
        }
        let e = attempt(secret(32)).await.unwrap_err();
        assert_eq!((e.status(), e.code()), (Some(429), Some("rate_limited")));
        assert!(e.retry_after().is_some_and(|s| s > 0 && s <= 300));
        // Even the right key waits: the account is being guessed at.
        assert_eq!(
            attempt(alice.auth_key.clone()).await.unwrap_err().status(),
            Some(429)
        );
        // Another account is untouched.
        let bob = app.user("bob").await;
        assert!(bob.api.sessions().await.is_ok());
    }
);

both!(
    refresh_rotates_and_reuse_revokes_the_session,
    |app: TestApp| async move {
        let alice = app.user("alice").await;
        let api = app.api();
        let pair = api.refresh(&alice.refresh_token).await.unwrap();
        assert_ne!(pair.refresh_token, alice.refresh_token);
        let mut fresh = app.api();
        fresh.set_token(Some(pair.access_token.clone()));
        assert!(fresh.sessions().await.is_ok());
        // The old token is dead, and presenting it revokes the whole session.
        assert_eq!(
            api.refresh(&alice.refresh_token)
                .await
                .unwrap_err()
                .status(),
            Some(401)
        );
        assert_eq!(fresh.sessions().await.unwrap_err().status(), Some(401));
        assert_eq!(alice.api.sessions().await.unwrap_err().status(), Some(401));
        assert_eq!(
            api.refresh(&pair.refresh_token).await.unwrap_err().status(),
            Some(401)
        );
        assert_eq!(
            api.refresh(&Secret::from("bm9wZQ"))
                .await
                .unwrap_err()
                .status(),
            Some(401)
        );
    }
);

both!(logout_and_session_revocation, |app: TestApp| async move {
    let alice = app.user("alice").await;
    let second = app
        .api()
        .login(&LoginRequest {
            email: alice.email.clone(),
            auth_key: alice.auth_key.clone(),
            device_name: Some("  phone ".into()),
        })
        .await
        .unwrap();
    // The name is stored trimmed, but its limit counts what was sent, as the OpenAPI says.
    let long = app
        .api()
        .login(&LoginRequest {
            email: alice.email.clone(),
            auth_key: alice.auth_key.clone(),
            device_name: Some(format!(" {} ", "x".repeat(99))),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (long.status(), long.field()),
        (Some(400), Some("device_name"))
    );
    let mut phone = app.api();
    phone.set_token(Some(second.access_token.clone()));
    let sessions = alice.api.sessions().await.unwrap();
    assert_eq!(sessions.len(), 2);
    let current: Vec<_> = sessions.iter().filter(|s| s.current).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0].id, alice.session_id);
    assert!(sessions
        .iter()
        .any(|s| s.device_name.as_deref() == Some("phone")));
    // Another user cannot see or end Alice's sessions.
    let bob = app.user("bob").await;
    assert_eq!(
        bob.api
            .revoke_session(second.session_id)
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    assert_eq!(
        alice
            .api
            .revoke_session(uuid::Uuid::new_v4())
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    alice.api.revoke_session(second.session_id).await.unwrap();
    assert_eq!(phone.sessions().await.unwrap_err().status(), Some(401));
    assert_eq!(alice.api.sessions().await.unwrap().len(), 1);
    alice.api.logout().await.unwrap();
    assert_eq!(alice.api.sessions().await.unwrap_err().status(), Some(401));
    assert_eq!(alice.api.logout().await.unwrap_err().status(), Some(401));
});

both!(access_tokens_are_checked, |app: TestApp| async move {
    let backend = app.backend;
    app.stop().await;
    let mut args = test_args();
    let secret = [42u8; 32];
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    args.jwt_secret = Some(sealpost_server::config::HexSecret::parse(&hex).unwrap());
    let app = TestApp::spawn_with(backend, args).await.unwrap();
    let alice = app.user("alice").await;
    let key = JwtKey::new(secret.to_vec());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let with = |token: String| {
        let mut api = app.api();
        api.set_token(Some(token.into()));
        api
    };
    let claims = Claims {
        sub: alice.id,
        sid: alice.session_id,
        iat: now,
        exp: now + 60,
    };
    // A token minted with the server's secret works…
    assert!(with(key.sign(&claims)).sessions().await.is_ok());
    // …but not once expired, nor signed with another key, nor with alg none, nor for a session
    // that is not the user's.
    let expired = Claims {
        iat: now - 3600,
        exp: now - 60,
        ..claims
    };
    assert_eq!(
        with(key.sign(&expired))
            .sessions()
            .await
            .unwrap_err()
            .status(),
        Some(401)
    );
    let other = JwtKey::new(vec![1; 32]);
    assert_eq!(
        with(other.sign(&claims))
            .sessions()
            .await
            .unwrap_err()
            .status(),
        Some(401)
    );
    let payload = sealpost_crypto::b64::encode(&serde_json::to_vec(&claims).unwrap());
    let none = format!(
        "{}.{payload}.",
        sealpost_crypto::b64::encode(br#"{"alg":"none","typ":"JWT"}"#)
    );
    assert_eq!(with(none).sessions().await.unwrap_err().status(), Some(401));
    let foreign = Claims {
        sid: uuid::Uuid::new_v4(),
        ..claims
    };
    assert_eq!(
        with(key.sign(&foreign))
            .sessions()
            .await
            .unwrap_err()
            .status(),
        Some(401)
    );
    let http = reqwest::Client::new();
    for header in ["", "Bearer", "Basic abc", "Bearer not.a.jwt", "bearer x"] {
        let r = http
            .get(format!("{}/v1/sessions", app.base))
            .header("Authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{header}");
        let j: serde_json::Value = r.json().await.unwrap();
        assert_eq!(j["error"]["code"], "unauthenticated");
    }
    app.stop().await;
});
