//! Typed values to [`Value`]: the serializer behind [`to_value`].

use std::fmt;

use serde::Serialize;
use serde::ser::{self, Impossible};

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
        Ok(Value::Bytes(v.to_vec()))
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
        // the token through `TokenSerializer` rather than `self` so that only a bare
        // integer is taken for one.
        let token = value.serialize(TokenSerializer)?;
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
        Ok(SerializeList::new(len))
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

/// Builds a [`Value::List`] (sequences, tuples, tuple structs).
#[derive(Debug)]
pub(crate) struct SerializeList {
    items: Vec<Value>,
}

impl SerializeList {
    fn new(len: Option<usize>) -> Self {
        // The length comes from a `Serialize` impl, which may be wrong: reserve only a
        // bounded amount up front.
        SerializeList {
            items: Vec::with_capacity(cautious_capacity(len)),
        }
    }

    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ConvertError> {
        self.items.push(value.serialize(ValueSerializer)?);
        Ok(())
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
                Ok(Value::List(self.items))
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

/// Accepts only an unsigned integer: the content of a [`REF_TOKEN`] newtype struct.
struct TokenSerializer;

impl TokenSerializer {
    fn not_a_token() -> ConvertError {
        ConvertError(format!(
            "the content of a `{REF_TOKEN}` newtype must be a netref token (u64)"
        ))
    }
}

/// Every method but the integer ones fails; spelled out because serde has no default.
macro_rules! reject {
    ($($method:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        $(fn $method(self, $($arg: $ty),*) -> Result<$ret, ConvertError> {
            $(let _ = $arg;)*
            Err(Self::not_a_token())
        })*
    };
}

impl ser::Serializer for TokenSerializer {
    type Ok = u64;
    type Error = ConvertError;

    type SerializeSeq = Impossible<u64, ConvertError>;
    type SerializeTuple = Impossible<u64, ConvertError>;
    type SerializeTupleStruct = Impossible<u64, ConvertError>;
    type SerializeTupleVariant = Impossible<u64, ConvertError>;
    type SerializeMap = Impossible<u64, ConvertError>;
    type SerializeStruct = Impossible<u64, ConvertError>;
    type SerializeStructVariant = Impossible<u64, ConvertError>;

    fn serialize_u64(self, v: u64) -> Result<u64, ConvertError> {
        Ok(v)
    }

    fn serialize_u32(self, v: u32) -> Result<u64, ConvertError> {
        Ok(v.into())
    }

    reject! {
        serialize_bool(v: bool) -> u64;
        serialize_i8(v: i8) -> u64;
        serialize_i16(v: i16) -> u64;
        serialize_i32(v: i32) -> u64;
        serialize_i64(v: i64) -> u64;
        serialize_u8(v: u8) -> u64;
        serialize_u16(v: u16) -> u64;
        serialize_f32(v: f32) -> u64;
        serialize_f64(v: f64) -> u64;
        serialize_char(v: char) -> u64;
        serialize_str(v: &str) -> u64;
        serialize_bytes(v: &[u8]) -> u64;
        serialize_none() -> u64;
        serialize_unit() -> u64;
        serialize_unit_struct(name: &'static str) -> u64;
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str) -> u64;
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

    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<u64, ConvertError> {
        Err(Self::not_a_token())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _value: &T,
    ) -> Result<u64, ConvertError> {
        Err(Self::not_a_token())
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<u64, ConvertError> {
        Err(Self::not_a_token())
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
            Value::Bytes(vec![1, 2])
        );
        assert_eq!(
            to_value(&vec![1u8, 2]).unwrap(),
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
            Value::Bytes(vec![0, 255]),
            wire(7),
            Value::List(vec![wire(7), Value::I64(-1), Value::List(vec![wire(8)])]),
            Value::Map(vec![
                (s("r"), wire(7)),
                (wire(9), Value::Map(vec![(Value::U64(1), wire(10))])),
                (
                    Value::Bytes(vec![1]),
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
