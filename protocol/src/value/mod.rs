//! The dynamic [`Value`]: the unit of exchange between peers, and between a node and a guest.
//!
//! Typed Rust values convert to and from it through serde ([`to_value`], [`from_value`]),
//! the way `serde_json::Value` works. A [`Ref`] (a netref) may sit anywhere inside a value.
//!
//! `Value` has two serde forms. Serializers that are not human-readable (the bincode wire
//! codec) get a tagged form that round-trips every variant exactly, with decoding bounded by
//! [`DecodeLimits`]. Human-readable ones (JSON, and the crate's own value serializer) get the
//! natural form: a list is a sequence, a map is a map, bytes are bytes.

mod cast;
mod de;
mod limits;
mod ser;
#[cfg(test)]
mod test_support;

use std::cell::{Cell, RefCell};
use std::fmt;

use serde::de::{EnumAccess, SeqAccess, VariantAccess, Visitor};
use serde::ser::{SerializeSeq, SerializeTuple};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use bytes::Bytes;

pub use de::from_value;
pub use limits::DecodeLimits;
pub(crate) use limits::{
    LimitBreach, cautious_capacity, collect_cautiously, count_value, read_collection,
    with_decode_limits,
};
pub use ser::to_value;

#[cfg(feature = "io")]
use crate::netref::NetRef;

/// A dynamically typed value.
///
/// Maps keep their entries in order and may have keys of any type. Floats compare by their
/// bits (so `NaN == NaN` and `0.0 != -0.0`): equality means "the same value on the wire".
/// Netrefs compare by identity.
#[derive(Clone, Default)]
pub enum Value {
    /// The unit value (`()`, `None`, JSON `null`).
    #[default]
    Unit,
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    I64(i64),
    /// An unsigned integer (used for non-negative integers that typed values produce).
    U64(u64),
    /// A floating-point number.
    F64(f64),
    /// A UTF-8 string.
    String(String),
    /// A byte buffer. Shared, so that cloning it is cheap and large bytes decoded from a
    /// frame are a slice of that frame rather than a copy (see [`codec`](crate::codec)).
    /// Build one from a `Vec<u8>` with `.into()` (no copy).
    Bytes(Bytes),
    /// A list of values.
    List(Vec<Value>),
    /// A map, in insertion order, with keys of any type.
    Map(Vec<(Value, Value)>),
    /// A reference to an object that stays where it lives.
    Ref(Ref),
}

/// A reference inside a [`Value`].
#[derive(Clone)]
#[non_exhaustive]
pub enum Ref {
    /// A reference as it is written on the wire, with no live object behind it. The guest
    /// ABI uses this form (a guest sees handle numbers); a connection never sends it.
    Wire(WireRef),
    /// A live netref: a local object or a proxy to one owned by a peer.
    #[cfg(feature = "io")]
    Object(NetRef),
}

/// A reference as encoded: an id in the export table of the side that wrote it
/// (`Sender`) or of the side that reads it (`Receiver`, an object sent back to its owner).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WireRef {
    /// An object the writer of the message exports, by its export id.
    Sender(u64),
    /// An object the reader of the message exports, by its export id.
    Receiver(u64),
}

impl Value {
    /// A short name of this value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Unit => "unit",
            Value::Bool(_) => "bool",
            Value::I64(_) => "i64",
            Value::U64(_) => "u64",
            Value::F64(_) => "f64",
            Value::String(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Map(_) => "map",
            Value::Ref(_) => "ref",
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is an integer that fits an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::I64(n) => Some(n),
            Value::U64(n) => i64::try_from(n).ok(),
            _ => None,
        }
    }

    /// The integer, if this is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U64(n) => Some(n),
            Value::I64(n) => u64::try_from(n).ok(),
            _ => None,
        }
    }

    /// The number as a float, if this is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F64(n) => Some(n),
            #[allow(clippy::cast_precision_loss)]
            Value::I64(n) => Some(n as f64),
            #[allow(clippy::cast_precision_loss)]
            Value::U64(n) => Some(n as f64),
            _ => None,
        }
    }

    /// The bytes, if this is a byte buffer.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The elements, if this is a list.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    /// The reference, if this is one.
    pub fn as_ref(&self) -> Option<&Ref> {
        match self {
            Value::Ref(r) => Some(r),
            _ => None,
        }
    }

    /// The entry under a string key, if this is a map that has one.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Calls `f` on every reference inside this value, depth first, letting it replace
    /// the reference. Stops at the first error.
    pub fn visit_refs_mut<E>(
        &mut self,
        f: &mut impl FnMut(&mut Ref) -> Result<(), E>,
    ) -> Result<(), E> {
        match self {
            Value::Ref(r) => f(r),
            Value::List(items) => items.iter_mut().try_for_each(|v| v.visit_refs_mut(f)),
            Value::Map(entries) => entries.iter_mut().try_for_each(|(k, v)| {
                k.visit_refs_mut(f)?;
                v.visit_refs_mut(f)
            }),
            _ => Ok(()),
        }
    }

    /// Whether any reference sits inside this value.
    pub fn has_refs(&self) -> bool {
        match self {
            Value::Ref(_) => true,
            Value::List(items) => items.iter().any(Value::has_refs),
            Value::Map(entries) => entries.iter().any(|(k, v)| k.has_refs() || v.has_refs()),
            _ => false,
        }
    }

    /// Deepest nesting of lists and maps in this value (a scalar has depth 0).
    pub fn depth(&self) -> u32 {
        match self {
            Value::List(items) => 1 + items.iter().map(Value::depth).max().unwrap_or(0),
            Value::Map(entries) => {
                1 + entries
                    .iter()
                    .map(|(k, v)| k.depth().max(v.depth()))
                    .max()
                    .unwrap_or(0)
            }
            _ => 0,
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Unit, Value::Unit) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::I64(a), Value::I64(b)) => a == b,
            (Value::U64(a), Value::U64(b)) => a == b,
            (Value::F64(a), Value::F64(b)) => a.to_bits() == b.to_bits(),
            (Value::String(a), Value::String(b)) => a == b,
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            (Value::List(a), Value::List(b)) => a == b,
            (Value::Map(a), Value::Map(b)) => a == b,
            (Value::Ref(a), Value::Ref(b)) => a == b,
            _ => false,
        }
    }
}

impl PartialEq for Ref {
    fn eq(&self, other: &Ref) -> bool {
        match (self, other) {
            (Ref::Wire(a), Ref::Wire(b)) => a == b,
            #[cfg(feature = "io")]
            (Ref::Object(a), Ref::Object(b)) => a.same_object(b),
            #[cfg(feature = "io")]
            _ => false,
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Unit => f.write_str("()"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::I64(n) => write!(f, "{n}i64"),
            Value::U64(n) => write!(f, "{n}u64"),
            Value::F64(n) => write!(f, "{n:?}f64"),
            Value::String(s) => write!(f, "{s:?}"),
            Value::Bytes(b) if b.len() > 32 => write!(f, "bytes[{}]", b.len()),
            Value::Bytes(b) => write!(f, "bytes{b:?}"),
            Value::List(l) => f.debug_list().entries(l).finish(),
            Value::Map(m) => f
                .debug_map()
                .entries(m.iter().map(|(k, v)| (k, v)))
                .finish(),
            Value::Ref(r) => write!(f, "{r:?}"),
        }
    }
}

impl fmt::Debug for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ref::Wire(w) => write!(f, "Ref::Wire({w:?})"),
            #[cfg(feature = "io")]
            Ref::Object(o) => write!(f, "Ref::Object({o:?})"),
        }
    }
}

macro_rules! impl_from {
    ($($t:ty => $variant:ident via $conv:ty),* $(,)?) => {
        $(impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::$variant(<$conv>::from(v))
            }
        })*
    };
}

impl_from! {
    bool => Bool via bool,
    i8 => I64 via i64, i16 => I64 via i64, i32 => I64 via i64, i64 => I64 via i64,
    u8 => U64 via u64, u16 => U64 via u64, u32 => U64 via u64, u64 => U64 via u64,
    f32 => F64 via f64, f64 => F64 via f64,
    String => String via String, &str => String via String,
    Vec<Value> => List via Vec<Value>,
    Vec<u8> => Bytes via Bytes, Bytes => Bytes via Bytes,
}

impl From<()> for Value {
    fn from((): ()) -> Value {
        Value::Unit
    }
}

impl From<Ref> for Value {
    fn from(r: Ref) -> Value {
        Value::Ref(r)
    }
}

#[cfg(feature = "io")]
impl From<NetRef> for Value {
    fn from(r: NetRef) -> Value {
        Value::Ref(Ref::Object(r))
    }
}

/// An error while converting a typed value to a [`Value`] or back; becomes a `BadArgument`
/// [`Error`](crate::Error) at the end.
#[derive(Debug)]
pub(crate) struct ConvertError(String);

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConvertError {}

// ---------------------------------------------------------------------------------------
// Netrefs inside typed values.
//
// A typed value (a struct with a netref field) goes through serde, which knows nothing of
// netrefs. The crate's own value serializer and deserializer lend them through a
// thread-local stash: a ref type serializes as a newtype struct with a reserved name whose
// content is a token for the stash. Outside `to_value`/`from_value` there is no stash and
// serializing a ref is an error, so nothing can leak into it.

/// Newtype-struct name that marks a reference token in the value (de)serializer.
pub(crate) const REF_TOKEN: &str = "$rwc::Ref";

thread_local! {
    static STASH: RefCell<Vec<Option<Ref>>> = const { RefCell::new(Vec::new()) };
    static STASH_USERS: Cell<u32> = const { Cell::new(0) };
}

/// Holds the stash open while a value (de)serializer runs; clears it when the outermost
/// one ends.
pub(crate) struct StashScope(());

impl StashScope {
    pub(crate) fn enter() -> StashScope {
        STASH_USERS.with(|n| n.set(n.get() + 1));
        StashScope(())
    }
}

impl Drop for StashScope {
    fn drop(&mut self) {
        let outermost = STASH_USERS.with(|n| {
            n.set(n.get().saturating_sub(1));
            n.get() == 0
        });
        if outermost {
            STASH.with(|s| s.borrow_mut().clear());
        }
    }
}

fn stash_open() -> bool {
    STASH_USERS.with(|n| n.get() > 0)
}

pub(crate) fn stash_put(r: Ref) -> u64 {
    STASH.with(|s| {
        let mut s = s.borrow_mut();
        s.push(Some(r));
        u64::try_from(s.len() - 1).unwrap_or(u64::MAX)
    })
}

pub(crate) fn stash_take(token: u64) -> Option<Ref> {
    STASH.with(|s| {
        let mut s = s.borrow_mut();
        usize::try_from(token)
            .ok()
            .and_then(|i| s.get_mut(i))
            .and_then(Option::take)
    })
}

/// Serializes a reference inside a typed value. Ref types (netrefs, guest handles)
/// implement `Serialize` with this; it works under [`to_value`] and fails elsewhere.
pub fn serialize_ref<S: Serializer>(r: &Ref, serializer: S) -> Result<S::Ok, S::Error> {
    if !stash_open() {
        return Err(serde::ser::Error::custom(
            "a netref can only be converted to an rwc Value (rwc_protocol::to_value), not to another format",
        ));
    }
    serializer.serialize_newtype_struct(REF_TOKEN, &stash_put(r.clone()))
}

/// Deserializes a reference inside a typed value. Ref types implement `Deserialize` with
/// this; it works under [`from_value`] and fails elsewhere.
pub fn deserialize_ref<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Ref, D::Error> {
    struct TokenVisitor;
    impl<'de> Visitor<'de> for TokenVisitor {
        type Value = Ref;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a netref")
        }
        fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Ref, D::Error> {
            take_stashed(d)
        }
    }
    deserializer.deserialize_newtype_struct(REF_TOKEN, TokenVisitor)
}

/// Reads a stash token from `d` and takes the reference it names out of the stash.
fn take_stashed<'de, D: Deserializer<'de>>(d: D) -> Result<Ref, D::Error> {
    let token = u64::deserialize(d)?;
    stash_take(token).ok_or_else(|| serde::de::Error::custom("netref token is not in the stash"))
}

// ---------------------------------------------------------------------------------------
// Serde: the wire (tagged) form and the natural (human-readable) form.

const VARIANTS: &[&str] = &[
    "Unit", "Bool", "I64", "U64", "F64", "String", "Bytes", "List", "Map", "Ref",
];

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            return serialize_natural(self, serializer);
        }
        match self {
            Value::Unit => serializer.serialize_unit_variant("Value", 0, "Unit"),
            Value::Bool(b) => serializer.serialize_newtype_variant("Value", 1, "Bool", b),
            Value::I64(n) => serializer.serialize_newtype_variant("Value", 2, "I64", n),
            Value::U64(n) => serializer.serialize_newtype_variant("Value", 3, "U64", n),
            Value::F64(n) => serializer.serialize_newtype_variant("Value", 4, "F64", n),
            Value::String(s) => serializer.serialize_newtype_variant("Value", 5, "String", s),
            Value::Bytes(b) => {
                crate::codec::lend_bytes(b);
                serializer.serialize_newtype_variant(
                    "Value",
                    6,
                    "Bytes",
                    serde_bytes::Bytes::new(b),
                )
            }
            Value::List(l) => serializer.serialize_newtype_variant("Value", 7, "List", l),
            Value::Map(m) => serializer.serialize_newtype_variant("Value", 8, "Map", &MapPairs(m)),
            Value::Ref(Ref::Wire(w)) => serializer.serialize_newtype_variant("Value", 9, "Ref", w),
            #[cfg(feature = "io")]
            Value::Ref(Ref::Object(_)) => Err(serde::ser::Error::custom(
                "a live netref must be turned into a wire reference by its connection before encoding",
            )),
        }
    }
}

/// Map entries on the wire: a sequence of (key, value) pairs, keeping order and any keys.
struct MapPairs<'a>(&'a [(Value, Value)]);

impl Serialize for MapPairs<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for (k, v) in self.0 {
            seq.serialize_element(&Pair(k, v))?;
        }
        seq.end()
    }
}

struct Pair<'a>(&'a Value, &'a Value);

impl Serialize for Pair<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut t = serializer.serialize_tuple(2)?;
        t.serialize_element(self.0)?;
        t.serialize_element(self.1)?;
        t.end()
    }
}

fn serialize_natural<S: Serializer>(v: &Value, serializer: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    match v {
        Value::Unit => serializer.serialize_unit(),
        Value::Bool(b) => serializer.serialize_bool(*b),
        Value::I64(n) => serializer.serialize_i64(*n),
        Value::U64(n) => serializer.serialize_u64(*n),
        Value::F64(n) => serializer.serialize_f64(*n),
        Value::String(s) => serializer.serialize_str(s),
        Value::Bytes(b) => serializer.serialize_bytes(b),
        Value::List(l) => {
            let mut seq = serializer.serialize_seq(Some(l.len()))?;
            for item in l {
                seq.serialize_element(item)?;
            }
            seq.end()
        }
        Value::Map(m) => {
            let mut map = serializer.serialize_map(Some(m.len()))?;
            for (k, v) in m {
                map.serialize_entry(k, v)?;
            }
            map.end()
        }
        Value::Ref(r) => serialize_ref(r, serializer),
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(NaturalVisitor)
        } else {
            deserializer.deserialize_enum("Value", VARIANTS, WireVisitor)
        }
    }
}

struct WireVisitor;

impl<'de> Visitor<'de> for WireVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an rwc value")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        count_value::<A::Error>()?;
        let (idx, variant): (u32, _) = data.variant()?;
        Ok(match idx {
            0 => {
                variant.unit_variant()?;
                Value::Unit
            }
            1 => Value::Bool(variant.newtype_variant()?),
            2 => Value::I64(variant.newtype_variant()?),
            3 => Value::U64(variant.newtype_variant()?),
            4 => Value::F64(variant.newtype_variant()?),
            5 => Value::String(
                variant
                    .newtype_variant::<crate::codec::bounded::OwnedString>()?
                    .0,
            ),
            6 => Value::Bytes(variant.newtype_variant::<crate::codec::SharedBytes>()?.0),
            7 => Value::List(variant.newtype_variant::<WireSeq<Value>>()?.0),
            8 => Value::Map(variant.newtype_variant::<WireSeq<(Value, Value)>>()?.0),
            9 => Value::Ref(Ref::Wire(variant.newtype_variant()?)),
            n => {
                return Err(serde::de::Error::custom(format_args!(
                    "unknown value tag {n}"
                )));
            }
        })
    }
}

/// The elements of a list (`WireSeq<Value>`) or the entries of a map
/// (`WireSeq<(Value, Value)>`) on the wire: a sequence, read one nesting level deeper.
struct WireSeq<T>(Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for WireSeq<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = WireSeq<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of values or key/value pairs")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<WireSeq<T>, A::Error> {
                read_collection(seq.size_hint(), || seq.next_element()).map(WireSeq)
            }
        }
        d.deserialize_seq(V(std::marker::PhantomData))
    }
}

struct NaturalVisitor;

impl<'de> Visitor<'de> for NaturalVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Unit)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Unit)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::I64(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::U64(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::F64(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(Bytes::copy_from_slice(v)))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(v.into()))
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        // Only the value deserializer produces newtype structs from `deserialize_any`, and
        // only for references.
        take_stashed(d).map(Value::Ref)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        read_collection(seq.size_hint(), || seq.next_element()).map(Value::List)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        read_collection(map.size_hint(), || map.next_entry()).map(Value::Map)
    }
}
