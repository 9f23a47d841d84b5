//! Fingerprints and safety numbers (PROTOCOL §6), for comparing keys out of band.

use blake2::digest::consts::U30;
use blake2::{Blake2b, Digest};
use uuid::Uuid;

use crate::keys::PublicKey;

const LABEL: &[u8] = b"sealpost/v1/fingerprint";

/// `crypto_generichash(30, "sealpost/v1/fingerprint" || uuid_bytes(user_id) || public_key)`,
/// unkeyed BLAKE2b-240; the UUID's 16 bytes in the order its text shows them.
pub fn fingerprint(user_id: Uuid, public_key: &PublicKey) -> [u8; 30] {
    let mut hasher = Blake2b::<U30>::new();
    hasher.update(LABEL);
    hasher.update(user_id.as_bytes());
    hasher.update(public_key.as_bytes());
    hasher.finalize().into()
}

/// The 30 digits of a fingerprint: six 5-byte big-endian chunks, each mod 100000, zero-padded.
pub fn fingerprint_digits(user_id: Uuid, public_key: &PublicKey) -> String {
    digits(&fingerprint(user_id, public_key))
}

/// The 60-digit safety number of two users: both fingerprints' digits, the smaller first, so that
/// both sides compute the same number.
pub fn safety_number(a_id: Uuid, a_key: &PublicKey, b_id: Uuid, b_key: &PublicKey) -> String {
    let a = fingerprint_digits(a_id, a_key);
    let b = fingerprint_digits(b_id, b_key);
    if a <= b {
        a + &b
    } else {
        b + &a
    }
}

fn digits(fp: &[u8; 30]) -> String {
    let mut out = String::with_capacity(30);
    for chunk in fp.chunks_exact(5) {
        let n = chunk.iter().fold(0u64, |n, &b| (n << 8) | u64::from(b));
        out.push_str(&format!("{:05}", n % 100_000));
    }
    out
}
