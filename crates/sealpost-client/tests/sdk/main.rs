//! The SDK's integration tests: one binary, a real server on port 0 per test with its own fresh
//! database, started exactly as the server's API tests start it (their `helpers.rs`, shared), each
//! test on SQLite and on PostgreSQL (`SEALPOST_TEST_POSTGRES`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code, unused_imports)]
#[path = "../../../sealpost-server/tests/api/helpers.rs"]
mod helpers;

mod support;

mod kdf;
mod lifecycle;
mod redaction;
mod replay;
mod session;
mod stream;
mod trust;
mod tutorial;
