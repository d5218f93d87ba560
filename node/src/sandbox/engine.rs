//! The wasmtime [`Engine`] every module and instance of a sandbox shares, and the
//! thread that advances its epoch.
//!
//! Configuration choices and why:
//! - the pooling allocator, sized from [`SandboxConfig`], so instantiation is a slot
//!   reuse (no mmap per instance) and the node's footprint is bounded up front;
//! - copy-on-write memory images, so instantiating a module with big data segments is
//!   cheap;
//! - epoch interruption, which gives every call a wall-clock deadline and lets a busy
//!   guest yield to other tasks (see `instance.rs`);
//! - fuel metering, for callers who want a deterministic instruction budget.

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
/// code; the reservation costs address space only (256 instances ≈ 1 TiB of the 128 TiB
/// a Linux process has), never RAM.
const MEMORY_RESERVATION: u64 = 4 << 30;

/// Frames kept in a guest's backtrace: enough to see where a trap came from without
/// letting a deep recursion produce a huge trace.
const BACKTRACE_FRAMES: usize = 32;

/// Builds the engine for a sandbox.
pub(crate) fn new_engine(config: &SandboxConfig) -> Result<Engine, SandboxError> {
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
        .consume_fuel(true)
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

/// Increments the engine's epoch every tick until dropped.
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
    /// Starts the ticker thread.
    pub(crate) fn start(engine: &Engine, tick: Duration) -> Result<Self, SandboxError> {
        let (stop, stopped) = mpsc::channel::<()>();
        let engine = engine.clone();
        let thread = thread::Builder::new()
            .name("rwc-epoch".to_string())
            .spawn(move || {
                // Dropping the sender wakes this immediately with `Disconnected`.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                    engine.increment_epoch();
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

    #[test]
    fn engine_with_default_pool_is_created() {
        let config = SandboxConfig::default();
        assert_eq!(config.max_live_instances, 256);
        new_engine(&config).expect("the default pool fits a 64-bit host");
    }

    #[test]
    fn compatibility_hash_is_stable_hex() {
        let engine = new_engine(&SandboxConfig {
            max_live_instances: 2,
            ..SandboxConfig::default()
        })
        .unwrap();
        let a = compatibility_hash(&engine);
        assert_eq!(a.len(), 64);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(a, compatibility_hash(&engine));
    }

    #[test]
    fn ticker_stops_when_dropped() {
        let engine = new_engine(&SandboxConfig {
            max_live_instances: 1,
            ..SandboxConfig::default()
        })
        .unwrap();
        let ticker = EpochTicker::start(&engine, Duration::from_millis(1)).unwrap();
        // Joining in `drop` returns promptly only if the thread saw the stop signal.
        let start = std::time::Instant::now();
        drop(ticker);
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
