//! What the tests of the value serializer and deserializer share.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Ref, Value, WireRef, deserialize_ref, serialize_ref};

/// A ref type, as netrefs and guest handles implement it.
#[derive(Debug, PartialEq)]
pub(crate) struct Handle(pub(crate) Ref);

impl Serialize for Handle {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_ref(&self.0, serializer)
    }
}

impl<'de> Deserialize<'de> for Handle {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_ref(deserializer).map(Handle)
    }
}

/// A string value.
pub(crate) fn s(v: &str) -> Value {
    Value::String(v.to_owned())
}

/// A wire reference to the sender's export `n`.
pub(crate) fn wire(n: u64) -> Value {
    Value::Ref(Ref::Wire(WireRef::Sender(n)))
}
