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
        // A clamped scalar is a multiple of the cofactor 8, so it sends every point of small order
        // (and every non-canonical encoding of one) to the identity, whose encoding is all zeros.
        let product = MontgomeryPoint(bytes).mul_clamped([0x55; 32]);
        if product.0 == [0u8; 32] {
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
mod tests {
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
