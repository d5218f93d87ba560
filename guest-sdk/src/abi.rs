//! Everything the node sees: the exports and imports of the rich ABI (`docs/abi.md`), and
//! the raw memory handling behind them. All of the crate's `unsafe` is in this file.
//!
//! On targets other than `wasm32` there is no node: the imports are replaced by stubs that
//! fail with [`NO_NODE`], and the raw exports are left out, so the rest of the crate (and a
//! guest's own unit tests) build and run natively.

#![allow(unsafe_code)]

use rwc_protocol::Error;

/// What an import stub says on a target that has no node behind it.
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) const NO_NODE: &str =
    "rwc imports exist only inside an rwc node (build the guest for wasm32-wasip1)";

/// Calls method `method` on the node handle `handle` with an encoded `(method, args)`
/// buffer; returns the encoded `Result<Value, Error>` the node answered.
pub(crate) fn call(handle: u64, request: &[u8]) -> Result<Vec<u8>, Error> {
    imp::call(handle, request)
}

/// Looks up a capability by name: `Ok(Some(handle))`, or `Ok(None)` if it was not handed
/// to this instance.
pub(crate) fn capability(name: &str) -> Result<Option<u64>, Error> {
    imp::capability(name)
}

/// Gives one reference to a node handle back.
pub(crate) fn release(handle: u64) {
    imp::release(handle);
}

/// Tells the node why the guest is about to trap.
pub(crate) fn report_panic(message: &str) {
    imp::report_panic(message);
}

#[cfg(target_arch = "wasm32")]
pub use wasm::export_entry;

#[cfg(target_arch = "wasm32")]
use wasm as imp;

#[cfg(not(target_arch = "wasm32"))]
use host as imp;

/// The handles released so far on this thread (native unit tests only), emptying the list.
#[cfg(all(test, not(target_arch = "wasm32")))]
pub(crate) fn take_released_for_tests() -> Vec<u64> {
    host::RELEASED.with(|r| std::mem::take(&mut *r.borrow_mut()))
}

/// The panic messages reported so far on this thread (native unit tests only).
#[cfg(all(test, not(target_arch = "wasm32")))]
pub(crate) fn take_panics_for_tests() -> Vec<String> {
    host::PANICS.with(|p| std::mem::take(&mut *p.borrow_mut()))
}

/// Stubs for native builds: there is no node to talk to.
#[cfg(not(target_arch = "wasm32"))]
mod host {
    use rwc_protocol::{Error, ErrorKind};

    use super::NO_NODE;

    pub(super) fn call(_handle: u64, _request: &[u8]) -> Result<Vec<u8>, Error> {
        Err(Error::new(ErrorKind::Unimplemented, NO_NODE))
    }

    pub(super) fn capability(_name: &str) -> Result<Option<u64>, Error> {
        Err(Error::new(ErrorKind::Unimplemented, NO_NODE))
    }

    pub(super) fn release(_handle: u64) {
        #[cfg(test)]
        RELEASED.with(|r| r.borrow_mut().push(_handle));
    }

    pub(super) fn report_panic(_message: &str) {
        #[cfg(test)]
        PANICS.with(|p| p.borrow_mut().push(_message.to_owned()));
    }

    // What the stubs were asked to do, for the crate's unit tests.
    #[cfg(test)]
    thread_local! {
        pub(super) static RELEASED: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
        pub(super) static PANICS: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
    }
}

#[cfg(target_arch = "wasm32")]
mod wasm {
    use std::alloc::{Layout, alloc, handle_alloc_error};
    use std::ptr::{self, NonNull};

    use rwc_protocol::{Error, Value};

    use crate::{entry, panic};

    // The names are rwc_api::abi::IMPORT_MODULE and rwc_api::abi::import::*; attributes
    // take only literals.
    #[link(wasm_import_module = "rwc")]
    unsafe extern "C" {
        #[link_name = "call"]
        fn rwc_call(handle: i64, ptr: i32, len: i32) -> i32;
        #[link_name = "take_result"]
        fn rwc_take_result(ptr: i32, len: i32);
        #[link_name = "capability"]
        fn rwc_capability(ptr: i32, len: i32) -> i64;
        #[link_name = "release"]
        fn rwc_release(handle: i64);
        #[link_name = "panic"]
        fn rwc_panic(ptr: i32, len: i32);
    }

    /// `rwc_alloc(len) -> ptr`: a buffer of `len` bytes, alignment 1, that the node fills
    /// and passes to an export (which then owns it) or hands back with `rwc_dealloc`.
    #[unsafe(no_mangle)]
    pub extern "C" fn rwc_alloc(len: i32) -> i32 {
        let len = from_abi(len);
        if len == 0 {
            return to_abi(NonNull::<u8>::dangling().as_ptr());
        }
        let Ok(layout) = Layout::array::<u8>(len) else {
            // More than the address space: the same answer as an allocator that is full.
            handle_alloc_error(Layout::new::<u8>())
        };
        // SAFETY: `layout` has a non-zero size.
        let p = unsafe { alloc(layout) };
        if p.is_null() {
            handle_alloc_error(layout);
        }
        to_abi(p)
    }

    /// `rwc_dealloc(ptr, len)`: frees a buffer from `rwc_alloc` or one an export returned.
    #[unsafe(no_mangle)]
    pub extern "C" fn rwc_dealloc(ptr: i32, len: i32) {
        // SAFETY: the ABI says the node passes back only buffers from `rwc_alloc` or
        // returned by an export, with their length, once; both are `Box<[u8]>` layouts.
        drop(unsafe { take_buffer(ptr, len) });
    }

    /// `rwc_object_call(ptr, len) -> packed`: a method call on a guest object.
    #[unsafe(no_mangle)]
    pub extern "C" fn rwc_object_call(ptr: i32, len: i32) -> i64 {
        panic::install_hook();
        // SAFETY: the node passes a buffer it filled from `rwc_alloc(len)`, and gives it to us.
        let input = unsafe { take_buffer(ptr, len) };
        give_buffer(crate::object::call_from_node(input))
    }

    /// `rwc_object_drop(object)`: the node holds no more references to a guest object.
    #[unsafe(no_mangle)]
    pub extern "C" fn rwc_object_drop(object: i64) {
        if let Ok(id) = u64::try_from(object) {
            crate::object::drop_from_node(id);
        }
    }

    /// The body of every `rwc_export_NAME` the `#[export]` attribute generates.
    pub fn export_entry(ptr: i32, len: i32, f: fn(Vec<Value>) -> Result<Value, Error>) -> i64 {
        panic::install_hook();
        // SAFETY: the node passes a buffer it filled from `rwc_alloc(len)`, and gives it to us.
        let input = unsafe { take_buffer(ptr, len) };
        give_buffer(entry::run_export(input, f))
    }

    pub(super) fn call(handle: u64, request: &[u8]) -> Result<Vec<u8>, Error> {
        let handle = i64::try_from(handle)
            .map_err(|_| Error::bad_argument(format!("handle {handle} is out of range")))?;
        let (ptr, len) = slice_to_abi(request)?;
        // SAFETY: `ptr..ptr+len` is `request`, live and readable for the whole call; the
        // node only reads it.
        let n = unsafe { rwc_call(handle, ptr, len) };
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| Error::protocol(format!("rwc.call returned length {n}")))?;
        let mut result = vec![0u8; n];
        let len = abi_len(n)?;
        let ptr = to_abi(result.as_mut_ptr());
        // SAFETY: `ptr..ptr+len` is `result`, `n` bytes borrowed mutably for the call:
        // exactly what `rwc.take_result` writes.
        unsafe { rwc_take_result(ptr, len) };
        Ok(result)
    }

    pub(super) fn capability(name: &str) -> Result<Option<u64>, Error> {
        let (ptr, len) = slice_to_abi(name.as_bytes())?;
        // SAFETY: `ptr..ptr+len` is `name`, live and readable for the call.
        let handle = unsafe { rwc_capability(ptr, len) };
        match handle {
            rwc_api::abi::NO_CAPABILITY => Ok(None),
            h => u64::try_from(h)
                .map(Some)
                .map_err(|_| Error::protocol(format!("rwc.capability returned handle {h}"))),
        }
    }

    pub(super) fn release(handle: u64) {
        if let Ok(h) = i64::try_from(handle) {
            // SAFETY: a plain call with a number; the node checks the handle.
            unsafe { rwc_release(h) };
        }
    }

    pub(super) fn report_panic(message: &str) {
        if let Ok((ptr, len)) = slice_to_abi(message.as_bytes()) {
            // SAFETY: `ptr..ptr+len` is `message`, live and readable for the call.
            unsafe { rwc_panic(ptr, len) };
        }
    }

    /// Takes ownership of a buffer the node got from `rwc_alloc` (or an export returned).
    ///
    /// # Safety
    /// `ptr` and `len` must describe a buffer from `rwc_alloc(len)` or from
    /// [`give_buffer`], not freed nor taken before.
    unsafe fn take_buffer(ptr: i32, len: i32) -> Vec<u8> {
        let len = from_abi(len);
        if len == 0 {
            return Vec::new();
        }
        let p = ptr::with_exposed_provenance_mut::<u8>(from_abi(ptr));
        // SAFETY: by the caller's contract, `p` was allocated by the global allocator with
        // `Layout::array::<u8>(len)`, which is the layout of a `Box<[u8]>` of `len` bytes.
        unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(p, len)) }.into_vec()
    }

    /// Gives a buffer to the node as a packed `(ptr << 32) | len`; the node hands it back
    /// with `rwc_dealloc`.
    fn give_buffer(bytes: Vec<u8>) -> i64 {
        // Lossless: lengths are 32 bits on wasm32.
        #[allow(clippy::cast_possible_truncation)]
        let len = bytes.len() as u32;
        let ptr = to_abi(Box::into_raw(bytes.into_boxed_slice()).cast::<u8>());
        rwc_api::abi::pack(ptr.cast_unsigned(), len)
    }

    /// An ABI `i32` (unsigned by the ABI) as a `usize`.
    fn from_abi(n: i32) -> usize {
        // Lossless: `usize` is 32 bits on wasm32.
        n.cast_unsigned() as usize
    }

    fn to_abi(p: *mut u8) -> i32 {
        // Lossless: addresses are 32 bits on wasm32.
        #[allow(clippy::cast_possible_truncation)]
        (p.expose_provenance() as u32).cast_signed()
    }

    /// A buffer the node only reads.
    fn slice_to_abi(bytes: &[u8]) -> Result<(i32, i32), Error> {
        Ok((to_abi(bytes.as_ptr().cast_mut()), abi_len(bytes.len())?))
    }

    fn abi_len(len: usize) -> Result<i32, Error> {
        u32::try_from(len)
            .map(u32::cast_signed)
            .map_err(|_| Error::bad_argument("buffer larger than 4 GiB"))
    }
}
