//! No secret in a `Debug` print (ARCHITECTURE.md): every wire type that carries a token, an auth
//! key or a wrapped account key, the keystore's records, [`Api`] and [`Client`] are built with
//! recognisable secrets and printed, and no secret shows in any form (as text, as a list of
//! bytes, as hex or as base64url).

use sealpost_client::api::{
    Api, ChangePasswordRequest, Kdf, KeyInfo, LoginRequest, LoginResponse, RecoverResponse,
    RecoveryWrap, RegisterRequest, RotateRequest, Secret, SecretBytes, SetRecoveryRequest,
    TokenPair,
};
use sealpost_client::keystore::{AccountRecord, KeyRecord, SessionRecord, Stored};
use sealpost_client::{Client, Keystore as _, MemoryKeystore};
use sealpost_crypto::{KdfParams, KeyPair};
use uuid::Uuid;

use crate::both;
use crate::helpers::*;
use crate::support::*;

/// The secrets of these tests, each recognisable.
struct Secrets {
    access: Secret,
    refresh: Secret,
    recovery_token: Secret,
    auth_key: SecretBytes,
    current_auth_key: SecretBytes,
    recovery_auth_key: SecretBytes,
    wrapped_account_key: SecretBytes,
}

impl Secrets {
    fn new() -> Secrets {
        Secrets {
            access: Secret::from("tok-ACCESS-5f1e"),
            refresh: Secret::from("tok-REFRESH-8c2d"),
            recovery_token: Secret::from("tok-RECOVERY-3b7a"),
            auth_key: SecretBytes::new(vec![0xd1; 32]),
            current_auth_key: SecretBytes::new(vec![0xd2; 32]),
            recovery_auth_key: SecretBytes::new(vec![0xd3; 32]),
            wrapped_account_key: SecretBytes::new(vec![0xd4; 72]),
        }
    }

    /// Every form in which each secret could show.
    fn forms(&self) -> Vec<String> {
        let texts = [&self.access, &self.refresh, &self.recovery_token];
        let bytes = [
            &self.auth_key,
            &self.current_auth_key,
            &self.recovery_auth_key,
            &self.wrapped_account_key,
        ];
        texts
            .iter()
            .flat_map(|t| {
                let text = t.expose();
                [text.to_owned(), hex(text.as_bytes()), b64(text.as_bytes())]
            })
            .chain(bytes.iter().flat_map(|b| forms_of_bytes(b.expose())))
            .collect()
    }
}

fn forms_of_bytes(bytes: &[u8]) -> [String; 3] {
    // As `Debug` prints a byte list; whitespace is dropped before comparing, for `{:#?}`.
    let list = format!("{:?}", &bytes[..4]);
    [
        list.trim_matches(['[', ']']).to_owned(),
        hex(bytes),
        b64(bytes),
    ]
}

fn b64(bytes: &[u8]) -> String {
    sealpost_crypto::b64::encode(bytes)
}

/// Asserts that neither `{:?}` nor `{:#?}` of `value` shows any of `forms`.
fn assert_shows_none(value: &dyn std::fmt::Debug, forms: &[String]) {
    for text in [format!("{value:?}"), format!("{value:#?}")] {
        let squeezed: String = text.split_whitespace().collect();
        for form in forms {
            let form: String = form.split_whitespace().collect();
            assert!(!squeezed.contains(&form), "{form} shows in {text}");
        }
    }
}

fn kdf() -> Kdf {
    Kdf::from(&KdfParams::interactive())
}

fn stored(s: &Secrets) -> Stored {
    let pair = KeyPair::generate();
    Stored {
        version: 1,
        account: Some(AccountRecord {
            server: "http://127.0.0.1:1".into(),
            email: "alice@example.test".into(),
            user_id: Uuid::from_u128(1),
            kdf: KdfParams::interactive(),
            wrapped_account_key: s.wrapped_account_key.expose().to_vec(),
            keys: vec![KeyRecord {
                key_version: 1,
                public_key: *pair.public(),
                wrapped_secret_key: vec![7; 72],
            }],
            session: Some(SessionRecord {
                session_id: Uuid::from_u128(2),
                access_token: s.access.clone(),
                refresh_token: s.refresh.clone(),
            }),
            logged_out: false,
        }),
        ..Stored::default()
    }
}

#[test]
fn no_secret_shows_in_debug() {
    let s = Secrets::new();
    let forms = s.forms();
    let wrap = RecoveryWrap {
        auth_key: s.recovery_auth_key.clone(),
        wrapped_account_key: s.wrapped_account_key.clone(),
    };
    let key_info = KeyInfo {
        public_key: vec![1; 32],
        key_version: 1,
        wrapped_secret_key: vec![2; 72],
    };
    let mut api = Api::new("http://127.0.0.1:1");
    api.set_token(Some(s.access.clone()));
    let keystore = MemoryKeystore::new();
    keystore.save(&stored(&s)).unwrap();
    let client = Client::new("http://127.0.0.1:1", keystore);

    let values: Vec<Box<dyn std::fmt::Debug>> = vec![
        Box::new(wrap.clone()),
        Box::new(RegisterRequest {
            email: "alice@example.test".into(),
            kdf: kdf(),
            auth_key: s.auth_key.clone(),
            wrapped_account_key: s.wrapped_account_key.clone(),
            public_key: vec![1; 32],
            wrapped_secret_key: vec![2; 72],
            recovery: Some(wrap.clone()),
        }),
        Box::new(LoginRequest {
            email: "alice@example.test".into(),
            auth_key: s.auth_key.clone(),
            device_name: Some("laptop".into()),
        }),
        Box::new(LoginResponse {
            user_id: Uuid::from_u128(1),
            session_id: Uuid::from_u128(2),
            access_token: s.access.clone(),
            refresh_token: s.refresh.clone(),
            expires_in: 900,
            wrapped_account_key: s.wrapped_account_key.clone(),
            keys: key_info.clone(),
            previous_keys: vec![key_info],
        }),
        Box::new(TokenPair {
            access_token: s.access.clone(),
            refresh_token: s.refresh.clone(),
            expires_in: 900,
        }),
        Box::new(ChangePasswordRequest {
            current_auth_key: Some(s.current_auth_key.clone()),
            recovery_token: None,
            kdf: kdf(),
            auth_key: s.auth_key.clone(),
            wrapped_account_key: s.wrapped_account_key.clone(),
        }),
        Box::new(ChangePasswordRequest {
            current_auth_key: None,
            recovery_token: Some(s.recovery_token.clone()),
            kdf: kdf(),
            auth_key: s.auth_key.clone(),
            wrapped_account_key: s.wrapped_account_key.clone(),
        }),
        Box::new(SetRecoveryRequest {
            current_auth_key: s.current_auth_key.clone(),
            recovery: wrap,
        }),
        Box::new(RecoverResponse {
            recovery_token: s.recovery_token.clone(),
            wrapped_account_key: s.wrapped_account_key.clone(),
        }),
        Box::new(RotateRequest {
            current_auth_key: s.current_auth_key.clone(),
            public_key: vec![1; 32],
            key_version: 2,
            wrapped_secret_key: vec![2; 72],
        }),
        Box::new(stored(&s)),
        Box::new(api),
        Box::new(client),
    ];
    for value in &values {
        assert_shows_none(value.as_ref(), &forms);
    }
    // The check can fail: a secret printed as plain bytes is caught.
    let leak = format!("{:?}", s.auth_key.expose());
    assert!(forms.iter().any(|form| leak.contains(form.as_str())));
}

both!(
    a_signed_in_client_shows_no_secret,
    |app: TestApp| async move {
        let alice = person(&app, "alice").await;
        let record = alice.keystore.load().unwrap().account.unwrap();
        let session = record.session.clone().unwrap();
        let (_, auth_key) = sealpost_crypto::derive(PASSWORD, &record.kdf).unwrap();
        let mut forms = vec![
            session.access_token.expose().to_owned(),
            session.refresh_token.expose().to_owned(),
        ];
        forms.extend(forms_of_bytes(auth_key.expose_secret()));
        forms.extend(forms_of_bytes(&record.wrapped_account_key));
        assert!(alice.client.is_unlocked());
        assert_shows_none(&alice.client, &forms);
        assert_shows_none(&alice.raw_api(), &forms);
    }
);
