//! The node's entry in the nodes' KV bucket, kept fresh, and its answers to the NATS
//! service API (`$SRV.PING`, `$SRV.INFO`, `$SRV.STATS`), so standard NATS tooling lists
//! nodes too.
//!
//! nats-server 2.9 has no per-key TTL: the bucket's `max_age` is the TTL of every entry,
//! and the node re-puts its key every third of it. Expiry writes no delete marker on 2.9,
//! so watchers expire entries themselves (the client does, see its `nats` module).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::service::ServiceExt;
use futures::StreamExt;
use rwc_api::nats::{NodeEntry, SERVICE_NAME};
use rwc_nats::async_nats::jetstream::kv;
use rwc_nats::{Fleet, async_nats, bytes_of, nats_error};
use rwc_protocol::Error;
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

use super::worker::Running;
use crate::Node;

#[derive(Debug)]
pub(super) struct Registration {
    store: kv::Store,
    key: String,
    refresher: JoinHandle<()>,
    service: Mutex<Option<async_nats::service::Service>>,
    endpoint: JoinHandle<()>,
}

impl Registration {
    /// Writes the node's entry, keeps it fresh, and starts answering the service API.
    pub(super) async fn start(
        fleet: &Fleet,
        node: &Node,
        address: String,
        tags: Vec<String>,
        capacity: usize,
        ttl: Duration,
        running: Arc<Running>,
    ) -> Result<Registration, Error> {
        let store = fleet.nodes_bucket(ttl).await?;
        let bucket_ttl = fleet.bucket_ttl(&store).await?;
        let ttl = if bucket_ttl.is_zero() {
            tracing::warn!("the nodes bucket has no max_age: entries of dead nodes never expire");
            ttl
        } else {
            if bucket_ttl != ttl {
                tracing::info!(
                    ?bucket_ttl,
                    "the nodes bucket exists with another TTL; refreshing for that one"
                );
            }
            bucket_ttl
        };
        let id = node_id(&address);
        let entry = NodeEntry {
            id: id.clone(),
            address: address.clone(),
            tags: tags.clone(),
            capacity: u32::try_from(capacity).unwrap_or(u32::MAX),
            load: 0,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        store
            .put(&id, bytes_of(&entry)?)
            .await
            .map_err(|e| nats_error("register in the nodes bucket", e))?;

        let refresher = {
            let (store, node, id) = (store.clone(), node.clone(), id.clone());
            tokio::spawn(async move {
                let mut entry = entry;
                let mut tick = tokio::time::interval((ttl / 3).max(Duration::from_millis(100)));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    entry.load = u32::try_from(load(&node, &running)).unwrap_or(u32::MAX);
                    let put = async {
                        store
                            .put(&id, bytes_of(&entry)?)
                            .await
                            .map_err(|e| nats_error("refresh the node's entry", e))
                    };
                    if let Err(e) = put.await {
                        tracing::warn!(error = %e, "could not refresh the node's entry");
                    }
                }
            })
        };

        let metadata = HashMap::from([
            ("address".to_owned(), address),
            ("tags".to_owned(), tags.join(",")),
            ("capacity".to_owned(), capacity.to_string()),
            ("id".to_owned(), id.clone()),
        ]);
        let service = fleet
            .client()
            .service_builder()
            .description("rwc node: runs Wasm modules in a sandbox")
            .metadata(metadata)
            .start(SERVICE_NAME, env!("CARGO_PKG_VERSION"))
            .await
            .map_err(|e| Error::failed(format!("cannot start the NATS service API: {e}")))?;
        let mut requests = service
            .endpoint(format!("rwc.node.{id}.entry"))
            .await
            .map_err(|e| Error::failed(format!("cannot add the NATS service endpoint: {e}")))?;
        let endpoint = {
            let store = store.clone();
            let id = id.clone();
            tokio::spawn(async move {
                while let Some(request) = requests.next().await {
                    // The entry as the bucket has it (with its current load).
                    let reply = match store.get(&id).await {
                        Ok(Some(bytes)) => Ok(bytes),
                        Ok(None) => Err(async_nats::service::error::Error {
                            status: "not registered".to_owned(),
                            code: 404,
                        }),
                        Err(e) => Err(async_nats::service::error::Error {
                            status: e.to_string(),
                            code: 503,
                        }),
                    };
                    let _ = request.respond(reply).await;
                }
            })
        };
        tracing::info!(%id, "registered in the nodes bucket");
        Ok(Registration {
            store,
            key: id,
            refresher,
            service: Mutex::new(Some(service)),
            endpoint,
        })
    }

    /// Deletes the entry now and stops the service (a NATS that does not answer within
    /// two seconds leaves the entry to expire).
    pub(super) async fn stop(&self, fleet: &Fleet) {
        self.refresher.abort();
        match tokio::time::timeout(Duration::from_secs(2), self.store.delete(&self.key)).await {
            Ok(Ok(())) => tracing::info!(key = %self.key, "left the nodes bucket"),
            Ok(Err(e)) => tracing::warn!(error = %e, "could not delete the node's entry"),
            Err(_) => tracing::warn!("NATS did not answer; the node's entry expires with its TTL"),
        }
        let service = self
            .service
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(service) = service {
            let _ = service.stop().await;
        }
        self.endpoint.abort();
        let _ = fleet.client().flush().await;
    }
}

/// Calls and tasks running on the node now.
fn load(node: &Node, running: &Running) -> usize {
    let limit = node.inner.config.limits.max_concurrent_calls;
    let calls = limit.saturating_sub(node.inner.calls.available_permits());
    calls.max(running.count())
}

/// A key unique to this node process: a KV key may hold only `[-/_=.a-zA-Z0-9]`, which an
/// address (`[::1]:80`, `unix:/…`) does not fit.
fn node_id(address: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let digest = Sha256::digest(format!("{address} {} {nanos}", std::process::id()));
    format!("node-{}", &hex::encode(digest)[..16])
}
