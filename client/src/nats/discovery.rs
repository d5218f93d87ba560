//! Nodes found through the NATS nodes bucket: a [`Discovery`] backend, and a watch that
//! tells a pool when nodes join or leave.
//!
//! nats-server 2.9 writes nothing when an entry expires (no per-key TTL, no delete marker),
//! so the watch expires entries itself: one not refreshed within the bucket's TTL has left.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::BoxFuture;
use rwc_api::nats::{self as names, NodeEntry};
use rwc_nats::async_nats::jetstream::kv::Operation;
use rwc_protocol::Error;
use tokio::sync::mpsc;

use super::NatsFleet;
use super::durable::list_nodes;
use crate::discovery::{Discovery, NodeAddr};

/// The nodes registered in NATS (`rwc-node --nats URL`), all of them or those serving one
/// tag.
#[derive(Debug, Clone)]
pub struct NatsDiscovery {
    url: String,
    tag: Option<String>,
}

impl NatsDiscovery {
    /// The nodes registered with the NATS server(s) at `url` under `tag` (every node if
    /// `None`).
    pub fn new(url: impl Into<String>, tag: Option<&str>) -> Self {
        NatsDiscovery {
            url: url.into(),
            tag: tag.map(str::to_owned),
        }
    }
}

impl Discovery for NatsDiscovery {
    fn resolve(&self) -> BoxFuture<'_, Result<Vec<NodeAddr>, Error>> {
        Box::pin(async move {
            let fleet = NatsFleet::connect(&self.url).await?;
            Ok(fleet
                .nodes(self.tag.as_deref())
                .await?
                .into_iter()
                .map(|n| NodeAddr {
                    addr: n.address,
                    tags: n.tags,
                })
                .collect())
        })
    }
}

/// A change to the nodes a [`watch_nodes`] follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// A node registered (or came back after it had expired).
    Joined(NodeEntry),
    /// A node deregistered, or its entry was not refreshed within the TTL: its address.
    Left(String),
}

/// Follows the nodes bucket: sends a [`NodeEvent`] for every node serving `tag` (any tag
/// if `None`) that joins or leaves after the call, until the receiver is dropped.
///
/// # Cancel safety
/// Dropping the future abandons the watch before it starts.
pub async fn watch_nodes(
    fleet: &NatsFleet,
    tag: Option<&str>,
) -> Result<mpsc::UnboundedReceiver<NodeEvent>, Error> {
    let store = fleet
        .fleet()
        .nodes_bucket(Duration::from_secs(names::DEFAULT_TTL_SECS))
        .await?;
    let ttl = fleet.fleet().bucket_ttl(&store).await?;
    let ttl = if ttl.is_zero() {
        Duration::from_secs(names::DEFAULT_TTL_SECS)
    } else {
        ttl
    };
    let mut watch = store
        .watch_all()
        .await
        .map_err(|e| rwc_nats::nats_error("watch the nodes bucket", e))?;
    let wanted = |e: &NodeEntry| tag.is_none_or(|t| e.tags.iter().any(|x| x == t));
    let mut known: HashMap<String, (NodeEntry, Instant)> = list_nodes(&store)
        .await?
        .into_iter()
        .filter(|e| wanted(e))
        .map(|e| (e.id.clone(), (e, Instant::now())))
        .collect();
    let tag = tag.map(str::to_owned);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let wanted = |e: &NodeEntry| tag.as_deref().is_none_or(|t| e.tags.iter().any(|x| x == t));
        let mut sweep = tokio::time::interval((ttl / 3).max(Duration::from_millis(100)));
        loop {
            let event = tokio::select! {
                entry = watch.next() => match entry {
                    Some(Ok(entry)) => entry,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "nodes watch interrupted");
                        continue;
                    }
                    None => return,
                },
                _ = sweep.tick() => {
                    let expired: Vec<String> = known
                        .iter()
                        .filter(|(_, (_, seen))| seen.elapsed() > ttl)
                        .map(|(k, _)| k.clone())
                        .collect();
                    for key in expired {
                        if let Some((e, _)) = known.remove(&key)
                            && tx.send(NodeEvent::Left(e.address)).is_err()
                        {
                            return;
                        }
                    }
                    if tx.is_closed() {
                        return;
                    }
                    continue;
                }
            };
            let sent = match event.operation {
                Operation::Put => match names::decode::<NodeEntry>(&event.value) {
                    Ok(entry) if wanted(&entry) => {
                        let new = !known.contains_key(&event.key);
                        known.insert(event.key.clone(), (entry.clone(), Instant::now()));
                        !new || tx.send(NodeEvent::Joined(entry)).is_ok()
                    }
                    Ok(_) => true,
                    Err(e) => {
                        tracing::debug!(key = %event.key, error = %e, "not an rwc node entry");
                        true
                    }
                },
                Operation::Delete | Operation::Purge => match known.remove(&event.key) {
                    Some((e, _)) => tx.send(NodeEvent::Left(e.address)).is_ok(),
                    None => true,
                },
            };
            if !sent {
                return;
            }
        }
    });
    Ok(rx)
}
