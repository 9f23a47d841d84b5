//! The Sealpost Rust SDK: an async client for the Sealpost API that does every piece of
//! cryptography on the client (PROTOCOL.md), keeps a local keystore, and pins contacts' keys.
//!
//! ```no_run
//! use futures_util::StreamExt as _;
//! use sealpost_client::{Client, Error, FileKeystore, RegisterOptions, StreamEvent};
//!
//! # async fn tour() -> Result<(), Error> {
//! // Alice registers (with a recovery key, shown once) and is signed in.
//! let alice = Client::new("http://127.0.0.1:8080", FileKeystore::open("/tmp/alice")?);
//! let options = RegisterOptions { recovery_key: true, ..Default::default() };
//! let registered = alice.register("alice@example.com", "correct horse", options).await?;
//! if let Some(text) = &registered.recovery_key {
//!     println!("write this down: {}", text.as_str());
//! }
//!
//! // She writes to Bob: his key is pinned on first use, and a later change is an error.
//! match alice.send("bob@example.com", "Hello, Bob!").await {
//!     Ok(sent) => println!("sent as #{}", sent.seq),
//!     Err(Error::KeyChanged(change)) => {
//!         println!("{change}"); // compare the safety number, then:
//!         alice.trust("bob@example.com").await?;
//!     }
//!     Err(e) => return Err(e),
//! }
//!
//! // Bob, in a later run: the keystore holds his keys wrapped; the password unwraps them.
//! let bob = Client::from_keystore(FileKeystore::open("/tmp/bob")?, "http://127.0.0.1:8080")?;
//! bob.unlock("another password").await?;
//! for received in bob.fetch(0, None).await?.messages {
//!     match received.message {
//!         Ok(m) => println!("{:?}: {}", m.from_email, m.text),
//!         Err(e) => println!("#{} cannot be shown: {e}", received.entry.seq),
//!     }
//! }
//!
//! // Or live, resuming by itself after a disconnect.
//! let mut live = bob.stream(0);
//! while let Some(event) = live.next().await {
//!     if let StreamEvent::Message(received) = event? {
//!         if let Ok(m) = received.message {
//!             println!("{}", m.text);
//!         }
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Layout, from the bottom up:
//!
//! - [`api`]: the raw typed HTTP layer. One async method per endpoint of PROTOCOL §4 and §5 on
//!   [`Api`], the wire types with binary values as plain bytes and credentials (tokens, auth
//!   keys, wrapped account keys) as [`Secret`] and [`SecretBytes`], which print `<redacted>`, and
//!   the server's error shape as [`ApiError`]. It does no cryptography.
//! - [`keystore`]: what a client keeps between runs ([`Stored`]): server, account, tokens, the
//!   *wrapped* keys and kdf, pinned contacts, the replay cache; never the password or an
//!   unwrapped key. [`FileKeystore`] (a directory, 0700 / 0600, one writer at a time across
//!   processes through [`Keystore::lock`]) and [`MemoryKeystore`].
//! - [`Client`] (`client`): the session, refreshed once on a 401; the unlocked keys in memory.
//!   Its operations live beside it by domain: `account` (register, login, unlock, logout,
//!   sessions), `contacts` (lookup, pinning, [`Client::trust`], safety numbers; the pinning rules
//!   of §6 themselves are pure functions in `pins`), `messages`
//!   (send, fetch, open with every check of §3.3, delete), `stream` (the live WebSocket),
//!   `lifecycle` (§5: [`Client::change_password`], [`Client::new_recovery_key`],
//!   [`Client::recover`], [`Client::rotate_keys`], [`Client::delete_account`]).
//! - [`Transport`] (`transport`): how a server is reached (PROTOCOL §7): `https://` and `wss://`
//!   with the web's roots or the CAs given, plain HTTP only to loopback unless the user opts
//!   in, connect and request timeouts. [`Client::with_transport`] takes one.
//! - [`Error`] (`error`): one error type; each check of §3.3, and the key change, contact change
//!   and forged key of §6, has its own variant.

pub mod api;
pub mod keystore;

mod account;
mod client;
mod contacts;
mod error;
mod lifecycle;
mod messages;
mod pins;
mod stream;
mod transport;

pub use account::{normalize_email, RegisterOptions, Registration};
pub use api::{Api, ApiError, Secret, SecretBytes, Session};
pub use client::{Client, Identity, KdfObserver, KdfProgress};
pub use contacts::{format_safety_number, Contact, ContactRef, SafetyNumbers};
pub use error::{ContactChange, Error, ForgeryReason, KeyChange, KeyForgery};
pub use keystore::{FileKeystore, Keystore, KeystoreError, KeystoreLock, MemoryKeystore, Stored};
pub use messages::{Entry, Message, Page, Received, SendOptions, Sent, MAX_PAYLOAD_BYTES};
pub use stream::StreamEvent;
pub use transport::{Transport, TransportError, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT};
