//! Garbage and mutated bytes, as a broken or hostile peer would send them: decoding never
//! panics, and whatever decodes encodes again to the bytes it came from.
//!
//! This is the stable-Rust twin of the fuzz targets `fuzz/fuzz_targets/frame_decode.rs`
//! and `message_decode.rs`, which include this file to call [`for_each_frame`],
//! [`check_frames`] and [`check_messages`]: the fuzzers and CI run the same checks.
#![allow(dead_code)] // each fuzz target uses one of the checks

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use rwc_protocol::codec::{self, bounded::OwnedString};
use rwc_protocol::frame;
use rwc_protocol::message::{Call, Message, Return, Target};
use rwc_protocol::{DecodeLimits, Error, ErrorKind, Hello, Value, WireRef};
use tokio::io::{AsyncRead, ReadBuf};

#[path = "common/rng.rs"]
mod rng;
use rng::XorShift;
#[path = "common/tally.rs"]
mod tally;
use tally::tally;

/// Largest frame the frame check accepts; small, so that random prefixes often fit.
pub const MAX_FRAME: usize = 4096;

/// Tight limits, so that random input reaches the limit checks too.
pub const SMALL_LIMITS: DecodeLimits = DecodeLimits {
    max_depth: 4,
    max_collection_len: 8,
    max_values: 32,
};

#[test]
fn random_bytes_never_panic_and_what_decodes_round_trips() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut total = Outcome::default();
    for i in 0..8_000 {
        let len = rng.below(96);
        // Two inputs in three are drawn from the small numbers that tags, lengths and
        // varint bytes mostly are, so that decoding gets past the first byte; one of those
        // comes in a well-formed frame, so that the frame reader hands it on.
        let small = i % 3 != 1;
        let data: Vec<u8> = (0..len)
            .map(|_| if small { rng.byte() % 12 } else { rng.byte() })
            .collect();
        if i % 3 == 2 {
            total += check(&frame::frame(&data, MAX_FRAME).expect("96 bytes fit a frame"));
        } else {
            total += check(&data);
        }
    }
    total.at_least(21, 41, 2_001, "random inputs");
}

#[test]
fn mutated_messages_never_panic_and_what_decodes_round_trips() {
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let samples: Vec<Vec<u8>> = encoded_messages()
        .into_iter()
        .chain(
            sample_values()
                .iter()
                .map(|v| codec::encode_value(v).expect("sample values encode")),
        )
        .collect();
    let mut total = Outcome::default();
    for sample in &samples {
        total += check(sample);
    }
    for _ in 0..10_000 {
        let sample = &samples[rng.below(samples.len())];
        total += check(&mutate(&mut rng, sample));
    }
    total.at_least(501, 501, 0, "mutated inputs");
    assert!(
        total.normalized > 0,
        "no mutation produced a long-form varint or an unknown error kind: {total:?}"
    );
}

#[test]
fn mutated_frame_streams_never_panic_and_what_reads_round_trips() {
    let mut rng = XorShift(0xd1b5_4a32_d192_ed03);
    let payloads = encoded_messages();
    let mut total = Outcome::default();
    for _ in 0..2_000 {
        // A stream of a few frames, then damaged somewhere.
        let mut stream = Vec::new();
        for _ in 0..=rng.below(3) {
            let payload = &payloads[rng.below(payloads.len())];
            stream.extend(frame::frame(payload, MAX_FRAME).expect("sample frames fit"));
        }
        total += check(&mutate(&mut rng, &stream));
    }
    total.at_least(501, 0, 1_001, "mutated streams");
}

#[test]
fn lengths_claimed_beyond_the_input_are_errors_not_allocations() {
    // A string or byte buffer whose length prefix claims more than the input holds. The
    // last one was found by the fuzzer: a handshake `Hello` with a feature name of 4 GB,
    // which an accepting node decodes before it authenticates anyone.
    let tib = [253, 0, 0, 0, 0, 0, 1, 0, 0]; // varint: a u64 follows, 2^40
    let limits = DecodeLimits::default();
    let value = |b: &[u8]| codec::decode_value(b, limits).err();
    let message = |b: &[u8]| codec::decode_message(b, limits).err();
    let hello = |b: &[u8]| codec::decode::<Result<Hello, Error>>(b, limits).err();
    type Decode<'a> = &'a dyn Fn(&[u8]) -> Option<Error>;
    let cases: Vec<(&str, Vec<u8>, Decode<'_>)> = vec![
        ("value: bytes of 1 TiB", [&[6][..], &tib].concat(), &value),
        (
            "value: string of 2^63 bytes",
            vec![5, 253, 0, 0, 0, 0, 0, 0, 0, 0x80],
            &value,
        ),
        (
            "call whose method name is 1 TiB",
            [&[0, 1, 0, 0][..], &tib].concat(),
            &message,
        ),
        (
            "handshake: feature name of 1 TiB",
            [&[0, 1, 1][..], &tib].concat(),
            &hello,
        ),
        (
            "handshake: feature name of 4 GB",
            vec![0, 32, 7, 252, 230, 77, 0, 254],
            &hello,
        ),
    ];
    for (what, bytes, decode) in cases {
        let err = decode(&bytes).unwrap_or_else(|| panic!("{what}: decoded"));
        assert_eq!(err.kind(), ErrorKind::Protocol, "{what}: {err}");
        check(&bytes);
    }
}

#[test]
fn long_varints_and_unknown_error_kinds_are_the_only_second_encodings() {
    // `Value::U64(5)` with its 5 written as a u16 (marker 251): it decodes, and encodes
    // back in the short form. So does an error whose kind a newer peer added.
    let long = [3, 251, 5, 0];
    assert_eq!(
        codec::decode_value(&long, DecodeLimits::default()).unwrap(),
        Value::U64(5)
    );
    assert_eq!(Reencoded::of(&long, &[3, 5]), Reencoded::Normalized);
    let err = codec::encode(&Err::<Value, _>(Error::failed("x"))).unwrap();
    let mut newer = err.clone();
    newer[1] = 200; // the kind byte, after the `Err` tag
    assert_eq!(Reencoded::of(&newer, &err), Reencoded::Normalized);
    // Anything else that differs is a codec bug.
    assert_eq!(Reencoded::of(&[3, 6], &[3, 5]), Reencoded::Different);
    assert_eq!(
        Reencoded::of(&[3, 251, 5, 0], &[3, 6]),
        Reencoded::Different
    );
    assert_eq!(Reencoded::of(&[3, 5], &[3, 5]), Reencoded::Same);
}

tally! {
    /// What one input decoded as.
    pub struct Outcome {
        /// Successful message decodes (under either limits, whole input or frame payload).
        messages,
        /// Successful value decodes.
        values,
        /// Frames read.
        frames,
        /// Decodes whose input was not in the shortest form (long varints, unknown error
        /// kinds), so that re-encoding it gave other, canonical bytes.
        normalized,
    }
}

impl Outcome {
    /// Asserts that at least this many of the inputs decoded as messages, as values and
    /// read as frames: otherwise a test would pass without exercising the round trip.
    fn at_least(self, messages: usize, values: usize, frames: usize, inputs: &str) {
        assert!(
            self.messages >= messages && self.values >= values && self.frames >= frames,
            "too few {inputs} decoded: {self:?}, wanted at least {messages} messages, \
             {values} values, {frames} frames"
        );
    }
}

/// Both checks: [`check_frames`] and [`check_messages`].
pub fn check(data: &[u8]) -> Outcome {
    let mut outcome = check_frames(data);
    outcome += check_messages(data);
    outcome
}

/// Reads `data` as a stream of frames ([`for_each_frame`] with [`MAX_FRAME`]); each
/// payload goes through [`check_messages`].
pub fn check_frames(data: &[u8]) -> Outcome {
    let mut outcome = Outcome::default();
    for_each_frame(data, MAX_FRAME, |payload| {
        outcome.frames += 1;
        outcome += check_messages(&payload);
    });
    outcome
}

/// Reads `data` as a stream of frames of at most `max_frame` bytes, delivered in small
/// pieces and with reads that must wait, as a socket delivers them, up to its end or the
/// first error; hands each payload to `f`. Panics if reading panics, waits on bytes that
/// are there, or reads a frame that does not write back to the bytes it was read from.
pub fn for_each_frame(data: &[u8], max_frame: usize, mut f: impl FnMut(Vec<u8>)) {
    // The piece sizes come from the input, so that a failure reproduces from it alone.
    let mut stream = Trickle {
        data,
        at: 0,
        pieces: data.first().copied().unwrap_or(0),
        wait: false,
    };
    loop {
        let before = stream.at;
        match read_frame(&mut stream, max_frame) {
            Ok(Some(payload)) => {
                assert!(
                    payload.len() <= max_frame,
                    "read a frame of {} bytes over the limit",
                    payload.len()
                );
                let again = frame::frame(&payload, max_frame)
                    .expect("a frame that was read can be written");
                assert_eq!(
                    again,
                    data[before..stream.at],
                    "a frame read back differs from its bytes"
                );
                f(payload);
            }
            Ok(None) => {
                assert_eq!(
                    before,
                    data.len(),
                    "clean end of stream reported with {} bytes left",
                    data.len() - before
                );
                return;
            }
            Err(e) => {
                assert!(
                    matches!(e.kind(), ErrorKind::Protocol | ErrorKind::Disconnected),
                    "unexpected error kind reading a frame: {e}"
                );
                return;
            }
        }
    }
}

/// Decodes `bytes` every way a payload from a peer or a guest is decoded: as a message, a
/// value, a handshake answer, a guest's result and a guest's `rwc.call` request, under the
/// default limits and tight ones. Whatever decodes must encode back to `bytes` (or, for an
/// input in a longer form than needed, to its shortest form: see [`Reencoded`]), and decode
/// again to the same thing. Panics if decoding panics or if that does not hold.
pub fn check_messages(bytes: &[u8]) -> Outcome {
    let mut outcome = Outcome::default();
    for limits in [DecodeLimits::default(), SMALL_LIMITS] {
        if let Ok(msg) = codec::decode_message(bytes, limits) {
            outcome.messages += 1;
            let again = codec::encode_message(&msg).expect("a decoded message encodes");
            outcome += compare(bytes, &again, &msg);
            round_trip(&msg, limits, codec::encode_message, codec::decode_message);
        }
        if let Ok(value) = codec::decode_value(bytes, limits) {
            outcome.values += 1;
            let again = codec::encode_value(&value).expect("a decoded value encodes");
            outcome += compare(bytes, &again, &value);
            round_trip(&value, limits, codec::encode_value, codec::decode_value);
        }
        if let Ok(answer) = codec::decode::<Result<Hello, Error>>(bytes, limits) {
            outcome += compare(bytes, &codec::encode(&answer).expect("encodes"), &answer);
            round_trip(&answer, limits, codec::encode, codec::decode);
        }
        // What the node reads from a guest (docs/abi.md): an export's result, and the
        // request of an `rwc.call`.
        if let Ok(result) = codec::decode::<Result<Value, Error>>(bytes, limits) {
            outcome += compare(bytes, &codec::encode(&result).expect("encodes"), &result);
            round_trip(&result, limits, codec::encode, codec::decode);
        }
        if let Ok((OwnedString(method), args)) =
            codec::decode::<(OwnedString, Vec<Value>)>(bytes, limits)
        {
            let request = (method, args);
            outcome += compare(bytes, &codec::encode(&request).expect("encodes"), &request);
            round_trip(&request, limits, codec::encode, |b, l| {
                codec::decode::<(OwnedString, Vec<Value>)>(b, l).map(|(m, a)| (m.0, a))
            });
        }
    }
    outcome
}

/// How the encoding of a decoded input compares with the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reencoded {
    /// The same bytes.
    Same,
    /// The input in its shortest form: the codec (bincode's varints) accepts a number
    /// written longer than it needs, and error kinds this build does not know (added by a
    /// newer peer) decode as `failed`. Both encode back in the one canonical form.
    Normalized,
    /// Anything else: the decoder lost or changed something.
    Different,
}

impl Reencoded {
    /// Compares `input` with `again`, its decoding encoded again: whether `again` is
    /// `input` with some long-form varints shortened and some unknown error kinds written
    /// as `failed` (0), and nothing else changed.
    pub fn of(input: &[u8], again: &[u8]) -> Reencoded {
        if input == again {
            return Reencoded::Same;
        }
        // A search over (position in input, position in again): at each step either the
        // bytes agree, or a long varint in the input stands for its short form, or an
        // unknown error kind stands for 0. Positions visited once.
        let mut seen = std::collections::HashSet::new();
        let mut todo = vec![(0usize, 0usize)];
        while let Some((i, j)) = todo.pop() {
            if !seen.insert((i, j)) {
                continue;
            }
            if i == input.len() && j == again.len() {
                return Reencoded::Normalized;
            }
            let (Some(&a), Some(&b)) = (input.get(i), again.get(j)) else {
                continue;
            };
            if a == b {
                todo.push((i + 1, j + 1));
            }
            if b == 0 && a != 0 && ErrorKind::from(a) == ErrorKind::Failed {
                todo.push((i + 1, j + 1));
            }
            if let Some((value, width)) = long_varint(&input[i..]) {
                let short = shortest_varint(value);
                if short.len() < width && again[j..].starts_with(&short) {
                    todo.push((i + width, j + short.len()));
                }
            }
        }
        Reencoded::Different
    }
}

/// The value and byte width of a varint in its long form (marker 251, 252 or 253) at the
/// start of `bytes`.
fn long_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let width = match *bytes.first()? {
        251 => 2,
        252 => 4,
        253 => 8,
        _ => return None,
    };
    let body = bytes.get(1..=width)?;
    let mut le = [0u8; 8];
    le[..width].copy_from_slice(body);
    Some((u64::from_le_bytes(le), 1 + width))
}

/// The varint encoding of `n` in the fewest bytes.
fn shortest_varint(n: u64) -> Vec<u8> {
    if n < 251 {
        vec![n.to_le_bytes()[0]]
    } else if let Ok(n) = u16::try_from(n) {
        [&[251][..], &n.to_le_bytes()].concat()
    } else if let Ok(n) = u32::try_from(n) {
        [&[252][..], &n.to_le_bytes()].concat()
    } else {
        [&[253][..], &n.to_le_bytes()].concat()
    }
}

/// Asserts that `again`, the encoding of `decoded`, is `input` or its shortest form.
fn compare<T: std::fmt::Debug>(input: &[u8], again: &[u8], decoded: &T) -> Outcome {
    match Reencoded::of(input, again) {
        Reencoded::Same => Outcome::default(),
        Reencoded::Normalized => Outcome {
            normalized: 1,
            ..Outcome::default()
        },
        Reencoded::Different => panic!(
            "{decoded:?} was decoded from {input:?} but encodes to {again:?}, \
             which is not that input nor its shortest form"
        ),
    }
}

/// Asserts that `decoded` encodes, decodes back equal, and that its encoding is stable.
fn round_trip<T: PartialEq + std::fmt::Debug>(
    decoded: &T,
    limits: DecodeLimits,
    encode: impl Fn(&T) -> Result<Vec<u8>, Error>,
    decode: impl Fn(&[u8], DecodeLimits) -> Result<T, Error>,
) {
    let bytes =
        encode(decoded).unwrap_or_else(|e| panic!("decoded {decoded:?} but cannot encode it: {e}"));
    let again = decode(&bytes, limits)
        .unwrap_or_else(|e| panic!("re-encoded {decoded:?} does not decode: {e}"));
    assert_eq!(&again, decoded, "decode(encode(x)) != x");
    let bytes_again = encode(&again).expect("encodes a second time");
    assert_eq!(
        bytes_again, bytes,
        "the encoding of {decoded:?} is not stable"
    );
}

/// Runs `frame::read_frame` over `stream` to the end, polling with a waker that does
/// nothing: [`Trickle`] wakes nobody, it is simply ready again on the next poll.
fn read_frame(stream: &mut Trickle<'_>, max_frame: usize) -> Result<Option<Vec<u8>>, Error> {
    // Every second poll reads at least one byte or ends the stream, so this many polls
    // finish any read.
    let polls = 2 * (stream.data.len() - stream.at) + 16;
    let mut read = std::pin::pin!(frame::read_frame(stream, max_frame));
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..polls {
        if let Poll::Ready(result) = read.as_mut().poll(&mut cx) {
            return result;
        }
    }
    panic!("read_frame did not finish although every byte was delivered");
}

/// A byte stream that hands out `data` a few bytes at a time (sizes drawn from `pieces`),
/// and makes every second read wait: a socket's behaviour, reproducible.
struct Trickle<'a> {
    data: &'a [u8],
    at: usize,
    pieces: u8,
    wait: bool,
}

impl AsyncRead for Trickle<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.wait = !self.wait;
        if self.wait && self.at < self.data.len() {
            return Poll::Pending;
        }
        // Piece sizes 1..=8, or the rest at once when the low bits say 0.
        self.pieces = self.pieces.rotate_left(3);
        let piece = match self.pieces % 9 {
            0 => usize::MAX,
            n => usize::from(n),
        };
        let rest = &self.data[self.at..];
        let n = rest.len().min(piece).min(buf.remaining());
        buf.put_slice(&rest[..n]);
        self.at += n;
        Poll::Ready(Ok(()))
    }
}

// ---------------------------------------------------------------------------------------
// Inputs.

/// [`sample_messages`], encoded.
fn encoded_messages() -> Vec<Vec<u8>> {
    sample_messages()
        .iter()
        .map(|m| codec::encode_message(m).expect("sample messages encode"))
        .collect()
}

/// One message of every kind, with values of every kind inside.
fn sample_messages() -> Vec<Message> {
    let args = sample_values();
    vec![
        Message::Call(Call {
            question: 1,
            target: Target::Export(0),
            method: "add".into(),
            args: vec![Value::U64(2), Value::U64(3)],
            deadline_ms: Some(30_000),
        }),
        Message::Call(Call {
            question: u64::MAX,
            target: Target::Promise {
                question: 7,
                path: vec!["a".into(), "0".into()],
            },
            method: "héllo".into(),
            args: args.clone(),
            deadline_ms: None,
        }),
        Message::Return(Return {
            question: 3,
            result: Ok(Value::List(args)),
        }),
        Message::Return(Return {
            question: 4,
            result: Err(Error::new(ErrorKind::Denied, "no")
                .with_cause("policy")
                .with_trace("frame 0")),
        }),
        Message::Cancel { question: 9 },
        Message::Release {
            export: 5,
            count: 2,
        },
        Message::Ping { nonce: 300 },
        Message::Pong { nonce: 1 << 40 },
        Message::Abort {
            reason: Error::protocol("bad frame"),
        },
    ]
}

fn sample_values() -> Vec<Value> {
    vec![
        Value::Unit,
        Value::Bool(true),
        Value::I64(-5),
        Value::I64(i64::MIN),
        Value::U64(250),
        Value::U64(u64::MAX),
        Value::F64(0.5),
        Value::F64(f64::NAN),
        Value::String("text".into()),
        Value::Bytes(vec![0, 1, 255].into()),
        Value::List(vec![Value::Unit, Value::List(vec![Value::I64(1)])]),
        Value::Map(vec![
            (Value::String("k".into()), Value::Bytes(vec![7; 20].into())),
            (
                Value::U64(1),
                Value::Map(vec![(Value::Unit, Value::Bool(false))]),
            ),
        ]),
        Value::Ref(rwc_protocol::Ref::Wire(WireRef::Sender(3))),
        Value::Ref(rwc_protocol::Ref::Wire(WireRef::Receiver(0))),
    ]
}

/// A damaged copy of `bytes`: flipped, replaced, inserted, removed or duplicated bytes,
/// truncation or random extension, one to four times.
fn mutate(rng: &mut XorShift, bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(7) {
            0 if at < out.len() => out[at] ^= 1 << rng.below(8),
            1 if at < out.len() => out[at] = rng.byte(),
            2 => out.insert(at, rng.byte()),
            3 if at < out.len() => {
                out.remove(at);
            }
            4 => out.truncate(at),
            5 => {
                let extra = rng.below(16);
                out.extend((0..extra).map(|_| rng.byte()));
            }
            6 if at < out.len() => {
                let end = (at + 1 + rng.below(8)).min(out.len());
                let chunk = out[at..end].to_vec();
                out.splice(at..at, chunk);
            }
            _ => {}
        }
    }
    out
}
