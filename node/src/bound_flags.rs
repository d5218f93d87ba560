//! `rwc-node`'s flags for the limits that bound what connected peers can make the node
//! hold (connections, calls and bytes in flight, compiles, uploads, the disk cache). Each
//! has the key of the same name under `[limits]` in the config file; a flag wins.

use clap::Args;
use rwc_node::config::Limits;

/// See the `[limits]` keys of the same names.
#[derive(Debug, Args)]
pub(crate) struct BoundFlags {
    /// Most connections open at once; more are refused before the handshake.
    #[arg(long)]
    max_connections: Option<usize>,
    /// Most connections open at once from one source IP address.
    #[arg(long)]
    max_connections_per_address: Option<usize>,
    /// Most connections one principal holds open at once (`anonymous` without
    /// credentials).
    #[arg(long)]
    max_connections_per_principal: Option<usize>,
    /// Most calls one connection has in flight at once.
    #[arg(long)]
    max_calls_in_flight: Option<usize>,
    /// Most bytes of requests one connection has in flight at once.
    #[arg(long)]
    max_request_bytes_in_flight: Option<u64>,
    /// Most calls all connections of one principal have in flight at once.
    #[arg(long)]
    max_calls_in_flight_per_principal: Option<usize>,
    /// Most bytes of requests all connections of one principal have in flight at once.
    #[arg(long)]
    max_request_bytes_in_flight_per_principal: Option<u64>,
    /// Jobs waiting for one instance at once (calls, memory reads and writes, closes).
    #[arg(long)]
    max_queued_jobs_per_instance: Option<usize>,
    /// Modules compiling at once (0: the number of CPUs).
    #[arg(long)]
    max_concurrent_compiles: Option<usize>,
    /// How long one module may take to compile, in milliseconds.
    #[arg(long)]
    compile_timeout_ms: Option<u64>,
    /// Bytes the disk cache may hold (least recently used modules are evicted).
    #[arg(long)]
    cache_max_bytes: Option<u64>,
    /// Most bytes one connection's unfinished uploads hold at once.
    #[arg(long)]
    max_upload_bytes_in_flight: Option<u64>,
}

impl BoundFlags {
    /// Puts the flags given over `limits`.
    pub(crate) fn apply(&self, limits: &mut Limits) {
        fn set<T: Copy>(slot: &mut T, flag: Option<T>) {
            if let Some(v) = flag {
                *slot = v;
            }
        }
        set(&mut limits.max_connections, self.max_connections);
        set(
            &mut limits.max_connections_per_address,
            self.max_connections_per_address,
        );
        set(
            &mut limits.max_connections_per_principal,
            self.max_connections_per_principal,
        );
        set(&mut limits.max_calls_in_flight, self.max_calls_in_flight);
        set(
            &mut limits.max_request_bytes_in_flight,
            self.max_request_bytes_in_flight,
        );
        set(
            &mut limits.max_calls_in_flight_per_principal,
            self.max_calls_in_flight_per_principal,
        );
        set(
            &mut limits.max_request_bytes_in_flight_per_principal,
            self.max_request_bytes_in_flight_per_principal,
        );
        set(
            &mut limits.max_queued_jobs_per_instance,
            self.max_queued_jobs_per_instance,
        );
        set(
            &mut limits.max_concurrent_compiles,
            self.max_concurrent_compiles,
        );
        set(&mut limits.compile_timeout_ms, self.compile_timeout_ms);
        set(&mut limits.cache_max_bytes, self.cache_max_bytes);
        set(
            &mut limits.max_upload_bytes_in_flight,
            self.max_upload_bytes_in_flight,
        );
    }
}
