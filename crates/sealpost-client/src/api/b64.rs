//! `#[serde(with = "b64")]` for `Vec<u8>`: binary fields as canonical base64url (PROTOCOL §1);
//! reading refuses any non-canonical text.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

pub fn serialize<S, B>(bytes: &B, serializer: S) -> Result<S::Ok, S::Error>
where
    S: Serializer,
    B: AsRef<[u8]> + ?Sized,
{
    serializer.serialize_str(&sealpost_crypto::b64::encode(bytes.as_ref()))
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    let text = String::deserialize(deserializer)?;
    sealpost_crypto::b64::decode(&text).map_err(D::Error::custom)
}

/// `#[serde(with = "b64::option")]` for `Option<Vec<u8>>`.
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(
        bytes: &Option<Vec<u8>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => super::serialize(bytes, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| sealpost_crypto::b64::decode(&text).map_err(D::Error::custom))
            .transpose()
    }
}
