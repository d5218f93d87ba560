//! [`Remote`]: a netref the node holds for the guest (a client callback, a host
//! capability, an object of another instance), and [`capability`].

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use rwc_protocol::value::{deserialize_ref, serialize_ref};
use rwc_protocol::{DecodeLimits, Error, ErrorKind, Ref, Value, WireRef, codec, from_value};

use crate::{abi, handles};

/// A handle to a netref the node holds for this guest: a client callback, a host
/// capability, an object of another instance.
///
/// A guest gets one as a typed argument of an export or method (`cb: Remote`), inside the
/// result of a call it makes, or from [`capability`]. [`call`](Remote::call) calls a
/// method on it; the guest waits while the call runs (calls into the guest that arrive
/// meanwhile, e.g. from the client's callback, run nested).
///
/// Dropping a `Remote` gives its reference back to the node. A `Remote` can be passed on
/// in a call's arguments or returned from an export (the node sees the same netref).
/// It cannot be cloned: one `Remote` is one reference.
///
/// Keep netrefs you receive as `Remote`s: a reference left inside a raw [`Value`] is a
/// bare number, given back when the call that delivered it returns.
#[derive(Debug)]
pub struct Remote {
    handle: u64,
}

/// Returns the capability `name` (e.g. `"sys"`) that the node handed to this instance.
///
/// Fails with [`ErrorKind::Denied`] when it was not handed over: the node's operator did
/// not grant it to the principal that created the instance, or the client did not pass it.
pub fn capability(name: &str) -> Result<Remote, Error> {
    match abi::capability(name)? {
        Some(handle) => Ok(Remote { handle }),
        None => Err(Error::new(
            ErrorKind::Denied,
            format!("capability `{name}` was not handed to this instance"),
        )),
    }
}

impl Remote {
    /// Calls `method` with `args` (a tuple of serializable values; `()` for none, a single
    /// non-tuple value for one argument) and converts the result to `R`.
    ///
    /// Errors: the callee's error as it raised it (kind and message kept); `BadArgument`
    /// if the result does not convert to `R`.
    pub fn call<R: DeserializeOwned>(
        &self,
        method: &str,
        args: impl Serialize,
    ) -> Result<R, Error> {
        let mark = handles::mentions_mark();
        let result = args_to_values(&args).and_then(|args| self.call_values(method, &args));
        // The node has read the request; refs it mentioned may be released again.
        handles::forget_mentions(mark);
        drop(args);
        let value = result?;
        handles::receive_in_call(value, from_value)
    }

    /// Calls `method` with positional `args` and returns the result as a [`Value`].
    ///
    /// Node handles inside the result are bare numbers: convert it with
    /// [`from_value`](rwc_protocol::from_value) to a type holding [`Remote`]s to keep them.
    pub fn call_value(&self, method: &str, args: Vec<Value>) -> Result<Value, Error> {
        let mark = handles::mentions_mark();
        let result = self.call_values(method, &args);
        handles::forget_mentions(mark);
        handles::receive_in_call(result?, Ok)
    }

    /// The node's handle number (for logs and debugging).
    pub fn handle(&self) -> u64 {
        self.handle
    }

    fn call_values(&self, method: &str, args: &[Value]) -> Result<Value, Error> {
        let request = codec::encode(&(method, args))?;
        let reply = abi::call(self.handle, &request)?;
        decode_reply(&reply)?
    }
}

/// Decodes the encoded `Result<Value, Error>` the node answered to `rwc.call`.
pub(crate) fn decode_reply(reply: &[u8]) -> Result<Result<Value, Error>, Error> {
    codec::decode::<Result<Value, Error>>(reply, DecodeLimits::default()).map_err(|e| {
        Error::protocol(format!(
            "the node's answer to rwc.call is malformed: {}",
            e.message()
        ))
    })
}

/// Typed call arguments (a tuple) as positional values, as `rwc_protocol` does it.
pub(crate) fn args_to_values(args: &impl Serialize) -> Result<Vec<Value>, Error> {
    Ok(match rwc_protocol::to_value(args)? {
        Value::List(items) => items,
        Value::Unit => Vec::new(),
        single => vec![single],
    })
}

impl Drop for Remote {
    fn drop(&mut self) {
        handles::release(self.handle);
    }
}

/// Writes `Receiver(handle)`: a netref of the node (the reader), not consumed.
impl Serialize for Remote {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let ok = serialize_ref(&Ref::Wire(WireRef::Receiver(self.handle)), serializer)?;
        handles::mention(self.handle);
        Ok(ok)
    }
}

/// Reads `Sender(handle)`: a netref the node (the writer) gives the guest.
impl<'de> Deserialize<'de> for Remote {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Remote, D::Error> {
        match deserialize_ref(deserializer)? {
            Ref::Wire(WireRef::Sender(handle)) => {
                handles::claim(handle);
                Ok(Remote { handle })
            }
            Ref::Wire(WireRef::Receiver(id)) => Err(serde::de::Error::custom(format_args!(
                "expected a netref held by the node, found this guest's own object {id} \
                 (take it as rwc_guest::Object)"
            ))),
            #[allow(unreachable_patterns)]
            _ => Err(serde::de::Error::custom(
                "expected a netref as the node writes it (a wire reference)",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use rwc_protocol::{to_value, value::WireRef};

    use super::*;

    fn node_ref(h: u64) -> Value {
        Value::Ref(Ref::Wire(WireRef::Sender(h)))
    }

    #[test]
    fn remote_reads_sender_and_writes_receiver() {
        let _ = abi::take_released_for_tests();
        let remote: Remote = from_value(node_ref(7)).unwrap();
        assert_eq!(remote.handle(), 7);
        assert_eq!(
            to_value(&(&remote,)).unwrap(),
            Value::List(vec![Value::Ref(Ref::Wire(WireRef::Receiver(7)))])
        );
        handles::forget_mentions(0);
        drop(remote);
        assert_eq!(abi::take_released_for_tests(), vec![7]);
    }

    #[test]
    fn guest_object_is_not_a_remote() {
        let err = from_value::<Remote>(Value::Ref(Ref::Wire(WireRef::Receiver(3)))).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadArgument);
        assert!(err.message().contains("rwc_guest::Object"), "{err}");
    }

    #[test]
    fn release_waits_while_a_result_mentions_the_handle() {
        let _ = abi::take_released_for_tests();
        let remote: Remote = from_value(node_ref(9)).unwrap();
        let mark = handles::mentions_mark();
        let _result = to_value(&remote).unwrap();
        drop(remote);
        assert!(abi::take_released_for_tests().is_empty());
        handles::forget_mentions(mark);
        handles::flush_deferred();
        assert_eq!(abi::take_released_for_tests(), vec![9]);
    }

    #[test]
    fn calls_fail_clearly_outside_a_node() {
        let remote: Remote = from_value(node_ref(1)).unwrap();
        let err = remote.call::<u64>("add", (1, 2)).unwrap_err();
        assert!(err.message().contains("only inside an rwc node"), "{err}");
        let err = capability("sys").unwrap_err();
        assert!(err.message().contains("only inside an rwc node"), "{err}");
    }

    #[test]
    fn call_arguments_are_positional() {
        assert_eq!(args_to_values(&()).unwrap(), Vec::<Value>::new());
        assert_eq!(args_to_values(&(5u32,)).unwrap(), vec![Value::U64(5)]);
        assert_eq!(
            args_to_values(&("a", 2i64)).unwrap(),
            vec![Value::String("a".into()), Value::I64(2)]
        );
        assert_eq!(args_to_values(&7u8).unwrap(), vec![Value::U64(7)]);
    }

    #[test]
    fn reply_decodes_ok_err_and_refuses_garbage() {
        let ok = codec::encode(&Ok::<Value, Error>(Value::String("hello".into()))).unwrap();
        assert_eq!(ok, [0, 5, 5, b'h', b'e', b'l', b'l', b'o']);
        assert_eq!(
            decode_reply(&ok).unwrap().unwrap(),
            Value::String("hello".into())
        );
        let err = codec::encode(&Err::<Value, Error>(Error::new(ErrorKind::Denied, "no"))).unwrap();
        assert_eq!(
            decode_reply(&err).unwrap().unwrap_err().kind(),
            ErrorKind::Denied
        );
        let bad = decode_reply(&[0, 5, 9]).unwrap_err();
        assert_eq!(bad.kind(), ErrorKind::Protocol);
    }
}
