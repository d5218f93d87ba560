//! Registering with a registry (`rwc-node --register ADDR`): the node tells a registry its
//! address and tags, and refreshes the entry every third of its time-to-live, so clients
//! that look nodes up by tag find it while it runs and stop finding it soon after it dies.
//!
//! The registry speaks rwc like everything else: its root has `register(addr, tags,
//! ttl_secs)` and `unregister(addr)` (the registry server itself lives in `rwc-client`,
//! which the node does not depend on).

use std::time::Duration;

use rwc_protocol::transport::connect_tcp;
use rwc_protocol::{CallOptions, Connection, ConnectionConfig, Error, Service, to_value};

/// Where and how a node registers.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The registry's address, `HOST:PORT`.
    pub registry: String,
    /// The address clients should use to reach this node.
    pub advertise: String,
    /// Tags clients look nodes up by.
    pub tags: Vec<String>,
    /// How long the entry lives without a refresh; the node refreshes every third of it.
    pub ttl: Duration,
}

impl Registration {
    /// Registers, then refreshes every `ttl / 3` until the future is dropped. Failures are
    /// logged and retried at the same pace: a registry that restarts gets the entry back.
    ///
    /// # Cancel safety
    /// Dropping the future stops refreshing; the entry expires after its TTL (call
    /// [`unregister`](Registration::unregister) to remove it at once).
    pub async fn run(self) {
        let period = (self.ttl / 3).max(Duration::from_millis(100));
        let mut conn: Option<Connection> = None;
        let mut failing = false;
        loop {
            match self.refresh(&mut conn).await {
                Ok(()) => {
                    if failing {
                        tracing::info!(registry = %self.registry, "registered again");
                    } else {
                        tracing::debug!(registry = %self.registry, "registration refreshed");
                    }
                    failing = false;
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(
                            registry = %self.registry,
                            error = %e,
                            "cannot register with the registry; will keep trying"
                        );
                    }
                    failing = true;
                    conn = None;
                }
            }
            tokio::time::sleep(period).await;
        }
    }

    /// Removes the entry now (best effort, for a clean shutdown).
    ///
    /// # Cancel safety
    /// Dropping the future abandons the request; the entry then expires after its TTL.
    pub async fn unregister(&self) -> Result<(), Error> {
        let conn = self.connect().await?;
        let _: bool = conn
            .root()
            .call("unregister", (self.advertise.as_str(),))
            .await?;
        conn.close();
        Ok(())
    }

    async fn refresh(&self, conn: &mut Option<Connection>) -> Result<(), Error> {
        let c = match conn.take() {
            Some(c) if !c.is_closed() => c,
            _ => self.connect().await?,
        };
        let ttl_secs = self.ttl.as_secs().max(1);
        let args = vec![
            to_value(&self.advertise)?,
            to_value(&self.tags)?,
            to_value(&ttl_secs)?,
        ];
        let deadline = CallOptions::timeout(self.ttl.max(Duration::from_secs(1)));
        c.root().call_with("register", args, deadline).await?;
        *conn = Some(c);
        Ok(())
    }

    async fn connect(&self) -> Result<Connection, Error> {
        let config = ConnectionConfig {
            agent: format!("rwc-node {}", env!("CARGO_PKG_VERSION")),
            ..ConnectionConfig::default()
        };
        connect_tcp(
            self.registry.as_str(),
            Service::new("rwc-node").into_object(),
            config,
        )
        .await
    }
}
