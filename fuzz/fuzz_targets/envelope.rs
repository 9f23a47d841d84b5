//! Opening an envelope (PROTOCOL §3.3) with fixed keys: never a panic, never a payload that is
//! not Alice's to Bob, and what Alice seals Bob opens unchanged. The first byte picks what the
//! rest is: a ciphertext as a server would hand it over, a payload, padded bytes or an inner box
//! (each sealed by Alice to Bob first, so that the fuzzer reaches the checks behind the MACs), or
//! a text message for the round trip.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sealpost_crypto::envelope::{self, MAX_FUTURE_MS};
use sealpost_crypto::{open, open_sender_copy, seal, seal_sender_copy, Error, KeyPair, Payload};
use uuid::Uuid;

struct Keys {
    alice: KeyPair,
    bob: KeyPair,
}

static KEYS: LazyLock<Keys> = LazyLock::new(|| Keys {
    alice: KeyPair::from_secret_bytes([0xa1; 32]),
    bob: KeyPair::from_secret_bytes([0xb0; 32]),
});
const ALICE: Uuid = Uuid::from_u128(0xa11ce);
const BOB: Uuid = Uuid::from_u128(0xb0b);
const NOW_MS: u64 = 1_795_780_800_123;

/// Bob opens what claims to come from Alice.
fn bob_opens(ciphertext: &[u8]) -> Result<Payload, Error> {
    let k = &*KEYS;
    open(ciphertext, &k.bob, BOB, ALICE, k.alice.public(), NOW_MS)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let k = &*KEYS;
    match mode % 5 {
        // Bytes as a server hands them over: without the keys nothing opens.
        0 => {
            assert!(bob_opens(rest).is_err());
            assert!(open_sender_copy(rest, &k.bob, BOB, ALICE, NOW_MS).is_err());
        }
        // Payload bytes Alice sealed to Bob: either a checked payload from Alice to Bob, or a
        // typed error; Alice's own key does not open it, and it does not pass as Bob's own.
        1 => {
            let ct = envelope::seal_bytes(rest, k.bob.public(), &k.alice);
            assert_eq!(ct.len(), envelope::sealed_len(rest.len()));
            match bob_opens(&ct) {
                Ok(p) => {
                    assert_eq!((p.from, p.to), (ALICE, BOB));
                    assert!(p.ts <= NOW_MS + MAX_FUTURE_MS);
                }
                Err(e) => assert!(
                    matches!(
                        e,
                        Error::Forged
                            | Error::NotForMe
                            | Error::Malformed
                            | Error::UnsupportedType(_)
                    ),
                    "{e:?}"
                ),
            }
            let alice_tries = open(&ct, &k.alice, BOB, ALICE, k.alice.public(), NOW_MS);
            assert_eq!(alice_tries, Err(Error::NotForMe));
            let as_own_copy = open_sender_copy(&ct, &k.bob, BOB, ALICE, NOW_MS);
            assert_eq!(as_own_copy, Err(Error::Forged));
        }
        // Padded bytes: unpad never panics, what it accepts pads back to the same bytes, and an
        // envelope of them opens or fails with a typed error.
        2 => {
            if let Ok(unpadded) = envelope::unpad(rest) {
                assert_eq!(envelope::pad(unpadded), rest);
            }
            let ct = envelope::seal_padded(rest, k.bob.public(), &k.alice);
            if let Ok(p) = bob_opens(&ct) {
                assert_eq!((p.from, p.to), (ALICE, BOB));
            }
        }
        // Inner boxes that Alice's key did not make (too short, garbage): a forgery.
        3 => {
            let ct = envelope::seal_inner(rest, k.bob.public());
            assert_eq!(bob_opens(&ct), Err(Error::Forged));
        }
        // A text message, sealed and opened: the round trip, and Alice's sender copy.
        _ => {
            let (ts, body) = rest.split_at(rest.len().min(8));
            let mut ts_bytes = [0u8; 8];
            ts_bytes[..ts.len()].copy_from_slice(ts);
            let ts = u64::from_le_bytes(ts_bytes) % (NOW_MS + MAX_FUTURE_MS + 1);
            let payload = Payload::text(ALICE, BOB, ts, String::from_utf8_lossy(body));
            let ct = seal(&payload, k.bob.public(), &k.alice);
            assert_eq!(bob_opens(&ct).as_ref(), Ok(&payload));
            let copy = seal_sender_copy(&payload, &k.alice);
            assert_eq!(
                open_sender_copy(&copy, &k.alice, ALICE, BOB, NOW_MS).as_ref(),
                Ok(&payload)
            );
        }
    }
});
