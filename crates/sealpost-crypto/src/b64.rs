//! Base64url without padding, canonical form only (PROTOCOL §1).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::Error;

/// Encodes bytes as base64url without padding.
pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Appends the base64url (no padding) of `bytes` to `out`, without a separate allocation.
pub fn encode_into(bytes: &[u8], out: &mut String) {
    URL_SAFE_NO_PAD.encode_string(bytes, out);
}

/// Decodes canonical base64url without padding; refuses `=`, `+`, `/`, whitespace, a length of
/// 1 mod 4 and non-zero unused bits, with a message that says which.
pub fn decode(text: &str) -> Result<Vec<u8>, Error> {
    let bytes = text.as_bytes();
    if bytes.contains(&b'=') {
        return Err(Error::Base64("padding '=' is not allowed"));
    }
    if bytes
        .iter()
        .any(|b| !(b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_'))
    {
        return Err(Error::Base64("only A-Z a-z 0-9 - _ are allowed"));
    }
    if bytes.len() % 4 == 1 {
        return Err(Error::Base64("impossible length"));
    }
    // The engine's default config rejects non-zero trailing bits, so decoding is canonical.
    URL_SAFE_NO_PAD
        .decode(bytes)
        .map_err(|_| Error::Base64("non-zero unused bits in the last character"))
}

/// Decodes into exactly `N` bytes.
pub fn decode_array<const N: usize>(text: &str) -> Result<[u8; N], Error> {
    decode(text)?
        .try_into()
        .map_err(|_| Error::Base64("wrong decoded length"))
}
