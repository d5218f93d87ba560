//! Guest objects: counters handed to the caller as netrefs.

use std::sync::atomic::{AtomicI32, Ordering};

use rwc_guest::{Error, Object, export, object};

/// Counters alive in this instance; `Drop` decrements it, so a test can see that dropping
/// the caller's netref frees the guest's value.
static LIVE: AtomicI32 = AtomicI32::new(0);

/// A counter living in the guest.
pub struct Counter {
    value: i64,
}

impl Counter {
    fn new(value: i64) -> Counter {
        LIVE.fetch_add(1, Ordering::Relaxed);
        Counter { value }
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

#[object]
impl Counter {
    /// Adds `by` and returns the new value.
    pub fn incr(&mut self, by: i64) -> Result<i64, String> {
        self.value = self
            .value
            .checked_add(by)
            .ok_or_else(|| format!("counter overflow: {} + {by}", self.value))?;
        Ok(self.value)
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.value
    }

    /// Adds the value of `other` (another counter of this instance, passed back) to this one.
    pub fn absorb(&mut self, other: Object) -> Result<i64, Error> {
        let v = other.with(|c: &mut Counter| c.value)?;
        self.incr(v).map_err(Error::failed)
    }

    /// A new counter starting at this one's value (a method returning a netref).
    pub fn fork(&self) -> Object {
        Object::new(Counter::new(self.value))
    }
}

/// A new counter starting at `start`, as a netref.
#[export]
fn new_counter(start: i64) -> Object {
    Object::new(Counter::new(start))
}

/// How many counters are alive (rich export).
#[export]
fn live() -> u32 {
    u32::try_from(LIVE.load(Ordering::Relaxed)).unwrap_or(0)
}

/// How many guest objects the node holds references to (the SDK's object table).
#[export]
fn exported() -> u32 {
    u32::try_from(rwc_guest::live_objects()).unwrap_or(u32::MAX)
}

/// How many counters are alive: a plain numeric export, callable without the rich ABI.
#[unsafe(no_mangle)]
pub extern "C" fn live_counters() -> i32 {
    LIVE.load(Ordering::Relaxed)
}
