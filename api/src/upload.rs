//! An uploader netref (from [`root::UploadStream`](crate::root::UploadStream)): a module
//! sent in chunks, so a client can show progress and the node can refuse a module that is
//! too big before any byte arrives.

use serde_bytes::ByteBuf;

use crate::ObjectRef;
use crate::request::requests;

requests! {
    /// The next chunk; returns the bytes received so far.
    Write = "write" -> u64 { chunk: ByteBuf }
        "(bytes) the next chunk of the module"
    /// Checks that every announced byte arrived and compiles; returns the module.
    Finish = "finish" -> ObjectRef {}
        "() check that every announced byte arrived, compile; returns the module"
    /// Bytes received so far.
    Received = "received" -> u64 {}
        "() bytes received so far"
}
