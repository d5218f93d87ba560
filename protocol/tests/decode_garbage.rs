//! Garbage and mutated bytes, as a broken or hostile peer would send them: decoding never
//! panics, and whatever decodes encodes again to bytes that decode to the same thing.
//!
//! This is the stable-Rust twin of the fuzz target `fuzz/fuzz_targets/decode.rs`, which
//! includes this file to call [`check`]: the fuzzer and CI run the same check.
#![allow(dead_code)] // the fuzz target uses `check` only

use std::pin::pin;
use std::task::{Context, Poll, Waker};

use rwc_protocol::codec;
use rwc_protocol::frame;
use rwc_protocol::message::{Call, Message, Return, Target};
use rwc_protocol::{DecodeLimits, Error, ErrorKind, Hello, Value, WireRef};

/// Largest frame the check accepts; small, so that random prefixes often fit.
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

/// What one input decoded as.
#[derive(Debug, Default, Clone, Copy)]
pub struct Outcome {
    /// Successful message decodes (under either limits, whole input or frame payload).
    pub messages: usize,
    /// Successful value decodes.
    pub values: usize,
    /// Frames read.
    pub frames: usize,
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

impl std::ops::AddAssign for Outcome {
    fn add_assign(&mut self, other: Outcome) {
        self.messages += other.messages;
        self.values += other.values;
        self.frames += other.frames;
    }
}

/// Decodes `data` every way bytes from a peer are decoded: as a stream of frames (each
/// payload decoded in turn), as a message, as a value and as a handshake answer, under
/// default and tight limits. Panics if decoding panics, or if something decodes that does
/// not survive encoding and decoding again unchanged.
pub fn check(data: &[u8]) -> Outcome {
    let mut outcome = Outcome::default();
    let mut rest = data;
    while let Some(payload) = next_frame(&mut rest) {
        outcome.frames += 1;
        outcome += check_payload(&payload);
    }
    outcome += check_payload(data);
    outcome
}

/// Reads the next frame from `rest`; `None` at the end or on an error.
fn next_frame(rest: &mut &[u8]) -> Option<Vec<u8>> {
    let before = *rest;
    let result = {
        let read = pin!(frame::read_frame(rest, MAX_FRAME));
        // A slice never makes a reader wait, so one poll finishes the read.
        match read.poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(result) => result,
            Poll::Pending => panic!("read_frame waited on a byte slice"),
        }
    };
    match result {
        Ok(Some(payload)) => {
            assert!(
                payload.len() <= MAX_FRAME,
                "read a frame of {} bytes over the limit",
                payload.len()
            );
            let used = before.len() - rest.len();
            let again =
                frame::frame(&payload, MAX_FRAME).expect("a frame that was read can be written");
            assert_eq!(
                again,
                before[..used],
                "a frame read back differs from its bytes"
            );
            Some(payload)
        }
        Ok(None) => {
            assert!(
                before.is_empty(),
                "clean end of stream reported with {} bytes left",
                before.len()
            );
            None
        }
        Err(e) => {
            assert!(
                matches!(e.kind(), ErrorKind::Protocol | ErrorKind::Disconnected),
                "unexpected error kind reading a frame: {e}"
            );
            None
        }
    }
}

fn check_payload(bytes: &[u8]) -> Outcome {
    let mut outcome = Outcome::default();
    for limits in [DecodeLimits::default(), SMALL_LIMITS] {
        if let Ok(msg) = codec::decode_message(bytes, limits) {
            outcome.messages += 1;
            round_trip(&msg, limits, codec::encode_message, codec::decode_message);
        }
        if let Ok(value) = codec::decode_value(bytes, limits) {
            outcome.values += 1;
            round_trip(&value, limits, codec::encode_value, codec::decode_value);
        }
        if let Ok(answer) = codec::decode::<Result<Hello, Error>>(bytes, limits) {
            round_trip(&answer, limits, codec::encode, codec::decode);
        }
    }
    outcome
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
        Value::Bytes(vec![0, 1, 255]),
        Value::List(vec![Value::Unit, Value::List(vec![Value::I64(1)])]),
        Value::Map(vec![
            (Value::String("k".into()), Value::Bytes(vec![7; 20])),
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

/// xorshift64*: deterministic, so a failure reproduces.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).expect("n fits u64")).expect("below n")
    }

    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[7]
    }
}
