//! # rwc-client
//!
//! Talk to rwc nodes: upload Wasm modules (skipping bytes a node already has), instantiate
//! them with limits and capabilities, call their exports with typed values, and stream
//! guest output while they run. Split work across many nodes with a [`Pool`].
//!
//! - [`Client`]: one node, over TCP ([`Client::connect`]), TLS, a Unix socket, the pipes
//!   of a child process ([`Client::connect_stdio`]), or SSH (`ssh://[USER@]HOST[:PORT]`,
//!   [`ssh`]). [`ConnectOptions`] (TLS settings, token, ssh options) say how to connect;
//!   [`Address`] lists the address forms (`HOST:PORT`, `unix:/path`, `tls://HOST:PORT`,
//!   `tls+unix:/path`); `ssh://` is [`ssh::SshAddress`].
//! - [`Module`] and [`Instance`]: what the node holds for you; an instance's exports are
//!   called by name with typed arguments.
//! - [`Pool`]: many nodes; [`Pool::map`] runs an export over many inputs with results in
//!   input order, and survives nodes dying.
//! - [`discovery`]: where a pool's nodes come from (a list, DNS, the registry).
//! - [`registry`]: where nodes list themselves and clients find them by tag.
//!
//! ```no_run
//! # async fn demo() -> Result<(), rwc_client::Error> {
//! use rwc_client::{Client, InstanceOptions, OutputHandler};
//!
//! let client = Client::connect("127.0.0.1:18870").await?;
//! // The node compiles WAT text as well as Wasm binaries.
//! let wat = r#"(module (func (export "add") (param i64 i64) (result i64)
//!                 local.get 0 local.get 1 i64.add))"#;
//! let module = client.upload(wat.as_bytes()).await?;
//! let options = InstanceOptions {
//!     fuel: Some(1_000_000),
//!     output: Some(OutputHandler::stderr().into()),
//!     ..InstanceOptions::default()
//! };
//! let instance = client.instantiate(&module, options).await?;
//! let sum: i64 = instance.call("add", (2, 3)).await?;
//! assert_eq!(sum, 5);
//! # Ok(()) }
//! ```
//!
//! Every async method documents what dropping its future does ("Cancel safety"): for a
//! remote call, it cancels the call on the node.
#![forbid(unsafe_code)]

mod client;
pub mod discovery;
pub mod nats;
mod output;
pub mod pool;
pub mod ssh;

pub use client::{Client, Instance, Module, UPLOAD_CHUNK, module_hash, request};
pub use output::OutputHandler;
pub use pool::{
    EachResult, MapOptions, MapProgress, MapReport, NodeProgress, NodeReport, Pool, ProgressFn,
    ResultFn,
};
pub use rwc_api::module::ExportDescription;
pub use rwc_api::{self as api, InstanceOptions, NodeInfo, ObjectRef};
pub use rwc_protocol::{
    Address, ConnectOptions, Error, ErrorKind, NetRef, PendingCall, Service, TlsClientConfig,
    Token, Value, callable, from_value, to_value,
};
pub use rwc_registry as registry;
