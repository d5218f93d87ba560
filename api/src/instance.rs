//! An instance netref: a live guest. Its exports are its methods (called by name with
//! their own arguments); the `rwc.*` methods reach its memory and lifecycle.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::module::ExportDescription;
use crate::request::requests;

requests! {
    /// The exports a client can call.
    Exports = "rwc.exports" -> Vec<ExportDescription> {}
        "() the callable exports"
    /// `len` bytes of the guest's exported memory at `offset`.
    ReadMemory = "rwc.read_memory" -> ByteBuf { offset: u64, len: u64 }
        "(offset, len) bytes of the guest's memory"
    /// Writes `bytes` into the guest's exported memory at `offset`.
    WriteMemory = "rwc.write_memory" -> () { offset: u64, bytes: ByteBuf }
        "(offset, bytes) write into the guest's memory"
    /// Fuel left, or unit if the instance is unmetered.
    Fuel = "rwc.fuel" -> Option<u64> {}
        "() fuel left, or unit if unmetered"
    /// The instance's id and module.
    Info = "rwc.info" -> InstanceInfo {}
        "() instance id and module hash"
    /// Frees the instance now; later calls fail.
    Close = "rwc.close" -> () {}
        "() free the instance now; later calls fail"
}

/// What `rwc.info` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceInfo {
    /// The instance's number on its node.
    pub id: u64,
    /// The hash of the module it was made from.
    pub module: String,
}
