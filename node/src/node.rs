//! The node: its sandbox, configuration and counters, shared by every connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rwc_api::NodeInfo;
use rwc_protocol::{Error, NetRef};
use tokio::sync::Semaphore;

use crate::capabilities::Host;
use crate::config::NodeConfig;
use crate::error::to_error;
use crate::sandbox::{Sandbox, SandboxStats};

/// A node: the sandbox, its configuration and counters. Cheap to clone; every connection's
/// root service shares it.
#[derive(Clone)]
pub struct Node {
    pub(crate) inner: Arc<NodeInner>,
}

pub(crate) struct NodeInner {
    pub(crate) sandbox: Sandbox,
    pub(crate) config: NodeConfig,
    /// The directories and commands of the config, checked.
    pub(crate) host: Host,
    pub(crate) started: Instant,
    pub(crate) calls: Arc<Semaphore>,
    pub(crate) next_instance: AtomicU64,
    pub(crate) calls_total: AtomicU64,
    pub(crate) calls_refused: AtomicU64,
    pub(crate) uploads: AtomicU64,
    pub(crate) connections: AtomicU64,
}

/// wasmtime's version, read from the lock file by the build script.
const WASMTIME_VERSION: &str = env!("RWC_WASMTIME_VERSION");

impl Node {
    /// Creates a node: its engine, caches and epoch ticker.
    ///
    /// A bad `[[dirs]]` or `[[commands]]` entry is a `bad argument` error naming it.
    pub fn new(config: NodeConfig) -> Result<Node, Error> {
        let host = Host::new(&config).map_err(Error::bad_argument)?;
        let sandbox = Sandbox::with_host_functions(config.sandbox_config(), crate::abi::define)
            .map_err(to_error)?;
        Ok(Node {
            inner: Arc::new(NodeInner {
                sandbox,
                calls: Arc::new(Semaphore::new(config.limits.max_concurrent_calls)),
                config,
                host,
                started: Instant::now(),
                next_instance: AtomicU64::new(1),
                calls_total: AtomicU64::new(0),
                calls_refused: AtomicU64::new(0),
                uploads: AtomicU64::new(0),
                connections: AtomicU64::new(0),
            }),
        })
    }

    /// A fresh root service for one connection; instances it creates are freed when the
    /// connection closes.
    pub fn root(&self, principal: Option<String>) -> NetRef {
        self.inner.connections.fetch_add(1, Ordering::Relaxed);
        NetRef::new(crate::service::RootService::new(self.clone(), principal))
    }

    /// The node's configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.inner.config
    }

    /// Sandbox counters.
    pub fn stats(&self) -> SandboxStats {
        self.inner.sandbox.stats()
    }

    /// What `info()` answers.
    pub fn info(&self) -> NodeInfo {
        let s = self.stats();
        let counter = |c: &AtomicU64| c.load(Ordering::Relaxed);
        NodeInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            wasmtime_version: WASMTIME_VERSION.to_owned(),
            uptime_secs: self.inner.started.elapsed().as_secs_f64(),
            modules_cached: s.cached_modules,
            live_instances: s.live_instances,
            compiles: s.compiles,
            disk_cache_hits: s.disk_cache_hits,
            memory_cache_hits: s.memory_cache_hits,
            calls: counter(&self.inner.calls_total),
            calls_refused: counter(&self.inner.calls_refused),
            uploads: counter(&self.inner.uploads),
            connections: counter(&self.inner.connections),
            grants: self.inner.config.grants.clone(),
            limits: self.inner.config.limits.clone(),
        }
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("listen", &self.inner.config.listen)
            .finish_non_exhaustive()
    }
}
