//! Node discovery: a small registry where nodes list their address and tags, and clients
//! look them up by tag. It speaks rwc like a node does; its root has:
//!
//! - `register(addr, tags, ttl_secs)`: add or refresh an entry; it expires `ttl_secs`
//!   after the last refresh (`rwc-node --register` refreshes every third of the TTL);
//! - `unregister(addr)`: remove it at once (a node that shuts down cleanly does);
//! - `list()`: every live entry; `lookup(tag)`: the live entries with that tag.
//!
//! [`RegistryServer`] serves it (`rwc registry --listen ADDR`), [`RegistryClient`] uses it,
//! and [`Pool::from_registry`](crate::Pool::from_registry) makes a pool of what it lists.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rwc_protocol::transport::{accept_tcp, connect_tcp};
use rwc_protocol::{Connection, ConnectionConfig, Error, ErrorKind, NetRef, Service};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// Most entries a registry keeps; registering more is refused (`overloaded`).
pub const MAX_ENTRIES: usize = 10_000;
/// Longest TTL an entry may ask for, in seconds (one day).
pub const MAX_TTL_SECS: u64 = 86_400;
const MAX_ADDR_LEN: usize = 256;
const MAX_TAGS: usize = 32;
const MAX_TAG_LEN: usize = 64;

/// A node as the registry lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistryEntry {
    /// Where clients reach the node (`HOST:PORT`).
    pub addr: String,
    /// The tags it registered with.
    pub tags: Vec<String>,
    /// Its time-to-live: how long the entry lasts without a refresh.
    pub ttl_secs: u64,
    /// Seconds until the entry expires unless refreshed.
    pub expires_in_secs: f64,
}

/// The registry's table of nodes, shared by every connection to it.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    entries: Arc<Mutex<BTreeMap<String, Entry>>>,
}

#[derive(Debug)]
struct Entry {
    tags: Vec<String>,
    ttl: Duration,
    expires: Instant,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Adds or refreshes the entry of `addr`.
    pub fn register(&self, addr: &str, tags: Vec<String>, ttl_secs: u64) -> Result<(), Error> {
        if addr.is_empty() || addr.len() > MAX_ADDR_LEN {
            return Err(Error::bad_argument(format!(
                "a node address must be 1 to {MAX_ADDR_LEN} bytes (HOST:PORT)"
            )));
        }
        if tags.len() > MAX_TAGS || tags.iter().any(|t| t.is_empty() || t.len() > MAX_TAG_LEN) {
            return Err(Error::bad_argument(format!(
                "at most {MAX_TAGS} tags of 1 to {MAX_TAG_LEN} bytes each"
            )));
        }
        if !(1..=MAX_TTL_SECS).contains(&ttl_secs) {
            return Err(Error::bad_argument(format!(
                "ttl_secs must be 1 to {MAX_TTL_SECS}, got {ttl_secs}"
            )));
        }
        let now = Instant::now();
        let mut entries = self.lock();
        purge(&mut entries, now);
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(addr) {
            return Err(Error::new(
                ErrorKind::Overloaded,
                format!("the registry holds {MAX_ENTRIES} nodes, its limit"),
            ));
        }
        let ttl = Duration::from_secs(ttl_secs);
        let mut tags = tags;
        tags.sort();
        tags.dedup();
        entries.insert(
            addr.to_owned(),
            Entry {
                tags,
                ttl,
                expires: now + ttl,
            },
        );
        Ok(())
    }

    /// Removes the entry of `addr`; whether there was one.
    pub fn unregister(&self, addr: &str) -> bool {
        self.lock().remove(addr).is_some()
    }

    /// Every live entry, by address.
    pub fn list(&self) -> Vec<RegistryEntry> {
        self.matching(|_| true)
    }

    /// The live entries tagged `tag`, by address.
    pub fn lookup(&self, tag: &str) -> Vec<RegistryEntry> {
        self.matching(|e| e.tags.iter().any(|t| t == tag))
    }

    /// The object a client's connection sees as the registry's root.
    pub fn service(&self) -> NetRef {
        let (r1, r2, r3, r4) = (self.clone(), self.clone(), self.clone(), self.clone());
        Service::new("registry")
            .method(
                "register",
                move |(addr, tags, ttl_secs): (String, Vec<String>, u64)| {
                    let r = r1.register(&addr, tags, ttl_secs);
                    async move { r }
                },
            )
            .doc(
                "register",
                "(addr, tags, ttl_secs) add or refresh a node; it expires ttl_secs after the last refresh",
            )
            .method("unregister", move |(addr,): (String,)| {
                let r = r2.unregister(&addr);
                async move { Ok(r) }
            })
            .doc("unregister", "(addr) remove a node now")
            .method("list", move |(): ()| {
                let r = r3.list();
                async move { Ok(r) }
            })
            .doc("list", "() every live node: addr, tags, ttl_secs, expires_in_secs")
            .method("lookup", move |(tag,): (String,)| {
                let r = r4.lookup(&tag);
                async move { Ok(r) }
            })
            .doc("lookup", "(tag) the live nodes with this tag")
            .into_object()
    }

    fn matching(&self, keep: impl Fn(&Entry) -> bool) -> Vec<RegistryEntry> {
        let now = Instant::now();
        let mut entries = self.lock();
        purge(&mut entries, now);
        entries
            .iter()
            .filter(|(_, e)| keep(e))
            .map(|(addr, e)| RegistryEntry {
                addr: addr.clone(),
                tags: e.tags.clone(),
                ttl_secs: e.ttl.as_secs(),
                expires_in_secs: e.expires.saturating_duration_since(now).as_secs_f64(),
            })
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        // Every update leaves the table consistent, so a poisoned lock is still usable.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Drops the entries whose TTL passed without a refresh.
fn purge(entries: &mut BTreeMap<String, Entry>, now: Instant) {
    entries.retain(|_, e| e.expires > now);
}

/// A registry listening on TCP.
#[derive(Debug)]
pub struct RegistryServer {
    listener: TcpListener,
    address: String,
    registry: Registry,
}

impl RegistryServer {
    /// Binds `addr` (`HOST:PORT`; port 0 picks a free one) with an empty registry.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the bind.
    pub async fn bind(addr: &str) -> Result<RegistryServer, Error> {
        let failed = |e: std::io::Error| {
            Error::new(ErrorKind::Failed, format!("cannot listen on {addr}: {e}"))
        };
        let listener = TcpListener::bind(addr).await.map_err(failed)?;
        let address = listener.local_addr().map_err(failed)?.to_string();
        Ok(RegistryServer {
            listener,
            address,
            registry: Registry::new(),
        })
    }

    /// The address actually bound.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The registry it serves (to inspect or fill it in-process).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Serves connections until `shutdown` completes.
    ///
    /// # Cancel safety
    /// Dropping the future closes the listener and every connection.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut connections = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let root = self.registry.service();
                        connections.spawn(async move {
                            match accept_tcp(stream, root, config("rwc-registry")).await {
                                Ok(conn) => {
                                    let reason = conn.closed().await;
                                    tracing::debug!(%reason, "registry client gone");
                                }
                                Err(e) => tracing::debug!(error = %e, "registry handshake failed"),
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        connections.abort_all();
    }
}

/// A connection to a registry.
#[derive(Debug)]
pub struct RegistryClient {
    conn: Connection,
}

impl RegistryClient {
    /// Connects to the registry at `addr` (`HOST:PORT`).
    ///
    /// # Cancel safety
    /// Dropping the future abandons the attempt.
    pub async fn connect(addr: &str) -> Result<RegistryClient, Error> {
        let conn = connect_tcp(
            addr,
            Service::new("rwc-client").into_object(),
            config("rwc-client"),
        )
        .await
        .map_err(|e| {
            Error::new(
                e.kind(),
                format!("cannot reach the registry at {addr}: {}", e.message()),
            )
        })?;
        Ok(RegistryClient { conn })
    }

    /// Adds or refreshes the entry of `addr`; it expires `ttl` after this call unless
    /// refreshed (whole seconds, at least one).
    ///
    /// # Cancel safety
    /// Dropping the future cancels the request; the entry may or may not have been made.
    pub async fn register(&self, addr: &str, tags: &[&str], ttl: Duration) -> Result<(), Error> {
        let ttl_secs = ttl.as_secs().max(1);
        self.conn
            .root()
            .call("register", (addr, tags, ttl_secs))
            .await
    }

    /// Removes the entry of `addr`; whether there was one.
    ///
    /// # Cancel safety
    /// Dropping the future cancels the request.
    pub async fn unregister(&self, addr: &str) -> Result<bool, Error> {
        self.conn.root().call("unregister", (addr,)).await
    }

    /// Every live entry.
    ///
    /// # Cancel safety
    /// Dropping the future cancels the request.
    pub async fn list(&self) -> Result<Vec<RegistryEntry>, Error> {
        self.conn.root().call("list", ()).await
    }

    /// The live entries tagged `tag`.
    ///
    /// # Cancel safety
    /// Dropping the future cancels the request.
    pub async fn lookup(&self, tag: &str) -> Result<Vec<RegistryEntry>, Error> {
        self.conn.root().call("lookup", (tag,)).await
    }

    /// Closes the connection.
    pub fn close(&self) {
        self.conn.close();
    }
}

fn config(agent: &str) -> ConnectionConfig {
    ConnectionConfig {
        agent: format!("{agent} {}", env!("CARGO_PKG_VERSION")),
        ..ConnectionConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_lookup_refresh_and_validation() {
        let r = Registry::new();
        r.register("10.0.0.1:1", vec!["gpu".into(), "eu".into()], 60)
            .unwrap();
        r.register("10.0.0.2:1", vec!["eu".into()], 60).unwrap();
        assert_eq!(r.list().len(), 2);
        let gpu: Vec<String> = r.lookup("gpu").into_iter().map(|e| e.addr).collect();
        assert_eq!(gpu, ["10.0.0.1:1"]);
        assert_eq!(r.lookup("eu").len(), 2);
        // Re-registering replaces the tags rather than adding an entry.
        r.register("10.0.0.1:1", vec!["cpu".into()], 60).unwrap();
        assert_eq!(r.list().len(), 2);
        assert!(r.lookup("gpu").is_empty());
        assert!(r.unregister("10.0.0.2:1"));
        assert!(!r.unregister("10.0.0.2:1"));
        assert_eq!(r.list().len(), 1);

        assert_eq!(
            r.register("a:1", vec![], 0).unwrap_err().kind(),
            ErrorKind::BadArgument
        );
        assert_eq!(
            r.register("", vec![], 5).unwrap_err().kind(),
            ErrorKind::BadArgument
        );
        assert_eq!(
            r.register("a:1", vec![String::new()], 5)
                .unwrap_err()
                .kind(),
            ErrorKind::BadArgument
        );
    }
}
