//! Typed values to [`Value`]: the serializer behind [`to_value`].

use std::fmt;
use std::marker::PhantomData;

use serde::Serialize;
use serde::ser::{self, Impossible};

use bytes::Bytes;

use super::{ConvertError, REF_TOKEN, StashScope, Value, cautious_capacity, stash_take};
use crate::error::Error;

/// Converts a typed value to a [`Value`], the way `serde_json::to_value` does for JSON.
///
/// Netrefs inside `value` (types that serialize with [`serialize_ref`](super::serialize_ref))
/// become [`Value::Ref`]. Fails with [`ErrorKind::BadArgument`](crate::error::ErrorKind)
/// when the value cannot be represented (an `i128` outside 64 bits, a `Serialize` impl that
/// reports an error).
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, Error> {
    // Refs are lent to this serializer through the stash; the scope keeps it open (and
    // clears it when the outermost conversion ends, so nothing lingers in it).
    let _scope = StashScope::enter();
    value
        .serialize(ValueSerializer)
        .map_err(|e| Error::bad_argument(e.0))
}

impl ser::Error for ConvertError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ConvertError(msg.to_string())
    }
}

/// A serde serializer whose output is a [`Value`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ValueSerializer;

/// Scalars that become a [`Value`] variant by a lossless conversion.
macro_rules! serialize_scalars {
    ($($method:ident($t:ty) => $variant:ident),* $(,)?) => {
        $(fn $method(self, v: $t) -> Result<Value, ConvertError> {
            Ok(Value::$variant(v.into()))
        })*
    };
}

impl ser::Serializer for ValueSerializer {
    type Ok = Value;
    type Error = ConvertError;

    type SerializeSeq = SerializeList;
    type SerializeTuple = SerializeList;
    type SerializeTupleStruct = SerializeList;
    type SerializeTupleVariant = SerializeTupleVariant;
    type SerializeMap = SerializeMap;
    type SerializeStruct = SerializeMap;
    type SerializeStructVariant = SerializeStructVariant;

    fn is_human_readable(&self) -> bool {
        // `Value` (and other types with two forms) should take their natural form here:
        // a `Value` serialized into a `Value` must come out unchanged.
        true
    }

    serialize_scalars! {
        serialize_bool(bool) => Bool, serialize_f32(f32) => F64, serialize_f64(f64) => F64,
        serialize_i8(i8) => I64, serialize_i16(i16) => I64, serialize_i32(i32) => I64,
        serialize_i64(i64) => I64,
        serialize_u8(u8) => U64, serialize_u16(u16) => U64, serialize_u32(u32) => U64,
        serialize_u64(u64) => U64,
    }

    fn serialize_i128(self, v: i128) -> Result<Value, ConvertError> {
        // A positive one past `i64::MAX` still fits a `U64`, which reads back as an i128.
        i64::try_from(v)
            .map(Value::I64)
            .or_else(|_| u64::try_from(v).map(Value::U64))
            .map_err(|_| ConvertError(format!("integer {v} does not fit in 64 bits")))
    }

    fn serialize_u128(self, v: u128) -> Result<Value, ConvertError> {
        u64::try_from(v)
            .map(Value::U64)
            .map_err(|_| ConvertError(format!("integer {v} does not fit in 64 bits")))
    }

    fn serialize_char(self, v: char) -> Result<Value, ConvertError> {
        Ok(Value::String(v.to_string()))
    }

    fn serialize_str(self, v: &str) -> Result<Value, ConvertError> {
        Ok(Value::String(v.to_owned()))
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<Value, ConvertError> {
        Ok(Value::Bytes(Bytes::copy_from_slice(v)))
    }

    fn collect_seq<I>(self, iter: I) -> Result<Value, ConvertError>
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        // `Vec<u8>`, `[u8]` and `Box<[u8]>` serialize as `collect_seq(&self)`: take their
        // bytes whole (one copy) instead of one `u8` at a time.
        if let Some(bytes) = super::cast::byte_slice(&iter).filter(|b| !b.is_empty()) {
            return Ok(Value::Bytes(Bytes::copy_from_slice(bytes)));
        }
        let iter = iter.into_iter();
        let mut seq = ser::Serializer::serialize_seq(self, iter.size_hint().1)?;
        for item in iter {
            ser::SerializeSeq::serialize_element(&mut seq, &item)?;
        }
        ser::SerializeSeq::end(seq)
    }

    fn serialize_none(self) -> Result<Value, ConvertError> {
        Ok(Value::Unit)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value, ConvertError> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<Value, ConvertError> {
        Ok(Value::Unit)
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value, ConvertError> {
        Ok(Value::Unit)
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value, ConvertError> {
        Ok(Value::String(variant.to_owned()))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<Value, ConvertError> {
        if name != REF_TOKEN {
            return value.serialize(self);
        }
        // `serialize_ref` put the reference in the stash and hands us its token; serialize
        // the token through `Only::<Token>` rather than `self` so that only a bare
        // integer is taken for one.
        let token = value.serialize(Only::<Token>::new())?;
        stash_take(token)
            .map(Value::Ref)
            .ok_or_else(|| ConvertError(format!("netref token {token} is not in the stash")))
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value, ConvertError> {
        Ok(variant_value(variant, value.serialize(self)?))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<SerializeList, ConvertError> {
        Ok(SerializeList::seq(len))
    }

    fn serialize_tuple(self, len: usize) -> Result<SerializeList, ConvertError> {
        Ok(SerializeList::new(Some(len)))
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<SerializeList, ConvertError> {
        Ok(SerializeList::new(Some(len)))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<SerializeTupleVariant, ConvertError> {
        Ok(SerializeTupleVariant {
            variant,
            list: SerializeList::new(Some(len)),
        })
    }

    fn serialize_map(self, len: Option<usize>) -> Result<SerializeMap, ConvertError> {
        Ok(SerializeMap::new(len))
    }

    fn serialize_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<SerializeMap, ConvertError> {
        Ok(SerializeMap::new(Some(len)))
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<SerializeStructVariant, ConvertError> {
        Ok(SerializeStructVariant {
            variant,
            map: SerializeMap::new(Some(len)),
        })
    }
}

/// Builds a [`Value::List`] (sequences, tuples, tuple structs), or a [`Value::Bytes`] for
/// a sequence whose every element arrived through `serialize_u8`: a `Vec<u8>`, `&[u8]` or
/// `Box<[u8]>` travels as bytes, not as one value per byte. An empty sequence stays an
/// empty list (its type cannot be told), and a tuple (`[u8; 32]`, `(u8, u8)`) stays a list.
#[derive(Debug)]
pub(crate) struct SerializeList {
    items: Vec<Value>,
    /// While this is a sequence and every element so far was a `u8`: those bytes.
    bytes: Option<Vec<u8>>,
}

/// Most bytes reserved up front for a sequence from its claimed length; it grows past that.
const MAX_BYTES_RESERVED: usize = 64 << 20;

impl SerializeList {
    fn new(len: Option<usize>) -> Self {
        // The length comes from a `Serialize` impl, which may be wrong: reserve only a
        // bounded amount up front.
        SerializeList {
            items: Vec::with_capacity(cautious_capacity(len)),
            bytes: None,
        }
    }

    /// A sequence: bytes while its elements are `u8`s.
    fn seq(len: Option<usize>) -> Self {
        SerializeList {
            items: Vec::new(),
            bytes: Some(Vec::with_capacity(len.unwrap_or(0).min(MAX_BYTES_RESERVED))),
        }
    }

    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ConvertError> {
        if let Some(bytes) = &mut self.bytes {
            if let Ok(b) = value.serialize(Only::<Byte>::new()) {
                bytes.push(b);
                return Ok(());
            }
            // Not all bytes after all: the ones so far become numbers.
            self.items = std::mem::take(bytes).into_iter().map(Value::from).collect();
            self.bytes = None;
        }
        self.items.push(value.serialize(ValueSerializer)?);
        Ok(())
    }

    fn finish(self) -> Value {
        match self.bytes {
            Some(bytes) if !bytes.is_empty() => Value::Bytes(bytes.into()),
            _ => Value::List(self.items),
        }
    }
}

/// The three serde traits of positional compounds, all pushing onto a list.
macro_rules! impl_list_builder {
    ($($trait:ident::$method:ident),*) => {
        $(impl ser::$trait for SerializeList {
            type Ok = Value;
            type Error = ConvertError;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ConvertError> {
                self.push(value)
            }

            fn end(self) -> Result<Value, ConvertError> {
                Ok(self.finish())
            }
        })*
    };
}

impl_list_builder!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field
);

/// An enum variant with content, in the natural form: `{variant: content}`.
fn variant_value(variant: &str, content: Value) -> Value {
    Value::Map(vec![(Value::String(variant.to_owned()), content)])
}

/// Builds `{variant: [fields…]}` for a tuple variant.
#[derive(Debug)]
pub(crate) struct SerializeTupleVariant {
    variant: &'static str,
    list: SerializeList,
}

impl ser::SerializeTupleVariant for SerializeTupleVariant {
    type Ok = Value;
    type Error = ConvertError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ConvertError> {
        self.list.push(value)
    }

    fn end(self) -> Result<Value, ConvertError> {
        Ok(variant_value(self.variant, Value::List(self.list.items)))
    }
}

/// Builds a [`Value::Map`] (maps, and structs with their field names as string keys).
#[derive(Debug)]
pub(crate) struct SerializeMap {
    entries: Vec<(Value, Value)>,
    /// A key given by `serialize_key`, waiting for its value.
    pending_key: Option<Value>,
}

impl SerializeMap {
    fn new(len: Option<usize>) -> Self {
        SerializeMap {
            entries: Vec::with_capacity(cautious_capacity(len)),
            pending_key: None,
        }
    }

    fn field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), ConvertError> {
        let value = value.serialize(ValueSerializer)?;
        self.entries.push((Value::String(key.to_owned()), value));
        Ok(())
    }
}

impl ser::SerializeMap for SerializeMap {
    type Ok = Value;
    type Error = ConvertError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), ConvertError> {
        if self.pending_key.is_some() {
            return Err(ConvertError(
                "map key serialized twice without a value".to_owned(),
            ));
        }
        self.pending_key = Some(key.serialize(ValueSerializer)?);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ConvertError> {
        let key = self
            .pending_key
            .take()
            .ok_or_else(|| ConvertError("map value serialized before its key".to_owned()))?;
        let value = value.serialize(ValueSerializer)?;
        self.entries.push((key, value));
        Ok(())
    }

    fn end(self) -> Result<Value, ConvertError> {
        if self.pending_key.is_some() {
            return Err(ConvertError(
                "map key serialized without a value".to_owned(),
            ));
        }
        Ok(Value::Map(self.entries))
    }
}

impl ser::SerializeStruct for SerializeMap {
    type Ok = Value;
    type Error = ConvertError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), ConvertError> {
        self.field(key, value)
    }

    fn end(self) -> Result<Value, ConvertError> {
        Ok(Value::Map(self.entries))
    }
}

/// Builds `{variant: {field: value, …}}` for a struct variant.
#[derive(Debug)]
pub(crate) struct SerializeStructVariant {
    variant: &'static str,
    map: SerializeMap,
}

impl ser::SerializeStructVariant for SerializeStructVariant {
    type Ok = Value;
    type Error = ConvertError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), ConvertError> {
        self.map.field(key, value)
    }

    fn end(self) -> Result<Value, ConvertError> {
        Ok(variant_value(self.variant, Value::Map(self.map.entries)))
    }
}

/// A serializer that takes one kind of scalar and refuses everything else: what `A`
/// accepts. Spelled out once because serde has no default methods.
struct Only<A>(PhantomData<A>);

impl<A> Only<A> {
    fn new() -> Self {
        Only(PhantomData)
    }
}

/// What an [`Only`] serializer accepts; every method refuses by default.
trait Accept {
    type Ok;
    type Error: ser::Error;

    /// The error for anything not accepted.
    fn refuse() -> Self::Error;

    fn u8(_v: u8) -> Result<Self::Ok, Self::Error> {
        Err(Self::refuse())
    }

    fn u32(_v: u32) -> Result<Self::Ok, Self::Error> {
        Err(Self::refuse())
    }

    fn u64(_v: u64) -> Result<Self::Ok, Self::Error> {
        Err(Self::refuse())
    }
}

/// The content of a [`REF_TOKEN`] newtype struct: an unsigned integer.
struct Token;

impl Accept for Token {
    type Ok = u64;
    type Error = ConvertError;

    fn refuse() -> ConvertError {
        ConvertError(format!(
            "the content of a `{REF_TOKEN}` newtype must be a netref token (u64)"
        ))
    }

    fn u32(v: u32) -> Result<u64, ConvertError> {
        Ok(v.into())
    }

    fn u64(v: u64) -> Result<u64, ConvertError> {
        Ok(v)
    }
}

/// An element of a byte sequence: a `u8` and nothing else.
struct Byte;

impl Accept for Byte {
    type Ok = u8;
    type Error = NotAByte;

    fn refuse() -> NotAByte {
        NotAByte
    }

    fn u8(v: u8) -> Result<u8, NotAByte> {
        Ok(v)
    }
}

/// "Not a byte": only ever a signal, so it carries no message (nothing to allocate).
#[derive(Debug)]
struct NotAByte;

impl fmt::Display for NotAByte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a byte")
    }
}

impl std::error::Error for NotAByte {}

impl ser::Error for NotAByte {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        NotAByte
    }
}

/// Methods that refuse whatever they are given.
macro_rules! refuse {
    ($($method:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        $(fn $method(self, $($arg: $ty),*) -> Result<$ret, A::Error> {
            $(let _ = $arg;)*
            Err(A::refuse())
        })*
    };
}

impl<A: Accept> ser::Serializer for Only<A> {
    type Ok = A::Ok;
    type Error = A::Error;

    type SerializeSeq = Impossible<A::Ok, A::Error>;
    type SerializeTuple = Impossible<A::Ok, A::Error>;
    type SerializeTupleStruct = Impossible<A::Ok, A::Error>;
    type SerializeTupleVariant = Impossible<A::Ok, A::Error>;
    type SerializeMap = Impossible<A::Ok, A::Error>;
    type SerializeStruct = Impossible<A::Ok, A::Error>;
    type SerializeStructVariant = Impossible<A::Ok, A::Error>;

    fn serialize_u8(self, v: u8) -> Result<A::Ok, A::Error> {
        A::u8(v)
    }

    fn serialize_u32(self, v: u32) -> Result<A::Ok, A::Error> {
        A::u32(v)
    }

    fn serialize_u64(self, v: u64) -> Result<A::Ok, A::Error> {
        A::u64(v)
    }

    refuse! {
        serialize_bool(v: bool) -> A::Ok;
        serialize_i8(v: i8) -> A::Ok;
        serialize_i16(v: i16) -> A::Ok;
        serialize_i32(v: i32) -> A::Ok;
        serialize_i64(v: i64) -> A::Ok;
        serialize_u16(v: u16) -> A::Ok;
        serialize_f32(v: f32) -> A::Ok;
        serialize_f64(v: f64) -> A::Ok;
        serialize_char(v: char) -> A::Ok;
        serialize_str(v: &str) -> A::Ok;
        serialize_bytes(v: &[u8]) -> A::Ok;
        serialize_none() -> A::Ok;
        serialize_unit() -> A::Ok;
        serialize_unit_struct(name: &'static str) -> A::Ok;
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str) -> A::Ok;
        serialize_seq(len: Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(len: usize) -> Self::SerializeTuple;
        serialize_tuple_struct(name: &'static str, len: usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(
            name: &'static str, index: u32, variant: &'static str, len: usize
        ) -> Self::SerializeTupleVariant;
        serialize_map(len: Option<usize>) -> Self::SerializeMap;
        serialize_struct(name: &'static str, len: usize) -> Self::SerializeStruct;
        serialize_struct_variant(
            name: &'static str, index: u32, variant: &'static str, len: usize
        ) -> Self::SerializeStructVariant;
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<A::Ok, A::Error> {
        Err(A::refuse())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _value: &T,
    ) -> Result<A::Ok, A::Error> {
        Err(A::refuse())
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<A::Ok, A::Error> {
        Err(A::refuse())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize, Serializer};

    use super::*;
    use crate::error::ErrorKind;
    use crate::value::test_support::{Handle, s, wire};
    use crate::value::{Ref, WireRef};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct WithHandle {
        h: Handle,
        n: u32,
    }

    #[test]
    fn scalars_take_their_natural_variant() {
        assert_eq!(to_value(&true).unwrap(), Value::Bool(true));
        assert_eq!(to_value(&-3i8).unwrap(), Value::I64(-3));
        assert_eq!(to_value(&i64::MIN).unwrap(), Value::I64(i64::MIN));
        assert_eq!(to_value(&200u8).unwrap(), Value::U64(200));
        assert_eq!(to_value(&u64::MAX).unwrap(), Value::U64(u64::MAX));
        assert_eq!(to_value(&-5i128).unwrap(), Value::I64(-5));
        assert_eq!(to_value(&5u128).unwrap(), Value::U64(5));
        assert_eq!(to_value(&1.5f32).unwrap(), Value::F64(1.5));
        assert_eq!(to_value(&'é').unwrap(), s("é"));
        assert_eq!(to_value("hi").unwrap(), s("hi"));
        assert_eq!(to_value(&()).unwrap(), Value::Unit);
        assert_eq!(to_value(&None::<u8>).unwrap(), Value::Unit);
        assert_eq!(to_value(&Some(1u8)).unwrap(), Value::U64(1));
        assert_eq!(
            to_value(&serde_bytes::ByteBuf::from(vec![1, 2])).unwrap(),
            Value::Bytes(vec![1, 2].into())
        );
    }

    #[test]
    fn byte_sequences_become_bytes() {
        assert_eq!(
            to_value(&vec![1u8, 2]).unwrap(),
            Value::Bytes(vec![1, 2].into())
        );
        assert_eq!(
            to_value(&[0u8, 255][..]).unwrap(),
            Value::Bytes(vec![0, 255].into())
        );
        let boxed: Box<[u8]> = Box::new([7, 8]);
        assert_eq!(to_value(&boxed).unwrap(), Value::Bytes(vec![7, 8].into()));
        // Inside other values too, and next to other numbers.
        #[derive(Serialize)]
        struct Blob {
            data: Vec<u8>,
            sizes: Vec<u32>,
        }
        let blob = Blob {
            data: vec![3],
            sizes: vec![3],
        };
        assert_eq!(
            to_value(&blob).unwrap(),
            Value::Map(vec![
                (s("data"), Value::Bytes(vec![3].into())),
                (s("sizes"), Value::List(vec![Value::U64(3)])),
            ])
        );
        assert_eq!(
            to_value(&vec![vec![1u8], vec![]]).unwrap(),
            Value::List(vec![Value::Bytes(vec![1].into()), Value::List(vec![])])
        );
    }

    #[test]
    fn what_is_not_all_bytes_stays_a_list() {
        assert_eq!(to_value(&Vec::<u8>::new()).unwrap(), Value::List(vec![]));
        assert_eq!(
            to_value(&Vec::<String>::new()).unwrap(),
            Value::List(vec![])
        );
        assert_eq!(
            to_value(&vec![1u16, 2]).unwrap(),
            Value::List(vec![Value::U64(1), Value::U64(2)])
        );
        // A sequence that starts with bytes and then has something else.
        let mixed: Vec<Value> = vec![Value::U64(1), Value::from("x")];
        assert_eq!(to_value(&mixed).unwrap(), Value::List(mixed));
        #[derive(Serialize)]
        #[serde(untagged)]
        enum Either {
            Byte(u8),
            Word(u32),
        }
        assert_eq!(
            to_value(&vec![Either::Byte(1), Either::Word(300)]).unwrap(),
            Value::List(vec![Value::U64(1), Value::U64(300)])
        );
        // Tuples and arrays are positional: a list.
        assert_eq!(
            to_value(&(1u8, 2u8)).unwrap(),
            Value::List(vec![Value::U64(1), Value::U64(2)])
        );
        assert_eq!(
            to_value(&[1u8, 2]).unwrap(),
            Value::List(vec![Value::U64(1), Value::U64(2)])
        );
    }

    #[test]
    fn wide_integers_out_of_range_fail() {
        assert_eq!(
            to_value(&(i128::from(i64::MAX) + 1)).unwrap(),
            Value::U64(1 << 63)
        );
        let err = to_value(&(i128::from(u64::MAX) + 1)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadArgument);
        assert!(err.message().contains("64 bits"), "{err}");
        assert!(to_value(&u128::MAX).is_err());
        assert!(to_value(&i128::MIN).is_err());
    }

    #[derive(Serialize)]
    struct Unit;

    #[derive(Serialize)]
    struct Newtype(u8);

    #[derive(Serialize)]
    struct Pair(i8, &'static str);

    #[derive(Serialize)]
    struct Fields {
        b: u8,
        a: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
    }

    #[derive(Serialize)]
    enum E {
        U,
        N(u8),
        T(u8, bool),
        S { x: u8 },
    }

    #[test]
    fn structs_and_enums_take_their_documented_shapes() {
        assert_eq!(to_value(&Unit).unwrap(), Value::Unit);
        assert_eq!(to_value(&Newtype(4)).unwrap(), Value::U64(4));
        assert_eq!(
            to_value(&Pair(-1, "x")).unwrap(),
            Value::List(vec![Value::I64(-1), s("x")])
        );
        assert_eq!(
            to_value(&Fields {
                b: 1,
                a: true,
                skipped: None
            })
            .unwrap(),
            Value::Map(vec![(s("b"), Value::U64(1)), (s("a"), Value::Bool(true))])
        );
        assert_eq!(to_value(&E::U).unwrap(), s("U"));
        assert_eq!(
            to_value(&E::N(1)).unwrap(),
            Value::Map(vec![(s("N"), Value::U64(1))])
        );
        assert_eq!(
            to_value(&E::T(1, false)).unwrap(),
            Value::Map(vec![(
                s("T"),
                Value::List(vec![Value::U64(1), Value::Bool(false)])
            )])
        );
        assert_eq!(
            to_value(&E::S { x: 2 }).unwrap(),
            Value::Map(vec![(s("S"), Value::Map(vec![(s("x"), Value::U64(2))]))])
        );
    }

    #[test]
    fn map_keys_keep_their_type() {
        let m: BTreeMap<u32, &str> = [(2, "b"), (1, "a")].into();
        assert_eq!(
            to_value(&m).unwrap(),
            Value::Map(vec![(Value::U64(1), s("a")), (Value::U64(2), s("b"))])
        );
    }

    #[test]
    fn a_value_serializes_to_itself() {
        let values = [
            Value::Unit,
            Value::F64(f64::NAN),
            Value::F64(-0.0),
            Value::Bytes(vec![0, 255].into()),
            wire(7),
            Value::List(vec![wire(7), Value::I64(-1), Value::List(vec![wire(8)])]),
            Value::Map(vec![
                (s("r"), wire(7)),
                (wire(9), Value::Map(vec![(Value::U64(1), wire(10))])),
                (
                    Value::Bytes(vec![1].into()),
                    Value::Ref(Ref::Wire(WireRef::Receiver(3))),
                ),
            ]),
        ];
        for v in values {
            assert_eq!(to_value(&v).unwrap(), v);
        }
    }

    #[test]
    fn a_ref_field_becomes_a_ref_value() {
        let typed = WithHandle {
            h: Handle(Ref::Wire(WireRef::Receiver(5))),
            n: 3,
        };
        let v = to_value(&typed).unwrap();
        assert_eq!(
            v,
            Value::Map(vec![
                (s("h"), Value::Ref(Ref::Wire(WireRef::Receiver(5)))),
                (s("n"), Value::U64(3)),
            ])
        );
        assert_eq!(crate::value::from_value::<WithHandle>(v).unwrap(), typed);
    }

    #[test]
    fn a_ref_outside_to_value_is_an_error_not_a_panic() {
        let h = Handle(Ref::Wire(WireRef::Sender(1)));
        let err = serde_json::to_string(&h).unwrap_err();
        assert!(err.to_string().contains("netref"), "{err}");
        let err = serde_json::to_string(&wire(1)).unwrap_err();
        assert!(err.to_string().contains("netref"), "{err}");
        // Nor does a token read outside `from_value` find anything.
        assert!(serde_json::from_str::<Handle>("0").is_err());
    }

    #[test]
    fn a_bogus_ref_token_is_an_error() {
        struct Forged<T>(T);
        impl<T: Serialize> Serialize for Forged<T> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_newtype_struct(REF_TOKEN, &self.0)
            }
        }
        assert!(to_value(&Forged(12345u64)).is_err());
        assert!(to_value(&Forged("not a token")).is_err());
    }

    #[test]
    fn the_stash_is_empty_after_to_value() {
        let v = Value::List(vec![wire(1), wire(2)]);
        to_value(&v).unwrap();
        // A fresh conversion starts counting tokens from zero again.
        let _scope = StashScope::enter();
        assert_eq!(crate::value::stash_put(Ref::Wire(WireRef::Sender(0))), 0);
    }
}
