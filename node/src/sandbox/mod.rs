//! The sandbox: compiles uploaded Wasm modules and runs them in wasmtime instances with
//! hard limits.
//!
//! A [`Sandbox`] owns two wasmtime engines (pooling allocator, epoch interruption; one
//! of them also meters fuel, and is only used for instances given a fuel budget), the
//! module caches and the instance accounting. [`Sandbox::load`] turns uploaded bytes
//! (Wasm binary or WAT) into a [`LoadedModule`] named by the SHA-256 of the upload;
//! [`Sandbox::instantiate`] makes an [`Instance`] with its own store, WASI preview 1
//! context (nothing granted), limits and output capture; [`Instance::call`] runs an
//! export with numeric arguments under a wall-clock deadline.
//!
//! ```
//! use rwc_node::sandbox::{InstanceOptions, Sandbox, SandboxConfig, WasmArg};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sandbox = Sandbox::new(SandboxConfig { max_live_instances: 4, ..Default::default() })?;
//! let module = sandbox.load(
//!     br#"(module (func (export "add") (param i32 i32) (result i32)
//!            local.get 0 local.get 1 i32.add))"#,
//! )?;
//! let mut instance = sandbox.instantiate(&module, InstanceOptions::default()).await?;
//! let sum = instance.call("add", &[WasmArg::I32(2), WasmArg::I32(3)]).await?;
//! assert_eq!(sum, vec![WasmArg::I32(5)]);
//! # Ok(())
//! # }
//! ```

mod cache;
mod compile;
mod compile_queue;
mod description;
mod engine;
mod error;
mod instance;
mod memory;
mod module;
mod numeric;
mod output;
mod store;
#[cfg(test)]
mod test_support;
mod wasi;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use wasmtime::{Engine, Linker};

pub use self::cache::DiskCacheStats;
use self::cache::ModuleCache;
use self::compile_queue::CompileQueue;
use self::engine::{EpochTicker, Metering};

pub use self::description::{ExportInfo, ExternKind, ImportInfo};
pub use self::error::SandboxError;
pub use self::instance::{Instance, InstanceOptions, Preopen};
pub use self::memory::{OutOfBounds, memory_range};
pub use self::module::LoadedModule;
pub use self::numeric::{Number, WasmArg};
pub use self::output::{OutputCapture, OutputSink, Stream};
pub use self::store::StoreState;
pub use self::wasi::GuestWasi;

/// Limits and knobs of a [`Sandbox`]. `Default` gives the node's defaults.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Instances alive at once, across all clients (default 256). The engine's pools are
    /// sized from this; one more instantiation gives [`SandboxError::Overloaded`].
    pub max_live_instances: usize,
    /// Largest linear memory any instance may have, in bytes (default 256 MiB); also the
    /// default per-instance memory limit.
    pub max_memory: u64,
    /// Largest table any instance may have, in elements (default 20 000).
    pub max_table_elements: usize,
    /// Wall-clock deadline of a call when the caller gives none (default 30 s).
    pub default_call_timeout: Duration,
    /// Guest output delivered per call when the caller gives no cap (default 16 MiB).
    pub default_max_output: u64,
    /// Largest upload accepted, checked before parsing (default 64 MiB).
    pub max_module_bytes: u64,
    /// Budget of the memory cache, in bytes (default 512 MiB): what it counts for a module
    /// is its compiled code (with and without fuel metering) and its upload, kept to
    /// compile it with fuel metering when first asked.
    pub memory_cache_bytes: u64,
    /// Modules kept in the memory cache (default 1024).
    pub memory_cache_modules: usize,
    /// Where compiled artifacts are kept across restarts; `None` disables the disk
    /// cache. The directory must be writable only by the node: its files are loaded as
    /// native code.
    pub cache_dir: Option<PathBuf>,
    /// How often the engine's epoch advances (default 10 ms): the granularity of call
    /// deadlines and of a busy guest yielding to other tasks.
    pub epoch_tick: Duration,
    /// Compilations running at once through [`Sandbox::load_queued`] and for fuel
    /// metering (default: the number of CPUs); more wait their turn.
    pub max_concurrent_compiles: usize,
    /// How long one compilation may take (default 60 s); past it, its loads fail with
    /// [`SandboxError::CompileTimedOut`].
    pub compile_timeout: Duration,
    /// Bytes the disk cache may hold (default 4 GiB); least recently used modules are
    /// evicted to stay within it.
    pub disk_cache_bytes: u64,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            max_live_instances: 256,
            max_memory: 256 << 20,
            max_table_elements: 20_000,
            default_call_timeout: Duration::from_secs(30),
            default_max_output: 16 << 20,
            max_module_bytes: 64 << 20,
            memory_cache_bytes: 512 << 20,
            memory_cache_modules: 1024,
            cache_dir: None,
            epoch_tick: Duration::from_millis(10),
            max_concurrent_compiles: std::thread::available_parallelism()
                .map_or(1, std::num::NonZero::get),
            compile_timeout: Duration::from_secs(60),
            disk_cache_bytes: 4 << 30,
        }
    }
}

/// Counters describing a sandbox, from [`Sandbox::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SandboxStats {
    /// Instances currently alive.
    pub live_instances: usize,
    /// Compilations from Wasm since the sandbox started: one per module, plus one more
    /// for each module compiled with fuel metering (the first time an instance of it
    /// asks for a fuel budget).
    pub compiles: u64,
    /// Compiled modules (either kind) found in the disk cache.
    pub disk_cache_hits: u64,
    /// Modules found in the memory cache.
    pub memory_cache_hits: u64,
    /// Modules now in the memory cache.
    pub cached_modules: usize,
    /// Bytes now in the memory cache, as counted against
    /// [`SandboxConfig::memory_cache_bytes`].
    pub cached_bytes: u64,
    /// Compilations running now.
    pub compiles_running: usize,
    /// Compilations waiting for a turn.
    pub compiles_queued: usize,
    /// Compilations that passed their deadline since the sandbox started.
    pub compiles_timed_out: u64,
    /// Counts of the disk cache (all 0 without one).
    pub disk: DiskCacheStats,
}

/// The node's sandbox: engines, module caches and instance accounting.
///
/// Cloning is cheap and gives another handle on the same sandbox. The epoch thread stops
/// when the last handle and the last [`Instance`] are dropped.
///
/// Instantiation and calls must run inside a Tokio runtime with its time driver enabled:
/// WASI relies on Tokio, and a call stuck in a host function past its deadline is
/// cancelled with a Tokio timer.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<SandboxInner>,
}

struct SandboxInner {
    config: SandboxConfig,
    /// Runs every instance without a fuel budget.
    unmetered: EngineSide,
    /// Runs instances with a fuel budget; modules are compiled for it on demand.
    fuel: EngineSide,
    modules: ModuleCache,
    compiles: CompileQueue,
    live_instances: Arc<AtomicUsize>,
    ticker: Arc<EpochTicker>,
}

/// One engine and the linker of host functions made for it (a linker's functions belong
/// to one engine).
struct EngineSide {
    engine: Engine,
    linker: Linker<StoreState>,
}

impl EngineSide {
    fn new(
        config: &SandboxConfig,
        metering: Metering,
        define: &impl Fn(&mut Linker<StoreState>) -> wasmtime::Result<()>,
    ) -> Result<Self, SandboxError> {
        let engine = engine::new_engine(config, metering)?;
        let mut linker = Linker::new(&engine);
        // wasmtime-wasi's preview 1, served through `GuestWasi` (which audits file changes);
        // the same functions `wasmtime_wasi::p1::add_to_linker_async` adds.
        wasmtime_wasi::p1::wasi_snapshot_preview1::add_to_linker(
            &mut linker,
            |state: &mut StoreState| &mut state.wasi,
        )
        .and_then(|()| define(&mut linker))
        .map_err(|err| {
            SandboxError::Other(format!(
                "cannot set up the guest linker: {}",
                error::error_chain(&err)
            ))
        })?;
        Ok(Self { engine, linker })
    }
}

impl SandboxInner {
    fn side(&self, metering: Metering) -> &EngineSide {
        match metering {
            Metering::Unmetered => &self.unmetered,
            Metering::Fuel => &self.fuel,
        }
    }
}

impl Sandbox {
    /// Creates a sandbox whose guests may import WASI preview 1 only.
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        Self::with_host_functions(config, |_| Ok(()))
    }

    /// Creates a sandbox whose guests may import WASI preview 1 plus whatever `define`
    /// adds to the linker (the node's guest ABI).
    ///
    /// Host functions should be defined with the `*_async` linker methods or be quick:
    /// guests run as async tasks on the node's runtime. `define` is called once for each
    /// of the sandbox's two engines (with and without fuel metering) and must define the
    /// same functions both times.
    pub fn with_host_functions(
        config: SandboxConfig,
        define: impl Fn(&mut Linker<StoreState>) -> wasmtime::Result<()>,
    ) -> Result<Self, SandboxError> {
        let unmetered = EngineSide::new(&config, Metering::Unmetered, &define)?;
        let fuel = EngineSide::new(&config, Metering::Fuel, &define)?;
        let modules = ModuleCache::new(&config, &unmetered.engine, &fuel.engine)?;
        let ticker = Arc::new(EpochTicker::start(
            &[&unmetered.engine, &fuel.engine],
            config.epoch_tick,
        )?);
        let compiles = CompileQueue::new(config.max_concurrent_compiles, config.compile_timeout);
        Ok(Self {
            inner: Arc::new(SandboxInner {
                compiles,
                config,
                unmetered,
                fuel,
                modules,
                live_instances: Arc::new(AtomicUsize::new(0)),
                ticker,
            }),
        })
    }

    /// The configuration this sandbox was created with.
    pub fn config(&self) -> &SandboxConfig {
        &self.inner.config
    }

    /// The wasmtime engine of instances without a fuel budget (most of them), for code
    /// that needs to build its own wasmtime objects. [`LoadedModule::module`] belongs to
    /// it.
    pub fn engine(&self) -> &Engine {
        &self.inner.unmetered.engine
    }

    /// Current counters.
    pub fn stats(&self) -> SandboxStats {
        let cache = self.inner.modules.stats();
        let compiles = self.inner.compiles.stats();
        SandboxStats {
            compiles_running: compiles.running,
            compiles_queued: compiles.queued,
            compiles_timed_out: compiles.timed_out,
            disk: cache.disk,
            live_instances: self.inner.live_instances.load(Ordering::Acquire),
            compiles: cache.compiles,
            disk_cache_hits: cache.disk_cache_hits,
            memory_cache_hits: cache.memory_cache_hits,
            cached_modules: cache.cached_modules,
            cached_bytes: cache.cached_bytes,
        }
    }
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox")
            .field("config", &self.inner.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_can_move_between_tasks() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<Sandbox>();
        send_sync::<LoadedModule>();
        send_sync::<OutputCapture>();
        send::<Instance>();
    }
}
