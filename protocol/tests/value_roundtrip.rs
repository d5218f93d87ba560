//! Any [`Value`] survives both of its serde forms: the natural one (through `to_value` /
//! `from_value`) and the wire one (through bincode); and the check a sender makes against
//! the peer's limits agrees with what the peer's decoder accepts.

use proptest::collection::vec;
use proptest::prelude::*;
use rwc_protocol::{DecodeLimits, Ref, Value, WireRef, codec, from_value, to_value};

/// Floats of every class, NaNs (with any payload) and infinities included: `Value`
/// compares floats by their bits, so a round trip must keep them exactly.
fn arb_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        proptest::num::f64::ANY,
        any::<u64>().prop_map(f64::from_bits),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
    ]
}

fn arb_ref() -> impl Strategy<Value = Ref> {
    prop_oneof![
        any::<u64>().prop_map(WireRef::Sender),
        any::<u64>().prop_map(WireRef::Receiver),
    ]
    .prop_map(Ref::Wire)
}

/// Any value: every variant, nested up to 4 levels, collections of up to 8 elements, maps
/// with keys of any type.
fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Unit),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::I64),
        any::<u64>().prop_map(Value::U64),
        arb_f64().prop_map(Value::F64),
        vec(any::<char>(), 0..=8).prop_map(|cs| Value::String(cs.into_iter().collect())),
        vec(any::<u8>(), 0..=8).prop_map(|b| Value::Bytes(b.into())),
        arb_ref().prop_map(Value::Ref),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..=8).prop_map(Value::List),
            vec((inner.clone(), inner), 0..=8).prop_map(Value::Map),
        ]
    })
}

proptest! {
    #[test]
    fn natural_form_round_trips(v in arb_value()) {
        let natural = to_value(&v)?;
        prop_assert_eq!(&natural, &v);
        let back: Value = from_value(natural)?;
        prop_assert_eq!(back, v);
    }

    #[test]
    fn wire_form_round_trips(v in arb_value()) {
        let config = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(&v, config)?;
        let (back, read) = bincode::serde::borrow_decode_from_slice::<Value, _>(&bytes, config)?;
        prop_assert_eq!(read, bytes.len());
        prop_assert_eq!(back, v);
    }

    #[test]
    fn the_senders_check_agrees_with_the_decoder(
        values in vec(arb_value(), 1..=3),
        max_depth in 0u32..=4,
        max_collection_len in 0usize..=8,
        max_values in 0usize..=64,
    ) {
        let limits = DecodeLimits { max_depth, max_collection_len, max_values };
        let checked = limits.check(&values);
        // The values as one message's arguments, decoded under the same limits.
        let msg = rwc_protocol::message::Message::Call(rwc_protocol::message::Call {
            question: 1,
            target: rwc_protocol::message::Target::Export(0),
            method: "m".into(),
            args: values,
            deadline_ms: None,
        });
        let bytes = codec::encode_message(&msg)?;
        let decoded = codec::decode_message(&bytes, limits);
        prop_assert_eq!(checked.is_ok(), decoded.is_ok(), "check {:?}, decode {:?}", checked, decoded);
        if let (Err(c), Err(d)) = (checked, decoded) {
            // The same limit, in the same words.
            prop_assert!(d.message().contains(c.message()), "check: {}, decode: {}", c, d);
        }
    }
}
