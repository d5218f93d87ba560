//! Discovery: where the nodes of a [`Pool`](crate::Pool) come from. One small trait,
//! [`Discovery`], with a backend per source: a [`StaticList`] of addresses, [`Dns`] (a
//! name with several A/AAAA records is several nodes, as a Kubernetes headless Service
//! gives), and the rwc [`RegistryDiscovery`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), rwc_client::Error> {
//! use rwc_client::Pool;
//! use rwc_client::discovery::{Discovery, Dns, RegistryDiscovery};
//!
//! let nodes = Dns::new(["rwc-nodes.default.svc:18870"]).resolve().await?;
//! let pool = Pool::discover(&RegistryDiscovery::new("10.0.0.9:18869", Some("gpu"))).await?;
//! # Ok(()) }
//! ```

use futures::future::BoxFuture;
use rwc_protocol::{Address, ConnectOptions, Error};

use crate::registry::RegistryClient;

/// A node a source knows of: where to reach it, and its tags (empty where the source has
/// none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddr {
    /// `HOST:PORT` or `unix:/path`.
    pub addr: String,
    /// What the node was tagged with.
    pub tags: Vec<String>,
}

impl NodeAddr {
    /// A node with no tags.
    pub fn new(addr: impl Into<String>) -> Self {
        NodeAddr {
            addr: addr.into(),
            tags: Vec::new(),
        }
    }
}

/// A source of nodes.
pub trait Discovery: Send + Sync {
    /// The nodes the source lists now.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the lookup.
    fn resolve(&self) -> BoxFuture<'_, Result<Vec<NodeAddr>, Error>>;
}

/// Addresses taken as they are given.
#[derive(Debug, Clone, Default)]
pub struct StaticList(pub Vec<NodeAddr>);

impl StaticList {
    /// The list of `addrs`; blank ones are left out.
    pub fn new<S: AsRef<str>>(addrs: impl IntoIterator<Item = S>) -> Self {
        StaticList(
            addrs
                .into_iter()
                .map(|a| a.as_ref().trim().to_owned())
                .filter(|a| !a.is_empty())
                .map(NodeAddr::new)
                .collect(),
        )
    }
}

impl Discovery for StaticList {
    fn resolve(&self) -> BoxFuture<'_, Result<Vec<NodeAddr>, Error>> {
        Box::pin(async move { Ok(self.0.clone()) })
    }
}

/// `HOST:PORT` names, each resolved to every address it has: a name with several A/AAAA
/// records is several nodes. `unix:/path` and `ssh://` addresses are taken as they are; an address found
/// twice is listed once.
#[derive(Debug, Clone, Default)]
pub struct Dns(pub Vec<String>);

impl Dns {
    /// The names `names`; blank ones are left out.
    pub fn new<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Self {
        Dns(StaticList::new(names)
            .0
            .into_iter()
            .map(|n| n.addr)
            .collect())
    }
}

impl Discovery for Dns {
    /// Fails if a name does not resolve, naming it.
    fn resolve(&self) -> BoxFuture<'_, Result<Vec<NodeAddr>, Error>> {
        Box::pin(async move {
            let mut found: Vec<NodeAddr> = Vec::new();
            for name in &self.0 {
                for addr in lookup(name).await? {
                    if !found.iter().any(|n| n.addr == addr) {
                        found.push(NodeAddr::new(addr));
                    }
                }
            }
            Ok(found)
        })
    }
}

/// `HOST:PORT` → every address it resolves to; other forms (`unix:/path`, `ssh://…`,
/// `tls://HOST:PORT`, whose certificate names the host, not an address) as they are.
async fn lookup(name: &str) -> Result<Vec<String>, Error> {
    if crate::ssh::is_ssh(name) || !matches!(name.parse::<Address>()?, Address::Tcp(_)) {
        return Ok(vec![name.to_owned()]);
    }
    let found = tokio::net::lookup_host(name).await.map_err(|e| {
        Error::bad_argument(format!(
            "cannot resolve {name}: {e}; give nodes as HOST:PORT"
        ))
    })?;
    Ok(found.map(|a| a.to_string()).collect())
}

/// The nodes an rwc registry lists (`rwc registry`, `rwc-node --register`), all of them or
/// those with one tag.
#[derive(Debug, Clone)]
pub struct RegistryDiscovery {
    registry: String,
    tag: Option<String>,
    options: ConnectOptions,
}

impl RegistryDiscovery {
    /// The nodes the registry at `registry` (`HOST:PORT`, `tls://HOST:PORT`) lists under
    /// `tag` (every node if `None`).
    pub fn new(registry: impl Into<String>, tag: Option<&str>) -> Self {
        RegistryDiscovery {
            registry: registry.into(),
            tag: tag.map(str::to_owned),
            options: ConnectOptions::default(),
        }
    }

    /// Reaches the registry with `options` (its TLS settings, a lookup token). The nodes
    /// it lists are connected to with the pool's own options, not these.
    pub fn with_options(mut self, options: ConnectOptions) -> Self {
        self.options = options;
        self
    }

    /// The registry's address.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The tag looked up, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }
}

impl Discovery for RegistryDiscovery {
    fn resolve(&self) -> BoxFuture<'_, Result<Vec<NodeAddr>, Error>> {
        Box::pin(async move {
            let registry = RegistryClient::connect_with(&self.registry, &self.options).await?;
            let entries = match &self.tag {
                Some(tag) => registry.lookup(tag).await,
                None => registry.list().await,
            };
            registry.close();
            Ok(entries?
                .into_iter()
                .map(|e| NodeAddr {
                    addr: e.addr,
                    tags: e.tags,
                })
                .collect())
        })
    }
}
