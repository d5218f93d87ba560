//! Arbitrary bytes decoded every way a payload from a peer or a guest is: as a message, a
//! value, a handshake answer, a guest's result and a guest's `rwc.call` request, under the
//! default limits and tight ones. Nothing may panic; whatever decodes must encode back to
//! the same bytes (or to their shortest form) and decode again to the same thing; and no
//! decode may hold more memory than [`bound`] allows for its input and limits.
//!
//! The round-trip check is `check_messages` of `protocol/tests/decode_garbage.rs`, the
//! stable test that CI runs over 20 000 inputs; it is included here so the two cannot
//! drift. The memory check needs this binary's counting allocator.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rwc_fuzz::peak_during;
use rwc_protocol::codec::{self, bounded::OwnedString};
use rwc_protocol::{DecodeLimits, Error, Hello, Value};

#[global_allocator]
static ALLOC: rwc_fuzz::Counting = rwc_fuzz::Counting;

#[path = "../../protocol/tests/decode_garbage.rs"]
mod decode_garbage;

fuzz_target!(|data: &[u8]| {
    for limits in [DecodeLimits::default(), decode_garbage::SMALL_LIMITS] {
        let within =
            |what: &str, decode: &dyn Fn() -> bool| within_bound(what, data, limits, decode);
        within("message", &|| codec::decode_message(data, limits).is_ok());
        within("value", &|| codec::decode_value(data, limits).is_ok());
        within("handshake answer", &|| {
            codec::decode::<Result<Hello, Error>>(data, limits).is_ok()
        });
        within("guest result", &|| {
            codec::decode::<Result<Value, Error>>(data, limits).is_ok()
        });
        within("guest call request", &|| {
            codec::decode::<(OwnedString, Vec<Value>)>(data, limits).is_ok()
        });
    }
    decode_garbage::check_messages(data);
});

/// Most bytes a decode of `len` input bytes under `limits` may hold at once.
///
/// What grows with the input: every decoded `Value` takes at least one input byte, so the
/// values of an input take at most `len` times the size of a map entry (two values);
/// vectors grow by doubling and a growing vector is briefly held twice, so four times
/// that. Strings and buffers are copied from the input: `len` more.
///
/// What does not: a list or map reserves room for up to 4096 of the elements its length
/// claims before any arrives (`collect_cautiously` in `protocol/src/value/limits.rs`), one
/// reservation per open collection, and collections nest at most `max_depth` deep. A
/// sequence that serde itself decodes (a call's arguments, a guest request's) reserves up
/// to 1 MiB (`serde::de::size_hint::cautious`). The constant covers the rest (error
/// messages).
fn bound(len: usize, limits: DecodeLimits) -> usize {
    let entry = size_of::<(Value, Value)>();
    let depth = usize::try_from(limits.max_depth).unwrap_or(usize::MAX);
    4 * entry * len + len + depth.saturating_mul(4096 * entry) + (1 << 20) + 16 * 1024
}

fn within_bound(what: &str, data: &[u8], limits: DecodeLimits, decode: &dyn Fn() -> bool) {
    let (decoded, peak) = peak_during(decode);
    let limit = bound(data.len(), limits);
    assert!(
        peak <= limit,
        "decoding {} bytes as a {what} (which {}) under {limits:?} held {peak} bytes at once, \
         over the bound of {limit}",
        data.len(),
        if decoded { "succeeded" } else { "failed" }
    );
}
