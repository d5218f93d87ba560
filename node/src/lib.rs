//! `rwc-node`: the rwc daemon's library. A node accepts Wasm modules from clients,
//! compiles them once (cached by content hash), and runs them in a wasmtime sandbox with
//! hard limits on memory, time, fuel and output.
//!
//! - [`sandbox`] is the core: engine, module caches, instances and their limits.
//! - [`Node`] puts a sandbox behind the rwc protocol: each connection's root is a
//!   [`service::RootService`] (upload, module, instantiate, run, info, capability).
//! - [`instance`]: a live instance as a netref, and the actor that runs its calls.
//! - `abi`: the node's side of the guest ABI (`docs/abi.md`); [`capabilities`]: the host
//!   objects (`sys`, `log`) a guest can be handed.
//! - [`principal`]: who may connect (tokens, client certificates), with what grants and
//!   limits; a node without principals serves only loopback and Unix-socket clients.
//! - [`server`] listens (TCP, Unix socket, stdio; plain or TLS) and shuts down gracefully.
//! - `rwc-node --register` keeps the node listed in a registry ([`rwc_registry`]), so
//!   clients find it by tag.

mod abi;
pub mod audit;
pub mod blocking;
pub mod capabilities;
pub mod config;
pub mod error;
pub mod instance;
pub mod nats;
mod node;
pub mod principal;
pub mod sandbox;
pub mod server;
pub mod service;

pub use config::NodeConfig;
pub use node::Node;
pub use rwc_api::NodeInfo;
