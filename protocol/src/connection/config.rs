//! What a connection and a call can be told: [`ConnectionConfig`] and [`CallOptions`].

use std::sync::Arc;
use std::time::Duration;

use super::inbound::PrincipalBudget;
use crate::handshake::Authenticator;
use crate::value::DecodeLimits;

/// The default [`ConnectionConfig::max_calls_in_flight`].
pub const DEFAULT_MAX_CALLS_IN_FLIGHT: usize = 1024;

/// The default [`ConnectionConfig::max_request_bytes_in_flight`]: 256 MiB, room for two
/// requests of the default frame limit.
pub const DEFAULT_MAX_REQUEST_BYTES_IN_FLIGHT: usize = 256 * 1024 * 1024;

/// Settings of one connection.
#[derive(Clone)]
pub struct ConnectionConfig {
    /// Timeout of calls that don't set one; `None`: wait forever.
    pub default_timeout: Option<Duration>,
    /// Largest frame this side accepts, in bytes (at least 4096, or peers refuse the
    /// handshake). Announced in the handshake; both sides then use the smaller of the two
    /// limits, for what they send and what they accept.
    pub max_frame: usize,
    /// Bounds on decoding what the peer sends. Announced in the handshake like
    /// `max_frame`; both sides use the smaller of each bound.
    pub limits: DecodeLimits,
    /// How long the handshake may take.
    pub handshake_timeout: Duration,
    /// Credentials presented when connecting.
    pub credentials: Option<Vec<u8>>,
    /// Checks the credentials of connecting peers (accepting side).
    pub authenticator: Option<Arc<dyn Authenticator>>,
    /// Features announced in the handshake (the connection adds its limits to them).
    pub features: Vec<String>,
    /// Software name announced in the handshake.
    pub agent: String,
    /// Most calls from the peer in flight at once (running, or waiting for their reply to
    /// be queued); more are answered `overloaded` at once.
    pub max_calls_in_flight: usize,
    /// Most bytes of the peer's call requests (their frames) in flight at once; a call
    /// that would go over is answered `overloaded` at once. Keep it at least as large as
    /// the largest single request this side should take.
    pub max_request_bytes_in_flight: usize,
    /// Bounds on how many connections one principal holds and what they all have in
    /// flight together, shared by the connections of a server (see [`PrincipalBudget`]);
    /// `None`: no such bound.
    pub principal_budget: Option<Arc<PrincipalBudget>>,
    /// Flow control: when more than this many bytes wait to be written to the peer, the
    /// connection stops reading from the peer (so it starts no more work for it) until
    /// they drain to half. A single frame larger than this is still sent.
    pub max_queued_bytes: usize,
    /// A peer that reads nothing for this long while frames wait for it is disconnected
    /// and what was queued for it is freed (checked every `stall_timeout`, so it happens
    /// within twice this).
    pub stall_timeout: Duration,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            default_timeout: Some(Duration::from_secs(30)),
            max_frame: super::limits::DEFAULT_MAX_FRAME,
            limits: DecodeLimits::default(),
            handshake_timeout: Duration::from_secs(10),
            credentials: None,
            authenticator: None,
            features: Vec::new(),
            agent: format!("rwc-protocol {}", env!("CARGO_PKG_VERSION")),
            max_calls_in_flight: DEFAULT_MAX_CALLS_IN_FLIGHT,
            max_request_bytes_in_flight: DEFAULT_MAX_REQUEST_BYTES_IN_FLIGHT,
            principal_budget: None,
            max_queued_bytes: 64 * 1024 * 1024,
            stall_timeout: Duration::from_secs(60),
        }
    }
}

impl std::fmt::Debug for ConnectionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionConfig")
            .field("default_timeout", &self.default_timeout)
            .field("max_frame", &self.max_frame)
            .field("limits", &self.limits)
            .field("handshake_timeout", &self.handshake_timeout)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .field("authenticator", &self.authenticator.is_some())
            .field("features", &self.features)
            .field("agent", &self.agent)
            .field("max_calls_in_flight", &self.max_calls_in_flight)
            .field(
                "max_request_bytes_in_flight",
                &self.max_request_bytes_in_flight,
            )
            .field("principal_budget", &self.principal_budget)
            .field("max_queued_bytes", &self.max_queued_bytes)
            .field("stall_timeout", &self.stall_timeout)
            .finish()
    }
}

/// Options of one call.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// How long the call may take, from when it is sent; `None`: the connection's
    /// [`default_timeout`](ConnectionConfig::default_timeout). The peer is given the same
    /// time, counted from when it receives the call; the instant it runs out is the call's
    /// deadline ([`CallContext::deadline`](crate::CallContext::deadline) on the peer,
    /// [`PendingCall::expired`](crate::PendingCall::expired) here).
    pub timeout: Option<Duration>,
}

impl CallOptions {
    /// Options with a timeout.
    pub fn timeout(timeout: Duration) -> Self {
        CallOptions {
            timeout: Some(timeout),
        }
    }
}
