//! Instances: one wasmtime store each ([`store`](super::store)), made from a module's
//! pre-linked form, with limits, a WASI context (nothing granted) and a deadline per call.
//! Calls with numbers are in [`numeric`](super::numeric), memory access in
//! [`memory`](super::memory).

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use wasmtime::{ResourceLimiter, Store, StoreLimitsBuilder};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use super::engine::{EpochTicker, Metering};
use super::store::{Guarded, StoreState, on_epoch, run_guarded};
use super::{
    ExportInfo, ExternKind, GuestWasi, LoadedModule, OutputCapture, OutputSink, Sandbox,
    SandboxError, Stream,
};

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
    /// Whose compile turn a compilation for fuel metering takes (the compile queue is
    /// fair across clients; see [`Sandbox::load_queued`]).
    pub client: u64,
    /// Host directories the guest sees, each at its guest path.
    pub preopens: Vec<Preopen>,
    /// Who the guest acts for: with preopens, its file changes go to the audit log
    /// ([`crate::audit`]) under this name; `None` logs nothing.
    pub audit_as: Option<String>,
}

/// A host directory a guest sees as a WASI preopen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preopen {
    /// The directory on the host.
    pub host: PathBuf,
    /// Where the guest sees it (`/logs`).
    pub guest: String,
    /// Whether every change is refused (`EPERM`), as wasmtime-wasi's read-only
    /// permissions refuse them.
    pub read_only: bool,
}

/// A live guest instance: its store, limits and output capture.
///
/// Dropping it frees its pool slot and lowers the sandbox's live instance count.
pub struct Instance {
    // Declared first so the store (and its pool slots) is freed before the slot count
    // is released.
    pub(super) store: Store<StoreState>,
    pub(super) instance: wasmtime::Instance,
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
        let pre = self.instance_pre(module, metering, opts.client).await?;

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
        for p in &opts.preopens {
            let perms = if p.read_only {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            wasi.preopened_dir(&p.host, &p.guest, perms).map_err(|e| {
                // The host path is the operator's business: the error names the guest's.
                tracing::warn!(host = %p.host.display(), guest = %p.guest, error = %e, "cannot open a granted directory");
                SandboxError::Other(format!(
                    "the node cannot open the directory it grants at {}: {e}",
                    p.guest
                ))
            })?;
        }
        let limits = StoreLimitsBuilder::new()
            .memory_size(usize::try_from(memory_limit).unwrap_or(usize::MAX))
            .table_elements(config.max_table_elements)
            .build();
        let wasi = match &opts.audit_as {
            Some(who) if !opts.preopens.is_empty() => {
                let guest_paths: Vec<String> =
                    opts.preopens.iter().map(|p| p.guest.clone()).collect();
                GuestWasi::audited(wasi.build_p1(), who, &guest_paths)
            }
            _ => GuestWasi::new(wasi.build_p1()),
        };
        let state = StoreState::new(
            wasi,
            limits,
            output,
            memory_limit,
            config.max_table_elements,
        );

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
            Guarded::Pool(_) => SandboxError::Overloaded {
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

    pub(super) fn export_names(&self, kind: ExternKind) -> Vec<String> {
        self.module
            .exports()
            .iter()
            .filter(|e| e.declared.kind == kind)
            .map(|e| e.declared.name.clone())
            .collect()
    }
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instance")
            .field("module", &self.module.hash())
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
