//! An instance's wasmtime store: its data (WASI context, limits, output capture, the
//! ABI's slot), the resource limiter that enforces its memory limit, and the deadline
//! every piece of guest code runs under.
//!
//! Guest code always runs through the `*_async` wasmtime entry points. The engine's epoch
//! advances every tick; each time a running guest notices, the store's epoch callback
//! either yields to the async executor (so one busy guest never holds a worker thread for
//! more than a tick) or, once the call's wall-clock deadline has passed, stops the guest
//! with an interrupt trap that becomes [`SandboxError::TimedOut`].

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use wasmtime::{
    PoolConcurrencyLimitError, ResourceLimiter, Store, StoreContextMut, StoreLimits, UpdateDeadline,
};

use super::error::{Growable, LimitExceeded};
use super::{GuestWasi, OutputCapture, SandboxError};

/// How long past its deadline a call may stay stuck in a host function (where epoch
/// checks cannot stop it) before it is cancelled from the outside.
const HOST_CALL_GRACE: Duration = Duration::from_secs(1);

/// The data of an instance's wasmtime store.
///
/// Host functions added with [`Sandbox::with_host_functions`](super::Sandbox::with_host_functions) see this; `ext` is where
/// they keep their own per-instance state. Its `Debug` shows no secret: the WASI context
/// shows only whether it is audited, `ext` only that it is set.
#[derive(Debug)]
pub struct StoreState {
    /// The guest's WASI preview 1 context: no network, only the given env, args and
    /// preopened directories.
    pub wasi: GuestWasi,
    /// Table and instance caps. Memory growth is checked against the instance's memory
    /// limit before these are consulted.
    pub limits: StoreLimits,
    /// The guest's stdout/stderr capture.
    pub output: OutputCapture,
    /// Extension slot for the node's other layers (e.g. a netref handle table).
    pub ext: Option<Box<dyn Any + Send>>,
    memory_limit: u64,
    /// Most elements a table may have.
    table_limit: usize,
    /// When the running call must stop; `None` between calls.
    deadline: Option<Instant>,
}

impl StoreState {
    /// The state of a new store whose memory may grow to `memory_limit` bytes and whose
    /// tables to `table_limit` elements.
    pub(super) fn new(
        wasi: GuestWasi,
        limits: StoreLimits,
        output: OutputCapture,
        memory_limit: u64,
        table_limit: usize,
    ) -> Self {
        StoreState {
            wasi,
            limits,
            output,
            ext: None,
            memory_limit,
            table_limit,
            deadline: None,
        }
    }
}

impl ResourceLimiter for StoreState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let requested = u64::try_from(desired).unwrap_or(u64::MAX);
        if requested > self.memory_limit {
            // An error rather than `Ok(false)`: `memory.grow` returning -1 would leave
            // the guest to fail in some less obvious way later.
            return Err(LimitExceeded {
                what: Growable::Memory,
                requested,
                limit: self.memory_limit,
            }
            .into());
        }
        // Growth past the module's own declared maximum still fails the normal way
        // (-1 to the guest).
        self.limits.memory_growing(current, desired, maximum)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_limit {
            // An error, as for memory: `table.grow` returning -1 leaves the guest to fail
            // less obviously later.
            return Err(LimitExceeded {
                what: Growable::Table,
                requested: u64::try_from(desired).unwrap_or(u64::MAX),
                limit: u64::try_from(self.table_limit).unwrap_or(u64::MAX),
            }
            .into());
        }
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// How guarded guest execution failed.
pub(super) enum Guarded {
    /// One of the engine's pools is exhausted (wasmtime's message).
    Pool(String),
    Failed(SandboxError),
}

impl Guarded {
    pub(super) fn into_error(self) -> SandboxError {
        match self {
            Self::Pool(message) => SandboxError::PoolExhausted { message },
            Self::Failed(err) => err,
        }
    }
}

/// Runs guest code with a deadline `timeout` from now and a fresh output budget.
pub(super) async fn run_guarded<R, F>(
    store: &mut Store<StoreState>,
    timeout: Duration,
    f: F,
) -> Result<R, Guarded>
where
    F: for<'a> FnOnce(
        &'a mut Store<StoreState>,
    ) -> Pin<Box<dyn Future<Output = wasmtime::Result<R>> + Send + 'a>>,
{
    let state = store.data_mut();
    state.output.reset();
    // A deadline too far away to represent is no deadline.
    state.deadline = Instant::now().checked_add(timeout);
    // Check at the next tick; `on_epoch` then re-arms one tick at a time.
    store.set_epoch_deadline(1);

    let outcome = tokio::time::timeout(timeout.saturating_add(HOST_CALL_GRACE), f(store)).await;
    store.data_mut().deadline = None;
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) if err.downcast_ref::<PoolConcurrencyLimitError>().is_some() => {
            Err(Guarded::Pool(err.to_string()))
        }
        Ok(Err(err)) => Err(Guarded::Failed(SandboxError::from_execution(err, timeout))),
        // The guest sat in a host function past its deadline; the future is dropped,
        // which cancels it.
        Err(_elapsed) => Err(Guarded::Failed(SandboxError::TimedOut {
            call_timeout: timeout,
            trace: String::new(),
        })),
    }
}

/// The store's epoch callback: yield to other tasks, or stop once the deadline passed.
pub(super) fn on_epoch(store: StoreContextMut<'_, StoreState>) -> wasmtime::Result<UpdateDeadline> {
    match store.data().deadline {
        Some(deadline) if Instant::now() >= deadline => Ok(UpdateDeadline::Interrupt),
        _ => Ok(UpdateDeadline::Yield(1)),
    }
}
