//! Every case of `shared/vectors/protocol-v1.json` (made by PyNaCl, real libsodium): deterministic
//! outputs reproduced byte for byte, envelopes opened or refused with the expected error.
//!
//! The shared file is read when it is there; otherwise the copy in `tests/vectors/` keeps this
//! crate self-contained.

#![allow(clippy::unwrap_used)] // a test's panic is its failure report

use std::path::PathBuf;
use std::sync::OnceLock;

use sealpost_crypto::envelope::{self, inner_with_nonce, pad, unpad};
use sealpost_crypto::{
    b64, derive, fingerprint_digits, open, open_sender_copy, safety_number, AccountKey, Error,
    KdfParams, KeyPair, PublicKey, RecoveryKey,
};
use serde_json::Value;
use uuid::Uuid;

/// The payloads' `ts` is 2026-11-27; "now" a little later, so only the far-future case fails.
const NOW_MS: u64 = 1_795_780_800_123 + 60_000;

fn vectors() -> &'static Value {
    static VECTORS: OnceLock<Value> = OnceLock::new();
    VECTORS.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let shared = dir.join("../../../shared/vectors/protocol-v1.json");
        let path = if shared.exists() {
            shared
        } else {
            dir.join("tests/vectors/protocol-v1.json")
        };
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap()
    })
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("missing string {key}"))
}

fn bytes(v: &Value, key: &str) -> Vec<u8> {
    b64::decode(s(v, key)).unwrap()
}

fn arr<const N: usize>(v: &Value, key: &str) -> [u8; N] {
    b64::decode_array(s(v, key)).unwrap()
}

fn uuid(v: &Value, key: &str) -> Uuid {
    Uuid::parse_str(s(v, key)).unwrap()
}

fn kdf_params(v: &Value) -> KdfParams {
    KdfParams {
        salt: arr(v, "salt"),
        opslimit: v["opslimit"].as_u64().unwrap(),
        memlimit: v["memlimit"].as_u64().unwrap(),
    }
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn party(name: &str) -> (Uuid, KeyPair) {
    let p = &vectors()["envelopes"][name];
    let pair = KeyPair::from_secret_bytes(arr(p, "secret_key"));
    assert_eq!(
        pair.public().as_bytes(),
        &arr::<32>(p, "public_key"),
        "{name}'s public key"
    );
    (uuid(p, "user_id"), pair)
}

#[test]
fn base64url_valid_and_invalid() {
    let cases = &vectors()["base64url"];
    let valid = cases["valid"].as_object().unwrap();
    assert!(!valid.is_empty());
    for (text, hx) in valid {
        assert_eq!(
            b64::decode(text).unwrap(),
            hex(hx.as_str().unwrap()),
            "{text:?}"
        );
        assert_eq!(&b64::encode(&hex(hx.as_str().unwrap())), text);
    }
    let invalid = cases["invalid"].as_array().unwrap();
    assert!(!invalid.is_empty());
    for text in invalid {
        let text = text.as_str().unwrap();
        assert!(
            matches!(b64::decode(text), Err(Error::Base64(_))),
            "accepted {text:?}"
        );
    }
}

#[test]
fn kdf_interactive_vectors() {
    let mut seen = 0;
    for case in vectors()["kdf"].as_array().unwrap() {
        if case["slow"].as_bool() == Some(true) {
            continue;
        }
        let password = s(case, "password");
        assert_eq!(
            hex(s(case, "password_utf8_hex")),
            password.as_bytes(),
            "the vector's own bytes"
        );
        let (wrap_key, auth_key) = derive(password, &kdf_params(case)).unwrap();
        assert_eq!(
            wrap_key.expose_secret(),
            &arr::<32>(case, "wrap_key"),
            "{password:?}"
        );
        assert_eq!(auth_key.to_base64(), s(case, "auth_key"), "{password:?}");
        seen += 1;
    }
    assert_eq!(seen, 4);
}

#[test]
fn kdf_moderate_vector() {
    let case = vectors()["kdf"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["slow"].as_bool() == Some(true))
        .unwrap();
    let params = kdf_params(case);
    assert_eq!(
        (params.opslimit, params.memlimit),
        (KdfParams::OPSLIMIT_MODERATE, KdfParams::MEMLIMIT_MODERATE)
    );
    let (wrap_key, auth_key) = derive(s(case, "password"), &params).unwrap();
    assert_eq!(wrap_key.expose_secret(), &arr::<32>(case, "wrap_key"));
    assert_eq!(auth_key.to_base64(), s(case, "auth_key"));
}

#[test]
fn wrapped_keys() {
    for case in vectors()["wrap"].as_array().unwrap() {
        let (wrap_key, _) = derive(s(case, "password"), &kdf_params(case)).unwrap();
        let account_key = AccountKey::from_bytes(arr(case, "account_key"));
        let wrapped = account_key.wrap_with_nonce(&wrap_key, &arr(case, "nonce_account"));
        assert_eq!(wrapped, bytes(case, "wrapped_account_key"));
        assert_eq!(wrapped.len(), sealpost_crypto::WRAPPED_LEN);

        let secret = KeyPair::from_secret_bytes(arr(case, "secret_key"));
        assert_eq!(secret.public().as_bytes(), &arr::<32>(case, "public_key"));
        let wrapped_secret =
            account_key.wrap_secret_key_with_nonce(secret.secret(), &arr(case, "nonce_secret"));
        assert_eq!(wrapped_secret, bytes(case, "wrapped_secret_key"));

        let unwrapped = AccountKey::unwrap(&wrapped, &wrap_key).unwrap();
        assert_eq!(unwrapped, account_key);
        let pair = unwrapped
            .unwrap_key_pair(&wrapped_secret, secret.public())
            .unwrap();
        assert_eq!(pair.secret(), secret.secret());

        let (wrong, _) = derive(s(case, "wrong_password"), &kdf_params(case)).unwrap();
        assert_eq!(
            AccountKey::unwrap(&wrapped, &wrong),
            Err(Error::WrongPassword)
        );
        assert_eq!(
            AccountKey::generate().unwrap_secret_key(&wrapped_secret),
            Err(Error::CorruptWrappedKey)
        );
        let other = KeyPair::generate();
        assert_eq!(
            unwrapped
                .unwrap_key_pair(&wrapped_secret, other.public())
                .map(|_| ()),
            Err(Error::KeyPairMismatch)
        );
        assert_eq!(
            AccountKey::unwrap(&wrapped[..71], &wrap_key),
            Err(Error::CorruptWrappedKey)
        );
    }
}

#[test]
fn recovery_key() {
    let case = &vectors()["recovery"];
    let key = RecoveryKey::from_bytes(arr(case, "recovery_key"));
    assert_eq!(key.to_text().as_str(), s(case, "text"));
    assert_eq!(RecoveryKey::parse(s(case, "text")).unwrap(), key);
    assert_eq!(
        RecoveryKey::parse(s(case, "text_lowercase_with_o_for_zero")).unwrap(),
        key
    );
    let spaced = s(case, "text").replace('-', " ");
    assert_eq!(RecoveryKey::parse(&spaced).unwrap(), key);
    let typos = case["texts_with_typos"].as_array().unwrap();
    assert!(!typos.is_empty());
    for typo in typos {
        assert_eq!(
            RecoveryKey::parse(typo.as_str().unwrap()),
            Err(Error::RecoveryKeyTypo),
            "{typo}"
        );
    }
    assert_eq!(
        key.wrap_key().expose_secret(),
        &arr::<32>(case, "recovery_wrap_key")
    );
    assert_eq!(key.auth_key().to_base64(), s(case, "recovery_auth_key"));

    let account_key = AccountKey::from_bytes(arr(case, "account_key"));
    let wrapped = key.wrap_account_key_with_nonce(&account_key, &arr(case, "nonce"));
    assert_eq!(wrapped, bytes(case, "recovery_wrapped"));
    assert_eq!(key.unwrap_account_key(&wrapped).unwrap(), account_key);
    assert_eq!(
        RecoveryKey::generate().unwrap_account_key(&wrapped),
        Err(Error::WrongRecoveryKey)
    );
}

#[test]
fn padding() {
    let cases = vectors()["padding"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let len = usize::try_from(case["unpadded_len"].as_u64().unwrap()).unwrap();
        let data = vec![0x41u8; len];
        let padded = pad(&data);
        assert_eq!(padded, hex(s(case, "padded_hex")), "{len}");
        assert_eq!(unpad(&padded).unwrap(), &data[..]);
    }
}

#[test]
fn deterministic_inner_box() {
    let d = &vectors()["envelopes"]["deterministic_inner"];
    let (_, alice) = party("alice");
    let (_, bob) = party("bob");
    let padded = pad(s(d, "payload_utf8").as_bytes());
    assert_eq!(padded, hex(s(d, "padded_hex")));
    let inner = inner_with_nonce(&padded, bob.public(), &alice, &arr(d, "inner_nonce"));
    assert_eq!(inner, bytes(d, "inner"));
}

#[test]
fn envelopes_open() {
    let env = &vectors()["envelopes"];
    let (alice_id, alice) = party("alice");
    let (bob_id, bob) = party("bob");
    let cases = env["open_ok"].as_array().unwrap();
    assert!(cases.len() >= 5);
    for case in cases {
        let name = s(case, "name");
        let ct = bytes(case, "ciphertext");
        let expected: Value = serde_json::from_str(s(case, "payload_utf8")).unwrap();
        let payload = if case["opened_by"].as_str() == Some("alice") {
            assert_eq!(uuid(case, "from"), alice_id);
            let copy = open_sender_copy(&ct, &alice, alice_id, uuid(case, "to"), NOW_MS).unwrap();
            // Sealed to Alice's own key: Bob cannot open it at all.
            assert_eq!(
                open(&ct, &bob, bob_id, alice_id, alice.public(), NOW_MS),
                Err(Error::NotForMe)
            );
            copy
        } else {
            assert_eq!(uuid(case, "to"), bob_id);
            open(
                &ct,
                &bob,
                bob_id,
                uuid(case, "from"),
                alice.public(),
                NOW_MS,
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        assert_eq!(
            payload.id.to_string(),
            expected["id"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            payload.from.to_string(),
            expected["from"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            payload.to.to_string(),
            expected["to"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(payload.ts, expected["ts"].as_u64().unwrap(), "{name}");
        assert_eq!(payload.body, expected["body"].as_str().unwrap(), "{name}");
        assert_eq!(
            ct.len(),
            envelope::sealed_len(s(case, "payload_utf8").len()),
            "{name}"
        );
    }
}

#[test]
fn envelopes_must_fail() {
    let env = &vectors()["envelopes"];
    let (_, alice) = party("alice");
    let (bob_id, bob) = party("bob");
    let cases = env["must_fail"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let name = s(case, "name");
        let got = open(
            &bytes(case, "ciphertext"),
            &bob,
            bob_id,
            uuid(case, "from"),
            alice.public(),
            NOW_MS,
        );
        let err = got.expect_err(name);
        match s(case, "error") {
            "any" => {}
            "NotForMe" => assert_eq!(err, Error::NotForMe, "{name}"),
            "Forged" => assert_eq!(err, Error::Forged, "{name}"),
            "Malformed" => assert_eq!(err, Error::Malformed, "{name}"),
            other => panic!("{name}: unknown expected error {other}"),
        }
    }
}

#[test]
fn fingerprints_and_safety_number() {
    let f = &vectors()["fingerprints"];
    let mut parties = Vec::new();
    for name in ["alice", "bob"] {
        let p = &f[name];
        let key = PublicKey::from_bytes(&bytes(p, "public_key")).unwrap();
        let digits = fingerprint_digits(uuid(p, "user_id"), &key);
        assert_eq!(digits, s(p, "digits"), "{name}");
        assert_eq!(digits.len(), 30);
        parties.push((uuid(p, "user_id"), key));
    }
    let (a, b) = (&parties[0], &parties[1]);
    let expected = s(f, "safety_number_alice_bob");
    assert_eq!(safety_number(a.0, &a.1, b.0, &b.1), expected);
    assert_eq!(
        safety_number(b.0, &b.1, a.0, &a.1),
        expected,
        "order does not matter"
    );
}

#[test]
fn small_order_public_keys_are_refused() {
    let keys = vectors()["small_order_public_keys"].as_array().unwrap();
    assert!(keys.len() >= 7);
    for key in keys {
        let mut raw = hex(key.as_str().unwrap());
        assert!(
            matches!(PublicKey::from_bytes(&raw), Err(Error::InvalidPublicKey(_))),
            "{key}"
        );
        // The same points with the unused top bit set: X25519 ignores it, so must we.
        raw[31] |= 0x80;
        assert!(
            matches!(PublicKey::from_bytes(&raw), Err(Error::InvalidPublicKey(_))),
            "{key} | 0x80"
        );
        assert!(PublicKey::from_base64(&b64::encode(&raw)).is_err());
    }
}
