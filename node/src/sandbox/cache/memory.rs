//! The memory cache: compiled modules kept least-recently-used first, bounded by size and
//! by count.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::sandbox::LoadedModule;

/// Least-recently-used modules, bounded by total size ([`LoadedModule::cache_size`]) and
/// by count.
pub(super) struct MemoryCache {
    entries: HashMap<String, CacheEntry>,
    /// Use stamp → hash, oldest first.
    order: BTreeMap<u64, String>,
    next_stamp: u64,
    bytes: u64,
    max_bytes: u64,
    max_modules: usize,
}

struct CacheEntry {
    module: Arc<LoadedModule>,
    /// Last use.
    stamp: u64,
    /// What the entry adds to `MemoryCache::bytes`.
    bytes: u64,
}

impl MemoryCache {
    pub(super) fn new(max_bytes: u64, max_modules: usize) -> Self {
        Self {
            entries: HashMap::new(),
            order: BTreeMap::new(),
            next_stamp: 0,
            bytes: 0,
            max_bytes,
            max_modules,
        }
    }

    /// Modules cached.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes counted against the budget.
    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(super) fn get(&mut self, hash: &str) -> Option<Arc<LoadedModule>> {
        let stamp = self.next_stamp;
        let entry = self.entries.get_mut(hash)?;
        self.order.remove(&entry.stamp);
        entry.stamp = stamp;
        self.order.insert(stamp, hash.to_string());
        self.next_stamp += 1;
        Some(Arc::clone(&entry.module))
    }

    /// Inserts `module` and evicts the least recently used modules over budget. Returns
    /// the cached module for that hash: an earlier one if two loads raced.
    pub(super) fn insert(&mut self, module: Arc<LoadedModule>) -> Arc<LoadedModule> {
        if let Some(existing) = self.get(module.hash()) {
            return existing;
        }
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        let bytes = module.cache_size();
        self.bytes = self.bytes.saturating_add(bytes);
        self.order.insert(stamp, module.hash().to_string());
        self.entries.insert(
            module.hash().to_string(),
            CacheEntry {
                module: Arc::clone(&module),
                stamp,
                bytes,
            },
        );
        self.evict_over_budget();
        module
    }

    /// Counts `module` at its current size, if it is the one cached under its hash (it may
    /// have been evicted, or replaced after an eviction), and evicts over budget.
    pub(super) fn resize(&mut self, module: &Arc<LoadedModule>) {
        let Some(entry) = self.entries.get_mut(module.hash()) else {
            return;
        };
        if !Arc::ptr_eq(&entry.module, module) {
            return;
        }
        let bytes = module.cache_size();
        self.bytes = self.bytes.saturating_sub(entry.bytes).saturating_add(bytes);
        entry.bytes = bytes;
        self.evict_over_budget();
    }

    fn evict_over_budget(&mut self) {
        while self.bytes > self.max_bytes || self.entries.len() > self.max_modules {
            let Some((_, hash)) = self.order.pop_first() else {
                break;
            };
            if let Some(evicted) = self.entries.remove(&hash) {
                self.bytes = self.bytes.saturating_sub(evicted.bytes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use crate::sandbox::SandboxConfig;
    use crate::sandbox::test_support::{ADD, sandbox};

    #[test]
    fn lru_evicts_by_count_and_reloads() {
        let sandbox = sandbox(SandboxConfig {
            memory_cache_modules: 2,
            ..SandboxConfig::default()
        });
        let wat = |n: u32| format!("(module (func (export \"f\") (result i32) i32.const {n}))");
        let first = sandbox.load(wat(1).as_bytes()).unwrap();
        sandbox.load(wat(2).as_bytes()).unwrap();
        // Touch the first so the second is the least recently used.
        assert!(sandbox.module(first.hash()).is_some());
        sandbox.load(wat(3).as_bytes()).unwrap();
        assert_eq!(sandbox.stats().cached_modules, 2);
        assert!(sandbox.module(first.hash()).is_some());
        let second_id = hex::encode(Sha256::digest(wat(2).as_bytes()));
        assert!(sandbox.module(&second_id).is_none(), "evicted");
        // An evicted module can be loaded again.
        sandbox.load(wat(2).as_bytes()).unwrap();
        assert_eq!(sandbox.stats().compiles, 4);
    }

    #[test]
    fn lru_evicts_by_compiled_size() {
        let sandbox = sandbox(SandboxConfig {
            memory_cache_bytes: 1,
            ..SandboxConfig::default()
        });
        let module = sandbox.load(ADD.as_bytes()).unwrap();
        // Over budget on its own: returned, but not kept.
        assert_eq!(sandbox.stats().cached_modules, 0);
        assert_eq!(sandbox.stats().cached_bytes, 0);
        assert!(sandbox.module(module.hash()).is_none());
    }
}
