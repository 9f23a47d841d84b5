//! The server's API tests: one binary, a real server on port 0 per test, a fresh database per
//! test, each test run on SQLite and on PostgreSQL (`SEALPOST_TEST_POSTGRES`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod accounts;
mod auth;
mod concurrency;
mod lifecycle;
mod messages;
mod ops;
mod storage;
mod stream;
mod users;
