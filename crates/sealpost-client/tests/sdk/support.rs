//! What the SDK tests share: people signed in through the SDK, and a way to swap a key behind the
//! SDK's back, as a hostile server would.

use std::sync::Arc;

use sealpost_client::api::Secret;
use sealpost_client::keystore::Keystore as _;
use sealpost_client::{Client, MemoryKeystore, RegisterOptions};
use sealpost_crypto::PublicKey;
use sealpost_server::store::testing::Value;
use uuid::Uuid;

use crate::helpers::TestApp;

pub const PASSWORD: &str = "correct horse battery staple";

/// A user registered and signed in through the SDK, with a handle on its keystore.
pub struct Person {
    pub client: Client,
    pub keystore: Arc<MemoryKeystore>,
    pub email: String,
    pub id: Uuid,
    /// The recovery key's text, as registration showed it.
    pub recovery_key: String,
}

impl Person {
    /// The access token the keystore holds.
    pub fn access_token(&self) -> Secret {
        let stored = self.keystore.load().unwrap();
        stored.account.unwrap().session.unwrap().access_token
    }

    /// The raw HTTP layer with this person's token.
    pub fn raw_api(&self) -> sealpost_client::Api {
        let mut api = self.client.api().clone();
        api.set_token(Some(self.access_token()));
        api
    }
}

/// Registers `name` (a unique email) through the SDK, with a recovery key.
pub async fn person(app: &TestApp, name: &str) -> Person {
    person_at(&app.base, name).await
}

/// Registers `name` through the SDK with the server at `base` (a server, or a proxy in front of
/// one).
pub async fn person_at(base: &str, name: &str) -> Person {
    let email = format!("{name}-{}@example.test", Uuid::new_v4().simple());
    let keystore = Arc::new(MemoryKeystore::new());
    let client = Client::new(base, Arc::clone(&keystore));
    let options = RegisterOptions {
        recovery_key: true,
        device_name: Some("sdk test".into()),
    };
    let registration = client.register(&email, PASSWORD, options).await.unwrap();
    let text = registration.recovery_key.as_deref().unwrap();
    // §2.3: 14 groups of 4 Crockford symbols, and it reads back.
    assert_eq!(text.len(), 56 + 13, "{text}");
    sealpost_crypto::RecoveryKey::parse(text).unwrap();
    Person {
        client,
        keystore,
        email,
        id: registration.user_id,
        recovery_key: text.to_owned(),
    }
}

/// Replaces a user's public key at version 1 directly in the database.
pub async fn replace_key(app: &TestApp, user_id: Uuid, key: &PublicKey) {
    let sql = "UPDATE user_keys SET public_key = $1 WHERE user_id = $2 AND key_version = 1";
    let updated = app
        .sql_execute(
            sql,
            &[Value::Bytes(key.as_bytes().to_vec()), Value::Uuid(user_id)],
        )
        .await;
    assert_eq!(updated, 1);
}

/// A sender on the raw API with a real key pair of its own, so that a test can seal what it
/// likes (the same ciphertext twice, many messages at once): the test kit's accomplice.
pub use sealpost_testkit::evil::Accomplice as RawSender;

pub async fn raw_sender(app: &TestApp, name: &str) -> RawSender {
    RawSender::register(app, name).await
}

/// Seals `text` from `sender` to `to` (whose key is `key`), without sending it.
pub fn seal_from(sender: &RawSender, to: &Person, key: &PublicKey, text: &str) -> Vec<u8> {
    let payload = sealpost_crypto::Payload::text(sender.id, to.id, now_ms(), text);
    sealpost_crypto::seal(&payload, key, &sender.pair)
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}
