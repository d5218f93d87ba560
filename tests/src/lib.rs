//! End-to-end tests of rwc (node, client and guests together), and what they share: the
//! example guest modules, built from source for wasm32-wasip1 by this crate's build script.

use std::path::Path;

pub mod nats_server;
pub mod process;
pub mod wordcount;

/// Paths of the example guests (`examples/`): `.wasm` files that `build.rs` compiled
/// from source, and WAT files the node compiles itself.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

/// The bytes of a guest module (a path from [`guests`]).
///
/// # Panics
/// If the file cannot be read: the build script made sure it exists, so this is a broken
/// checkout or build directory, and the test should fail saying which file.
pub fn guest_bytes(path: impl AsRef<Path>) -> Vec<u8> {
    let path = path.as_ref();
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read guest {}: {e}", path.display()))
}

/// `n` pseudo-random bytes (splitmix64 from `seed`): every byte value, in no pattern that
/// a codec could get right by accident. The same `seed` gives the same bytes.
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(n);
    out
}

/// The bytes the `blob` guest's `fill(n)` makes: 0, 1, …, 250, 0, 1, …
pub fn fill_pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| u8::try_from(i % 251).unwrap_or(0)).collect()
}
