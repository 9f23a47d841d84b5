//! The SDK's integration tests: one binary, a real server on port 0 per test with its own fresh
//! database, started exactly as the server's API tests start it (the shared test kit), each
//! test on SQLite and on PostgreSQL (`SEALPOST_TEST_POSTGRES`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The shared test kit (`crates/sealpost-testkit`), under the name these tests have always used.
mod helpers {
    pub use sealpost_testkit::*;
}

pub(crate) use sealpost_testkit::both;

mod support;

mod evil;
mod kdf;
mod lifecycle;
mod redaction;
mod replay;
mod session;
mod stream;
mod transport;
mod trust;
mod tutorial;
