//! What the Sealpost server and its clients share of PROTOCOL.md, defined once: the stream's
//! close codes (§4.2), the error codes (§4), and the types that carry credentials on the wire.
//!
//! Also the one helper both sides use to take a lock ([`sync::lock`]).
//!
//! It depends on no async, HTTP or database crate, so the SDK can use it without pulling in the
//! server's stack, and the server without the SDK's.

pub mod close;
pub mod error_code;
mod secret;
pub mod sync;

pub use secret::{Secret, SecretBytes};
