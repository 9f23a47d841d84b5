//! What storage holds: ciphertext only. A message with a unique canary is sealed for real and
//! sent; then the SQLite file (and its write-ahead log) and every table's text are searched for
//! the canary.

use sealpost_client::api::{LoginRequest, Page, SecretBytes, SendRequest};
use sealpost_crypto::{KeyPair, Payload};

use crate::both;
use crate::helpers::*;

async fn real_user(app: &TestApp, name: &str, keys: &KeyPair) -> TestUser {
    let email = format!("{name}-{}@example.test", uuid::Uuid::new_v4().simple());
    let auth_key = random(32);
    let mut req = register_request(&email, &auth_key);
    req.public_key = keys.public().as_bytes().to_vec();
    let reg = app.api().register(&req).await.unwrap();
    let login = app
        .api()
        .login(&LoginRequest {
            email: email.clone(),
            auth_key: SecretBytes::from_slice(&auth_key),
            device_name: None,
        })
        .await
        .unwrap();
    let mut api = app.api();
    api.set_token(Some(login.access_token));
    TestUser {
        id: reg.user_id,
        email,
        auth_key: auth_key.into(),
        api,
        refresh_token: login.refresh_token,
        session_id: login.session_id,
    }
}

both!(storage_holds_no_plaintext, |app: TestApp| async move {
    let (alice_keys, bob_keys) = (KeyPair::generate(), KeyPair::generate());
    let alice = real_user(&app, "alice", &alice_keys).await;
    let bob = real_user(&app, "bob", &bob_keys).await;
    let canary = format!("canary-{}", uuid::Uuid::new_v4().simple());
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as u64 * 1000;
    let payload = Payload::text(alice.id, bob.id, now, format!("Hello, Bob! {canary}"));
    let ciphertext = sealpost_crypto::seal(&payload, bob_keys.public(), &alice_keys);
    let copy = sealpost_crypto::seal_sender_copy(&payload, &alice_keys);
    let req = SendRequest {
        to: bob.id,
        ciphertext,
        key_version: 1,
        sender_key_version: 1,
        sender_copy: Some(sealpost_client::api::SenderCopy {
            ciphertext: copy,
            key_version: 1,
        }),
    };
    alice.api.send(&req).await.unwrap();
    // The message is really there, and really opens for Bob.
    let entry = &bob.api.messages(Page::default()).await.unwrap().messages[0];
    let opened = sealpost_crypto::open(
        &entry.ciphertext,
        &bob_keys,
        bob.id,
        alice.id,
        alice_keys.public(),
        now,
    )
    .unwrap();
    assert!(opened.body.contains(&canary));
    // Nothing in storage shows it, in text or in hex.
    let text = database_text(&app).await;
    assert!(
        text.contains(&hex(&entry.ciphertext)),
        "the scan does not see the stored rows"
    );
    for needle in [canary.clone(), hex(canary.as_bytes())] {
        assert!(!text.contains(&needle), "a table holds the plaintext");
    }
    if let Some(path) = app.db_path() {
        let mut files = vec![std::fs::read(path).unwrap()];
        if let Ok(wal) = std::fs::read(path.with_extension("db-wal")) {
            files.push(wal);
        }
        let total: usize = files.iter().map(Vec::len).sum();
        assert!(total > 0);
        for bytes in files {
            assert!(
                !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
                "the SQLite file holds the plaintext"
            );
        }
    }
});
