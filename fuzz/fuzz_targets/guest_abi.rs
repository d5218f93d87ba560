//! A guest (`node/tests/guests/abi_fuzz.wat`) that runs the input as a program: it hands
//! the node fuzzer-chosen pointers, lengths, handles and encoded values through every ABI
//! entry point, while a client callback calls back into its objects. The node never
//! panics, always answers with a value or an error, and once the instance is dropped it is
//! freed and the node holds nothing of the client.
//!
//! The check is `Harness::run` of `node/tests/guest_abi.rs`, the stable test that CI runs
//! over 400 random programs; it is included here so the two cannot drift. One node and one
//! compiled guest serve every input; each input gets a fresh instance.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

#[path = "../../node/tests/guest_abi.rs"]
mod guest_abi;

fuzz_target!(|data: &[u8]| {
    static HARNESS: OnceLock<guest_abi::Harness> = OnceLock::new();
    HARNESS.get_or_init(guest_abi::Harness::new).run(data);
});
