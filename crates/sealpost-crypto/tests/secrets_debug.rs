//! A snapshot of every secret type's `Debug` output: it names the type and shows no byte of the
//! secret in any encoding.

#![allow(clippy::unwrap_used)] // a test's panic is its failure report

use sealpost_crypto::{b64, derive, AccountKey, KdfParams, KeyPair, RecoveryKey, SecretKey};

fn encodings(bytes: &[u8; 32]) -> Vec<String> {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        b64::encode(bytes),
        hex.clone(),
        hex.to_uppercase(),
        format!("{bytes:?}"),
        format!("{:?}", &bytes[..4]),
        format!(
            "{}",
            bytes[..8]
                .iter()
                .map(|b| b.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ]
}

fn assert_redacted(debug: &str, expected: &str, secret: &[u8; 32]) {
    assert_eq!(debug, expected);
    for encoding in encodings(secret) {
        assert!(!debug.contains(&encoding), "{debug} shows {encoding}");
    }
}

#[test]
fn secret_debug_output_is_redacted() {
    let (wrap_key, auth_key) = derive("hunter2", &KdfParams::interactive()).unwrap();
    assert_redacted(
        &format!("{wrap_key:?}"),
        "WrapKey(<redacted>)",
        wrap_key.expose_secret(),
    );
    assert_redacted(
        &format!("{auth_key:?}"),
        "AuthKey(<redacted>)",
        auth_key.expose_secret(),
    );

    let account_key = AccountKey::generate();
    assert_redacted(
        &format!("{account_key:?}"),
        "AccountKey(<redacted>)",
        account_key.expose_secret(),
    );

    let recovery = RecoveryKey::generate();
    let debug = format!("{recovery:?}");
    assert_redacted(&debug, "RecoveryKey(<redacted>)", recovery.expose_secret());
    assert!(!debug.contains(recovery.to_text().as_str()));

    let secret = SecretKey::from_bytes([0x42; 32]);
    assert_redacted(&format!("{secret:?}"), "SecretKey(<redacted>)", &[0x42; 32]);

    let pair = KeyPair::generate();
    let debug = format!("{pair:?}");
    assert_eq!(
        debug,
        format!(
            "KeyPair {{ public: PublicKey({}), secret: SecretKey(<redacted>) }}",
            pair.public().to_base64()
        )
    );
    for encoding in encodings(pair.secret().expose_secret()) {
        assert!(!debug.contains(&encoding));
    }
    // Alternate formatting too.
    assert!(!format!("{pair:#?}").contains(&b64::encode(pair.secret().expose_secret())));
}
