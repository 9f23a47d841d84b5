//! Sealpost's client-side cryptography, exactly as PROTOCOL.md §1–3 and §6 describe it.
//!
//! Pure: no async, no I/O, no network or database crate, no `unsafe`. Every primitive is
//! libsodium's, built from maintained RustCrypto crates and pinned byte for byte by vectors that
//! real libsodium made (`tests/`), and checked the other way round by `interop/`.
//!
//! | module | PROTOCOL | what |
//! |---|---|---|
//! | [`b64`] | §1 | canonical base64url without padding |
//! | `keys` | §2 | [`PublicKey`] (never of small order), [`SecretKey`], [`KeyPair`] |
//! | `kdf` | §2.1 | [`KdfParams`] (validated before use), [`derive()`] → [`WrapKey`], [`AuthKey`] |
//! | `wrap` | §2.2 | [`AccountKey`], wrapped account and secret keys |
//! | `recovery` | §2.3 | [`RecoveryKey`]: text form, wrap and auth keys |
//! | [`envelope`] | §3 | [`Payload`], [`seal`], [`open`], [`open_sender_copy`], [`check_replay`], padding |
//! | `fingerprint` | §6 | [`fingerprint`], [`fingerprint_digits`], [`safety_number`] |
//!
//! Secrets ([`SecretKey`], [`WrapKey`], [`AuthKey`], [`AccountKey`], [`RecoveryKey`]) live boxed,
//! are wiped on drop, compare in constant time, print as `Name(<redacted>)`, and are neither
//! `Clone` nor `Serialize`. Errors ([`Error`]) say what failed, never why inside a primitive.
//!
//! ```
//! use sealpost_crypto::{derive, open, seal, AccountKey, KdfParams, KeyPair, Payload};
//! use uuid::Uuid;
//!
//! // Registration: keys from the password, the account key wrapped under the wrap key, the
//! // secret key wrapped under the account key. Only the auth key and wrapped keys are sent.
//! let kdf = KdfParams::interactive(); // a real client uses the limits `prelogin` answers
//! let (wrap_key, auth_key) = derive("correct horse battery staple", &kdf)?;
//! let account_key = AccountKey::generate();
//! let alice = KeyPair::generate();
//! let wrapped_account_key = account_key.wrap(&wrap_key);
//! let wrapped_secret_key = account_key.wrap_secret_key(alice.secret());
//! let _sent = (auth_key.to_base64(), alice.public().to_base64());
//!
//! // Login on another device: the same password unwraps everything again.
//! let (wrap_key, _) = derive("correct horse battery staple", &kdf)?;
//! let account_key = AccountKey::unwrap(&wrapped_account_key, &wrap_key)?;
//! let alice = account_key.unwrap_key_pair(&wrapped_secret_key, alice.public())?;
//!
//! // Alice writes to Bob; Bob opens and checks it.
//! let bob = KeyPair::generate();
//! let (alice_id, bob_id) = (Uuid::from_u128(0xa), Uuid::from_u128(0xb));
//! let now_ms = 1_795_780_800_123;
//! let payload = Payload::text(alice_id, bob_id, now_ms, "Hello, Bob!");
//! let ciphertext = seal(&payload, bob.public(), &alice);
//! let opened = open(&ciphertext, &bob, bob_id, alice_id, alice.public(), now_ms)?;
//! assert_eq!(opened, payload);
//! # Ok::<(), sealpost_crypto::Error>(())
//! ```

pub mod b64;
pub mod envelope;
mod error;
mod fingerprint;
mod kdf;
mod keys;
mod nacl;
mod recovery;
mod secret;
mod wrap;

pub use envelope::{check_replay, open, open_sender_copy, seal, seal_sender_copy, Payload};
pub use error::{Error, UnsupportedPayload};
pub use fingerprint::{fingerprint, fingerprint_digits, safety_number};
pub use kdf::{derive, AuthKey, KdfParams, WrapKey};
pub use keys::{KeyPair, PublicKey, SecretKey};
pub use recovery::RecoveryKey;
pub use wrap::{AccountKey, WRAPPED_LEN};
