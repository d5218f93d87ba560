//! Running guests: one actor task per instance owns its store and runs the jobs sent to
//! it (calls of exports and of guest objects, memory access) one at a time.
//!
//! When a guest calls out through `rwc.call` (to a client callback, say), the host import
//! keeps taking this instance's jobs while it waits, and runs them nested inside the
//! suspended call: so a client callback can call back into the same instance, to any depth,
//! without deadlock.
//!
//! A panic in the actor (a bug of the node, or of a host function) ends it and frees the
//! instance; the calls it had taken fail with the panic message, and later calls say the
//! instance died of it ([`Exit`]).

use std::any::Any;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::FutureExt;
use rwc_api::module::AbiKind;
use rwc_protocol::{DecodeLimits, Error, ErrorKind, NetRef, Value};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use wasmtime::Caller;

use super::guest_proxy::GuestProxy;
use super::job_queue::{self, JobQueue, Jobs, NotQueued, Queued, WeakJobs};
use super::output::OutputForwarder;
use crate::abi::handles::HandleTable;
use crate::abi::{self, Fault, GuestCall, TopLevel, lift};
use crate::error::{to_error, to_error_with_panic};
use crate::sandbox::{
    Instance, InstanceOptions, LoadedModule, Number, Sandbox, SandboxError, StoreState, WasmArg,
};
use crate::service::{describe_exports, is_callable_numeric};

/// Per-instance state of the ABI, kept in the store.
pub(crate) struct AbiState {
    pub(crate) handles: HandleTable,
    pub(crate) guest_objects: HashMap<u64, Weak<GuestProxy>>,
    pub(crate) capabilities: HashMap<String, NetRef>,
    pub(crate) pending_result: Option<abi::PendingResult>,
    pub(crate) panic: Option<String>,
    pub(crate) jobs: JobQueue,
    pub(crate) jobs_tx: WeakJobs,
    pub(crate) instance_id: u64,
    pub(crate) limits: DecodeLimits,
    pub(crate) exit: Exit,
}

/// Work for an instance.
pub(crate) struct Job {
    pub(crate) kind: JobKind,
    /// Where the result goes; `None` for fire-and-forget jobs (object drops).
    pub(crate) reply: Option<oneshot::Sender<Result<Value, Error>>>,
    /// The caller's deadline, if it gave one; the instance's own call timeout still caps it.
    pub(crate) deadline: Option<Instant>,
    /// Counts the job while it waits in the queue.
    pub(crate) queued: Option<Queued>,
}

impl Job {
    pub(crate) fn new(
        kind: JobKind,
        reply: Option<oneshot::Sender<Result<Value, Error>>>,
        deadline: Option<Instant>,
    ) -> Job {
        Job {
            kind,
            reply,
            deadline,
            queued: None,
        }
    }
}

pub(crate) enum JobKind {
    /// Call an export: a rich one (`rwc_export_NAME`) with values, or a numeric one.
    Export {
        name: String,
        args: Vec<Value>,
    },
    /// Call a method of one of the guest's objects, or drop one.
    Object(GuestCall),
    ReadMemory {
        offset: u64,
        len: u64,
    },
    WriteMemory {
        offset: u64,
        bytes: Vec<u8>,
    },
    /// Run the module as a WASI command program (`_start`); answers its exit status.
    Program,
    Fuel,
    Close,
}

/// Bounds of an instance's job queue.
#[derive(Clone)]
pub(crate) struct QueueLimits {
    /// Waited-for jobs one instance queues at most.
    pub(crate) per_instance: usize,
    /// Counts the jobs waiting in every instance of the node.
    pub(crate) node: Arc<AtomicUsize>,
}

/// What starting an instance gives the service layer.
pub(crate) struct Started {
    pub(crate) jobs: Jobs,
    pub(crate) exit: Exit,
}

/// How an instance's actor ended, for the callers it leaves behind: the panic message if
/// it died of a panic.
#[derive(Debug, Clone)]
pub(crate) struct Exit(watch::Receiver<Option<Arc<str>>>);

impl Exit {
    /// The error for a call the actor took but never answered.
    pub(crate) async fn unanswered(&self, subject: &str) -> Error {
        match self.panic().await {
            Some(msg) => Error::new(
                ErrorKind::Failed,
                format!(
                    "{subject} died of a panic in the node while running this call: {msg}; \
                     it is gone, make a new instance"
                ),
            ),
            None => Error::disconnected(format!("{subject} closed during the call")),
        }
    }

    /// The error for a call made after the actor ended.
    pub(crate) async fn gone(&self, subject: &str) -> Error {
        match self.panic().await {
            Some(msg) => Error::disconnected(format!(
                "{subject} is gone: it died of a panic in the node ({msg}); make a new instance"
            )),
            None => Error::disconnected(format!("{subject} is closed")),
        }
    }

    /// Waits until the actor has ended; its panic message, if it panicked.
    async fn panic(&self) -> Option<Arc<str>> {
        let mut rx = self.0.clone();
        // The actor sets the message before its task ends; a plain end drops the sender.
        rx.wait_for(Option::is_some).await.ok()?.clone()
    }
}

/// Sends `kind` to an instance's actor and waits for the answer.
///
/// # Cancel safety
/// Dropping the future cancels the job: the actor stops the guest at its next yield point.
pub(crate) async fn run_job(
    jobs: &Jobs,
    exit: &Exit,
    subject: &str,
    kind: JobKind,
    deadline: Option<Instant>,
) -> Result<Value, Error> {
    let (reply, rx) = oneshot::channel();
    match jobs.send(Job::new(kind, Some(reply), deadline)) {
        Ok(()) => {}
        Err(NotQueued::Full(e)) => return Err(e),
        Err(NotQueued::Gone) => return Err(exit.gone(subject).await),
    }
    match rx.await {
        Ok(result) => result,
        Err(_) => Err(exit.unanswered(subject).await),
    }
}

/// Instantiates `module` and starts its actor. `capabilities` are what the guest can look
/// up by name; `output` receives its stdout/stderr.
pub(crate) async fn start(
    sandbox: &Sandbox,
    module: &Arc<LoadedModule>,
    mut options: InstanceOptions,
    capabilities: HashMap<String, NetRef>,
    output: Option<OutputForwarder>,
    instance_id: u64,
    queue: QueueLimits,
) -> Result<Started, Error> {
    if let Some(out) = &output {
        options.output = Some(out.sink());
    }
    let mut instance = sandbox
        .instantiate(module, options)
        .await
        .map_err(to_error)?;
    let (tx, queue) = job_queue::channel(queue.per_instance, queue.node);
    let (exit_tx, exit_rx) = watch::channel(None);
    let exit = Exit(exit_rx);
    instance.store_mut().data_mut().ext = Some(Box::new(AbiState {
        handles: HandleTable::default(),
        guest_objects: HashMap::new(),
        capabilities,
        pending_result: None,
        panic: None,
        jobs: queue.clone(),
        jobs_tx: tx.downgrade(),
        instance_id,
        limits: DecodeLimits::default(),
        exit: exit.clone(),
    }));
    // A WASI reactor (what Rust and C libraries compile to) must be initialised once
    // before any other export is called.
    if module.export("_initialize").is_some() {
        instance.call("_initialize", &[]).await.map_err(to_error)?;
    }
    let rich_exports: Vec<String> = describe_exports(module)
        .into_iter()
        .filter(|e| e.abi == AbiKind::Rich)
        .map(|e| e.name)
        .collect();
    tokio::spawn(async move {
        let run = AssertUnwindSafe(actor(instance, queue, output, rich_exports)).catch_unwind();
        // Unwinding has dropped the instance (its pool slot is free) and the replies of
        // the calls it held; those callers now wait for the message.
        if let Err(panic) = run.await {
            let msg = panic_message(&*panic);
            tracing::error!(instance = instance_id, panic = %msg, "instance actor panicked; the instance is gone");
            let _ = exit_tx.send(Some(msg.into()));
        }
    });
    Ok(Started { jobs: tx, exit })
}

/// What a panic said, if it said it with a string.
fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

async fn actor(
    mut instance: Instance,
    queue: JobQueue,
    output: Option<OutputForwarder>,
    rich: Vec<String>,
) {
    let default_timeout = instance.call_timeout();
    while let Some(job) = queue.next().await {
        let Job {
            kind,
            reply,
            deadline,
            ..
        } = job;
        if matches!(kind, JobKind::Close) {
            if let Some(r) = reply {
                let _ = r.send(Ok(Value::Unit));
            }
            break;
        }
        let timeout = deadline.map_or(default_timeout, |d| {
            d.saturating_duration_since(Instant::now())
                .min(default_timeout)
        });
        instance.set_call_timeout(timeout.max(Duration::from_millis(1)));
        match reply {
            Some(mut reply) => {
                // A caller that stops waiting cancels the job: the guest stops at its next
                // yield point.
                let outcome = tokio::select! {
                    result = run_top(&mut instance, kind, &rich) => Some(result),
                    () = reply.closed() => None,
                };
                if let Some(result) = outcome {
                    if let Some(out) = &output {
                        out.flush().await;
                    }
                    let _ = reply.send(result);
                }
            }
            None => {
                if let Err(e) = run_top(&mut instance, kind, &rich).await {
                    tracing::debug!(error = %e, "background guest job failed");
                }
            }
        }
        instance.set_call_timeout(default_timeout);
    }
    // Dropping the instance frees its slot in the pool.
}

async fn run_top(instance: &mut Instance, kind: JobKind, rich: &[String]) -> Result<Value, Error> {
    take_panic(instance);
    let call = match kind {
        JobKind::Export { name, args } if rich.contains(&name) => GuestCall::Export { name, args },
        JobKind::Export { name, args } => return call_numeric(instance, &name, &args).await,
        JobKind::Object(call) => call,
        JobKind::ReadMemory { offset, len } => {
            return instance
                .read_memory(offset, len)
                .map(|b| Value::Bytes(b.into()))
                .map_err(to_error);
        }
        JobKind::WriteMemory { offset, bytes } => {
            return instance
                .write_memory(offset, &bytes)
                .map(|()| Value::Unit)
                .map_err(to_error);
        }
        JobKind::Program => return run_program(instance).await,
        JobKind::Fuel => return Ok(instance.fuel_remaining().map_or(Value::Unit, Value::U64)),
        JobKind::Close => return Ok(Value::Unit),
    };
    let outcome = instance
        .call_with(move |store, inst| {
            Box::pin(async move {
                let mut ctx = TopLevel {
                    store,
                    instance: inst,
                };
                lift(call.run(&mut ctx).await)
            })
        })
        .await;
    match outcome {
        Ok(result) => result,
        Err(e) => Err(to_error_with_panic(e, take_panic(instance))),
    }
}

fn take_panic(instance: &mut Instance) -> Option<String> {
    abi::state(instance.store_mut())
        .ok()
        .and_then(|s| s.panic.take())
}

/// Runs a WASI command's `_start`, as `wasmtime run` does: returning is exit status 0,
/// `proc_exit(N)` is N, a trap is an error.
async fn run_program(instance: &mut Instance) -> Result<Value, Error> {
    if instance.module().export(START).is_none() {
        return Err(Error::new(
            ErrorKind::Unimplemented,
            format!(
                "the module exports no `{START}`: it is not a WASI command program; name one of                  its exports to call ({})",
                describe_exports(instance.module())
                    .into_iter()
                    .map(|e| e.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let status = match instance.call(START, &[]).await {
        Ok(_) => 0,
        Err(SandboxError::Exit(status)) => status,
        Err(e) => return Err(to_error_with_panic(e, take_panic(instance))),
    };
    rwc_protocol::to_value(&rwc_api::root::ProgramExit { status })
}

/// The entry point of a WASI command program.
const START: &str = "_start";

/// Calls a numeric export with numbers.
async fn call_numeric(instance: &mut Instance, name: &str, args: &[Value]) -> Result<Value, Error> {
    // What a client may call is what the module's description lists, no more.
    if instance
        .module()
        .export(name)
        .is_none_or(|e| !is_callable_numeric(e))
    {
        return Err(to_error(SandboxError::NoSuchExport {
            name: name.to_owned(),
            available: describe_exports(instance.module())
                .into_iter()
                .map(|e| e.name)
                .collect(),
        }));
    }
    let numbers = args
        .iter()
        .enumerate()
        .map(|(i, v)| match *v {
            Value::I64(n) => Ok(Number::Int(n)),
            Value::U64(n) => Ok(Number::UInt(n)),
            Value::F64(n) => Ok(Number::Float(n)),
            Value::Bool(b) => Ok(Number::Int(i64::from(b))),
            ref other => Err(Error::bad_argument(format!(
                "`{name}` is a numeric export; argument {} is a {}, not a number",
                i + 1,
                other.type_name()
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let results = match instance.call_numbers(name, &numbers).await {
        Ok(r) => r,
        Err(e) => return Err(to_error_with_panic(e, take_panic(instance))),
    };
    let mut values: Vec<Value> = results
        .into_iter()
        .map(|r| match r {
            WasmArg::I32(v) => Value::I64(v.into()),
            WasmArg::I64(v) => Value::I64(v),
            WasmArg::F32(v) => Value::F64(v.into()),
            WasmArg::F64(v) => Value::F64(v),
        })
        .collect();
    Ok(match values.len() {
        0 => Value::Unit,
        1 => values.remove(0),
        _ => Value::List(values),
    })
}

/// Runs a job that arrived while the instance is suspended in a host call.
pub(crate) async fn run_nested(caller: &mut Caller<'_, StoreState>, job: Job) {
    let Job { kind, reply, .. } = job;
    let call = match kind {
        JobKind::Export { name, args }
            if caller
                .get_export(&rwc_api::abi::rich_export_symbol(&name))
                .is_some() =>
        {
            Ok(GuestCall::Export { name, args })
        }
        JobKind::Export { name, .. } => Err(Error::new(
            ErrorKind::Overloaded,
            format!(
                "instance is inside a call; only its rich exports can be called meanwhile, and `{name}` is not one"
            ),
        )),
        JobKind::Object(call) => Ok(call),
        JobKind::Close
        | JobKind::Program
        | JobKind::ReadMemory { .. }
        | JobKind::WriteMemory { .. }
        | JobKind::Fuel => Err(Error::new(
            ErrorKind::Overloaded,
            "instance is inside a call; retry when it returns",
        )),
    };
    let result = match call {
        Ok(call) => {
            let r = call.run(caller).await;
            nested_outcome(caller, r)
        }
        Err(e) => Err(e),
    };
    if let Some(r) = reply {
        let _ = r.send(result);
    }
}

fn nested_outcome(
    caller: &mut Caller<'_, StoreState>,
    r: Result<Value, Fault>,
) -> Result<Value, Error> {
    match r {
        Ok(v) => Ok(v),
        Err(Fault::Abi(e)) => Err(e),
        Err(Fault::Trap(t)) => {
            let panic = abi::state(caller).ok().and_then(|s| s.panic.take());
            Err(to_error_with_panic(
                SandboxError::from_execution(t, Duration::ZERO),
                panic,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::SandboxConfig;

    /// An instance whose `boom` export calls a host function that panics: a stand-in for
    /// any bug that panics inside the actor.
    async fn panicking_instance() -> (Sandbox, Started) {
        let config = SandboxConfig {
            max_live_instances: 2,
            ..SandboxConfig::default()
        };
        let sandbox = Sandbox::with_host_functions(config, |linker| {
            abi::define(linker)?;
            linker.func_wrap("test", "boom", || -> () {
                panic!("host function exploded");
            })?;
            Ok(())
        })
        .unwrap();
        let module = sandbox
            .load(
                br#"(module (import "test" "boom" (func $boom))
                      (func (export "boom") call $boom)
                      (func (export "one") (result i32) i32.const 1))"#,
            )
            .unwrap();
        let started = start(
            &sandbox,
            &module,
            InstanceOptions::default(),
            HashMap::new(),
            None,
            1,
            QueueLimits {
                per_instance: 8,
                node: Arc::new(AtomicUsize::new(0)),
            },
        )
        .await
        .unwrap();
        (sandbox, started)
    }

    fn export(name: &str) -> JobKind {
        JobKind::Export {
            name: name.to_owned(),
            args: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_panic_in_the_actor_fails_the_call_with_its_message_and_frees_the_instance() {
        let (sandbox, Started { jobs, exit }) = panicking_instance().await;
        let call = |name: &str| run_job(&jobs, &exit, "the instance", export(name), None);
        assert_eq!(call("one").await.unwrap(), Value::I64(1));
        assert_eq!(sandbox.stats().live_instances, 1);

        let says = |err: &Error, kind, words: &[&str]| {
            assert_eq!(err.kind(), kind, "{err}");
            for word in words {
                assert!(err.message().contains(word), "{word:?} in {err}");
            }
        };
        let err = call("boom").await.unwrap_err();
        says(
            &err,
            ErrorKind::Failed,
            &["died of a panic", "host function exploded"],
        );
        assert_eq!(sandbox.stats().live_instances, 0, "the instance is gone");

        // Later calls say why.
        let err = call("one").await.unwrap_err();
        let why = ["is gone: it died of a panic", "host function exploded"];
        says(&err, ErrorKind::Disconnected, &why);
    }

    #[tokio::test]
    async fn a_closed_instance_says_closed() {
        let (sandbox, Started { jobs, exit }) = panicking_instance().await;
        run_job(&jobs, &exit, "the instance", JobKind::Close, None)
            .await
            .unwrap();
        let err = run_job(&jobs, &exit, "the instance", export("one"), None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Disconnected);
        // "is closed", or "closed during the call" if the job was queued just before the
        // actor let go of its queue: either way, no mention of a panic.
        assert!(err.message().starts_with("the instance") && err.message().contains("closed"));
        assert!(!err.message().contains("panic"), "{err}");
        assert_eq!(sandbox.stats().live_instances, 0);
    }
}
