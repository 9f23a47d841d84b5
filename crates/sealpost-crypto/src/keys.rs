//! Account key pairs (PROTOCOL §2): X25519 for `crypto_box`, public keys never of small order.

use curve25519_dalek::montgomery::MontgomeryPoint;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::secret::secret_bytes;
use crate::{b64, Error};

/// An X25519 public key that is known not to be of small order.
///
/// It is (de)serialised as base64url text, and deserialising refuses what
/// [`PublicKey::from_bytes`] refuses.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// Accepts 32 bytes that are not a low-order point in any encoding.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::InvalidPublicKey("a public key is 32 bytes"))?;
        // Small order (on the curve or its twist) means that [8]P is the identity, whose encoding
        // is all zeros: the cofactors are 8 and 4, and the other factors are large primes. The
        // ladder reads u like X25519 does (high bit ignored, mod p), so every encoding is covered.
        let times_8 = MontgomeryPoint(bytes).mul_bits_be([true, false, false, false].into_iter());
        if times_8.0 == [0u8; 32] {
            return Err(Error::InvalidPublicKey("a point of small order"));
        }
        Ok(Self(bytes))
    }

    /// Decodes canonical base64url, then checks as [`PublicKey::from_bytes`] does.
    pub fn from_base64(text: &str) -> Result<Self, Error> {
        Self::from_bytes(&b64::decode(text)?)
    }

    /// The 32 bytes of the key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key as base64url, as it travels in JSON.
    pub fn to_base64(&self) -> String {
        b64::encode(&self.0)
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", crate::b64::encode(&self.0))
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::from_base64(&text).map_err(serde::de::Error::custom)
    }
}

secret_bytes! {
    /// An X25519 secret key (32 bytes). It leaves a client only wrapped under the account key
    /// ([`crate::AccountKey::wrap_secret_key`]).
    SecretKey
}

impl SecretKey {
    /// Takes 32 secret-key bytes (a keystore restoring one); the caller's copy is wiped.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self::from_array(bytes)
    }

    /// The raw bytes, for a keystore that must persist them. Nothing in the protocol sends a
    /// secret key unwrapped.
    pub fn expose_secret(&self) -> &[u8; 32] {
        self.bytes()
    }

    /// `crypto_scalarmult_base`: the public key of this secret key.
    pub fn public_key(&self) -> PublicKey {
        // The clamped scalar lies in [2^254, 2^255) and is a multiple of 8, so it is never a
        // multiple of 8·ℓ: the product is never of small order and needs no check.
        PublicKey(MontgomeryPoint::mul_base_clamped(*self.bytes()).to_bytes())
    }
}

/// An account's key pair for `crypto_box` (`crypto_box_keypair`).
pub struct KeyPair {
    public: PublicKey,
    secret: SecretKey,
}

impl KeyPair {
    /// A fresh random key pair.
    pub fn generate() -> Self {
        Self::from_secret(SecretKey::random())
    }

    /// The key pair of 32 secret-key bytes; the caller's copy is wiped.
    pub fn from_secret_bytes(bytes: [u8; 32]) -> Self {
        Self::from_secret(SecretKey::from_bytes(bytes))
    }

    /// The key pair of a secret key.
    pub fn from_secret(secret: SecretKey) -> Self {
        Self {
            public: secret.public_key(),
            secret,
        }
    }

    /// The public key, to publish.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The secret key, to wrap ([`crate::AccountKey::wrap_secret_key`]).
    pub fn secret(&self) -> &SecretKey {
        &self.secret
    }
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &self.public)
            .field("secret", &self.secret)
            .finish()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn high_bit_variants_of_small_order_points_are_refused() {
        let mut zero = [0u8; 32];
        zero[31] = 0x80;
        assert!(PublicKey::from_bytes(&zero).is_err());
        let mut one = [0u8; 32];
        one[0] = 1;
        one[31] = 0x80;
        assert!(PublicKey::from_bytes(&one).is_err());
        assert!(PublicKey::from_bytes(&[1u8; 31]).is_err());
    }

    /// libsodium's blocklist of points of small order: 0, 1, two points of order 8, p - 1, p,
    /// p + 1 (each also refused with its high bit set).
    pub(crate) fn small_order_blocklist() -> Vec<[u8; 32]> {
        let mut blocklist = vec![[0u8; 32]; 7];
        blocklist[1][0] = 1;
        for (slot, hex) in [
            (
                2,
                "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
            ),
            (
                3,
                "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
            ),
        ] {
            for (i, byte) in blocklist[slot].iter_mut().enumerate() {
                *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
            }
        }
        for (slot, low) in [(4, 0xec), (5, 0xed), (6, 0xee)] {
            blocklist[slot] = [0xff; 32];
            blocklist[slot][0] = low;
            blocklist[slot][31] = 0x7f;
        }
        blocklist
    }

    /// [8]P, as `from_bytes` checks it, agrees with multiplying by a clamped scalar, as X25519
    /// does: on libsodium's blocklist, on random bytes (curve and twist points alike), and on
    /// keys with a small-order component.
    #[test]
    fn small_order_check_agrees_with_a_clamped_multiplication() {
        use curve25519_dalek::constants::EIGHT_TORSION;
        let clamped_kills = |bytes: &[u8; 32]| {
            MontgomeryPoint(*bytes)
                .mul_clamped(*SecretKey::random().bytes())
                .0
                == [0u8; 32]
        };
        let blocklist = small_order_blocklist();
        let mut points = blocklist.clone();
        for t in &EIGHT_TORSION {
            points.push(t.to_montgomery().0);
            let key = KeyPair::generate();
            let p = MontgomeryPoint(*key.public().as_bytes())
                .to_edwards(0)
                .unwrap();
            points.push((p + t).to_montgomery().0);
        }
        for _ in 0..256 {
            points.push(*SecretKey::random().bytes());
        }
        for mut point in points {
            for _ in 0..2 {
                let small = PublicKey::from_bytes(&point).is_err();
                assert_eq!(small, clamped_kills(&point), "{point:02x?}");
                point[31] ^= 0x80;
            }
        }
        for mut point in blocklist {
            assert!(PublicKey::from_bytes(&point).is_err(), "{point:02x?}");
            point[31] |= 0x80;
            assert!(PublicKey::from_bytes(&point).is_err(), "{point:02x?}");
        }
    }

    #[test]
    fn generated_public_keys_are_accepted() {
        for _ in 0..16 {
            let pair = KeyPair::generate();
            assert_eq!(
                PublicKey::from_bytes(pair.public().as_bytes()),
                Ok(*pair.public())
            );
        }
    }
}
