//! An instance netref: a live guest. Its exports are its methods; `rwc.*` methods reach
//! its memory and lifecycle.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rwc_api::instance::{self, InstanceInfo, ReadMemory, WriteMemory};
use rwc_api::{InstanceOptions, Limits, Request};
use rwc_protocol::object::{Call, Dispatch, MethodTable};
use rwc_protocol::{Error, ErrorKind, MethodInfo, Value, to_value};
use tokio::time::Instant;

use super::actor::{self, Exit, JobKind, QueueLimits};
use super::job_queue::Jobs;
use super::output::OutputForwarder;
use crate::Node;
use crate::capabilities;
use crate::principal::Principal;
use crate::sandbox::InstanceOptions as SandboxOptions;
use crate::sandbox::LoadedModule;
use crate::service::describe_exports;

/// A live instance of a module.
pub struct InstanceObject {
    node: Node,
    module: Arc<LoadedModule>,
    jobs: Jobs,
    exit: Exit,
    id: u64,
    /// Its principal: whose concurrent calls its calls count against.
    principal: Arc<Principal>,
    _slot: Slot,
    _principal_slot: Slot,
}

impl std::fmt::Debug for InstanceObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceObject")
            .field("id", &self.id)
            .field("module", &self.module.hash())
            .finish_non_exhaustive()
    }
}

/// Counts an instance against a cap (its connection's, its principal's) while it lives.
pub(crate) struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// One of `max` slots of `count`, or `None` if all are taken.
    pub(crate) fn take(count: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        if count.fetch_add(1, Ordering::SeqCst) >= max {
            count.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Slot(count.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

const META: MethodTable = MethodTable(instance::METHODS);

/// Creates an instance for a connection of `principal` whose live instances `count`
/// tracks, within the principal's grants and limits.
pub(crate) async fn instantiate(
    node: &Node,
    module: &Arc<LoadedModule>,
    mut options: InstanceOptions,
    count: &Arc<AtomicUsize>,
    principal: &Arc<Principal>,
    client: u64,
) -> Result<InstanceObject, Error> {
    let cap = node.inner.config.limits.max_instances_per_connection;
    let slot = Slot::take(count, cap).ok_or_else(|| {
        Error::new(
            ErrorKind::Overloaded,
            format!(
                "this connection holds {cap} live instances, its limit \
                 (max_instances_per_connection); drop or close some first"
            ),
        )
    })?;
    let principal_slot = principal.take_instance()?;
    let output = match options.output.take() {
        Some(sink) => Some(OutputForwarder::start(sink.into_netref("the output sink")?)),
        None => None,
    };
    let resolved = capabilities::resolve(node, &options.capabilities, principal, output.as_ref())?;
    let mut caps = resolved.objects;
    for (name, object) in std::mem::take(&mut options.objects) {
        let netref = object.into_netref(&format!("the object `{name}` handed to the guest"))?;
        caps.insert(name, netref);
    }
    let id = node.inner.next_instance.fetch_add(1, Ordering::Relaxed);
    let mut sandbox_options = SandboxOptions {
        client,
        ..within_limits(&options, &node.inner.config.limits, principal)?
    };
    sandbox_options.preopens = resolved.preopens;
    sandbox_options.audit_as = Some(principal.name().to_owned());
    let started = actor::start(
        &node.inner.sandbox,
        module,
        sandbox_options,
        caps,
        output,
        id,
        QueueLimits {
            per_instance: node.inner.config.limits.max_queued_jobs_per_instance,
            node: node.inner.queued_jobs.clone(),
        },
    )
    .await?;
    Ok(InstanceObject {
        node: node.clone(),
        module: module.clone(),
        jobs: started.jobs,
        exit: started.exit,
        id,
        principal: principal.clone(),
        _slot: slot,
        _principal_slot: principal_slot,
    })
}

/// The sandbox options for what a client asked, within its principal's limits (each
/// within the node's). Asking for more than allowed is an error that names the setting,
/// not a silent clamp: a guest given less memory than it was meant to have would fail
/// later, further from the cause.
fn within_limits(
    options: &InstanceOptions,
    node: &Limits,
    principal: &Principal,
) -> Result<SandboxOptions, Error> {
    let mine = principal.limits();
    let cap = |key: &'static str, node_cap: u64, own_cap: u64| Cap {
        key,
        value: own_cap,
        principal: (own_cap < node_cap).then(|| principal.name()),
    };
    let memory = at_most(
        options.memory,
        cap("memory_bytes", node.memory_bytes, mine.memory_bytes),
        "memory",
        "bytes",
    )?;
    let max_output = at_most(
        options.max_output,
        cap(
            "max_output_bytes",
            node.max_output_bytes,
            node.max_output_bytes,
        ),
        "max_output",
        "bytes",
    )?;
    let timeout_ms = options
        .call_timeout
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let timeout_ms = at_most(
        timeout_ms,
        cap(
            "call_timeout_ms",
            node.call_timeout_ms,
            mine.call_timeout_ms,
        ),
        "call_timeout_ms",
        "ms",
    )?;
    // A principal with a fuel budget gets metered instances, never more than its budget.
    let fuel = match mine.fuel {
        Some(budget) => {
            let own = Cap {
                key: "fuel",
                value: budget,
                principal: Some(principal.name()),
            };
            Some(at_most(options.fuel, own, "fuel", "units")?)
        }
        None => options.fuel,
    };
    Ok(SandboxOptions {
        memory_limit: Some(memory),
        fuel,
        call_timeout: Some(Duration::from_millis(timeout_ms)),
        max_output: Some(max_output),
        env: options
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        args: options.args.clone(),
        ..SandboxOptions::default()
    })
}

/// A limit on an instance option: its value, its key, and whose it is (a principal's
/// `[principals.limits]`, or the node's `[limits]` when `principal` is `None`).
struct Cap<'a> {
    key: &'static str,
    value: u64,
    principal: Option<&'a str>,
}

/// What was `asked` for the instance option `option`, or the `cap` if nothing was; more
/// than the cap is a `limit` error naming the setting that sets it.
fn at_most(asked: Option<u64>, cap: Cap<'_>, option: &str, unit: &str) -> Result<u64, Error> {
    let Cap {
        key,
        value: cap,
        principal,
    } = cap;
    match asked {
        Some(n) if n > cap => Err(Error::new(
            ErrorKind::Limit,
            match principal {
                None => format!(
                    "the instance asks for {option} = {n} {unit}, over this node's cap of {cap} \
                     {unit}; ask for at most that, or raise the node's `{key}` ([limits] in its \
                     config, or `rwc-node --{}`)",
                    key.replace('_', "-")
                ),
                Some(name) => format!(
                    "the instance asks for {option} = {n} {unit}, over the cap of {cap} {unit} \
                     for principal `{name}`; ask for at most that, or raise its `{key}` \
                     ([principals.limits] in the node's config)"
                ),
            },
        )),
        Some(n) => Ok(n),
        None => Ok(cap),
    }
}

impl InstanceObject {
    /// Calls an export (rich or numeric).
    pub(crate) async fn invoke(
        &self,
        export: &str,
        args: Vec<Value>,
        deadline: Option<Instant>,
    ) -> Result<Value, Error> {
        let _permit = self.call_permit()?;
        self.job(
            JobKind::Export {
                name: export.to_owned(),
                args,
            },
            deadline,
        )
        .await
    }

    /// Runs the module as a WASI command program: its `_start`, whose exit status is the
    /// answer ([`rwc_api::root::ProgramExit`]).
    pub(crate) async fn run_program(&self, deadline: Option<Instant>) -> Result<Value, Error> {
        let _permit = self.call_permit()?;
        self.job(JobKind::Program, deadline).await
    }

    /// A slot among the node's concurrent guest calls and one among its principal's,
    /// counted, or `overloaded`; both are held until the result is dropped.
    fn call_permit(
        &self,
    ) -> Result<
        (
            tokio::sync::OwnedSemaphorePermit,
            tokio::sync::OwnedSemaphorePermit,
        ),
        Error,
    > {
        let permit = self
            .node
            .inner
            .calls
            .clone()
            .try_acquire_owned()
            .map_err(|_| {
                self.node
                    .inner
                    .calls_refused
                    .fetch_add(1, Ordering::Relaxed);
                Error::new(
                    ErrorKind::Overloaded,
                    format!(
                        "node is running {} guest calls, its limit (max_concurrent_calls); retry later",
                        self.node.inner.config.limits.max_concurrent_calls
                    ),
                )
            })?;
        let principal_permit = self.principal.take_call()?;
        self.node.inner.calls_total.fetch_add(1, Ordering::Relaxed);
        Ok((permit, principal_permit))
    }

    /// Frees the instance now (later calls fail), once the jobs queued before this one
    /// have run. Fails only if the instance's queue is full (`overloaded`); an instance
    /// already gone counts as closed.
    pub(crate) async fn close(&self) -> Result<(), Error> {
        match self.job(JobKind::Close, None).await {
            Err(e) if e.kind() != ErrorKind::Disconnected => Err(e),
            _ => Ok(()),
        }
    }

    async fn job(&self, kind: JobKind, deadline: Option<Instant>) -> Result<Value, Error> {
        actor::run_job(&self.jobs, &self.exit, "the instance", kind, deadline).await
    }
}

impl Dispatch for InstanceObject {
    const TYPE_NAME: &'static str = "instance";
    const METHODS: MethodTable = META;
    const RUNS_LONG: bool = true;

    async fn dispatch<'a>(&'a self, call: Call<'a>) -> Result<Value, Error> {
        let deadline = call.ctx.deadline();
        match call.method {
            instance::Exports::METHOD => to_value(&describe_exports(&self.module)),
            ReadMemory::METHOD => {
                let ReadMemory { offset, len } = ReadMemory::from_args(call.args)?;
                self.job(JobKind::ReadMemory { offset, len }, deadline)
                    .await
            }
            WriteMemory::METHOD => {
                let WriteMemory { offset, bytes } = WriteMemory::from_args(call.args)?;
                let bytes = bytes.into_vec();
                self.job(JobKind::WriteMemory { offset, bytes }, deadline)
                    .await
            }
            instance::Fuel::METHOD => self.job(JobKind::Fuel, deadline).await,
            instance::Info::METHOD => to_value(&InstanceInfo {
                id: self.id,
                module: self.module.hash().to_owned(),
            }),
            instance::Close::METHOD => self.close().await.map(|()| Value::Unit),
            export => self.invoke(export, call.args, deadline).await,
        }
    }

    /// Its exports, then the `rwc.*` methods every instance has.
    fn listed_methods(&self) -> Vec<MethodInfo> {
        let mut m: Vec<MethodInfo> = describe_exports(&self.module)
            .into_iter()
            .map(|e| MethodInfo::new(e.name.clone(), format!("{} export: {e}", e.abi)))
            .collect();
        m.extend(META.infos());
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::Principals;

    /// The principal of a node without `[[principals]]` whose limits are `limits`.
    fn anonymous(limits: &Limits) -> Arc<Principal> {
        let principals = Principals::new(&[], &[], limits, false).unwrap();
        principals.get(None).unwrap().clone()
    }

    #[test]
    fn client_requests_within_the_node_limits_are_kept() {
        let limits = Limits::default();
        let principal = anonymous(&limits);
        let asked = InstanceOptions {
            memory: Some(16 << 20),
            call_timeout: Some(Duration::from_millis(500)),
            max_output: Some(1),
            ..InstanceOptions::default()
        };
        let s = within_limits(&asked, &limits, &principal).unwrap();
        assert_eq!(s.memory_limit, Some(16 << 20));
        assert_eq!(s.call_timeout, Some(Duration::from_millis(500)));
        assert_eq!(s.max_output, Some(1));
        let s = within_limits(&InstanceOptions::default(), &limits, &principal).unwrap();
        assert_eq!(s.memory_limit, Some(256 << 20), "the node's default");
        assert_eq!(s.call_timeout, Some(Duration::from_secs(30)));
        assert_eq!(s.max_output, Some(16 << 20));
        let at_the_cap = InstanceOptions {
            memory: Some(256 << 20),
            ..InstanceOptions::default()
        };
        assert!(within_limits(&at_the_cap, &limits, &principal).is_ok());
    }

    #[test]
    fn client_requests_over_the_node_limits_name_the_cap() {
        let limits = Limits::default();
        let principal = anonymous(&limits);
        let err = |asked: InstanceOptions| within_limits(&asked, &limits, &principal).unwrap_err();
        let e = err(InstanceOptions {
            memory: Some(1 << 30),
            ..InstanceOptions::default()
        });
        assert_eq!(e.kind(), ErrorKind::Limit);
        assert_eq!(
            e.message(),
            "the instance asks for memory = 1073741824 bytes, over this node's cap of \
             268435456 bytes; ask for at most that, or raise the node's `memory_bytes` \
             ([limits] in its config, or `rwc-node --memory-bytes`)"
        );
        let e = err(InstanceOptions {
            call_timeout: Some(Duration::from_secs(3600)),
            ..InstanceOptions::default()
        });
        assert_eq!(e.kind(), ErrorKind::Limit);
        assert!(e.message().contains("call_timeout_ms = 3600000 ms"), "{e}");
        assert!(e.message().contains("--call-timeout-ms"), "{e}");
        let e = err(InstanceOptions {
            max_output: Some(1 << 30),
            ..InstanceOptions::default()
        });
        assert!(e.message().contains("--max-output-bytes"), "{e}");
    }
}
