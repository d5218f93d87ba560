//! [`Registry`]: the table of nodes, and the object a connection to the registry sees.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rwc_api::Request;
use rwc_api::registry::{self, List, Lookup, MAX_ENTRIES, Register, RegistryEntry, Unregister};
use rwc_protocol::object::{Call, Dispatch, MethodTable};
use rwc_protocol::{Error, ErrorKind, NetRef, Value, to_value};

use crate::access::Role;

/// The registry's table of nodes, shared by every connection to it. Cheap to clone.
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
        let req = Register {
            addr: addr.to_owned(),
            tags,
            ttl_secs,
        };
        req.check()?;
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
        let mut tags = req.tags;
        tags.sort();
        tags.dedup();
        entries.insert(
            req.addr,
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

    /// The object a client's connection sees as the registry's root, with every right.
    pub fn service(&self) -> NetRef {
        self.service_as(Role::Register)
    }

    /// The root a connection in `role` sees: one that may only list refuses to register.
    pub fn service_as(&self, role: Role) -> NetRef {
        NetRef::new(RegistryService {
            registry: self.clone(),
            role,
        })
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

/// The registry as one connection sees it: what its role lets it do.
#[derive(Debug)]
struct RegistryService {
    registry: Registry,
    role: Role,
}

impl RegistryService {
    /// Refuses (and logs) a change to the table from a connection that may only list.
    fn may_change(&self, what: &str, addr: &str) -> Result<(), Error> {
        if self.role == Role::Register {
            return Ok(());
        }
        tracing::warn!(
            addr,
            "refused {what} of {addr}: the connection presented no registration token"
        );
        Err(Error::new(
            ErrorKind::Denied,
            format!(
                "{what} refused: this registry takes registrations only with a registration token \
                 (rwc-node --register-token-file FILE)"
            ),
        ))
    }
}

impl Dispatch for RegistryService {
    const TYPE_NAME: &'static str = "registry";
    const METHODS: MethodTable = MethodTable(registry::METHODS);

    async fn dispatch<'a>(&'a self, call: Call<'a>) -> Result<Value, Error> {
        let args = call.args;
        let registry = &self.registry;
        match call.method {
            Register::METHOD => {
                let r = Register::from_args(args)?;
                self.may_change("registration", &r.addr)?;
                to_value(&registry.register(&r.addr, r.tags, r.ttl_secs)?)
            }
            Unregister::METHOD => {
                let addr = Unregister::from_args(args)?.addr;
                self.may_change("unregistration", &addr)?;
                to_value(&registry.unregister(&addr))
            }
            List::METHOD => to_value(&registry.list()),
            Lookup::METHOD => to_value(&registry.lookup(&Lookup::from_args(args)?.tag)),
            other => Err(Self::unknown(other)),
        }
    }
}

/// Drops the entries whose TTL passed without a refresh.
fn purge(entries: &mut BTreeMap<String, Entry>, now: Instant) {
    entries.retain(|_, e| e.expires > now);
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
