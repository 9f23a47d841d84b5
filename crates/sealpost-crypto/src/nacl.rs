//! libsodium's primitives as PROTOCOL.md names them, each taken whole from a maintained RustCrypto
//! crate: `crypto_box_easy` / `crypto_box_open_easy` and `crypto_box_seal` /
//! `crypto_box_seal_open` from `crypto_box` (`SalsaBox`: X25519, HSalsa20, XSalsa20-Poly1305, as
//! libsodium's `crypto_box_curve25519xsalsa20poly1305`), `crypto_secretbox_easy` from
//! `crypto_secretbox`, and `crypto_generichash` from `blake2`. Nothing here computes a primitive
//! itself; the vectors made by real libsodium (`tests/vectors.rs`) and `interop/` pin every byte.
//!
//! Two things are added around the `crypto_box` crate (0.9), where it differs from libsodium or
//! from this crate's rules:
//!
//! - libsodium's `crypto_box_seal_open` refuses a sealed box whose ephemeral public key is of small
//!   order (the shared secret would be all zeros, a key anyone knows); `crypto_box` does not, so
//!   [`box_seal_open`] refuses one with [`PublicKey::from_bytes`] before it opens anything. Peer
//!   keys are [`PublicKey`]s, which are never of small order.
//! - `crypto_box::SecretKey::from_bytes` reduces the clamped key mod ℓ, which multiplies a point
//!   with a small-order component differently from X25519 (libsodium multiplies by the clamped key
//!   itself, a multiple of the cofactor, so that component drops out). [`BoxSecret`] gives
//!   `crypto_box` the clamped key unreduced instead, so that boxes and sealed boxes open with the
//!   key libsodium computes for every public key, and nothing of the key leaks through such a
//!   component; it also overwrites the whole `crypto_box::SecretKey` when dropped, as the crate's
//!   own `Drop` wipes the scalar but not the copy of the key bytes beside it.
//!
//! `crypto_box_seal` is the crate's own, ephemeral key included, with two consequences: that key is
//! reduced too, so a box sealed to a public key with a small-order component (which no
//! `crypto_box_keypair` makes, but which libsodium accepts) does not open, where libsodium's
//! would; and that key's bytes are not wiped (the box it sealed is no secret of the sender's, and
//! the inner box still needs the recipient's or the sender's secret key).

use blake2::digest::consts::{U16, U24, U32};
use blake2::digest::Mac;
use blake2::Blake2bMac;
use crypto_box::aead::generic_array::GenericArray;
use crypto_box::aead::{AeadInPlace, KeyInit, OsRng};
use crypto_box::SalsaBox;
use crypto_secretbox::XSalsa20Poly1305;
use curve25519_dalek::scalar::clamp_integer;
use curve25519_dalek::Scalar;
use zeroize::Zeroizing;

use crate::keys::{PublicKey, SecretKey};

/// `crypto_box_NONCEBYTES`, `crypto_secretbox_NONCEBYTES`.
pub(crate) const NONCE_LEN: usize = 24;
/// `crypto_box_MACBYTES`, `crypto_secretbox_MACBYTES`.
pub(crate) const TAG_LEN: usize = 16;
/// The ephemeral public key at the front of a sealed box.
const EPHEMERAL_LEN: usize = 32;
/// `crypto_box_SEALBYTES`: the ephemeral public key and the tag.
pub(crate) const SEAL_OVERHEAD: usize = crypto_box::SEALBYTES;

/// A `crypto_box::SecretKey` made from one of this crate's secret keys, for one operation.
///
/// Its scalar is the clamped key, unreduced: exactly the integer X25519 multiplies by.
/// `crypto_box` only ever multiplies points by it (the Montgomery ladder and the fixed-base
/// multiplication, both defined for any scalar below 2^255, as curve25519-dalek's own
/// `mul_clamped` and `mul_base_clamped` use it), never adds or multiplies it as a scalar.
///
/// Its `Drop` overwrites the whole key with the zero key. `black_box` keeps that overwrite from
/// being optimised away as a dead store (this crate has no `unsafe`, so no volatile write).
struct BoxSecret(crypto_box::SecretKey);

impl BoxSecret {
    fn new(secret: &SecretKey) -> Self {
        // `from_bits` is deprecated for scalar arithmetic, which `crypto_box` never does with it.
        #[allow(deprecated)]
        let scalar = Scalar::from_bits(clamp_integer(*secret.bytes()));
        Self(crypto_box::SecretKey::from(scalar))
    }
}

impl Drop for BoxSecret {
    fn drop(&mut self) {
        // The assignment drops the old key in place (wiping its scalar), then writes zero bytes
        // and a zero scalar over it.
        self.0 = crypto_box::SecretKey::from(Scalar::ZERO);
        std::hint::black_box(&mut self.0);
    }
}

/// `crypto_box_beforenm` as a `SalsaBox`, which wipes its key when dropped; the temporary
/// `crypto_box::SecretKey` is wiped before this returns.
fn salsa_box(their_public: &PublicKey, my_secret: &SecretKey) -> SalsaBox {
    let their_public = crypto_box::PublicKey::from(*their_public.as_bytes());
    SalsaBox::new(&their_public, &BoxSecret::new(my_secret).0)
}

/// `n || tag || ciphertext`: `n || crypto_secretbox_easy(msg, n, key)` for a secretbox,
/// `n || crypto_box_easy(msg, n, pk, sk)` for a box.
#[expect(
    clippy::expect_used,
    reason = "XSalsa20-Poly1305 fails only when given associated data, and it is given none"
)]
fn nonce_and_aead<A>(cipher: &A, msg: &[u8], nonce: &[u8; NONCE_LEN]) -> Vec<u8>
where
    A: AeadInPlace<NonceSize = U24, TagSize = U16>,
{
    let mut out = Vec::with_capacity(NONCE_LEN + TAG_LEN + msg.len());
    out.extend_from_slice(nonce);
    out.extend_from_slice(&[0u8; TAG_LEN]);
    out.extend_from_slice(msg);
    let tag = cipher
        .encrypt_in_place_detached(
            GenericArray::from_slice(nonce),
            b"",
            &mut out[NONCE_LEN + TAG_LEN..],
        )
        .expect("XSalsa20-Poly1305 fails only when given associated data, and it is given none");
    out[NONCE_LEN..NONCE_LEN + TAG_LEN].copy_from_slice(&tag);
    out
}

/// Opens `n || tag || ciphertext`: the plaintext, wiped when dropped, or `None` for anything that
/// does not authenticate (then nothing was decrypted).
fn open_nonce_and_aead<A>(cipher: &A, blob: &[u8]) -> Option<Zeroizing<Vec<u8>>>
where
    A: AeadInPlace<NonceSize = U24, TagSize = U16>,
{
    if blob.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (nonce, rest) = blob.split_at(NONCE_LEN);
    let (tag, ciphertext) = rest.split_at(TAG_LEN);
    let mut plain = Zeroizing::new(ciphertext.to_vec());
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

/// `n || crypto_secretbox_easy(msg, n, key)`: the layout of every wrapped key.
pub(crate) fn nonce_and_secretbox(msg: &[u8], nonce: &[u8; NONCE_LEN], key: &[u8; 32]) -> Vec<u8> {
    let cipher = XSalsa20Poly1305::new(GenericArray::from_slice(key));
    nonce_and_aead(&cipher, msg, nonce)
}

/// Opens a 72-byte `n || crypto_secretbox_easy(key32, n, key)` into a wiped-on-drop array.
pub(crate) fn open_wrapped_key(blob: &[u8], key: &[u8; 32]) -> Option<Zeroizing<[u8; 32]>> {
    if blob.len() != NONCE_LEN + TAG_LEN + 32 {
        return None;
    }
    let cipher = XSalsa20Poly1305::new(GenericArray::from_slice(key));
    let plain = open_nonce_and_aead(&cipher, blob)?;
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&plain);
    Some(out)
}

/// `n || crypto_box_easy(msg, n, their_public, my_secret)`: the inner box of an envelope.
pub(crate) fn nonce_and_box(
    msg: &[u8],
    nonce: &[u8; NONCE_LEN],
    their_public: &PublicKey,
    my_secret: &SecretKey,
) -> Vec<u8> {
    nonce_and_aead(&salsa_box(their_public, my_secret), msg, nonce)
}

/// `crypto_box_open_easy(blob[24..], blob[..24], their_public, my_secret)`: the plaintext, wiped
/// when dropped, or `None` if `blob` is shorter than a nonce and a tag or does not authenticate.
pub(crate) fn open_nonce_and_box(
    blob: &[u8],
    their_public: &PublicKey,
    my_secret: &SecretKey,
) -> Option<Zeroizing<Vec<u8>>> {
    open_nonce_and_aead(&salsa_box(their_public, my_secret), blob)
}

/// `crypto_box_seal(msg, recipient)`, with a fresh ephemeral key pair from the OS CSPRNG.
#[expect(
    clippy::expect_used,
    reason = "XSalsa20-Poly1305 fails only when given associated data, and it is given none"
)]
pub(crate) fn box_seal(msg: &[u8], recipient: &PublicKey) -> Vec<u8> {
    crypto_box::PublicKey::from(*recipient.as_bytes())
        .seal(&mut OsRng, msg)
        .expect("XSalsa20-Poly1305 fails only when given associated data, and it is given none")
}

/// `crypto_box_seal_open(sealed, my_public, my_secret)`: the plaintext or `None`. Like libsodium,
/// refuses an ephemeral key of small order.
pub(crate) fn box_seal_open(sealed: &[u8], my_secret: &SecretKey) -> Option<Vec<u8>> {
    if sealed.len() < SEAL_OVERHEAD {
        return None;
    }
    PublicKey::from_bytes(&sealed[..EPHEMERAL_LEN]).ok()?;
    BoxSecret::new(my_secret).0.unseal(sealed).ok()
}

/// `crypto_generichash(32, msg, key)`: keyed BLAKE2b-256.
#[expect(
    clippy::expect_used,
    reason = "a 32-byte key is within BLAKE2b's 64-byte limit"
)]
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
    use blake2::{Blake2b, Digest};
    use crypto_box::aead::Aead;

    use super::*;
    use crate::KeyPair;

    #[test]
    fn secretbox_round_trip_and_tamper() {
        let key = [7u8; 32];
        let nonce = [9u8; NONCE_LEN];
        let msg = [5u8; 32];
        let blob = nonce_and_secretbox(&msg, &nonce, &key);
        assert_eq!(blob.len(), NONCE_LEN + TAG_LEN + 32);
        assert_eq!(*open_wrapped_key(&blob, &key).unwrap(), msg);
        for i in 0..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 0x01;
            assert!(open_wrapped_key(&bad, &key).is_none(), "byte {i}");
        }
        assert!(open_wrapped_key(&blob[..blob.len() - 1], &key).is_none());
    }

    #[test]
    fn box_round_trip_both_ways_and_tamper() {
        let (alice, bob) = (KeyPair::generate(), KeyPair::generate());
        let blob = nonce_and_box(b"hello", &[3u8; NONCE_LEN], bob.public(), alice.secret());
        assert_eq!(blob.len(), NONCE_LEN + TAG_LEN + 5);
        let opened = open_nonce_and_box(&blob, alice.public(), bob.secret()).unwrap();
        assert_eq!(opened.as_slice(), b"hello");
        for i in 0..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 0x01;
            assert!(open_nonce_and_box(&bad, alice.public(), bob.secret()).is_none());
        }
        assert!(open_nonce_and_box(
            &blob[..NONCE_LEN + TAG_LEN - 1],
            alice.public(),
            bob.secret()
        )
        .is_none());
    }

    #[test]
    fn sealed_box_round_trip_and_short_input() {
        let me = KeyPair::generate();
        let sealed = box_seal(b"hi", me.public());
        assert_eq!(sealed.len(), SEAL_OVERHEAD + 2);
        assert_eq!(box_seal_open(&sealed, me.secret()).unwrap(), b"hi");
        assert!(box_seal_open(&sealed[..SEAL_OVERHEAD - 1], me.secret()).is_none());
        assert!(box_seal_open(&sealed, KeyPair::generate().secret()).is_none());
    }

    /// libsodium's blocklist of points of small order, each also with its high bit set.
    fn small_order_points() -> Vec<[u8; 32]> {
        let mut points = crate::keys::tests::small_order_blocklist();
        for i in 0..points.len() {
            let mut high = points[i];
            high[31] |= 0x80;
            points.push(high);
        }
        points
    }

    fn seal_nonce(ephemeral: &[u8; 32], recipient: &PublicKey) -> crypto_box::Nonce {
        let mut hasher = Blake2b::<U24>::new();
        hasher.update(ephemeral);
        hasher.update(recipient.as_bytes());
        hasher.finalize()
    }

    /// A sealed box that authenticates, made with a small-order ephemeral key: its key is
    /// HSalsa20 of the all-zero shared secret, which anyone can compute. `crypto_box` alone opens
    /// it; libsodium, and so this crate, refuses it.
    #[test]
    fn sealed_box_with_small_order_ephemeral_key_is_refused() {
        let me = KeyPair::generate();
        let anyone = KeyPair::generate();
        for ephemeral in small_order_points() {
            let ephemeral_pk = crypto_box::PublicKey::from(ephemeral);
            let boxed = SalsaBox::new(&ephemeral_pk, &BoxSecret::new(anyone.secret()).0)
                .encrypt(&seal_nonce(&ephemeral, me.public()), &b"forged"[..])
                .unwrap();
            let sealed = [ephemeral.as_slice(), &boxed].concat();
            let unchecked = BoxSecret::new(me.secret()).0.unseal(&sealed);
            assert_eq!(unchecked.unwrap(), b"forged", "{ephemeral:02x?}");
            assert!(box_seal_open(&sealed, me.secret()).is_none());
        }
    }

    /// `P + T` for each 8-torsion point `T`, `P` being the point of `public`: public keys with a
    /// small-order component, not of small order themselves, so accepted (libsodium accepts them).
    fn with_torsion(public: &PublicKey) -> Vec<PublicKey> {
        use curve25519_dalek::constants::EIGHT_TORSION;
        use curve25519_dalek::MontgomeryPoint;

        let p = MontgomeryPoint(*public.as_bytes()).to_edwards(0).unwrap();
        EIGHT_TORSION
            .iter()
            .map(|t| PublicKey::from_bytes(&(p + t).to_montgomery().0).unwrap())
            .collect()
    }

    /// `crypto_box_beforenm(their_public, my_secret)` computed without `crypto_box`: X25519, then
    /// HSalsa20.
    fn reference_box(their_public: &PublicKey, my_secret: &SecretKey) -> XSalsa20Poly1305 {
        use crypto_secretbox::Kdf;
        let shared = curve25519_dalek::MontgomeryPoint(*their_public.as_bytes())
            .mul_clamped(*my_secret.expose_secret());
        let key = XSalsa20Poly1305::kdf(
            GenericArray::from_slice(&shared.0),
            &GenericArray::default(),
        );
        XSalsa20Poly1305::new(&key)
    }

    /// A peer key with a small-order component: boxes use the key X25519 gives, as libsodium's
    /// do, both ways.
    #[test]
    fn box_with_peer_key_of_mixed_order_is_x25519() {
        let (me, peer) = (KeyPair::generate(), KeyPair::generate());
        let nonce = [5u8; NONCE_LEN];
        for peer_public in with_torsion(peer.public()) {
            let blob = nonce_and_box(b"msg", &nonce, &peer_public, me.secret());
            let reference = reference_box(&peer_public, me.secret());
            assert_eq!(blob, nonce_and_aead(&reference, b"msg", &nonce));
            // What the peer's libsodium sends back: its key is of prime order.
            let back = nonce_and_aead(&reference_box(me.public(), peer.secret()), b"re", &nonce);
            let opened = open_nonce_and_box(&back, &peer_public, me.secret()).unwrap();
            assert_eq!(opened.as_slice(), b"re");
        }
    }

    /// A sealed box whose ephemeral key has a small-order component, as a hostile sender could
    /// make it: libsodium opens it, and so does this crate (with a reduced scalar, as
    /// `crypto_box::SecretKey::from_bytes` makes it, it would not).
    #[test]
    fn sealed_box_with_ephemeral_key_of_mixed_order_opens() {
        let (me, ephemeral) = (KeyPair::generate(), KeyPair::generate());
        let key = reference_box(me.public(), ephemeral.secret());
        let mut reduced_refuses = 0;
        for ephemeral_public in with_torsion(ephemeral.public()) {
            let epk = ephemeral_public.as_bytes();
            let boxed = key
                .encrypt(&seal_nonce(epk, me.public()), &b"hi"[..])
                .unwrap();
            let sealed = [epk.as_slice(), &boxed].concat();
            assert_eq!(box_seal_open(&sealed, me.secret()).unwrap(), b"hi");
            let reduced = crypto_box::SecretKey::from(*me.secret().expose_secret());
            reduced_refuses += usize::from(reduced.unseal(&sealed).is_err());
        }
        assert!(
            reduced_refuses > 0,
            "crypto_box's from_bytes agrees here; BoxSecret may be moot"
        );
    }
}
