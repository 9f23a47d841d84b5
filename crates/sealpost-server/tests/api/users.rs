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
});
