//! An instance netref: a live guest. Its exports are its methods; `rwc.*` methods reach
//! its memory and lifecycle.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rwc_api::instance::{self, InstanceInfo, ReadMemory, WriteMemory};
use rwc_api::{EffectiveLimits, InstanceOptions, Request};
use rwc_protocol::object::{Call, Dispatch, MethodTable};
use rwc_protocol::{Error, ErrorKind, MethodInfo, Value, to_value};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::actor::{self, Exit, Job, JobKind};
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
    jobs: mpsc::UnboundedSender<Job>,
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
) -> Result<InstanceObject, Error> {
    let cap = node.inner.config.limits.max_instances_per_connection;
    let slot = Slot::take(count, cap).ok_or_else(|| {
        Error::new(
            ErrorKind::Overloaded,
            format!(
                "this connection holds {cap} live instances, its limit; drop or close some first"
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
    let mut sandbox_options = capped(
        &options,
        node.config().limits.max_output_bytes,
        principal.limits(),
    );
    sandbox_options.preopens = resolved.preopens;
    sandbox_options.audit_as = Some(principal.name().to_owned());
    let started = actor::start(
        &node.inner.sandbox,
        module,
        sandbox_options,
        caps,
        output,
        id,
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

/// The sandbox options for what a client asked, capped by its principal's limits (each
/// within the node's) and the node's `max_output` (output per call).
fn capped(options: &InstanceOptions, max_output: u64, limits: &EffectiveLimits) -> SandboxOptions {
    let cap = |asked: Option<u64>, limit: u64| Some(asked.unwrap_or(limit).min(limit));
    let timeout_limit = Duration::from_millis(limits.call_timeout_ms);
    // A principal with a fuel limit gets metered instances, never more than its budget.
    let fuel = match limits.fuel {
        Some(limit) => cap(options.fuel, limit),
        None => options.fuel,
    };
    SandboxOptions {
        memory_limit: cap(options.memory, limits.memory_bytes),
        fuel,
        call_timeout: Some(
            options
                .call_timeout
                .unwrap_or(timeout_limit)
                .min(timeout_limit),
        ),
        max_output: cap(options.max_output, max_output),
        env: options
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        args: options.args.clone(),
        ..SandboxOptions::default()
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
                        "node is running {} guest calls, its limit; retry later",
                        self.node.inner.config.limits.max_concurrent_calls
                    ),
                )
            })?;
        let principal_permit = self.principal.take_call()?;
        self.node.inner.calls_total.fetch_add(1, Ordering::Relaxed);
        Ok((permit, principal_permit))
    }

    /// Frees the instance now (later calls fail).
    pub(crate) async fn close(&self) {
        let _ = self.job(JobKind::Close, None).await;
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
            instance::Close::METHOD => {
                self.close().await;
                Ok(Value::Unit)
            }
            export => self.invoke(export, call.args, deadline).await,
        }
    }

    /// Its exports, then the `rwc.*` methods every instance has.
    fn listed_methods(&self) -> Vec<MethodInfo> {
        let mut m: Vec<MethodInfo> = describe_exports(&self.module)
            .into_iter()
            .map(|e| MethodInfo::new(e.name, format!("{} export: {}", e.abi, e.signature)))
            .collect();
        m.extend(META.infos());
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_requests_are_capped_by_the_node_limits() {
        let node = rwc_api::Limits::default();
        let limits = crate::principal::effective(&rwc_api::PrincipalLimits::default(), &node);
        let asked = InstanceOptions {
            memory: Some(1 << 40),
            call_timeout: Some(Duration::from_millis(500)),
            max_output: Some(1),
            ..InstanceOptions::default()
        };
        let s = capped(&asked, node.max_output_bytes, &limits);
        assert_eq!(s.memory_limit, Some(256 << 20), "capped at memory_bytes");
        assert_eq!(s.call_timeout, Some(Duration::from_millis(500)));
        assert_eq!(s.max_output, Some(1));
        let s = capped(
            &InstanceOptions {
                call_timeout: Some(Duration::from_secs(3600)),
                ..InstanceOptions::default()
            },
            node.max_output_bytes,
            &limits,
        );
        assert_eq!(s.call_timeout, Some(Duration::from_secs(30)), "capped");
        let s = capped(&InstanceOptions::default(), node.max_output_bytes, &limits);
        assert_eq!(s.memory_limit, Some(256 << 20), "the node's default");
        assert_eq!(s.max_output, Some(16 << 20));
    }
}
