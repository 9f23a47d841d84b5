//! Every request body's extraction: the first byte picks a route's body type, the rest is the
//! body, read by the server's own strict JSON extraction and field checks
//! (`sealpost_server::fuzzing::body`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sealpost_server::fuzzing::body(data));
