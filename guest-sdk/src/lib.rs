//! # rwc-guest
//!
//! Write rwc guest modules in Rust. A guest is a `cdylib` built for `wasm32-wasip1` that a
//! client uploads to an rwc node; this crate implements the guest side of the rich ABI
//! (`docs/abi.md`), so that the guest's functions take and return ordinary serde types:
//!
//! - [`export`] makes a function callable by name, with typed arguments and result.
//!   Returning `Result<T, E>` sends an `Err` back as a remote error.
//! - [`object`] makes the `pub` methods of a type callable through a netref; wrap a value
//!   in an [`Object`] and return it, and the caller gets a netref to it.
//! - [`Remote`] is a netref the node holds for the guest (a client callback, a host
//!   capability): call its methods with [`Remote::call`]; get a capability with
//!   [`capability`].
//! - A panic reaches the caller as a `trapped` error with the panic message and location.
//!
//! ```
//! use std::collections::BTreeMap;
//!
//! use rwc_guest::{Error, GuestObject, Object, Remote, Value};
//!
//! /// Counts the words of `text`.
//! #[rwc_guest::export]
//! fn word_count(text: String) -> BTreeMap<String, u32> {
//!     let mut counts = BTreeMap::new();
//!     for word in text.split_whitespace() {
//!         *counts.entry(word.to_lowercase()).or_insert(0) += 1;
//!     }
//!     counts
//! }
//!
//! /// Calls the client's callback `cb` with each step; an error from it ends the loop.
//! #[rwc_guest::export]
//! fn run(steps: u32, cb: Remote) -> Result<u32, Error> {
//!     for step in 1..=steps {
//!         cb.call::<()>("call", (step,))?;
//!     }
//!     Ok(steps)
//! }
//!
//! struct Counter {
//!     value: i64,
//! }
//!
//! #[rwc_guest::object]
//! impl Counter {
//!     /// Adds `by` and returns the new value.
//!     pub fn incr(&mut self, by: i64) -> Result<i64, String> {
//!         self.value = self.value.checked_add(by).ok_or("counter overflow")?;
//!         Ok(self.value)
//!     }
//!
//!     pub fn get(&self) -> i64 {
//!         self.value
//!     }
//! }
//!
//! /// Returns a netref to a new counter.
//! #[rwc_guest::export]
//! fn new_counter(start: i64) -> Object {
//!     Object::new(Counter { value: start })
//! }
//!
//! # fn main() {
//! // Natively, the functions are plain functions and objects can be called directly;
//! // inside a node, the node calls `rwc_export_word_count` and friends.
//! assert_eq!(word_count("a b A".into())["a"], 2);
//! let mut counter = Counter { value: 1 };
//! assert_eq!(counter.call("incr", vec![Value::I64(2)]), Ok(Value::I64(3)));
//! assert_eq!(counter.methods(), ["incr", "get"]);
//! # }
//! ```
//!
//! Build the guest with `cargo build --release --target wasm32-wasip1` (crate type
//! `cdylib`). Natively (for a guest's unit tests) the crate builds too: the ABI exports
//! are left out and calls to the node fail with a clear error.
//!
//! Parameter and result types are anything serde can convert to and from an rwc
//! [`Value`]: numbers, `String`, `Vec`, maps, structs and enums with `#[derive]`,
//! `serde_bytes::ByteBuf` for bytes, `Value` itself, plus [`Remote`] and [`Object`].

// The one place where the ABI needs `unsafe` (raw exports, imports, guest memory).
mod abi;
mod entry;
mod handles;
mod object;
mod panic;
mod remote;

/// Makes a function callable by the node as a rich export.
///
/// `#[export] fn word_count(text: String) -> BTreeMap<String, u32>` generates the ABI
/// export `rwc_export_word_count`: it converts the positional arguments to the parameter
/// types (a call with the wrong number or types of arguments fails with a `bad argument`
/// error naming the function and parameter), calls the function and returns its result
/// as a value. If the declared return type is `Result<T, E>`, `Ok(t)` returns `t` and
/// `Err(e)` fails the call: an [`Error`] as it is (kind kept), any other `E: Display` as
/// a `failed` error with `e.to_string()`.
///
/// `#[export(name = "other")]` exports the function under another name. Parameters must
/// be owned types (`String`, not `&str`); the function may not be generic or `async`.
pub use rwc_guest_macros::export;

/// Makes the `pub` methods of an inherent `impl` block callable through a netref.
///
/// On `impl Counter { pub fn incr(&mut self, by: i64) -> i64 {..} }` it implements
/// [`GuestObject`] for `Counter`: methods with a `&self` or `&mut self` receiver become
/// callable by name, with the same argument and result conversions as [`export`]. Other
/// items (associated functions, private methods) are left alone. Wrap a value in
/// [`Object::new`] to hand it out.
pub use rwc_guest_macros::object;

pub use object::{GuestObject, METHODS_METHOD, Object, live_objects, no_such_method};
pub use remote::{Remote, capability};
pub use rwc_protocol::{Error, ErrorKind, Result, Value, from_value, to_value};
/// serde, re-exported so a guest can `#[derive(rwc_guest::serde::Serialize)]` without a
/// dependency of its own (with `#[serde(crate = "rwc_guest::serde")]`).
pub use serde;
/// `serde_bytes`, for `#[serde(with = "rwc_guest::serde_bytes")]` on byte fields.
pub use serde_bytes;
/// A byte buffer that serializes as bytes wherever it sits (`serde_bytes::ByteBuf`); a
/// plain `Vec<u8>` does too, as a parameter, a result or a field.
pub use serde_bytes::ByteBuf;

// Lets the macros' `::rwc_guest::…` paths resolve inside this crate's own tests.
#[cfg(test)]
extern crate self as rwc_guest;

/// Support for the code the macros generate. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use std::result::Result;
    pub use std::string::String;
    pub use std::vec::Vec;

    pub use rwc_protocol::{Error, Value};

    #[cfg(target_arch = "wasm32")]
    pub use crate::abi::export_entry;
    pub use crate::entry::{
        Args, BytesResult, ErrorWrap, Param, Ret, SerdeResult, TakeBytes, TakeValue, ViaDisplay,
        ViaRwcError, result_value,
    };
    pub use crate::object::{GuestObject, no_such_method};
}

#[cfg(test)]
mod tests;
