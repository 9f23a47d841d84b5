//! `src/nacl.rs` takes `crypto_box` from the `crypto_box` crate but makes its secret key itself
//! (the clamped scalar, unreduced, as X25519 has it); here the crate used plainly, with its own
//! `SecretKey::from`, must agree with this crate's keys, inner boxes and sealed boxes both ways, as
//! it does for every key `crypto_box_keypair` makes.

#![allow(clippy::unwrap_used)] // a test's panic is its failure report

use crypto_box::aead::{Aead, OsRng};
use crypto_box::SalsaBox;
use sealpost_crypto::envelope::{inner_with_nonce, pad, seal_inner};
use sealpost_crypto::{open, KeyPair};
use uuid::Uuid;

fn theirs(pair: &KeyPair) -> (crypto_box::PublicKey, crypto_box::SecretKey) {
    (
        crypto_box::PublicKey::from(*pair.public().as_bytes()),
        crypto_box::SecretKey::from(*pair.secret().expose_secret()),
    )
}

#[test]
fn same_keys_boxes_and_sealed_boxes() {
    for round in 0..20u8 {
        let (alice, bob) = (KeyPair::generate(), KeyPair::generate());
        let (alice_pk, alice_sk) = theirs(&alice);
        let (bob_pk, bob_sk) = theirs(&bob);
        assert_eq!(
            alice_sk.public_key(),
            alice_pk,
            "X25519 base point multiplication"
        );

        let padded = pad(&vec![round; usize::from(round) * 37]);
        let nonce = [round; 24];
        let ours = inner_with_nonce(&padded, bob.public(), &alice, &nonce);
        let boxed = SalsaBox::new(&bob_pk, &alice_sk)
            .encrypt(&nonce.into(), padded.as_slice())
            .unwrap();
        assert_eq!(ours[..24], nonce);
        assert_eq!(ours[24..], boxed[..], "crypto_box_easy");

        // Our sealed box opens with theirs, and an envelope they seal opens with ours.
        assert_eq!(
            bob_sk.unseal(&seal_inner(&ours, bob.public())).unwrap(),
            ours
        );
        let payload = format!(
            r#"{{"v":1,"id":"{}","from":"{}","to":"{}","ts":1,"type":"text","body":"r{round}"}}"#,
            Uuid::from_u128(9),
            Uuid::from_u128(1),
            Uuid::from_u128(2)
        );
        let padded = pad(payload.as_bytes());
        let inner = inner_with_nonce(&padded, bob.public(), &alice, &nonce);
        let sealed = bob_pk.seal(&mut OsRng, &inner).unwrap();
        let opened = open(
            &sealed,
            &bob,
            Uuid::from_u128(2),
            Uuid::from_u128(1),
            alice.public(),
            1,
        )
        .unwrap();
        assert_eq!(opened.body, format!("r{round}"));
    }
}
