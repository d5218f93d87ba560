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
