//! Limits on values: what a decoder accepts from a peer, and the same check made before
//! sending, so that a value the peer would refuse fails its own call instead of reaching
//! the peer.
//!
//! The decoder counts as it goes, in a thread-local state (decoding is synchronous, and
//! serde gives no other way to thread state through `Deserialize` impls). When a limit is
//! broken it records which one, so that the connection can tell "a value was too big" (fail
//! that call) from "the bytes are garbage" (abort the connection).

use std::cell::Cell;
use std::fmt;

use super::Value;
use crate::error::Error;

/// Bounds on decoding, so that nothing a peer sends makes us recurse or allocate without
/// bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Deepest nesting of lists and maps (a scalar at top level has depth 0).
    pub max_depth: u32,
    /// Most elements in one list or map.
    pub max_collection_len: usize,
    /// Most values in one decoded message, counting every nested element.
    pub max_values: usize,
}

impl DecodeLimits {
    /// The defaults: depth 128, 16 Mi elements per collection and per message.
    pub const DEFAULT: DecodeLimits = DecodeLimits {
        max_depth: 128,
        max_collection_len: 16 * 1024 * 1024,
        max_values: 16 * 1024 * 1024,
    };

    /// Checks that `values`, sent together in one message, would decode under these
    /// limits: the check a connection makes before it sends a call or a result. Fails with
    /// a `bad argument` error that names the limit.
    ///
    /// It walks no deeper than `max_depth`, so a value nested a million levels deep is
    /// refused without recursing a million times.
    pub fn check<'a>(&self, values: impl IntoIterator<Item = &'a Value>) -> Result<(), Error> {
        self.measure(values)
            .map(drop)
            .map_err(|breach| Error::bad_argument(breach.to_string()))
    }

    /// [`check`](Self::check), also telling whether any reference sits in the values (so
    /// the caller can skip looking for them).
    pub(crate) fn measure<'a>(
        &self,
        values: impl IntoIterator<Item = &'a Value>,
    ) -> Result<bool, LimitBreach> {
        let mut walk = Walk {
            limits: self,
            values: 0,
            refs: false,
        };
        for value in values {
            walk.value(value, 0)?;
        }
        Ok(walk.refs)
    }

    /// The smaller of each bound.
    pub fn min(self, other: DecodeLimits) -> DecodeLimits {
        DecodeLimits {
            max_depth: self.max_depth.min(other.max_depth),
            max_collection_len: self.max_collection_len.min(other.max_collection_len),
            max_values: self.max_values.min(other.max_values),
        }
    }
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits::DEFAULT
    }
}

/// Which limit a value broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LimitBreach {
    /// Lists and maps nest deeper than `limit`.
    Depth { limit: u32 },
    /// One list or map has `len` elements, more than `limit`.
    CollectionLen { len: usize, limit: usize },
    /// One message holds more than `limit` values.
    Values { limit: usize },
}

impl fmt::Display for LimitBreach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LimitBreach::Depth { limit } => {
                write!(f, "value nests deeper than {limit} levels (limit)")
            }
            LimitBreach::CollectionLen { len, limit } => {
                write!(
                    f,
                    "collection of {len} elements exceeds the limit of {limit}"
                )
            }
            LimitBreach::Values { limit } => {
                write!(f, "message has more than {limit} values (limit)")
            }
        }
    }
}

/// The sender's walk: counts exactly what the decoder counts, in the same order, so both
/// report the same breach.
struct Walk<'a> {
    limits: &'a DecodeLimits,
    values: usize,
    refs: bool,
}

impl Walk<'_> {
    fn value(&mut self, value: &Value, depth: u32) -> Result<(), LimitBreach> {
        self.values += 1;
        if self.values > self.limits.max_values {
            return Err(LimitBreach::Values {
                limit: self.limits.max_values,
            });
        }
        match value {
            Value::List(items) => {
                self.enter(depth, items.len())?;
                items.iter().try_for_each(|v| self.value(v, depth + 1))
            }
            Value::Map(entries) => {
                self.enter(depth, entries.len())?;
                entries.iter().try_for_each(|(k, v)| {
                    self.value(k, depth + 1)?;
                    self.value(v, depth + 1)
                })
            }
            Value::Ref(_) => {
                self.refs = true;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn enter(&self, depth: u32, len: usize) -> Result<(), LimitBreach> {
        enter_check(self.limits, depth, Some(len))
    }
}

/// Whether a collection of `len` elements may open at `depth` (the collections already
/// open around it).
fn enter_check(limits: &DecodeLimits, depth: u32, len: Option<usize>) -> Result<(), LimitBreach> {
    if depth >= limits.max_depth {
        return Err(LimitBreach::Depth {
            limit: limits.max_depth,
        });
    }
    match len {
        Some(len) if len > limits.max_collection_len => Err(LimitBreach::CollectionLen {
            len,
            limit: limits.max_collection_len,
        }),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------
// The decoder's side.

thread_local! {
    /// Limits and running counts of the wire decode in progress on this thread.
    static DECODE: Cell<DecodeState> = const { Cell::new(DecodeState::new(DecodeLimits::DEFAULT, false)) };
}

#[derive(Clone, Copy)]
struct DecodeState {
    limits: DecodeLimits,
    depth: u32,
    values: usize,
    /// Whether a codec decode is running; only then are values counted (the count is per
    /// message). Depth is always checked: it protects the stack.
    counting: bool,
    /// The limit that stopped the decode, if one did.
    breach: Option<LimitBreach>,
}

impl DecodeState {
    const fn new(limits: DecodeLimits, counting: bool) -> Self {
        DecodeState {
            limits,
            depth: 0,
            values: 0,
            counting,
            breach: None,
        }
    }
}

/// Runs `f` (a wire decode) under `limits`, counting from zero. Also returns the limit
/// that stopped the decode, if one did.
pub(crate) fn with_decode_limits<T>(
    limits: DecodeLimits,
    f: impl FnOnce() -> T,
) -> (T, Option<LimitBreach>) {
    struct Restore(DecodeState);
    impl Drop for Restore {
        fn drop(&mut self) {
            DECODE.with(|d| d.set(self.0));
        }
    }
    let _restore = Restore(DECODE.with(|d| d.replace(DecodeState::new(limits, true))));
    let out = f();
    (out, DECODE.with(|d| d.get().breach))
}

/// Records `breach` as what stopped the decode and makes the serde error for it.
fn refuse<E: serde::de::Error>(state: &mut DecodeState, breach: LimitBreach) -> E {
    state.breach = Some(breach);
    E::custom(breach)
}

/// Counts one decoded value.
pub(crate) fn count_value<E: serde::de::Error>() -> Result<(), E> {
    DECODE.with(|d| {
        let mut s = d.get();
        if !s.counting {
            return Ok(());
        }
        s.values += 1;
        let result = if s.values > s.limits.max_values {
            let limit = s.limits.max_values;
            Err(refuse(&mut s, LimitBreach::Values { limit }))
        } else {
            Ok(())
        };
        d.set(s);
        result
    })
}

/// Reads the elements of one list or map from a decoder, one nesting level deeper, with
/// `len` the length the input claims (if it says).
pub(crate) fn read_collection<T, E: serde::de::Error>(
    len: Option<usize>,
    next: impl FnMut() -> Result<Option<T>, E>,
) -> Result<Vec<T>, E> {
    DECODE.with(|d| {
        let mut s = d.get();
        let entered = enter_check(&s.limits, s.depth, len);
        let result = match entered {
            Ok(()) => {
                s.depth += 1;
                Ok(())
            }
            Err(breach) => Err(refuse(&mut s, breach)),
        };
        d.set(s);
        result
    })?;
    let out = collect_cautiously(len, next);
    DECODE.with(|d| {
        let mut s = d.get();
        s.depth = s.depth.saturating_sub(1);
        d.set(s);
    });
    out
}

/// Collects elements until `next` gives `None`, reserving room for no more than a small
/// bound of the claimed `len` up front: a lying length costs nothing, the vector grows as
/// elements really arrive.
pub(crate) fn collect_cautiously<T, E>(
    len: Option<usize>,
    mut next: impl FnMut() -> Result<Option<T>, E>,
) -> Result<Vec<T>, E> {
    let mut out = Vec::with_capacity(cautious_capacity(len));
    while let Some(item) = next()? {
        out.push(item);
    }
    Ok(out)
}

/// Capacity to reserve for a collection whose length a peer claims (or a `Serialize` impl
/// reports, which may be wrong).
pub(crate) fn cautious_capacity(hint: Option<usize>) -> usize {
    hint.unwrap_or(0).min(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> Value {
        let mut v = Value::Unit;
        for _ in 0..depth {
            v = Value::List(vec![v]);
        }
        v
    }

    #[test]
    fn check_names_the_limit_it_breaks() {
        let limits = DecodeLimits {
            max_depth: 4,
            max_collection_len: 3,
            max_values: 10,
        };
        assert!(limits.check([&nested(4)]).is_ok());
        let err = limits.check([&nested(5)]).unwrap_err();
        assert!(err.message().contains("deeper than 4 levels"), "{err}");
        let err = limits
            .check([&Value::List(vec![Value::Unit; 4])])
            .unwrap_err();
        assert!(err.message().contains("collection of 4 elements"), "{err}");
        // Values are counted over the whole message, keys and values included: a map of
        // two entries is 5 values, so two such arguments fit in 10 and three do not.
        let five = Value::Map(vec![(Value::Unit, Value::Unit); 2]);
        assert!(limits.check([&five, &five]).is_ok());
        let err = limits.check([&five, &five, &five]).unwrap_err();
        assert!(err.message().contains("more than 10 values"), "{err}");
    }

    #[test]
    fn a_very_deep_value_is_refused_without_walking_it_all() {
        // On a 1 MiB stack a walk down 200 000 levels would overflow it: the check must
        // stop at the limit. The value is built and taken apart without recursion.
        std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(|| {
                let mut v = nested(200_000);
                let err = DecodeLimits::DEFAULT.check([&v]).unwrap_err();
                assert!(err.message().contains("deeper than 128"), "{err}");
                while let Value::List(mut items) = v {
                    v = items.pop().unwrap_or(Value::Unit);
                }
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn measure_tells_whether_refs_are_inside() {
        use crate::value::{Ref, WireRef};
        let plain = Value::List(vec![Value::U64(1)]);
        let with_ref = Value::Map(vec![(
            Value::Unit,
            Value::Ref(Ref::Wire(WireRef::Sender(1))),
        )]);
        assert_eq!(DecodeLimits::DEFAULT.measure([&plain]), Ok(false));
        assert_eq!(DecodeLimits::DEFAULT.measure([&plain, &with_ref]), Ok(true));
    }
}
