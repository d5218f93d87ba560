//! `rwc-node`: the rwc daemon's library. A node accepts Wasm modules from clients,
//! compiles them once (cached by content hash), and runs them in a wasmtime sandbox with
//! hard limits on memory, time, fuel and output.
//!
//! - [`sandbox`] is the core: engine, module caches, instances and their limits.
//! - [`Node`] puts a sandbox behind the rwc protocol: each connection's root is a
//!   [`service::RootService`] (upload, module, instantiate, run, info, capability).
//! - [`server`] listens (TCP, Unix socket, stdio) and shuts down gracefully.
//! - [`registry`] keeps the node listed in a registry, so clients find it by tag.
//! - The guest ABI (`docs/abi.md`) and the host capabilities (`sys`, `log`) live in
//!   `guest` and [`capabilities`].

pub mod capabilities;
pub mod config;
pub mod error;
mod guest;
pub mod registry;
pub mod sandbox;
pub mod server;
pub mod service;

pub use config::NodeConfig;
pub use service::Node;
