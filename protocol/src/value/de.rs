//! [`Value`] to typed values: the deserializer behind [`from_value`].

use std::fmt;
use std::marker::PhantomData;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, Expected, IntoDeserializer, MapAccess,
    SeqAccess, Unexpected, VariantAccess, Visitor,
};

use super::{ConvertError, REF_TOKEN, StashScope, Value, stash_put};
use crate::error::Error;

/// Converts a [`Value`] to a typed value, the way `serde_json::from_value` does for JSON.
///
/// [`Value::Ref`]s are taken by ref types (those that deserialize with
/// [`deserialize_ref`](super::deserialize_ref)) and by `Value` itself. Integers convert to
/// any integer type they fit and to floats; a struct reads from a map keyed by field name
/// or from a list of its fields in order. Fails with
/// [`ErrorKind::BadArgument`](crate::error::ErrorKind), with a message saying what was
/// expected and what was found.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, Error> {
    if unty::type_equal::<T, Vec<u8>>()
        && let Value::Bytes(b) = value
    {
        // A `Vec<u8>` takes the bytes whole instead of one `u8` at a time through serde.
        return super::cast::bytes_as(b.into())
            .map_err(|_| Error::failed("a Vec<u8> is not a Vec<u8>"));
    }
    // Refs are handed to `deserialize_ref` through the stash; the scope keeps it open.
    let _scope = StashScope::enter();
    T::deserialize(ValueDeserializer::new(value)).map_err(|e| Error::bad_argument(e.0))
}

/// `T::deserialize(value)` for a seed, with the same shortcut as [`from_value`] for the
/// seed of a `Vec<u8>` (a field or element of that type).
fn seed_value<'de, S: DeserializeSeed<'de>>(
    seed: S,
    value: Value,
) -> Result<S::Value, ConvertError> {
    if unty::type_equal::<S, PhantomData<Vec<u8>>>()
        && let Value::Bytes(b) = value
    {
        // The seed of a `Vec<u8>` (`S::Value` is `Vec<u8>`): the bytes whole.
        return super::cast::bytes_as(b.into())
            .map_err(|_| ConvertError("a Vec<u8> is not a Vec<u8>".to_owned()));
    }
    seed.deserialize(ValueDeserializer::new(value))
}

impl de::Error for ConvertError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ConvertError(msg.to_string())
    }

    // Same wording as the mismatches this deserializer reports itself ("expected X,
    // found Y"), for the ones a visitor reports.
    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        ConvertError(format!("invalid type: expected {exp}, found {unexp}"))
    }
}

/// "invalid type: expected `exp`, found `found`'s type".
fn invalid_type(exp: &dyn Expected, found: &Value) -> ConvertError {
    ConvertError(format!(
        "invalid type: expected {exp}, found {}",
        found.type_name()
    ))
}

/// A serde deserializer that reads a [`Value`] it owns.
#[derive(Debug, Clone)]
pub(crate) struct ValueDeserializer {
    value: Value,
}

impl ValueDeserializer {
    pub(crate) fn new(value: Value) -> Self {
        ValueDeserializer { value }
    }

    /// A deserializer of the stash token for `r`, lent to whoever takes the ref.
    fn token(r: super::Ref) -> Self {
        ValueDeserializer::new(Value::U64(stash_put(r)))
    }

    /// Reads an integer: the visitor does the range check (`u8` from 300 fails there).
    fn integer<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        match self.value {
            Value::I64(n) => visitor.visit_i64(n),
            Value::U64(n) => visitor.visit_u64(n),
            other => Err(invalid_type(&visitor, &other)),
        }
    }

    /// Reads a list, or bytes as a sequence of `u8`s (no value is made per byte), for a
    /// sequence or tuple.
    fn sequence<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        match self.value {
            Value::List(items) => visit_list(items, visitor),
            Value::Bytes(bytes) => visit_elements(Vec::from(bytes).into_iter(), visitor),
            other => Err(invalid_type(&visitor, &other)),
        }
    }
}

impl Value {
    /// The bytes of a [`Value::Bytes`], moved out (no copy when nothing else shares
    /// them; a slice of a received frame is copied out), or those of a list of integers
    /// `0..=255` (what a peer without a bytes type sends).
    ///
    /// Anything else is a [`ErrorKind::BadArgument`](crate::error::ErrorKind) error that
    /// says how to pass bytes. A string is refused too, rather than taken for its UTF-8:
    /// text given where a file's contents were meant should fail, not be hashed.
    pub fn into_bytes(self) -> Result<Vec<u8>, Error> {
        bytes_of(self).map_err(|e| Error::bad_argument(e.0))
    }
}

/// What [`Value::into_bytes`] does, with the error of this deserializer.
fn bytes_of(value: Value) -> Result<Vec<u8>, ConvertError> {
    match value {
        Value::Bytes(b) => Ok(b.into()),
        Value::List(items) => items
            .iter()
            .map(|v| v.as_u64().and_then(|n| u8::try_from(n).ok()))
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| not_bytes("a list that is not all integers 0..=255")),
        other => Err(not_bytes(other.type_name())),
    }
}

/// "expected bytes, found `found`", and how to pass bytes.
fn not_bytes(found: &str) -> ConvertError {
    ConvertError(format!(
        "invalid type: expected bytes, found {found}; pass bytes as bytes: `@FILE` or `@-` \
         (stdin) on the rwc command line, {{\"$bytes\": \"<base64>\"}} in JSON, a \
         `Vec<u8>` or `Value::Bytes` from Rust"
    ))
}

/// Visits `items` as a sequence, and fails if the visitor leaves some unread (a tuple or
/// positional struct given too many elements).
fn visit_list<'de, V: Visitor<'de>>(
    items: Vec<Value>,
    visitor: V,
) -> Result<V::Value, ConvertError> {
    visit_elements(items.into_iter(), visitor)
}

/// Visits `items` (values, or the `u8`s of bytes) as a sequence, each through its own
/// deserializer, and fails if the visitor leaves some unread.
fn visit_elements<'de, I, V>(items: I, visitor: V) -> Result<V::Value, ConvertError>
where
    I: ExactSizeIterator,
    I::Item: Element,
    V: Visitor<'de>,
{
    let len = items.len();
    let mut seq = Elements(items);
    let out = visitor.visit_seq(&mut seq)?;
    let left = seq.0.len();
    if left == 0 {
        Ok(out)
    } else {
        Err(de::Error::invalid_length(len, &ExpectedFewer(len - left)))
    }
}

/// Visits `entries` as a map, and fails if the visitor leaves some unread.
fn visit_map<'de, V: Visitor<'de>>(
    entries: Vec<(Value, Value)>,
    visitor: V,
) -> Result<V::Value, ConvertError> {
    let len = entries.len();
    let mut map = MapEntries {
        entries: entries.into_iter(),
        value: None,
    };
    let out = visitor.visit_map(&mut map)?;
    let left = map.entries.len();
    if left == 0 {
        Ok(out)
    } else {
        Err(de::Error::invalid_length(len, &ExpectedFewer(len - left)))
    }
}

/// "`n` elements", for a collection that had more than its reader took.
struct ExpectedFewer(usize);

impl Expected for ExpectedFewer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} elements", self.0)
    }
}

/// Forwards the `deserialize_*` methods of one kind to a shared reader.
macro_rules! forward {
    ($via:ident: $($method:ident)*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
            self.$via(visitor)
        })*
    };
}

impl<'de> de::Deserializer<'de> for ValueDeserializer {
    type Error = ConvertError;

    fn is_human_readable(&self) -> bool {
        // Matches the serializer: types with two forms (`Value` itself) use the natural one.
        true
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        match self.value {
            Value::Unit => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::I64(n) => visitor.visit_i64(n),
            Value::U64(n) => visitor.visit_u64(n),
            Value::F64(n) => visitor.visit_f64(n),
            Value::String(s) => visitor.visit_string(s),
            Value::Bytes(b) => visitor.visit_byte_buf(b.into()),
            Value::List(items) => visit_list(items, visitor),
            Value::Map(entries) => visit_map(entries, visitor),
            // The ref goes in the stash and its token is offered as a ref-token newtype:
            // `Value`'s own visitor takes it back from there.
            Value::Ref(r) => visitor.visit_newtype_struct(ValueDeserializer::token(r)),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        match self.value {
            Value::Bool(b) => visitor.visit_bool(b),
            other => Err(invalid_type(&visitor, &other)),
        }
    }

    forward! { integer:
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
    }

    forward! { deserialize_f64: deserialize_f32 }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        match self.value {
            Value::F64(n) => visitor.visit_f64(n),
            // An integer is a fine float (a peer in a language without the distinction may
            // well send `1` for `1.0`); it rounds to the nearest one if it is that large.
            #[allow(clippy::cast_precision_loss)]
            Value::I64(n) => visitor.visit_f64(n as f64),
            #[allow(clippy::cast_precision_loss)]
            Value::U64(n) => visitor.visit_f64(n as f64),
            other => Err(invalid_type(&visitor, &other)),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        // The visitor checks that the string is one character.
        match self.value {
            Value::String(s) => visitor.visit_string(s),
            other => Err(invalid_type(&visitor, &other)),
        }
    }

    forward! { deserialize_string: deserialize_str }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        match self.value {
            Value::String(s) => visitor.visit_string(s),
            // A string visitor takes bytes that are valid UTF-8 and says so if not.
            Value::Bytes(b) => visitor.visit_byte_buf(b.into()),
            other => Err(invalid_type(&visitor, &other)),
        }
    }

    forward! { deserialize_byte_buf: deserialize_bytes }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        visitor.visit_byte_buf(bytes_of(self.value)?)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        match self.value {
            Value::Unit => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        match self.value {
            Value::Unit => visitor.visit_unit(),
            // An empty argument list is how a method that takes nothing is called.
            Value::List(items) if items.is_empty() => visitor.visit_unit(),
            other => Err(invalid_type(&visitor, &other)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ConvertError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ConvertError> {
        if name != REF_TOKEN {
            return visitor.visit_newtype_struct(self);
        }
        // A ref type is asking for its ref (see `deserialize_ref`).
        match self.value {
            Value::Ref(r) => visitor.visit_newtype_struct(ValueDeserializer::token(r)),
            other => Err(ConvertError(format!(
                "invalid type: expected a netref, found {}",
                other.type_name()
            ))),
        }
    }

    forward! { sequence: deserialize_seq }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ConvertError> {
        self.sequence(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ConvertError> {
        self.sequence(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        match self.value {
            Value::Map(entries) => visit_map(entries, visitor),
            other => Err(invalid_type(&visitor, &other)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ConvertError> {
        match self.value {
            Value::Map(entries) => visit_map(entries, visitor),
            Value::List(items) => visit_list(items, visitor),
            other => Err(invalid_type(&visitor, &other)),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ConvertError> {
        match self.value {
            Value::String(variant) => visitor.visit_enum(Variant {
                name: variant,
                content: None,
            }),
            Value::Map(mut entries) => {
                if entries.len() != 1 {
                    return Err(ConvertError(format!(
                        "invalid type: expected {}, found a map with {} entries \
                         (an enum is a variant name, or a map with one entry: {{name: content}})",
                        &visitor as &dyn Expected,
                        entries.len()
                    )));
                }
                match entries.pop() {
                    Some((Value::String(name), content)) => visitor.visit_enum(Variant {
                        name,
                        content: Some(content),
                    }),
                    Some((key, _)) => Err(ConvertError(format!(
                        "invalid type: expected {}, found a map whose key is a {}, \
                         not a variant name",
                        &visitor as &dyn Expected,
                        key.type_name()
                    ))),
                    None => Err(invalid_type(&visitor, &Value::Map(Vec::new()))),
                }
            }
            other => Err(invalid_type(&visitor, &other)),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        match self.value {
            Value::String(s) => visitor.visit_string(s),
            Value::Bytes(b) => visitor.visit_byte_buf(b.into()),
            // Field and variant identifiers also take their index.
            Value::U64(n) => visitor.visit_u64(n),
            Value::I64(n) => visitor.visit_i64(n),
            other => Err(invalid_type(&visitor, &other)),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, ConvertError> {
        // Nothing to read; a ref in here is simply dropped.
        drop(self);
        visitor.visit_unit()
    }
}

impl<'de> IntoDeserializer<'de, ConvertError> for Value {
    type Deserializer = ValueDeserializer;

    fn into_deserializer(self) -> ValueDeserializer {
        ValueDeserializer::new(self)
    }
}

/// The elements of a list (values) or of bytes (`u8`s), for `visit_seq`.
struct Elements<I>(I);

/// An element of [`Elements`]: a value, or one `u8` of bytes.
trait Element {
    fn deserialize_seed<'de, S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<S::Value, ConvertError>;
}

impl Element for Value {
    fn deserialize_seed<'de, S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<S::Value, ConvertError> {
        seed_value(seed, self)
    }
}

impl Element for u8 {
    fn deserialize_seed<'de, S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<S::Value, ConvertError> {
        seed.deserialize(self.into_deserializer())
    }
}

impl<'de, I> SeqAccess<'de> for Elements<I>
where
    I: ExactSizeIterator,
    I::Item: Element,
{
    type Error = ConvertError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ConvertError> {
        self.0.next().map(|v| v.deserialize_seed(seed)).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

/// The entries of a map, for `visit_map`.
struct MapEntries {
    entries: std::vec::IntoIter<(Value, Value)>,
    /// The value of the entry whose key was just read.
    value: Option<Value>,
}

impl<'de> MapAccess<'de> for MapEntries {
    type Error = ConvertError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ConvertError> {
        match self.entries.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(ValueDeserializer::new(k)).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, ConvertError> {
        match self.value.take() {
            Some(v) => seed_value(seed, v),
            None => Err(ConvertError(
                "map value requested before its key".to_owned(),
            )),
        }
    }

    fn next_entry_seed<K: DeserializeSeed<'de>, V: DeserializeSeed<'de>>(
        &mut self,
        kseed: K,
        vseed: V,
    ) -> Result<Option<(K::Value, V::Value)>, ConvertError> {
        match self.entries.next() {
            Some((k, v)) => {
                let k = kseed.deserialize(ValueDeserializer::new(k))?;
                let v = seed_value(vseed, v)?;
                Ok(Some((k, v)))
            }
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// An enum read from a variant name and, unless it is a bare name, the variant's content.
struct Variant {
    name: String,
    content: Option<Value>,
}

impl<'de> EnumAccess<'de> for Variant {
    type Error = ConvertError;
    type Variant = VariantContent;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, VariantContent), ConvertError> {
        let tag = seed.deserialize(ValueDeserializer::new(Value::String(self.name)))?;
        Ok((tag, VariantContent(self.content)))
    }
}

/// The content of an enum variant: `None` when the enum was just the variant's name.
struct VariantContent(Option<Value>);

impl VariantContent {
    fn mismatch(found: Option<&Value>, expected: &str) -> ConvertError {
        let found = match found {
            None => "a unit variant (a bare name)",
            Some(v) => v.type_name(),
        };
        ConvertError(format!("invalid type: expected {expected}, found {found}"))
    }
}

impl<'de> VariantAccess<'de> for VariantContent {
    type Error = ConvertError;

    fn unit_variant(self) -> Result<(), ConvertError> {
        match self.0 {
            // `{name: ()}` is a unit variant too.
            None | Some(Value::Unit) => Ok(()),
            Some(other) => Err(Self::mismatch(Some(&other), "unit variant")),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, ConvertError> {
        match self.0 {
            Some(content) => seed_value(seed, content),
            None => Err(Self::mismatch(None, "newtype variant")),
        }
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ConvertError> {
        match self.0 {
            Some(Value::List(items)) => visit_list(items, visitor),
            other => Err(Self::mismatch(other.as_ref(), "tuple variant (a list)")),
        }
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ConvertError> {
        match self.0 {
            Some(Value::Map(entries)) => visit_map(entries, visitor),
            Some(Value::List(items)) => visit_list(items, visitor),
            other => Err(Self::mismatch(
                other.as_ref(),
                "struct variant (a map or list)",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::fmt::Debug;

    use serde::{Deserialize, Deserializer, Serialize};
    use serde_bytes::ByteBuf;

    use super::*;
    use crate::error::ErrorKind;
    use crate::value::test_support::{Handle, s, wire};
    use crate::value::{Ref, WireRef, to_value};

    /// Asserts that `v` survives `to_value` then `from_value`.
    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(v: T) {
        let value = to_value(&v).unwrap_or_else(|e| panic!("to_value({v:?}): {e}"));
        let back: T = from_value(value.clone())
            .unwrap_or_else(|e| panic!("from_value({value:?}) for {v:?}: {e}"));
        assert_eq!(back, v, "through {value:?}");
    }

    /// The error message of converting `v` to `T`, which must fail with `BadArgument`.
    fn error_of<T: DeserializeOwned + Debug>(v: Value) -> String {
        let err = from_value::<T>(v).expect_err("conversion should fail");
        assert_eq!(err.kind(), ErrorKind::BadArgument);
        err.message().to_owned()
    }

    #[test]
    fn integers_round_trip_at_their_extremes() {
        round_trip(i8::MIN);
        round_trip(i8::MAX);
        round_trip(i16::MIN);
        round_trip(i16::MAX);
        round_trip(i32::MIN);
        round_trip(i32::MAX);
        round_trip(i64::MIN);
        round_trip(i64::MAX);
        round_trip(i128::from(i64::MIN));
        round_trip(i128::from(u64::MAX));
        round_trip(0u8);
        round_trip(u8::MAX);
        round_trip(u16::MAX);
        round_trip(u32::MAX);
        round_trip(u64::MAX);
        round_trip(u128::from(u64::MAX));
        round_trip(-1i32);
    }

    #[test]
    fn floats_chars_and_strings_round_trip() {
        round_trip(1.25f32);
        round_trip(f32::MAX);
        round_trip(f32::INFINITY);
        round_trip(-0.0f64);
        round_trip(f64::MIN_POSITIVE);
        round_trip(f64::NEG_INFINITY);
        let nan: f64 = from_value(to_value(&f64::NAN).unwrap()).unwrap();
        assert!(nan.is_nan());
        round_trip('x');
        round_trip('😀');
        round_trip(String::new());
        round_trip("hé\0llo".to_owned());
    }

    #[test]
    fn options_bytes_and_tuples_round_trip() {
        round_trip(None::<u32>);
        round_trip(Some(3u32));
        round_trip(Some("x".to_owned()));
        round_trip(vec![0u8, 1, 255]);
        round_trip(Vec::<u8>::new());
        round_trip(ByteBuf::from(vec![0u8, 1, 255]));
        round_trip((1u8, -2i64, "three".to_owned(), (4.0f64, true)));
        round_trip(());
    }

    #[test]
    fn maps_round_trip_with_any_keys() {
        let by_name: HashMap<String, u32> = [("a".to_owned(), 1), ("b".to_owned(), 2)].into();
        round_trip(by_name);
        let by_number: HashMap<i32, String> = [(-1, "m".to_owned()), (7, "s".to_owned())].into();
        round_trip(by_number);
        let by_tuple: BTreeMap<(u8, bool), Vec<u8>> =
            [((1, true), vec![1]), ((0, false), vec![])].into();
        round_trip(by_tuple);
        round_trip(BTreeMap::<String, ()>::new());
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct UnitStruct;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Meters(f64);

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Point(i32, i32);

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Inner {
        name: String,
        tags: Vec<String>,
        blob: ByteBuf,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Outer {
        id: u64,
        inner: Inner,
        maybe: Option<Box<Outer>>,
        at: Point,
        len: Meters,
        kind: Kind,
        unit: UnitStruct,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Kind {
        Unit,
        Newtype(u16),
        Tuple(u8, String),
        Struct { a: i8, b: Option<bool> },
    }

    #[test]
    fn structs_and_enums_round_trip() {
        round_trip(UnitStruct);
        round_trip(Meters(2.5));
        round_trip(Point(-1, 2));
        round_trip(Kind::Unit);
        round_trip(Kind::Newtype(9));
        round_trip(Kind::Tuple(1, "t".to_owned()));
        round_trip(Kind::Struct {
            a: -3,
            b: Some(true),
        });
        round_trip(vec![Kind::Unit, Kind::Newtype(0)]);
        let inner = || Inner {
            name: "n".to_owned(),
            tags: vec!["a".to_owned(), "b".to_owned()],
            blob: ByteBuf::from(vec![9]),
        };
        round_trip(Outer {
            id: 1,
            inner: inner(),
            maybe: Some(Box::new(Outer {
                id: 2,
                inner: inner(),
                maybe: None,
                at: Point(0, 0),
                len: Meters(0.0),
                kind: Kind::Struct { a: 0, b: None },
                unit: UnitStruct,
            })),
            at: Point(3, 4),
            len: Meters(1.0),
            kind: Kind::Tuple(7, String::new()),
            unit: UnitStruct,
        });
    }

    #[test]
    fn lenient_shapes_are_accepted() {
        // Positional struct, integer for a float, list for bytes.
        assert_eq!(
            from_value::<Point>(Value::List(vec![Value::I64(1), Value::U64(2)])).unwrap(),
            Point(1, 2)
        );
        assert_eq!(
            from_value::<Inner>(Value::List(vec![
                s("n"),
                Value::List(vec![]),
                Value::List(vec![Value::U64(1), Value::I64(2)]),
            ]))
            .unwrap(),
            Inner {
                name: "n".to_owned(),
                tags: vec![],
                blob: ByteBuf::from(vec![1, 2])
            }
        );
        assert_eq!(from_value::<f64>(Value::I64(-3)).unwrap(), -3.0);
        assert_eq!(from_value::<f32>(Value::U64(3)).unwrap(), 3.0);
        assert_eq!(
            from_value::<Vec<u8>>(Value::Bytes(vec![1, 2].into())).unwrap(),
            vec![1, 2]
        );
        assert_eq!(
            from_value::<(u8, u8)>(Value::Bytes(vec![1, 2].into())).unwrap(),
            (1, 2)
        );
        // `{variant: ()}` is a unit variant as well.
        assert_eq!(
            from_value::<Kind>(Value::Map(vec![(s("Unit"), Value::Unit)])).unwrap(),
            Kind::Unit
        );
    }

    #[test]
    fn a_value_deserializes_to_itself() {
        let values = [
            Value::Unit,
            Value::Bool(false),
            Value::I64(-1),
            Value::U64(u64::MAX),
            Value::F64(f64::NAN),
            s(""),
            Value::Bytes(vec![].into()),
            wire(7),
            Value::List(vec![wire(7), Value::List(vec![wire(8), Value::Unit])]),
            Value::Map(vec![
                (s("r"), wire(7)),
                (wire(9), Value::Map(vec![(Value::U64(1), wire(10))])),
                (Value::Unit, Value::Ref(Ref::Wire(WireRef::Receiver(3)))),
            ]),
        ];
        for v in values {
            assert_eq!(from_value::<Value>(v.clone()).unwrap(), v);
        }
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct S {
        h: Handle,
        n: u32,
        more: Vec<Handle>,
        maybe: Option<Handle>,
    }

    #[test]
    fn ref_fields_round_trip_through_the_stash() {
        let typed = S {
            h: Handle(Ref::Wire(WireRef::Sender(7))),
            n: 3,
            more: vec![
                Handle(Ref::Wire(WireRef::Receiver(1))),
                Handle(Ref::Wire(WireRef::Sender(2))),
            ],
            maybe: Some(Handle(Ref::Wire(WireRef::Sender(3)))),
        };
        let v = to_value(&typed).unwrap();
        assert_eq!(v.get("h"), Some(&wire(7)));
        assert_eq!(v.get("n"), Some(&Value::U64(3)));
        assert_eq!(from_value::<S>(v).unwrap(), typed);
    }

    #[test]
    fn a_ref_field_wants_a_ref() {
        let v = Value::Map(vec![
            (s("h"), Value::U64(0)),
            (s("n"), Value::U64(3)),
            (s("more"), Value::List(vec![])),
            (s("maybe"), Value::Unit),
        ]);
        let msg = error_of::<S>(v);
        assert!(msg.contains("expected a netref, found u64"), "{msg}");
        // And a ref is not anything else.
        let msg = error_of::<u64>(wire(1));
        assert!(msg.contains("expected u64, found ref"), "{msg}");
    }

    #[test]
    fn mismatches_say_what_was_expected_and_found() {
        let msg = error_of::<u8>(Value::U64(300));
        assert!(msg.contains("300") && msg.contains("expected u8"), "{msg}");
        let msg = error_of::<u32>(Value::I64(-1));
        assert!(msg.contains("-1") && msg.contains("expected u32"), "{msg}");
        let msg = error_of::<u32>(s("1"));
        assert_eq!(msg, "invalid type: expected u32, found string");
        let msg = error_of::<String>(Value::Bool(true));
        assert_eq!(msg, "invalid type: expected a string, found bool");
        let msg = error_of::<char>(s("ab"));
        assert!(msg.contains("expected a character"), "{msg}");
        let msg = error_of::<Vec<u8>>(Value::List(vec![Value::I64(-1)]));
        assert!(msg.contains("expected u8"), "{msg}");
        let msg = error_of::<ByteBuf>(Value::List(vec![Value::I64(256)]));
        assert!(
            msg.contains("expected bytes, found a list that is not all"),
            "{msg}"
        );
    }

    #[test]
    fn bytes_read_as_bytes_or_as_a_sequence_of_numbers() {
        let bytes = Value::Bytes(vec![0, 7, 255].into());
        assert_eq!(from_value::<Vec<u8>>(bytes.clone()).unwrap(), [0, 7, 255]);
        assert_eq!(from_value::<Vec<u32>>(bytes.clone()).unwrap(), [0, 7, 255]);
        assert_eq!(from_value::<[u8; 3]>(bytes.clone()).unwrap(), [0, 7, 255]);
        assert_eq!(
            from_value::<Box<[u8]>>(bytes.clone()).unwrap(),
            Box::from([0u8, 7, 255])
        );
        let msg = error_of::<[u8; 2]>(bytes.clone());
        assert!(msg.contains("invalid length 3"), "{msg}");
        // Lists of numbers still read as bytes, and as other sequences.
        let list = Value::List(vec![Value::U64(1), Value::I64(2)]);
        assert_eq!(from_value::<Vec<u8>>(list.clone()).unwrap(), [1, 2]);
        assert_eq!(
            from_value::<ByteBuf>(list.clone()).unwrap(),
            ByteBuf::from(vec![1, 2])
        );
        assert_eq!(from_value::<Vec<i64>>(list).unwrap(), [1, 2]);
        assert_eq!(bytes.clone().into_bytes().unwrap(), [0, 7, 255]);
    }

    #[test]
    fn text_is_not_taken_for_bytes() {
        for msg in [
            error_of::<ByteBuf>(s("hash me")),
            Value::from("hash me")
                .into_bytes()
                .unwrap_err()
                .message()
                .to_owned(),
        ] {
            assert!(
                msg.starts_with("invalid type: expected bytes, found string"),
                "{msg}"
            );
            assert!(
                msg.contains("`@FILE`") && msg.contains(r#"{"$bytes": "<base64>"}"#),
                "{msg}"
            );
        }
        let msg = error_of::<Vec<u8>>(s("hash me"));
        assert!(msg.contains("expected a sequence, found string"), "{msg}");
        let err = Value::U64(1).into_bytes().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadArgument);
        assert!(err.message().contains("found u64"), "{err}");
    }

    #[test]
    fn struct_errors_name_the_field_or_shape() {
        let msg = error_of::<Point>(Value::List(vec![Value::I64(1)]));
        assert!(msg.contains("invalid length 1"), "{msg}");
        let msg = error_of::<Point>(Value::List(vec![Value::I64(1); 3]));
        assert!(
            msg.contains("invalid length 3") && msg.contains("expected 2"),
            "{msg}"
        );
        let msg = error_of::<Inner>(Value::Map(vec![(s("name"), s("n"))]));
        assert!(msg.contains("missing field `tags`"), "{msg}");
        let msg = error_of::<Inner>(Value::U64(1));
        assert!(msg.contains("expected struct Inner, found u64"), "{msg}");
    }

    #[test]
    fn enum_errors_say_what_was_expected() {
        let msg = error_of::<Kind>(s("Nope"));
        assert!(
            msg.contains("unknown variant `Nope`") && msg.contains("expected one of"),
            "{msg}"
        );
        let msg = error_of::<Kind>(Value::Map(vec![(s("Nope"), Value::Unit)]));
        assert!(msg.contains("unknown variant `Nope`"), "{msg}");
        let msg = error_of::<Kind>(Value::Map(vec![]));
        assert!(
            msg.contains("expected enum Kind, found a map with 0 entries"),
            "{msg}"
        );
        let msg = error_of::<Kind>(Value::Map(vec![(Value::U64(0), Value::Unit)]));
        assert!(msg.contains("expected enum Kind"), "{msg}");
        let msg = error_of::<Kind>(Value::F64(1.0));
        assert_eq!(msg, "invalid type: expected enum Kind, found f64");
        let msg = error_of::<Kind>(s("Newtype"));
        assert!(msg.contains("expected newtype variant"), "{msg}");
        let msg = error_of::<Kind>(Value::Map(vec![(s("Tuple"), Value::U64(1))]));
        assert!(
            msg.contains("expected tuple variant (a list), found u64"),
            "{msg}"
        );
        let msg = error_of::<Kind>(Value::Map(vec![(s("Struct"), s("x"))]));
        assert!(msg.contains("expected struct variant"), "{msg}");
        let msg = error_of::<Kind>(Value::Map(vec![(s("Unit"), Value::U64(1))]));
        assert!(msg.contains("expected unit variant, found u64"), "{msg}");
    }

    #[test]
    fn unread_map_entries_are_an_error() {
        /// Reads the first entry of a map and stops.
        struct FirstEntry;
        impl<'de> Visitor<'de> for FirstEntry {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
                map.next_entry::<Value, Value>()?;
                Ok(())
            }
        }
        let first_entry = |v| ValueDeserializer::new(v).deserialize_map(FirstEntry);
        assert!(first_entry(Value::Map(vec![(Value::Unit, Value::Unit)])).is_ok());
        let two = Value::Map(vec![
            (Value::Unit, Value::Unit),
            (Value::U64(1), Value::Unit),
        ]);
        let err = first_entry(two).unwrap_err();
        assert!(
            err.0.contains("invalid length 2, expected 1 elements"),
            "{}",
            err.0
        );
    }
}
