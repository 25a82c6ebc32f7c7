//! Arbitrary bytes through the server's frame decoding: `MessageBatch::decode`
//! and, when that succeeds, the per-envelope decode of every message.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = protoactor_remote::fuzz_decode_batch(data);
});
