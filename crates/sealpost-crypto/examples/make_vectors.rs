//! Prints JSON vectors made by this crate, for `interop/` to check with real libsodium (PyNaCl and
//! libsodium-wrappers-sumo): envelopes to open or refuse, wrapped keys, KDF outputs, recovery keys,
//! padding, fingerprints, base64url and refused public keys.
//!
//! Run: `cargo run -q --release -p sealpost-crypto --example make_vectors > rust-vectors.json`.
//! Everything is random but the layout; envelope `ts` is the current time, so check soon after.

#![allow(clippy::unwrap_used)] // a vector generator's panic is its error report

use std::time::{SystemTime, UNIX_EPOCH};

use blake2::digest::consts::U24;
use blake2::{Blake2b, Digest};
use crypto_box::aead::Aead;
use crypto_box::SalsaBox;
use curve25519_dalek::constants::EIGHT_TORSION;
use curve25519_dalek::MontgomeryPoint;
use sealpost_crypto::envelope::{
    inner_with_nonce, pad, seal_bytes, seal_inner, seal_padded, sealed_len,
};
use sealpost_crypto::{
    b64, derive, fingerprint_digits, open, open_sender_copy, safety_number, seal, seal_sender_copy,
    AccountKey, Error, KdfParams, KeyPair, Payload, PublicKey, RecoveryKey,
};
use serde_json::{json, Value};
use uuid::Uuid;

struct Party {
    name: &'static str,
    id: Uuid,
    keys: KeyPair,
}

impl Party {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            id: Uuid::new_v4(),
            keys: KeyPair::generate(),
        }
    }

    fn json(&self) -> Value {
        json!({
            "user_id": self.id.to_string(),
            "public_key": self.keys.public().to_base64(),
            "secret_key": b64::encode(self.keys.secret().expose_secret()),
        })
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    // The crate's own key generator is the only randomness source the example needs.
    let mut out = [0u8; N];
    for chunk in out.chunks_mut(32) {
        let k = KeyPair::generate();
        chunk.copy_from_slice(&k.secret().expose_secret()[..chunk.len()]);
    }
    out
}

/// `crypto_box_seal(inner, recipient)` with a chosen ephemeral public key `epk`, boxed under
/// `crypto_box_beforenm(recipient, ephemeral_secret)`, which is what libsodium computes when opening
/// if `epk` differs from `ephemeral_secret`'s public key only by a component of small order, or is
/// of small order itself (an all-zero shared secret, with `ephemeral_secret` any key).
fn sealed_with_ephemeral(
    inner: &[u8],
    epk: [u8; 32],
    ephemeral_secret: &KeyPair,
    recipient: &PublicKey,
) -> Vec<u8> {
    let nonce = Blake2b::<U24>::new()
        .chain_update(epk)
        .chain_update(recipient.as_bytes())
        .finalize();
    let their_public = if PublicKey::from_bytes(&epk).is_err() {
        crypto_box::PublicKey::from(epk)
    } else {
        crypto_box::PublicKey::from(*recipient.as_bytes())
    };
    let secret = crypto_box::SecretKey::from(*ephemeral_secret.secret().expose_secret());
    let boxed = SalsaBox::new(&their_public, &secret)
        .encrypt(&nonce, inner)
        .unwrap();
    [epk.as_slice(), &boxed].concat()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn payload_json(id: &str, from: Uuid, to: Uuid, ts: u64, tail: &str) -> String {
    format!(r#"{{"v":1,"id":"{id}","from":"{from}","to":"{to}","ts":{ts}{tail}}}"#)
}

/// What this crate answers for an entry, as the name the vectors use.
fn rust_opens(ct: &[u8], opener: &Party, from: &Party, to: Uuid, now_ms: u64) -> &'static str {
    let result = if from.id == opener.id {
        open_sender_copy(ct, &opener.keys, opener.id, to, now_ms)
    } else {
        open(
            ct,
            &opener.keys,
            opener.id,
            from.id,
            from.keys.public(),
            now_ms,
        )
    };
    match result {
        Ok(_) => "ok",
        Err(Error::NotForMe) => "NotForMe",
        Err(Error::Forged) => "Forged",
        Err(Error::Malformed) => "Malformed",
        Err(Error::UnsupportedType(_)) => "UnsupportedType",
        Err(_) => "other",
    }
}

fn main() {
    let now_ms = u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let alice = Party::new("alice");
    let bob = Party::new("bob");
    let mallory = Party::new("mallory");

    let mut envelopes = Vec::new();
    // One entry: the ciphertext, who opens it, the entry's from/to and sender key as the server
    // would give them, and what opening must answer ("ok" with the payload, or an error name).
    let mut add = |name: &str,
                   ct: &[u8],
                   opener: &Party,
                   from: &Party,
                   to: Uuid,
                   expect: &str,
                   payload: Option<&str>| {
        let rust = rust_opens(ct, opener, from, to, now_ms);
        assert_eq!(
            rust, expect,
            "{name}: this crate disagrees with its own vector"
        );
        envelopes.push(json!({
            "name": name,
            "opened_by": opener.name,
            "from": from.id.to_string(),
            "to": to.to_string(),
            "sender": from.name,
            "ciphertext": b64::encode(ct),
            "expect": expect,
            "payload_utf8": payload,
        }));
    };

    let hello = Payload::text(alice.id, bob.id, now_ms, "Hello, Bob!");
    let hello_json = hello.to_json();
    let bodies: Vec<(&str, String)> = vec![
        ("hello", "Hello, Bob!".to_owned()),
        ("empty_body", String::new()),
        ("unicode", "ünïcödé ✉️ 你好 Å e\u{301}".to_owned()),
        (
            "json_escapes",
            "quote \" backslash \\ newline \n tab \t nul \u{0} ls \u{2028} </script>".to_owned(),
        ),
        ("large", "x".repeat(10_000)),
    ];
    for (name, body) in &bodies {
        let p = Payload::text(alice.id, bob.id, now_ms, body.clone());
        let ct = seal(&p, bob.keys.public(), &alice.keys);
        add(name, &ct, &bob, &alice, bob.id, "ok", Some(&p.to_json()));
    }
    // Payload sizes at block boundaries, up to the largest under the default 65,536-byte limit.
    for target in [255usize, 256, 257, 65_279] {
        let empty = Payload::text(alice.id, bob.id, now_ms, "").to_json().len();
        let p = Payload::text(alice.id, bob.id, now_ms, "y".repeat(target - empty));
        assert_eq!(p.to_json().len(), target);
        let ct = seal(&p, bob.keys.public(), &alice.keys);
        assert_eq!(ct.len(), sealed_len(target));
        add(
            &format!("payload_of_{target}_bytes"),
            &ct,
            &bob,
            &alice,
            bob.id,
            "ok",
            Some(&p.to_json()),
        );
    }
    let id = hello.id.to_string();
    let text_tail = r#","type":"text","body":"hi""#;
    let raw_ok = [
        (
            "unknown_fields_ignored",
            payload_json(
                &id,
                alice.id,
                bob.id,
                now_ms,
                &format!(r#"{text_tail},"x":{{"y":[1,{{"z":null}}]}}"#),
            ),
        ),
        (
            "keys_in_another_order",
            format!(
                r#"{{"body":"hi","type":"text","ts":{now_ms},"to":"{}","from":"{}","id":"{id}","v":1}}"#,
                bob.id, alice.id
            ),
        ),
        (
            "escaped_key_names",
            payload_json(
                &id,
                alice.id,
                bob.id,
                now_ms,
                r#","\u0074ype":"text","body":"hi""#,
            ),
        ),
    ];
    for (name, text) in &raw_ok {
        let ct = seal_bytes(text.as_bytes(), bob.keys.public(), &alice.keys);
        add(name, &ct, &bob, &alice, bob.id, "ok", Some(text));
    }
    let copy = seal_sender_copy(&hello, &alice.keys);
    add(
        "sender_copy",
        &copy,
        &alice,
        &alice,
        bob.id,
        "ok",
        Some(&hello_json),
    );
    add(
        "sender_copy_wrong_entry_to",
        &copy,
        &alice,
        &alice,
        mallory.id,
        "NotForMe",
        None,
    );
    let note = Payload::text(alice.id, alice.id, now_ms, "note to self");
    let ct = seal(&note, alice.keys.public(), &alice.keys);
    add(
        "note_to_self",
        &ct,
        &alice,
        &alice,
        alice.id,
        "ok",
        Some(&note.to_json()),
    );

    // Tampering with the sealed box: every flip fails at step 1.
    let ct = seal(&hello, bob.keys.public(), &alice.keys);
    for (label, index, bit) in [
        ("epk_first", 0usize, 0u8),
        ("epk_top_bit", 31, 7),
        ("tag", 40, 3),
        ("inner_nonce", 60, 0),
        ("middle", 200, 5),
        ("last", ct.len() - 1, 7),
    ] {
        let mut bad = ct.clone();
        bad[index] ^= 1 << bit;
        add(
            &format!("flipped_{label}"),
            &bad,
            &bob,
            &alice,
            bob.id,
            "NotForMe",
            None,
        );
    }
    add(
        "truncated",
        &ct[..ct.len() - 1],
        &bob,
        &alice,
        bob.id,
        "NotForMe",
        None,
    );
    let mut longer = ct.clone();
    longer.push(0);
    add(
        "one_byte_appended",
        &longer,
        &bob,
        &alice,
        bob.id,
        "NotForMe",
        None,
    );
    add("empty", &[], &bob, &alice, bob.id, "NotForMe", None);
    let mut zero_epk = ct.clone();
    zero_epk[..32].fill(0);
    add(
        "small_order_ephemeral_key",
        &zero_epk,
        &bob,
        &alice,
        bob.id,
        "NotForMe",
        None,
    );
    // Sealed boxes that authenticate around a valid inner box, with an ephemeral key libsodium
    // treats specially: of small order (refused), and with a small-order component (opened; the
    // clamped scalar drops that component).
    let inner = inner_with_nonce(
        &pad(hello_json.as_bytes()),
        bob.keys.public(),
        &alice.keys,
        &random_bytes(),
    );
    let mut p_as_zero = [0xffu8; 32]; // p, a non-canonical encoding of the point u = 0
    p_as_zero[0] = 0xed;
    p_as_zero[31] = 0x7f;
    add(
        "small_order_ephemeral_key_authentic",
        &sealed_with_ephemeral(&inner, p_as_zero, &KeyPair::generate(), bob.keys.public()),
        &bob,
        &alice,
        bob.id,
        "NotForMe",
        None,
    );
    let ephemeral = KeyPair::generate();
    for (t, torsion) in EIGHT_TORSION.iter().enumerate().skip(1) {
        let point = MontgomeryPoint(*ephemeral.public().as_bytes())
            .to_edwards(0)
            .unwrap();
        add(
            &format!("ephemeral_key_with_torsion_{t}"),
            &sealed_with_ephemeral(
                &inner,
                (point + torsion).to_montgomery().0,
                &ephemeral,
                bob.keys.public(),
            ),
            &bob,
            &alice,
            bob.id,
            "ok",
            Some(&hello_json),
        );
    }
    add(
        "sealed_to_mallory",
        &seal(&hello, mallory.keys.public(), &alice.keys),
        &bob,
        &alice,
        bob.id,
        "NotForMe",
        None,
    );
    add(
        "inner_box_by_mallory_claiming_alice",
        &seal(&hello, bob.keys.public(), &mallory.keys),
        &bob,
        &alice,
        bob.id,
        "Forged",
        None,
    );
    add(
        "inner_too_short",
        &seal_inner(&[7u8; 39], bob.keys.public()),
        &bob,
        &alice,
        bob.id,
        "Forged",
        None,
    );
    let mut from_mallory = hello.clone();
    from_mallory.from = mallory.id;
    add(
        "payload_from_mismatch",
        &seal(&from_mallory, bob.keys.public(), &alice.keys),
        &bob,
        &alice,
        bob.id,
        "Forged",
        None,
    );
    let mut to_mallory = hello.clone();
    to_mallory.to = mallory.id;
    add(
        "payload_to_someone_else",
        &seal(&to_mallory, bob.keys.public(), &alice.keys),
        &bob,
        &alice,
        bob.id,
        "NotForMe",
        None,
    );
    add(
        "sender_copy_opened_as_received",
        &copy,
        &alice,
        &bob,
        alice.id,
        "Forged",
        None,
    );

    let ok_text = payload_json(&id, alice.id, bob.id, now_ms, text_tail);
    let far = payload_json(&id, alice.id, bob.id, 4_102_444_800_000, text_tail);
    let malformed: Vec<(&str, Vec<u8>)> = vec![
        (
            "version_2",
            ok_text.replacen(r#""v":1"#, r#""v":2"#, 1).into_bytes(),
        ),
        (
            "version_1_point_0",
            ok_text.replacen(r#""v":1"#, r#""v":1.0"#, 1).into_bytes(),
        ),
        (
            "version_missing",
            ok_text.replacen(r#""v":1,"#, "", 1).into_bytes(),
        ),
        ("far_future_ts", far.into_bytes()),
        (
            "ts_as_string",
            ok_text
                .replacen(&format!("{now_ms}"), &format!(r#""{now_ms}""#), 1)
                .into_bytes(),
        ),
        (
            "ts_negative",
            ok_text.replacen(&format!("{now_ms}"), "-1", 1).into_bytes(),
        ),
        (
            "ts_fraction",
            ok_text
                .replacen(&format!("{now_ms}"), &format!("{now_ms}.5"), 1)
                .into_bytes(),
        ),
        ("not_json", b"Hello, Bob!".to_vec()),
        ("json_array", b"[1,2,3]".to_vec()),
        ("trailing_garbage", format!("{ok_text} x").into_bytes()),
        (
            "duplicate_key_top_level",
            format!("{}{}", &ok_text[..ok_text.len() - 1], r#","body":"again"}"#).into_bytes(),
        ),
        (
            "duplicate_key_nested",
            payload_json(
                &id,
                alice.id,
                bob.id,
                now_ms,
                &format!(r#"{text_tail},"x":{{"k":1,"k":2}}"#),
            )
            .into_bytes(),
        ),
        (
            "duplicate_key_escaped",
            payload_json(
                &id,
                alice.id,
                bob.id,
                now_ms,
                r#","type":"text","body":"hi","b\u006fdy":"x""#,
            )
            .into_bytes(),
        ),
        (
            "uppercase_uuid",
            ok_text.replacen(&id, &id.to_uppercase(), 1).into_bytes(),
        ),
        (
            "body_not_a_string",
            payload_json(&id, alice.id, bob.id, now_ms, r#","type":"text","body":5"#).into_bytes(),
        ),
        (
            "body_missing",
            payload_json(&id, alice.id, bob.id, now_ms, r#","type":"text""#).into_bytes(),
        ),
        (
            "type_missing",
            payload_json(&id, alice.id, bob.id, now_ms, r#","body":"hi""#).into_bytes(),
        ),
        ("invalid_utf8", {
            let mut b = ok_text.clone().into_bytes();
            let at = b.len() - 3;
            b[at] = 0xff;
            b
        }),
    ];
    for (name, bytes) in &malformed {
        add(
            name,
            &seal_bytes(bytes, bob.keys.public(), &alice.keys),
            &bob,
            &alice,
            bob.id,
            "Malformed",
            None,
        );
    }
    let mut zeros = ok_text.clone().into_bytes();
    zeros.resize(256, 0);
    add(
        "bad_padding_no_marker",
        &seal_padded(&zeros, bob.keys.public(), &alice.keys),
        &bob,
        &alice,
        bob.id,
        "Malformed",
        None,
    );
    let mut not_block = pad(ok_text.as_bytes());
    not_block.push(0);
    add(
        "bad_padding_not_a_block",
        &seal_padded(&not_block, bob.keys.public(), &alice.keys),
        &bob,
        &alice,
        bob.id,
        "Malformed",
        None,
    );
    let image = payload_json(
        &id,
        alice.id,
        bob.id,
        now_ms,
        r#","type":"image","blob":"AAAA""#,
    );
    add(
        "unsupported_type",
        &seal_bytes(image.as_bytes(), bob.keys.public(), &alice.keys),
        &bob,
        &alice,
        bob.id,
        "UnsupportedType",
        Some(&image),
    );

    // The inner box with a fixed nonce reproduces exactly.
    let nonce: [u8; 24] = random_bytes();
    let padded = pad(hello_json.as_bytes());
    let deterministic_inner = json!({
        "payload_utf8": hello_json, "padded_hex": hex(&padded), "nonce": b64::encode(&nonce),
        "inner": b64::encode(&inner_with_nonce(&padded, bob.keys.public(), &alice.keys, &nonce)),
        "note": "inner = nonce || crypto_box_easy(padded, nonce, bob_pk, alice_sk)",
    });

    // §2.1 at INTERACTIVE, with random salts.
    let passwords = [
        "correct horse battery staple",
        "pässwörd",
        "pa\u{308}sswo\u{308}rd",
        "",
        "\u{212b}ngström 🔐 ключ 密码",
        &"long ".repeat(200),
    ];
    let mut kdf = Vec::new();
    for password in passwords {
        let params = KdfParams::interactive();
        let (wrap_key, auth_key) = derive(password, &params).unwrap();
        kdf.push(json!({
            "password": password, "salt": params.salt_base64(), "opslimit": params.opslimit, "memlimit": params.memlimit,
            "wrap_key": b64::encode(wrap_key.expose_secret()), "auth_key": auth_key.to_base64(),
        }));
    }
    let refused_kdf = [
        json!({"alg": "argon2i13", "salt": b64::encode(&[1u8; 16]), "opslimit": 2, "memlimit": 67_108_864}),
        json!({"alg": "argon2id13", "salt": b64::encode(&[1u8; 15]), "opslimit": 2, "memlimit": 67_108_864}),
        json!({"alg": "argon2id13", "salt": b64::encode(&[1u8; 16]), "opslimit": 1, "memlimit": 67_108_864}),
        json!({"alg": "argon2id13", "salt": b64::encode(&[1u8; 16]), "opslimit": 11, "memlimit": 67_108_864}),
        json!({"alg": "argon2id13", "salt": b64::encode(&[1u8; 16]), "opslimit": 2, "memlimit": 67_108_863}),
        json!({"alg": "argon2id13", "salt": b64::encode(&[1u8; 16]), "opslimit": 2, "memlimit": 1_073_741_825u64}),
    ];
    for case in &refused_kdf {
        assert!(
            serde_json::from_value::<KdfParams>(case.clone()).is_err(),
            "{case}"
        );
    }

    // §2.2: account key under the wrap key, secret key under the account key.
    let params = KdfParams::interactive();
    let password = "correct horse battery staple";
    let (wrap_key, auth_key) = derive(password, &params).unwrap();
    let account_key = AccountKey::generate();
    let fixed: [u8; 24] = random_bytes();
    let wrap = json!({
        "password": password, "salt": params.salt_base64(), "opslimit": params.opslimit, "memlimit": params.memlimit,
        "auth_key": auth_key.to_base64(), "account_key": b64::encode(account_key.expose_secret()),
        "wrapped_account_key": b64::encode(&account_key.wrap(&wrap_key)),
        "nonce": b64::encode(&fixed),
        "wrapped_account_key_with_nonce": b64::encode(&account_key.wrap_with_nonce(&wrap_key, &fixed)),
        "secret_key": b64::encode(alice.keys.secret().expose_secret()), "public_key": alice.keys.public().to_base64(),
        "wrapped_secret_key": b64::encode(&account_key.wrap_secret_key(alice.keys.secret())),
        "wrapped_secret_key_with_nonce": b64::encode(&account_key.wrap_secret_key_with_nonce(alice.keys.secret(), &fixed)),
    });

    // §2.3
    let mut recovery = Vec::new();
    for _ in 0..4 {
        let key = RecoveryKey::generate();
        let text = key.to_text().to_string();
        let mut typos = vec![
            text[..text.len() - 5].to_owned(),
            format!("{text}-0000"),
            text.replacen('-', "U", 1),
        ];
        let mut chars: Vec<char> = text.chars().collect();
        chars[0] = if chars[0] == 'Z' { 'Y' } else { 'Z' };
        typos.push(chars.into_iter().collect());
        typos.retain(|t| RecoveryKey::parse(t).is_err());
        recovery.push(json!({
            "recovery_key": b64::encode(key.expose_secret()), "text": text,
            "text_lowercase_with_o_and_l": text.to_lowercase().replace('0', "o").replace('1', "l"),
            "typos": typos,
            "recovery_wrap_key": b64::encode(key.wrap_key().expose_secret()),
            "recovery_auth_key": key.auth_key().to_base64(),
            "account_key": b64::encode(account_key.expose_secret()),
            "recovery_wrapped": b64::encode(&key.wrap_account_key(&account_key)),
        }));
    }

    let padding: Vec<Value> = [0usize, 1, 100, 255, 256, 257, 511, 512, 1000]
        .iter()
        .map(|&n| {
            let data: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
            json!({"unpadded_hex": hex(&data), "padded_hex": hex(&pad(&data))})
        })
        .collect();

    let fingerprints: Vec<Value> = (0..4)
        .map(|_| {
            let (a, b) = (Party::new("a"), Party::new("b"));
            json!({
                "a_id": a.id.to_string(), "a_public_key": a.keys.public().to_base64(),
                "b_id": b.id.to_string(), "b_public_key": b.keys.public().to_base64(),
                "a_digits": fingerprint_digits(a.id, a.keys.public()),
                "b_digits": fingerprint_digits(b.id, b.keys.public()),
                "safety_number": safety_number(a.id, a.keys.public(), b.id, b.keys.public()),
            })
        })
        .collect();

    let base64url: Vec<Value> = (0..12usize)
        .map(|n| {
            let data: [u8; 40] = random_bytes();
            json!({"hex": hex(&data[..n * 3 % 40]), "text": b64::encode(&data[..n * 3 % 40])})
        })
        .collect();

    let mut refused_keys = Vec::new();
    let small_order = [
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    ];
    for text in small_order {
        let mut raw: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        for _ in 0..2 {
            assert!(PublicKey::from_bytes(&raw).is_err());
            refused_keys.push(hex(&raw));
            raw[31] |= 0x80;
        }
    }
    let accepted_keys: Vec<String> = (0..4)
        .map(|_| KeyPair::generate().public().to_base64())
        .collect();

    let out = json!({
        "about": "Made by sealpost-crypto (Rust) for interop/ to check with real libsodium.",
        "now_ms": now_ms,
        "parties": {"alice": alice.json(), "bob": bob.json(), "mallory": mallory.json()},
        "envelopes": envelopes,
        "deterministic_inner": deterministic_inner,
        "kdf": kdf,
        "refused_kdf": refused_kdf,
        "wrap": wrap,
        "recovery": recovery,
        "padding": padding,
        "fingerprints": fingerprints,
        "base64url": base64url,
        "refused_public_keys_hex": refused_keys,
        "accepted_public_keys": accepted_keys,
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
}
