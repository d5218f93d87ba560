//! The attributes as a guest uses them, exercised natively through the dispatchers they
//! generate (the `rwc_export_*` symbols themselves exist only on wasm32).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Error, ErrorKind, GuestObject, Object, Remote, Value, from_value, to_value};

#[crate::export]
fn word_count(text: String) -> BTreeMap<String, u32> {
    let mut counts = BTreeMap::new();
    for word in text.split_whitespace() {
        *counts.entry(word.to_owned()).or_insert(0) += 1;
    }
    counts
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Point {
    x: i32,
    y: i32,
}

#[crate::export(name = "shift")]
fn move_point(p: Point, (dx, dy): (i32, i32)) -> Point {
    Point {
        x: p.x + dx,
        y: p.y + dy,
    }
}

#[crate::export]
fn nothing() {}

#[crate::export]
fn fail(msg: String) -> Result<(), String> {
    Err(msg)
}

#[crate::export]
fn deny() -> crate::Result<u8> {
    Err(Error::new(ErrorKind::Denied, "not for you"))
}

struct Custom;

impl fmt::Display for Custom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("custom error")
    }
}

#[crate::export]
fn custom() -> Result<u8, Custom> {
    Err(Custom)
}

#[crate::export]
fn hold(cb: Remote) -> u64 {
    cb.handle()
}

fn call(
    dispatch: fn(Vec<Value>) -> Result<Value, Error>,
    args: Vec<Value>,
) -> Result<Value, Error> {
    dispatch(args)
}

#[test]
fn exports_convert_arguments_and_results() {
    let counts = call(__rwc_call_word_count, vec![Value::from("a b a")]).unwrap();
    let counts: BTreeMap<String, u32> = from_value(counts).unwrap();
    assert_eq!(counts["a"], 2);

    let moved = call(
        __rwc_call_move_point,
        vec![
            to_value(&Point { x: 1, y: 2 }).unwrap(),
            to_value(&(10, 20)).unwrap(),
        ],
    )
    .unwrap();
    assert_eq!(from_value::<Point>(moved).unwrap(), Point { x: 11, y: 22 });

    assert_eq!(call(__rwc_call_nothing, vec![]), Ok(Value::Unit));
}

#[test]
fn bad_arguments_name_the_export() {
    let err = call(__rwc_call_word_count, vec![]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadArgument);
    assert_eq!(
        err.message(),
        "`word_count` takes 1 argument (text: String) but was called with 0"
    );
    let err = call(
        __rwc_call_move_point,
        vec![Value::from(1u8), Value::from(2u8)],
    )
    .unwrap_err();
    assert!(
        err.message()
            .starts_with("argument 1 (`p: Point`) of `shift`:"),
        "{err}"
    );
    let err = call(__rwc_call_move_point, vec![Value::Unit]).unwrap_err();
    assert!(
        err.message().contains("(p: Point, (dx, dy): (i32, i32))"),
        "{err}"
    );
}

#[test]
fn result_errors_map_to_failed_unless_already_rwc_errors() {
    assert_eq!(
        call(__rwc_call_fail, vec![Value::from("nope")]),
        Err(Error::failed("nope"))
    );
    assert_eq!(
        call(__rwc_call_deny, vec![]),
        Err(Error::new(ErrorKind::Denied, "not for you"))
    );
    assert_eq!(
        call(__rwc_call_custom, vec![]),
        Err(Error::failed("custom error"))
    );
}

#[test]
fn remote_parameters_take_node_handles() {
    use rwc_protocol::{Ref, WireRef};
    let _ = crate::abi::take_released_for_tests();
    let h = Value::Ref(Ref::Wire(WireRef::Sender(4)));
    assert_eq!(call(__rwc_call_hold, vec![h]), Ok(Value::U64(4)));
    assert_eq!(crate::abi::take_released_for_tests(), vec![4]);
}

#[test]
fn unclaimed_handles_are_released_when_the_call_returns() {
    use rwc_protocol::{Ref, WireRef};
    let _ = crate::abi::take_released_for_tests();
    let input = rwc_protocol::codec::encode(&vec![Value::List(vec![
        Value::Ref(Ref::Wire(WireRef::Sender(5))),
        Value::Ref(Ref::Wire(WireRef::Sender(6))),
    ])])
    .unwrap();
    let echo: fn(Vec<Value>) -> Result<Value, Error> = |_| Ok(Value::Unit);
    crate::entry::run_export(input, echo);
    let mut released = crate::abi::take_released_for_tests();
    released.sort_unstable();
    assert_eq!(released, vec![5, 6]);
    assert!(crate::handles::unclaimed_for_tests().is_empty());
}

/// A counter.
struct Counter {
    value: i64,
}

#[crate::object]
impl Counter {
    /// Makes a counter (not callable: no receiver).
    pub fn new(value: i64) -> Self {
        Counter { value }
    }

    /// Adds `by` and returns the new value.
    pub fn incr(&mut self, by: i64) -> Result<i64, String> {
        self.value = self.value.checked_add(by).ok_or("counter overflow")?;
        Ok(self.value)
    }

    pub fn get(&self) -> i64 {
        self.value
    }

    /// Adds another counter's value (an object passed back to the guest).
    pub fn absorb(&mut self, other: Object) -> Result<i64, Error> {
        self.value += other.with(|c: &mut Counter| c.value)?;
        Ok(self.value)
    }

    #[allow(dead_code)]
    fn hidden(&self) {}
}

#[test]
fn objects_dispatch_public_methods() {
    let mut c = Counter::new(1);
    assert_eq!(c.methods(), ["incr", "get", "absorb"]);
    assert_eq!(c.call("incr", vec![Value::I64(2)]), Ok(Value::I64(3)));
    assert_eq!(c.call("get", vec![]), Ok(Value::I64(3)));
    let err = c.call("incr", vec![Value::I64(i64::MAX)]).unwrap_err();
    assert_eq!(err, Error::failed("counter overflow"));
    let err = c.call("hidden", vec![]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unimplemented);
    assert_eq!(
        err.message(),
        "Counter has no method `hidden` (it has: incr, get, absorb)"
    );
    let err = c.call("incr", vec![]).unwrap_err();
    assert_eq!(
        err.message(),
        "`Counter.incr` takes 1 argument (by: i64) but was called with 0"
    );
    assert_eq!(
        c.method_docs()[0],
        (
            "incr".to_owned(),
            "incr(by: i64) -> i64: Adds `by` and returns the new value.".to_owned()
        )
    );
}

#[test]
fn objects_passed_back_reach_their_value() {
    let a = Object::new(Counter::new(5));
    let b = Object::new(Counter::new(10));
    let b_ref = to_value(&b).unwrap();
    assert_eq!(
        a.call("absorb", vec![b_ref.clone()]),
        Err(Error::bad_argument(
            "argument 1 (`other: Object`) of `Counter.absorb`: expected one of this guest's \
         objects, found netref 2 held by the node (take it as rwc_guest::Remote)"
                .replace(" 2 ", &format!(" {} ", b.id()))
        ))
    );
    let rwc_protocol::Value::Ref(rwc_protocol::Ref::Wire(rwc_protocol::WireRef::Sender(id))) =
        b_ref
    else {
        panic!("{b_ref:?}")
    };
    let passed_back = Value::Ref(rwc_protocol::Ref::Wire(rwc_protocol::WireRef::Receiver(id)));
    assert_eq!(
        a.call("absorb", vec![passed_back.clone()]),
        Ok(Value::I64(15))
    );
    // An object cannot absorb itself: it is busy running the method.
    let a_ref = to_value(&a).unwrap();
    let rwc_protocol::Value::Ref(rwc_protocol::Ref::Wire(rwc_protocol::WireRef::Sender(a_id))) =
        a_ref
    else {
        panic!()
    };
    let err = a
        .call(
            "absorb",
            vec![Value::Ref(rwc_protocol::Ref::Wire(
                rwc_protocol::WireRef::Receiver(a_id),
            ))],
        )
        .unwrap_err();
    assert!(err.message().contains("busy"), "{err}");
    crate::object::drop_from_node(a_id);
    crate::object::drop_from_node(id);
    assert_eq!(crate::live_objects(), 0);
}
