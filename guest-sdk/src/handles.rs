//! Bookkeeping of node handles, so that the guest gives back every reference it gets, once,
//! and never too early.
//!
//! Two rules of the ABI shape this module:
//! - Every `Sender(h)` the node writes into a value is one reference the guest owns. Most
//!   become [`Remote`](crate::Remote)s, which release them when dropped; the rest (refs in
//!   an argument the function ignores, or keeps as a raw `Value`) are released when the
//!   call that delivered them returns. [`receive_all`] and [`receive_in_call`] track
//!   them; [`claim`] takes one.
//! - A handle the guest writes (`Receiver(h)`) in a buffer it returns must still be held
//!   when the node reads that buffer, i.e. after the export has returned. So a `Remote`
//!   dropped after being written into a result ([`mention`]) releases its handle only at
//!   the next call into the guest ([`flush_deferred`]).

use std::cell::RefCell;

use rwc_protocol::{Ref, Value, WireRef};

use crate::abi;

thread_local! {
    /// Handles delivered to calls still running (innermost last) that no `Remote` has
    /// claimed yet.
    static UNCLAIMED: RefCell<Vec<Vec<u64>>> = const { RefCell::new(Vec::new()) };
    /// Handles written into values on their way to the node.
    static MENTIONED: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
    /// Releases that wait until the node has read the buffer that mentioned them.
    static DEFERRED: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on `values` (it converts them to typed arguments and runs the call) with the
/// node handles in them counted as delivered to that call; those that no `Remote` claims by
/// the time `f` returns are released then.
pub(crate) fn receive_all<T>(values: Vec<Value>, f: impl FnOnce(Vec<Value>) -> T) -> T {
    let mut handles = Vec::new();
    for v in &values {
        sender_refs(v, &mut handles);
    }
    scope(handles, || f(values))
}

/// Runs `f` on `value` (the result of a call the guest made) with its node handles added to
/// the innermost running call, so they are released when that returns unless a `Remote`
/// claims them first. Outside any call (native tests) they are released when `f` returns.
pub(crate) fn receive_in_call<T>(value: Value, f: impl FnOnce(Value) -> T) -> T {
    let mut handles = Vec::new();
    sender_refs(&value, &mut handles);
    let joined = UNCLAIMED.with(|u| match u.borrow_mut().last_mut() {
        Some(innermost) => {
            innermost.append(&mut handles);
            true
        }
        None => false,
    });
    if joined {
        f(value)
    } else {
        scope(handles, || f(value))
    }
}

/// A `Remote` takes handle `h`: it is no longer released for the call that delivered it.
pub(crate) fn claim(h: u64) {
    UNCLAIMED.with(|u| {
        for scope in u.borrow_mut().iter_mut().rev() {
            if let Some(i) = scope.iter().position(|&x| x == h) {
                scope.swap_remove(i);
                return;
            }
        }
    });
}

/// Handle `h` is being written into a value for the node.
pub(crate) fn mention(h: u64) {
    MENTIONED.with(|m| m.borrow_mut().push(h));
}

/// How many mentions there are now; [`forget_mentions`] goes back to it.
pub(crate) fn mentions_mark() -> usize {
    MENTIONED.with(|m| m.borrow().len())
}

/// The node has read everything mentioned since `mark`.
pub(crate) fn forget_mentions(mark: usize) {
    MENTIONED.with(|m| m.borrow_mut().truncate(mark));
}

/// Gives handle `h` back now, or at the next call into the guest if a buffer on its way
/// to the node mentions it.
pub(crate) fn release(h: u64) {
    let mentioned = MENTIONED.with(|m| m.borrow().contains(&h));
    if mentioned {
        DEFERRED.with(|d| d.borrow_mut().push(h));
    } else {
        abi::release(h);
    }
}

/// Gives back the handles whose release waited for the node to read a result. Called when
/// the node calls into the guest again (it has read the previous result by then).
pub(crate) fn flush_deferred() {
    let deferred = DEFERRED.with(|d| std::mem::take(&mut *d.borrow_mut()));
    for h in deferred {
        abi::release(h);
    }
}

fn scope<T>(handles: Vec<u64>, f: impl FnOnce() -> T) -> T {
    UNCLAIMED.with(|u| u.borrow_mut().push(handles));
    let _scope = Scope;
    f()
}

/// Collects the node handles (`Sender` refs, as the node writes them) in `value`.
fn sender_refs(value: &Value, out: &mut Vec<u64>) {
    match value {
        Value::Ref(Ref::Wire(WireRef::Sender(h))) => out.push(*h),
        Value::List(items) => items.iter().for_each(|v| sender_refs(v, out)),
        Value::Map(entries) => entries.iter().for_each(|(k, v)| {
            sender_refs(k, out);
            sender_refs(v, out);
        }),
        _ => {}
    }
}

/// Ends the innermost delivery scope, releasing what no `Remote` claimed.
struct Scope;

impl Drop for Scope {
    fn drop(&mut self) {
        let unclaimed = UNCLAIMED.with(|u| u.borrow_mut().pop()).unwrap_or_default();
        for h in unclaimed {
            release(h);
        }
    }
}

#[cfg(test)]
pub(crate) fn unclaimed_for_tests() -> Vec<u64> {
    UNCLAIMED.with(|u| u.borrow().iter().flatten().copied().collect())
}
