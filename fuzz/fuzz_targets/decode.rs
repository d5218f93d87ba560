//! Arbitrary bytes as a peer (or a guest) could send them: read as a stream of frames and
//! decoded as messages, values and handshake answers. Nothing may panic or abort, and
//! whatever decodes must encode and decode back to the same thing.
//!
//! The check is the one the stable test `protocol/tests/decode_garbage.rs` runs over
//! 20 000 pseudo-random inputs; that file is included here so the two cannot drift.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../protocol/tests/decode_garbage.rs"]
mod decode_garbage;

fuzz_target!(|data: &[u8]| {
    decode_garbage::check(data);
});
