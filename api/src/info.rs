//! What a node's `info()` answers, and the limits it runs under.

use serde::{Deserialize, Serialize};

use crate::principal::PrincipalInfo;

/// A node's version, counters and limits: what `info()` answers and `rwc info` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// rwc-node version.
    pub version: String,
    /// wasmtime version the node runs guests with.
    pub wasmtime_version: String,
    /// Seconds since the node started.
    pub uptime_secs: f64,
    /// Modules compiled and cached in memory.
    pub modules_cached: usize,
    /// Live instances on the node.
    pub live_instances: usize,
    /// Modules compiled since start (a disk cache hit is not a compile).
    pub compiles: u64,
    /// Modules loaded from the disk cache.
    pub disk_cache_hits: u64,
    /// Module lookups answered from memory.
    pub memory_cache_hits: u64,
    /// Guest calls served since start.
    pub calls: u64,
    /// Guest calls refused since start because the node was running
    /// [`max_concurrent_calls`](Limits::max_concurrent_calls) already (`overloaded`).
    pub calls_refused: u64,
    /// Module uploads received since start (a client that finds the module by hash does
    /// not upload).
    pub uploads: u64,
    /// Connections accepted since start.
    pub connections: u64,
    /// Capabilities the node's config grants to clients.
    pub grants: Vec<String>,
    /// The node's limits.
    pub limits: Limits,
    /// The caller: its principal, grants and effective limits (`None` from a node that
    /// predates principals).
    #[serde(default)]
    pub principal: Option<PrincipalInfo>,
}

/// Limits of a node, its instances and its clients: the `[limits]` table of the node's
/// config file (every key also a flag), and what `info()` reports.
///
/// A person writes these keys, so an unknown one is an error naming it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest module accepted, in bytes.
    pub max_module_bytes: u64,
    /// Most compiled modules kept in memory.
    pub max_modules: usize,
    /// Bytes of compiled code kept in memory (least recently used evicted first).
    pub module_cache_bytes: u64,
    /// Most live instances on the node.
    pub max_instances: usize,
    /// Most live instances one connection may hold.
    pub max_instances_per_connection: usize,
    /// Most guest calls running at once on the node.
    pub max_concurrent_calls: usize,
    /// Memory of one instance, in bytes (also the most a client may ask for).
    pub memory_bytes: u64,
    /// Deadline of one call, in milliseconds (also the most a client may ask for).
    pub call_timeout_ms: u64,
    /// Guest output captured per call, in bytes (also the most a client may ask for).
    pub max_output_bytes: u64,
    /// Epoch tick: how often a running guest yields and checks its deadline, in ms.
    pub epoch_tick_ms: u64,
    /// Bytes queued for one client above which the node stops reading that client's
    /// requests until they drain to half (flow control).
    pub max_queued_bytes: u64,
    /// A client that reads nothing for this long while replies wait for it is
    /// disconnected and its queued replies freed, in milliseconds.
    pub stall_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_module_bytes: 64 << 20,
            max_modules: 1024,
            module_cache_bytes: 512 << 20,
            max_instances: 256,
            max_instances_per_connection: 64,
            max_concurrent_calls: 256,
            memory_bytes: 256 << 20,
            call_timeout_ms: 30_000,
            max_output_bytes: 16 << 20,
            epoch_tick_ms: 10,
            max_queued_bytes: 64 << 20,
            stall_timeout_ms: 60_000,
        }
    }
}
