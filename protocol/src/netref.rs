//! Netrefs: handles to objects, local or owned by a peer.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::connection::{CallOptions, Connection, Link, PendingCall};
use crate::error::Error;
use crate::message::ROOT_EXPORT;
use crate::object::{CallContext, MethodInfo, Object};
use crate::value::{Ref, Value, deserialize_ref, from_value, serialize_ref, to_value};

/// Reserved method name: asks an object which methods it has.
pub const METHODS_METHOD: &str = "rwc.methods";

/// A handle to an object: one of ours, or a proxy to one a peer owns.
///
/// Calls on a netref look the same either way. Cloning is cheap; when the last clone of
/// a proxy drops, the owner is told (one `Release` for every reference received). A
/// netref can be sent inside any [`Value`] (or typed value) to the peer, including back to
/// its owner, who then gets its own object. That holds through third parties too: a proxy
/// B holds to A's object, sent by B to C and by C back to B, is B's same proxy again, and
/// sent on to A it is A's own object; calls on it never detour through a forwarder.
#[derive(Clone)]
pub struct NetRef(pub(crate) Handle);

#[derive(Clone)]
pub(crate) enum Handle {
    Local(Arc<dyn Object>),
    Remote(Arc<Proxy>),
}

/// The local stand-in for an object a peer exports.
pub(crate) struct Proxy {
    pub(crate) link: Arc<Link>,
    pub(crate) id: u64,
}

impl NetRef {
    /// A netref to a local object.
    pub fn new<T: Object>(object: T) -> NetRef {
        NetRef(Handle::Local(Arc::new(object)))
    }

    /// A netref to an object already in an `Arc`. A proxy that a connection exported as
    /// a forwarder (a third party's object) comes back as that proxy, so its identity and
    /// its one-hop calls are kept.
    pub fn from_object(object: Arc<dyn Object>) -> NetRef {
        let any: Arc<dyn Any + Send + Sync> = object.clone();
        match any.downcast::<Proxy>() {
            Ok(proxy) => NetRef(Handle::Remote(proxy)),
            Err(_) => NetRef(Handle::Local(object)),
        }
    }

    /// Calls `method` with `args` (a tuple: `(2, 3)`, `("text",)`, or `()`), converting
    /// the result to `R`.
    ///
    /// # Cancel safety
    /// Dropping the future cancels the call: the peer is told to stop working on it.
    pub async fn call<R: DeserializeOwned>(
        &self,
        method: &str,
        args: impl Serialize,
    ) -> Result<R, Error> {
        let value = self.call_value(method, args_to_values(args)?).await?;
        from_value(value)
    }

    /// Calls `method` with positional values.
    ///
    /// # Cancel safety
    /// Dropping the future cancels the call.
    pub async fn call_value(&self, method: &str, args: Vec<Value>) -> Result<Value, Error> {
        self.call_with(method, args, CallOptions::default()).await
    }

    /// Starts a call and returns at once with a [`PendingCall`] that can be polled,
    /// awaited (with a timeout) or given a callback.
    pub fn call_async(&self, method: &str, args: impl Serialize) -> PendingCall {
        match args_to_values(args) {
            Ok(args) => self.call_with(method, args, CallOptions::default()),
            Err(e) => PendingCall::failed(e),
        }
    }

    /// Starts a call with explicit options (deadline).
    pub fn call_with(&self, method: &str, args: Vec<Value>, options: CallOptions) -> PendingCall {
        match &self.0 {
            Handle::Remote(p) => p.link.shared.start_call(p.id, method, args, options),
            Handle::Local(obj) => PendingCall::local(obj.clone(), method, args, options),
        }
    }

    /// The methods the object answers.
    pub async fn methods(&self) -> Result<Vec<MethodInfo>, Error> {
        match &self.0 {
            Handle::Local(obj) if obj.knows_methods() => Ok(obj.methods()),
            _ => self.call(METHODS_METHOD, ()).await,
        }
    }

    /// Whether both handles name the same object.
    pub fn same_object(&self, other: &NetRef) -> bool {
        match (&self.0, &other.0) {
            (Handle::Local(a), Handle::Local(b)) => object_key(a) == object_key(b),
            (Handle::Remote(a), Handle::Remote(b)) => {
                Arc::ptr_eq(&a.link.shared, &b.link.shared) && a.id == b.id
            }
            _ => false,
        }
    }

    /// Whether the object lives in this process.
    pub fn is_local(&self) -> bool {
        matches!(self.0, Handle::Local(_))
    }

    /// The local object, if it is local and of type `T`.
    pub fn downcast_local<T: Object>(&self) -> Option<Arc<T>> {
        match &self.0 {
            Handle::Local(obj) => {
                let any: Arc<dyn Any + Send + Sync> = obj.clone();
                any.downcast::<T>().ok()
            }
            Handle::Remote(_) => None,
        }
    }

    /// The local object, if it is local.
    pub fn local_object(&self) -> Option<&Arc<dyn Object>> {
        match &self.0 {
            Handle::Local(obj) => Some(obj),
            Handle::Remote(_) => None,
        }
    }

    /// The connection a proxy belongs to (`None` for a local object).
    pub fn connection(&self) -> Option<Connection> {
        match &self.0 {
            Handle::Remote(p) => Some(Connection::from_link(p.link.clone())),
            Handle::Local(_) => None,
        }
    }

    /// The object as something that can be exported to another connection: a local object
    /// as itself, a proxy as a forwarder (third-party references).
    pub(crate) fn as_object(&self) -> Arc<dyn Object> {
        match &self.0 {
            Handle::Local(obj) => obj.clone(),
            Handle::Remote(p) => p.clone(),
        }
    }
}

/// Identity of a local object: its address.
pub(crate) fn object_key(obj: &Arc<dyn Object>) -> usize {
    Arc::as_ptr(obj).cast::<()>() as usize
}

/// Turns typed call arguments (a tuple) into positional values.
pub(crate) fn args_to_values(args: impl Serialize) -> Result<Vec<Value>, Error> {
    Ok(match to_value(&args)? {
        Value::List(items) => items,
        Value::Unit => Vec::new(),
        single => vec![single],
    })
}

impl fmt::Debug for NetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Handle::Local(obj) => write!(f, "NetRef(local {})", obj.type_name()),
            Handle::Remote(p) => write!(
                f,
                "NetRef(remote #{} on connection {})",
                p.id, p.link.shared.id
            ),
        }
    }
}

impl Serialize for NetRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_ref(&Ref::Object(self.clone()), serializer)
    }
}

impl<'de> Deserialize<'de> for NetRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<NetRef, D::Error> {
        match deserialize_ref(deserializer)? {
            Ref::Object(n) => Ok(n),
            Ref::Wire(w) => Err(serde::de::Error::custom(format_args!(
                "expected a live netref, found a raw wire reference {w:?}"
            ))),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if self.id != ROOT_EXPORT {
            self.link.shared.proxy_dropped(self);
        }
    }
}

/// A proxy re-exported to a third party forwards calls to its owner.
impl Object for Proxy {
    fn call<'a>(
        &'a self,
        _ctx: CallContext,
        method: &'a str,
        args: Vec<Value>,
    ) -> BoxFuture<'a, Result<Value, Error>> {
        Box::pin(
            self.link
                .shared
                .start_call(self.id, method, args, CallOptions::default()),
        )
    }

    fn methods(&self) -> Vec<MethodInfo> {
        // Introspection of a forwarded object goes through the `rwc.methods` call, which
        // `call` forwards; nothing is known locally.
        Vec::new()
    }

    fn type_name(&self) -> &str {
        "proxy"
    }

    fn knows_methods(&self) -> bool {
        false
    }
}
