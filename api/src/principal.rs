//! Principals: who a client is on a node, what it is granted, and the limits it runs
//! under. A node's config names its principals (`[[principals]]`); `info()` tells each
//! caller its own ([`PrincipalInfo`]).
//!
//! A grant is a name: one of the root operations ([`grant::UPLOAD`], [`grant::INSTANTIATE`],
//! [`grant::RUN`], [`grant::INFO`]) or a host capability ([`crate::capability::SYS`],
//! [`crate::capability::LOG`]).

use serde::{Deserialize, Serialize};

/// The names of the root operations a principal can be granted, beside capabilities.
pub mod grant {
    /// `upload`, `upload_stream` (and so finding one's own modules by hash).
    pub const UPLOAD: &str = "upload";
    /// `instantiate`: making live instances.
    pub const INSTANTIATE: &str = "instantiate";
    /// `run`: one call in a fresh instance.
    pub const RUN: &str = "run";
    /// `info`: the node's counters and limits, and the caller's own.
    pub const INFO: &str = "info";
    /// Every root operation: what the anonymous principal of a node without
    /// `[[principals]]` is granted, beside the node's `grants`.
    pub const ROOT_OPERATIONS: &[&str] = &[UPLOAD, INSTANTIATE, RUN, INFO];
}

/// The name of the principal of a node without `[[principals]]`, which serves only
/// loopback and Unix-socket clients.
pub const ANONYMOUS: &str = "anonymous";

/// A principal's own limits, `[principals.limits]` in the node's config. Every key is
/// optional; a key left out takes the node's limit, and one set higher than the node's is
/// capped at the node's.
///
/// A person writes these keys, so an unknown one is an error naming it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrincipalLimits {
    /// Memory of one instance, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Fuel budget of one instance (roughly, Wasm instructions): its instances are
    /// metered, with at most this much. Unmetered if unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// Deadline of one call, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_timeout_ms: Option<u64>,
    /// Most live instances the principal holds, over all its connections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_instances: Option<usize>,
    /// Most guest calls the principal runs at once, over all its connections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_calls: Option<usize>,
    /// Largest module the principal may upload, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_module_bytes: Option<u64>,
}

/// The limits a principal runs under: its own, each capped by the node's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EffectiveLimits {
    /// Memory of one instance, in bytes (also the most it may ask for).
    pub memory_bytes: u64,
    /// Fuel budget of one instance; `None`: unmetered unless the caller asks for fuel.
    pub fuel: Option<u64>,
    /// Deadline of one call, in milliseconds (also the most it may ask for).
    pub call_timeout_ms: u64,
    /// Most live instances, over all its connections.
    pub max_instances: usize,
    /// Most guest calls running at once, over all its connections.
    pub max_concurrent_calls: usize,
    /// Largest module it may upload, in bytes.
    pub max_module_bytes: u64,
}

/// What `info()` tells a caller about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrincipalInfo {
    /// The principal's name ([`ANONYMOUS`] on a node without `[[principals]]`).
    pub name: String,
    /// What it is granted: root operations and capabilities.
    pub grants: Vec<String>,
    /// The limits it runs under.
    pub limits: EffectiveLimits,
}
