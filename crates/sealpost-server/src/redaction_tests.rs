//! Every request and response type that carries a credential, and the state itself, printed
//! with `{:?}` as a careless log line would: no secret shows, in raw, hex or base64url form.

use sealpost_crypto::b64;

use crate::config::{HexSecret, ServeArgs};
use crate::state::AppState;
use crate::store::Store;

/// Recognisable secret values, and the forms in which a leak would show.
const SECRET: [u8; 32] = [0xa7; 32];
const TOKEN: &str = "tok3n-that-must-never-print";
const PASSWORD: &str = "db-pa55word-that-must-never-print";

fn forms() -> Vec<String> {
    let hex: String = SECRET.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        b64::encode(&SECRET),
        hex,
        format!("{SECRET:?}"),
        TOKEN.to_owned(),
        PASSWORD.to_owned(),
    ]
}

fn assert_clean(what: &str, text: &str) {
    for form in forms() {
        assert!(!text.contains(&form), "{what} prints a secret: {text}");
    }
}

fn parse<T: serde::de::DeserializeOwned>(json: serde_json::Value) -> T {
    match serde_json::from_value(json) {
        Ok(t) => t,
        Err(e) => panic!("the test body does not parse: {e}"),
    }
}

#[test]
fn requests_print_no_secret() {
    let key = b64::encode(&SECRET);
    let kdf = serde_json::json!({"alg": "argon2id13", "salt": b64::encode(&[1; 16]), "opslimit": 2, "memlimit": 67108864});
    let recovery =
        serde_json::json!({"auth_key": key, "wrapped_account_key": b64::encode(&[2; 72])});
    let printed = [
        format!(
            "{:?}",
            parse::<crate::accounts::RegisterRequest>(serde_json::json!({
            "email": "a@example.test", "kdf": kdf, "auth_key": key,
            "wrapped_account_key": b64::encode(&[2; 72]), "public_key": b64::encode(&[9; 32]),
            "wrapped_secret_key": b64::encode(&[3; 72]), "recovery": recovery}))
        ),
        format!(
            "{:?}",
            parse::<crate::auth::LoginRequest>(serde_json::json!({
            "email": "a@example.test", "auth_key": key}))
        ),
        format!(
            "{:?}",
            parse::<crate::auth::RefreshRequest>(serde_json::json!({
            "refresh_token": TOKEN}))
        ),
        format!(
            "{:?}",
            parse::<crate::accounts::ChangePasswordRequest>(serde_json::json!({
            "current_auth_key": key, "recovery_token": TOKEN, "kdf": kdf, "auth_key": key,
            "wrapped_account_key": b64::encode(&[2; 72])}))
        ),
        format!(
            "{:?}",
            parse::<crate::accounts::SetRecoveryRequest>(serde_json::json!({
            "current_auth_key": key, "recovery": recovery}))
        ),
        format!(
            "{:?}",
            parse::<crate::accounts::RecoverRequest>(serde_json::json!({
            "email": "a@example.test", "recovery_auth_key": key}))
        ),
        format!(
            "{:?}",
            parse::<crate::accounts::RotateRequest>(serde_json::json!({
            "current_auth_key": key, "public_key": b64::encode(&[9; 32]), "key_version": 2,
            "wrapped_secret_key": b64::encode(&[3; 72])}))
        ),
        format!(
            "{:?}",
            parse::<crate::accounts::DeleteRequest>(serde_json::json!({
            "current_auth_key": key}))
        ),
    ];
    for text in &printed {
        assert_clean("a request", text);
    }
}

#[test]
fn responses_print_no_secret() {
    let printed = [
        format!(
            "{:?}",
            crate::auth::TokenPair {
                access_token: TOKEN.into(),
                refresh_token: TOKEN.into(),
                expires_in: 900,
            }
        ),
        format!(
            "{:?}",
            crate::accounts::RecoverResponse {
                recovery_token: TOKEN.into(),
                wrapped_account_key: String::new(),
            }
        ),
    ];
    for text in &printed {
        assert!(text.contains("redacted"), "{text}");
        assert_clean("a response", text);
    }
}

#[test]
fn a_login_on_its_way_to_the_writer_prints_no_secret() {
    // SHA-256 of the right auth_key is the stored auth hash itself.
    let login = crate::store::NewSession {
        email: "a@example.test".into(),
        presented: SECRET.to_vec().into(),
        device_name: None,
        refresh_hash: vec![1; 32],
        now: 0,
        expires_at: 0,
    };
    let text = format!("{login:?}");
    assert!(text.contains("redacted"), "{text}");
    assert_clean("a login job", &text);
}

#[tokio::test]
async fn the_state_prints_no_secret() {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("temp dir: {e}"),
    };
    let mut args = ServeArgs::defaults();
    let path = dir.path().join("redaction.db");
    args.database = format!("sqlite://{}", path.display()).into();
    let hex: String = SECRET.iter().map(|b| format!("{b:02x}")).collect();
    args.jwt_secret = HexSecret::parse(&hex).ok();
    let store = match Store::connect(args.database.as_str(), 1).await {
        Ok(s) => s,
        Err(e) => panic!("store: {e:#}"),
    };
    let state = match AppState::with_store(args, store).await {
        Ok(s) => s,
        Err(e) => panic!("state: {e:#}"),
    };
    assert_clean("the state", &format!("{state:?}"));
    assert_clean("the state", &format!("{state:#?}"));
    // A database URL's password does not print either.
    let mut args = ServeArgs::defaults();
    args.database = format!("postgres://app:{PASSWORD}@db.internal/sealpost").into();
    assert_clean("the configuration", &format!("{args:?}"));
    state.store.close().await;
}
