//! # rwc-registry
//!
//! Node discovery through a small registry: nodes list their address and tags, clients look
//! them up by tag. It speaks rwc like a node does, over the messages of
//! [`rwc_api::registry`]:
//!
//! - `register(addr, tags, ttl_secs)`: add or refresh an entry; it expires `ttl_secs`
//!   after the last refresh (`rwc-node --register` refreshes every third of the TTL);
//! - `unregister(addr)`: remove it at once (a node that shuts down cleanly does);
//! - `list()`: every live entry; `lookup(tag)`: the live entries with that tag.
//!
//! A registry on loopback is open to every local process. Beyond loopback it takes
//! registrations only from connections presenting a registration token ([`Access`]), and
//! can serve TLS and close listing to all but lookup tokens ([`Security`]).
//!
//! Both halves live here, side by side: [`Registry`] is the table and the object a
//! connection to the registry sees, [`RegistryServer`] serves it (`rwc registry --listen
//! ADDR`); [`RegistryClient`] speaks to one, and [`Registration`] keeps a node listed.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::time::Duration;
//! use rwc_registry::{RegistryClient, RegistryServer};
//!
//! let server = RegistryServer::bind("127.0.0.1:0").await.unwrap();
//! let addr = server.address().to_owned();
//! tokio::spawn(server.run(std::future::pending()));
//!
//! let registry = RegistryClient::connect(&addr).await.unwrap();
//! registry.register("10.0.0.1:18870", &["gpu"], Duration::from_secs(30)).await.unwrap();
//! let gpus = registry.lookup("gpu").await.unwrap();
//! assert_eq!(gpus[0].addr, "10.0.0.1:18870");
//! # });
//! ```
#![forbid(unsafe_code)]

mod access;
mod client;
mod registration;
mod server;
mod table;

pub use access::{Access, Role};
pub use client::RegistryClient;
pub use registration::Registration;
pub use rwc_api::registry::{MAX_ENTRIES, MAX_TTL_SECS, RegistryEntry};
pub use server::{RegistryServer, Security};
pub use table::Registry;

fn config(agent: &str) -> rwc_protocol::ConnectionConfig {
    rwc_protocol::ConnectionConfig {
        agent: format!("{agent} {}", env!("CARGO_PKG_VERSION")),
        ..rwc_protocol::ConnectionConfig::default()
    }
}
