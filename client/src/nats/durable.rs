//! Durable maps: the inputs live in NATS JetStream, not in the client, so a map survives
//! the loss of a node, of a NATS server, and of the client itself (the same job name
//! resumes it).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use rwc_api::InstanceOptions;
use rwc_api::nats::{
    self as names, DEFAULT_TAG, JobMeta, NodeEntry, Task, TaskResult, check_name, check_values,
};
use rwc_nats::async_nats::jetstream::consumer::DeliverPolicy;
use rwc_nats::async_nats::jetstream::consumer::pull::{Ordered, OrderedConfig};
use rwc_nats::async_nats::jetstream::kv;
use rwc_nats::async_nats::jetstream::message::PublishMessage as Publish;
use rwc_nats::async_nats::jetstream::object_store::InfoErrorKind;
use rwc_nats::{Fleet, FleetOptions, bytes_of, nats_error};
use rwc_protocol::{Error, ErrorKind, Value};
use sha2::{Digest, Sha256};

use crate::client::module_hash;
use crate::pool::{
    MapProgress, MapReport, NodeProgress, NodeReport, ProgressFn, ResultFn, callback_setters,
};

/// Task publishes awaiting their acknowledgement at once.
const PUBLISH_WINDOW: usize = 512;

/// How long a map waits for the next result before it reads the results again.
const RESULTS_STALL: Duration = Duration::from_secs(30);

/// A NATS JetStream fleet seen from a client: its nodes, and durable maps run by them.
///
/// A durable map needs no connection to any node (nodes pull its inputs from NATS), so it
/// is a method of this type rather than of [`Pool`](crate::Pool), whose point is its
/// connections. [`Pool::from_nats`](crate::Pool::from_nats) is the other way to use a
/// fleet: direct connections to the nodes NATS lists, netrefs and callbacks included.
///
/// ```no_run
/// # async fn demo() -> Result<(), rwc_client::Error> {
/// use rwc_client::nats::{DurableMapOptions, NatsFleet};
/// use rwc_client::Value;
///
/// let fleet = NatsFleet::connect("nats://127.0.0.1:4222").await?;
/// let inputs: Vec<Vec<Value>> = (0..1000i64).map(|n| vec![Value::I64(n)]).collect();
/// let options = DurableMapOptions::default().job("squares").tag("cpu");
/// let report = fleet
///     .map_durable(&std::fs::read("sq.wasm").unwrap(), "sq", inputs, options)
///     .await?;
/// assert_eq!(report.map.results.len(), 1000); // in input order
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct NatsFleet {
    fleet: Fleet,
}

/// How to run a [`map_durable`](NatsFleet::map_durable).
#[derive(Debug, Clone, Default)]
pub struct DurableMapOptions {
    /// The job's name: running a map again with the same name (and the same module,
    /// export and inputs) resumes it. Default: a fresh name, `job-<time>-<random>`.
    pub job: Option<String>,
    /// The tag of the nodes that run it. Default: [`DEFAULT_TAG`], what nodes started
    /// without `--tag` serve.
    pub tag: Option<String>,
    /// Inputs per task message (default 1). Larger batches cut the per-input cost of
    /// trivial functions; smaller ones spread slow inputs better.
    pub batch: Option<usize>,
    /// Options of the instances (memory, fuel, timeout, env…). No objects and no output
    /// sink: those are netrefs.
    pub instance: InstanceOptions,
    /// Keep the job (its results) in NATS after the map ends; by default a map that got
    /// every result deletes its job.
    pub keep: bool,
    /// Called after every result that comes in.
    pub progress: Option<ProgressFn>,
    /// Called with each input's result as it comes in (not in input order).
    pub each_result: Option<ResultFn>,
}

impl DurableMapOptions {
    /// Sets [`job`](DurableMapOptions::job).
    pub fn job(mut self, name: impl Into<String>) -> Self {
        self.job = Some(name.into());
        self
    }

    /// Sets [`tag`](DurableMapOptions::tag).
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    /// Sets [`batch`](DurableMapOptions::batch).
    pub fn batch(mut self, n: usize) -> Self {
        self.batch = Some(n);
        self
    }

    callback_setters!(DurableMapOptions);
}

/// The outcome of a durable map.
#[derive(Debug)]
pub struct DurableReport {
    /// The job's name.
    pub job: String,
    /// Inputs that already had a result when the map started (a resumed job).
    pub resumed: usize,
    /// Tasks this run published (a resumed job publishes only what NATS lacks).
    pub published: usize,
    /// Results in input order, and what each node did (`instances` is the node's capacity
    /// as it lists it, 0 if it is gone).
    pub map: MapReport,
}

/// A job as [`NatsFleet::jobs`] lists it.
#[derive(Debug, Clone)]
pub struct JobStatus {
    /// What the job is.
    pub meta: JobMeta,
    /// Inputs with a result.
    pub done: u64,
    /// Tasks waiting in the stream or running.
    pub queued: u64,
}

impl NatsFleet {
    /// Connects to NATS at `url` (`nats://HOST:PORT`, comma-separated for a cluster).
    ///
    /// # Cancel safety
    /// Dropping the future abandons the connection attempt.
    pub async fn connect(url: &str) -> Result<NatsFleet, Error> {
        NatsFleet::connect_with(url, FleetOptions::default()).await
    }

    /// Connects with `options` (e.g. 3 replicas for the streams it makes on a cluster).
    ///
    /// # Cancel safety
    /// Dropping the future abandons the connection attempt.
    pub async fn connect_with(url: &str, options: FleetOptions) -> Result<NatsFleet, Error> {
        Ok(NatsFleet {
            fleet: Fleet::connect(url, options).await?,
        })
    }

    /// The plumbing underneath.
    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    /// The nodes registered now, those serving `tag` if given, by address.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the listing.
    pub async fn nodes(&self, tag: Option<&str>) -> Result<Vec<NodeEntry>, Error> {
        let Some(store) = self.fleet.existing_nodes_bucket().await? else {
            return Ok(Vec::new());
        };
        let mut nodes = list_nodes(&store).await?;
        nodes.retain(|n| tag.is_none_or(|t| n.tags.iter().any(|x| x == t)));
        nodes.sort_by(|a, b| a.address.cmp(&b.address));
        Ok(nodes)
    }

    /// Calls `export` of `module` once per input on the nodes serving the tag, through
    /// NATS JetStream, and returns the results in input order.
    ///
    /// The module goes to the modules object store under its hash, each batch of inputs
    /// is a message of the work-queue stream (`Nats-Msg-Id` `job/index`), and nodes pull
    /// what they have room for. Every input gets exactly one result: the first a node
    /// writes. If the client dies, calling this again with the same job name (and the same
    /// module, export and inputs) resumes: inputs that have a result are not run again,
    /// and the report holds every result. The map waits for nodes as long as it takes:
    /// with no node serving the tag it makes no progress.
    ///
    /// Functions must be pure: an input may run more than once (its node died after
    /// running it, before its result was written), and only one run's result is kept.
    /// Deterministic failures (a trap, out of fuel, bad arguments) are results; an input
    /// whose node dies every time gets an error result after the nodes' `max_deliver`
    /// attempts. Arguments are values only: a netref is refused (`bad argument`).
    ///
    /// # Cancel safety
    /// Dropping the future leaves the job in NATS: nodes go on with it, and a later call
    /// with the same job name picks up its results.
    pub async fn map_durable(
        &self,
        module: &[u8],
        export: &str,
        inputs: Vec<Vec<Value>>,
        options: DurableMapOptions,
    ) -> Result<DurableReport, Error> {
        let started = Instant::now();
        for args in &inputs {
            check_values(args)?;
        }
        if !options.instance.objects.is_empty() || options.instance.output.is_some() {
            return Err(Error::bad_argument(
                "a durable map takes no objects and no output sink (those are netrefs); use a \
                 pool for them",
            ));
        }
        let tag = options
            .tag
            .clone()
            .unwrap_or_else(|| DEFAULT_TAG.to_owned());
        check_name("tag", &tag)?;
        let job = options.job.clone().unwrap_or_else(fresh_job_name);
        check_name("job", &job)?;
        let batch = options.batch.unwrap_or(1).max(1);
        let total = inputs.len();
        let meta = JobMeta {
            name: job.clone(),
            tag: tag.clone(),
            module: module_hash(module),
            export: export.to_owned(),
            total: to_u64(total),
            batch: to_u64(batch),
            inputs_digest: inputs_digest(&inputs)?,
            created_ms: now_ms(),
        };

        let tasks = self.fleet.tasks().await?;
        let results = self.fleet.results().await?;
        let jobs = self.fleet.jobs_bucket().await?;
        self.store_module(&meta.module, module).await?;
        claim_job(&jobs, &meta).await?;

        // What NATS already has, queued tasks first: a task leaves the queue only after
        // its results are written, so nothing is missed between the two looks.
        let queued: HashSet<u64> = queued_tasks(&tasks, &tag, &job).await?;
        let (mut messages, existing) = open_results(&results, &job).await?;
        let mut collected = Collected::new(total, started, &options);
        let mut seen = 0u64;
        while seen < existing {
            let Some(message) = messages.next().await else {
                return Err(Error::disconnected("NATS ended the job's results stream"));
            };
            let message = message.map_err(|e| nats_error("read the job's results", e))?;
            seen += 1;
            collected.add(&job, &message.subject, &message.payload, false);
        }
        let resumed = collected.done;

        // Publish the tasks NATS lacks, while results come in.
        let to_publish: Vec<Task> = (0..total)
            .step_by(batch)
            .filter(|&first| {
                let answered = (first..(first + batch).min(total)).all(|i| collected.has(i));
                !answered && !queued.contains(&to_u64(first))
            })
            .map(|first| Task {
                job: job.clone(),
                first: to_u64(first),
                module: meta.module.clone(),
                export: export.to_owned(),
                inputs: inputs[first..(first + batch).min(total)].to_vec(),
                options: options.instance.clone(),
            })
            .collect();
        let published = to_publish.len();
        let publisher = tokio::spawn(publish(self.fleet.clone(), tag.clone(), to_publish));
        let mut publisher = Some(publisher);

        while collected.done < total {
            tokio::select! {
                message = tokio::time::timeout(RESULTS_STALL, messages.next()) => match message {
                    Ok(Some(Ok(m))) => collected.add(&job, &m.subject, &m.payload, true),
                    // The ordered consumer makes itself again after a leader change; it
                    // says so here.
                    Ok(Some(Err(e))) => tracing::debug!(error = %e, "results stream interrupted"),
                    // Nothing for a while, or the stream ended (a server restart can lose
                    // the consumer): read the job's results again from the start; those
                    // already in are skipped.
                    Err(_) | Ok(None) => match open_results(&results, &job).await {
                        Ok((again, _)) => messages = again,
                        Err(e) => tracing::debug!(error = %e, "cannot reopen the results yet"),
                    },
                },
                done = async {
                    match &mut publisher {
                        Some(p) => p.await,
                        None => std::future::pending().await,
                    }
                } => {
                    publisher = None;
                    match done {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => return Err(e),
                        Err(e) => return Err(Error::failed(format!("task publisher failed: {e}"))),
                    }
                }
            }
        }
        if let Some(p) = publisher {
            // Every input has a result, so every task it had left was a duplicate.
            p.abort();
        }
        let capacity: BTreeMap<String, usize> = self
            .nodes(Some(&tag))
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|n| (n.address, usize::try_from(n.capacity).unwrap_or(0)))
            .collect();
        if !options.keep {
            self.cancel(&job).await?;
        }
        let map = collected.into_report(&capacity);
        Ok(DurableReport {
            job,
            resumed,
            published,
            map,
        })
    }

    /// Every job NATS holds, with its progress.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the listing.
    pub async fn jobs(&self) -> Result<Vec<JobStatus>, Error> {
        let jobs = self.fleet.jobs_bucket().await?;
        let tasks = self.fleet.tasks().await?;
        let results = self.fleet.results().await?;
        let mut keys = keys_of(&jobs, "list the jobs").await?;
        keys.sort();
        let mut out = Vec::new();
        for key in keys {
            let Some(bytes) = jobs
                .get(&key)
                .await
                .map_err(|e| nats_error("read a job", e))?
            else {
                continue;
            };
            let meta: JobMeta = match names::decode(&bytes) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(job = %key, error = %e, "not an rwc job; left out");
                    continue;
                }
            };
            let done = count_subjects(&results, &names::job_results(&meta.name)).await?;
            let queued = count_subjects(&tasks, &names::job_tasks(&meta.tag, &meta.name)).await?;
            out.push(JobStatus { meta, done, queued });
        }
        Ok(out)
    }

    /// Deletes job `name`: its entry, its queued tasks and its results (nodes drop its
    /// tasks still running). Whether there was such a job.
    ///
    /// # Cancel safety
    /// Dropping the future may leave part of the job; cancelling again finishes it.
    pub async fn cancel(&self, name: &str) -> Result<bool, Error> {
        check_name("job", name)?;
        // Each step can be repeated, so a leader election on the way is waited out.
        rwc_nats::patiently(rwc_nats::LOOKUP_PATIENCE, || self.cancel_once(name)).await
    }

    async fn cancel_once(&self, name: &str) -> Result<bool, Error> {
        let jobs = self.fleet.jobs_bucket().await?;
        let meta = jobs
            .get(name)
            .await
            .map_err(|e| nats_error("read the job", e))?
            .and_then(|b| names::decode::<JobMeta>(&b).ok());
        let Some(meta) = meta else {
            return Ok(false);
        };
        // The entry first: nodes drop tasks of a job that has none.
        jobs.delete(name)
            .await
            .map_err(|e| nats_error("delete the job", e))?;
        let tasks = self.fleet.tasks().await?;
        tasks
            .purge()
            .filter(names::job_tasks(&meta.tag, name))
            .await
            .map_err(|e| nats_error("purge the job's tasks", e))?;
        let results = self.fleet.results().await?;
        results
            .purge()
            .filter(names::job_results(name))
            .await
            .map_err(|e| nats_error("purge the job's results", e))?;
        Ok(true)
    }

    /// Puts the module in the object store unless it is there.
    async fn store_module(&self, hash: &str, bytes: &[u8]) -> Result<(), Error> {
        let modules = self.fleet.modules().await?;
        match modules.info(hash).await {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == InfoErrorKind::NotFound => {}
            Err(e) => return Err(nats_error("look up the module", e)),
        }
        modules
            .put(hash, &mut &bytes[..])
            .await
            .map_err(|e| nats_error("store the module", e))?;
        Ok(())
    }
}

/// The results gathered so far.
struct Collected {
    results: Vec<Option<Result<Value, Error>>>,
    done: usize,
    errors: usize,
    nodes: BTreeMap<String, usize>,
    started: Instant,
    progress: Option<ProgressFn>,
    each_result: Option<ResultFn>,
}

impl Collected {
    fn new(total: usize, started: Instant, options: &DurableMapOptions) -> Self {
        Collected {
            results: (0..total).map(|_| None).collect(),
            done: 0,
            errors: 0,
            nodes: BTreeMap::new(),
            started,
            progress: options.progress.clone(),
            each_result: options.each_result.clone(),
        }
    }

    fn has(&self, i: usize) -> bool {
        self.results.get(i).is_some_and(Option::is_some)
    }

    /// Records the result message on `subject`, unless its input has one (only the first
    /// counts, as in the stream).
    fn add(&mut self, job: &str, subject: &str, payload: &[u8], report: bool) {
        let Some(index) = names::subject_index(subject).and_then(|i| usize::try_from(i).ok())
        else {
            tracing::warn!(%subject, "result on an unexpected subject; ignored");
            return;
        };
        if index >= self.results.len() || self.has(index) {
            return;
        }
        let result: TaskResult = match names::decode(payload) {
            Ok(r) => r,
            Err(e) => TaskResult {
                job: job.to_owned(),
                index: to_u64(index),
                node: String::new(),
                delivery: 0,
                outcome: Err(Error::failed(format!(
                    "the result in NATS does not decode: {e}"
                ))),
            },
        };
        if let Some(f) = &self.each_result {
            f(index, &result.outcome);
        }
        if result.outcome.is_err() {
            self.errors += 1;
        }
        *self.nodes.entry(result.node).or_default() += 1;
        self.results[index] = Some(result.outcome);
        self.done += 1;
        if report && let Some(f) = &self.progress {
            f(&MapProgress {
                done: self.done,
                total: self.results.len(),
                errors: self.errors,
                nodes: self
                    .nodes
                    .iter()
                    .map(|(addr, done)| NodeProgress {
                        addr: addr.clone(),
                        done: *done,
                        alive: true,
                    })
                    .collect(),
                elapsed: self.started.elapsed(),
            });
        }
    }

    fn into_report(self, capacity: &BTreeMap<String, usize>) -> MapReport {
        MapReport {
            results: self
                .results
                .into_iter()
                .map(|r| r.unwrap_or_else(|| Err(Error::failed("no result"))))
                .collect(),
            nodes: self
                .nodes
                .into_iter()
                .map(|(addr, done)| NodeReport {
                    instances: capacity.get(&addr).copied().unwrap_or(0),
                    addr,
                    done,
                    failed: None,
                })
                .collect(),
            elapsed: self.started.elapsed(),
        }
    }
}

/// Writes the job's entry, or checks that the one there describes the same work (then
/// the map resumes it).
async fn claim_job(jobs: &kv::Store, meta: &JobMeta) -> Result<(), Error> {
    match jobs.create(&meta.name, bytes_of(meta)?).await {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
        Err(e) => return Err(nats_error("write the job", e)),
    }
    let bytes = jobs
        .get(&meta.name)
        .await
        .map_err(|e| nats_error("read the job", e))?
        .ok_or_else(|| Error::failed(format!("job {} vanished while resuming it", meta.name)))?;
    let existing: JobMeta = names::decode(&bytes)?;
    if existing.same_work(meta) {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::BadArgument,
        format!(
            "job {} exists with other work (export {}, {} inputs, module {}, tag {}); pick \
             another job name or cancel it: rwc job cancel {}",
            meta.name,
            existing.export,
            existing.total,
            &existing.module[..existing.module.len().min(12)],
            existing.tag,
            meta.name
        ),
    ))
}

/// Reads `job`'s results from the first one: the messages, and how many there are now.
async fn open_results(
    results: &rwc_nats::async_nats::jetstream::stream::Stream,
    job: &str,
) -> Result<(Ordered, u64), Error> {
    let mut consumer = results
        .create_consumer(OrderedConfig {
            filter_subject: names::job_results(job),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|e| nats_error("read the job's results", e))?;
    let existing = consumer
        .info()
        .await
        .map_err(|e| nats_error("read the job's results", e))?
        .num_pending;
    let messages = consumer
        .messages()
        .await
        .map_err(|e| nats_error("read the job's results", e))?;
    Ok((messages, existing))
}

/// The first input of every task of `job` still in the stream (waiting or running).
async fn queued_tasks(
    tasks: &rwc_nats::async_nats::jetstream::stream::Stream,
    tag: &str,
    job: &str,
) -> Result<HashSet<u64>, Error> {
    let mut subjects = tasks
        .info_with_subjects(names::job_tasks(tag, job))
        .await
        .map_err(|e| nats_error("list the job's tasks", e))?;
    let mut out = HashSet::new();
    while let Some(s) = subjects.next().await {
        let (subject, _) = s.map_err(|e| nats_error("list the job's tasks", e))?;
        if let Some(i) = names::subject_index(&subject) {
            out.insert(i);
        }
    }
    Ok(out)
}

/// How many subjects under `filter` hold a message.
async fn count_subjects(
    stream: &rwc_nats::async_nats::jetstream::stream::Stream,
    filter: &str,
) -> Result<u64, Error> {
    let mut subjects = stream
        .info_with_subjects(filter)
        .await
        .map_err(|e| nats_error("count messages", e))?;
    let mut n = 0;
    while let Some(s) = subjects.next().await {
        s.map_err(|e| nats_error("count messages", e))?;
        n += 1;
    }
    Ok(n)
}

/// Publishes `tasks`, a window of them awaiting their acknowledgement at once.
async fn publish(fleet: Fleet, tag: String, tasks: Vec<Task>) -> Result<(), Error> {
    let js = fleet.jetstream();
    let mut window = VecDeque::new();
    for task in tasks {
        let publish = Publish::build()
            .payload(bytes_of(&task)?)
            .message_id(names::task_msg_id(&task.job, task.first));
        let subject = names::task_subject(&tag, &task.job, task.first);
        let ack = publish_retrying(js, subject.clone(), publish.clone()).await?;
        window.push_back((subject, publish, ack));
        if window.len() >= PUBLISH_WINDOW
            && let Some(pending) = window.pop_front()
        {
            confirm(js, pending).await?;
        }
    }
    for pending in window {
        confirm(js, pending).await?;
    }
    Ok(())
}

/// Waits for a task's publish ack; a lost one (the server restarted or the leader changed
/// before it answered) is published again. The message id makes a second copy a no-op.
async fn confirm(
    js: &rwc_nats::async_nats::jetstream::Context,
    (subject, publish, mut ack): (
        String,
        Publish,
        rwc_nats::async_nats::jetstream::context::PublishAckFuture,
    ),
) -> Result<(), Error> {
    let deadline = Instant::now() + rwc_nats::RESULT_WRITE_PATIENCE;
    loop {
        match ack.await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, %subject, "task publish not confirmed; again");
                tokio::time::sleep(Duration::from_millis(200)).await;
                ack = publish_retrying(js, subject.clone(), publish.clone()).await?;
            }
            Err(e) => return Err(nats_error("queue a task", e)),
        }
    }
}

/// Sends one publish, retrying for a while if NATS is away (a restart, an election).
async fn publish_retrying(
    js: &rwc_nats::async_nats::jetstream::Context,
    subject: String,
    publish: Publish,
) -> Result<rwc_nats::async_nats::jetstream::context::PublishAckFuture, Error> {
    let deadline = Instant::now() + rwc_nats::RESULT_WRITE_PATIENCE;
    loop {
        match js.send_publish(subject.clone(), publish.clone()).await {
            Ok(ack) => return Ok(ack),
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "publish failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(nats_error("queue a task", e)),
        }
    }
}

/// The keys in `store` (one that cannot be read is left out); `what` says what failed.
async fn keys_of(store: &kv::Store, what: &str) -> Result<Vec<String>, Error> {
    Ok(store
        .keys()
        .await
        .map_err(|e| nats_error(what, e))?
        .filter_map(|k| async { k.ok() })
        .collect()
        .await)
}

/// The nodes in `store`, whatever their tags (entries that do not decode are left out).
pub(super) async fn list_nodes(store: &kv::Store) -> Result<Vec<NodeEntry>, Error> {
    let keys = keys_of(store, "list the nodes").await?;
    let mut out = Vec::new();
    for key in keys {
        if let Ok(Some(bytes)) = store.get(&key).await {
            match names::decode::<NodeEntry>(&bytes) {
                Ok(entry) => out.push(entry),
                Err(e) => tracing::warn!(%key, error = %e, "not an rwc node entry; left out"),
            }
        }
    }
    Ok(out)
}

fn inputs_digest(inputs: &[Vec<Value>]) -> Result<String, Error> {
    let mut hasher = Sha256::new();
    for args in inputs {
        let bytes = names::encode(args)?;
        hasher.update(to_u64(bytes.len()).to_le_bytes());
        hasher.update(&bytes);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn fresh_job_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let digest = Sha256::digest(format!("{nanos} {}", std::process::id()));
    format!("job-{}-{}", now_ms() / 1000, &hex::encode(digest)[..8])
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}
