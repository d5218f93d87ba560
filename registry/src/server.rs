//! [`RegistryServer`]: a registry listening for connections.

use std::future::Future;

use rwc_protocol::Error;
use rwc_protocol::listener::Listener;

use crate::Registry;

/// A registry listening on TCP (or a Unix socket).
#[derive(Debug)]
pub struct RegistryServer {
    listener: Listener,
    registry: Registry,
}

impl RegistryServer {
    /// Binds `addr` (`HOST:PORT`; port 0 picks a free one) with an empty registry.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the bind.
    pub async fn bind(addr: &str) -> Result<RegistryServer, Error> {
        Ok(RegistryServer {
            listener: Listener::bind(addr).await?,
            registry: Registry::new(),
        })
    }

    /// The address actually bound.
    pub fn address(&self) -> &str {
        self.listener.address()
    }

    /// The registry it serves (to inspect or fill it in-process).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Serves connections until `shutdown` completes.
    ///
    /// # Cancel safety
    /// Dropping the future closes the listener and every connection.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let config = crate::config("rwc-registry");
        let registry = &self.registry;
        let mut connections = self
            .listener
            .serve(shutdown, config, || registry.service())
            .await;
        connections.abort_all();
    }
}
