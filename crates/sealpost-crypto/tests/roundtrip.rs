//! Property tests: every round trip holds, and flipping any single byte of an envelope makes
//! opening fail.

#![allow(clippy::unwrap_used)] // a test's panic is its failure report

use proptest::prelude::*;
use sealpost_crypto::envelope::{pad, seal_bytes, unpad};
use sealpost_crypto::{
    b64, open, open_sender_copy, seal, seal_sender_copy, AccountKey, Error, KeyPair, Payload,
    RecoveryKey, WrapKey,
};
use std::sync::OnceLock;
use uuid::Uuid;

const NOW_MS: u64 = 1_795_780_800_123;

struct Parties {
    alice: KeyPair,
    bob: KeyPair,
    alice_id: Uuid,
    bob_id: Uuid,
}

/// Generated once: key generation is cheap, but proptest runs hundreds of cases.
fn parties() -> &'static Parties {
    static P: OnceLock<Parties> = OnceLock::new();
    P.get_or_init(|| Parties {
        alice: KeyPair::generate(),
        bob: KeyPair::generate(),
        alice_id: Uuid::from_u128(0x0192_f0c8_6e5a_7cc1_9d3b_5b1f_2a3c_4d5e),
        bob_id: Uuid::from_u128(0x0192_f0c8_6e5a_7cc1_9d3b_5b1f_2a3c_4d5f),
    })
}

/// A wrap key from the recovery path, which costs no Argon2 run.
fn wrap_key(seed: [u8; 32]) -> WrapKey {
    RecoveryKey::from_bytes(seed).wrap_key()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn seal_open_round_trip(body in ".{0,600}", ts in 0u64..=NOW_MS) {
        let p = parties();
        let payload = Payload::text(p.alice_id, p.bob_id, ts, body);
        let ct = seal(&payload, p.bob.public(), &p.alice);
        prop_assert_eq!(ct.len(), sealpost_crypto::envelope::sealed_len(payload.to_json().len()));
        prop_assert_eq!(open(&ct, &p.bob, p.bob_id, p.alice_id, p.alice.public(), NOW_MS), Ok(payload.clone()));
        let copy = seal_sender_copy(&payload, &p.alice);
        prop_assert_eq!(open_sender_copy(&copy, &p.alice, p.alice_id, p.bob_id, NOW_MS), Ok(payload));
    }

    #[test]
    fn flipping_any_byte_fails(body in ".{0,300}", index in any::<prop::sample::Index>(), bit in 0u8..8) {
        let p = parties();
        let payload = Payload::text(p.alice_id, p.bob_id, NOW_MS, body);
        let mut ct = seal(&payload, p.bob.public(), &p.alice);
        let i = index.index(ct.len());
        ct[i] ^= 1 << bit;
        prop_assert!(open(&ct, &p.bob, p.bob_id, p.alice_id, p.alice.public(), NOW_MS).is_err());
    }

    #[test]
    fn account_key_wrap_round_trip(seed in any::<[u8; 32]>(), other in any::<[u8; 32]>(), key in any::<[u8; 32]>()) {
        let account_key = AccountKey::from_bytes(key);
        let wrapped = account_key.wrap(&wrap_key(seed));
        prop_assert_eq!(wrapped.len(), 72);
        prop_assert_eq!(AccountKey::unwrap(&wrapped, &wrap_key(seed)), Ok(AccountKey::from_bytes(key)));
        if seed != other {
            prop_assert_eq!(AccountKey::unwrap(&wrapped, &wrap_key(other)), Err(Error::WrongPassword));
        }
    }

    #[test]
    fn secret_key_wrap_round_trip(key in any::<[u8; 32]>()) {
        let account_key = AccountKey::from_bytes(key);
        let pair = KeyPair::generate();
        let wrapped = account_key.wrap_secret_key(pair.secret());
        let back = account_key.unwrap_key_pair(&wrapped, pair.public());
        prop_assert!(back.is_ok());
        let mut bad = wrapped.clone();
        bad[40] ^= 1;
        prop_assert_eq!(account_key.unwrap_secret_key(&bad).map(|_| ()), Err(Error::CorruptWrappedKey));
    }

    #[test]
    fn recovery_text_round_trip(key in any::<[u8; 32]>(), pos in 0usize..69, sym in 0usize..32) {
        let recovery = RecoveryKey::from_bytes(key);
        let text = recovery.to_text();
        prop_assert_eq!(text.len(), 69);
        prop_assert_eq!(text.split('-').count(), 14);
        prop_assert_eq!(RecoveryKey::parse(&text), Ok(RecoveryKey::from_bytes(key)));
        prop_assert_eq!(RecoveryKey::parse(&text.to_lowercase()), Ok(RecoveryKey::from_bytes(key)));
        // One changed symbol never reads back as the same key.
        let alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
        let mut typo: Vec<char> = text.chars().collect();
        if typo[pos] != '-' {
            let replacement = alphabet.chars().nth(sym).unwrap();
            if replacement != typo[pos] {
                typo[pos] = replacement;
                let typo: String = typo.into_iter().collect();
                // A change in the check symbols is always a typo; one in the key bits is caught
                // by the 24-bit check (all but 2^-24 of the time) and never yields this key.
                prop_assert_ne!(RecoveryKey::parse(&typo), Ok(RecoveryKey::from_bytes(key)));
            }
        }
    }

    #[test]
    fn pad_unpad_round_trip(data in prop::collection::vec(any::<u8>(), 0..1100)) {
        let padded = pad(&data);
        prop_assert_eq!(padded.len() % 256, 0);
        prop_assert!(padded.len() > data.len() && padded.len() <= data.len() + 256);
        prop_assert_eq!(unpad(&padded), Ok(&data[..]));
    }

    #[test]
    fn b64_round_trip(data in prop::collection::vec(any::<u8>(), 0..200)) {
        let text = b64::encode(&data);
        prop_assert_eq!(b64::decode(&text), Ok(data));
        prop_assert!(!text.contains('='));
    }

    #[test]
    fn arbitrary_sealed_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..700)) {
        let p = parties();
        let ct = seal_bytes(&data, p.bob.public(), &p.alice);
        let _ = open(&ct, &p.bob, p.bob_id, p.alice_id, p.alice.public(), NOW_MS);
        prop_assert!(open(&data, &p.bob, p.bob_id, p.alice_id, p.alice.public(), NOW_MS).is_err());
    }
}
