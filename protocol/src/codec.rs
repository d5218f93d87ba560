//! The one place that knows the binary encoding (bincode 2, through serde).
//!
//! Everything that turns messages or values into bytes and back goes through here, so the
//! encoding can be swapped in one module. Decoding is bounded by [`DecodeLimits`].

use std::cell::RefCell;
use std::fmt;

use bincode::config::{Configuration, Limit, LittleEndian, Varint, standard};
use bytes::Bytes;
use serde::de::{DeserializeOwned, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

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

/// Decodes one message like [`decode_message`], from a shared buffer: its large bytes
/// values (see [`SHARE_MIN`]) are slices of `bytes`, not copies.
pub fn decode_message_shared(bytes: &Bytes, limits: DecodeLimits) -> Result<Message, Error> {
    decode_shared(bytes, limits)
}

/// Decodes any serde type that must fill `bytes` exactly; the large bytes values in it
/// are slices of `bytes` (which they keep alive), not copies.
pub fn decode_shared<T: DeserializeOwned>(bytes: &Bytes, limits: DecodeLimits) -> Result<T, Error> {
    let _source = Source::set(bytes);
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
    bytes: &Bytes,
    limits: DecodeLimits,
) -> Result<Message, Refused> {
    let _source = Source::set(bytes);
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
    // Measured first: one allocation of the right size, not a buffer that doubles (and
    // copies) its way up to a large bytes value.
    out.reserve(encoded_len(value)?);
    bincode::serde::encode_into_std_write(value, out, config())
        .map(drop)
        .map_err(encode_error)
}

/// One encoded message as the pieces it is written from: encoded bytes, and the large
/// bytes values it carries, which stay in their own buffers (no copy into the encoding).
#[derive(Debug, Default)]
pub struct Segments {
    parts: Vec<Bytes>,
    len: usize,
}

impl Segments {
    /// The encoded length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was encoded.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pieces, in order; written one after the other they are the encoding.
    pub fn parts(&self) -> &[Bytes] {
        &self.parts
    }

    /// The encoding in one buffer (a copy unless it is one piece).
    pub fn to_bytes(&self) -> Bytes {
        match self.parts.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => Bytes::from(many.concat()),
        }
    }
}

/// Encodes `value` after `head` (a frame's length prefix, say) as [`Segments`]: bytes
/// values of [`SHARE_MIN`] bytes or more are not copied but referenced (a `Bytes` clone).
pub fn encode_segments<T: Serialize + ?Sized>(head: &[u8], value: &T) -> Result<Segments, Error> {
    let _lending = Lending::start();
    let mut writer = SegmentWriter {
        current: head.to_vec(),
        out: Segments::default(),
    };
    bincode::serde::encode_into_writer(value, &mut writer, config()).map_err(encode_error)?;
    writer.cut();
    Ok(writer.out)
}

/// Bytes values at least this long are shared rather than copied: decoded as a slice of
/// a shared input ([`decode_shared`]), encoded by reference ([`encode_segments`]).
pub const SHARE_MIN: usize = 64 * 1024;

thread_local! {
    /// The input of the [`decode_shared`] running on this thread.
    static SOURCE: RefCell<Option<Bytes>> = const { RefCell::new(None) };
    /// While [`encode_segments`] runs on this thread: the large bytes values it met.
    static LENT: RefCell<Option<Vec<Bytes>>> = const { RefCell::new(None) };
}

/// Holds [`SOURCE`] for one decode, restoring what was there when dropped.
struct Source(Option<Bytes>);

impl Source {
    fn set(bytes: &Bytes) -> Source {
        Source(SOURCE.with(|s| s.replace(Some(bytes.clone()))))
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        let previous = self.0.take();
        SOURCE.with(|s| *s.borrow_mut() = previous);
    }
}

/// Holds [`LENT`] open for one encode.
struct Lending(Option<Vec<Bytes>>);

impl Lending {
    fn start() -> Lending {
        Lending(LENT.with(|l| l.replace(Some(Vec::new()))))
    }
}

impl Drop for Lending {
    fn drop(&mut self) {
        let previous = self.0.take();
        LENT.with(|l| *l.borrow_mut() = previous);
    }
}

/// Called by `Value`'s serializer just before it writes bytes `b`: under
/// [`encode_segments`], a large one is noted so that the writer references it.
pub(crate) fn lend_bytes(b: &Bytes) {
    if b.len() >= SHARE_MIN {
        LENT.with(|l| {
            if let Some(lent) = l.borrow_mut().as_mut() {
                lent.push(b.clone());
            }
        });
    }
}

/// `v` as `Bytes`: a slice of the shared input when `v` lies in it, is large, and is at
/// least a quarter of it (so a small value never keeps a much larger frame alive);
/// otherwise a copy.
fn share_or_copy(v: &[u8]) -> Bytes {
    if v.len() >= SHARE_MIN {
        let shared = SOURCE.with(|s| {
            s.borrow().as_ref().and_then(|source| {
                let start = source.as_ptr().addr();
                let inside = v.as_ptr().addr() >= start
                    && v.as_ptr().addr() + v.len() <= start + source.len();
                (inside && v.len().saturating_mul(4) >= source.len()).then(|| source.slice_ref(v))
            })
        });
        if let Some(shared) = shared {
            return shared;
        }
    }
    Bytes::copy_from_slice(v)
}

/// bincode's writer for [`encode_segments`].
struct SegmentWriter {
    current: Vec<u8>,
    out: Segments,
}

impl SegmentWriter {
    /// Ends the current run of encoded bytes as a piece.
    fn cut(&mut self) {
        if !self.current.is_empty() {
            let run = std::mem::take(&mut self.current);
            self.out.len += run.len();
            self.out.parts.push(Bytes::from(run));
        }
    }
}

impl bincode::enc::write::Writer for SegmentWriter {
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        if bytes.len() >= SHARE_MIN {
            // The bytes of a value noted by `lend_bytes`: referenced, not copied.
            let lent = LENT.with(|l| {
                let mut l = l.borrow_mut();
                let lent = l.as_mut()?;
                let i = lent
                    .iter()
                    .position(|b| b.as_ptr() == bytes.as_ptr() && b.len() == bytes.len())?;
                Some(lent.swap_remove(i))
            });
            if let Some(lent) = lent {
                self.cut();
                self.out.len += lent.len();
                self.out.parts.push(lent);
                return Ok(());
            }
        }
        self.current.extend_from_slice(bytes);
        Ok(())
    }
}

/// A bytes value read from the input without trusting its claimed length (like
/// [`bounded::OwnedBytes`]): a slice of a shared input when it is large, a copy otherwise.
pub(crate) struct SharedBytes(pub(crate) Bytes);

impl<'de> Deserialize<'de> for SharedBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SharedBytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_borrowed_bytes<E: serde::de::Error>(
                self,
                v: &'de [u8],
            ) -> Result<SharedBytes, E> {
                Ok(SharedBytes(share_or_copy(v)))
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<SharedBytes, E> {
                Ok(SharedBytes(Bytes::copy_from_slice(v)))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<SharedBytes, E> {
                Ok(SharedBytes(v.into()))
            }
            // Formats without a bytes type (JSON) write a list of numbers.
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SharedBytes, A::Error> {
                collect_cautiously(seq.size_hint(), || seq.next_element())
                    .map(|v: Vec<u8>| SharedBytes(v.into()))
            }
        }
        d.deserialize_bytes(V)
    }
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
            vec![Value::Bytes(vec![1; 70_000].into()), Value::from("x")],
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
                    Value::Bytes(vec![1, 2].into()),
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
        let call = Bytes::from(call);
        match decode_message_or_refuse(&call, limits) {
            Err(Refused::OverLimit(Head::Call(9), LimitBreach::Depth { limit: 2 })) => {}
            other => panic!("{other:?}"),
        }
        // Cut short, the same call is garbage, not a value over a limit.
        match decode_message_or_refuse(&call.slice(..call.len() - 3), DecodeLimits::default()) {
            Err(Refused::Malformed(e)) => assert_eq!(e.kind(), ErrorKind::Protocol),
            other => panic!("{other:?}"),
        }
    }

    fn call_with(args: Vec<Value>) -> Message {
        Message::Call(Call {
            question: 5,
            target: Target::Export(0),
            method: "len".into(),
            args,
            deadline_ms: Some(1000),
        })
    }

    fn bytes_arg(msg: &Message) -> &Bytes {
        match msg {
            Message::Call(Call { args, .. }) => match args.as_slice() {
                [Value::Bytes(b), ..] => b,
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn large_bytes_decode_as_a_slice_of_a_shared_frame() {
        let data: Vec<u8> = (0..SHARE_MIN * 4)
            .map(|i| u8::try_from(i % 253).unwrap())
            .collect();
        let frame = Bytes::from(
            encode_message(&call_with(vec![Value::Bytes(data.clone().into())])).unwrap(),
        );
        let msg = decode_message_shared(&frame, DecodeLimits::default()).unwrap();
        let b = bytes_arg(&msg);
        assert_eq!(b[..], data[..], "exact bytes");
        let inside = frame.as_ptr().addr() <= b.as_ptr().addr()
            && b.as_ptr().addr() + b.len() <= frame.as_ptr().addr() + frame.len();
        assert!(inside, "a slice of the frame, not a copy");
        // From a plain slice, or when small, it is a copy.
        let msg = decode_message(&frame, DecodeLimits::default()).unwrap();
        assert_eq!(bytes_arg(&msg)[..], data[..]);
        let small = Bytes::from(
            encode_message(&call_with(vec![Value::Bytes(vec![7; 100].into())])).unwrap(),
        );
        let msg = decode_message_shared(&small, DecodeLimits::default()).unwrap();
        let b = bytes_arg(&msg);
        assert!(
            b.as_ptr().addr() < small.as_ptr().addr()
                || b.as_ptr().addr() >= small.as_ptr().addr() + small.len()
        );
    }

    #[test]
    fn a_small_bytes_value_never_keeps_a_large_frame_alive() {
        // 64 KiB of bytes beside 1 MiB of string: copied, so the frame can be freed.
        let args = vec![
            Value::Bytes(vec![1; SHARE_MIN].into()),
            Value::String("x".repeat(1 << 20)),
        ];
        let frame = Bytes::from(encode_message(&call_with(args)).unwrap());
        let msg = decode_message_shared(&frame, DecodeLimits::default()).unwrap();
        let b = bytes_arg(&msg);
        let start = frame.as_ptr().addr();
        assert!(b.as_ptr().addr() < start || b.as_ptr().addr() >= start + frame.len());
    }

    #[test]
    fn a_bytes_value_claiming_more_than_the_frame_is_an_error_not_an_allocation() {
        // Tag 6 (Bytes), then a length claiming 1 TiB (varint: 253 + u64), then 3 bytes.
        let mut lying = vec![6u8, 253];
        lying.extend_from_slice(&(1u64 << 40).to_le_bytes());
        lying.extend_from_slice(&[1, 2, 3]);
        let shared = Bytes::from(lying.clone());
        for err in [
            decode_value(&lying, DecodeLimits::default()).unwrap_err(),
            decode_shared::<Value>(&shared, DecodeLimits::default()).unwrap_err(),
        ] {
            assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
        }
        // A large value cut short, shared or not.
        let whole = encode_value(&Value::Bytes(vec![9; SHARE_MIN * 2].into())).unwrap();
        let cut = Bytes::from(whole[..whole.len() - 1].to_vec());
        let err = decode_shared::<Value>(&cut, DecodeLimits::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
        assert!(err.message().contains("malformed"), "{err}");
    }

    #[test]
    fn segments_reference_large_bytes_and_concatenate_to_the_encoding() {
        let big: Bytes = vec![3u8; SHARE_MIN * 2].into();
        let msg = call_with(vec![
            Value::Bytes(big.clone()),
            Value::Bytes(vec![4; 10].into()),
            Value::List(vec![Value::Bytes(vec![5; SHARE_MIN].into())]),
        ]);
        let segments = encode_segments(b"head", &msg).unwrap();
        let mut expected = b"head".to_vec();
        expected.extend(encode_message(&msg).unwrap());
        assert_eq!(segments.len(), expected.len());
        assert_eq!(segments.to_bytes()[..], expected[..]);
        assert!(
            segments
                .parts()
                .iter()
                .any(|p| p.as_ptr() == big.as_ptr() && p.len() == big.len()),
            "the large value is written from its own buffer"
        );
        assert_eq!(
            segments.parts().len(),
            5,
            "head+start, big, middle, 64 KiB, end"
        );
        // Outside `encode_segments` nothing is lent.
        assert_eq!(encode_message(&msg).unwrap(), expected[4..]);
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

    use super::{SharedBytes, collect_cautiously};

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
            // The same reading as a bytes value's, made a `Vec` (without a copy when it
            // was copied from the input already).
            SharedBytes::deserialize(d).map(|b| OwnedBytes(b.0.into()))
        }
    }
}
