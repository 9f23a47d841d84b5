//! The Sealpost Rust SDK.
//!
//! Layout, from the bottom up:
//!
//! - [`api`]: the raw typed HTTP layer. One async method per endpoint of PROTOCOL §4 and §5 on
//!   [`Api`], the wire types with binary values as plain bytes, and the server's error shape as
//!   [`ApiError`]. It does no cryptography: it sends what it is given and checks only that the
//!   answer is the protocol's.
//!
//! The layers above it (sealing and opening messages, wrapping keys, a keystore, key pinning)
//! build on [`api`] and are where a caller should normally start once they exist.

pub mod api;

pub use api::{Api, ApiError};
