//! # rwc-nats
//!
//! The NATS JetStream plumbing that rwc nodes and clients share: connecting, the buckets and
//! streams of [`rwc_api::nats`] (made on first use, with the settings both sides expect),
//! and the one way a result is written (first write wins).
//!
//! It works against nats-server 2.9 (Debian's): async-nats' `create_key_value` asks the
//! server for account fields that 2.9 does not send, so KV buckets are made here as the
//! streams they are, with the same settings, and then opened as buckets.
//!
//! ```no_run
//! # async fn demo() -> Result<(), rwc_protocol::Error> {
//! use rwc_nats::{Fleet, FleetOptions};
//!
//! let fleet = Fleet::connect("nats://127.0.0.1:4222", FleetOptions::default()).await?;
//! let nodes = fleet.nodes_bucket(std::time::Duration::from_secs(30)).await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

use std::time::Duration;

use async_nats::jetstream::consumer::{self, PullConsumer};
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, ErrorCode, kv, object_store};
use async_nats::{ConnectOptions, ServerAddr};
use rwc_api::nats::{
    self as names, JOBS_BUCKET, MODULES_BUCKET, NODES_BUCKET, RESULTS_STREAM, RESULTS_SUBJECTS,
    TASKS_STREAM, TASKS_SUBJECTS, TaskResult,
};
use rwc_protocol::{Error, ErrorKind};

pub use async_nats;

/// How long a result write keeps trying through a server restart or a leader election
/// before it gives up (the task is then redelivered and written later).
pub const RESULT_WRITE_PATIENCE: Duration = Duration::from_secs(60);

/// How long a look-up or clean-up keeps trying while NATS cannot answer (a leader
/// election on a cluster takes some seconds; a restarted server some more).
pub const LOOKUP_PATIENCE: Duration = Duration::from_secs(30);

/// Whether JetStream refused a result because its input already has one. It answers that
/// with its "stream store failed" code, which it gives to every failed store (a full disk
/// too), so the server's text is checked as well: a store that failed for another reason
/// is retried, not taken for an answer.
fn already_answered(e: &(dyn std::error::Error + 'static)) -> bool {
    has_code(e, ErrorCode::STREAM_STORE_FAILED)
        && chain(e).contains("maximum messages per subject exceeded")
}

/// How to connect to NATS and make what is missing.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Connection name shown by the server's monitoring (`rwc-node`, `rwc`).
    pub name: String,
    /// Replicas of the buckets and streams this fleet makes (3 on a 3-server cluster, so
    /// they survive the loss of a server). Buckets that exist keep theirs.
    pub replicas: usize,
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions {
            name: "rwc".to_owned(),
            replicas: 1,
        }
    }
}

/// A connection to a NATS server (or cluster) with JetStream, and the rwc buckets and
/// streams on it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Fleet {
    client: async_nats::Client,
    js: jetstream::Context,
    replicas: usize,
    url: String,
}

/// What [`Fleet::write_result`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// This write is the input's result.
    First,
    /// The input already had a result; this one was dropped.
    AlreadyAnswered,
}

impl Fleet {
    /// Connects to `url`: `nats://HOST:PORT`, or several separated by commas (servers of
    /// one cluster). The client reconnects by itself after a server restart.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the connection attempt.
    pub async fn connect(url: &str, options: FleetOptions) -> Result<Fleet, Error> {
        let addrs = url
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<ServerAddr>().map_err(|e| {
                    Error::bad_argument(format!(
                        "{s:?} is not a NATS server address ({e}); use nats://HOST:PORT"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if addrs.is_empty() {
            return Err(Error::bad_argument(
                "no NATS server given: use nats://HOST:PORT",
            ));
        }
        let client = ConnectOptions::new()
            .name(&options.name)
            // Back to a restarted server within a second, not the default's growing waits.
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((100 * u64::try_from(attempts).unwrap_or(10)).min(1000))
            })
            .connect(addrs)
            .await
            .map_err(|e| {
                Error::disconnected(format!(
                    "cannot reach NATS at {url}: {e}; is nats-server running (with -js)?"
                ))
            })?;
        let js = jetstream::new(client.clone());
        Ok(Fleet {
            client,
            js,
            replicas: options.replicas.max(1),
            url: url.to_owned(),
        })
    }

    /// The NATS client.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The JetStream context.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// The URL it was connected with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The nodes' KV bucket; made with entries living `ttl` if it does not exist. A bucket
    /// that exists keeps its own TTL: see [`bucket_ttl`](Fleet::bucket_ttl).
    ///
    /// # Cancel safety
    /// Dropping the future abandons the request; a bucket may have been made.
    pub async fn nodes_bucket(&self, ttl: Duration) -> Result<kv::Store, Error> {
        self.kv_bucket(NODES_BUCKET, ttl).await
    }

    /// The nodes' bucket if it exists (`None` if no node ever registered).
    ///
    /// # Cancel safety
    /// Dropping the future abandons the request.
    pub async fn existing_nodes_bucket(&self) -> Result<Option<kv::Store>, Error> {
        match self.js.get_key_value(NODES_BUCKET).await {
            Ok(store) => Ok(Some(store)),
            Err(e) if self.stream_missing(&format!("KV_{NODES_BUCKET}")).await => {
                tracing::trace!(error = %e, "no nodes bucket yet");
                Ok(None)
            }
            Err(e) => Err(nats_error("open the nodes bucket", e)),
        }
    }

    /// The TTL of the nodes' entries: the bucket's `max_age`.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the request.
    pub async fn bucket_ttl(&self, store: &kv::Store) -> Result<Duration, Error> {
        let status = store
            .status()
            .await
            .map_err(|e| nats_error("read the nodes bucket's settings", e))?;
        Ok(status.info.config.max_age)
    }

    /// The jobs' KV bucket (entries never expire).
    ///
    /// # Cancel safety
    /// Dropping the future abandons the request; a bucket may have been made.
    pub async fn jobs_bucket(&self) -> Result<kv::Store, Error> {
        self.kv_bucket(JOBS_BUCKET, Duration::ZERO).await
    }

    /// The object store of the modules.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the request; a store may have been made.
    pub async fn modules(&self) -> Result<object_store::ObjectStore, Error> {
        if let Ok(store) = self.js.get_object_store(MODULES_BUCKET).await {
            return Ok(store);
        }
        self.js
            .create_object_store(object_store::Config {
                bucket: MODULES_BUCKET.to_owned(),
                description: Some("rwc: modules of durable maps, by SHA-256".to_owned()),
                num_replicas: self.replicas,
                storage: StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| nats_error("make the modules object store", e))
    }

    /// The work-queue stream of the tasks.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the request; the stream may have been made.
    pub async fn tasks(&self) -> Result<stream::Stream, Error> {
        self.stream(stream::Config {
            name: TASKS_STREAM.to_owned(),
            description: Some("rwc: inputs of durable maps, taken by nodes".to_owned()),
            subjects: vec![TASKS_SUBJECTS.to_owned()],
            retention: RetentionPolicy::WorkQueue,
            storage: StorageType::File,
            num_replicas: self.replicas,
            allow_direct: true,
            ..Default::default()
        })
        .await
    }

    /// The stream of the results: one message per subject, a second one refused.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the request; the stream may have been made.
    pub async fn results(&self) -> Result<stream::Stream, Error> {
        self.stream(stream::Config {
            name: RESULTS_STREAM.to_owned(),
            description: Some("rwc: one result per input of durable maps".to_owned()),
            subjects: vec![RESULTS_SUBJECTS.to_owned()],
            max_messages_per_subject: 1,
            discard: DiscardPolicy::New,
            discard_new_per_subject: true,
            storage: StorageType::File,
            num_replicas: self.replicas,
            allow_direct: true,
            ..Default::default()
        })
        .await
    }

    /// The pull consumer shared by the nodes tagged `tag`, made with `ack_wait` and
    /// `max_deliver` if it does not exist (one that exists keeps its settings: read them
    /// from its info).
    ///
    /// # Cancel safety
    /// Dropping the future abandons the request; the consumer may have been made.
    pub async fn tag_consumer(
        &self,
        tag: &str,
        ack_wait: Duration,
        max_deliver: i64,
    ) -> Result<PullConsumer, Error> {
        let tasks = self.tasks().await?;
        let name = names::consumer_name(tag);
        tasks
            .get_or_create_consumer(
                &name,
                consumer::pull::Config {
                    durable_name: Some(name.clone()),
                    description: Some(format!("rwc: nodes tagged {tag}")),
                    filter_subject: names::tag_tasks(tag),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait,
                    max_deliver,
                    // Pull is the back-pressure: each node asks for what it has room for.
                    max_ack_pending: 100_000,
                    num_replicas: 0,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| nats_error(&format!("make the consumer of tag {tag}"), e))
    }

    /// Writes `result` as its input's result unless the input already has one. Retries
    /// through a server restart or leader election for up to [`RESULT_WRITE_PATIENCE`].
    ///
    /// # Cancel safety
    /// Dropping the future abandons the write; it may or may not have been stored (a later
    /// write then finds it).
    pub async fn write_result(&self, result: &TaskResult) -> Result<Written, Error> {
        let subject = names::result_subject(&result.job, result.index);
        let payload = bytes_of(result)?;
        let deadline = tokio::time::Instant::now() + RESULT_WRITE_PATIENCE;
        let mut pause = Duration::from_millis(50);
        loop {
            let attempt = async {
                self.js
                    .publish(subject.clone(), payload.clone())
                    .await?
                    .await
            };
            let e = match attempt.await {
                Ok(_) => return Ok(Written::First),
                Err(e) if already_answered(&e) => {
                    return Ok(Written::AlreadyAnswered);
                }
                Err(e) => e,
            };
            if tokio::time::Instant::now() + pause > deadline {
                return Err(nats_error("write a result", e));
            }
            tracing::debug!(error = %e, %subject, "result write failed; retrying");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    /// Result writes that do not wait for each other: see [`ResultWrites`].
    pub fn result_writes(&self) -> ResultWrites<'_> {
        ResultWrites {
            fleet: self,
            pending: std::collections::VecDeque::new(),
        }
    }

    /// Whether input `index` of `job` has a result.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the request.
    pub async fn has_result(
        &self,
        results: &stream::Stream,
        job: &str,
        index: u64,
    ) -> Result<bool, Error> {
        match results
            .direct_get_last_for_subject(names::result_subject(job, index))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == stream::DirectGetErrorKind::NotFound => Ok(false),
            Err(e) => Err(nats_error("look up a result", e)),
        }
    }

    /// A KV bucket, made as its stream if it does not exist (see the crate docs for why).
    async fn kv_bucket(&self, bucket: &str, max_age: Duration) -> Result<kv::Store, Error> {
        patiently(LOOKUP_PATIENCE, || self.kv_bucket_once(bucket, max_age)).await
    }

    async fn kv_bucket_once(&self, bucket: &str, max_age: Duration) -> Result<kv::Store, Error> {
        let stream = format!("KV_{bucket}");
        if let Ok(store) = self.js.get_key_value(bucket).await {
            return Ok(store);
        }
        // What async-nats' create_key_value asks for, history 1.
        self.stream_once(stream::Config {
            name: stream,
            description: Some(format!("rwc: KV bucket {bucket}")),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            max_age,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: DiscardPolicy::New,
            storage: StorageType::File,
            num_replicas: self.replicas,
            ..Default::default()
        })
        .await?;
        self.js
            .get_key_value(bucket)
            .await
            .map_err(|e| nats_error(&format!("open the KV bucket {bucket}"), e))
    }

    /// The stream named in `config`: the one that exists (whatever its settings), else a
    /// new one with `config`.
    async fn stream(&self, config: stream::Config) -> Result<stream::Stream, Error> {
        patiently(LOOKUP_PATIENCE, || self.stream_once(config.clone())).await
    }

    async fn stream_once(&self, config: stream::Config) -> Result<stream::Stream, Error> {
        let name = config.name.clone();
        match self.js.get_stream(&name).await {
            Ok(s) => return Ok(s),
            Err(e) if !has_code(&e, ErrorCode::STREAM_NOT_FOUND) => {
                return Err(nats_error(&format!("look up the stream {name}"), e));
            }
            Err(_) => {}
        }
        match self.js.create_stream(config).await {
            Ok(s) => Ok(s),
            // Someone made it between our look-up and our create.
            Err(e) if has_code(&e, ErrorCode::STREAM_NAME_EXIST) => self
                .js
                .get_stream(&name)
                .await
                .map_err(|e| nats_error(&format!("open the stream {name}"), e)),
            Err(e) => Err(nats_error(&format!("make the stream {name}"), e)),
        }
    }

    async fn stream_missing(&self, name: &str) -> bool {
        matches!(self.js.get_stream(name).await, Err(e) if has_code(&e, ErrorCode::STREAM_NOT_FOUND))
    }
}

/// The results of a task's inputs, written as a pipeline: each is sent at once and its
/// answer awaited later (at most [`RESULT_WINDOW`] outstanding), so a task of many small
/// inputs does not wait a round trip to NATS per input. A result whose write is not
/// confirmed is written again the patient way ([`Fleet::write_result`]); one that finds
/// the input answered already is fine (the first write wins).
#[derive(Debug)]
pub struct ResultWrites<'a> {
    fleet: &'a Fleet,
    pending: std::collections::VecDeque<(TaskResult, jetstream::context::PublishAckFuture)>,
}

/// Result writes a [`ResultWrites`] leaves unconfirmed at most.
pub const RESULT_WINDOW: usize = 64;

impl ResultWrites<'_> {
    /// Sends `result`.
    ///
    /// # Cancel safety
    /// Dropping the future (or the `ResultWrites`) abandons the writes not yet confirmed;
    /// they may or may not be stored.
    pub async fn write(&mut self, result: TaskResult) -> Result<(), Error> {
        let subject = names::result_subject(&result.job, result.index);
        match self.fleet.js.publish(subject, bytes_of(&result)?).await {
            Ok(ack) => self.pending.push_back((result, ack)),
            Err(e) => {
                tracing::debug!(error = %e, "result send failed; writing it patiently");
                self.fleet.write_result(&result).await?;
            }
        }
        if self.pending.len() > RESULT_WINDOW
            && let Some(oldest) = self.pending.pop_front()
        {
            self.confirm(oldest).await?;
        }
        Ok(())
    }

    /// Waits until every result sent is stored.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the writes not yet confirmed.
    pub async fn finish(mut self) -> Result<(), Error> {
        while let Some(next) = self.pending.pop_front() {
            self.confirm(next).await?;
        }
        Ok(())
    }

    async fn confirm(
        &self,
        (result, ack): (TaskResult, jetstream::context::PublishAckFuture),
    ) -> Result<(), Error> {
        match ack.await {
            Ok(_) => Ok(()),
            Err(e) if already_answered(&e) => Ok(()),
            Err(e) => {
                tracing::debug!(error = %e, "result write not confirmed; writing it again");
                self.fleet.write_result(&result).await.map(|_| ())
            }
        }
    }
}

/// Runs `op` again, pausing 50 ms doubling up to 1 s, while it fails because NATS could
/// not answer ([`ErrorKind::Disconnected`]: a leader election, a restarting server), for
/// up to `patience`; any other error, or the last one, is returned. `op` must be safe to
/// repeat.
///
/// # Cancel safety
/// Dropping the future abandons the attempt under way.
pub async fn patiently<T, F, Fut>(patience: Duration, mut op: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    let mut pause = Duration::from_millis(50);
    loop {
        match op().await {
            Err(e) if e.kind() == ErrorKind::Disconnected => {
                if tokio::time::Instant::now() + pause > deadline {
                    return Err(e);
                }
                tracing::debug!(error = %e, "NATS did not answer; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            done => return done,
        }
    }
}

/// An encoded message as a NATS payload.
pub fn bytes_of<T: serde::Serialize>(msg: &T) -> Result<bytes::Bytes, Error> {
    Ok(names::encode(msg)?.into())
}

/// `what` failed because of the NATS error `e`: `disconnected` when NATS could not be
/// reached in time, `failed` otherwise.
pub fn nats_error(what: &str, e: impl std::error::Error) -> Error {
    let text = chain(&e);
    let lower = text.to_ascii_lowercase();
    let kind = if lower.contains("timed out")
        || lower.contains("no responders")
        || lower.contains("disconnected")
        || lower.contains("broken pipe")
        || lower.contains("connection")
    {
        ErrorKind::Disconnected
    } else {
        ErrorKind::Failed
    };
    Error::new(kind, format!("cannot {what}: {text}"))
}

/// Whether JetStream answered `e` with error `code` (anywhere in its source chain).
pub fn has_code(e: &(dyn std::error::Error + 'static), code: ErrorCode) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(js) = err.downcast_ref::<jetstream::Error>()
            && js.error_code() == code
        {
            return true;
        }
        next = err.source();
    }
    // Some errors carry the server's answer only as text.
    chain(e).contains(&format!("error code {}", code.0))
}

/// An error and its causes, `: `-separated, without repeating a cause its parent already
/// shows.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
        next = cause.source();
    }
    text
}
