//! A pool whose nodes come from a changing source (the NATS nodes bucket): while a map
//! runs, a node that joins is connected, given the module and handed work, and a node that
//! leaves is retired (its unfinished inputs go to the others). Nodes that joined stay in
//! the pool for its later maps.

use std::sync::{Arc, Mutex, PoisonError};

use futures::future::BoxFuture;
use rwc_protocol::{ConnectOptions, Error};
use tokio::sync::mpsc;

use super::map::MapNode;
use crate::client::{Client, Module};
use crate::nats::NodeEvent;

/// The pool's side of a watch on its source.
#[derive(Debug)]
pub(crate) struct Membership {
    events: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<NodeEvent>>>,
    /// Nodes that joined after the pool was made.
    joined: Mutex<Vec<(String, Arc<Client>)>>,
    /// How the pool connects, to the nodes that join too.
    options: ConnectOptions,
}

impl Membership {
    pub(crate) fn new(events: mpsc::UnboundedReceiver<NodeEvent>, options: ConnectOptions) -> Self {
        Membership {
            events: Arc::new(tokio::sync::Mutex::new(events)),
            joined: Mutex::new(Vec::new()),
            options,
        }
    }

    /// Closes the connections of the nodes that joined.
    pub(crate) fn close(&self) {
        for (_, c) in self
            .joined
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            c.close();
        }
    }

    /// What a map follows while it runs: `None` if another map of the pool follows it.
    pub(crate) fn follow(self: &Arc<Self>, bytes: Arc<[u8]>, instances: usize) -> Option<Follower> {
        let events = self.events.clone().try_lock_owned().ok()?;
        Some(Follower {
            events,
            membership: self.clone(),
            bytes,
            instances,
        })
    }
}

/// A running map's view of the pool's source.
pub(crate) struct Follower {
    events: tokio::sync::OwnedMutexGuard<mpsc::UnboundedReceiver<NodeEvent>>,
    membership: Arc<Membership>,
    bytes: Arc<[u8]>,
    instances: usize,
}

impl Follower {
    /// The next change; pending for ever once the source has stopped.
    pub(crate) async fn next(&mut self) -> NodeEvent {
        match self.events.recv().await {
            Some(e) => e,
            None => std::future::pending().await,
        }
    }

    /// The nodes that joined during earlier maps, made ready for this one.
    pub(crate) fn rejoin(&self) -> Vec<BoxFuture<'static, Result<MapNode, (String, Error)>>> {
        let joined = self
            .membership
            .joined
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        joined
            .into_iter()
            .filter(|(_, c)| !c.connection().is_closed())
            .map(|(addr, client)| self.ready(addr, Some(client)))
            .collect()
    }

    /// Connects to a node that joined and gives it the module: the node, ready for
    /// slots, or why it cannot take part.
    pub(crate) fn connect(
        &self,
        addr: String,
    ) -> BoxFuture<'static, Result<MapNode, (String, Error)>> {
        self.ready(addr, None)
    }

    fn ready(
        &self,
        addr: String,
        client: Option<Arc<Client>>,
    ) -> BoxFuture<'static, Result<MapNode, (String, Error)>> {
        let bytes = self.bytes.clone();
        let membership = self.membership.clone();
        let instances = self.instances;
        Box::pin(async move {
            let known = client.is_some();
            let client = match client {
                Some(c) => c,
                None => Arc::new(
                    Client::connect_with(&addr, &membership.options)
                        .await
                        .map_err(|e| (addr.clone(), e))?,
                ),
            };
            let module: Module = client
                .upload_with_progress(&bytes, |_, _| {})
                .await
                .map_err(|e| (addr.clone(), e))?;
            tracing::info!(node = %addr, "node takes part in the map");
            let node = MapNode {
                addr: addr.clone(),
                root: client.root().clone(),
                module: Some(module.netref().clone()),
                instances,
                failed: None,
            };
            if !known {
                membership
                    .joined
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((addr, client));
            }
            Ok(node)
        })
    }
}
