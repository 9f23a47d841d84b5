//! Field checks shared by the handlers: each turns wire text into a checked value, or into a 400
//! that names the field (parse, don't validate).

use sealpost_crypto::{b64, PublicKey};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use sealpost_proto::Secret;

use crate::config::kdf_bounds;
use crate::error::{ApiError, ApiResult};
use crate::store::Kdf;

/// Base64url bytes of exactly `len` bytes.
pub fn bytes(field: &str, text: &str, len: usize) -> ApiResult<Vec<u8>> {
    let raw = b64::decode(text)
        .map_err(|e| ApiError::invalid(field.to_owned(), format!("{field}: {e}")))?;
    if raw.len() != len {
        return Err(ApiError::invalid(
            field.to_owned(),
            format!(
                "{field} must be {len} bytes, base64url without padding (got {})",
                raw.len()
            ),
        ));
    }
    Ok(raw)
}

/// A 72-byte wrapped key (`nonce || secretbox(32-byte key)`, PROTOCOL §2.2).
pub fn wrapped(field: &str, text: &str) -> ApiResult<Vec<u8>> {
    bytes(field, text, 72)
}

/// A public key that is not of small order.
pub fn public_key(field: &str, text: &str) -> ApiResult<Vec<u8>> {
    let raw = bytes(field, text, 32)?;
    PublicKey::from_bytes(&raw)
        .map_err(|e| ApiError::invalid(field.to_owned(), format!("{field}: {e}")))?;
    Ok(raw)
}

/// A UUID in lowercase hyphenated text form (PROTOCOL §1).
pub fn uuid(field: &str, text: &str) -> ApiResult<Uuid> {
    let id = Uuid::try_parse(text)
        .ok()
        .filter(|id| id.hyphenated().to_string() == text);
    id.ok_or_else(|| {
        ApiError::invalid(
            field.to_owned(),
            format!("{field} must be a UUID in lowercase hyphenated form"),
        )
    })
}

/// A sealed envelope: canonical base64url, at most `max` bytes (else 413), and of the size every
/// envelope has, 88 + 256·k (PROTOCOL §3.1).
pub fn ciphertext(field: &str, text: &str, max: usize) -> ApiResult<Vec<u8>> {
    if text.len() > (max * 4).div_ceil(3) {
        return Err(too_large(field, max));
    }
    let raw = b64::decode(text)
        .map_err(|e| ApiError::invalid(field.to_owned(), format!("{field}: {e}")))?;
    if raw.len() > max {
        return Err(too_large(field, max));
    }
    if raw.len() < 344 || (raw.len() - 88) % 256 != 0 {
        return Err(ApiError::invalid(
            field.to_owned(),
            format!(
                "{field} is {} bytes, but a sealed, padded envelope is 88 + 256·k bytes (PROTOCOL §3): seal it with \
                 a Sealpost client",
                raw.len()
            ),
        ));
    }
    Ok(raw)
}

fn too_large(field: &str, max: usize) -> ApiError {
    ApiError::TooLarge {
        message: format!("{field} is larger than {max} bytes").into(),
        field: Some(field.to_owned().into()),
    }
}

/// A key version: a positive integer.
pub fn key_version(field: &str, v: i64) -> ApiResult<i64> {
    if v < 1 {
        return Err(ApiError::invalid(
            field.to_owned(),
            format!("{field} must be 1 or more"),
        ));
    }
    Ok(v)
}

/// Trims and lowercases the ASCII letters of an email, and refuses one that is not plausible
/// (PROTOCOL §1).
pub fn email(field: &str, text: &str) -> ApiResult<String> {
    let email = text.trim().to_ascii_lowercase();
    let plausible = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        });
    if !plausible {
        return Err(ApiError::invalid(
            field.to_owned(),
            format!("{field} is not a plausible email address (local@domain)"),
        ));
    }
    Ok(email)
}

/// A JSON integer, also when written with a zero fraction: `3381.0` is the integer 3381 to JSON
/// (and to JSON Schema), so it is read as one. Anything else that is not an integer of `T`'s range
/// is refused with serde's error, which names the field.
pub fn integer<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i128>,
{
    struct Visit;
    impl serde::de::Visitor<'_> for Visit {
        type Value = i128;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an integer")
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i128, E> {
            Ok(v.into())
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i128, E> {
            Ok(v.into())
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<i128, E> {
            // Within ±2^64 an f64 with no fraction converts exactly.
            if v.fract() == 0.0 && v.abs() < 18_446_744_073_709_551_616.0 {
                Ok(v as i128)
            } else {
                Err(E::invalid_value(serde::de::Unexpected::Float(v), &self))
            }
        }
    }
    let n = deserializer.deserialize_any(Visit)?;
    T::try_from(n).map_err(|_| {
        serde::de::Error::invalid_value(
            serde::de::Unexpected::Other("an integer out of range"),
            &"an integer in range",
        )
    })
}

/// Argon2id parameters on the wire (PROTOCOL §2.1).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KdfWire {
    /// Always `argon2id13`.
    pub alg: String,
    /// 16 bytes, base64url.
    pub salt: String,
    #[serde(deserialize_with = "integer")]
    pub opslimit: u64,
    /// In bytes.
    #[serde(deserialize_with = "integer")]
    pub memlimit: u64,
}

pub const KDF_FIELDS: &[&str] = &["alg", "salt", "opslimit", "memlimit"];

impl KdfWire {
    pub fn from_store(kdf: &Kdf) -> Self {
        KdfWire {
            alg: "argon2id13".into(),
            salt: b64::encode(&kdf.salt),
            opslimit: kdf.opslimit as u64,
            memlimit: kdf.memlimit as u64,
        }
    }

    /// Checks the parameters a client registers with (`prefix` = the field holding them).
    pub fn check(&self, prefix: &str) -> ApiResult<Kdf> {
        if self.alg != "argon2id13" {
            return Err(ApiError::invalid(
                format!("{prefix}.alg"),
                "kdf.alg must be argon2id13",
            ));
        }
        let salt = bytes(&format!("{prefix}.salt"), &self.salt, 16)?;
        if !(kdf_bounds::MIN_OPS..=kdf_bounds::MAX_OPS).contains(&self.opslimit) {
            return Err(ApiError::invalid(
                format!("{prefix}.opslimit"),
                format!(
                    "kdf.opslimit must lie within {}..={}",
                    kdf_bounds::MIN_OPS,
                    kdf_bounds::MAX_OPS
                ),
            ));
        }
        if !(kdf_bounds::MIN_MEM..=kdf_bounds::MAX_MEM).contains(&self.memlimit) {
            return Err(ApiError::invalid(
                format!("{prefix}.memlimit"),
                format!(
                    "kdf.memlimit must lie within {}..={} bytes",
                    kdf_bounds::MIN_MEM,
                    kdf_bounds::MAX_MEM
                ),
            ));
        }
        Ok(Kdf {
            salt,
            opslimit: self.opslimit as i64,
            memlimit: self.memlimit as i64,
        })
    }
}

/// A recovery wrap on the wire (PROTOCOL §2.3).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoveryWire {
    /// `recovery_auth_key`, 32 bytes.
    #[schema(value_type = String)]
    pub auth_key: Secret,
    /// The account key wrapped under the recovery wrap key, 72 bytes.
    pub wrapped_account_key: String,
}

pub const RECOVERY_FIELDS: &[&str] = &["auth_key", "wrapped_account_key"];

impl RecoveryWire {
    /// (SHA-256 of the recovery auth key, the recovery wrap).
    pub fn check(&self, prefix: &str) -> ApiResult<(Vec<u8>, Vec<u8>)> {
        let auth = bytes(&format!("{prefix}.auth_key"), self.auth_key.expose(), 32)?;
        let wrapped = wrapped(
            &format!("{prefix}.wrapped_account_key"),
            &self.wrapped_account_key,
        )?;
        Ok((sha256(&auth), wrapped))
    }
}

pub fn sha256(data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(data).to_vec()
}

/// RFC 3339 UTC with milliseconds, from Unix milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let mut out = String::with_capacity(24);
    crate::wire::rfc3339_into(&mut out, ms);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            email("email", "  Alice@Example.COM ").unwrap(),
            "alice@example.com"
        );
        assert_eq!(
            email("email", "Ünï@Example.com").unwrap(),
            "Ünï@example.com"
        );
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "a@b@c",
            "a b@c.d",
            "a@.com",
        ] {
            assert!(email("email", bad).is_err(), "{bad}");
        }
        assert!(email("email", &format!("{}@example.com", "a".repeat(250))).is_err());
    }

    #[test]
    fn uuids_must_be_lowercase_hyphenated() {
        let id = Uuid::new_v4().to_string();
        assert!(uuid("to", &id).is_ok());
        assert!(uuid("to", &id.to_uppercase()).is_err());
        assert!(uuid("to", &id.replace('-', "")).is_err());
    }

    #[test]
    fn ciphertext_sizes() {
        let ok = b64::encode(&[0u8; 344]);
        assert_eq!(ciphertext("ciphertext", &ok, 65_536).unwrap().len(), 344);
        let odd = b64::encode(&[0u8; 345]);
        assert!(matches!(
            ciphertext("ciphertext", &odd, 65_536),
            Err(ApiError::Invalid { .. })
        ));
        let big = b64::encode(&vec![0u8; 65_536 + 256]);
        assert!(matches!(
            ciphertext("ciphertext", &big, 65_536),
            Err(ApiError::TooLarge { .. })
        ));
    }

    #[test]
    fn times_are_rfc3339_with_millis() {
        assert_eq!(rfc3339(1_795_780_800_123), "2026-11-27T12:00:00.123Z");
    }
}
