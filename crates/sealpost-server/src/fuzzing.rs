//! Entry points for the fuzz targets in `fuzz/` (the `fuzzing` feature, off by default). Each is
//! a thin, pure call into the code the server runs, with the properties that must hold whatever
//! the input: nothing here is a second implementation of what it checks, except the HMAC that
//! proves an accepted token was signed with the key.

use std::sync::LazyLock;

use axum::extract::ws::Message;
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::Sha256;

use sealpost_crypto::b64;

use crate::error::{ApiError, ApiResult};
use crate::extract::{self, Fields};
use crate::state::Limits;
use crate::tokens::{Claims, JwtKey};
use crate::{accounts, auth, messages, stream, validate};

/// The fixed signing key of the targets (its seeds in `fuzz/corpus/` are signed with it).
pub const KEY: &[u8] = b"sealpost fuzzing key, never a real one";
/// The fixed clock, in Unix seconds.
pub const NOW: i64 = 1_795_780_800;

static JWT: LazyLock<JwtKey> = LazyLock::new(|| JwtKey::new(KEY.to_vec()));
static OTHER: LazyLock<JwtKey> = LazyLock::new(|| JwtKey::new(b"another key".to_vec()));
static LIMITS: LazyLock<Limits> = LazyLock::new(|| Limits::new(65_536));

/// Every request body: the first byte picks the route, the rest is its body, read as
/// `JsonBody` reads it and then checked field by field as the route's handler checks it. A body
/// is refused with 400 or 413, never a panic; one that gets through has every field checked.
pub fn body(data: &[u8]) {
    let Some((&route, json)) = data.split_first() else {
        return;
    };
    let outcome = match route % 10 {
        0 => register(json),
        1 => change_password(json),
        2 => set_recovery(json),
        3 => recover(json),
        4 => rotate(json),
        5 => delete(json),
        6 => extract_body::<auth::PreloginRequest>(json).and_then(|v| email(&v)),
        7 => login(json),
        8 => extract_body::<auth::RefreshRequest>(json).map(drop),
        _ => send(json),
    };
    if let Err(e) = outcome {
        let status = e.status().as_u16();
        assert!(matches!(status, 400 | 413), "a body answered {status}: {e}");
        plaintext_is_reported_first(json, &e);
    }
}

/// `JsonBody`'s reading of a body, and the body as JSON, to check its fields: the wire types
/// keep their fields to their own modules.
fn extract_body<T: DeserializeOwned + Fields>(json: &[u8]) -> ApiResult<Value> {
    extract::parse_json::<T>(json, LIMITS.max_ciphertext_encoded)?;
    fn has_array(value: &Value) -> bool {
        match value {
            Value::Array(_) => true,
            Value::Object(map) => map.values().any(has_array),
            _ => false,
        }
    }
    match serde_json::from_slice::<Value>(json) {
        Ok(value @ Value::Object(_)) if !has_array(&value) => Ok(value),
        other => panic!("a body was extracted that is not a JSON object of objects: {other:?}"),
    }
}

/// The text of a field that a body that parsed must have (or `""` for an absent optional one).
fn text<'a>(value: &'a Value, path: &str) -> &'a str {
    path.split('.')
        .try_fold(value, |v, name| v.get(name))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn number(value: &Value, path: &str) -> i64 {
    path.split('.')
        .try_fold(value, |v, name| v.get(name))
        .and_then(Value::as_i64)
        .unwrap_or_default()
}

fn nested<T: DeserializeOwned>(value: &Value, name: &str) -> Option<T> {
    value
        .get(name)
        .filter(|v| !v.is_null())
        .map(|v| match serde_json::from_value(v.clone()) {
            Ok(t) => t,
            Err(e) => panic!("{name} was extracted but does not parse: {e}"),
        })
}

fn email(v: &Value) -> ApiResult<()> {
    validate::email("email", text(v, "email")).map(drop)
}

fn key32(v: &Value, field: &str) -> ApiResult<()> {
    validate::bytes(field, text(v, field), 32).map(drop)
}

fn kdf(v: &Value) -> ApiResult<()> {
    nested::<validate::KdfWire>(v, "kdf").map_or(Ok(()), |k| k.check("kdf").map(drop))
}

fn recovery(v: &Value) -> ApiResult<()> {
    let Some(r) = nested::<validate::RecoveryWire>(v, "recovery") else {
        return Ok(());
    };
    let (hash, wrapped) = r.check("recovery")?;
    assert_eq!((hash.len(), wrapped.len()), (32, 72));
    Ok(())
}

fn register(json: &[u8]) -> ApiResult<()> {
    let v = extract_body::<accounts::RegisterRequest>(json)?;
    email(&v)?;
    kdf(&v)?;
    key32(&v, "auth_key")?;
    validate::wrapped("wrapped_account_key", text(&v, "wrapped_account_key"))?;
    validate::public_key("public_key", text(&v, "public_key"))?;
    validate::wrapped("wrapped_secret_key", text(&v, "wrapped_secret_key"))?;
    recovery(&v)
}

fn change_password(json: &[u8]) -> ApiResult<()> {
    let v = extract_body::<accounts::ChangePasswordRequest>(json)?;
    kdf(&v)?;
    key32(&v, "auth_key")?;
    validate::wrapped("wrapped_account_key", text(&v, "wrapped_account_key"))?;
    if v.get("current_auth_key").is_some_and(|c| !c.is_null()) {
        key32(&v, "current_auth_key")?;
    }
    Ok(())
}

fn set_recovery(json: &[u8]) -> ApiResult<()> {
    let v = extract_body::<accounts::SetRecoveryRequest>(json)?;
    key32(&v, "current_auth_key")?;
    recovery(&v)
}

fn recover(json: &[u8]) -> ApiResult<()> {
    let v = extract_body::<accounts::RecoverRequest>(json)?;
    email(&v)?;
    key32(&v, "recovery_auth_key")
}

fn rotate(json: &[u8]) -> ApiResult<()> {
    let v = extract_body::<accounts::RotateRequest>(json)?;
    key32(&v, "current_auth_key")?;
    validate::public_key("public_key", text(&v, "public_key"))?;
    validate::key_version("key_version", number(&v, "key_version"))?;
    validate::wrapped("wrapped_secret_key", text(&v, "wrapped_secret_key")).map(drop)
}

fn delete(json: &[u8]) -> ApiResult<()> {
    let v = extract_body::<accounts::DeleteRequest>(json)?;
    key32(&v, "current_auth_key")
}

fn login(json: &[u8]) -> ApiResult<()> {
    let v = extract_body::<auth::LoginRequest>(json)?;
    email(&v)?;
    key32(&v, "auth_key")
}

fn send(json: &[u8]) -> ApiResult<()> {
    let v = extract_body::<messages::SendRequest>(json)?;
    let max = LIMITS.max_ciphertext;
    let mut sealed = vec![validate::ciphertext(
        "ciphertext",
        text(&v, "ciphertext"),
        max,
    )?];
    let copy = v.get("sender_copy").is_some_and(|c| !c.is_null());
    if copy {
        let field = "sender_copy.ciphertext";
        sealed.push(validate::ciphertext(field, text(&v, field), max)?);
    }
    validate::uuid("to", text(&v, "to"))?;
    validate::key_version("key_version", number(&v, "key_version"))?;
    validate::key_version("sender_key_version", number(&v, "sender_key_version"))?;
    if copy {
        let field = "sender_copy.key_version";
        validate::key_version(field, number(&v, field))?;
    }
    for ct in sealed {
        assert!(ct.len() <= max && ct.len() >= 344 && (ct.len() - 88) % 256 == 0);
    }
    Ok(())
}

/// PROTOCOL §4: a field named `plaintext` (in the body or an object within it) is reported
/// before any other fault of a body that is JSON.
fn plaintext_is_reported_first(json: &[u8], error: &ApiError) {
    fn has_plaintext(value: &Value) -> bool {
        let Value::Object(map) = value else {
            return false;
        };
        map.iter()
            .any(|(name, inner)| name == "plaintext" || has_plaintext(inner))
    }
    let Ok(value @ Value::Object(_)) = serde_json::from_slice::<Value>(json) else {
        return;
    };
    if has_plaintext(&value) {
        let field = match error {
            ApiError::Invalid { field, .. } => field.as_deref().unwrap_or_default(),
            _ => "",
        };
        assert!(
            field == "plaintext" || field.ends_with(".plaintext"),
            "a body with plaintext was refused for {error:?}"
        );
    }
}

/// Access token verification: the first byte picks how the rest makes a token. An accepted token
/// is unexpired, says HS256 and was signed with the key; one byte changed in a token the key
/// signed, and it is refused.
pub fn jwt(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        // The token as it comes.
        0 => {
            if let Ok(token) = std::str::from_utf8(rest) {
                check_token(token);
            }
        }
        // Any header and claims (split at the first 0xff), signed with the key.
        1 => {
            let (header, claims) = match rest.iter().position(|&b| b == 0xff) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (&br#"{"alg":"HS256","typ":"JWT"}"#[..], rest),
            };
            check_token(&signed(header, claims));
        }
        // Claims from the bytes, signed by the server, then one byte of the token changed.
        _ => {
            let mut words = rest
                .chunks(8)
                .map(|c| c.iter().fold(0u64, |w, &b| (w << 8) | u64::from(b)));
            let mut word = || words.next().unwrap_or_default();
            let claims = Claims {
                sub: uuid::Uuid::from_u64_pair(word(), word()),
                sid: uuid::Uuid::from_u64_pair(word(), word()),
                iat: word() as i64,
                exp: word() as i64,
            };
            let token = JWT.sign(&claims);
            let accepted = check_token(&token);
            assert_eq!(accepted, (claims.valid_until() > NOW).then_some(claims));
            let at = word() as usize % token.len();
            let mut bytes = token.into_bytes();
            let new = (word() as u8).max(1);
            if bytes[at] != new {
                bytes[at] = new;
                let changed = String::from_utf8_lossy(&bytes);
                assert_eq!(
                    JWT.verify(&changed, NOW),
                    None,
                    "a changed token was accepted"
                );
            }
        }
    }
}

/// Verifies `token` with the fixed key, and checks an acceptance: the claims' deadline on a
/// stream does not overflow either.
fn check_token(token: &str) -> Option<Claims> {
    let claims = JWT.verify(token, NOW)?;
    assert!(claims.valid_until() > NOW);
    assert!(
        signed_with_key(token),
        "a token not signed with the key was accepted"
    );
    assert_eq!(OTHER.verify(token, NOW), None);
    stream::millis_left(claims.valid_until(), NOW.saturating_mul(1000));
    Some(claims)
}

/// `h.p.s` where `s` is HMAC-SHA256 under the key of `h.p`, and `h` says HS256: checked here
/// apart from `tokens`, so that a fault there cannot hide itself.
fn signed_with_key(token: &str) -> bool {
    let Some((signed, sig)) = token.rsplit_once('.') else {
        return false;
    };
    let Some((header, _)) = signed.split_once('.') else {
        return false;
    };
    let header: Option<Value> = b64::decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok());
    let alg = header.as_ref().and_then(|h| h.get("alg")?.as_str());
    let Ok(sig) = b64::decode(sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(KEY) else {
        return false;
    };
    mac.update(signed.as_bytes());
    alg == Some("HS256") && mac.verify_slice(&sig).is_ok()
}

fn signed(header: &[u8], claims: &[u8]) -> String {
    let mut token = format!("{}.{}", b64::encode(header), b64::encode(claims));
    if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(KEY) {
        mac.update(token.as_bytes());
        token.push('.');
        b64::encode_into(&mac.finalize().into_bytes(), &mut token);
    }
    token
}

/// The stream's first frame (PROTOCOL §4.2): the first byte picks its kind (text, binary, a
/// ping, or text repeated past the 16 KiB limit), the rest is its content. The frame either is
/// refused with 4400 or 1009, or is a text `auth` frame with `after` ≥ 0 whose token is then
/// checked as the stream checks it, up to the session's lookup in the store.
pub fn stream_first_frame(data: &[u8]) {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let frame = match kind % 4 {
        0 => Message::Text(text.to_string().into()),
        1 => Message::Binary(rest.to_vec().into()),
        2 => Message::Ping(rest.to_vec().into()),
        _ => Message::Text(text.repeat(16 * 1024 / rest.len().max(1) + 1).into()),
    };
    match stream::first_frame(&frame) {
        Ok((token, after)) => {
            let Message::Text(text) = &frame else {
                panic!("a frame that is not text was taken for an auth frame");
            };
            assert!(text.len() <= 16 * 1024 && after >= 0);
            let value: Value = match serde_json::from_str(text) {
                Ok(v) => v,
                Err(e) => panic!("an auth frame that is not JSON: {e}"),
            };
            assert_eq!(value.get("type").and_then(Value::as_str), Some("auth"));
            check_token(&token);
        }
        Err((code, _)) => {
            use sealpost_proto::close::{BAD_AUTH_FRAME, MESSAGE_TOO_BIG};
            assert!(
                matches!(code, BAD_AUTH_FRAME | MESSAGE_TOO_BIG),
                "closed with {code}"
            );
        }
    }
}
