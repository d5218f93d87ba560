//! The one place that knows the binary encoding (bincode 2, through serde).
//!
//! Everything that turns messages or values into bytes and back goes through here, so the
//! encoding can be swapped in one module. Decoding is bounded by [`DecodeLimits`].

use bincode::config::{Configuration, Limit, LittleEndian, Varint, standard};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind};
use crate::message::Message;
use crate::value::{DecodeLimits, LimitBreach, Value, collect_cautiously, with_decode_limits};

/// Most bytes one decode may claim for its strings, buffers and numbers. bincode allocates a
/// string or byte buffer at its claimed length before reading it; without a bound a few
/// bytes claiming a terabyte abort the process.
const DECODE_CLAIM_LIMIT: usize = 1 << 30;

fn config() -> Configuration<LittleEndian, Varint, Limit<DECODE_CLAIM_LIMIT>> {
    standard().with_limit::<DECODE_CLAIM_LIMIT>()
}

/// Encodes `msg`, appending to `out`.
pub fn encode_message_into(msg: &Message, out: &mut Vec<u8>) -> Result<(), Error> {
    encode_into(msg, out)
}

/// Encodes `msg` into a new buffer.
pub fn encode_message(msg: &Message) -> Result<Vec<u8>, Error> {
    encode(msg)
}

/// Decodes one message that must fill `bytes` exactly.
pub fn decode_message(bytes: &[u8], limits: DecodeLimits) -> Result<Message, Error> {
    decode(bytes, limits)
}

/// Encodes a value on its own (the guest ABI's buffers).
pub fn encode_value(value: &Value) -> Result<Vec<u8>, Error> {
    encode(value)
}

/// Decodes a value that must fill `bytes` exactly.
pub fn decode_value(bytes: &[u8], limits: DecodeLimits) -> Result<Value, Error> {
    decode(bytes, limits)
}

/// Encodes any serde type with the wire encoding (handshake records, ABI headers).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    encode_into(value, &mut out)?;
    Ok(out)
}

/// The number of bytes [`encode`] writes for `value`, found without writing them.
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> Result<usize, Error> {
    let mut size = bincode::enc::write::SizeWriter::default();
    bincode::serde::encode_into_writer(value, &mut size, config()).map_err(encode_error)?;
    Ok(size.bytes_written)
}

/// Encodes `value` into `out`, which must be exactly [`encoded_len`] bytes long: a buffer
/// that lives elsewhere (a guest's memory) is written in place, with no copy in between.
pub fn encode_into_slice<T: Serialize + ?Sized>(value: &T, out: &mut [u8]) -> Result<(), Error> {
    let written =
        bincode::serde::encode_into_slice(value, &mut *out, config()).map_err(encode_error)?;
    if written == out.len() {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::BadArgument,
            format!(
                "cannot encode: {written} bytes written into a buffer of {}",
                out.len()
            ),
        ))
    }
}

/// Decodes any serde type that must fill `bytes` exactly.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], limits: DecodeLimits) -> Result<T, Error> {
    decode_exact(bytes, limits).map_err(|(e, _)| e)
}

#[cfg(feature = "io")]
/// The start of a call or a return: enough to answer its question when the rest cannot be
/// taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Head {
    /// A [`Message::Call`] asking `question`.
    Call(u64),
    /// A [`Message::Return`] answering `question`.
    Return(u64),
}

#[cfg(feature = "io")]
/// Why a message from a peer was not taken.
#[derive(Debug)]
pub(crate) enum Refused {
    /// It is a call or a return with a value that breaks a limit: only its question fails.
    OverLimit(Head, LimitBreach),
    /// It cannot be decoded at all.
    Malformed(Error),
}

#[cfg(feature = "io")]
/// Decodes one message like [`decode_message`]; a call or return that breaks a value limit
/// is told apart from garbage, with its question.
pub(crate) fn decode_message_or_refuse(
    bytes: &[u8],
    limits: DecodeLimits,
) -> Result<Message, Refused> {
    decode_exact(bytes, limits).map_err(|(e, breach)| match (breach, decode_head(bytes)) {
        (Some(breach), Some(head)) => Refused::OverLimit(head, breach),
        _ => Refused::Malformed(e),
    })
}

#[cfg(feature = "io")]
/// Reads the variant and question of a call or return from the first bytes of its
/// encoding: bincode writes an enum's variant index, then the variant's fields in order,
/// and both `Call` and `Return` start with their question.
pub(crate) fn decode_head(bytes: &[u8]) -> Option<Head> {
    let ((variant, question), _) =
        bincode::serde::borrow_decode_from_slice::<(u32, u64), _>(bytes, config()).ok()?;
    match variant {
        0 => Some(Head::Call(question)),
        1 => Some(Head::Return(question)),
        _ => None,
    }
}

fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), Error> {
    bincode::serde::encode_into_std_write(value, out, config())
        .map(drop)
        .map_err(encode_error)
}

fn encode_error(e: bincode::error::EncodeError) -> Error {
    Error::new(ErrorKind::BadArgument, format!("cannot encode: {e}"))
}

/// Decodes a `T` that must fill `bytes`; on failure also says which limit stopped it, if
/// one did.
fn decode_exact<T: DeserializeOwned>(
    bytes: &[u8],
    limits: DecodeLimits,
) -> Result<T, (Error, Option<LimitBreach>)> {
    let (decoded, breach) = with_decode_limits(limits, || {
        bincode::serde::borrow_decode_from_slice::<T, _>(bytes, config())
    });
    let (value, used) =
        decoded.map_err(|e| (Error::protocol(format!("malformed message: {e}")), breach))?;
    if used != bytes.len() {
        return Err((
            Error::protocol(format!(
                "malformed message: {} trailing bytes after the end",
                bytes.len() - used
            )),
            None,
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Call, Return, Target};
    use crate::value::{Ref, WireRef};

    #[test]
    fn encoding_in_place_matches_encode() {
        let value = (
            7u64,
            "m",
            vec![Value::Bytes(vec![1; 70_000]), Value::from("x")],
        );
        let bytes = encode(&value).unwrap();
        assert_eq!(encoded_len(&value).unwrap(), bytes.len());
        let mut out = vec![0u8; bytes.len()];
        encode_into_slice(&value, &mut out).unwrap();
        assert_eq!(out, bytes);
        let mut short = vec![0u8; bytes.len() - 1];
        assert!(encode_into_slice(&value, &mut short).is_err());
        let mut long = vec![0u8; bytes.len() + 1];
        assert!(encode_into_slice(&value, &mut long).is_err());
    }

    #[test]
    fn message_round_trip() {
        let msg = Message::Call(Call {
            question: 7,
            target: Target::Export(3),
            method: "add".into(),
            args: vec![
                Value::U64(2),
                Value::Map(vec![(
                    Value::Ref(Ref::Wire(WireRef::Receiver(1))),
                    Value::Bytes(vec![1, 2]),
                )]),
            ],
            deadline_ms: Some(30_000),
        });
        let bytes = encode_message(&msg).unwrap();
        assert_eq!(
            decode_message(&bytes, DecodeLimits::default()).unwrap(),
            msg
        );
        let ret = Message::Return(Return {
            question: 7,
            result: Err(Error::new(ErrorKind::Denied, "no").with_trace("t")),
        });
        let bytes = encode_message(&ret).unwrap();
        assert_eq!(
            decode_message(&bytes, DecodeLimits::default()).unwrap(),
            ret
        );
    }

    #[test]
    fn trailing_and_truncated_bytes_are_errors() {
        let mut bytes = encode_message(&Message::Ping { nonce: 1 }).unwrap();
        bytes.push(0);
        let err = decode_message(&bytes, DecodeLimits::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol);
        assert!(err.message().contains("trailing"), "{err}");

        let bytes = encode_value(&Value::String("hello".into())).unwrap();
        let err = decode_value(&bytes[..bytes.len() - 1], DecodeLimits::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol);
    }

    #[test]
    fn nesting_bomb_is_refused_without_overflowing_the_stack() {
        // 100 000 nested single-element lists, written by hand: tag 7 (List), length 1.
        let mut bytes = Vec::new();
        for _ in 0..100_000 {
            bytes.extend_from_slice(&[7, 1]);
        }
        bytes.push(0);
        let err = decode_value(&bytes, DecodeLimits::default()).unwrap_err();
        assert!(err.message().contains("deeper than 128"), "{err}");
    }

    #[test]
    fn lying_collection_length_is_refused_cheaply() {
        // A list claiming u64::MAX/2 elements followed by nothing.
        let mut bytes = vec![7u8, 253];
        bytes.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
        let err = decode_value(&bytes, DecodeLimits::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol);
        let limits = DecodeLimits {
            max_values: 10,
            ..DecodeLimits::default()
        };
        let many = encode_value(&Value::List(vec![Value::Unit; 100])).unwrap();
        let err = decode_value(&many, limits).unwrap_err();
        assert!(err.message().contains("more than 10 values"), "{err}");
    }

    #[cfg(feature = "io")]
    #[test]
    fn the_head_of_a_call_or_return_names_its_question() {
        let call = encode_message(&Message::Call(Call {
            question: 1 << 40,
            target: Target::Export(3),
            method: "m".into(),
            args: vec![],
            deadline_ms: None,
        }))
        .unwrap();
        assert_eq!(decode_head(&call), Some(Head::Call(1 << 40)));
        let ret = encode_message(&Message::Return(Return {
            question: 7,
            result: Ok(Value::Unit),
        }))
        .unwrap();
        assert_eq!(decode_head(&ret[..3]), Some(Head::Return(7)));
        let ping = encode_message(&Message::Ping { nonce: 7 }).unwrap();
        assert_eq!(decode_head(&ping), None);
        assert_eq!(decode_head(&[0xff; 16]), None);
    }

    #[cfg(feature = "io")]
    #[test]
    fn a_value_over_a_limit_is_told_apart_from_garbage() {
        let limits = DecodeLimits {
            max_depth: 2,
            ..DecodeLimits::default()
        };
        let deep = Value::List(vec![Value::List(vec![Value::List(vec![])])]);
        let call = encode_message(&Message::Call(Call {
            question: 9,
            target: Target::Export(0),
            method: "m".into(),
            args: vec![deep],
            deadline_ms: None,
        }))
        .unwrap();
        match decode_message_or_refuse(&call, limits) {
            Err(Refused::OverLimit(Head::Call(9), LimitBreach::Depth { limit: 2 })) => {}
            other => panic!("{other:?}"),
        }
        // Cut short, the same call is garbage, not a value over a limit.
        match decode_message_or_refuse(&call[..call.len() - 3], DecodeLimits::default()) {
            Err(Refused::Malformed(e)) => assert_eq!(e.kind(), ErrorKind::Protocol),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_error_kind_decodes_as_failed() {
        let kind: ErrorKind = decode(&encode(&200u8).unwrap(), DecodeLimits::default()).unwrap();
        assert_eq!(kind, ErrorKind::Failed);
    }
}

/// Deserializers of strings and byte buffers that never trust a claimed length.
///
/// serde's `String` and `ByteBuf` ask for owned data (`deserialize_string`,
/// `deserialize_byte_buf`), which bincode serves by allocating the claimed length before
/// reading a byte: a 10-byte message claiming a 1 TiB string aborts the process. Asking
/// for borrowed data instead (`deserialize_str`, `deserialize_bytes`) makes bincode check
/// the claim against the input first; the copy is then made from the input.
pub mod bounded {
    use std::fmt;

    use serde::de::{Deserializer, SeqAccess, Visitor};
    use serde::{Deserialize, de};

    use super::collect_cautiously;

    /// A `String` field (`#[serde(deserialize_with = "…::string")]`).
    pub(crate) fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        OwnedString::deserialize(d).map(|s| s.0)
    }

    /// A `Vec<String>` field.
    pub(crate) fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vec<String>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
                collect_cautiously(seq.size_hint(), || {
                    Ok(seq.next_element::<OwnedString>()?.map(|s| s.0))
                })
            }
        }
        d.deserialize_seq(V)
    }

    /// An `Option<String>` field.
    pub(crate) fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Option::<OwnedString>::deserialize(d).map(|s| s.map(|s| s.0))
    }

    /// An `Option<Vec<u8>>` field (the handshake's credentials, so only with `io`).
    #[cfg(feature = "io")]
    pub(crate) fn opt_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<OwnedBytes>::deserialize(d).map(|b| b.map(|b| b.0))
    }

    /// A string read as borrowed data, then copied.
    #[derive(Debug)]
    pub struct OwnedString(pub String);

    impl<'de> Deserialize<'de> for OwnedString {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = OwnedString;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a string")
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<OwnedString, E> {
                    Ok(OwnedString(v.to_owned()))
                }
                fn visit_string<E: de::Error>(self, v: String) -> Result<OwnedString, E> {
                    Ok(OwnedString(v))
                }
            }
            d.deserialize_str(V)
        }
    }

    /// A byte buffer read as borrowed data, then copied.
    #[derive(Debug)]
    pub struct OwnedBytes(pub Vec<u8>);

    impl<'de> Deserialize<'de> for OwnedBytes {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = OwnedBytes;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<OwnedBytes, E> {
                    Ok(OwnedBytes(v.to_vec()))
                }
                fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<OwnedBytes, E> {
                    Ok(OwnedBytes(v))
                }
                // Formats without a bytes type (JSON) write a list of numbers.
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OwnedBytes, A::Error> {
                    collect_cautiously(seq.size_hint(), || seq.next_element()).map(OwnedBytes)
                }
            }
            d.deserialize_bytes(V)
        }
    }
}
