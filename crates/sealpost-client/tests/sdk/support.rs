//! What the SDK tests share: people signed in through the SDK, and a way to swap a key behind the
//! SDK's back, as a hostile server would.

use std::sync::Arc;

use sealpost_client::api::{Api, LoginRequest, Secret};
use sealpost_client::keystore::Keystore as _;
use sealpost_client::{Client, MemoryKeystore, RegisterOptions};
use sealpost_crypto::{KeyPair, PublicKey};
use sealpost_server::store::testing::Value;
use uuid::Uuid;

use crate::helpers::{random, register_request, TestApp};

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
/// likes (the same ciphertext twice, many messages at once).
pub struct RawSender {
    pub id: Uuid,
    pub pair: KeyPair,
    pub api: Api,
}

pub async fn raw_sender(app: &TestApp, name: &str) -> RawSender {
    let pair = KeyPair::generate();
    let email = format!("{name}-{}@example.test", Uuid::new_v4().simple());
    let auth_key = random(32);
    let mut request = register_request(&email, &auth_key);
    request.public_key = pair.public().as_bytes().to_vec();
    let mut api = app.api();
    let registered = api.register(&request).await.unwrap();
    let login = api
        .login(&LoginRequest {
            email,
            auth_key: auth_key.into(),
            device_name: None,
        })
        .await
        .unwrap();
    api.set_token(Some(login.access_token));
    RawSender {
        id: registered.user_id,
        pair,
        api,
    }
}

impl RawSender {
    /// Seals `text` to `to` (whose key is `key`), without sending it.
    pub fn seal(&self, to: &Person, key: &PublicKey, text: &str) -> Vec<u8> {
        let payload = sealpost_crypto::Payload::text(self.id, to.id, now_ms(), text);
        sealpost_crypto::seal(&payload, key, &self.pair)
    }

    /// Posts a ciphertext to `to`'s version-1 key.
    pub async fn post(
        &self,
        to: &Person,
        ciphertext: Vec<u8>,
    ) -> sealpost_client::api::SendResponse {
        let request = sealpost_client::api::SendRequest {
            to: to.id,
            ciphertext,
            key_version: 1,
            sender_key_version: 1,
            sender_copy: None,
        };
        self.api.send(&request).await.unwrap()
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}
