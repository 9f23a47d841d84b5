//! Public key lookups (PROTOCOL §4).

use reqwest::Method;
use sealpost_client::api::RawBody;

use crate::both;
use crate::helpers::*;

both!(lookups_by_id_email_and_version, |app: TestApp| async move {
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let by_id = alice.api.user(bob.id).await.unwrap();
    let by_email = alice
        .api
        .user_by_email(&bob.email.to_uppercase())
        .await
        .unwrap();
    assert_eq!(by_id, by_email);
    assert_eq!(
        (by_id.user_id, by_id.key_version, by_id.email.as_deref()),
        (bob.id, 1, Some(bob.email.as_str()))
    );
    assert_eq!(by_id.public_key.len(), 32);
    assert_eq!(
        alice.api.user_key(bob.id, 1).await.unwrap().public_key,
        by_id.public_key
    );
    for e in [
        alice.api.user_key(bob.id, 2).await.unwrap_err(),
        alice.api.user(uuid::Uuid::new_v4()).await.unwrap_err(),
        alice
            .api
            .user_by_email("nobody@example.test")
            .await
            .unwrap_err(),
    ] {
        assert_eq!((e.status(), e.code()), (Some(404), Some("not_found")));
    }
    let r = alice
        .api
        .raw(Method::GET, "/v1/users/not-a-uuid", RawBody::None)
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    let r = app
        .api()
        .raw(Method::GET, &format!("/v1/users/{}", bob.id), RawBody::None)
        .await
        .unwrap();
    assert_eq!(r.status, 401, "lookups need a token");
    let r = alice
        .api
        .raw(Method::GET, "/v1/users", RawBody::None)
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.json["error"]["field"].as_str()),
        (400, Some("email"))
    );
    // A repeated or unknown query parameter gets the §4 error body too, not a framework's text.
    for (query, field) in [
        (format!("email={}&email={}", bob.email, bob.email), "email"),
        (format!("email={}&mail=x", bob.email), "mail"),
    ] {
        let r = alice
            .api
            .raw(Method::GET, &format!("/v1/users?{query}"), RawBody::None)
            .await
            .unwrap();
        assert_eq!(
            (
                r.status,
                r.json["error"]["code"].as_str(),
                r.json["error"]["field"].as_str()
            ),
            (400, Some("invalid_request"), Some(field)),
            "{query}: {}",
            r.text
        );
    }
});

both!(
    the_key_list_has_every_version_ascending,
    |app: TestApp| async move {
        let alice = app.user("alice").await;
        let bob = app.user("bob").await;
        let list = |id: uuid::Uuid| {
            let api = alice.api.clone();
            async move {
                api.raw(Method::GET, &format!("/v1/users/{id}/keys"), RawBody::None)
                    .await
                    .unwrap()
            }
        };
        let first = list(bob.id).await;
        assert_eq!(first.status, 200, "{}", first.text);
        assert_eq!(first.json["user_id"], bob.id.to_string());
        assert_eq!(first.json["deleted"], false);
        let v1 = alice.api.user(bob.id).await.unwrap().public_key;
        assert_eq!(
            first.json["keys"],
            serde_json::json!([{"key_version": 1, "public_key": sealpost_crypto::b64::encode(&v1)}])
        );
        // Two rotations: three versions, oldest first, each with its own key.
        let mut keys = vec![v1];
        for version in [2, 3] {
            let key = public_key();
            bob.api
                .rotate_keys(&sealpost_client::api::RotateRequest {
                    current_auth_key: bob.auth_key.clone(),
                    public_key: key.clone(),
                    key_version: version,
                    wrapped_secret_key: random(72),
                })
                .await
                .unwrap();
            keys.push(key);
        }
        let listed = list(bob.id).await.json;
        let expected: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| serde_json::json!({"key_version": i + 1, "public_key": sealpost_crypto::b64::encode(k)}))
        .collect();
        assert_eq!(listed["keys"], serde_json::Value::Array(expected.clone()));
        // A deleted account's keys are still listed, marked deleted.
        bob.api.delete_account(&bob.auth_key).await.unwrap();
        let after = list(bob.id).await;
        assert_eq!(after.status, 200);
        assert_eq!(after.json["deleted"], true);
        assert_eq!(after.json["keys"], serde_json::Value::Array(expected));
        // Nobody, and no caller: 404 and 401.
        assert_eq!(list(uuid::Uuid::new_v4()).await.status, 404);
        assert_eq!(list(uuid::Uuid::nil()).await.status, 404);
        let anonymous = app
            .api()
            .raw(
                Method::GET,
                &format!("/v1/users/{}/keys", alice.id),
                RawBody::None,
            )
            .await
            .unwrap();
        assert_eq!(anonymous.status, 401);
    }
);
