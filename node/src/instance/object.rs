//! An instance netref: a live guest. Its exports are its methods; `rwc.*` methods reach
//! its memory and lifecycle.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rwc_protocol::object::{Call, Dispatch, MethodTable};
use rwc_protocol::{Error, ErrorKind, MethodInfo, Value, to_value};
use serde_bytes::ByteBuf;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::actor::{self, Job, JobKind};
use super::output::OutputForwarder;
use crate::Node;
use crate::capabilities;
use crate::sandbox::LoadedModule;
use crate::service::{Options, describe_exports};

/// A live instance of a module.
pub struct InstanceObject {
    node: Node,
    module: Arc<LoadedModule>,
    jobs: mpsc::UnboundedSender<Job>,
    id: u64,
    _slot: Slot,
}

impl std::fmt::Debug for InstanceObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceObject")
            .field("id", &self.id)
            .field("module", &self.module.id())
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

const META: MethodTable = MethodTable(&[
    ("rwc.exports", "() the callable exports"),
    (
        "rwc.read_memory",
        "(offset, len) bytes of the guest's memory",
    ),
    (
        "rwc.write_memory",
        "(offset, bytes) write into the guest's memory",
    ),
    ("rwc.fuel", "() fuel left, or unit if unmetered"),
    ("rwc.info", "() instance id and module hash"),
    ("rwc.close", "() free the instance now; later calls fail"),
]);

/// Creates an instance for a client whose live instances `count` tracks.
pub(crate) async fn instantiate(
    node: &Node,
    module: &Arc<LoadedModule>,
    mut options: Options,
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
    let output = options.output.take().map(OutputForwarder::start);
    let mut caps = capabilities::resolve(
        &options.capabilities,
        &node.inner.config.grants,
        label,
        output.as_ref(),
    )?;
    caps.extend(std::mem::take(&mut options.grant));
    let id = node.inner.next_instance.fetch_add(1, Ordering::Relaxed);
    let sandbox_options = options.sandbox_options(&node.inner.config.limits);
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
        id,
        _slot: slot,
    })
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
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send(Job {
                kind,
                reply: Some(reply),
                deadline,
            })
            .map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }
}

fn closed() -> Error {
    Error::disconnected("the instance is closed")
}

impl Dispatch for InstanceObject {
    const TYPE_NAME: &'static str = "instance";
    const METHODS: MethodTable = META;
    const RUNS_LONG: bool = true;

    async fn dispatch<'a>(&'a self, call: Call<'a>) -> Result<Value, Error> {
        let deadline = call.ctx.deadline();
        match call.method {
            "rwc.exports" => to_value(&describe_exports(&self.module)),
            "rwc.read_memory" => {
                let (offset, len): (u64, u64) = call.args()?;
                self.job(JobKind::ReadMemory { offset, len }, deadline)
                    .await
            }
            "rwc.write_memory" => {
                let (offset, bytes): (u64, ByteBuf) = call.args()?;
                let bytes = bytes.into_vec();
                self.job(JobKind::WriteMemory { offset, bytes }, deadline)
                    .await
            }
            "rwc.fuel" => self.job(JobKind::Fuel, deadline).await,
            "rwc.info" => Ok(Value::Map(vec![
                (Value::from("id"), Value::U64(self.id)),
                (Value::from("module"), Value::from(self.module.id())),
            ])),
            "rwc.close" => {
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
