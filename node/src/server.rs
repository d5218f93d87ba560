//! Serving connections: TCP (with `TCP_NODELAY`), Unix sockets, or one connection over
//! stdio, plain or TLS; graceful shutdown.
//!
//! Every connection is authenticated by the node's [principals](crate::principal). A node
//! refuses to serve a non-loopback address unless it has TLS and at least one principal
//! (or `--insecure`): without both, anyone who can reach it could run code on it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rwc_protocol::listener::Listener;
use rwc_protocol::{Authenticator, Connection, ConnectionConfig, Error, PeerInfo};

use crate::Node;

/// A bound listener, ready to serve.
#[derive(Debug)]
pub struct Server {
    node: Node,
    listener: Listener,
}

impl Server {
    /// Binds `addr`: `HOST:PORT` (port 0 picks a free one) or `unix:/path/to/socket`,
    /// serving TLS if the node's config names a certificate.
    ///
    /// Refuses a non-loopback address unless the node has TLS and at least one principal,
    /// naming what is missing; with the config's `insecure` it binds anyway and logs a
    /// warning.
    pub async fn bind(node: Node, addr: &str) -> Result<Server, Error> {
        let mut listener = Listener::bind(addr).await?;
        check_exposure(&node, &listener)?;
        if let Some(tls) = node.tls() {
            listener = listener.with_tls(tls.clone());
        }
        Ok(Server { node, listener })
    }

    /// The address actually bound (`127.0.0.1:41234`, `unix:/tmp/rwc.sock`).
    pub fn address(&self) -> &str {
        self.listener.address()
    }

    /// Serves until `shutdown` completes; then stops accepting, lets calls in flight finish
    /// for up to the grace period, and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let node = &self.node;
        let config = connection_config(node);
        let serving = node.clone();
        let mut connections = self
            .listener
            .serve(shutdown, config, move |principal| serving.root(principal))
            .await;
        tracing::info!("shutting down: no new connections");
        drain(node).await;
        connections.abort_all();
    }
}

fn connection_config(node: &Node) -> ConnectionConfig {
    let limits = &node.config().limits;
    let authenticator: Arc<dyn Authenticator> = node.principals().clone();
    ConnectionConfig {
        agent: format!("rwc-node {}", env!("CARGO_PKG_VERSION")),
        authenticator: Some(authenticator),
        max_queued_bytes: usize::try_from(limits.max_queued_bytes).unwrap_or(usize::MAX),
        stall_timeout: Duration::from_millis(limits.stall_timeout_ms),
        ..ConnectionConfig::default()
    }
}

/// Serves one connection over stdin/stdout (`rwc-node --stdio`), until it closes. Its
/// peer is authenticated like any other (a node with principals wants a token); TLS is
/// not spoken over stdio, whose other end (`ssh`, inetd) secures the channel.
pub async fn serve_stdio(node: Node) -> Result<(), Error> {
    let config = connection_config(&node);
    let peer = PeerInfo::at("stdio");
    let (r, w) = (tokio::io::stdin(), tokio::io::stdout());
    let conn = Connection::accept_peer(r, w, peer, config, |p| node.root(p)).await?;
    let reason = conn.closed().await;
    tracing::debug!(%reason, "stdio connection closed");
    Ok(())
}

/// Refuses to serve beyond loopback without TLS and a principal, unless the config says
/// `insecure`.
fn check_exposure(node: &Node, listener: &Listener) -> Result<(), Error> {
    let config = node.config();
    let (bound, loopback) = (listener.address(), listener.is_loopback());
    let mut missing = Vec::new();
    if node.tls().is_none() {
        missing.push("TLS (--tls-cert and --tls-key)");
    }
    if node.principals().is_anonymous() {
        missing.push("a principal ([[principals]] in the --config file)");
    }
    if loopback || missing.is_empty() {
        return Ok(());
    }
    let missing = missing.join(" and ");
    if config.insecure {
        tracing::warn!(
            address = bound,
            "serving {bound} without {missing} (--insecure): anyone who can reach it can run code on this machine"
        );
        return Ok(());
    }
    Err(Error::failed(format!(
        "refusing to serve {bound}, which is not a loopback address, without {missing}: anyone who can reach it could run code on this machine. \
         Add what is missing (see `rwc-node gen-cert` and `rwc-node hash-token`), listen on 127.0.0.1 or a unix: socket, or pass --insecure to start anyway"
    )))
}

/// Waits until no guest call is running, or the grace period passes.
async fn drain(node: &Node) {
    let grace = Duration::from_secs(node.config().grace_period_secs);
    let max = node.config().limits.max_concurrent_calls;
    let deadline = tokio::time::Instant::now() + grace;
    while node.inner.calls.available_permits() < max {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                running = max - node.inner.calls.available_permits(),
                "grace period over; abandoning calls in flight"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
