//! The module caches: where [`Sandbox::load`] and [`Sandbox::module`] look before they
//! compile. Compiled modules are kept in an LRU memory cache ([`memory`]) bounded by size
//! and count, and, with a `cache_dir`, serialized to disk ([`disk`]) so a restarted node
//! does not compile them again. The disk cache keeps each upload beside its compiled
//! artifacts, for the fuel-metering variant compiled on demand.

mod budget;
mod disk;
mod memory;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sha2::{Digest, Sha256};
use wasmtime::{Engine, InstancePre};

use self::disk::DiskCache;
pub use self::disk::DiskCacheStats;
use self::memory::MemoryCache;
use super::compile::{is_module_hash, prelink};
use super::engine::Metering;
use super::module::{Compiled, LoadedModule};
use super::{Sandbox, SandboxConfig, SandboxError, StoreState};

impl Sandbox {
    /// Loads an uploaded module (Wasm binary or WAT text): checks its size, then returns
    /// the cached compiled module for the same bytes or validates, compiles and caches it.
    ///
    /// Compiling is CPU-bound and can take a while for big modules: from async code, call
    /// this through `tokio::task::spawn_blocking`.
    pub fn load(&self, bytes: &[u8]) -> Result<Arc<LoadedModule>, SandboxError> {
        self.load_unless(bytes, &AtomicBool::new(false))
    }

    /// Refuses an upload over the size limit before anything looks at it.
    pub(super) fn check_size(&self, bytes: &[u8]) -> Result<(), SandboxError> {
        let limit = self.inner.modules.max_module_bytes;
        let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if size > limit {
            return Err(SandboxError::TooLarge { size, limit });
        }
        Ok(())
    }

    /// [`load`](Sandbox::load), except that a module compiled after `abandoned` was set
    /// (its compilation passed its deadline) is thrown away rather than cached.
    pub(super) fn load_unless(
        &self,
        bytes: &[u8],
        abandoned: &AtomicBool,
    ) -> Result<Arc<LoadedModule>, SandboxError> {
        let cache = &self.inner.modules;
        self.check_size(bytes)?;
        let hash = hex::encode(Sha256::digest(bytes));

        if let Some(module) = cache.memory().get(&hash) {
            cache.memory_cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(module);
        }
        if let Some(module) = self.load_from_disk(&hash, Some(bytes)) {
            return Ok(module);
        }

        let unmetered = self.compile_for(Metering::Unmetered, bytes)?;
        if abandoned.load(Ordering::Acquire) {
            return Err(SandboxError::Other(format!(
                "compiling module {hash} was abandoned at its deadline"
            )));
        }
        let loaded = Arc::new(LoadedModule::new(hash, bytes.into(), unmetered));
        if let Some(disk) = &cache.disk {
            disk.store(&loaded);
        }
        Ok(cache.memory().insert(loaded))
    }

    /// The module named `hash` if the memory cache has it. Never touches the disk.
    pub fn cached(&self, hash: &str) -> Option<Arc<LoadedModule>> {
        let cache = &self.inner.modules;
        let module = cache.memory().get(hash)?;
        cache.memory_cache_hits.fetch_add(1, Ordering::Relaxed);
        Some(module)
    }

    /// The module named `hash` if the node has it, in memory or in the disk cache.
    ///
    /// `hash` usually comes from a client; anything that is not a SHA-256 hex string is
    /// simply not found. Reading the disk cache blocks: from async code, look in memory
    /// with [`cached`](Sandbox::cached) first and call this on the blocking pool.
    pub fn module(&self, hash: &str) -> Option<Arc<LoadedModule>> {
        if !is_module_hash(hash) {
            return None;
        }
        let cache = &self.inner.modules;
        if let Some(module) = cache.memory().get(hash) {
            cache.memory_cache_hits.fetch_add(1, Ordering::Relaxed);
            return Some(module);
        }
        self.load_from_disk(hash, None)
    }

    /// The module pre-linked for the engine `metering` picks. The first time fuel
    /// metering is asked for, this compiles the module for the metering engine (or finds
    /// it in the disk cache), on a blocking thread; concurrent callers wait for that one
    /// compilation.
    pub(crate) async fn instance_pre(
        &self,
        module: &Arc<LoadedModule>,
        metering: Metering,
        client: u64,
    ) -> Result<InstancePre<StoreState>, SandboxError> {
        let compiled = match metering {
            Metering::Unmetered => &module.unmetered,
            Metering::Fuel => {
                let compiled = module
                    .fuel
                    .get_or_try_init(|| self.fuel_variant(module, client))
                    .await?;
                // The module grew: let the memory cache account for it.
                self.inner.modules.memory().resize(module);
                compiled
            }
        };
        Ok(compiled.pre.clone())
    }

    /// Compiles `module` for the fuel-metering engine, or loads that from the disk cache,
    /// on a compile turn of `client` and within the compile deadline.
    async fn fuel_variant(
        &self,
        module: &Arc<LoadedModule>,
        client: u64,
    ) -> Result<Compiled, SandboxError> {
        let sandbox = self.clone();
        let module = Arc::clone(module);
        let hash = module.hash().to_owned();
        let queue = &self.inner.compiles;
        let turn = queue.turn(client).await;
        // If the caller gives up, the compilation still finishes (and reaches the disk
        // cache); the next caller starts another.
        let job = tokio::task::spawn_blocking(move || {
            let _turn = turn;
            let cache = &sandbox.inner.modules;
            if let Some(disk) = &cache.disk {
                let side = sandbox.inner.side(Metering::Fuel);
                if let Some(artifact) =
                    disk.load_artifact(&side.engine, Metering::Fuel, module.hash())
                {
                    match prelink(&side.linker, artifact) {
                        Ok(compiled) => {
                            cache.disk_cache_hits.fetch_add(1, Ordering::Relaxed);
                            return Ok(compiled);
                        }
                        Err(err) => tracing::warn!(
                            module = module.hash(),
                            "cached fuel-metered module no longer links: {err}"
                        ),
                    }
                }
            }
            let compiled = sandbox.compile_for(Metering::Fuel, &module.upload)?;
            if let Some(disk) = &cache.disk {
                disk.store_artifact(module.hash(), Metering::Fuel, &compiled.module);
            }
            Ok(compiled)
        });
        match tokio::time::timeout(queue.timeout(), job).await {
            Ok(joined) => joined.map_err(|err| {
                SandboxError::Other(format!(
                    "compiling the module with fuel metering failed: {err}"
                ))
            })?,
            Err(_) => Err(SandboxError::CompileTimedOut {
                hash,
                timeout: queue.timeout(),
            }),
        }
    }

    /// The module `hash` from the disk cache, if it has the unmetered artifact and the
    /// upload (`upload` if the caller has it, else the cached copy).
    fn load_from_disk(&self, hash: &str, upload: Option<&[u8]>) -> Option<Arc<LoadedModule>> {
        let cache = &self.inner.modules;
        let disk = cache.disk.as_ref()?;
        if !disk.artifact_path(hash, Metering::Unmetered).exists() {
            return None;
        }
        let upload: Box<[u8]> = match upload {
            Some(bytes) => {
                if !disk.upload_path(hash).exists() {
                    disk.store_upload(hash, bytes);
                }
                bytes.into()
            }
            None => disk.load_upload(hash)?,
        };
        let side = self.inner.side(Metering::Unmetered);
        let artifact = disk.load_artifact(&side.engine, Metering::Unmetered, hash)?;
        match prelink(&side.linker, artifact) {
            Ok(unmetered) => {
                cache.disk_cache_hits.fetch_add(1, Ordering::Relaxed);
                let loaded = LoadedModule::new(hash.to_string(), upload, unmetered);
                Some(cache.memory().insert(Arc::new(loaded)))
            }
            Err(err) => {
                // Only possible if the node's host functions changed since the artifact
                // was written; compiling again gives the client the proper error.
                tracing::warn!(module = hash, "cached module no longer links: {err}");
                None
            }
        }
    }
}

/// Caches and counters of a sandbox.
pub(crate) struct ModuleCache {
    max_module_bytes: u64,
    memory: Mutex<MemoryCache>,
    disk: Option<DiskCache>,
    pub(super) compiles: AtomicU64,
    disk_cache_hits: AtomicU64,
    memory_cache_hits: AtomicU64,
}

/// Snapshot of [`ModuleCache`] counters.
pub(crate) struct CacheStats {
    pub(crate) compiles: u64,
    pub(crate) disk_cache_hits: u64,
    pub(crate) memory_cache_hits: u64,
    pub(crate) cached_modules: usize,
    pub(crate) cached_bytes: u64,
    pub(crate) disk: DiskCacheStats,
}

impl ModuleCache {
    /// `unmetered` and `fuel` are the sandbox's engines, whose compatibility hashes keep
    /// their artifacts apart in the disk cache.
    pub(crate) fn new(
        config: &SandboxConfig,
        unmetered: &Engine,
        fuel: &Engine,
    ) -> Result<Self, SandboxError> {
        let disk = match &config.cache_dir {
            Some(dir) => Some(DiskCache::open(
                dir,
                unmetered,
                fuel,
                config.disk_cache_bytes,
            )?),
            None => None,
        };
        Ok(Self {
            max_module_bytes: config.max_module_bytes,
            memory: Mutex::new(MemoryCache::new(
                config.memory_cache_bytes,
                config.memory_cache_modules,
            )),
            disk,
            compiles: AtomicU64::new(0),
            disk_cache_hits: AtomicU64::new(0),
            memory_cache_hits: AtomicU64::new(0),
        })
    }

    pub(crate) fn stats(&self) -> CacheStats {
        let memory = self.memory();
        CacheStats {
            compiles: self.compiles.load(Ordering::Relaxed),
            disk_cache_hits: self.disk_cache_hits.load(Ordering::Relaxed),
            memory_cache_hits: self.memory_cache_hits.load(Ordering::Relaxed),
            cached_modules: memory.len(),
            cached_bytes: memory.bytes(),
            disk: self.disk.as_ref().map(DiskCache::stats).unwrap_or_default(),
        }
    }

    fn memory(&self) -> MutexGuard<'_, MemoryCache> {
        // Every update of the cache completes without panicking, so a poisoned lock
        // still guards a consistent cache.
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::test_support::{ADD, sandbox, with_add};

    #[test]
    fn hash_is_sha256_of_the_upload_and_stable() {
        let (sandbox, module) = with_add();
        assert_eq!(module.hash(), hex::encode(Sha256::digest(ADD.as_bytes())));
        assert_eq!(module.size(), u64::try_from(ADD.len()).unwrap());
        assert!(module.compiled_size() > 0);

        let again = sandbox.load(ADD.as_bytes()).unwrap();
        assert!(Arc::ptr_eq(&module, &again));
        let stats = sandbox.stats();
        assert_eq!((stats.compiles, stats.memory_cache_hits), (1, 1));
        assert!(Arc::ptr_eq(
            &sandbox.module(module.hash()).unwrap(),
            &module
        ));
    }

    #[tokio::test]
    async fn the_fuel_variant_counts_against_the_memory_budget() {
        let (sandbox, module) = with_add();
        let before = sandbox.stats().cached_bytes;
        assert_eq!(before, module.compiled_size() + module.size());
        let opts = crate::sandbox::InstanceOptions {
            fuel: Some(10),
            ..Default::default()
        };
        let instance = sandbox.instantiate(&module, opts).await.unwrap();
        assert_eq!(instance.fuel_remaining(), Some(10));
        let after = sandbox.stats().cached_bytes;
        assert!(after > before, "{after} > {before}");
        assert_eq!(after, module.cache_size());
    }

    #[test]
    fn module_hashes_are_checked_before_touching_the_disk() {
        assert!(is_module_hash(&"ab".repeat(32)));
        assert!(!is_module_hash(&"AB".repeat(32)));
        assert!(!is_module_hash("../../etc/passwd"));
        let dir = tempfile::tempdir().unwrap();
        let sandbox = sandbox(SandboxConfig {
            cache_dir: Some(dir.path().to_path_buf()),
            ..SandboxConfig::default()
        });
        assert!(sandbox.module("../../etc/passwd").is_none());
        assert!(sandbox.module(&"0".repeat(64)).is_none());
    }
}
