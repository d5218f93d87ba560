//! The guest ABI's constants (`docs/abi.md`): the names, numbers and buffer layout that the
//! node's side (`rwc-node`) and the guest's side (`rwc-guest`) must agree on.

/// The version of the ABI that `docs/abi.md` describes.
pub const VERSION: u32 = 1;

/// The import module of the node's host functions.
pub const IMPORT_MODULE: &str = "rwc";

/// The host functions a guest imports from [`IMPORT_MODULE`].
pub mod import {
    /// `call(handle: i64, ptr: i32, len: i32) -> i32`: calls a method on a netref the
    /// guest holds; returns the length of the encoded result.
    pub const CALL: &str = "call";
    /// `take_result(ptr: i32, len: i32)`: copies the last `call`'s result into the guest.
    pub const TAKE_RESULT: &str = "take_result";
    /// `capability(ptr: i32, len: i32) -> i64`: a handle to a capability by name, or
    /// [`NO_CAPABILITY`](super::NO_CAPABILITY).
    pub const CAPABILITY: &str = "capability";
    /// `release(handle: i64)`: gives one reference to a handle back.
    pub const RELEASE: &str = "release";
    /// `panic(ptr: i32, len: i32)`: reports a panic message before trapping.
    pub const PANIC: &str = "panic";
}

/// The exports a guest provides.
pub mod export {
    /// The guest's linear memory, where every buffer lives.
    pub const MEMORY: &str = "memory";
    /// `rwc_alloc(len: i32) -> i32`: a buffer the node fills.
    pub const ALLOC: &str = "rwc_alloc";
    /// `rwc_dealloc(ptr: i32, len: i32)`: frees a buffer.
    pub const DEALLOC: &str = "rwc_dealloc";
    /// `rwc_object_call(ptr: i32, len: i32) -> i64`: a method call on a guest object.
    pub const OBJECT_CALL: &str = "rwc_object_call";
    /// `rwc_object_drop(object: i64)`: the node holds no more references to an object.
    pub const OBJECT_DROP: &str = "rwc_object_drop";
    /// Prefix of rich exports: `rwc_export_NAME` is callable as `NAME` with values.
    pub const RICH_PREFIX: &str = "rwc_export_";
    /// A WASI reactor's initialiser, which the node runs once at instantiation.
    pub const INITIALIZE: &str = "_initialize";
    /// The exports that make a module an SDK module (one that speaks the rich ABI).
    pub const SDK: [&str; 3] = [ALLOC, DEALLOC, MEMORY];
}

/// The custom section in which the guest SDK records the signature and doc of each rich
/// export: one JSON object ([`ExportSignature`](crate::module::ExportSignature)) per line.
/// Optional: a module without it is described with unknown signatures.
pub const SIGNATURES_SECTION: &str = "rwc.exports";

/// What `rwc.capability` returns when no capability of that name was handed over.
pub const NO_CAPABILITY: i64 = -1;

/// Guest object ids start at this; 0 is never an object.
pub const FIRST_OBJECT_ID: u64 = 1;

/// Longest panic message the node keeps from a guest, in bytes.
pub const MAX_PANIC_MESSAGE: usize = 64 * 1024;

/// The method name reserved for introspection: a guest object answers it with a list of
/// `{"name", "doc"}` maps.
pub const METHODS_METHOD: &str = "rwc.methods";

/// The export a rich export `name` is compiled to: `rwc_export_NAME`.
pub fn rich_export_symbol(name: &str) -> String {
    format!("{}{name}", export::RICH_PREFIX)
}

/// The name a client calls the export `symbol` by, if it is a rich export.
pub fn rich_export_name(symbol: &str) -> Option<&str> {
    symbol
        .strip_prefix(export::RICH_PREFIX)
        .filter(|name| !name.is_empty())
}

/// Whether the export `name` is the ABI's own plumbing (`rwc_*`, `_initialize`): never
/// listed as callable, never called by a client.
pub fn is_plumbing(name: &str) -> bool {
    name.starts_with("rwc_") || name == export::INITIALIZE
}

/// A buffer as one `i64`: `(ptr << 32) | len`, both unsigned 32-bit.
pub fn pack(ptr: u32, len: u32) -> i64 {
    ((u64::from(ptr) << 32) | u64::from(len)).cast_signed()
}

/// `(ptr, len)` of a packed buffer.
pub fn unpack(packed: i64) -> (u32, u32) {
    let bits = packed.cast_unsigned();
    // Both halves fit in 32 bits by construction; the fallbacks are unreachable.
    let ptr = u32::try_from(bits >> 32).unwrap_or(u32::MAX);
    let len = u32::try_from(bits & 0xffff_ffff).unwrap_or(u32::MAX);
    (ptr, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_pack_and_unpack() {
        assert_eq!(unpack(pack(16, 8)), (16, 8));
        assert_eq!(pack(16, 8), (16 << 32) | 8);
        assert_eq!(unpack(-1), (u32::MAX, u32::MAX));
        assert_eq!(unpack(pack(u32::MAX, 0)), (u32::MAX, 0));
    }

    #[test]
    fn rich_exports_and_plumbing() {
        assert_eq!(rich_export_symbol("add"), "rwc_export_add");
        assert_eq!(rich_export_name("rwc_export_add"), Some("add"));
        assert_eq!(rich_export_name("rwc_export_"), None);
        assert_eq!(rich_export_name("add"), None);
        assert!(is_plumbing("rwc_alloc") && is_plumbing("rwc_export_add"));
        assert!(is_plumbing("_initialize"));
        assert!(!is_plumbing("_start") && !is_plumbing("add"));
    }
}
