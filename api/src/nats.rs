//! What nodes and clients exchange over NATS JetStream: where each thing lives (bucket,
//! stream and subject names) and the messages themselves. The I/O is in `rwc-nats` (the
//! plumbing both sides share), the node's `nats` module and the client's.
//!
//! - A node's [`NodeEntry`] is a key of the [`NODES_BUCKET`] KV bucket. The bucket's
//!   `max_age` is the entries' TTL; a node re-puts its key every third of it and deletes it
//!   when it shuts down.
//! - A durable map is a job: its [`JobMeta`] is a key of [`JOBS_BUCKET`], its module an
//!   object of [`MODULES_BUCKET`] named by its SHA-256, each batch of inputs one [`Task`]
//!   on the work-queue stream [`TASKS_STREAM`] (subject [`task_subject`], `Nats-Msg-Id`
//!   [`task_msg_id`]), and each input's [`TaskResult`] one message on [`RESULTS_STREAM`]
//!   (subject [`result_subject`]). That stream keeps one message per subject and refuses a
//!   second one, so the first result written for an input is its result, however often the
//!   input ran.
//!
//! Every message is encoded as an rwc [`Value`] through the wire codec ([`encode`],
//! [`decode`]), so values in and out keep their types (bytes, maps with any keys, floats).
//!
//! ```
//! use rwc_api::nats::{self, Task};
//! use rwc_protocol::Value;
//!
//! let task = Task {
//!     job: "squares".into(),
//!     first: 0,
//!     module: "ab".repeat(32),
//!     export: "sq".into(),
//!     inputs: vec![vec![Value::I64(12)]],
//!     options: Default::default(),
//! };
//! let bytes = nats::encode(&task).unwrap();
//! assert_eq!(nats::decode::<Task>(&bytes).unwrap(), task);
//! assert_eq!(nats::task_subject("cpu", "squares", 0), "rwc.tasks.cpu.squares.0");
//! ```

use rwc_protocol::{DecodeLimits, Error, Value, codec, from_value, to_value};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::InstanceOptions;

/// KV bucket of the nodes: key = [`NodeEntry::id`], value = the encoded [`NodeEntry`].
pub const NODES_BUCKET: &str = "rwc-nodes";
/// KV bucket of the jobs: key = job name, value = the encoded [`JobMeta`].
pub const JOBS_BUCKET: &str = "rwc-jobs";
/// Object store of the modules of durable maps, each named by its SHA-256 (hex).
pub const MODULES_BUCKET: &str = "rwc-modules";
/// Work-queue stream of the tasks (subjects `rwc.tasks.>`).
pub const TASKS_STREAM: &str = "RWC_TASKS";
/// Stream of the results, one message per subject (subjects `rwc.results.>`).
pub const RESULTS_STREAM: &str = "RWC_RESULTS";
/// Name under which nodes answer the NATS service API (`$SRV.PING.rwc-node`…).
pub const SERVICE_NAME: &str = "rwc-node";
/// The tag of a node started without `--tag`, and of a map given none.
pub const DEFAULT_TAG: &str = "default";
/// Longest job name or tag.
pub const MAX_NAME_LEN: usize = 64;
/// Seconds a node entry lives without a refresh, by default.
pub const DEFAULT_TTL_SECS: u64 = 30;
/// Seconds a node may hold a task without a sign of life before it goes to another node.
pub const DEFAULT_ACK_WAIT_SECS: u64 = 30;
/// How many times an input is run when its node dies each time, by default.
pub const DEFAULT_MAX_DELIVER: u32 = 3;

/// Subjects of the tasks stream.
pub const TASKS_SUBJECTS: &str = "rwc.tasks.>";
/// Subjects of the results stream.
pub const RESULTS_SUBJECTS: &str = "rwc.results.>";

/// Where the task holding inputs `first..` of `job` for nodes tagged `tag` goes.
pub fn task_subject(tag: &str, job: &str, first: u64) -> String {
    format!("rwc.tasks.{tag}.{job}.{first}")
}

/// Every task of `job` (for the nodes tagged `tag`).
pub fn job_tasks(tag: &str, job: &str) -> String {
    format!("rwc.tasks.{tag}.{job}.>")
}

/// Every task for the nodes tagged `tag`: what their consumer pulls.
pub fn tag_tasks(tag: &str) -> String {
    format!("rwc.tasks.{tag}.>")
}

/// The `Nats-Msg-Id` of a task: `job/first`, so the server drops a task published twice.
pub fn task_msg_id(job: &str, first: u64) -> String {
    format!("{job}/{first}")
}

/// The durable pull consumer that the nodes tagged `tag` share.
pub fn consumer_name(tag: &str) -> String {
    format!("rwc-tag-{tag}")
}

/// Where the result of input `index` of `job` goes.
pub fn result_subject(job: &str, index: u64) -> String {
    format!("rwc.results.{job}.{index}")
}

/// Every result of `job`.
pub fn job_results(job: &str) -> String {
    format!("rwc.results.{job}.>")
}

/// The input index at the end of a task or result subject.
pub fn subject_index(subject: &str) -> Option<u64> {
    subject.rsplit('.').next()?.parse().ok()
}

/// Checks a job name or tag: 1 to [`MAX_NAME_LEN`] ASCII letters, digits, `-` or `_` (it
/// is one token of a subject and part of a consumer name). `what` names it in the error.
pub fn check_name(what: &str, name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::bad_argument(format!(
            "{what} {name:?} is not a valid name: use 1 to {MAX_NAME_LEN} letters, digits, '-' or '_'"
        )))
    }
}

/// Checks that `args` are values only: a durable map cannot carry a netref (nor a
/// callback, which is one), since no connection joins its client and its node.
pub fn check_values(args: &[Value]) -> Result<(), Error> {
    fn holds_ref(v: &Value) -> bool {
        match v {
            Value::Ref(_) => true,
            Value::List(items) => items.iter().any(holds_ref),
            Value::Map(pairs) => pairs.iter().any(|(k, v)| holds_ref(k) || holds_ref(v)),
            _ => false,
        }
    }
    if args.iter().any(holds_ref) {
        return Err(Error::bad_argument(
            "a durable map takes values only, and an argument holds a netref; netrefs and \
             callbacks need a direct connection to a node (a pool: rwc map --nodes)",
        ));
    }
    Ok(())
}

/// A node as it lists itself in [`NODES_BUCKET`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    /// The node's key in the bucket: unique per node process.
    pub id: String,
    /// Where clients reach the node directly (`HOST:PORT`).
    pub address: String,
    /// What the node serves: durable maps with one of these tags, and pools asking for it.
    pub tags: Vec<String>,
    /// How many tasks it runs at once: its CPU count.
    pub capacity: u32,
    /// Calls and tasks running on it when it last refreshed the entry.
    pub load: u32,
    /// rwc-node version.
    pub version: String,
}

/// A durable map, as [`JOBS_BUCKET`] keeps it. A client that finds a job of the same name
/// resumes it only if everything but `created_ms` is equal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobMeta {
    /// The job's name (its key).
    pub name: String,
    /// The tag of the nodes that run it.
    pub tag: String,
    /// SHA-256 of the module (its name in [`MODULES_BUCKET`]).
    pub module: String,
    /// The export called once per input.
    pub export: String,
    /// How many inputs.
    pub total: u64,
    /// Inputs per task: task `k` holds inputs `k * batch ..`.
    pub batch: u64,
    /// SHA-256 of the encoded inputs, so a resume with other inputs is refused.
    pub inputs_digest: String,
    /// Milliseconds since the Unix epoch when the job was made.
    pub created_ms: u64,
}

impl JobMeta {
    /// Whether `other` describes the same work (only the creation time may differ).
    pub fn same_work(&self, other: &JobMeta) -> bool {
        JobMeta {
            created_ms: other.created_ms,
            ..self.clone()
        } == *other
    }
}

/// A batch of consecutive inputs of a job, as one message of the work-queue stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// The job it belongs to.
    pub job: String,
    /// Index of its first input: `inputs[k]` is input `first + k`.
    pub first: u64,
    /// SHA-256 of the module.
    pub module: String,
    /// The export to call.
    pub export: String,
    /// Each input's positional arguments. Values only: no netrefs.
    pub inputs: Vec<Vec<Value>>,
    /// The instance the inputs run in (memory, fuel, timeout, env…); no objects, no
    /// output sink.
    pub options: InstanceOptions,
}

/// The result of one input, as the single message of its [`result_subject`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    /// The job.
    pub job: String,
    /// The input's index.
    pub index: u64,
    /// Address of the node that wrote it (empty if none ran it).
    pub node: String,
    /// Which delivery of its task this was (1 for the first).
    pub delivery: u64,
    /// What the call returned, or why it failed.
    pub outcome: Result<Value, Error>,
}

/// Encodes a message as a [`Value`] through the wire codec.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, Error> {
    codec::encode_value(&to_value(msg)?)
}

/// Decodes a message that [`encode`] wrote; anything else is a `bad argument` error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    from_value(codec::decode_value(bytes, DecodeLimits::DEFAULT)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_subject_tokens() {
        assert!(check_name("job", "run-2024_01").is_ok());
        for bad in ["", "a.b", "a b", "a>", "*", &"x".repeat(65)] {
            let e = check_name("job", bad).unwrap_err();
            assert!(e.message().contains("not a valid name"), "{e}");
        }
        assert_eq!(subject_index(&result_subject("j", 42)), Some(42));
        assert_eq!(subject_index("rwc.results.j.x"), None);
    }

    #[test]
    fn same_work_ignores_only_the_creation_time() {
        let a = JobMeta {
            name: "j".into(),
            tag: "default".into(),
            module: "m".into(),
            export: "f".into(),
            total: 3,
            batch: 1,
            inputs_digest: "d".into(),
            created_ms: 1,
        };
        assert!(a.same_work(&JobMeta {
            created_ms: 2,
            ..a.clone()
        }));
        assert!(!a.same_work(&JobMeta {
            total: 4,
            ..a.clone()
        }));
    }
}
