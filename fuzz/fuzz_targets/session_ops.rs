//! An `Arbitrary` sequence of operations on a connection pair over the in-memory transport,
//! and a raw peer sending messages with extreme field values: nothing panics, every call
//! is answered as it must be, and afterwards every export and import table is empty, no
//! call is pending, no task is left running and every object was freed.
//!
//! The session is `run` of `protocol/tests/session_ops.rs`, the stable test that CI runs
//! over 300 random inputs; it is included here so the two cannot drift.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../protocol/tests/session_ops.rs"]
mod session_ops;

fuzz_target!(|data: &[u8]| {
    session_ops::run(data);
});
