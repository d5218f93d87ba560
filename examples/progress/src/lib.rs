//! Calls back into the caller: progress reports and nested calls.

use rwc_guest::{Error, Remote, export};

/// Works through `steps` steps, calling `cb` with the percentage done after each (`cb` is a
/// client callback: an object with a `call` method). Returns `steps`. An error from the
/// callback ends the run with that error.
#[export]
fn run(steps: u32, cb: Remote) -> Result<u32, Error> {
    let mut acc: u64 = 0;
    for step in 1..=steps {
        acc = work(acc, step);
        let percent = u64::from(step) * 100 / u64::from(steps);
        cb.call::<()>("call", (percent,))?;
    }
    std::hint::black_box(acc);
    Ok(steps)
}

/// Calls `cb` with 0..n and sums what it returns. The callback may call back into this
/// instance while `ping_back` waits (reentrancy).
#[export]
fn ping_back(n: u32, cb: Remote) -> Result<u64, Error> {
    let mut sum = 0u64;
    for i in 0..n {
        sum = sum.wrapping_add(cb.call::<u64>("call", (i,))?);
    }
    Ok(sum)
}

/// Returns `x + 1`: a quick export for a callback to call while `ping_back` waits.
#[export]
fn inc(x: u64) -> u64 {
    x.wrapping_add(1)
}

/// A little work per step, so the loop is not just calls.
fn work(mut acc: u64, step: u32) -> u64 {
    for i in 0..10_000u64 {
        acc = acc
            .wrapping_mul(6364136223846793005)
            .wrapping_add(i ^ u64::from(step));
    }
    acc
}

/// Returns the netref it was given: the caller gets its own object back.
#[export]
fn hand_back(cb: Remote) -> Remote {
    cb
}
