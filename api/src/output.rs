//! The output sink a client hands over
//! ([`InstanceOptions::output`](crate::InstanceOptions::output)): the node calls it with
//! the guest's output while the guest runs.

use serde_bytes::ByteBuf;

use crate::request::requests;

/// The guest's standard output.
pub const STDOUT: &str = "stdout";
/// The guest's standard error.
pub const STDERR: &str = "stderr";
/// Lines the guest logs through the `log` capability.
pub const LOG: &str = "log";

requests! {
    /// A chunk of output on `stream` ([`STDOUT`], [`STDERR`] or [`LOG`]).
    Write = "write" -> () { stream: String, bytes: ByteBuf }
        "(stream, bytes) a chunk of the guest's stdout, stderr or log"
}
