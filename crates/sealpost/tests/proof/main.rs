//! Proofs against the real binary (issue 13, point 8), each on SQLite and on PostgreSQL (when
//! `SEALPOST_TEST_POSTGRES` is set): acknowledged sends survive SIGKILL (`crash`), no secret
//! reaches the database files, a dump or the debug log (`canary`, with the byte scans of `scan`),
//! and overload is shed with 503 while nothing acknowledged is lost (`shed`). Each prints one
//! `PROOF` line of numbers (run with `--nocapture` to read them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod canary;
mod crash;
mod scan;
mod shed;
mod support;
