//! The recovery key (PROTOCOL §2.3): 32 random bytes shown once as Crockford base32 text with a
//! 3-byte check, and the wrap and auth keys derived from it by keyed BLAKE2b.

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::kdf::{AuthKey, WrapKey};
use crate::nacl;
use crate::secret::secret_bytes;
use crate::wrap::{unwrap32, AccountKey};
use crate::Error;

/// Crockford's base32 alphabet (no I, L, O, U).
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// 35 bytes = 280 bits = 56 symbols of 5 bits.
const SYMBOLS: usize = 56;
const GROUP: usize = 4;

const CHECK_LABEL: &[u8] = b"sealpost/v1/recovery-check";
const WRAP_LABEL: &[u8] = b"sealpost/v1/recovery-wrap";
const AUTH_LABEL: &[u8] = b"sealpost/v1/recovery-auth";

secret_bytes! {
    /// A recovery key: whoever holds it can reset the account's password and read every message,
    /// so it is shown to the user once ([`RecoveryKey::to_text`]) and never stored by a client.
    RecoveryKey
}

impl RecoveryKey {
    /// A fresh random recovery key, for registration or a recovery-key change.
    pub fn generate() -> Self {
        Self::random()
    }

    /// Takes 32 recovery-key bytes; the caller's copy is wiped.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self::from_array(bytes)
    }

    /// The raw bytes, for tests and interop vectors; users see [`RecoveryKey::to_text`].
    pub fn expose_secret(&self) -> &[u8; 32] {
        self.bytes()
    }

    /// The first 3 bytes of `crypto_generichash(32, "sealpost/v1/recovery-check", key)`.
    fn check(&self) -> [u8; 3] {
        let hash = nacl::keyed_hash32(CHECK_LABEL, self.bytes());
        [hash[0], hash[1], hash[2]]
    }

    /// The text to show the user once: 14 groups of 4 Crockford base32 symbols joined by `-`.
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut raw = Zeroizing::new([0u8; 35]);
        raw[..32].copy_from_slice(self.bytes());
        raw[32..].copy_from_slice(&self.check());
        let mut text = Zeroizing::new(String::with_capacity(SYMBOLS + SYMBOLS / GROUP - 1));
        for i in 0..SYMBOLS {
            if i > 0 && i % GROUP == 0 {
                text.push('-');
            }
            text.push(char::from(ALPHABET[usize::from(five_bits(&raw, i))]));
        }
        text
    }

    /// Reads the text back: spaces and `-` dropped, letters uppercased, `O` read as `0` and `I`,
    /// `L` as `1`. A wrong length, any other character or a wrong check is
    /// [`Error::RecoveryKeyTypo`], never a wrong key.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let mut raw = Zeroizing::new([0u8; 35]);
        let mut count = 0usize;
        for c in text.chars() {
            if c == ' ' || c == '-' {
                continue;
            }
            let value = symbol_value(c).ok_or(Error::RecoveryKeyTypo)?;
            if count == SYMBOLS {
                return Err(Error::RecoveryKeyTypo);
            }
            put_five_bits(&mut raw, count, value);
            count += 1;
        }
        if count != SYMBOLS {
            return Err(Error::RecoveryKeyTypo);
        }
        let mut key_bytes = [0u8; 32];
        key_bytes.copy_from_slice(&raw[..32]);
        let key = Self::from_array(key_bytes);
        let mut check = key.check();
        let ok = bool::from(check.ct_eq(&raw[32..]));
        check.zeroize();
        if !ok {
            return Err(Error::RecoveryKeyTypo);
        }
        Ok(key)
    }

    /// `recovery_wrap_key = crypto_generichash(32, "sealpost/v1/recovery-wrap", recovery_key)`:
    /// the label is the message, the recovery key the BLAKE2b key.
    pub fn wrap_key(&self) -> WrapKey {
        WrapKey::from_array(*nacl::keyed_hash32(WRAP_LABEL, self.bytes()))
    }

    /// `recovery_auth_key = crypto_generichash(32, "sealpost/v1/recovery-auth", recovery_key)`,
    /// sent as `recovery.auth_key` and `recovery_auth_key`.
    pub fn auth_key(&self) -> AuthKey {
        AuthKey::from_array(*nacl::keyed_hash32(AUTH_LABEL, self.bytes()))
    }

    /// `recovery.wrapped_account_key`: the account key under the recovery wrap key.
    pub fn wrap_account_key(&self, account_key: &AccountKey) -> Vec<u8> {
        account_key.wrap(&self.wrap_key())
    }

    /// [`RecoveryKey::wrap_account_key`] with a given nonce, to reproduce test vectors.
    #[doc(hidden)]
    pub fn wrap_account_key_with_nonce(
        &self,
        account_key: &AccountKey,
        nonce: &[u8; 24],
    ) -> Vec<u8> {
        account_key.wrap_with_nonce(&self.wrap_key(), nonce)
    }

    /// Unwraps the recovery-wrapped account key; a well-formed recovery key of another account is
    /// [`Error::WrongRecoveryKey`].
    pub fn unwrap_account_key(&self, wrapped: &[u8]) -> Result<AccountKey, Error> {
        let wrap_key = self.wrap_key();
        unwrap32(wrapped, wrap_key.expose_secret(), Error::WrongRecoveryKey)
            .map(AccountKey::from_bytes)
    }
}

/// The 5-bit value of one recovery-text character, after uppercasing and the O/I/L readings.
/// Only ASCII is read: anything else is a typo, whatever its Unicode uppercase might be.
fn symbol_value(c: char) -> Option<u8> {
    let c = match c.to_ascii_uppercase() {
        'O' => '0',
        'I' | 'L' => '1',
        other => other,
    };
    if !c.is_ascii() {
        return None;
    }
    ALPHABET
        .iter()
        .position(|&a| char::from(a) == c)
        .and_then(|p| u8::try_from(p).ok())
}

/// Symbol `i` of `raw` read big-endian, 5 bits at a time.
fn five_bits(raw: &[u8; 35], i: usize) -> u8 {
    let mut value = 0u8;
    for bit in i * 5..i * 5 + 5 {
        let b = (raw[bit / 8] >> (7 - bit % 8)) & 1;
        value = (value << 1) | b;
    }
    value
}

/// Writes symbol `i` into `raw`, big-endian, 5 bits at a time.
fn put_five_bits(raw: &mut [u8; 35], i: usize, value: u8) {
    for k in 0..5 {
        if (value >> (4 - k)) & 1 == 1 {
            let bit = i * 5 + k;
            raw[bit / 8] |= 1 << (7 - bit % 8);
        }
    }
}
