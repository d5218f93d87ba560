//! Running the tasks of durable maps: the node pulls from its tags' consumers as many
//! tasks as it has free slots (pull is the back-pressure), runs each input in its own
//! sandbox through the same instance code as a direct client's, writes each input's
//! result once (the results stream refuses a second write, so the first one wins), and
//! then acks the task.
//!
//! A task whose node dies is redelivered after `AckWait` (a running task tells NATS it is
//! alive every third of it). JetStream counts deliveries: the consumer allows
//! `max_deliver + 1`, and the delivery past `max_deliver` writes an error result instead
//! of running the input again, so an input that kills its node every time ends.
//! Deterministic failures (a trap, out of fuel, a timeout, bad arguments) are results.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rwc_api::nats::{self as names, Task, TaskResult};
use rwc_nats::async_nats::jetstream::consumer::PullConsumer;
use rwc_nats::async_nats::jetstream::object_store::ObjectStore;
use rwc_nats::async_nats::jetstream::{self, AckKind, kv, stream};
use rwc_nats::{Fleet, nats_error};
use rwc_protocol::{Error, ErrorKind, Value};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};

use crate::Node;
use crate::error::to_error;
use crate::instance::{InstanceObject, instantiate};
use crate::principal::Principal;
use crate::sandbox::LoadedModule;

/// How long one pull waits for tasks before asking again (and checking for a stop).
const PULL_EXPIRES: Duration = Duration::from_secs(1);

/// How long a node remembers that a job exists (it drops the tasks of cancelled jobs).
const JOB_CACHE: Duration = Duration::from_secs(2);

/// Times an input is retried on this node when the node is busy (`overloaded`) or the
/// instance vanished, before the task is left for NATS to redeliver.
const LOCAL_RETRIES: u32 = 8;

/// What the workers of a node need to know.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) ack_wait: Duration,
    pub(super) max_deliver: u32,
    pub(super) capacity: usize,
    /// The node's address, written into its results.
    pub(super) address: String,
}

/// Counts the tasks running on the node, so leaving can wait for them.
#[derive(Debug, Default)]
pub(super) struct Running {
    count: AtomicUsize,
    idle: Notify,
}

impl Running {
    pub(super) fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Completes when no task runs.
    pub(super) async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.count() == 0 {
                return;
            }
            notified.await;
        }
    }

    fn enter(self: &Arc<Self>) -> RunningGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        RunningGuard(self.clone())
    }
}

struct RunningGuard(Arc<Running>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// The node's task runner, shared by its tags' pull loops.
#[derive(Debug, Clone)]
pub(super) struct Worker {
    inner: Arc<Inner>,
}

struct Inner {
    node: Node,
    /// Whose grants and limits tasks run under.
    principal: Arc<Principal>,
    /// This worker's turn in the node's compile queue.
    client: u64,
    fleet: Fleet,
    settings: Settings,
    running: Arc<Running>,
    /// One permit per task that may run at once.
    slots: Arc<Semaphore>,
    results: stream::Stream,
    jobs: kv::Store,
    modules: ObjectStore,
    /// Live instances of tasks (capped like one connection's).
    instances: Arc<AtomicUsize>,
    /// Jobs known to exist, and when that was last checked.
    jobs_seen: Mutex<HashMap<String, Instant>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("settings", &self.settings)
            .field("free_slots", &self.slots.available_permits())
            .finish_non_exhaustive()
    }
}

impl Worker {
    pub(super) async fn new(
        node: Node,
        principal: Arc<Principal>,
        fleet: Fleet,
        settings: Settings,
        running: Arc<Running>,
    ) -> Result<Worker, Error> {
        let results = fleet.results().await?;
        let jobs = fleet.jobs_bucket().await?;
        let modules = fleet.modules().await?;
        Ok(Worker {
            inner: Arc::new(Inner {
                slots: Arc::new(Semaphore::new(settings.capacity)),
                client: node.inner.next_client.fetch_add(1, Ordering::Relaxed),
                node,
                principal,
                fleet,
                settings,
                running,
                results,
                jobs,
                modules,
                instances: Arc::new(AtomicUsize::new(0)),
                jobs_seen: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The consumer of `tag`'s tasks (made if missing).
    pub(super) async fn consumer(&self, tag: &str) -> Result<PullConsumer, Error> {
        let s = &self.inner.settings;
        // One delivery more than the attempts: that one records the error result.
        self.inner
            .fleet
            .tag_consumer(tag, s.ack_wait, i64::from(s.max_deliver) + 1)
            .await
    }

    /// Pulls `tag`'s tasks until `stop` turns true: as many at a time as there are free
    /// slots, each run in a task of its own.
    ///
    /// A slot is not held while a pull waits: a node serving several tags shares its slots
    /// between them, and a tag with nothing queued must not keep the others waiting. A
    /// task that arrives when the other tags have taken every slot waits for one, telling
    /// NATS that it is in hand meanwhile.
    pub(super) async fn pull(
        self,
        tag: String,
        consumer: PullConsumer,
        mut stop: watch::Receiver<bool>,
    ) {
        let slots = &self.inner.slots;
        while !*stop.borrow() {
            // Wait for a free slot (after the tasks already waiting for one: the semaphore
            // is fair); ask for one task per free slot.
            let wanted = tokio::select! {
                p = slots.acquire() => match p { Ok(_) => 1 + slots.available_permits(), Err(_) => return },
                _ = stop.changed() => return,
            };
            let batch = consumer
                .fetch()
                .max_messages(wanted)
                .expires(PULL_EXPIRES)
                .messages()
                .await;
            let mut batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    tracing::debug!(%tag, error = %e, "pull failed; NATS may be restarting");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                        _ = stop.changed() => return,
                    }
                    continue;
                }
            };
            loop {
                // A pull lost in a server restart is never answered: give up on it a
                // little after it would have expired.
                let next = tokio::select! {
                    m = tokio::time::timeout(PULL_EXPIRES * 3, batch.next()) => m.ok().flatten(),
                    _ = stop.changed() => None,
                };
                let Some(message) = next else { break };
                let message = match message {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::debug!(%tag, error = %e, "pull interrupted");
                        continue;
                    }
                };
                // Taken here, before this loop asks for more, so that it cannot ask for
                // a slot this task is about to need.
                let permit = slots.clone().try_acquire_owned().ok();
                let inner = self.inner.clone();
                tokio::spawn(async move { inner.handle(message, permit).await });
            }
        }
    }
}

impl Inner {
    /// Runs one task, keeping it ours while it runs; acks it once every input has a
    /// result. A task that could not finish is left for NATS to redeliver.
    async fn handle(
        self: Arc<Self>,
        message: jetstream::Message,
        slot: Option<OwnedSemaphorePermit>,
    ) {
        let _running = self.running.enter();
        let delivery = message
            .info()
            .map_or(1, |i| u64::try_from(i.delivered).unwrap_or(1));
        let task: Task = match names::decode(&message.payload) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(subject = %message.subject, error = %e, "not an rwc task; dropping it");
                let _ = message.ack_with(AckKind::Term).await;
                return;
            }
        };
        let keepalive = {
            let message = message.clone();
            let every = (self.settings.ack_wait / 3).max(Duration::from_millis(100));
            AbortOnDrop(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let _ = message.ack_with(AckKind::Progress).await;
                }
            }))
        };
        let _slot = match slot {
            Some(p) => p,
            None => match self.slots.clone().acquire_owned().await {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        tracing::debug!(job = %task.job, first = task.first, delivery, "running task");
        let outcome = self.run_task(&task, delivery).await;
        drop(keepalive);
        match outcome {
            Ok(()) => {
                if let Err(e) = message.ack().await {
                    // NATS redelivers it; the next node finds every result written.
                    tracing::debug!(error = %e, "could not ack a finished task");
                }
            }
            Err(e) => tracing::warn!(
                job = %task.job, first = task.first, error = %e,
                "task not finished; NATS hands it out again after AckWait"
            ),
        }
    }

    /// Runs every input of `task` that has no result yet and writes its result.
    async fn run_task(&self, task: &Task, delivery: u64) -> Result<(), Error> {
        if !self.job_exists(&task.job).await {
            tracing::debug!(job = %task.job, "task of a cancelled job; dropping it");
            return Ok(());
        }
        let give_up = delivery > u64::from(self.settings.max_deliver);
        let mut run = TaskRun::default();
        let mut writes = self.fleet.result_writes();
        for (k, args) in task.inputs.iter().enumerate() {
            let index = task.first + u64::try_from(k).unwrap_or(u64::MAX);
            // A task is acked only once all its results are in, so only a redelivered
            // one can find some written (a duplicate copy of a task would run again,
            // harmlessly: the result write keeps the first).
            if delivery > 1 {
                match self.fleet.has_result(&self.results, &task.job, index).await {
                    Ok(true) => continue,
                    Ok(false) => {}
                    // Running it again is safe: the result write keeps the first.
                    Err(e) => tracing::debug!(error = %e, "could not look up a result"),
                }
            }
            let outcome = if give_up {
                Err(Error::failed(format!(
                    "gave up on this input after {} attempts: its node died or lost NATS \
                     every time (delivered {delivery} times, max_deliver {})",
                    self.settings.max_deliver, self.settings.max_deliver
                )))
            } else {
                self.call(task, &mut run, args.clone()).await?
            };
            writes
                .write(TaskResult {
                    job: task.job.clone(),
                    index,
                    node: self.settings.address.clone(),
                    delivery,
                    outcome,
                })
                .await?;
        }
        writes.finish().await?;
        if let Some(instance) = run.instance.take() {
            // Nothing else queues jobs for it: closing is not refused, and dropping frees
            // it anyway.
            let _ = instance.close().await;
        }
        Ok(())
    }

    /// One input: its result (`Ok(..)`), or an error that is not its result (the node
    /// could not run it now; the task is left for redelivery).
    async fn call(
        &self,
        task: &Task,
        run: &mut TaskRun,
        args: Vec<Value>,
    ) -> Result<Result<Value, Error>, Error> {
        if let Err(e) = names::check_values(&args) {
            return Ok(Err(e));
        }
        let module = match &run.module {
            Some(m) => m.clone(),
            None => match self.module(&task.module).await? {
                Ok(m) => {
                    run.module = Some(m.clone());
                    m
                }
                Err(e) => return Ok(Err(e)),
            },
        };
        let mut tries = 0;
        loop {
            tries += 1;
            let instance = match &run.instance {
                Some(i) => i,
                None => {
                    match instantiate(
                        &self.node,
                        &module,
                        task.options.clone(),
                        &self.instances,
                        &self.principal,
                        self.client,
                    )
                    .await
                    {
                        Ok(i) => run.instance.insert(i),
                        Err(e) if e.kind() == ErrorKind::Overloaded && tries < LOCAL_RETRIES => {
                            back_off(tries).await;
                            continue;
                        }
                        Err(e) if e.kind() == ErrorKind::Overloaded => return Err(e),
                        // The options are refused (a capability not granted…): the same
                        // everywhere.
                        Err(e) => return Ok(Err(e)),
                    }
                }
            };
            let result = instance.invoke(&task.export, args.clone(), None).await;
            match &result {
                Err(e) if e.kind() == ErrorKind::Overloaded && tries < LOCAL_RETRIES => {
                    back_off(tries).await;
                }
                Err(e) if e.kind() == ErrorKind::Disconnected && tries < LOCAL_RETRIES => {
                    // The instance is gone: make another.
                    run.instance = None;
                }
                Err(e) if matches!(e.kind(), ErrorKind::Overloaded | ErrorKind::Disconnected) => {
                    return Err(e.clone());
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::Trapped | ErrorKind::OutOfFuel | ErrorKind::TimedOut
                    ) =>
                {
                    // The guest stopped mid-way: the next input gets a fresh instance.
                    if let Some(i) = run.instance.take() {
                        let _ = i.close().await;
                    }
                    return Ok(result);
                }
                _ => return Ok(result),
            }
        }
    }

    /// The module named `hash`: from the node's caches, else from the modules store
    /// (checked against its hash, then compiled). `Ok(Err(..))` is a failure that is the
    /// input's result (no such module, it does not compile).
    async fn module(&self, hash: &str) -> Result<Result<Arc<LoadedModule>, Error>, Error> {
        let found = self.node.find_module(hash).await?;
        if let Some(m) = found {
            return Ok(Ok(m));
        }
        let limit = self.principal.limits().max_module_bytes;
        let info = match self.modules.info(hash).await {
            Ok(i) => i,
            Err(e) if e.kind() == jetstream::object_store::InfoErrorKind::NotFound => {
                return Ok(Err(Error::failed(format!(
                    "module {hash} is not in the NATS modules store"
                ))));
            }
            Err(e) => return Err(nats_error("look up the module", e)),
        };
        if u64::try_from(info.size).unwrap_or(u64::MAX) > limit {
            return Ok(Err(Error::bad_argument(format!(
                "module {hash} is {} bytes, over this node's limit of {limit}",
                info.size
            ))));
        }
        let mut object = self
            .modules
            .get(hash)
            .await
            .map_err(|e| nats_error("fetch the module", e))?;
        let mut bytes = Vec::with_capacity(info.size.min(64 << 20));
        object
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| nats_error("read the module", e))?;
        if hex::encode(Sha256::digest(&bytes)) != hash {
            return Ok(Err(Error::failed(format!(
                "the modules store holds other bytes under {hash}"
            ))));
        }
        self.node.inner.uploads.fetch_add(1, Ordering::Relaxed);
        // Through the node's compile queue, like a client's upload: its bound on compiles
        // at once and its compile deadline hold for the fleet's modules too.
        let loaded = self
            .node
            .inner
            .sandbox
            .load_queued(bytes, self.client)
            .await;
        Ok(loaded.map_err(to_error))
    }

    /// Whether `job` still exists (a cancelled job's tasks are dropped). When NATS cannot
    /// tell, it is taken to exist: running the task is harmless.
    async fn job_exists(&self, job: &str) -> bool {
        let fresh = self
            .jobs_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(job)
            .is_some_and(|t| t.elapsed() < JOB_CACHE);
        if fresh {
            return true;
        }
        match self.jobs.get(job).await {
            Ok(Some(_)) => {
                self.jobs_seen
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(job.to_owned(), Instant::now());
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::debug!(error = %e, "could not look up a job");
                true
            }
        }
    }
}

/// What the inputs of one task share: the module, and an instance (replaced after a
/// guest stopped mid-way). Functions of a durable map are pure, so reusing it is safe.
#[derive(Default)]
struct TaskRun {
    module: Option<Arc<LoadedModule>>,
    instance: Option<InstanceObject>,
}

/// A spawned task that ends when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn back_off(attempt: u32) {
    let ms = 20u64.saturating_mul(1 << attempt.min(6));
    tokio::time::sleep(Duration::from_millis(ms)).await;
}
