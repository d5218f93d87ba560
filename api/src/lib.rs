//! # rwc-api
//!
//! The contract an rwc node and its clients speak, written once: what each method of the
//! node's objects is called, what it takes and what it returns, as Rust types that the
//! node, the client, the registry and the guest SDK all use.
//!
//! - [`root`]: the node's root service (upload, module, instantiate, run, info,
//!   capability), and [`InstanceOptions`], how a client asks for an instance.
//! - [`module`], [`instance`], [`upload`]: the objects the root hands out as netrefs.
//! - [`info`]: what `info()` answers, [`Limits`] included.
//! - [`principal`]: who a caller is on a node, its grants and limits ([`PrincipalInfo`]).
//! - [`output`]: the sink a client hands over for guest output.
//! - [`registry`]: the messages of the node registry.
//! - [`nats`]: what nodes and clients exchange over NATS JetStream (discovery, durable
//!   maps).
//! - [`capability`]: the host capabilities' names and methods.
//! - `describe` (feature `describe`): what a module file says about its exports, read
//!   without a node.
//! - [`abi`]: the constants of the guest ABI (`docs/abi.md`) that the node and the guest
//!   SDK both spell.
//!
//! Each method is a [`Request`]: a struct whose fields are the positional arguments, in
//! order, with the method name and the reply type beside it.
//!
//! ```
//! use rwc_api::{InstanceOptions, Request, root};
//! use rwc_protocol::Value;
//!
//! let request = root::UploadStream { total_len: 4096 };
//! assert_eq!(root::UploadStream::METHOD, "upload_stream");
//! assert_eq!(request.to_args().unwrap(), [Value::U64(4096)]);
//!
//! // What a person types in `rwc shell` (`new $m {...}`): unknown keys are refused.
//! let options: InstanceOptions = rwc_protocol::from_value(
//!     Value::Map(vec![(Value::from("fuel"), Value::U64(1000))]),
//! ).unwrap();
//! assert_eq!(options.fuel, Some(1000));
//! ```
//!
//! The crate does no I/O. Messages that carry live objects hold an [`ObjectRef`]: with the
//! `io` feature (the node and the client) it is a netref; without it (a guest) only the
//! wire form exists.
#![forbid(unsafe_code)]

pub mod abi;
pub mod capability;
#[cfg(feature = "describe")]
pub mod describe;
pub mod info;
pub mod instance;
pub mod module;
pub mod nats;
mod object_ref;
mod options;
pub mod output;
pub mod principal;
pub mod registry;
mod request;
pub mod root;
pub mod upload;

pub use info::{ConnectionUsage, Limits, NodeInfo, Usage};
pub use object_ref::ObjectRef;
pub use options::InstanceOptions;
pub use principal::{EffectiveLimits, PrincipalInfo, PrincipalLimits};
pub use request::Request;
