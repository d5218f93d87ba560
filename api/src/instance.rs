//! An instance netref: a live guest. Its exports are its methods (called by name with
//! their own arguments); the `rwc.*` methods reach its memory and lifecycle.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::Request;
use crate::module::ExportDescription;
use crate::request::requests;

requests! {
    /// The exports a client can call.
    Exports = "rwc.exports" -> Vec<ExportDescription> {}
    /// `len` bytes of the guest's exported memory at `offset`.
    ReadMemory = "rwc.read_memory" -> ByteBuf { offset: u64, len: u64 }
    /// Writes `bytes` into the guest's exported memory at `offset`.
    WriteMemory = "rwc.write_memory" -> () { offset: u64, bytes: ByteBuf }
    /// Fuel left, or unit if the instance is unmetered.
    Fuel = "rwc.fuel" -> Option<u64> {}
    /// The instance's id and module.
    Info = "rwc.info" -> InstanceInfo {}
    /// Frees the instance now; later calls fail.
    Close = "rwc.close" -> () {}
}

/// The `rwc.*` methods every instance has (beside its exports), as introspection lists
/// them.
pub const METHODS: &[(&str, &str)] = &[
    (Exports::METHOD, "() the callable exports"),
    (
        ReadMemory::METHOD,
        "(offset, len) bytes of the guest's memory",
    ),
    (
        WriteMemory::METHOD,
        "(offset, bytes) write into the guest's memory",
    ),
    (Fuel::METHOD, "() fuel left, or unit if unmetered"),
    (Info::METHOD, "() instance id and module hash"),
    (Close::METHOD, "() free the instance now; later calls fail"),
];

/// What `rwc.info` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceInfo {
    /// The instance's number on its node.
    pub id: u64,
    /// The hash of the module it was made from.
    pub module: String,
}
