//! # rwc-client
//!
//! Talk to rwc nodes: upload Wasm modules (skipping bytes a node already has), instantiate
//! them with limits and capabilities, call their exports with typed values, and stream
//! guest output while they run.
//!
//! ```no_run
//! # async fn demo() -> Result<(), rwc_client::Error> {
//! use rwc_client::{Client, InstanceOptions};
//!
//! let client = Client::connect("127.0.0.1:18870").await?;
//! let module = client.upload(&std::fs::read("add.wasm").unwrap()).await?;
//! let instance = client.instantiate(&module, InstanceOptions::default()).await?;
//! let sum: i64 = instance.call("add", (2, 3)).await?;
//! assert_eq!(sum, 5);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod client;
pub mod json;
mod options;

pub use client::{Client, Instance, Module, module_hash};
pub use options::{InstanceOptions, OutputHandler};
pub use rwc_protocol::{Error, ErrorKind, NetRef, Value, from_value, to_value};
