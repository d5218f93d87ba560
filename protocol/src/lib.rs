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

/// Items that only the `io` feature builds (sockets, tasks, live netrefs): each gets the
/// one `#[cfg]`, written here once.
macro_rules! cfg_io {
    ($($item:item)*) => {
        $(
            #[cfg(feature = "io")]
            $item
        )*
    };
}

pub mod codec;
pub mod error;
pub mod message;
pub mod value;

pub use error::{Error, ErrorKind, Result};
pub use value::{DecodeLimits, Ref, Value, WireRef, from_value, to_value};

cfg_io! {
    pub mod address;
    pub mod admission;
    mod connection;
    pub mod frame;
    mod handshake;
    pub mod listener;
    mod netref;
    pub mod object;
    pub mod signal;
    pub mod tls;
    pub mod token;
    pub mod transport;

    pub use address::{Address, ConnectOptions};
    pub use connection::{
        ANONYMOUS, CallOptions, Connection, ConnectionConfig, ConnectionLimits, ConnectionStats,
        DEFAULT_MAX_CALLS_IN_FLIGHT, DEFAULT_MAX_REQUEST_BYTES_IN_FLIGHT, InboundUsage,
        PendingCall, PrincipalBudget, ReadHalf, WriteHalf,
    };
    pub use handshake::{Authenticator, Hello, MAGIC, PeerInfo};
    pub use netref::{METHODS_METHOD, NetRef};
    pub use object::{CallContext, Dispatch, MethodInfo, Object, Service, callable};
    pub use tls::{CertName, TlsClientConfig, TlsIdentity, TlsServerConfig};
    pub use token::{Token, TokenDigest};
}

/// Protocol version spoken by this build; peers with another version are refused.
pub const PROTOCOL_VERSION: u16 = 1;
