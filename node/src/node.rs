//! The node: its sandbox, configuration and counters, shared by every connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use rwc_api::{NodeInfo, Usage};
use rwc_protocol::admission::Admission;
use rwc_protocol::{Error, NetRef, PrincipalBudget, TlsServerConfig};
use tokio::sync::Semaphore;

use crate::capabilities::Host;
use crate::config::NodeConfig;
use crate::error::to_error;
use crate::principal::{Principal, Principals};
use crate::sandbox::{LoadedModule, Sandbox, SandboxStats};

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
    /// Caps on the connections the node's listener holds.
    pub(crate) admission: Arc<Admission>,
    /// Calls and request bytes in flight per principal, over every connection.
    pub(crate) inbound: Arc<PrincipalBudget>,
    /// Jobs waiting in the queues of every live instance.
    pub(crate) queued_jobs: Arc<AtomicUsize>,
    /// Bytes held by uploads not yet compiled, over every connection.
    pub(crate) upload_bytes: Arc<AtomicU64>,
    /// Names connections in the compile queue.
    pub(crate) next_client: AtomicU64,
    pub(crate) principals: Arc<Principals>,
    pub(crate) tls: Option<TlsServerConfig>,
}

/// wasmtime's version, read from the lock file by the build script.
const WASMTIME_VERSION: &str = env!("RWC_WASMTIME_VERSION");

impl Node {
    /// Creates a node: its principals, TLS settings (read from the files the config
    /// names), directories and commands, engine, caches and epoch ticker.
    ///
    /// A bad `[[dirs]]` or `[[commands]]` entry is a `bad argument` error naming it.
    pub fn new(mut config: NodeConfig) -> Result<Node, Error> {
        config.resolve();
        let host = Host::new(&config).map_err(Error::bad_argument)?;
        let tls = tls_config(&config)?;
        let principals = Principals::new(
            &config.principals,
            &config.grants,
            &config.limits,
            tls.as_ref()
                .is_some_and(TlsServerConfig::requires_client_cert),
        )
        .map_err(|e| Error::failed(format!("bad [[principals]]: {e}")))?;
        let sandbox = Sandbox::with_host_functions(config.sandbox_config(), crate::abi::define)
            .map_err(to_error)?;
        let limits = &config.limits;
        let admission = Admission::new(limits.max_connections, limits.max_connections_per_address);
        let inbound = PrincipalBudget::new(
            limits.max_connections_per_principal,
            limits.max_calls_in_flight_per_principal,
            usize::try_from(limits.max_request_bytes_in_flight_per_principal).unwrap_or(usize::MAX),
        );
        Ok(Node {
            inner: Arc::new(NodeInner {
                sandbox,
                admission,
                inbound,
                queued_jobs: Arc::new(AtomicUsize::new(0)),
                upload_bytes: Arc::new(AtomicU64::new(0)),
                next_client: AtomicU64::new(1),
                calls: Arc::new(Semaphore::new(config.limits.max_concurrent_calls)),
                config,
                host,
                started: Instant::now(),
                next_instance: AtomicU64::new(1),
                calls_total: AtomicU64::new(0),
                calls_refused: AtomicU64::new(0),
                uploads: AtomicU64::new(0),
                connections: AtomicU64::new(0),
                principals: Arc::new(principals),
                tls,
            }),
        })
    }

    /// A fresh root service for one connection of the principal named `principal`
    /// (`None`: the anonymous principal of a node without `[[principals]]`); instances it
    /// creates are freed when the connection closes. A name the node does not know gets a
    /// root that refuses everything.
    pub fn root(&self, principal: Option<&str>) -> NetRef {
        self.inner.connections.fetch_add(1, Ordering::Relaxed);
        match self.inner.principals.get(principal) {
            Some(p) => NetRef::new(crate::service::RootService::new(self.clone(), p.clone())),
            None => NetRef::new(crate::service::RootService::refusing(principal)),
        }
    }

    /// The node's principals: the authenticator its listener runs.
    pub fn principals(&self) -> &Arc<Principals> {
        &self.inner.principals
    }

    /// The TLS settings the node serves with, if its config names a certificate.
    pub fn tls(&self) -> Option<&TlsServerConfig> {
        self.inner.tls.as_ref()
    }

    /// The node's configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.inner.config
    }

    /// Sandbox counters.
    pub fn stats(&self) -> SandboxStats {
        self.inner.sandbox.stats()
    }

    /// What `info()` answers `caller`: the node's info, and the caller's principal.
    pub fn info_for(&self, caller: &Principal) -> NodeInfo {
        NodeInfo {
            principal: Some(caller.info()),
            ..self.info()
        }
    }

    /// The compiled module `hash` (lowercase hex), if the node has it: from memory at
    /// once, else from the disk cache on the blocking pool (never on an async thread,
    /// where a slow disk would stall every connection it serves).
    ///
    /// # Cancel safety
    /// Dropping the future abandons the wait; the disk read finishes on its own.
    pub(crate) async fn find_module(&self, hash: &str) -> Result<Option<Arc<LoadedModule>>, Error> {
        let sandbox = &self.inner.sandbox;
        if let Some(module) = sandbox.cached(hash) {
            return Ok(Some(module));
        }
        let (sandbox, hash) = (sandbox.clone(), hash.to_owned());
        crate::blocking::run("looking the module up in the disk cache", move || {
            sandbox.module(&hash)
        })
        .await
    }

    /// The node's version, counters and limits (without a caller's principal).
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
            usage: self.usage(),
            principal: None,
        }
    }

    /// What the node holds now against its limits (the asking connection's own share
    /// left at zero: the root service fills it in).
    pub fn usage(&self) -> Usage {
        let inner = &self.inner;
        let s = inner.sandbox.stats();
        let connections = inner.admission.usage();
        let inbound = inner.inbound.total();
        Usage {
            connections: connections.open,
            connections_busiest_address: connections.busiest_address,
            connections_busiest_principal: self.inner.inbound.busiest_connections(),
            connections_refused: connections.refused,
            calls_in_flight: inbound.calls,
            request_bytes_in_flight: u64::try_from(inbound.bytes).unwrap_or(u64::MAX),
            compiles_running: s.compiles_running,
            compiles_queued: s.compiles_queued,
            compiles_timed_out: s.compiles_timed_out,
            upload_bytes_in_flight: inner.upload_bytes.load(Ordering::Acquire),
            queued_jobs: inner.queued_jobs.load(Ordering::Acquire),
            blocking_jobs: crate::blocking::running(),
            cache_disk_bytes: s.disk.bytes,
            cache_disk_evictions: s.disk.evictions,
            cache_disk_corrupt: s.disk.corrupt,
            cache_disk_write_failures: s.disk.write_failures,
            this_connection: rwc_api::ConnectionUsage::default(),
        }
    }
}

/// The TLS settings `config` names: `tls_cert` and `tls_key` together, and `tls_client_ca`
/// only with them.
fn tls_config(config: &NodeConfig) -> Result<Option<TlsServerConfig>, Error> {
    match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            let ca = config.tls_client_ca.as_deref();
            TlsServerConfig::from_pem_files(cert, key, ca).map(Some)
        }
        (None, None) if config.tls_client_ca.is_some() => Err(Error::failed(
            "--tls-client-ca needs --tls-cert and --tls-key: client certificates are checked in a TLS handshake",
        )),
        (None, None) => Ok(None),
        (Some(_), None) => Err(Error::failed(
            "--tls-cert needs --tls-key (the certificate's private key)",
        )),
        (None, Some(_)) => Err(Error::failed(
            "--tls-key needs --tls-cert (the certificate it goes with)",
        )),
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("listen", &self.inner.config.listen)
            .finish_non_exhaustive()
    }
}
