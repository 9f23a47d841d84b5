//! Password → `wrap_key` and `auth_key` (PROTOCOL §2.1): Argon2id v1.3 with libsodium's limits,
//! refusing weak or odd parameters from a server before deriving anything.

use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

use crate::secret::{random_array, secret_bytes};
use crate::{b64, Error};

/// The password hash's salt and limits, as `prelogin` answers them and registration sends them:
/// `{"alg":"argon2id13","salt":…,"opslimit":…,"memlimit":…}` in JSON.
///
/// The fields are public so that a caller can build them, but [`derive()`] validates them itself and
/// deserialising refuses what [`KdfParams::validate`] refuses: weak parameters never reach Argon2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// `crypto_pwhash_SALTBYTES` random bytes, fresh for each password.
    pub salt: [u8; 16],
    /// Argon2id passes (libsodium's `opslimit`).
    pub opslimit: u64,
    /// Argon2id memory in bytes (libsodium's `memlimit`); Argon2 gets `memlimit / 1024` KiB.
    pub memlimit: u64,
}

impl KdfParams {
    /// The only algorithm name version 1 knows (`crypto_pwhash_ALG_ARGON2ID13`).
    pub const ALG: &'static str = "argon2id13";
    /// `crypto_pwhash_OPSLIMIT_INTERACTIVE`.
    pub const OPSLIMIT_INTERACTIVE: u64 = 2;
    /// `crypto_pwhash_MEMLIMIT_INTERACTIVE` (64 MiB).
    pub const MEMLIMIT_INTERACTIVE: u64 = 67_108_864;
    /// `crypto_pwhash_OPSLIMIT_MODERATE`, the protocol's default.
    pub const OPSLIMIT_MODERATE: u64 = 3;
    /// `crypto_pwhash_MEMLIMIT_MODERATE` (256 MiB), the protocol's default.
    pub const MEMLIMIT_MODERATE: u64 = 268_435_456;
    /// Nothing weaker than INTERACTIVE is accepted.
    pub const OPSLIMIT_MIN: u64 = Self::OPSLIMIT_INTERACTIVE;
    /// Nothing slower than this is accepted, so a server cannot make a client hang.
    pub const OPSLIMIT_MAX: u64 = 10;
    /// Nothing weaker than INTERACTIVE is accepted.
    pub const MEMLIMIT_MIN: u64 = Self::MEMLIMIT_INTERACTIVE;
    /// Nothing bigger than 1 GiB is accepted, so a server cannot exhaust a client's memory.
    pub const MEMLIMIT_MAX: u64 = 1_073_741_824;

    /// Parameters with these limits and a fresh random salt, for registration or a password
    /// change; refuses limits outside the bounds.
    pub fn new(opslimit: u64, memlimit: u64) -> Result<Self, Error> {
        let params = Self {
            salt: random_array(),
            opslimit,
            memlimit,
        };
        params.validate()?;
        Ok(params)
    }

    /// INTERACTIVE limits (what a test setup uses) with a fresh random salt.
    pub fn interactive() -> Self {
        Self {
            salt: random_array(),
            opslimit: Self::OPSLIMIT_INTERACTIVE,
            memlimit: Self::MEMLIMIT_INTERACTIVE,
        }
    }

    /// MODERATE limits (the protocol's default) with a fresh random salt.
    pub fn moderate() -> Self {
        Self {
            salt: random_array(),
            opslimit: Self::OPSLIMIT_MODERATE,
            memlimit: Self::MEMLIMIT_MODERATE,
        }
    }

    /// Checks a `kdf` as a server sent it: `alg` must be `argon2id13`, `salt` canonical base64url
    /// of 16 bytes, and the limits within the bounds. Call it on a `prelogin` answer before
    /// deriving anything.
    pub fn from_wire(alg: &str, salt: &str, opslimit: u64, memlimit: u64) -> Result<Self, Error> {
        if alg != Self::ALG {
            return Err(Error::InvalidKdf("the algorithm is not argon2id13"));
        }
        let salt = b64::decode(salt).map_err(|_| Error::InvalidKdf("the salt is not base64url"))?;
        let salt: [u8; 16] = salt
            .try_into()
            .map_err(|_| Error::InvalidKdf("the salt is not 16 bytes"))?;
        let params = Self {
            salt,
            opslimit,
            memlimit,
        };
        params.validate()?;
        Ok(params)
    }

    /// Refuses limits outside `[2, 10]` passes × `[64 MiB, 1 GiB]`: a hostile server could
    /// otherwise hand out weak limits and brute-force the password from the `auth_key`.
    pub fn validate(&self) -> Result<(), Error> {
        if self.opslimit < Self::OPSLIMIT_MIN {
            return Err(Error::InvalidKdf("opslimit is below the minimum of 2"));
        }
        if self.opslimit > Self::OPSLIMIT_MAX {
            return Err(Error::InvalidKdf("opslimit is above the maximum of 10"));
        }
        if self.memlimit < Self::MEMLIMIT_MIN {
            return Err(Error::InvalidKdf("memlimit is below the minimum of 64 MiB"));
        }
        if self.memlimit > Self::MEMLIMIT_MAX {
            return Err(Error::InvalidKdf("memlimit is above the maximum of 1 GiB"));
        }
        Ok(())
    }

    /// The salt as base64url, as it travels in JSON.
    pub fn salt_base64(&self) -> String {
        b64::encode(&self.salt)
    }
}

/// The JSON shape of [`KdfParams`].
#[derive(Serialize, Deserialize)]
struct KdfJson {
    alg: String,
    salt: String,
    opslimit: u64,
    memlimit: u64,
}

impl Serialize for KdfParams {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        KdfJson {
            alg: Self::ALG.to_owned(),
            salt: self.salt_base64(),
            opslimit: self.opslimit,
            memlimit: self.memlimit,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for KdfParams {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = KdfJson::deserialize(deserializer)?;
        Self::from_wire(&json.alg, &json.salt, json.opslimit, json.memlimit)
            .map_err(serde::de::Error::custom)
    }
}

secret_bytes! {
    /// The first half of the password's Argon2id output: it wraps the account key and never
    /// leaves the client.
    WrapKey
}

secret_bytes! {
    /// The second half of the password's Argon2id output (or the recovery key's auth key): the
    /// client's proof of the password, sent instead of it.
    AuthKey
}

impl WrapKey {
    /// The raw bytes, for tests and interop vectors only: a wrap key never leaves the client.
    pub fn expose_secret(&self) -> &[u8; 32] {
        self.bytes()
    }
}

impl AuthKey {
    /// The key as base64url, to send as `auth_key` (or `recovery.auth_key`,
    /// `current_auth_key`, `recovery_auth_key`).
    ///
    /// Sending it is safe: it is the half of a 512-bit Argon2id output that is independent of the
    /// wrap key, so the server learns nothing about the wrap key from it, and getting at the
    /// password from it costs a full Argon2id guess per candidate (which is why weak parameters
    /// are refused). The server stores only its SHA-256.
    pub fn to_base64(&self) -> String {
        b64::encode(self.bytes())
    }

    /// The raw bytes (the server's SHA-256 is taken over these).
    pub fn expose_secret(&self) -> &[u8; 32] {
        self.bytes()
    }
}

/// §2.1: `crypto_pwhash(64, NFC(password), salt, opslimit, memlimit, ARGON2ID13)` split into
/// `(wrap_key, auth_key)`. Validates `params` first. Slow on purpose (about a second at MODERATE).
pub fn derive(password: &str, params: &KdfParams) -> Result<(WrapKey, AuthKey), Error> {
    params.validate()?;
    let m_cost = u32::try_from(params.memlimit / 1024)
        .map_err(|_| Error::InvalidKdf("memlimit is above the maximum of 1 GiB"))?;
    let t_cost = u32::try_from(params.opslimit)
        .map_err(|_| Error::InvalidKdf("opslimit is above the maximum of 10"))?;
    let argon_params = Params::new(m_cost, t_cost, 1, Some(64))
        .map_err(|_| Error::InvalidKdf("parameters Argon2id does not accept"))?;

    // NFC never grows text by more than three times, so this buffer is never reallocated and no
    // unwiped copy of the password is left behind.
    let mut normalized = Zeroizing::new(String::with_capacity(password.len() * 3));
    normalized.extend(password.nfc());

    let mut master = Zeroizing::new([0u8; 64]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params)
        .hash_password_into(normalized.as_bytes(), &params.salt, master.as_mut_slice())
        .map_err(|_| Error::InvalidKdf("parameters Argon2id does not accept"))?;

    let (wrap, auth) = master.split_at(32);
    match (WrapKey::from_slice(wrap), AuthKey::from_slice(auth)) {
        (Some(wrap_key), Some(auth_key)) => Ok((wrap_key, auth_key)),
        _ => Err(Error::InvalidKdf("parameters Argon2id does not accept")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_enforced_before_deriving() {
        let salt = [0u8; 16];
        let ok = |opslimit, memlimit| {
            KdfParams {
                salt,
                opslimit,
                memlimit,
            }
            .validate()
            .is_ok()
        };
        assert!(ok(2, 67_108_864));
        assert!(ok(10, 1_073_741_824));
        assert!(!ok(1, 67_108_864));
        assert!(!ok(11, 67_108_864));
        assert!(!ok(2, 67_108_863));
        assert!(!ok(2, 1_073_741_825));
        assert!(!ok(u64::MAX, u64::MAX));
        let weak = KdfParams {
            salt,
            opslimit: 1,
            memlimit: 8192,
        };
        assert!(matches!(derive("pw", &weak), Err(Error::InvalidKdf(_))));
    }

    #[test]
    fn wire_form_is_checked() {
        let salt = b64::encode(&[1u8; 16]);
        assert!(KdfParams::from_wire("argon2id13", &salt, 2, 67_108_864).is_ok());
        assert!(KdfParams::from_wire("argon2i13", &salt, 2, 67_108_864).is_err());
        assert!(
            KdfParams::from_wire("argon2id13", &b64::encode(&[1u8; 15]), 2, 67_108_864).is_err()
        );
        assert!(KdfParams::from_wire("argon2id13", "AA==", 2, 67_108_864).is_err());
        let json =
            format!(r#"{{"alg":"argon2id13","salt":"{salt}","opslimit":1,"memlimit":67108864}}"#);
        assert!(serde_json::from_str::<KdfParams>(&json).is_err());
        let good = KdfParams::interactive();
        let text = serde_json::to_string(&good).unwrap();
        assert_eq!(serde_json::from_str::<KdfParams>(&text).unwrap(), good);
        assert!(text.contains(r#""alg":"argon2id13""#));
    }
}
