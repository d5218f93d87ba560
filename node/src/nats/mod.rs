//! The node as a member of a NATS fleet (`rwc-node --nats nats://HOST:PORT`): it lists
//! itself in the nodes' KV bucket and answers the NATS service API
//! ([`registration`]), and runs the tasks of durable maps for its tags ([`worker`]).
//! The names and messages are [`rwc_api::nats`]; the plumbing is `rwc-nats`.

mod registration;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use rwc_api::nats::{
    DEFAULT_ACK_WAIT_SECS, DEFAULT_MAX_DELIVER, DEFAULT_TAG, DEFAULT_TTL_SECS, check_name,
};
use rwc_nats::{Fleet, FleetOptions};
use rwc_protocol::Error;
use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Node;

/// The `[nats]` table of the node's config (flags `--nats`, `--nats-ttl-secs`…).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    /// The NATS server(s), `nats://HOST:PORT` (comma-separated for a cluster); the node
    /// joins no fleet if unset.
    pub url: Option<String>,
    /// Seconds the node's entry lives without a refresh (the bucket's `max_age`, set by
    /// whoever makes the bucket first); the node refreshes every third of it.
    pub ttl_secs: u64,
    /// Seconds a task may go without a sign of life from its node before NATS hands it to
    /// another (the consumer's `AckWait`; a node signals every third of it while it runs).
    pub ack_wait_secs: u64,
    /// How many times an input is run when its node dies (or loses NATS) each time; the
    /// delivery after that records an error result instead of running it again.
    pub max_deliver: u32,
    /// Replicas of the buckets and streams this node makes (3 on a 3-server cluster).
    pub replicas: usize,
    /// Tasks run at once; default: the CPU count.
    pub slots: Option<usize>,
    /// The principal whose grants and limits the fleet's tasks run under (`[[principals]]`
    /// name). A node without principals runs them as its anonymous principal; a node with
    /// principals must name one, since NATS itself tells the node nothing of who
    /// published a task.
    pub principal: Option<String>,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            url: None,
            ttl_secs: DEFAULT_TTL_SECS,
            ack_wait_secs: DEFAULT_ACK_WAIT_SECS,
            max_deliver: DEFAULT_MAX_DELIVER,
            replicas: 1,
            slots: None,
            principal: None,
        }
    }
}

/// A node's membership of a NATS fleet: its entry kept fresh, its service answering, its
/// workers pulling tasks. [`leave`](NatsMember::leave) ends it cleanly; a node that dies
/// drops out of the bucket when its TTL passes, and its tasks go to others after
/// `AckWait`.
#[derive(Debug)]
pub struct NatsMember {
    fleet: Fleet,
    stop: watch::Sender<bool>,
    registration: registration::Registration,
    workers: std::sync::Mutex<Vec<JoinHandle<()>>>,
    running: Arc<worker::Running>,
}

impl NatsMember {
    /// Connects to NATS, registers the node (reachable directly at `address`, serving
    /// `tags`; [`DEFAULT_TAG`] if none) and starts taking tasks.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the join; an entry it wrote expires with its TTL.
    pub async fn join(
        node: Node,
        config: &NatsConfig,
        address: String,
        tags: Vec<String>,
    ) -> Result<NatsMember, Error> {
        let url = config
            .url
            .as_deref()
            .ok_or_else(|| Error::bad_argument("no NATS URL: pass --nats nats://HOST:PORT"))?;
        let tags = if tags.is_empty() {
            vec![DEFAULT_TAG.to_owned()]
        } else {
            tags
        };
        for tag in &tags {
            check_name("tag", tag)?;
        }
        let principal = node
            .principals()
            .get(config.principal.as_deref())
            .cloned()
            .ok_or_else(|| match &config.principal {
                Some(name) => Error::bad_argument(format!(
                    "[nats] principal = \"{name}\" names no [[principals]] entry of this node"
                )),
                None => Error::bad_argument(
                    "a node with [[principals]] runs NATS tasks as one of them: set [nats] principal = \"NAME\"",
                ),
            })?;
        if config.slots == Some(0) {
            return Err(Error::bad_argument(
                "nats slots must be at least 1: a node with no slot would never take a task",
            ));
        }
        if config.ttl_secs == 0 || config.ack_wait_secs == 0 || config.max_deliver == 0 {
            return Err(Error::bad_argument(
                "nats ttl_secs, ack_wait_secs and max_deliver must be at least 1",
            ));
        }
        let fleet = Fleet::connect(
            url,
            FleetOptions {
                name: format!("rwc-node {address}"),
                replicas: config.replicas,
            },
        )
        .await?;
        let capacity = config
            .slots
            .unwrap_or_else(crate::capabilities::sys::cpu_count)
            .max(1);
        let running = Arc::new(worker::Running::default());
        let registration = registration::Registration::start(
            &fleet,
            &node,
            address.clone(),
            tags.clone(),
            capacity,
            Duration::from_secs(config.ttl_secs),
            running.clone(),
        )
        .await?;
        let (stop, stopped) = watch::channel(false);
        let settings = worker::Settings {
            ack_wait: Duration::from_secs(config.ack_wait_secs),
            max_deliver: config.max_deliver,
            capacity,
            address: address.clone(),
        };
        let pool =
            worker::Worker::new(node, principal, fleet.clone(), settings, running.clone()).await?;
        let mut workers = Vec::new();
        for tag in &tags {
            let consumer = pool.consumer(tag).await?;
            workers.push(tokio::spawn(pool.clone().pull(
                tag.clone(),
                consumer,
                stopped.clone(),
            )));
        }
        tracing::info!(%url, ?tags, capacity, "joined the NATS fleet");
        Ok(NatsMember {
            fleet,
            stop,
            registration,
            workers: std::sync::Mutex::new(workers),
            running,
        })
    }

    /// Stops taking new tasks (those running go on). What to call when the node is told
    /// to stop, before its grace period.
    pub fn stop_taking_work(&self) {
        let _ = self.stop.send(true);
    }

    /// Leaves the fleet: stops taking tasks, lets the running ones finish for up to
    /// `grace` (one still running then is redelivered to another node after `AckWait`),
    /// deletes the node's entry and stops answering the service API.
    ///
    /// # Cancel safety
    /// Dropping the future leaves the entry to expire with its TTL.
    pub async fn leave(&self, grace: Duration) {
        self.stop_taking_work();
        let workers = std::mem::take(
            &mut *self
                .workers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for w in workers {
            let _ = w.await;
        }
        if tokio::time::timeout(grace, self.running.idle())
            .await
            .is_err()
        {
            tracing::warn!(
                "tasks still running after the grace period; NATS hands them to other nodes"
            );
        }
        self.registration.stop(&self.fleet).await;
    }
}
