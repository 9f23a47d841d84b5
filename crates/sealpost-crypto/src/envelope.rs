//! The message envelope (PROTOCOL §3): the JSON payload, `sodium_pad` to 256-byte blocks, and
//! `crypto_box_seal(n || crypto_box_easy(padded, n, recipient, sender), recipient)` with every
//! check a client must make when opening it.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Serialize;
use serde_json::{Map, Number, Value};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::error::UnsupportedPayload;
use crate::keys::{KeyPair, PublicKey};
use crate::nacl;
use crate::secret::random_array;
use crate::Error;

/// The padding block: a padded payload is a multiple of 256 bytes (§3.2).
pub const BLOCK: usize = 256;
/// The only payload version this crate speaks.
pub const VERSION: u64 = 1;
/// The only payload type version 1 defines.
pub const TEXT: &str = "text";
/// A payload `ts` further than this ahead of the receiver's clock is [`Error::Malformed`].
pub const MAX_FUTURE_MS: u64 = 5 * 60 * 1000;
/// What sealing adds to a padded payload: the sealed box's ephemeral key and tag (48), the inner
/// box's nonce and tag (40).
pub const OVERHEAD: usize = nacl::SEAL_OVERHEAD + nacl::NONCE_LEN + nacl::TAG_LEN;

/// A version-1 `text` payload, checked: `{"v":1,"id","from","to","ts","type":"text","body"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// Chosen by the sender; the replay check (§3.3 step 5) keys on it.
    pub id: Uuid,
    /// The sender's user id.
    pub from: Uuid,
    /// The recipient's user id.
    pub to: Uuid,
    /// Unix milliseconds, set by the sender.
    pub ts: u64,
    /// The message text.
    pub body: String,
}

impl Payload {
    /// A text payload with a fresh random id.
    pub fn text(from: Uuid, to: Uuid, ts: u64, body: impl Into<String>) -> Self {
        Self {
            id: uuid::Builder::from_random_bytes(random_array()).into_uuid(),
            from,
            to,
            ts,
            body: body.into(),
        }
    }

    /// The payload's JSON text, as it is sealed.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct Wire<'a> {
            v: u64,
            id: &'a Uuid,
            from: &'a Uuid,
            to: &'a Uuid,
            ts: u64,
            #[serde(rename = "type")]
            kind: &'static str,
            body: &'a str,
        }
        let wire = Wire {
            v: VERSION,
            id: &self.id,
            from: &self.from,
            to: &self.to,
            ts: self.ts,
            kind: TEXT,
            body: &self.body,
        };
        // Serialising strings, integers and UUIDs into a String cannot fail.
        serde_json::to_string(&wire).unwrap_or_default()
    }
}

/// `sodium_pad(unpadded, 256)`: ISO/IEC 7816-4 padding, `0x80` then zeros up to the next multiple
/// of 256 bytes; always at least one byte, so 256 bytes become 512.
pub fn pad(unpadded: &[u8]) -> Vec<u8> {
    let total = padded_len(unpadded.len());
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(unpadded);
    out.push(0x80);
    out.resize(total, 0);
    out
}

/// The length `sodium_pad` gives `len` bytes: the next multiple of 256 above `len`.
const fn padded_len(len: usize) -> usize {
    (len / BLOCK + 1) * BLOCK
}

/// `sodium_unpad(padded, 256)`: the payload before its padding, or [`Error::Malformed`] if the
/// length is not a positive multiple of 256 or the last block does not end in `0x80` then zeros.
///
/// It scans the whole last block whatever it holds, as libsodium does.
pub fn unpad(padded: &[u8]) -> Result<&[u8], Error> {
    if padded.is_empty() || padded.len() % BLOCK != 0 {
        return Err(Error::Malformed);
    }
    let start = padded.len() - BLOCK;
    let mut found = Choice::from(0);
    let mut ended = Choice::from(0);
    let mut marker = 0u64;
    for (i, byte) in padded[start..].iter().enumerate().rev() {
        let is_marker = byte.ct_eq(&0x80);
        let take = !ended & is_marker;
        marker.conditional_assign(&(i as u64), take);
        found |= take;
        ended |= !byte.ct_eq(&0);
    }
    if !bool::from(found) {
        return Err(Error::Malformed);
    }
    let marker = usize::try_from(marker).map_err(|_| Error::Malformed)?;
    Ok(&padded[..start + marker])
}

/// The ciphertext length for a payload of `payload_len` bytes of JSON: `88 + 256·k`.
pub const fn sealed_len(payload_len: usize) -> usize {
    OVERHEAD + padded_len(payload_len)
}

/// §3.2: seals `payload` to `recipient`, authenticated by `sender`'s key pair. The result is what
/// the server stores (send it base64url-encoded).
pub fn seal(payload: &Payload, recipient: &PublicKey, sender: &KeyPair) -> Vec<u8> {
    let json = Zeroizing::new(payload.to_json());
    seal_bytes(json.as_bytes(), recipient, sender)
}

/// §3.4: the sender copy of `payload`, sealed to the sender's own key.
pub fn seal_sender_copy(payload: &Payload, sender: &KeyPair) -> Vec<u8> {
    seal(payload, sender.public(), sender)
}

/// Seals arbitrary payload bytes (valid JSON or not), for tests and interop vectors.
#[doc(hidden)]
pub fn seal_bytes(payload: &[u8], recipient: &PublicKey, sender: &KeyPair) -> Vec<u8> {
    let padded = Zeroizing::new(pad(payload));
    seal_padded(&padded, recipient, sender)
}

/// Seals bytes taken as already padded (correctly or not), for tests and interop vectors: the
/// inner box with a fresh nonce, then the sealed box around it.
#[doc(hidden)]
pub fn seal_padded(padded: &[u8], recipient: &PublicKey, sender: &KeyPair) -> Vec<u8> {
    let inner = inner_with_nonce(padded, recipient, sender, &random_array());
    nacl::box_seal(&inner, recipient)
}

/// `crypto_box_seal(inner, recipient)` of arbitrary inner bytes, for tests and interop vectors.
#[doc(hidden)]
pub fn seal_inner(inner: &[u8], recipient: &PublicKey) -> Vec<u8> {
    nacl::box_seal(inner, recipient)
}

/// `n || crypto_box_easy(padded, n, recipient, sender)` with a given nonce, to reproduce test
/// vectors. Never reuse a nonce.
#[doc(hidden)]
pub fn inner_with_nonce(
    padded: &[u8],
    recipient: &PublicKey,
    sender: &KeyPair,
    nonce: &[u8; 24],
) -> Vec<u8> {
    nacl::nonce_and_box(padded, nonce, recipient, sender.secret())
}

/// §3.3 steps 1–4 and the future-`ts` rule for an entry of my mailbox that someone else sent:
/// `from` is the entry's sender and `sender_key` that sender's public key at the entry's
/// `sender_key_version`, checked against the pinned one (§6). `now_ms` is the receiver's clock.
///
/// Errors: [`Error::NotForMe`] (not sealed to `me`, or addressed to someone else),
/// [`Error::Forged`] (not boxed by `sender_key`, or naming another sender), [`Error::Malformed`],
/// [`Error::UnsupportedType`]. Replays are the caller's to check, with [`check_replay`].
pub fn open(
    ciphertext: &[u8],
    me: &KeyPair,
    my_id: Uuid,
    from: Uuid,
    sender_key: &PublicKey,
    now_ms: u64,
) -> Result<Payload, Error> {
    open_checked(ciphertext, me, sender_key, from, my_id, now_ms)
}

/// §3.4: opens a sender copy, an entry of my mailbox whose `from` is me and whose `to` (the
/// entry's) is the peer. `me` is my key pair at the entry's `key_version`.
pub fn open_sender_copy(
    ciphertext: &[u8],
    me: &KeyPair,
    my_id: Uuid,
    to: Uuid,
    now_ms: u64,
) -> Result<Payload, Error> {
    open_checked(ciphertext, me, me.public(), my_id, to, now_ms)
}

/// §3.3 step 5: `first_entry` is the mailbox entry id the keystore holds for this payload's id
/// (`None` if it holds none yet, and then the caller records `entry_id`). The same payload in a
/// different entry is [`Error::Replayed`]; reading the same entry again is fine.
pub fn check_replay(entry_id: Uuid, first_entry: Option<Uuid>) -> Result<(), Error> {
    match first_entry {
        Some(first) if first != entry_id => Err(Error::Replayed),
        _ => Ok(()),
    }
}

fn open_checked(
    ciphertext: &[u8],
    me: &KeyPair,
    sender_key: &PublicKey,
    expected_from: Uuid,
    expected_to: Uuid,
    now_ms: u64,
) -> Result<Payload, Error> {
    // Step 1: only my key pair opens the sealed box.
    let inner = nacl::box_seal_open(ciphertext, me.secret()).ok_or(Error::NotForMe)?;
    // Step 2: anyone can seal to me, so an inner box that does not open is a forgery.
    let padded = nacl::open_nonce_and_box(&inner, sender_key, me.secret()).ok_or(Error::Forged)?;
    // Step 3.
    let json = std::str::from_utf8(unpad(&padded)?).map_err(|_| Error::Malformed)?;
    let fields = parse_fields(json)?;
    // Step 4.
    if fields.from != expected_from {
        return Err(Error::Forged);
    }
    if fields.to != expected_to {
        return Err(Error::NotForMe);
    }
    if fields.ts > now_ms.saturating_add(MAX_FUTURE_MS) {
        return Err(Error::Malformed);
    }
    if fields.kind != TEXT {
        return Err(Error::UnsupportedType(Box::new(UnsupportedPayload {
            id: fields.id,
            from: fields.from,
            to: fields.to,
            ts: fields.ts,
            kind: fields.kind,
        })));
    }
    let Some(Value::String(body)) = fields.body else {
        return Err(Error::Malformed);
    };
    Ok(Payload {
        id: fields.id,
        from: fields.from,
        to: fields.to,
        ts: fields.ts,
        body,
    })
}

/// The fields every version-1 payload has, whatever its type.
struct Fields {
    id: Uuid,
    from: Uuid,
    to: Uuid,
    ts: u64,
    kind: String,
    body: Option<Value>,
}

/// Parses the payload JSON strictly: one object, no duplicate key at any depth, `v` = 1, UUIDs in
/// canonical lowercase form, `ts` a non-negative integer, `type` a string. Unknown fields are
/// ignored.
fn parse_fields(json: &str) -> Result<Fields, Error> {
    let StrictValue(value) = serde_json::from_str(json).map_err(|_| Error::Malformed)?;
    let Value::Object(mut object) = value else {
        return Err(Error::Malformed);
    };
    if object.get("v").and_then(Value::as_u64) != Some(VERSION) {
        return Err(Error::Malformed);
    }
    let uuid = |object: &Map<String, Value>, name: &str| -> Result<Uuid, Error> {
        let text = object
            .get(name)
            .and_then(Value::as_str)
            .ok_or(Error::Malformed)?;
        let id = Uuid::try_parse(text).map_err(|_| Error::Malformed)?;
        // §1: ids are lowercase hyphenated; any other spelling is refused, not normalised.
        if id.hyphenated().to_string() != text {
            return Err(Error::Malformed);
        }
        Ok(id)
    };
    Ok(Fields {
        id: uuid(&object, "id")?,
        from: uuid(&object, "from")?,
        to: uuid(&object, "to")?,
        ts: object
            .get("ts")
            .and_then(Value::as_u64)
            .ok_or(Error::Malformed)?,
        kind: object
            .get("type")
            .and_then(Value::as_str)
            .ok_or(Error::Malformed)?
            .to_owned(),
        body: object.remove("body"),
    })
}

/// A JSON value that refuses an object with a duplicate key anywhere inside it (serde_json alone
/// would silently keep the last one).
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value without duplicate object keys")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number JSON cannot hold"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom("duplicate key"));
            }
            let StrictValue(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpad_refuses_what_pad_never_makes() {
        assert_eq!(unpad(&pad(b"")).unwrap(), b"");
        assert!(unpad(&[]).is_err());
        assert!(unpad(&[0u8; 256]).is_err());
        assert!(unpad(&[0x80u8; 255]).is_err());
        let mut last_byte_garbage = pad(b"abc");
        *last_byte_garbage.last_mut().unwrap() = 1;
        assert!(unpad(&last_byte_garbage).is_err());
        let mut marker_in_earlier_block = pad(&[0x41; 100]);
        marker_in_earlier_block.resize(512, 0);
        assert!(unpad(&marker_in_earlier_block).is_err());
        let mut full = vec![0x41u8; 255];
        full.push(0x80);
        assert_eq!(unpad(&full).unwrap(), &[0x41u8; 255][..]);
        let mut marker_first = vec![0u8; 256];
        marker_first[0] = 0x80;
        assert_eq!(unpad(&marker_first).unwrap(), b"");
    }

    #[test]
    fn strict_json_refuses_duplicates_at_any_depth() {
        assert!(serde_json::from_str::<StrictValue>(r#"{"a":1,"a":1}"#).is_err());
        assert!(serde_json::from_str::<StrictValue>(r#"{"a":{"b":1,"b":2}}"#).is_err());
        assert!(serde_json::from_str::<StrictValue>(r#"{"a":[{"b":1,"\u0062":2}]}"#).is_err());
        let StrictValue(v) = serde_json::from_str(r#"{"a":[1,-2,3.5,null,true,"x"]}"#).unwrap();
        assert_eq!(v, serde_json::json!({"a":[1,-2,3.5,null,true,"x"]}));
    }

    #[test]
    fn replay_rule() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert_eq!(check_replay(a, None), Ok(()));
        assert_eq!(check_replay(a, Some(a)), Ok(()));
        assert_eq!(check_replay(b, Some(a)), Err(Error::Replayed));
    }

    #[test]
    fn sealed_length_is_88_plus_blocks() {
        let alice = KeyPair::generate();
        let bob = KeyPair::generate();
        for len in [0usize, 1, 255, 256, 257, 1000] {
            let ct = seal_bytes(&vec![b'a'; len], bob.public(), &alice);
            assert_eq!(ct.len(), sealed_len(len), "{len}");
        }
        assert_eq!(sealed_len(0), 344);
        assert_eq!(sealed_len(65_279), 65_368);
    }
}
