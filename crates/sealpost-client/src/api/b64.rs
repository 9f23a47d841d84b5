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
