//! The node's root service: the object a connection's `root()` is.

use rwc_protocol::Value;
use serde_bytes::ByteBuf;

use crate::request::{requests, unit_or_default};
use crate::{InstanceOptions, NodeInfo, ObjectRef};

requests! {
    /// Uploads a Wasm binary or WAT text in one message; returns the module.
    Upload = "upload" -> ObjectRef { bytes: ByteBuf }
        "(bytes) upload a Wasm binary or WAT text; returns the module"

    /// Starts a chunked upload of `total_len` bytes; returns an uploader
    /// ([`crate::upload`]). Refused at once (`denied`) if that is over the node's limit.
    UploadStream = "upload_stream" -> ObjectRef { total_len: u64 }
        "(total_len) an uploader: write(bytes) chunks, then finish() returns the module"

    /// The module whose hash (lowercase hex SHA-256 of its upload) this is, if the node
    /// has it (in memory or in its disk cache); unit otherwise.
    ModuleByHash = "module" -> Option<ObjectRef> { hash: String }
        "(hash) the module with this SHA-256 if the node has it, else unit"

    /// A new instance of a module this node handed out.
    Instantiate = "instantiate" -> ObjectRef {
        module: ObjectRef,
        #[serde(default, deserialize_with = "unit_or_default")]
        options: InstanceOptions,
    }
    "(module, options?) a new instance of the module"

    /// Instantiates, calls `export` with `args`, frees the instance: one request.
    Run = "run" -> Value {
        module: ObjectRef,
        export: String,
        /// The export's arguments: a list (unit for none; any other value is the one
        /// argument).
        #[serde(default, deserialize_with = "call_args")]
        args: Vec<Value>,
        #[serde(default, deserialize_with = "unit_or_default")]
        options: InstanceOptions,
    }
    "(module, export, args, options?) instantiate, call, drop: one request"

    /// Runs a WASI command program (its `_start`) in a fresh instance, freed afterwards,
    /// the way `wasmtime run` does: the guest's stdout and stderr go to the output sink
    /// of `options` as written, and its exit status is the reply (0 when `_start`
    /// returns, N when it calls `proc_exit(N)`). A trap is an error, as for `run`.
    RunProgram = "run_program" -> ProgramExit {
        module: ObjectRef,
        #[serde(default, deserialize_with = "unit_or_default")]
        options: InstanceOptions,
    }
    "(module, options?) run a WASI command program's _start; its exit status"

    /// The node's version, counters and limits.
    Info = "info" -> NodeInfo {}
        "() version, limits, caches, live instances, uptime"

    /// A host capability the node's config grants this client, by name; unit if it does
    /// not grant it.
    Capability = "capability" -> Option<ObjectRef> { name: String }
        "(name) a host capability granted to this client"
}

/// How a WASI command program ended ([`RunProgram`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProgramExit {
    /// Its exit status: 0 when `_start` returned, N when it called `proc_exit(N)`.
    pub status: i32,
}

/// `run`'s arguments: a list, unit for none, or a single value.
fn call_args<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Value>, D::Error> {
    Ok(match <Value as serde::Deserialize>::deserialize(d)? {
        Value::List(args) => args,
        Value::Unit => Vec::new(),
        one => vec![one],
    })
}
