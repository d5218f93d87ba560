//! An uploader netref (from [`root::UploadStream`](crate::root::UploadStream)): a module
//! sent in chunks, so a client can show progress and the node can refuse a module that is
//! too big before any byte arrives.

use serde_bytes::ByteBuf;

use crate::request::requests;
use crate::{ObjectRef, Request};

requests! {
    /// The next chunk; returns the bytes received so far.
    Write = "write" -> u64 { chunk: ByteBuf }
    /// Checks that every announced byte arrived and compiles; returns the module.
    Finish = "finish" -> ObjectRef {}
    /// Bytes received so far.
    Received = "received" -> u64 {}
}

/// An uploader's methods, as introspection lists them.
pub const METHODS: &[(&str, &str)] = &[
    (Write::METHOD, "(bytes) the next chunk of the module"),
    (
        Finish::METHOD,
        "() check that every announced byte arrived, compile; returns the module",
    ),
    (Received::METHOD, "() bytes received so far"),
];
