//! Canonical base64url (PROTOCOL §1): decoding never panics, and whatever decodes encodes back to
//! the very same text (so no two texts decode to the same bytes); encoding always decodes back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealpost_crypto::b64;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(bytes) = b64::decode(text) {
            assert_eq!(
                b64::encode(&bytes),
                text,
                "decode accepted a non-canonical text"
            );
            let fixed = b64::decode_array::<32>(text);
            assert_eq!(fixed.is_ok(), bytes.len() == 32);
        }
    }
    let text = b64::encode(data);
    assert_eq!(b64::decode(&text).ok().as_deref(), Some(data));
});
