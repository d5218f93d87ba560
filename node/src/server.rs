//! Serving connections: TCP (with `TCP_NODELAY`), Unix sockets, or one connection over
//! stdio; graceful shutdown.

use std::future::Future;
use std::time::Duration;

use rwc_protocol::listener::Listener;
use rwc_protocol::transport::accept_stdio;
use rwc_protocol::{ConnectionConfig, Error};

use crate::Node;

/// A bound listener, ready to serve.
#[derive(Debug)]
pub struct Server {
    node: Node,
    listener: Listener,
}

impl Server {
    /// Binds `addr`: `HOST:PORT` (port 0 picks a free one) or `unix:/path/to/socket`.
    pub async fn bind(node: Node, addr: &str) -> Result<Server, Error> {
        let listener = Listener::bind(addr)
            .await?
            .with_admission(node.inner.admission.clone());
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
        let mut connections = self
            .listener
            .serve(shutdown, config, || node.root(None))
            .await;
        tracing::info!("shutting down: no new connections");
        drain(node).await;
        connections.abort_all();
    }
}

fn connection_config(node: &Node) -> ConnectionConfig {
    let limits = &node.config().limits;
    ConnectionConfig {
        agent: format!("rwc-node {}", env!("CARGO_PKG_VERSION")),
        max_queued_bytes: usize::try_from(limits.max_queued_bytes).unwrap_or(usize::MAX),
        stall_timeout: Duration::from_millis(limits.stall_timeout_ms),
        max_calls_in_flight: limits.max_calls_in_flight,
        max_request_bytes_in_flight: usize::try_from(limits.max_request_bytes_in_flight)
            .unwrap_or(usize::MAX),
        principal_budget: Some(node.inner.inbound.clone()),
        ..ConnectionConfig::default()
    }
}

/// Serves one connection over stdin/stdout (`rwc-node --stdio`), until it closes.
pub async fn serve_stdio(node: Node) -> Result<(), Error> {
    let conn = accept_stdio(node.root(None), connection_config(&node)).await?;
    let reason = conn.closed().await;
    tracing::debug!(%reason, "stdio connection closed");
    Ok(())
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
