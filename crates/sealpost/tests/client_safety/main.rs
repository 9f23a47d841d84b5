//! The CLI binary as a person runs it, against a real server: the transport rule and TLS
//! (`--ca-cert`, `--insecure-http`, PROTOCOL §7) in `transport`, and output that shows what a
//! server or a sender supplied without letting a terminal interpret it in `output`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod output;
mod support;
mod transport;
