//! Access token verification with a fixed key (`sealpost_server::fuzzing::jwt`): never a panic,
//! never a token accepted that the key did not sign.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sealpost_server::fuzzing::jwt(data));
