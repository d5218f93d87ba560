//! The import table: proxies to objects the peer exports, with how many references to each
//! this side has received (and so must release).

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use crate::error::Error;
use crate::netref::Proxy;

#[derive(Default)]
pub(crate) struct Imports {
    entries: HashMap<u64, Import>,
}

struct Import {
    proxy: Weak<Proxy>,
    received: u64,
}

/// What receiving a reference produced.
pub(crate) struct Received {
    /// The live proxy, if one already exists (otherwise the caller makes one and calls
    /// [`Imports::insert`]).
    pub(crate) existing: Option<Arc<Proxy>>,
    /// References to release now: those of an entry whose proxy died just before this
    /// reference arrived.
    pub(crate) release: Option<u64>,
}

impl Imports {
    /// Records one more reference to export `id` received from the peer.
    pub(crate) fn receive(&mut self, id: u64) -> Result<Received, Error> {
        if let Some(entry) = self.entries.get_mut(&id) {
            if let Some(proxy) = entry.proxy.upgrade() {
                entry.received = entry.received.checked_add(1).ok_or_else(|| {
                    Error::protocol(format!(
                        "peer sent more references to its export #{id} than can be counted"
                    ))
                })?;
                return Ok(Received {
                    existing: Some(proxy),
                    release: None,
                });
            }
            // The last proxy is being dropped right now; its references are released here
            // and its `Drop` will find the entry replaced.
            let dead = self.entries.remove(&id).map(|e| e.received);
            return Ok(Received {
                existing: None,
                release: dead,
            });
        }
        Ok(Received {
            existing: None,
            release: None,
        })
    }

    /// Registers the new proxy made after [`receive`](Self::receive) found none.
    pub(crate) fn insert(&mut self, id: u64, proxy: &Arc<Proxy>) {
        self.entries.insert(
            id,
            Import {
                proxy: Arc::downgrade(proxy),
                received: 1,
            },
        );
    }

    /// The proxy at `proxy` is gone: returns how many references to release, if it is
    /// still the registered one.
    pub(crate) fn dropped(&mut self, id: u64, proxy: *const Proxy) -> Option<u64> {
        match self.entries.get(&id) {
            Some(e) if std::ptr::eq(e.proxy.as_ptr(), proxy) => {
                self.entries.remove(&id).map(|e| e.received)
            }
            _ => None,
        }
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}
