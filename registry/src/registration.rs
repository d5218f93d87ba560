//! [`Registration`]: keeping a node listed (`rwc-node --register ADDR`). The node tells a
//! registry its address and tags, and refreshes the entry every third of its time-to-live,
//! so clients that look nodes up by tag find it while it runs and stop finding it soon
//! after it dies.

use std::time::Duration;

use rwc_protocol::{ConnectOptions, Error};

use crate::RegistryClient;

/// Where and how a node registers.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The registry's address, `HOST:PORT` or `tls://HOST:PORT`.
    pub registry: String,
    /// The address clients should use to reach this node.
    pub advertise: String,
    /// Tags clients look nodes up by.
    pub tags: Vec<String>,
    /// How long the entry lives without a refresh; the node refreshes every third of it.
    pub ttl: Duration,
    /// How to reach the registry: TLS settings and the registration token.
    pub options: ConnectOptions,
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
        let mut client: Option<RegistryClient> = None;
        let mut failing = false;
        loop {
            match self.refresh(&mut client).await {
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
                    client = None;
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
        let client = RegistryClient::connect_with(&self.registry, &self.options).await?;
        client.unregister(&self.advertise).await?;
        client.close();
        Ok(())
    }

    async fn refresh(&self, client: &mut Option<RegistryClient>) -> Result<(), Error> {
        let c = match client.take() {
            Some(c) if !c.is_closed() => c,
            _ => RegistryClient::connect_with(&self.registry, &self.options).await?,
        };
        let tags: Vec<&str> = self.tags.iter().map(String::as_str).collect();
        c.register(&self.advertise, &tags, self.ttl).await?;
        *client = Some(c);
        Ok(())
    }
}
