//! Each check of §3.3 on envelopes this crate makes itself: the exact error, for cases the
//! libsodium vectors do not cover (duplicate keys, unknown types, odd field spellings).

#![allow(clippy::unwrap_used)] // a test's panic is its failure report

use sealpost_crypto::envelope::{seal_bytes, seal_padded};
use sealpost_crypto::{open, open_sender_copy, Error, KeyPair, UnsupportedPayload};
use uuid::Uuid;

const NOW: u64 = 1_795_780_800_123;
const A: &str = "0192f0c8-6e5a-7cc1-9d3b-5b1f2a3c4d5e";
const B: &str = "0192f0c8-6e5a-7cc1-9d3b-5b1f2a3c4d5f";
const ID: &str = "7d8a0c2e-1f3b-4c5d-8e9f-0a1b2c3d4e5f";

struct World {
    alice: KeyPair,
    bob: KeyPair,
    a: Uuid,
    b: Uuid,
}

fn world() -> World {
    World {
        alice: KeyPair::generate(),
        bob: KeyPair::generate(),
        a: Uuid::parse_str(A).unwrap(),
        b: Uuid::parse_str(B).unwrap(),
    }
}

fn json(extra: &str) -> String {
    format!(
        r#"{{"v":1,"id":"{ID}","from":"{A}","to":"{B}","ts":{NOW},"type":"text","body":"hi"{extra}}}"#
    )
}

fn open_json(w: &World, text: &str) -> Result<sealpost_crypto::Payload, Error> {
    let ct = seal_bytes(text.as_bytes(), w.bob.public(), &w.alice);
    open(&ct, &w.bob, w.b, w.a, w.alice.public(), NOW)
}

#[test]
fn valid_payload_with_unknown_fields_opens() {
    let w = world();
    let p = open_json(&w, &json(r#","future":{"nested":[1,2,{"x":null}]}"#)).unwrap();
    assert_eq!((p.body.as_str(), p.ts, p.from, p.to), ("hi", NOW, w.a, w.b));
}

#[test]
fn malformed_payloads() {
    let w = world();
    let cases = [
        json(r#","body":"again""#),                 // duplicate key at the top
        json(r#","x":{"k":1,"k":2}"#),              // duplicate key nested
        json("").replace(r#""v":1"#, r#""v":2"#),   // unknown version
        json("").replace(r#""v":1"#, r#""v":1.0"#), // not the integer 1
        json("").replace(r#""v":1,"#, ""),          // no version
        json("").replace(r#""body":"hi""#, r#""body":5"#), // text without a string body
        json("").replace(r#","body":"hi""#, ""),    // text without a body
        json("").replace(&format!("{NOW}"), "-1"),  // negative ts
        json("").replace(&format!("{NOW}"), r#""1""#), // ts as a string
        json("").replace(ID, &ID.to_uppercase()),   // non-canonical uuid
        json("").replace(ID, "not-a-uuid"),
        json("").replace(&format!("{NOW}"), &format!("{}", NOW + 5 * 60 * 1000 + 1)),
        "[1,2,3]".to_owned(),
        "null".to_owned(),
        format!("{} trailing", json("")),
    ];
    for text in cases {
        assert_eq!(open_json(&w, &text), Err(Error::Malformed), "{text}");
    }
    // Exactly five minutes ahead is still fine.
    let edge = json("").replace(&format!("{NOW}"), &format!("{}", NOW + 5 * 60 * 1000));
    assert!(open_json(&w, &edge).is_ok());
}

#[test]
fn invalid_utf8_and_padding_are_malformed() {
    let w = world();
    let mut bytes = json("").into_bytes();
    bytes[60] = 0xff;
    assert_eq!(open_json_bytes(&w, &bytes), Err(Error::Malformed));
    let mut padded = json("").into_bytes();
    padded.resize(256, 0); // zeros without the 0x80 marker
    let ct = seal_padded(&padded, w.bob.public(), &w.alice);
    assert_eq!(
        open(&ct, &w.bob, w.b, w.a, w.alice.public(), NOW),
        Err(Error::Malformed)
    );
    let ct = seal_padded(&[0x80; 100], w.bob.public(), &w.alice); // not a whole block
    assert_eq!(
        open(&ct, &w.bob, w.b, w.a, w.alice.public(), NOW),
        Err(Error::Malformed)
    );
}

fn open_json_bytes(w: &World, bytes: &[u8]) -> Result<sealpost_crypto::Payload, Error> {
    let ct = seal_bytes(bytes, w.bob.public(), &w.alice);
    open(&ct, &w.bob, w.b, w.a, w.alice.public(), NOW)
}

#[test]
fn unsupported_type_keeps_its_metadata() {
    let w = world();
    let text = json("").replace(
        r#""type":"text","body":"hi""#,
        r#""type":"image","blob":{"n":1}"#,
    );
    let expected = UnsupportedPayload {
        id: Uuid::parse_str(ID).unwrap(),
        from: w.a,
        to: w.b,
        ts: NOW,
        kind: "image".to_owned(),
    };
    assert_eq!(
        open_json(&w, &text),
        Err(Error::UnsupportedType(Box::new(expected)))
    );
    // An unknown type is still checked like any payload first.
    let forged = text.replace(&format!(r#""from":"{A}""#), &format!(r#""from":"{B}""#));
    assert_eq!(open_json(&w, &forged), Err(Error::Forged));
}

#[test]
fn wrong_parties() {
    let w = world();
    let mallory = KeyPair::generate();
    let ct = seal_bytes(json("").as_bytes(), w.bob.public(), &w.alice);
    // The claimed sender's key does not match the inner box.
    assert_eq!(
        open(&ct, &w.bob, w.b, w.a, mallory.public(), NOW),
        Err(Error::Forged)
    );
    // The server names another sender than the payload does.
    assert_eq!(
        open(&ct, &w.bob, w.b, w.b, w.alice.public(), NOW),
        Err(Error::Forged)
    );
    // Opened as another user id.
    assert_eq!(
        open(&ct, &w.bob, w.a, w.a, w.alice.public(), NOW),
        Err(Error::NotForMe)
    );
    // Another key pair.
    assert_eq!(
        open(&ct, &mallory, w.b, w.a, w.alice.public(), NOW),
        Err(Error::NotForMe)
    );
    // Too short to be a sealed box, or empty.
    assert_eq!(
        open(&ct[..47], &w.bob, w.b, w.a, w.alice.public(), NOW),
        Err(Error::NotForMe)
    );
    assert_eq!(
        open(&[], &w.bob, w.b, w.a, w.alice.public(), NOW),
        Err(Error::NotForMe)
    );
}

#[test]
fn sender_copy_checks() {
    let w = world();
    let copy = seal_bytes(json("").as_bytes(), w.alice.public(), &w.alice);
    assert!(open_sender_copy(&copy, &w.alice, w.a, w.b, NOW).is_ok());
    // The entry's `to` must be the payload's.
    assert_eq!(
        open_sender_copy(&copy, &w.alice, w.a, w.a, NOW),
        Err(Error::NotForMe)
    );
    // `from` must be me.
    assert_eq!(
        open_sender_copy(&copy, &w.alice, w.b, w.b, NOW),
        Err(Error::Forged)
    );
    // A copy boxed by someone else's key, though sealed to me.
    let fake = seal_bytes(json("").as_bytes(), w.alice.public(), &w.bob);
    assert_eq!(
        open_sender_copy(&fake, &w.alice, w.a, w.b, NOW),
        Err(Error::Forged)
    );
}
