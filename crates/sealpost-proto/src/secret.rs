//! Credentials on the wire: access, refresh and recovery tokens ([`Secret`]), and `auth_key`s
//! ([`SecretBytes`]). Both print `<redacted>`, compare in constant time, are wiped on drop, and
//! serialize as the JSON the protocol wants, so that the types holding them can derive `Debug`
//! and `Serialize` without a hand-written redaction each.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use subtle::ConstantTimeEq as _;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A secret text: a token, or the base64url text of a key as it arrived.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    /// Takes ownership of the text.
    pub fn new(text: String) -> Self {
        Secret(text)
    }

    /// The text, for the one place that must use it (a header, a hash, a decoder).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(text: String) -> Self {
        Secret(text)
    }
}

impl From<&str> for Secret {
    fn from(text: &str) -> Self {
        Secret(text.to_owned())
    }
}

/// A secret byte string, on the wire as canonical base64url (PROTOCOL §1).
#[derive(Clone, Default)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Takes ownership of the bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(bytes)
    }

    /// Copies the bytes.
    pub fn from_slice(bytes: &[u8]) -> Self {
        SecretBytes(bytes.to_vec())
    }

    /// The bytes, for the one place that must use them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(bytes: Vec<u8>) -> Self {
        SecretBytes(bytes)
    }
}

/// The house rules, once for both types.
macro_rules! secret_traits {
    ($name:ident) => {
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }

        impl PartialEq for $name {
            /// Constant time in the contents (the length is not secret).
            fn eq(&self, other: &Self) -> bool {
                let (a, b): (&[u8], &[u8]) = (self.0.as_ref(), other.0.as_ref());
                a.ct_eq(b).into()
            }
        }

        impl Eq for $name {}

        impl Zeroize for $name {
            fn zeroize(&mut self) {
                self.0.zeroize();
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                self.0.zeroize();
            }
        }

        impl ZeroizeOnDrop for $name {}
    };
}

secret_traits!(Secret);
secret_traits!(SecretBytes);

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

impl Serialize for SecretBytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut text = zeroize::Zeroizing::new(String::with_capacity(self.0.len().div_ceil(3) * 4));
        sealpost_crypto::b64::encode_into(&self.0, &mut text);
        serializer.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for SecretBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = zeroize::Zeroizing::new(String::deserialize(deserializer)?);
        sealpost_crypto::b64::decode(&text)
            .map(SecretBytes)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_nothing_and_json_is_the_protocols() {
        let token = Secret::from("tok-en_123");
        let key = SecretBytes::new(vec![0xfb; 32]);
        assert_eq!(format!("{token:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{key:?}"), "SecretBytes(<redacted>)");
        assert_eq!(serde_json::to_string(&token).unwrap(), "\"tok-en_123\"");
        let text = serde_json::to_string(&key).unwrap();
        assert_eq!(
            text,
            format!("\"{}\"", sealpost_crypto::b64::encode(&[0xfb; 32]))
        );
        let back: SecretBytes = serde_json::from_str(&text).unwrap();
        assert_eq!(back, key);
        assert_ne!(back, SecretBytes::new(vec![0xfb; 31]));
        // Not canonical base64url: refused.
        assert!(serde_json::from_str::<SecretBytes>("\"AA==\"").is_err());
    }
}
