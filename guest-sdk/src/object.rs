//! Guest objects: Rust values that stay in the guest and reach callers as netrefs.
//!
//! The guest keeps a table of the objects it has handed to the node (by id, from 1). The
//! node calls their methods through `rwc_object_call` and says when it holds no more
//! references with `rwc_object_drop`, which drops the Rust value (its `Drop` runs).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use rwc_protocol::value::{deserialize_ref, serialize_ref};
use rwc_protocol::{Error, ErrorKind, Ref, Value, WireRef};

use crate::{entry, handles};

/// Reserved method name: asks an object which methods it has.
pub use rwc_api::abi::METHODS_METHOD;

/// A Rust value whose methods callers can call through a netref.
///
/// Implement it with the [`object`](crate::object) attribute on an inherent `impl` block
/// rather than by hand; wrap the value in an [`Object`] to hand it out.
pub trait GuestObject: Any {
    /// Calls `method` with positional `args`.
    ///
    /// An unknown method should fail with [`ErrorKind::Unimplemented`] listing the methods
    /// there are (see [`no_such_method`]).
    fn call(&mut self, method: &str, args: Vec<Value>) -> Result<Value, Error>;

    /// The names of the methods callers can call.
    fn methods(&self) -> Vec<String>;

    /// The methods with a one-line description each (signature and doc), for
    /// introspection. Defaults to the names with no description.
    fn method_docs(&self) -> Vec<(String, String)> {
        self.methods()
            .into_iter()
            .map(|m| (m, String::new()))
            .collect()
    }
}

/// The [`ErrorKind::Unimplemented`] error for a method `type_name` does not have.
pub fn no_such_method(type_name: &str, method: &str, available: &[&str]) -> Error {
    Error::new(
        ErrorKind::Unimplemented,
        format!(
            "{type_name} has no method `{method}` (it has: {})",
            available.join(", ")
        ),
    )
}

/// A guest object: a [`GuestObject`] value with an id, handed to callers as a netref.
///
/// Return one from an export or method (or pass it in a call's arguments) and the caller
/// gets a netref whose method calls run on this value. The same object always gets the
/// same netref. The value lives while the node holds a reference to it or the guest holds
/// an `Object` handle; when the node lets go (`rwc_object_drop`) and no handle is left, it
/// is dropped. Cloning an `Object` gives another handle to the same value.
///
/// An object the node passes back to the guest (as `Receiver(id)`) converts back to an
/// `Object` (take it as an argument of type `Object`), with [`with`](Object::with) to
/// reach the value.
#[derive(Clone)]
pub struct Object {
    id: u64,
    value: Rc<RefCell<dyn GuestObject>>,
}

/// Returns how many guest objects the node currently holds references to (the size of
/// the guest's object table).
pub fn live_objects() -> usize {
    TABLE.with(|t| t.borrow().len())
}

thread_local! {
    /// Objects handed to the node, by id.
    static TABLE: RefCell<BTreeMap<u64, Rc<RefCell<dyn GuestObject>>>> = const { RefCell::new(BTreeMap::new()) };
    static NEXT_ID: Cell<u64> = const { Cell::new(rwc_api::abi::FIRST_OBJECT_ID) };
}

impl Object {
    /// Wraps `value` as a guest object with a new id. It enters the object table when it
    /// is first handed to the node.
    pub fn new(value: impl GuestObject) -> Object {
        let id = NEXT_ID.with(|n| {
            let id = n.get();
            n.set(id + 1);
            id
        });
        Object {
            id,
            value: Rc::new(RefCell::new(value)),
        }
    }

    /// The object's id (what the node names it by).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Runs `f` on the value, which must be a `T`.
    ///
    /// Fails with `BadArgument` if the object is not a `T`, and with `Failed` if it is
    /// busy: one of its methods is running (this is a call into it from within).
    pub fn with<T: GuestObject, R>(&self, f: impl FnOnce(&mut T) -> R) -> Result<R, Error> {
        let mut value = self.value.try_borrow_mut().map_err(|_| busy(self.id))?;
        let any: &mut dyn Any = &mut *value;
        let value = any.downcast_mut::<T>().ok_or_else(|| {
            Error::bad_argument(format!(
                "guest object {} is not a {}",
                self.id,
                std::any::type_name::<T>()
            ))
        })?;
        Ok(f(value))
    }

    /// Calls `method` on the object, as a caller through its netref would.
    pub fn call(&self, method: &str, args: Vec<Value>) -> Result<Value, Error> {
        if method == METHODS_METHOD {
            let value = self.value.try_borrow().map_err(|_| busy(self.id))?;
            return Ok(methods_value(&*value));
        }
        let mut value = self.value.try_borrow_mut().map_err(|_| busy(self.id))?;
        value.call(method, args)
    }
}

impl fmt::Debug for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Object({})", self.id)
    }
}

/// Writes `Sender(id)`: an object of the guest (the writer), now reachable by the node.
impl Serialize for Object {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let ok = serialize_ref(&Ref::Wire(WireRef::Sender(self.id)), serializer)?;
        TABLE.with(|t| {
            t.borrow_mut()
                .entry(self.id)
                .or_insert_with(|| self.value.clone());
        });
        Ok(ok)
    }
}

/// Reads `Receiver(id)`: one of the guest's own objects, passed back by the node.
impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Object, D::Error> {
        match deserialize_ref(deserializer)? {
            Ref::Wire(WireRef::Receiver(id)) => lookup(id)
                .map(|value| Object { id, value })
                .ok_or_else(|| {
                    serde::de::Error::custom(format_args!(
                        "guest object {id} is not in the object table (never handed out, or dropped)"
                    ))
                }),
            Ref::Wire(WireRef::Sender(h)) => Err(serde::de::Error::custom(format_args!(
                "expected one of this guest's objects, found netref {h} held by the node \
                 (take it as rwc_guest::Remote)"
            ))),
            #[allow(unreachable_patterns)]
            _ => Err(serde::de::Error::custom(
                "expected a guest object as the node writes it (a wire reference)",
            )),
        }
    }
}

/// `rwc_object_call`: decodes `(object, method, args)`, dispatches, encodes the result.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) fn call_from_node(input: Vec<u8>) -> Vec<u8> {
    handles::flush_deferred();
    let mark = handles::mentions_mark();
    let result = crate::entry::decode_input::<(u64, String, Vec<Value>)>(input)
        .map_err(|e| {
            Error::protocol(format!(
                "cannot decode the object call from the node: {}",
                e.message()
            ))
        })
        .and_then(|(id, method, args)| {
            handles::receive_all(args, |args| {
                let object = lookup(id)
                    .map(|value| Object { id, value })
                    .ok_or_else(|| {
                        Error::bad_argument(format!(
                            "guest object {id} does not exist (never handed out, or dropped)"
                        ))
                    })?;
                object.call(&method, args)
            })
        });
    let out = entry::encode_result(&result);
    handles::forget_mentions(mark);
    out
}

/// `rwc_object_drop`: the node holds no more references to object `id`.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) fn drop_from_node(id: u64) {
    // Dropped outside the table's borrow: the value's `Drop` may use the table.
    let removed = TABLE.with(|t| t.borrow_mut().remove(&id));
    drop(removed);
}

fn lookup(id: u64) -> Option<Rc<RefCell<dyn GuestObject>>> {
    TABLE.with(|t| t.borrow().get(&id).cloned())
}

fn busy(id: u64) -> Error {
    Error::failed(format!(
        "guest object {id} is busy: one of its methods is running (a call into it from \
         within that method is refused)"
    ))
}

/// The answer to [`METHODS_METHOD`]: a list of `{name, doc}` maps.
fn methods_value(object: &dyn GuestObject) -> Value {
    Value::List(
        object
            .method_docs()
            .into_iter()
            .map(|(name, doc)| {
                Value::Map(vec![
                    (Value::from("name"), Value::String(name)),
                    (Value::from("doc"), Value::String(doc)),
                ])
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use rwc_protocol::{DecodeLimits, codec, from_value, to_value};

    use super::*;

    struct Cell2 {
        value: i64,
        dropped: Rc<Cell<bool>>,
    }

    impl GuestObject for Cell2 {
        fn call(&mut self, method: &str, args: Vec<Value>) -> Result<Value, Error> {
            match method {
                "add" => {
                    self.value += args.first().and_then(Value::as_i64).unwrap_or(0);
                    Ok(Value::I64(self.value))
                }
                _ => Err(no_such_method("Cell2", method, &["add"])),
            }
        }
        fn methods(&self) -> Vec<String> {
            vec!["add".into()]
        }
    }

    impl Drop for Cell2 {
        fn drop(&mut self) {
            self.dropped.set(true);
        }
    }

    fn object_call(id: u64, method: &str, args: Vec<Value>) -> Result<Value, Error> {
        let input = codec::encode(&(id, method, args)).unwrap();
        codec::decode::<Result<Value, Error>>(&call_from_node(input), DecodeLimits::default())
            .unwrap()
    }

    #[test]
    fn handed_out_objects_are_callable_until_the_node_drops_them() {
        let dropped = Rc::new(Cell::new(false));
        let obj = Object::new(Cell2 {
            value: 1,
            dropped: dropped.clone(),
        });
        let id = obj.id();
        assert_eq!(live_objects(), 0, "not handed out yet");
        assert_eq!(
            to_value(&obj).unwrap(),
            Value::Ref(Ref::Wire(WireRef::Sender(id)))
        );
        assert_eq!(to_value(&obj).unwrap(), to_value(&obj).unwrap(), "same id");
        drop(obj);
        assert_eq!(live_objects(), 1);
        assert_eq!(
            object_call(id, "add", vec![Value::I64(4)]),
            Ok(Value::I64(5))
        );

        let err = object_call(id, "sub", vec![]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unimplemented);
        assert!(err.message().contains("(it has: add)"), "{err}");

        let methods = object_call(id, METHODS_METHOD, vec![]).unwrap();
        assert_eq!(
            methods.as_list().unwrap()[0].get("name"),
            Some(&Value::from("add"))
        );

        assert!(!dropped.get());
        drop_from_node(id);
        assert!(dropped.get(), "the value's Drop ran");
        assert_eq!(live_objects(), 0);
        let err = object_call(id, "add", vec![]).unwrap_err();
        assert!(err.message().contains("does not exist"), "{err}");
    }

    #[test]
    fn objects_passed_back_are_the_same_value() {
        let dropped = Rc::new(Cell::new(false));
        let obj = Object::new(Cell2 { value: 10, dropped });
        let id = obj.id();
        to_value(&obj).unwrap();
        let back: Object = from_value(Value::Ref(Ref::Wire(WireRef::Receiver(id)))).unwrap();
        assert_eq!(back.with(|c: &mut Cell2| c.value), Ok(10));
        let err = back.with(|_: &mut Other| ()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadArgument);
        let err = from_value::<Object>(Value::Ref(Ref::Wire(WireRef::Receiver(999)))).unwrap_err();
        assert!(err.message().contains("not in the object table"), "{err}");
        drop_from_node(id);
    }

    #[test]
    fn a_call_into_a_busy_object_is_refused() {
        let obj = Object::new(Cell2 {
            value: 0,
            dropped: Rc::default(),
        });
        let inner = obj.clone();
        let err = obj
            .with(|_: &mut Cell2| inner.call("add", vec![]))
            .unwrap()
            .unwrap_err();
        assert!(err.message().contains("busy"), "{err}");
    }

    struct Other;
    impl GuestObject for Other {
        fn call(&mut self, method: &str, _: Vec<Value>) -> Result<Value, Error> {
            Err(no_such_method("Other", method, &[]))
        }
        fn methods(&self) -> Vec<String> {
            Vec::new()
        }
    }
}
