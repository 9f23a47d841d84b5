//! The server's API tests: one binary, a real server on port 0 per test, a fresh database per
//! test, each test run on SQLite and on PostgreSQL (`SEALPOST_TEST_POSTGRES`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The shared test kit, under the name these tests have always used.
mod helpers {
    pub use sealpost_testkit::*;
}
pub(crate) use sealpost_testkit::both;

mod accounts;
mod auth;
mod concurrency;
mod connections;
mod group_commit;
mod lifecycle;
mod limits;
mod messages;
mod migrations;
mod ops;
mod retention;
mod storage;
mod stream;
mod users;
mod web;
