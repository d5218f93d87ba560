//! Arbitrary bytes read as a stream of frames, as a peer sends them: delivered a few bytes
//! at a time, with reads that must wait. Nothing may panic; every frame read must write
//! back to the bytes it was read from, and its payload goes through the message checks;
//! and a length prefix that claims more than arrives must not be allocated beyond the
//! reader's fixed first reservation.
//!
//! The checks are `for_each_frame` and `check_frames` of `protocol/tests/decode_garbage.rs`, the stable test that
//! CI runs; it is included here so the two cannot drift. The memory check needs this
//! binary's counting allocator.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rwc_fuzz::peak_during;

#[global_allocator]
static ALLOC: rwc_fuzz::Counting = rwc_fuzz::Counting;

#[path = "../../protocol/tests/decode_garbage.rs"]
mod decode_garbage;

/// What a connection accepts by default (`ConnectionConfig::max_frame`).
const CONNECTION_MAX_FRAME: usize = 128 * 1024 * 1024;

/// What the frame reader reserves for a payload before any of it arrived.
const FIRST_RESERVATION: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    // Under a connection's frame limit, prefixes claim up to 128 MiB: the reader may
    // reserve its first MiB, and beyond that only grow with what arrives (by doubling).
    // A payload that arrives whole may end up in a buffer of twice its size (the reader
    // probes for more), and a growing buffer is briefly held twice.
    let (_, peak) =
        peak_during(|| decode_garbage::for_each_frame(data, CONNECTION_MAX_FRAME, drop));
    let limit = FIRST_RESERVATION + 3 * data.len() + 4096;
    assert!(
        peak <= limit,
        "reading {} bytes of frames held {peak} bytes at once, over the bound of {limit}",
        data.len()
    );
    decode_garbage::check_frames(data);
});
