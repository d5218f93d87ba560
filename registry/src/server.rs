//! [`RegistryServer`]: a registry listening for connections.

use std::future::Future;
use std::sync::Arc;

use rwc_protocol::listener::Listener;
use rwc_protocol::{Authenticator, Error, TlsServerConfig};

use crate::Registry;
use crate::access::{Access, Role};

/// A registry listening on TCP (or a Unix socket), plain or TLS.
#[derive(Debug)]
pub struct RegistryServer {
    listener: Listener,
    registry: Registry,
    access: Access,
}

/// How a registry is secured: who may register and list, and its TLS settings.
#[derive(Debug, Clone, Default)]
pub struct Security {
    /// The tokens it accepts.
    pub access: Access,
    /// TLS to serve with; `None`: plain.
    pub tls: Option<TlsServerConfig>,
    /// Serve a non-loopback address without registration tokens anyway.
    pub insecure: bool,
}

impl RegistryServer {
    /// Binds `addr` (`HOST:PORT`; port 0 picks a free one) with an empty registry, open
    /// to anyone who can connect: only a loopback or Unix address is accepted.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the bind.
    pub async fn bind(addr: &str) -> Result<RegistryServer, Error> {
        RegistryServer::bind_with(addr, Security::default()).await
    }

    /// Binds `addr` secured by `security`. A registry beyond loopback refuses to start
    /// without registration tokens (anyone could list an address of their choosing for a
    /// pool to send its work to), unless `security.insecure`.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the bind.
    pub async fn bind_with(addr: &str, security: Security) -> Result<RegistryServer, Error> {
        let mut listener = Listener::bind(addr).await?;
        let bound = listener.address().to_owned();
        if !listener.is_loopback() && security.access.registration_is_open() {
            if !security.insecure {
                return Err(Error::failed(format!(
                    "refusing to serve {bound}, which is not a loopback address, without registration tokens: \
                     anyone who can reach it could list an address of their choosing. \
                     Give --register-token-file FILE, listen on 127.0.0.1, or pass --insecure to start anyway"
                )));
            }
            tracing::warn!(
                address = %bound,
                "serving {bound} without registration tokens (--insecure): anyone who can reach it can register"
            );
        }
        if let Some(tls) = security.tls {
            listener = listener.with_tls(tls);
        } else if !listener.is_loopback() {
            tracing::warn!(
                address = %bound,
                "serving {bound} without TLS: tokens and addresses cross the network in clear"
            );
        }
        Ok(RegistryServer {
            listener,
            registry: Registry::new(),
            access: security.access,
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
        let mut config = crate::config("rwc-registry");
        let access: Arc<dyn Authenticator> = Arc::new(self.access.clone());
        config.authenticator = Some(access);
        let registry = self.registry.clone();
        let root = move |principal: Option<&str>| {
            // The authenticator names a role for every connection it lets in.
            let role = principal.and_then(Role::named).unwrap_or(Role::Lookup);
            registry.service_as(role)
        };
        let mut connections = self.listener.serve(shutdown, config, root).await;
        connections.abort_all();
    }
}
