//! An instance netref: a live guest. Its exports are its methods; `rwc.*` methods reach
//! its memory and lifecycle.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rwc_api::instance::{self, InstanceInfo, ReadMemory, WriteMemory};
use rwc_api::{InstanceOptions, Request};
use rwc_protocol::object::{Call, Dispatch, MethodTable};
use rwc_protocol::{Error, ErrorKind, MethodInfo, Value, to_value};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::actor::{self, Exit, Job, JobKind};
use super::output::OutputForwarder;
use crate::Node;
use crate::capabilities;
use crate::config::Limits;
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
    _slot: Slot,
}

impl std::fmt::Debug for InstanceObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceObject")
            .field("id", &self.id)
            .field("module", &self.module.hash())
            .finish_non_exhaustive()
    }
}

/// Counts the instance against its connection's cap while it lives.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

const META: MethodTable = MethodTable(instance::METHODS);

/// Creates an instance for a client whose live instances `count` tracks.
pub(crate) async fn instantiate(
    node: &Node,
    module: &Arc<LoadedModule>,
    mut options: InstanceOptions,
    count: &Arc<AtomicUsize>,
    label: &str,
) -> Result<InstanceObject, Error> {
    let cap = node.inner.config.limits.max_instances_per_connection;
    if count.fetch_add(1, Ordering::SeqCst) >= cap {
        count.fetch_sub(1, Ordering::SeqCst);
        return Err(Error::new(
            ErrorKind::Overloaded,
            format!(
                "this connection holds {cap} live instances, its limit; drop or close some first"
            ),
        ));
    }
    let slot = Slot(count.clone());
    let output = match options.output.take() {
        Some(sink) => Some(OutputForwarder::start(sink.into_netref("the output sink")?)),
        None => None,
    };
    let mut caps = capabilities::resolve(
        &options.capabilities,
        &node.inner.config.grants,
        label,
        output.as_ref(),
    )?;
    for (name, object) in std::mem::take(&mut options.objects) {
        let netref = object.into_netref(&format!("the object `{name}` handed to the guest"))?;
        caps.insert(name, netref);
    }
    let id = node.inner.next_instance.fetch_add(1, Ordering::Relaxed);
    let sandbox_options = within_limits(&options, &node.inner.config.limits)?;
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
        _slot: slot,
    })
}

/// The sandbox options for what a client asked. Asking for more than the node allows is
/// an error that names the node's setting, not a silent clamp: a guest given less memory
/// than it was meant to have would fail later, further from the cause.
fn within_limits(options: &InstanceOptions, limits: &Limits) -> Result<SandboxOptions, Error> {
    let memory = at_most(
        options.memory,
        limits.memory_bytes,
        "memory",
        "memory_bytes",
        "bytes",
    )?;
    let max_output = at_most(
        options.max_output,
        limits.max_output_bytes,
        "max_output",
        "max_output_bytes",
        "bytes",
    )?;
    let timeout_ms = options
        .call_timeout
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let timeout_ms = at_most(
        timeout_ms,
        limits.call_timeout_ms,
        "call_timeout_ms",
        "call_timeout_ms",
        "ms",
    )?;
    Ok(SandboxOptions {
        memory_limit: Some(memory),
        fuel: options.fuel,
        call_timeout: Some(Duration::from_millis(timeout_ms)),
        max_output: Some(max_output),
        env: options
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        args: options.args.clone(),
        output: None,
    })
}

/// What was `asked` for the instance option `option`, or the node's `cap` (its `[limits]`
/// key `key`, also the flag `--key`) if nothing was; more than the cap is a `limit` error.
fn at_most(
    asked: Option<u64>,
    cap: u64,
    option: &str,
    key: &str,
    unit: &str,
) -> Result<u64, Error> {
    match asked {
        Some(n) if n > cap => Err(Error::new(
            ErrorKind::Limit,
            format!(
                "the instance asks for {option} = {n} {unit}, over this node's cap of {cap} \
                 {unit}; ask for at most that, or raise the node's `{key}` ([limits] in its \
                 config, or `rwc-node --{}`)",
                key.replace('_', "-")
            ),
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
        let _permit = self
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
        self.node.inner.calls_total.fetch_add(1, Ordering::Relaxed);
        self.job(
            JobKind::Export {
                name: export.to_owned(),
                args,
            },
            deadline,
        )
        .await
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
            .map(|e| MethodInfo::new(e.name.clone(), format!("{} export: {e}", e.abi)))
            .collect();
        m.extend(META.infos());
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_requests_within_the_node_limits_are_kept() {
        let limits = Limits::default();
        let asked = InstanceOptions {
            memory: Some(16 << 20),
            call_timeout: Some(Duration::from_millis(500)),
            max_output: Some(1),
            ..InstanceOptions::default()
        };
        let s = within_limits(&asked, &limits).unwrap();
        assert_eq!(s.memory_limit, Some(16 << 20));
        assert_eq!(s.call_timeout, Some(Duration::from_millis(500)));
        assert_eq!(s.max_output, Some(1));
        let s = within_limits(&InstanceOptions::default(), &limits).unwrap();
        assert_eq!(s.memory_limit, Some(256 << 20), "the node's default");
        assert_eq!(s.call_timeout, Some(Duration::from_secs(30)));
        assert_eq!(s.max_output, Some(16 << 20));
        let at_the_cap = InstanceOptions {
            memory: Some(256 << 20),
            ..InstanceOptions::default()
        };
        assert!(within_limits(&at_the_cap, &limits).is_ok());
    }

    #[test]
    fn client_requests_over_the_node_limits_name_the_cap() {
        let limits = Limits::default();
        let err = |asked: InstanceOptions| within_limits(&asked, &limits).unwrap_err();
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
