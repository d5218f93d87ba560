//! [`ObjectRef`]: a live object inside a message.

#[cfg(feature = "io")]
use rwc_protocol::NetRef;
use rwc_protocol::Ref;
use rwc_protocol::value::{deserialize_ref, serialize_ref};
use serde::{Deserialize, Serialize};

/// An object that travels by reference inside a message: a module, an instance, a
/// callback. With the `io` feature it holds a netref; the wire form is all a guest sees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ObjectRef(
    #[serde(serialize_with = "serialize_ref", deserialize_with = "deserialize_ref")] pub Ref,
);

impl ObjectRef {
    /// The netref, if this is a live object (not a raw wire reference).
    #[cfg(feature = "io")]
    pub fn netref(&self) -> Option<&NetRef> {
        match &self.0 {
            Ref::Object(n) => Some(n),
            _ => None,
        }
    }

    /// The netref, or a `bad argument` error saying what `what` had to be.
    #[cfg(feature = "io")]
    pub fn into_netref(self, what: &str) -> Result<NetRef, rwc_protocol::Error> {
        match self.0 {
            Ref::Object(n) => Ok(n),
            other => Err(rwc_protocol::Error::bad_argument(format!(
                "{what} must be a live object, not the wire reference {other:?}"
            ))),
        }
    }
}

#[cfg(feature = "io")]
impl From<NetRef> for ObjectRef {
    fn from(n: NetRef) -> Self {
        ObjectRef(Ref::Object(n))
    }
}

impl From<Ref> for ObjectRef {
    fn from(r: Ref) -> Self {
        ObjectRef(r)
    }
}

impl From<ObjectRef> for rwc_protocol::Value {
    fn from(r: ObjectRef) -> Self {
        rwc_protocol::Value::Ref(r.0)
    }
}
