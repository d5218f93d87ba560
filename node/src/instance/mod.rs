//! Live instances: the netref a client holds ([`InstanceObject`]), the actor task that
//! owns each instance's store and runs its jobs one at a time, the netrefs to objects a
//! guest hands out, and the forwarding of guest output to the client.

mod actor;
mod guest_proxy;
mod object;
pub(crate) mod output;

pub(crate) use self::actor::{AbiState, JobQueue, run_nested};
pub(crate) use self::guest_proxy::GuestProxy;
pub use self::object::InstanceObject;
pub(crate) use self::object::{Slot, instantiate};
