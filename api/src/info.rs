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
    /// What is held now against those limits. A node older than this field sends none.
    #[serde(default)]
    pub usage: Usage,
    /// The caller: its principal, grants and effective limits (`None` from a node that
    /// predates principals).
    #[serde(default)]
    pub principal: Option<PrincipalInfo>,
}

/// What a node holds now, against its [`Limits`]: the figures `rwc info` shows under
/// `usage`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Usage {
    /// Connections open now (against [`max_connections`](Limits::max_connections)).
    pub connections: usize,
    /// The most connections one source address holds now (against
    /// [`max_connections_per_address`](Limits::max_connections_per_address)).
    pub connections_busiest_address: usize,
    /// The most connections one principal holds open now (against
    /// [`max_connections_per_principal`](Limits::max_connections_per_principal)).
    pub connections_busiest_principal: usize,
    /// Connections refused since start because a connection cap was reached.
    pub connections_refused: u64,
    /// Calls from every connection in flight on the node now (this `info` call included).
    pub calls_in_flight: usize,
    /// Bytes of the requests of those calls.
    pub request_bytes_in_flight: u64,
    /// Compilations running now (against
    /// [`max_concurrent_compiles`](Limits::max_concurrent_compiles)).
    pub compiles_running: usize,
    /// Compilations waiting for their turn.
    pub compiles_queued: usize,
    /// Compilations that passed [`compile_timeout_ms`](Limits::compile_timeout_ms) since
    /// start.
    pub compiles_timed_out: u64,
    /// Bytes held by uploads not yet compiled, over every connection.
    pub upload_bytes_in_flight: u64,
    /// Jobs waiting in the queues of live instances (calls, memory reads and writes,
    /// closes, guest object calls and drops).
    pub queued_jobs: usize,
    /// File-system work (disk cache reads, `sys` queries) running on the blocking pool.
    pub blocking_jobs: usize,
    /// Bytes in the disk cache (against [`cache_max_bytes`](Limits::cache_max_bytes)); 0
    /// without one.
    pub cache_disk_bytes: u64,
    /// Modules evicted from the disk cache since start to stay within its budget.
    pub cache_disk_evictions: u64,
    /// Cached artifacts found corrupt or truncated since start (each was deleted and the
    /// module compiled again).
    pub cache_disk_corrupt: u64,
    /// Writes to the disk cache that failed since start (a full disk, say): the node kept
    /// the module in memory.
    pub cache_disk_write_failures: u64,
    /// The connection that asked.
    pub this_connection: ConnectionUsage,
}

/// What one connection holds on a node: the caller's own share of [`Usage`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectionUsage {
    /// Calls in flight (this `info` call included), against
    /// [`max_calls_in_flight`](Limits::max_calls_in_flight).
    pub calls_in_flight: usize,
    /// Bytes of their requests, against
    /// [`max_request_bytes_in_flight`](Limits::max_request_bytes_in_flight).
    pub request_bytes_in_flight: u64,
    /// Bytes held by this connection's uploads, against
    /// [`max_upload_bytes_in_flight`](Limits::max_upload_bytes_in_flight).
    pub upload_bytes_in_flight: u64,
    /// Live instances, against
    /// [`max_instances_per_connection`](Limits::max_instances_per_connection).
    pub instances: usize,
    /// Objects the node exports to this connection (instances, modules, guest objects,
    /// capabilities, uploaders), the connection's root not counted.
    pub netrefs: usize,
}

/// Limits of a node, its instances and its clients: the `[limits]` table of the node's
/// config file (every key also a flag), and what `info()` reports.
///
/// Decoding ignores keys it does not know, so a client reads the `info()` of a newer node
/// that reports more limits; the node's config loader is the one that refuses unknown
/// keys, since there a person wrote them (`rwc_node::NodeConfig::parse`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
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
    /// Most connections open at once; more are refused (`overloaded`) before the
    /// handshake.
    pub max_connections: usize,
    /// Most connections open at once from one source IP address.
    pub max_connections_per_address: usize,
    /// Most connections one principal holds open at once (connections without
    /// credentials are the principal `anonymous`); more are refused (`overloaded`) in the
    /// handshake.
    pub max_connections_per_principal: usize,
    /// Most calls one connection has in flight at once; more are answered `overloaded`.
    pub max_calls_in_flight: usize,
    /// Most bytes of requests one connection has in flight at once (at least
    /// `max_module_bytes`, or a whole-module `upload` could never fit).
    pub max_request_bytes_in_flight: u64,
    /// Most calls all connections of one principal have in flight at once (connections
    /// without credentials are the principal `anonymous`).
    pub max_calls_in_flight_per_principal: usize,
    /// Most bytes of requests all connections of one principal have in flight at once.
    pub max_request_bytes_in_flight_per_principal: u64,
    /// Jobs (calls, memory reads and writes, closes, guest object calls) waiting for one
    /// instance at once; more are answered `overloaded`.
    pub max_queued_jobs_per_instance: usize,
    /// Most modules compiling at once; more wait their turn, taken fairly across
    /// connections. 0: the number of CPUs.
    pub max_concurrent_compiles: usize,
    /// How long one module may take to compile, in milliseconds; past it the upload fails
    /// with `timed out`.
    pub compile_timeout_ms: u64,
    /// Bytes the disk cache may hold (uploads and compiled artifacts); least recently used
    /// modules are evicted to stay within it.
    pub cache_max_bytes: u64,
    /// Most bytes one connection's uploads (chunked ones not yet finished, and modules
    /// waiting to compile) hold at once.
    pub max_upload_bytes_in_flight: u64,
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
            max_connections: 1024,
            max_connections_per_address: 256,
            max_connections_per_principal: 1024,
            max_calls_in_flight: 1024,
            max_request_bytes_in_flight: 256 << 20,
            max_calls_in_flight_per_principal: 8192,
            max_request_bytes_in_flight_per_principal: 1 << 30,
            max_queued_jobs_per_instance: 64,
            max_concurrent_compiles: 0,
            compile_timeout_ms: 60_000,
            cache_max_bytes: 4 << 30,
            max_upload_bytes_in_flight: 256 << 20,
        }
    }
}
