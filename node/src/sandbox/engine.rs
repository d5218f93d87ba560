//! The wasmtime [`Engine`]s of a sandbox, and the thread that advances their epochs.
//!
//! A sandbox has two engines with the same configuration but for fuel metering
//! ([`Metering`]): fuel checks are compiled into every loop and call of a module and
//! slow a tight loop down by up to half, so modules are compiled without them unless an
//! instance asks for a fuel budget, in which case the module is also compiled for the
//! metered engine.
//!
//! Configuration choices and why:
//! - the pooling allocator, sized from [`SandboxConfig`], so instantiation is a slot
//!   reuse (no mmap per instance) and the node's footprint is bounded up front;
//! - copy-on-write memory images, so instantiating a module with big data segments is
//!   cheap;
//! - epoch interruption, which gives every call a wall-clock deadline and lets a busy
//!   guest yield to other tasks (see `instance.rs`). Its check on every loop trip is a
//!   load and a branch, but the branch's cold path calls into the runtime, and since a
//!   call clobbers every float register, Cranelift keeps a loop's float values in stack
//!   slots across trips: a tight float loop can run at half speed. Fuel checks do the
//!   same. Wasmtime 48 has no setting that avoids it; guests with such loops do more
//!   work per trip (the `mandelbrot` example unrolls its loop by eight);
//! - fuel metering on the metered engine only, for callers who want a deterministic
//!   instruction budget.

use std::hash::{Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

use super::{SandboxConfig, SandboxError};

/// Size of the virtual address space reserved per linear memory on 64-bit hosts. With
/// 4 GiB (plus guard) every 32-bit memory access is bounds-checked by the MMU, not by
/// code; the reservation costs address space only, never RAM: each engine's pool has a
/// slot per live instance, so the default 256 instances reserve ≈ 1 TiB per engine, 2 TiB
/// for the sandbox's two, of the 128 TiB a Linux process has.
const MEMORY_RESERVATION: u64 = 4 << 30;

/// Frames kept in a guest's backtrace: enough to see where a trap came from without
/// letting a deep recursion produce a huge trace.
const BACKTRACE_FRAMES: usize = 32;

/// Which of a sandbox's two engines: they differ only in whether compiled code meters
/// fuel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Metering {
    /// No fuel checks: the default, and the fast one.
    Unmetered,
    /// Fuel checks compiled in, for instances with a fuel budget.
    Fuel,
}

impl Metering {
    /// The engine an instance with fuel budget `fuel` runs on.
    pub(crate) fn for_budget(fuel: Option<u64>) -> Self {
        if fuel.is_some() {
            Self::Fuel
        } else {
            Self::Unmetered
        }
    }
}

/// Builds one of a sandbox's engines.
///
/// Each engine has its own instance pool with a slot for every one of
/// `max_live_instances`: the sandbox's live instance count, not the pools, enforces the
/// total, so either kind of instance can use all of it. The second pool costs address
/// space only (see [`MEMORY_RESERVATION`]).
pub(crate) fn new_engine(
    config: &SandboxConfig,
    metering: Metering,
) -> Result<Engine, SandboxError> {
    let slots = u32::try_from(config.max_live_instances).map_err(|_| {
        SandboxError::Other(format!(
            "max_live_instances of {} is too large for the instance pool",
            config.max_live_instances
        ))
    })?;
    let max_memory = usize::try_from(config.max_memory).map_err(|_| {
        SandboxError::Other(format!(
            "memory cap of {} bytes does not fit this host's address space",
            config.max_memory
        ))
    })?;

    let mut pool = PoolingAllocationConfig::default();
    // Each instance is one core instance with (at most) one memory, one table and one
    // fiber stack for its async calls; GC heaps share the memory pool's slots.
    pool.total_core_instances(slots)
        .total_memories(slots)
        .total_tables(slots)
        .total_stacks(slots)
        .total_gc_heaps(slots)
        .max_memory_size(max_memory)
        .table_elements(config.max_table_elements);

    let mut wasm = Config::new();
    wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        // The pool's memory slots must be at least as large as the memory cap.
        .memory_reservation(MEMORY_RESERVATION.max(config.max_memory))
        .memory_init_cow(true)
        .epoch_interruption(true)
        .consume_fuel(metering == Metering::Fuel)
        .wasm_backtrace_max_frames(NonZeroUsize::new(BACKTRACE_FRAMES))
        .cranelift_opt_level(OptLevel::Speed);

    Engine::new(&wasm).map_err(|err| {
        SandboxError::Other(format!(
            "cannot create the wasm engine (the instance pool for {} instances with \
             {} bytes of memory each may not fit this machine; lower max_live_instances): {}",
            config.max_live_instances,
            config.max_memory,
            super::error::error_chain(&err)
        ))
    })
}

/// Lowercase hex SHA-256 of the engine's compatibility hash: the part of a disk cache
/// file name that keeps artifacts from another wasmtime version or configuration apart.
pub(crate) fn compatibility_hash(engine: &Engine) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex::encode(hasher.0.finalize())
}

/// Feeds `Hash` input into SHA-256: unlike `DefaultHasher`, stable across Rust releases,
/// so a node upgrade alone does not invalidate the disk cache.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        // Only the full digest is used; `finish` exists to satisfy the trait.
        let digest = self.0.clone().finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_le_bytes(first)
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// Increments the epoch of every engine it was given, every tick, until dropped.
///
/// Epoch deadlines only advance while this runs, so every [`Instance`](super::Instance)
/// holds the ticker alive: a guest stuck in a loop must still hit its deadline even after
/// the [`Sandbox`](super::Sandbox) that created it is gone.
#[derive(Debug)]
pub(crate) struct EpochTicker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    /// Starts the ticker thread for `engines`.
    pub(crate) fn start(engines: &[&Engine], tick: Duration) -> Result<Self, SandboxError> {
        let (stop, stopped) = mpsc::channel::<()>();
        let engines: Vec<Engine> = engines.iter().map(|&engine| engine.clone()).collect();
        let thread = thread::Builder::new()
            .name("rwc-epoch".to_string())
            .spawn(move || {
                // Dropping the sender wakes this immediately with `Disconnected`.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                    for engine in &engines {
                        engine.increment_epoch();
                    }
                }
            })
            .map_err(|err| SandboxError::Other(format!("cannot start the epoch thread: {err}")))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // The thread exits as soon as it sees the channel closed; a panic in it has
            // nothing left to report.
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration whose pool holds `instances` instances.
    fn pool_of(instances: usize) -> SandboxConfig {
        SandboxConfig {
            max_live_instances: instances,
            ..SandboxConfig::default()
        }
    }

    #[test]
    fn engine_with_default_pool_is_created() {
        let config = SandboxConfig::default();
        assert_eq!(config.max_live_instances, 256);
        let _unmetered =
            new_engine(&config, Metering::Unmetered).expect("the default pool fits a 64-bit host");
        let _fuel = new_engine(&config, Metering::Fuel).expect("and so does a second one");
    }

    #[test]
    fn compatibility_hash_is_stable_hex() {
        let config = pool_of(2);
        let engine = new_engine(&config, Metering::Unmetered).unwrap();
        let a = compatibility_hash(&engine);
        assert_eq!(a.len(), 64);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(a, compatibility_hash(&engine));
        assert_eq!(
            a,
            compatibility_hash(&new_engine(&config, Metering::Unmetered).unwrap()),
            "same configuration, same hash"
        );
        // The metered engine's artifacts are kept apart from the other's.
        let fuel = compatibility_hash(&new_engine(&config, Metering::Fuel).unwrap());
        assert_ne!(a, fuel);
    }

    #[test]
    fn only_the_metered_engine_meters_fuel() {
        let config = pool_of(1);
        let plain = new_engine(&config, Metering::Unmetered).unwrap();
        let mut store = wasmtime::Store::new(&plain, ());
        assert!(store.set_fuel(1).is_err(), "fuel is not enabled");
        let fuel = new_engine(&config, Metering::Fuel).unwrap();
        let mut store = wasmtime::Store::new(&fuel, ());
        store.set_fuel(1).unwrap();
        assert_eq!(store.get_fuel().unwrap(), 1);
    }

    #[test]
    fn ticker_stops_when_dropped() {
        let config = pool_of(1);
        let plain = new_engine(&config, Metering::Unmetered).unwrap();
        let fuel = new_engine(&config, Metering::Fuel).unwrap();
        let ticker = EpochTicker::start(&[&plain, &fuel], Duration::from_millis(1)).unwrap();
        // Joining in `drop` returns promptly only if the thread saw the stop signal.
        let start = std::time::Instant::now();
        drop(ticker);
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
