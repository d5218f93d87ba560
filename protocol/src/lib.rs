//! # rwc-protocol
//!
//! The wire protocol of rwc (Remote Wasm Call): dynamic [`Value`]s, netrefs, framing, the
//! handshake and the symmetric [`Connection`] on which both peers export objects and call
//! each other's.
//!
//! Values travel by value; objects with identity travel by reference (a [`NetRef`]): the
//! receiver gets a proxy, and calls on it go back to the owner. Either side can call at any
//! time, calls are multiplexed and may nest to any depth (A calls B, which calls back into
//! A during the call…), every call has a deadline, and dropping a call's future cancels it.
//!
//! Without the default `io` feature only the I/O-free part builds (values, errors, the
//! codec): that is what a Wasm guest links.
//!
//! ```
//! # #[cfg(feature = "io")]
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use rwc_protocol::{Connection, ConnectionConfig, Service};
//!
//! // A service with one method, served over an in-memory pipe.
//! let calc = Service::new("calc").method("add", |(a, b): (u64, u64)| async move { Ok(a + b) });
//! let (a, b) = tokio::io::duplex(64 * 1024);
//! let (server, client) = tokio::join!(
//!     Connection::accept(a, calc.into_object(), ConnectionConfig::default()),
//!     Connection::connect(b, Service::new("client").into_object(), ConnectionConfig::default()),
//! );
//! let (_server, client) = (server.unwrap(), client.unwrap());
//! let sum: u64 = client.root().call("add", (2, 3)).await.unwrap();
//! assert_eq!(sum, 5);
//! # });
//! ```
// No unsafe code, except the two type casts of `value::cast` (byte buffers past serde's
// one-`u8`-at-a-time path), which allows it for itself.
#![deny(unsafe_code)]

#[cfg(feature = "io")]
pub mod address;
pub mod codec;
pub mod error;
pub mod message;
pub mod value;

#[cfg(feature = "io")]
pub mod admission;
#[cfg(feature = "io")]
mod connection;
#[cfg(feature = "io")]
pub mod frame;
#[cfg(feature = "io")]
mod handshake;
#[cfg(feature = "io")]
pub mod listener;
#[cfg(feature = "io")]
mod netref;
#[cfg(feature = "io")]
pub mod object;
#[cfg(feature = "io")]
pub mod signal;
#[cfg(feature = "io")]
pub mod tls;
#[cfg(feature = "io")]
pub mod token;
#[cfg(feature = "io")]
pub mod transport;

pub use error::{Error, ErrorKind, Result};
pub use value::{DecodeLimits, Ref, Value, WireRef, from_value, to_value};

#[cfg(feature = "io")]
pub use address::{Address, ConnectOptions};
#[cfg(feature = "io")]
pub use connection::{
    ANONYMOUS, CallOptions, Connection, ConnectionConfig, ConnectionLimits, ConnectionStats,
    DEFAULT_MAX_CALLS_IN_FLIGHT, DEFAULT_MAX_REQUEST_BYTES_IN_FLIGHT, InboundUsage, PendingCall,
    PrincipalBudget,
};
#[cfg(feature = "io")]
pub use handshake::{Authenticator, Hello, MAGIC, PeerInfo};
#[cfg(feature = "io")]
pub use netref::{METHODS_METHOD, NetRef};
#[cfg(feature = "io")]
pub use object::{CallContext, Dispatch, MethodInfo, Object, Service, callable};
#[cfg(feature = "io")]
pub use tls::{CertName, TlsClientConfig, TlsIdentity, TlsServerConfig};
#[cfg(feature = "io")]
pub use token::{Token, TokenDigest};

/// Protocol version spoken by this build; peers with another version are refused.
pub const PROTOCOL_VERSION: u16 = 1;
