//! The stream's first frame (PROTOCOL §4.2) and the decision it leads to, before the session is
//! looked up (`sealpost_server::fuzzing::stream_first_frame`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sealpost_server::fuzzing::stream_first_frame(data));
