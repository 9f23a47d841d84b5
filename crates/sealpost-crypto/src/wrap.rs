//! The account key and wrapped keys (PROTOCOL §2.2): `n || crypto_secretbox_easy(key, n, wrapping
//! key)`, 72 bytes, for the account key under a wrap key and for each secret key under the account
//! key.

use crate::kdf::WrapKey;
use crate::keys::{KeyPair, PublicKey, SecretKey};
use crate::nacl;
use crate::secret::{random_array, secret_bytes};
use crate::Error;

/// The length of every wrapped key: nonce (24) + key (32) + tag (16).
pub const WRAPPED_LEN: usize = nacl::NONCE_LEN + 32 + nacl::TAG_LEN;

secret_bytes! {
    /// The account's random 32-byte key, made once at registration: the password's wrap key and
    /// the recovery key wrap it, and it wraps every secret key the account has ever had.
    AccountKey
}

impl AccountKey {
    /// A fresh random account key (`randombytes_buf(32)`), for registration.
    pub fn generate() -> Self {
        Self::random()
    }

    /// Takes 32 account-key bytes (a keystore restoring one); the caller's copy is wiped.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self::from_array(bytes)
    }

    /// The raw bytes, for a keystore that must persist them; they are never sent unwrapped.
    pub fn expose_secret(&self) -> &[u8; 32] {
        self.bytes()
    }

    /// `wrapped_account_key`: this key under the password's wrap key, with a fresh nonce.
    pub fn wrap(&self, wrap_key: &WrapKey) -> Vec<u8> {
        self.wrap_with_nonce(wrap_key, &random_array())
    }

    /// [`AccountKey::wrap`] with a given nonce, to reproduce test vectors. Never reuse a nonce.
    #[doc(hidden)]
    pub fn wrap_with_nonce(&self, wrap_key: &WrapKey, nonce: &[u8; 24]) -> Vec<u8> {
        nacl::nonce_and_secretbox(self.bytes(), nonce, wrap_key.expose_secret())
    }

    /// Unwraps `wrapped_account_key` with the password's wrap key; a wrong password (or any
    /// damage) is [`Error::WrongPassword`], never garbage.
    pub fn unwrap(wrapped: &[u8], wrap_key: &WrapKey) -> Result<Self, Error> {
        unwrap32(wrapped, wrap_key.expose_secret(), Error::WrongPassword).map(Self::from_array)
    }

    /// `wrapped_secret_key`: a secret key under this account key, with a fresh nonce.
    pub fn wrap_secret_key(&self, secret: &SecretKey) -> Vec<u8> {
        self.wrap_secret_key_with_nonce(secret, &random_array())
    }

    /// [`AccountKey::wrap_secret_key`] with a given nonce, to reproduce test vectors.
    #[doc(hidden)]
    pub fn wrap_secret_key_with_nonce(&self, secret: &SecretKey, nonce: &[u8; 24]) -> Vec<u8> {
        nacl::nonce_and_secretbox(secret.expose_secret(), nonce, self.bytes())
    }

    /// Unwraps a `wrapped_secret_key`; one that does not open is [`Error::CorruptWrappedKey`].
    pub fn unwrap_secret_key(&self, wrapped: &[u8]) -> Result<SecretKey, Error> {
        unwrap32(wrapped, self.bytes(), Error::CorruptWrappedKey).map(SecretKey::from_bytes)
    }

    /// Unwraps a `wrapped_secret_key` and checks that it belongs to the `public_key` the server
    /// serves beside it ([`Error::KeyPairMismatch`] otherwise).
    pub fn unwrap_key_pair(
        &self,
        wrapped: &[u8],
        public_key: &PublicKey,
    ) -> Result<KeyPair, Error> {
        let pair = KeyPair::from_secret(self.unwrap_secret_key(wrapped)?);
        if pair.public() != public_key {
            return Err(Error::KeyPairMismatch);
        }
        Ok(pair)
    }
}

/// Opens a 72-byte wrapped 32-byte key; `wrong_key` is what a failure means to the caller.
pub(crate) fn unwrap32(
    wrapped: &[u8],
    key: &[u8; 32],
    wrong_key: Error,
) -> Result<[u8; 32], Error> {
    if wrapped.len() != WRAPPED_LEN {
        return Err(Error::CorruptWrappedKey);
    }
    let plain = nacl::open_wrapped_key(wrapped, key).ok_or(wrong_key)?;
    Ok(*plain)
}
