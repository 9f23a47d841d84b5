//! libsodium's primitives as PROTOCOL.md names them, composed from RustCrypto building blocks:
//! `crypto_box_easy`, `crypto_box_seal`, `crypto_secretbox_easy` and `crypto_generichash`.
//!
//! `crypto_box` is X25519 (curve25519-dalek), then HSalsa20, then XSalsa20-Poly1305
//! (crypto_secretbox), exactly as libsodium's `crypto_box_beforenm`. It is written out here rather
//! than taken from the `crypto_box` crate because that crate's `SecretKey` leaves a copy of the key
//! bytes behind when dropped, and because libsodium refuses an ephemeral key of small order in a
//! sealed box while that crate does not. The vectors made by real libsodium pin every byte.

use blake2::digest::consts::{U24, U32};
use blake2::digest::Mac;
use blake2::{Blake2b, Blake2bMac, Digest};
use crypto_secretbox::aead::generic_array::GenericArray;
use crypto_secretbox::aead::{AeadInPlace, KeyInit};
use crypto_secretbox::{Kdf, XSalsa20Poly1305};
use curve25519_dalek::MontgomeryPoint;
use zeroize::Zeroizing;

use crate::keys::{PublicKey, SecretKey};

/// `crypto_box_NONCEBYTES`, `crypto_secretbox_NONCEBYTES`.
pub(crate) const NONCE_LEN: usize = 24;
/// `crypto_box_MACBYTES`, `crypto_secretbox_MACBYTES`.
pub(crate) const TAG_LEN: usize = 16;
/// `crypto_box_SEALBYTES`: the ephemeral public key and the tag.
pub(crate) const SEAL_OVERHEAD: usize = 32 + TAG_LEN;

/// A 32-byte symmetric key that is wiped when dropped.
pub(crate) type SymKey = Zeroizing<[u8; 32]>;

/// `crypto_box_beforenm`: HSalsa20 of the X25519 shared point.
///
/// No all-zero check is needed: [`PublicKey`] refuses every point of small order, and only those
/// give an all-zero shared point with a clamped scalar.
pub(crate) fn box_key(their_public: &PublicKey, my_secret: &SecretKey) -> SymKey {
    let shared = Zeroizing::new(
        MontgomeryPoint(*their_public.as_bytes())
            .mul_clamped(*my_secret.bytes())
            .to_bytes(),
    );
    let key = Zeroizing::new(XSalsa20Poly1305::kdf(
        GenericArray::from_slice(shared.as_slice()),
        &GenericArray::default(),
    ));
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(key.as_slice());
    out
}

/// Appends `crypto_secretbox_easy(msg, nonce, key)` (tag, then ciphertext) to `out`.
pub(crate) fn secretbox_into(
    out: &mut Vec<u8>,
    msg: &[u8],
    nonce: &[u8; NONCE_LEN],
    key: &[u8; 32],
) {
    let start = out.len();
    out.resize(start + TAG_LEN, 0);
    out.extend_from_slice(msg);
    let cipher = XSalsa20Poly1305::new(GenericArray::from_slice(key));
    let tag = cipher
        .encrypt_in_place_detached(
            GenericArray::from_slice(nonce),
            b"",
            &mut out[start + TAG_LEN..],
        )
        .expect("XSalsa20-Poly1305 fails only when given associated data, and it is given none");
    out[start..start + TAG_LEN].copy_from_slice(&tag);
}

/// `crypto_secretbox_open_easy`: `None` for anything that does not authenticate.
pub(crate) fn secretbox_open(
    boxed: &[u8],
    nonce: &[u8; NONCE_LEN],
    key: &[u8; 32],
) -> Option<Zeroizing<Vec<u8>>> {
    if boxed.len() < TAG_LEN {
        return None;
    }
    let (tag, ciphertext) = boxed.split_at(TAG_LEN);
    let mut plain = Zeroizing::new(ciphertext.to_vec());
    let cipher = XSalsa20Poly1305::new(GenericArray::from_slice(key));
    cipher
        .decrypt_in_place_detached(
            GenericArray::from_slice(nonce),
            b"",
            plain.as_mut_slice(),
            GenericArray::from_slice(tag),
        )
        .ok()?;
    Some(plain)
}

/// `n || crypto_secretbox_easy(msg, n, key)`: the layout of every wrapped key and inner box.
pub(crate) fn nonce_and_secretbox(msg: &[u8], nonce: &[u8; NONCE_LEN], key: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(NONCE_LEN + TAG_LEN + msg.len());
    out.extend_from_slice(nonce);
    secretbox_into(&mut out, msg, nonce, key);
    out
}

/// Opens `n || crypto_secretbox_easy(...)`.
pub(crate) fn open_nonce_and_secretbox(blob: &[u8], key: &[u8; 32]) -> Option<Zeroizing<Vec<u8>>> {
    if blob.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (nonce, boxed) = blob.split_at(NONCE_LEN);
    let nonce: &[u8; NONCE_LEN] = nonce.try_into().ok()?;
    secretbox_open(boxed, nonce, key)
}

/// The sealed-box nonce: `BLAKE2b-192(ephemeral_pk || recipient_pk)`.
fn seal_nonce(ephemeral: &[u8; 32], recipient: &[u8; 32]) -> [u8; NONCE_LEN] {
    let mut hasher = Blake2b::<U24>::new();
    hasher.update(ephemeral);
    hasher.update(recipient);
    hasher.finalize().into()
}

/// `crypto_box_seal(msg, recipient)`: a fresh ephemeral key pair, wiped afterwards.
pub(crate) fn box_seal(msg: &[u8], recipient: &PublicKey) -> Vec<u8> {
    let ephemeral = SecretKey::random();
    let ephemeral_public = MontgomeryPoint::mul_base_clamped(*ephemeral.bytes()).to_bytes();
    let nonce = seal_nonce(&ephemeral_public, recipient.as_bytes());
    let key = box_key(recipient, &ephemeral);
    let mut out = Vec::with_capacity(SEAL_OVERHEAD + msg.len());
    out.extend_from_slice(&ephemeral_public);
    secretbox_into(&mut out, msg, &nonce, &key);
    out
}

/// `crypto_box_seal_open(sealed, my_public, my_secret)`; like libsodium, refuses an ephemeral key
/// of small order.
pub(crate) fn box_seal_open(
    sealed: &[u8],
    my_public: &PublicKey,
    my_secret: &SecretKey,
) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < SEAL_OVERHEAD {
        return None;
    }
    let (ephemeral, boxed) = sealed.split_at(32);
    let ephemeral = PublicKey::from_bytes(ephemeral).ok()?;
    let nonce = seal_nonce(ephemeral.as_bytes(), my_public.as_bytes());
    secretbox_open(boxed, &nonce, &box_key(&ephemeral, my_secret))
}

/// `crypto_generichash(32, msg, key)`: keyed BLAKE2b-256.
pub(crate) fn keyed_hash32(msg: &[u8], key: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut mac = <Blake2bMac<U32> as KeyInit>::new_from_slice(key)
        .expect("a 32-byte key is within BLAKE2b's 64-byte limit");
    mac.update(msg);
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&mac.finalize().into_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secretbox_round_trip_and_tamper() {
        let key = [7u8; 32];
        let nonce = [9u8; NONCE_LEN];
        let blob = nonce_and_secretbox(b"hello", &nonce, &key);
        assert_eq!(blob.len(), NONCE_LEN + TAG_LEN + 5);
        let plain = open_nonce_and_secretbox(&blob, &key).unwrap();
        assert_eq!(plain.as_slice(), b"hello");
        for i in 0..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 0x01;
            assert!(open_nonce_and_secretbox(&bad, &key).is_none(), "byte {i}");
        }
        assert!(open_nonce_and_secretbox(&blob[..NONCE_LEN + TAG_LEN - 1], &key).is_none());
    }

    #[test]
    fn sealed_box_refuses_a_small_order_ephemeral_key() {
        let me = crate::KeyPair::generate();
        let mut sealed = box_seal(b"hi", me.public());
        assert!(box_seal_open(&sealed, me.public(), me.secret()).is_some());
        sealed[..32].copy_from_slice(&[0u8; 32]);
        assert!(box_seal_open(&sealed, me.public(), me.secret()).is_none());
    }
}
