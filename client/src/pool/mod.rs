//! A pool of nodes that splits work: upload a module once per node, then map an export
//! over many inputs, with results in input order and the work of a node that dies handed
//! to the others.
//!
//! ```no_run
//! # async fn demo() -> Result<(), rwc_client::Error> {
//! use rwc_client::{MapOptions, Pool, Value};
//!
//! let mut pool = Pool::connect(["10.0.0.1:18870", "10.0.0.2:18870"]).await?;
//! pool.load(&std::fs::read("square.wasm").unwrap()).await?;
//! let inputs: Vec<Vec<Value>> = (0..1000u64).map(|n| vec![Value::U64(n)]).collect();
//! let options = MapOptions::default().on_progress(|p| eprintln!("{}/{}", p.done, p.total));
//! let report = pool.map("square", inputs, options).await?;
//! assert_eq!(report.results.len(), 1000); // in input order
//! for node in &report.nodes {
//!     eprintln!("{}: {} done, failed: {:?}", node.addr, node.done, node.failed);
//! }
//! # Ok(()) }
//! ```

mod each;
mod liveness;
mod map;
mod membership;
mod report;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use rwc_protocol::{ConnectOptions, Error, ErrorKind, NetRef, Value};

pub use self::each::EachResult;
pub use self::liveness::DEFAULT_LIVENESS_TIMEOUT;
pub(crate) use self::report::callback_setters;
pub use self::report::{
    Callback, MapProgress, MapReport, NodeProgress, NodeReport, ProgressFn, ResultFn,
};
use crate::client::{Client, Module};
use crate::discovery::{Discovery, Dns, NodeAddr, RegistryDiscovery};
use rwc_api::InstanceOptions;
use rwc_api::capability::{SYS, sys};

/// Instances per node when the node does not say how many CPUs it has.
pub const DEFAULT_PER_NODE: usize = 2;

/// Calls queued per instance by default: one running, one waiting its turn on the node.
pub const DEFAULT_DEPTH: usize = 2;

/// How long one map call may take by default, queueing on the node included.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(300);

/// Nodes that work together on a [`map`](Pool::map).
#[derive(Debug)]
pub struct Pool {
    nodes: Vec<PoolNode>,
    unreachable: Vec<(String, Error)>,
    hash: Option<String>,
    /// Where nodes that join later come from (a pool made by `from_nats`).
    membership: Option<Arc<membership::Membership>>,
    /// The module's bytes, for nodes that join later.
    bytes: Option<Arc<[u8]>>,
}

#[derive(Debug)]
struct PoolNode {
    addr: String,
    client: Client,
    /// CPUs the node reported through its `sys` capability.
    cpus: Option<usize>,
    /// Most instances the node lets one connection hold.
    max_instances: Option<usize>,
    module: Option<Module>,
    /// Why the node can no longer take work.
    failed: Option<Error>,
}

/// How to run a [`map`](Pool::map). `MapOptions::default()` holds the defaults named below.
#[derive(Debug, Clone)]
pub struct MapOptions {
    /// Instances per node (calls that run at once on it). Default: the node's CPU count,
    /// as its `sys` capability reports it, or [`DEFAULT_PER_NODE`] if it does not grant
    /// `sys`. Never more than the node lets one connection hold.
    pub per_node: Option<usize>,
    /// Calls queued per instance, so it never idles waiting for the next one to arrive.
    /// Default: [`DEFAULT_DEPTH`]; 0 counts as 1.
    pub depth: usize,
    /// How long the pool waits for one call, from sending it to its result (queueing on
    /// the node included); one that takes longer fails with `timed out`. Default:
    /// [`DEFAULT_CALL_TIMEOUT`]. How long the guest itself may run is the instance's
    /// [`call_timeout`](InstanceOptions::call_timeout), capped by the node.
    pub call_timeout: Duration,
    /// How long a node may leave a ping unanswered during the map before it is taken to
    /// be hung (stopped, wedged): it is retired and its inputs go to the other nodes
    /// within 1.25 × this, instead of waiting out [`call_timeout`](MapOptions::call_timeout).
    /// A busy node still answers pings at once. Default: [`DEFAULT_LIVENESS_TIMEOUT`].
    pub liveness_timeout: Duration,
    /// Options of the instances (memory, fuel, env…). A fuel budget is per instance,
    /// shared by the calls it runs; an instance whose guest trapped or ran out of fuel or
    /// time is replaced by a fresh one.
    pub instance: InstanceOptions,
    /// Called after every finished input and when a node fails.
    pub progress: Option<ProgressFn>,
    /// Called with each input's result as soon as it is settled, so a caller can use
    /// results before the map ends. The report still holds them all.
    pub each_result: Option<ResultFn>,
}

impl Default for MapOptions {
    fn default() -> Self {
        MapOptions {
            per_node: None,
            depth: DEFAULT_DEPTH,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            liveness_timeout: DEFAULT_LIVENESS_TIMEOUT,
            instance: InstanceOptions::default(),
            progress: None,
            each_result: None,
        }
    }
}

impl MapOptions {
    /// Sets [`per_node`](MapOptions::per_node).
    pub fn per_node(mut self, n: usize) -> Self {
        self.per_node = Some(n);
        self
    }

    /// Sets [`depth`](MapOptions::depth).
    pub fn depth(mut self, n: usize) -> Self {
        self.depth = n;
        self
    }

    callback_setters!(MapOptions);
}

impl Pool {
    /// Connects to every node of `addrs`. Each `HOST:PORT` is resolved ([`Dns`]), so a DNS
    /// name with several addresses gives several nodes; the same address given twice is
    /// one node. `unix:/path` addresses are taken as they are.
    ///
    /// Nodes that cannot be resolved or reached are left out (see
    /// [`unreachable`](Pool::unreachable)); it is an error only if none can.
    ///
    /// # Cancel safety
    /// Dropping the future closes the connections made so far.
    pub async fn connect<I, S>(addrs: I) -> Result<Pool, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Pool::connect_with(addrs, &ConnectOptions::default()).await
    }

    /// [`connect`](Pool::connect) with `options` (TLS settings, token) for every node.
    ///
    /// # Cancel safety
    /// Dropping the future closes the connections made so far.
    pub async fn connect_with<I, S>(addrs: I, options: &ConnectOptions) -> Result<Pool, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut unreachable = Vec::new();
        let mut found = Vec::new();
        for name in Dns::new(addrs).0 {
            match Dns(vec![name.clone()]).resolve().await {
                Ok(nodes) => found.extend(nodes),
                Err(e) => unreachable.push((name, e)),
            }
        }
        Pool::from_nodes(found, unreachable, options).await
    }

    /// Connects to every node `source` lists ([`Discovery`]: a static list, DNS, a
    /// registry…). Nodes that cannot be reached are left out; it is an error only if none
    /// can.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the lookup and closes the connections made so far.
    pub async fn discover(source: &dyn Discovery) -> Result<Pool, Error> {
        Pool::discover_with(source, &ConnectOptions::default()).await
    }

    /// [`discover`](Pool::discover), connecting to the nodes with `options` (TLS settings,
    /// token).
    ///
    /// # Cancel safety
    /// Dropping the future abandons the lookup and closes the connections made so far.
    pub async fn discover_with(
        source: &dyn Discovery,
        options: &ConnectOptions,
    ) -> Result<Pool, Error> {
        Pool::from_nodes(source.resolve().await?, Vec::new(), options).await
    }

    /// A pool of the nodes a registry lists under `tag` (every node it lists if `None`);
    /// each address is resolved as [`connect`](Pool::connect) does.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the lookup and closes the connections made so far.
    pub async fn from_registry(registry: &str, tag: Option<&str>) -> Result<Pool, Error> {
        let source = RegistryDiscovery::new(registry, tag);
        Pool::from_registry_with(&source, &ConnectOptions::default()).await
    }

    /// A pool of the nodes `source` finds in its registry (reached with the source's own
    /// options), connected to with `options`: the pool's TLS settings and token, not the
    /// registry's.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the lookup and closes the connections made so far.
    pub async fn from_registry_with(
        source: &RegistryDiscovery,
        options: &ConnectOptions,
    ) -> Result<Pool, Error> {
        let (registry, tag) = (source.registry(), source.tag());
        let nodes = source.resolve().await?;
        if nodes.is_empty() {
            return Err(Error::new(
                ErrorKind::Failed,
                match tag {
                    Some(t) => format!(
                        "the registry at {registry} lists no node tagged {t:?}; start nodes with \
                         `rwc-node --register {registry} --tag {t}`"
                    ),
                    None => format!(
                        "the registry at {registry} lists no node; start nodes with \
                         `rwc-node --register {registry}`"
                    ),
                },
            ));
        }
        Pool::connect_with(nodes.iter().map(|n| n.addr.as_str()), options).await
    }

    /// A pool of the nodes registered in NATS at `url` (`rwc-node --nats URL`) serving
    /// `tag` (every node if `None`), that follows the NATS nodes bucket: while a
    /// [`map`](Pool::map) runs, a node that registers is connected, given the module and
    /// handed work, and a node that deregisters or whose entry expires is retired (its
    /// unfinished inputs go to the others).
    ///
    /// # Cancel safety
    /// Dropping the future abandons the lookup and closes the connections made so far.
    pub async fn from_nats(url: &str, tag: Option<&str>) -> Result<Pool, Error> {
        Pool::from_nats_with(url, tag, &ConnectOptions::default()).await
    }

    /// [`from_nats`](Pool::from_nats), connecting to every node, those that join later
    /// too, with `options` (TLS, token, SSH): a fleet of authenticated nodes.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the lookup and closes the connections made so far.
    pub async fn from_nats_with(
        url: &str,
        tag: Option<&str>,
        options: &ConnectOptions,
    ) -> Result<Pool, Error> {
        let fleet = crate::nats::NatsFleet::connect(url).await?;
        // Watch first, so a node that registers while the pool connects is not missed.
        let events = crate::nats::watch_nodes(&fleet, tag).await?;
        let nodes: Vec<NodeAddr> = fleet
            .nodes(tag)
            .await?
            .into_iter()
            .map(|n| NodeAddr {
                addr: n.address,
                tags: n.tags,
            })
            .collect();
        if nodes.is_empty() {
            return Err(Error::new(
                ErrorKind::Failed,
                format!(
                    "NATS at {url} lists no node{}; start nodes with `rwc-node --nats {url}{}`",
                    tag.map(|t| format!(" tagged {t:?}")).unwrap_or_default(),
                    tag.map(|t| format!(" --tag {t}")).unwrap_or_default()
                ),
            ));
        }
        let mut pool = Pool::from_nodes(nodes, Vec::new(), options).await?;
        pool.membership = Some(Arc::new(membership::Membership::new(
            events,
            options.clone(),
        )));
        Ok(pool)
    }

    /// Connects to `nodes` (each address once) with `options`; `unreachable` are those
    /// already left out.
    async fn from_nodes(
        nodes: Vec<NodeAddr>,
        mut unreachable: Vec<(String, Error)>,
        options: &ConnectOptions,
    ) -> Result<Pool, Error> {
        let mut seen = HashSet::new();
        let targets: Vec<String> = nodes
            .into_iter()
            .map(|n| n.addr)
            .filter(|a| seen.insert(a.clone()))
            .collect();
        let connected = join_all(targets.iter().map(|t| Client::connect_with(t, options))).await;
        let mut nodes = Vec::new();
        for (addr, c) in targets.into_iter().zip(connected) {
            match c {
                Ok(client) => nodes.push(PoolNode {
                    addr,
                    client,
                    cpus: None,
                    max_instances: None,
                    module: None,
                    failed: None,
                }),
                Err(e) => {
                    tracing::warn!(node = %addr, error = %e, "node unreachable; left out of the pool");
                    unreachable.push((addr, e));
                }
            }
        }
        if nodes.is_empty() {
            let why: Vec<String> = unreachable
                .iter()
                .map(|(a, e)| format!("{a}: {}", e.message()))
                .collect();
            return Err(Error::disconnected(if why.is_empty() {
                "no node addresses given: pass at least one HOST:PORT".to_owned()
            } else {
                format!(
                    "no node reachable ({}); check the addresses and that the nodes run",
                    why.join("; ")
                )
            }));
        }
        let capacity = join_all(nodes.iter().map(|n| capacity(&n.client))).await;
        for (node, (cpus, max_instances)) in nodes.iter_mut().zip(capacity) {
            node.cpus = cpus;
            node.max_instances = max_instances;
        }
        Ok(Pool {
            nodes,
            unreachable,
            hash: None,
            membership: None,
            bytes: None,
        })
    }

    /// The nodes' addresses, in the pool's order.
    pub fn addresses(&self) -> Vec<&str> {
        self.nodes.iter().map(|n| n.addr.as_str()).collect()
    }

    /// How many nodes the pool has (including ones that failed since).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the pool has no node (never true of a pool [`connect`](Pool::connect) made).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Addresses that were left out because they could not be resolved or reached.
    pub fn unreachable(&self) -> &[(String, Error)] {
        &self.unreachable
    }

    /// The clients of the nodes that are still usable, with their addresses.
    pub fn clients(&self) -> impl Iterator<Item = (&str, &Client)> {
        self.nodes
            .iter()
            .filter(|n| n.failed.is_none())
            .map(|n| (n.addr.as_str(), &n.client))
    }

    /// Makes every node hold `bytes` as a module (each uploads only if it lacks that hash)
    /// and makes it the module [`map`](Pool::map) runs. Returns the module's hash.
    ///
    /// A node that fails to take it is left out of later maps; it is an error only if no
    /// node takes it.
    ///
    /// # Cancel safety
    /// Dropping the future cancels the uploads; the module map runs stays the previous one.
    pub async fn load(&mut self, bytes: &[u8]) -> Result<String, Error> {
        // Every node whose connection is open tries, also one that refused an earlier
        // module.
        let live: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| !self.nodes[i].client.connection().is_closed())
            .collect();
        let uploads = join_all(
            live.iter()
                .map(|&i| self.nodes[i].client.upload_with_progress(bytes, |_, _| {})),
        )
        .await;
        let mut errors = Vec::new();
        let mut first_kind = None;
        let mut hash = None;
        for (&i, result) in live.iter().zip(uploads) {
            let node = &mut self.nodes[i];
            match result {
                Ok(m) => {
                    hash = Some(m.hash().to_owned());
                    node.module = Some(m);
                    node.failed = None;
                }
                Err(e) => {
                    tracing::warn!(node = %node.addr, error = %e, "node did not take the module");
                    errors.push(format!("{}: {}", node.addr, e.message()));
                    first_kind.get_or_insert(e.kind());
                    node.module = None;
                    node.failed = Some(e.in_context("did not take the module"));
                }
            }
        }
        match hash {
            Some(h) => {
                self.hash = Some(h.clone());
                if self.membership.is_some() {
                    self.bytes = Some(bytes.into());
                }
                Ok(h)
            }
            None => Err(Error::new(
                first_kind.unwrap_or(ErrorKind::Disconnected),
                if errors.is_empty() {
                    "no node left in the pool to take the module".to_owned()
                } else {
                    format!("no node took the module ({})", errors.join("; "))
                },
            )),
        }
    }

    /// Calls `export` once per input (each input is the call's positional arguments) on
    /// the pool's nodes, and returns the results in input order with a per-node report.
    ///
    /// Work is pulled from one queue, so a faster node does more. If a node dies
    /// mid-map, its unfinished inputs go to the others and the report says which node
    /// failed; every input gets exactly one result. Deterministic errors (the guest
    /// failed, trapped, ran out of fuel or time, took bad arguments) are that input's
    /// result and are not retried. If no node is left, the remaining inputs fail with an
    /// error that says why.
    ///
    /// Fails only if no module was [`load`](Pool::load)ed.
    ///
    /// # Cancel safety
    /// Dropping the future cancels every call in flight and frees the map's instances.
    pub async fn map(
        &self,
        export: &str,
        inputs: Vec<Vec<Value>>,
        options: MapOptions,
    ) -> Result<MapReport, Error> {
        if self.hash.is_none() {
            return Err(Error::bad_argument(
                "no module loaded: call Pool::load with the module's bytes first",
            ));
        }
        let nodes =
            self.nodes
                .iter()
                .map(|n| {
                    let failed = n.failed.clone().or_else(|| {
                        n.client.connection().close_reason().map(|r| {
                            Error::disconnected(format!("connection closed: {}", r.message()))
                        })
                    });
                    let failed = failed.or_else(|| {
                        n.module
                            .is_none()
                            .then(|| Error::failed("does not hold the module"))
                    });
                    map::MapNode {
                        addr: n.addr.clone(),
                        root: n.client.root().clone(),
                        module: n.module.as_ref().map(|m| m.netref().clone()),
                        // More than the node lets a connection hold would be refused.
                        instances: options
                            .per_node
                            .or(n.cpus)
                            .unwrap_or(DEFAULT_PER_NODE)
                            .min(n.max_instances.unwrap_or(usize::MAX))
                            .max(1),
                        failed,
                    }
                })
                .collect();
        let job = map::MapJob {
            export,
            inputs: &inputs,
            instance: &options.instance,
            depth: options.depth.max(1),
            call_timeout: options.call_timeout,
            liveness_timeout: options.liveness_timeout,
            progress: options.progress.clone(),
            each_result: options.each_result.clone(),
        };
        let follower = self
            .membership
            .as_ref()
            .zip(self.bytes.clone())
            .and_then(|(m, bytes)| {
                m.follow(bytes, options.per_node.unwrap_or(DEFAULT_PER_NODE).max(1))
            });
        let report = map::run(nodes, job, follower).await;
        Ok(report)
    }

    /// Closes every connection; the nodes free this pool's instances.
    pub fn close(&self) {
        for n in &self.nodes {
            n.client.close();
        }
        if let Some(m) = &self.membership {
            m.close();
        }
    }
}

/// The node's CPU count (through its `sys` capability, if it grants it) and how many
/// instances it lets one connection hold (from its info).
async fn capacity(client: &Client) -> (Option<usize>, Option<usize>) {
    let cpus = async {
        let sys: NetRef = client.capability(SYS).await.ok()??;
        sys.call::<usize>(sys::CPU_COUNT, ())
            .await
            .ok()
            .filter(|&n| n > 0)
    };
    let max_instances = async {
        let info = client.info().await.ok()?;
        Some(info.limits.max_instances_per_connection)
    };
    tokio::join!(cpus, max_instances)
}
