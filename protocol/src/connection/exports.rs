//! The export table: objects this side has sent to the peer, with how many references the
//! peer holds.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use crate::error::Error;
use crate::message::ROOT_EXPORT;
use crate::netref::object_key;
use crate::object::Object;

pub(crate) struct Exports {
    slots: Vec<Option<Export>>,
    /// Free ids, lowest first: the exporter reuses the lowest free id.
    free: BinaryHeap<Reverse<u64>>,
    /// Object address → id, so an object sent many times keeps one id.
    by_object: HashMap<usize, u64>,
    live: usize,
}

struct Export {
    object: Arc<dyn Object>,
    /// References sent minus references released. The root is pinned and never counted.
    count: u64,
}

impl Exports {
    pub(crate) fn new(root: Arc<dyn Object>) -> Self {
        let mut by_object = HashMap::new();
        by_object.insert(object_key(&root), ROOT_EXPORT);
        Exports {
            slots: vec![Some(Export {
                object: root,
                count: 0,
            })],
            free: BinaryHeap::new(),
            by_object,
            live: 1,
        }
    }

    /// Records one more reference to `object` sent to the peer; returns its id.
    pub(crate) fn export(&mut self, object: &Arc<dyn Object>) -> u64 {
        let key = object_key(object);
        if let Some(&id) = self.by_object.get(&key)
            && let Some(Some(e)) = self.slots.get_mut(slot(id))
        {
            if id != ROOT_EXPORT {
                e.count += 1;
            }
            return id;
        }
        let entry = Export {
            object: object.clone(),
            count: 1,
        };
        let id = match self.free.pop() {
            Some(Reverse(id)) => {
                self.slots[slot(id)] = Some(entry);
                id
            }
            None => {
                self.slots.push(Some(entry));
                (self.slots.len() - 1) as u64
            }
        };
        self.by_object.insert(key, id);
        self.live += 1;
        id
    }

    /// The object exported under `id`, if any.
    pub(crate) fn object(&self, id: u64) -> Option<Arc<dyn Object>> {
        self.slots.get(slot(id))?.as_ref().map(|e| e.object.clone())
    }

    /// The peer drops `count` references to `id`. Returns the object when it is freed, to
    /// be dropped by the caller outside any lock.
    pub(crate) fn release(
        &mut self,
        id: u64,
        count: u64,
    ) -> Result<Option<Arc<dyn Object>>, Error> {
        if id == ROOT_EXPORT {
            return Err(Error::protocol(
                "peer released the root object, which is never released",
            ));
        }
        let Some(Some(entry)) = self.slots.get_mut(slot(id)) else {
            return Err(Error::protocol(format!(
                "peer released export #{id}, which it does not hold"
            )));
        };
        if count == 0 || count > entry.count {
            return Err(Error::protocol(format!(
                "peer released {count} references to export #{id} but holds {}",
                entry.count
            )));
        }
        entry.count -= count;
        if entry.count > 0 {
            return Ok(None);
        }
        let freed = self.slots[slot(id)].take().map(|e| e.object);
        if let Some(obj) = &freed {
            self.by_object.remove(&object_key(obj));
        }
        self.free.push(Reverse(id));
        self.live -= 1;
        Ok(freed)
    }

    /// Empties the table (the connection closed); returns the objects to drop outside the lock.
    pub(crate) fn clear(&mut self) -> Vec<Arc<dyn Object>> {
        self.by_object.clear();
        self.free.clear();
        self.live = 0;
        self.slots.drain(..).flatten().map(|e| e.object).collect()
    }

    /// Objects currently exported, the root included while the connection is open.
    pub(crate) fn len(&self) -> usize {
        self.live
    }
}

/// Slot index of an id; ids beyond the address space map to an index no table has.
fn slot(id: u64) -> usize {
    usize::try_from(id).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::Service;

    fn obj(name: &str) -> Arc<dyn Object> {
        Arc::new(Service::new(name))
    }

    #[test]
    fn same_object_keeps_its_id_and_counts() {
        let mut t = Exports::new(obj("root"));
        let a = obj("a");
        assert_eq!(t.export(&a), 1);
        assert_eq!(t.export(&a), 1);
        assert_eq!(t.export(&a), 1);
        assert_eq!(t.len(), 2);
        assert!(t.release(1, 2).unwrap().is_none());
        assert!(t.release(1, 1).unwrap().is_some());
        assert_eq!(t.len(), 1);
        assert!(
            t.release(1, 1).is_err(),
            "double release is a protocol error"
        );
    }

    #[test]
    fn lowest_free_id_is_reused() {
        let mut t = Exports::new(obj("root"));
        let (a, b, c) = (obj("a"), obj("b"), obj("c"));
        assert_eq!((t.export(&a), t.export(&b), t.export(&c)), (1, 2, 3));
        t.release(2, 1).unwrap();
        t.release(1, 1).unwrap();
        assert_eq!(t.export(&obj("d")), 1);
        assert_eq!(t.export(&obj("e")), 2);
    }

    #[test]
    fn bad_releases_are_errors() {
        let mut t = Exports::new(obj("root"));
        assert!(t.release(0, 1).is_err());
        assert!(t.release(99, 1).is_err());
        assert!(t.release(u64::MAX, 1).is_err());
        let a = obj("a");
        t.export(&a);
        assert!(t.release(1, 0).is_err());
        assert!(t.release(1, 5).is_err());
    }
}
