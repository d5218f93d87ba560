//! Instances: one wasmtime store each, with limits, a WASI context and a deadline per call.
//!
//! Guest code always runs through the `*_async` wasmtime entry points. The engine's epoch
//! advances every tick; each time a running guest notices, the store's epoch callback
//! either yields to the async executor (so one busy guest never holds a worker thread for
//! more than a tick) or, once the call's wall-clock deadline has passed, stops the guest
//! with an interrupt trap that becomes [`SandboxError::TimedOut`].

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use wasmtime::{
    Func, FuncType, PoolConcurrencyLimitError, ResourceLimiter, Store, StoreContextMut,
    StoreLimits, StoreLimitsBuilder, UpdateDeadline, Val, ValType,
};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;

use super::engine::{EpochTicker, Metering};
use super::error::MemoryLimitExceeded;
use super::{
    ExportInfo, ExternKind, LoadedModule, OutputCapture, OutputSink, Sandbox, SandboxError, Stream,
};

/// How long past its deadline a call may stay stuck in a host function (where epoch
/// checks cannot stop it) before it is cancelled from the outside.
const HOST_CALL_GRACE: Duration = Duration::from_secs(1);

/// Per-instance settings; `None` fields take the sandbox's defaults.
#[derive(Debug, Clone, Default)]
pub struct InstanceOptions {
    /// Linear memory limit in bytes (default and ceiling: `SandboxConfig::max_memory`).
    pub memory_limit: Option<u64>,
    /// Fuel budget for the instance's whole life (instantiation included); `None` means
    /// unmetered. Most instructions cost one unit.
    ///
    /// Metering has a price: the instance runs code compiled with fuel checks, which is
    /// slower (the module is compiled that way the first time an instance asks for fuel).
    /// Without a budget, an instance runs code that has no fuel checks at all.
    pub fuel: Option<u64>,
    /// Wall-clock deadline of each call, and of instantiation (default
    /// `SandboxConfig::default_call_timeout`).
    pub call_timeout: Option<Duration>,
    /// Output delivered per call, stdout and stderr together (default
    /// `SandboxConfig::default_max_output`).
    pub max_output: Option<u64>,
    /// Environment variables the guest sees (nothing else of the node's is visible).
    pub env: Vec<(String, String)>,
    /// Command-line arguments the guest sees, `argv[0]` included.
    pub args: Vec<String>,
    /// Where guest stdout/stderr go; `None` discards them.
    pub output: Option<OutputSink>,
}

/// The data of an instance's wasmtime store.
///
/// Host functions added with [`Sandbox::with_host_functions`] see this; `ext` is where
/// they keep their own per-instance state.
pub struct StoreState {
    /// The guest's WASI preview 1 context (no preopens, no network, only the given env
    /// and args).
    pub wasi: WasiP1Ctx,
    /// Table and instance caps. Memory growth is checked against the instance's memory
    /// limit before these are consulted.
    pub limits: StoreLimits,
    /// The guest's stdout/stderr capture.
    pub output: OutputCapture,
    /// Extension slot for the node's other layers (e.g. a netref handle table).
    pub ext: Option<Box<dyn Any + Send>>,
    memory_limit: u64,
    /// When the running call must stop; `None` between calls.
    deadline: Option<Instant>,
}

impl fmt::Debug for StoreState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreState")
            .field("limits", &self.limits)
            .field("output", &self.output)
            .field("memory_limit", &self.memory_limit)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
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
            return Err(MemoryLimitExceeded {
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

/// A numeric Wasm value, as passed to and returned from [`Instance::call`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WasmArg {
    /// A 32-bit integer (Wasm does not say whether it is signed).
    I32(i32),
    /// A 64-bit integer.
    I64(i64),
    /// A 32-bit float.
    F32(f32),
    /// A 64-bit float.
    F64(f64),
}

/// A number as it comes from JSON or a dynamic value, before it is given a Wasm type by
/// [`WasmArg::coerce`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// A signed integer.
    Int(i64),
    /// An unsigned integer (for values above `i64::MAX`).
    UInt(u64),
    /// A float.
    Float(f64),
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(v) => write!(f, "{v}"),
            Self::UInt(v) => write!(f, "{v}"),
            Self::Float(v) => write!(f, "{v:?}"),
        }
    }
}

impl WasmArg {
    /// The Wasm type of this value.
    pub fn ty(&self) -> ValType {
        match self {
            Self::I32(_) => ValType::I32,
            Self::I64(_) => ValType::I64,
            Self::F32(_) => ValType::F32,
            Self::F64(_) => ValType::F64,
        }
    }

    /// Gives `value` the Wasm type `ty`, if it fits without loss.
    ///
    /// - `i32` takes integers from `i32::MIN` to `u32::MAX` (values above `i32::MAX` are
    ///   their two's-complement bit pattern: Wasm integers have no sign);
    /// - `i64` likewise takes `i64::MIN..=u64::MAX`;
    /// - `f32` and `f64` take floats (an `f64` is rounded to the nearest `f32`, but one
    ///   beyond `f32`'s range is refused) and integers they represent exactly
    ///   (up to 2^24 and 2^53 in magnitude);
    /// - floats are never accepted for integer types.
    pub fn coerce(value: Number, ty: &ValType) -> Result<WasmArg, SandboxError> {
        coerce(value, ty).map_err(SandboxError::BadArgument)
    }

    fn to_val(self) -> Val {
        match self {
            Self::I32(v) => Val::I32(v),
            Self::I64(v) => Val::I64(v),
            Self::F32(v) => Val::F32(v.to_bits()),
            Self::F64(v) => Val::F64(v.to_bits()),
        }
    }

    fn from_val(val: &Val) -> Option<Self> {
        match val {
            Val::I32(v) => Some(Self::I32(*v)),
            Val::I64(v) => Some(Self::I64(*v)),
            Val::F32(bits) => Some(Self::F32(f32::from_bits(*bits))),
            Val::F64(bits) => Some(Self::F64(f64::from_bits(*bits))),
            _ => None,
        }
    }
}

/// A live guest instance: its store, limits and output capture.
///
/// Dropping it frees its pool slot and lowers the sandbox's live instance count.
pub struct Instance {
    // Declared first so the store (and its pool slots) is freed before the slot count
    // is released.
    store: Store<StoreState>,
    instance: wasmtime::Instance,
    module: Arc<LoadedModule>,
    call_timeout: Duration,
    /// Which engine the instance runs on: only `Metering::Fuel` code can count fuel.
    metering: Metering,
    /// Whether the instance has a fuel budget (always false if `metering` is
    /// `Unmetered`).
    fuel_metered: bool,
    _live: LiveGuard,
    // Keeps the epoch advancing while this instance can run, so its deadlines hold even
    // if the sandbox is dropped first.
    _ticker: Arc<EpochTicker>,
}

impl Sandbox {
    /// Instantiates `module` in a fresh store, running its start function (if any) under
    /// the call deadline.
    ///
    /// Fails with [`SandboxError::Overloaded`] when the node already has
    /// `max_live_instances` instances.
    ///
    /// With a fuel budget ([`InstanceOptions::fuel`]) the instance runs the module
    /// compiled with fuel metering, which the first such instance of a module compiles
    /// (or finds in the disk cache) on a blocking thread.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops instantiation and frees everything it had allocated.
    pub async fn instantiate(
        &self,
        module: &Arc<LoadedModule>,
        opts: InstanceOptions,
    ) -> Result<Instance, SandboxError> {
        let config = &self.inner.config;
        let live = LiveGuard::acquire(&self.inner.live_instances, config.max_live_instances)?;
        let metering = Metering::for_budget(opts.fuel);
        let pre = self.instance_pre(module, metering).await?;

        // The pool's slots are `max_memory` large: a bigger limit could not be honoured.
        let memory_limit = opts
            .memory_limit
            .unwrap_or(config.max_memory)
            .min(config.max_memory);
        let call_timeout = opts.call_timeout.unwrap_or(config.default_call_timeout);
        let output = OutputCapture::new(
            opts.output,
            opts.max_output.unwrap_or(config.default_max_output),
        );

        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(output.stream(Stream::Stdout))
            .stderr(output.stream(Stream::Stderr))
            .envs(&opts.env)
            .args(&opts.args)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let limits = StoreLimitsBuilder::new()
            .memory_size(usize::try_from(memory_limit).unwrap_or(usize::MAX))
            .table_elements(config.max_table_elements)
            .build();
        let state = StoreState {
            wasi: wasi.build_p1(),
            limits,
            output,
            ext: None,
            memory_limit,
            deadline: None,
        };

        let mut store = Store::new(&self.inner.side(metering).engine, state);
        store.limiter(|state| state as &mut dyn ResourceLimiter);
        store.epoch_deadline_callback(on_epoch);
        if let Some(fuel) = opts.fuel {
            store
                .set_fuel(fuel)
                .map_err(|err| SandboxError::Other(format!("cannot set fuel: {err}")))?;
        }

        let instance = run_guarded(&mut store, call_timeout, move |store| {
            Box::pin(async move { pre.instantiate_async(store).await })
        })
        .await
        .map_err(|err| match err {
            Guarded::Pool => SandboxError::Overloaded {
                limit: config.max_live_instances,
            },
            Guarded::Failed(err) => err,
        })?;

        Ok(Instance {
            store,
            instance,
            module: Arc::clone(module),
            call_timeout,
            metering,
            fuel_metered: opts.fuel.is_some(),
            _live: live,
            _ticker: Arc::clone(&self.inner.ticker),
        })
    }
}

impl Instance {
    /// Calls the exported function `export` with numeric arguments.
    ///
    /// The call runs under the instance's call deadline, with a fresh output budget.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops the guest at its next yield point (at most one epoch
    /// tick away). The instance stays usable, but the guest's own state may be half
    /// updated, as after a trap.
    pub async fn call(
        &mut self,
        export: &str,
        args: &[WasmArg],
    ) -> Result<Vec<WasmArg>, SandboxError> {
        let (func, ty, params) = self.numeric_func_taking(export, args.len())?;
        for (i, (arg, param)) in args.iter().zip(&params).enumerate() {
            if !ValType::eq(&arg.ty(), param) {
                return Err(SandboxError::BadArgument(format!(
                    // i32, i64, f32 and f64 all take "an".
                    "{}, got an {} as argument {}",
                    signature(export, &ty),
                    arg.ty(),
                    i + 1
                )));
            }
        }
        self.call_func(func, &ty, args.iter().map(|a| a.to_val()).collect())
            .await
    }

    /// Like [`call`](Self::call), but with untyped numbers (from JSON, say), each
    /// converted to its parameter's type by [`WasmArg::coerce`].
    ///
    /// # Cancel safety
    ///
    /// As for [`call`](Self::call).
    pub async fn call_numbers(
        &mut self,
        export: &str,
        args: &[Number],
    ) -> Result<Vec<WasmArg>, SandboxError> {
        let (func, ty, params) = self.numeric_func_taking(export, args.len())?;
        let mut vals = Vec::with_capacity(args.len());
        for (i, (arg, param)) in args.iter().zip(&params).enumerate() {
            let arg = coerce(*arg, param).map_err(|why| {
                SandboxError::BadArgument(format!(
                    "{}; argument {}: {why}",
                    signature(export, &ty),
                    i + 1
                ))
            })?;
            vals.push(arg.to_val());
        }
        self.call_func(func, &ty, vals).await
    }

    /// Runs guest code through `f` under the same rules as [`call`](Self::call): the call
    /// deadline, a fresh output budget, and errors mapped to [`SandboxError`]. This is how
    /// typed calls (the guest SDK's ABI) are made.
    ///
    /// `f` must call guest code only through wasmtime's `*_async` methods: the epoch
    /// callback yields, which the synchronous entry points refuse.
    ///
    /// ```no_run
    /// # async fn demo(instance: &mut rwc_node::sandbox::Instance) -> Result<(), rwc_node::sandbox::SandboxError> {
    /// let n: u32 = instance
    ///     .call_with(|store, instance| {
    ///         Box::pin(async move {
    ///             let len = instance.get_typed_func::<(), u32>(&mut *store, "len")?;
    ///             len.call_async(store, ()).await
    ///         })
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// As for [`call`](Self::call).
    pub async fn call_with<R, F>(&mut self, f: F) -> Result<R, SandboxError>
    where
        F: for<'a> FnOnce(
            &'a mut Store<StoreState>,
            wasmtime::Instance,
        )
            -> Pin<Box<dyn Future<Output = wasmtime::Result<R>> + Send + 'a>>,
    {
        let instance = self.instance;
        run_guarded(&mut self.store, self.call_timeout, move |store| {
            f(store, instance)
        })
        .await
        .map_err(Guarded::into_error)
    }

    /// The module this instance was made from.
    pub fn module(&self) -> &Arc<LoadedModule> {
        &self.module
    }

    /// The module's exports.
    pub fn exports(&self) -> &[ExportInfo] {
        self.module.exports()
    }

    /// The guest's output capture, e.g. to point each call's output at its caller.
    pub fn output(&self) -> &OutputCapture {
        &self.store.data().output
    }

    /// The deadline each call runs under.
    pub fn call_timeout(&self) -> Duration {
        self.call_timeout
    }

    /// Changes the deadline of the following calls.
    pub fn set_call_timeout(&mut self, timeout: Duration) {
        self.call_timeout = timeout;
    }

    /// Fuel left, if the instance has a fuel budget.
    pub fn fuel_remaining(&self) -> Option<u64> {
        if self.fuel_metered {
            self.store.get_fuel().ok()
        } else {
            None
        }
    }

    /// Sets a new fuel budget (`None`: unmetered).
    ///
    /// Only an instance created with a fuel budget runs code that counts fuel: it may
    /// get another budget, or none (it then runs on with a budget it cannot exhaust).
    /// Giving a budget to an instance created without one is a
    /// [`SandboxError::BadArgument`].
    pub fn set_fuel(&mut self, fuel: Option<u64>) -> Result<(), SandboxError> {
        match (self.metering, fuel) {
            (Metering::Unmetered, None) => Ok(()),
            (Metering::Unmetered, Some(_)) => Err(SandboxError::BadArgument(
                "this instance was created without a fuel budget, so its code does not \
                 count fuel; give the budget when creating the instance"
                    .to_string(),
            )),
            (Metering::Fuel, _) => {
                self.store
                    .set_fuel(fuel.unwrap_or(u64::MAX))
                    .map_err(|err| SandboxError::Other(format!("cannot set fuel: {err}")))?;
                self.fuel_metered = fuel.is_some();
                Ok(())
            }
        }
    }

    /// Copies `len` bytes at `offset` out of the guest's exported `memory`.
    pub fn read_memory(&mut self, offset: u64, len: u64) -> Result<Vec<u8>, SandboxError> {
        let memory = self.memory()?;
        let data = memory.data(&self.store);
        let range = memory_range(offset, len, data.len())?;
        Ok(data[range].to_vec())
    }

    /// Copies `bytes` into the guest's exported `memory` at `offset`.
    pub fn write_memory(&mut self, offset: u64, bytes: &[u8]) -> Result<(), SandboxError> {
        let memory = self.memory()?;
        let data = memory.data_mut(&mut self.store);
        let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        let range = memory_range(offset, len, data.len())?;
        data[range].copy_from_slice(bytes);
        Ok(())
    }

    /// The wasmtime store, for host code that needs it directly.
    pub fn store(&self) -> &Store<StoreState> {
        &self.store
    }

    /// The wasmtime store, mutably. Guest code run through it bypasses the call deadline
    /// and output reset: prefer [`call_with`](Self::call_with).
    pub fn store_mut(&mut self) -> &mut Store<StoreState> {
        &mut self.store
    }

    /// The wasmtime instance (a handle into [`store`](Self::store)).
    pub fn instance(&self) -> wasmtime::Instance {
        self.instance
    }

    fn memory(&mut self) -> Result<wasmtime::Memory, SandboxError> {
        self.instance
            .get_memory(&mut self.store, "memory")
            .ok_or_else(|| SandboxError::NoSuchExport {
                name: "memory".to_string(),
                available: self.export_names(ExternKind::Memory),
            })
    }

    /// The numeric export `name`, checked to take `arity` arguments; with its parameter types.
    fn numeric_func_taking(
        &mut self,
        name: &str,
        arity: usize,
    ) -> Result<(Func, FuncType, Vec<ValType>), SandboxError> {
        let (func, ty) = self.numeric_func(name)?;
        let params: Vec<ValType> = ty.params().collect();
        if arity != params.len() {
            return Err(SandboxError::BadArgument(format!(
                "{}, got {}",
                signature(name, &ty),
                count(arity, "argument")
            )));
        }
        Ok((func, ty, params))
    }

    /// The export `name` if it is a function with only numeric parameters and results.
    fn numeric_func(&mut self, name: &str) -> Result<(Func, FuncType), SandboxError> {
        let func = self
            .instance
            .get_func(&mut self.store, name)
            .ok_or_else(|| SandboxError::NoSuchExport {
                name: name.to_string(),
                available: self.export_names(ExternKind::Func),
            })?;
        let ty = func.ty(&self.store);
        let numeric =
            |t: ValType| matches!(t, ValType::I32 | ValType::I64 | ValType::F32 | ValType::F64);
        if !(ty.params().all(numeric) && ty.results().all(numeric)) {
            return Err(SandboxError::BadArgument(format!(
                "{}, which cannot be called with plain numbers: only i32, i64, f32 and f64 \
                 parameters and results are supported",
                signature(name, &ty)
            )));
        }
        Ok((func, ty))
    }

    async fn call_func(
        &mut self,
        func: Func,
        ty: &FuncType,
        params: Vec<Val>,
    ) -> Result<Vec<WasmArg>, SandboxError> {
        let results = vec![Val::I32(0); ty.results().len()];
        let results = self
            .call_with(move |store, _| {
                Box::pin(async move {
                    let mut results = results;
                    func.call_async(store, &params, &mut results).await?;
                    Ok(results)
                })
            })
            .await?;
        results
            .iter()
            .map(|val| {
                WasmArg::from_val(val).ok_or_else(|| {
                    SandboxError::Other(format!("guest returned a non-numeric value {val:?}"))
                })
            })
            .collect()
    }

    fn export_names(&self, kind: ExternKind) -> Vec<String> {
        self.module
            .exports()
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.name.clone())
            .collect()
    }
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instance")
            .field("module", &self.module.id())
            .field("call_timeout", &self.call_timeout)
            .field("fuel_remaining", &self.fuel_remaining())
            .finish_non_exhaustive()
    }
}

/// Holds one of the sandbox's live instance slots.
#[derive(Debug)]
struct LiveGuard(Arc<AtomicUsize>);

impl LiveGuard {
    fn acquire(live: &Arc<AtomicUsize>, max: usize) -> Result<Self, SandboxError> {
        live.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .map_err(|_| SandboxError::Overloaded { limit: max })?;
        Ok(Self(Arc::clone(live)))
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How guarded guest execution failed.
enum Guarded {
    /// The engine's instance pool is exhausted.
    Pool,
    Failed(SandboxError),
}

impl Guarded {
    fn into_error(self) -> SandboxError {
        match self {
            Self::Pool => SandboxError::Other(
                "the engine's instance pool is exhausted; retry later".to_string(),
            ),
            Self::Failed(err) => err,
        }
    }
}

/// Runs guest code with a deadline `timeout` from now and a fresh output budget.
async fn run_guarded<R, F>(
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
            Err(Guarded::Pool)
        }
        Ok(Err(err)) => Err(Guarded::Failed(SandboxError::from_execution(err, timeout))),
        // The guest sat in a host function past its deadline; the future is dropped,
        // which cancels it.
        Err(_elapsed) => Err(Guarded::Failed(SandboxError::TimedOut {
            deadline: timeout,
            trace: String::new(),
        })),
    }
}

/// The store's epoch callback: yield to other tasks, or stop once the deadline passed.
fn on_epoch(store: StoreContextMut<'_, StoreState>) -> wasmtime::Result<UpdateDeadline> {
    match store.data().deadline {
        Some(deadline) if Instant::now() >= deadline => Ok(UpdateDeadline::Interrupt),
        _ => Ok(UpdateDeadline::Yield(1)),
    }
}

/// `offset..offset + len` if it lies within a memory of `size` bytes.
fn memory_range(offset: u64, len: u64, size: usize) -> Result<Range<usize>, SandboxError> {
    let out_of_bounds = || {
        SandboxError::BadArgument(format!(
            "memory range {offset}..{} is outside the guest's {size}-byte memory",
            offset.saturating_add(len)
        ))
    };
    let start = usize::try_from(offset).map_err(|_| out_of_bounds())?;
    let len = usize::try_from(len).map_err(|_| out_of_bounds())?;
    let end = start.checked_add(len).ok_or_else(out_of_bounds)?;
    if end > size {
        return Err(out_of_bounds());
    }
    Ok(start..end)
}

/// `add takes (i32, i32) -> i32`
fn signature(name: &str, ty: &FuncType) -> String {
    let params: Vec<String> = ty.params().map(|t| t.to_string()).collect();
    let results: Vec<String> = ty.results().map(|t| t.to_string()).collect();
    let results = match results.as_slice() {
        [one] => one.clone(),
        _ => format!("({})", results.join(", ")),
    };
    format!("{name} takes ({}) -> {results}", params.join(", "))
}

fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Largest integer magnitudes `f32` and `f64` represent exactly.
const F32_EXACT: u64 = 1 << 24;
const F64_EXACT: u64 = 1 << 53;

fn coerce(value: Number, ty: &ValType) -> Result<WasmArg, String> {
    let doesnt_fit = || format!("{value} does not fit in {ty}");
    match ty {
        ValType::I32 => {
            let as_i32 = |v: i128| {
                i32::try_from(v).ok().or_else(|| {
                    u32::try_from(v)
                        .ok()
                        .map(|u| i32::from_ne_bytes(u.to_ne_bytes()))
                })
            };
            match value {
                Number::Int(v) => as_i32(v.into()),
                Number::UInt(v) => as_i32(v.into()),
                Number::Float(_) => {
                    return Err(format!("expected an integer for {ty}, got {value}"));
                }
            }
            .map(WasmArg::I32)
            .ok_or_else(doesnt_fit)
        }
        ValType::I64 => match value {
            Number::Int(v) => Ok(WasmArg::I64(v)),
            Number::UInt(v) => Ok(WasmArg::I64(i64::from_ne_bytes(v.to_ne_bytes()))),
            Number::Float(_) => Err(format!("expected an integer for {ty}, got {value}")),
        },
        ValType::F32 => match value {
            Number::Float(v) if v.is_finite() && v.abs() > f64::from(f32::MAX) => Err(doesnt_fit()),
            // Rounding to the nearest f32 is the conversion asked for; out-of-range
            // values were refused above.
            #[allow(clippy::cast_possible_truncation)]
            Number::Float(v) => Ok(WasmArg::F32(v as f32)),
            Number::Int(v) if v.unsigned_abs() <= F32_EXACT => {
                // Exact: |v| <= 2^24 fits an f32's mantissa.
                #[allow(clippy::cast_precision_loss)]
                Ok(WasmArg::F32(v as f32))
            }
            Number::UInt(v) if v <= F32_EXACT =>
            {
                #[allow(clippy::cast_precision_loss)]
                Ok(WasmArg::F32(v as f32))
            }
            _ => Err(format!("{value} is not exactly representable as {ty}")),
        },
        ValType::F64 => match value {
            Number::Float(v) => Ok(WasmArg::F64(v)),
            Number::Int(v) if v.unsigned_abs() <= F64_EXACT => {
                // Exact: |v| <= 2^53 fits an f64's mantissa.
                #[allow(clippy::cast_precision_loss)]
                Ok(WasmArg::F64(v as f64))
            }
            Number::UInt(v) if v <= F64_EXACT =>
            {
                #[allow(clippy::cast_precision_loss)]
                Ok(WasmArg::F64(v as f64))
            }
            _ => Err(format!("{value} is not exactly representable as {ty}")),
        },
        other => Err(format!("{other} parameters cannot be passed as numbers")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_coerce_within_range() {
        let i32_ = ValType::I32;
        assert_eq!(
            WasmArg::coerce(Number::Int(-5), &i32_).unwrap(),
            WasmArg::I32(-5)
        );
        assert_eq!(
            WasmArg::coerce(Number::UInt(u64::from(u32::MAX)), &i32_).unwrap(),
            WasmArg::I32(-1),
            "u32 values are i32 bit patterns"
        );
        assert!(WasmArg::coerce(Number::Int(1 << 32), &i32_).is_err());
        assert!(WasmArg::coerce(Number::Int(i64::from(i32::MIN) - 1), &i32_).is_err());
        assert!(WasmArg::coerce(Number::Float(1.0), &i32_).is_err());
        assert_eq!(
            WasmArg::coerce(Number::UInt(u64::MAX), &ValType::I64).unwrap(),
            WasmArg::I64(-1)
        );
    }

    #[test]
    fn floats_take_floats_and_exact_integers() {
        assert_eq!(
            WasmArg::coerce(Number::Float(0.5), &ValType::F32).unwrap(),
            WasmArg::F32(0.5)
        );
        assert!(WasmArg::coerce(Number::Float(1e300), &ValType::F32).is_err());
        assert_eq!(
            WasmArg::coerce(Number::Int(-3), &ValType::F64).unwrap(),
            WasmArg::F64(-3.0)
        );
        assert_eq!(
            WasmArg::coerce(Number::UInt(1 << 24), &ValType::F32).unwrap(),
            WasmArg::F32(16_777_216.0)
        );
        assert!(WasmArg::coerce(Number::Int((1 << 24) + 1), &ValType::F32).is_err());
        assert!(WasmArg::coerce(Number::Int((1 << 53) + 1), &ValType::F64).is_err());
        assert_eq!(
            WasmArg::coerce(Number::Float(f64::INFINITY), &ValType::F32).unwrap(),
            WasmArg::F32(f32::INFINITY)
        );
    }

    #[test]
    fn memory_ranges_are_bounds_checked() {
        assert_eq!(memory_range(0, 4, 4).unwrap(), 0..4);
        assert_eq!(memory_range(4, 0, 4).unwrap(), 4..4);
        assert!(memory_range(1, 4, 4).is_err());
        assert!(memory_range(u64::MAX, 2, 4).is_err());
        let err = memory_range(10, 2, 4).unwrap_err();
        assert_eq!(
            err.to_string(),
            "memory range 10..12 is outside the guest's 4-byte memory"
        );
    }

    #[test]
    fn signatures_read_like_the_docs() {
        let ty = FuncType::new(
            &wasmtime::Engine::default(),
            [ValType::I32, ValType::I32],
            [ValType::I32],
        );
        assert_eq!(signature("add", &ty), "add takes (i32, i32) -> i32");
        let ty = FuncType::new(&wasmtime::Engine::default(), [], []);
        assert_eq!(signature("run", &ty), "run takes () -> ()");
    }
}
