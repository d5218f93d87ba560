//! The per-instance handle table: the only netrefs a guest can name.
//!
//! Every time the node writes a netref into a value for the guest, the guest gets a new
//! handle (one reference), which it gives back with `rwc.release`. A guest cannot make a
//! handle up: an index that is not in the table is an error, never a lookup elsewhere.

use rwc_protocol::{Error, ErrorKind, NetRef};

/// Most handles one instance may hold at once.
const MAX_HANDLES: usize = 1 << 20;

#[derive(Default)]
pub(crate) struct HandleTable {
    slots: Vec<Option<NetRef>>,
    free: Vec<usize>,
    live: usize,
}

impl HandleTable {
    /// Gives the guest a new handle to `netref`.
    pub(crate) fn insert(&mut self, netref: NetRef) -> Result<u64, Error> {
        if self.live >= MAX_HANDLES {
            return Err(Error::new(
                ErrorKind::Overloaded,
                format!(
                    "guest holds {MAX_HANDLES} handles already; it must release some (drop its Remotes)"
                ),
            ));
        }
        let index = match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(netref);
                i
            }
            None => {
                self.slots.push(Some(netref));
                self.slots.len() - 1
            }
        };
        self.live += 1;
        u64::try_from(index).map_err(|_| Error::failed("handle index overflow"))
    }

    /// The netref behind a handle the guest named.
    pub(crate) fn get(&self, handle: i64) -> Result<NetRef, Error> {
        self.slot(handle)
            .and_then(|i| self.slots.get(i))
            .and_then(Option::as_ref)
            .cloned()
            .ok_or_else(|| stale(handle))
    }

    /// The guest gives a handle back.
    pub(crate) fn release(&mut self, handle: i64) -> Result<NetRef, Error> {
        let i = self.slot(handle).ok_or_else(|| stale(handle))?;
        let netref = self
            .slots
            .get_mut(i)
            .and_then(Option::take)
            .ok_or_else(|| stale(handle))?;
        self.free.push(i);
        self.live -= 1;
        Ok(netref)
    }

    fn slot(&self, handle: i64) -> Option<usize> {
        usize::try_from(handle).ok()
    }
}

fn stale(handle: i64) -> Error {
    Error::bad_argument(format!(
        "guest used handle {handle}, which it does not hold (forged, or already released)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rwc_protocol::Service;

    #[test]
    fn handles_are_reused_and_checked() {
        let mut t = HandleTable::default();
        let a = t.insert(Service::new("a").into_object()).unwrap();
        let b = t.insert(Service::new("b").into_object()).unwrap();
        assert_eq!((a, b), (0, 1));
        assert!(t.get(0).is_ok());
        assert!(t.get(2).is_err() && t.get(-1).is_err() && t.get(i64::MAX).is_err());
        t.release(0).unwrap();
        assert!(t.get(0).is_err(), "a released handle is stale");
        assert!(t.release(0).is_err(), "double release is an error");
        assert_eq!(t.insert(Service::new("c").into_object()).unwrap(), 0);
        assert_eq!(t.live, 2);
    }
}
