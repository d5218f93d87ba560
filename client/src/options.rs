//! Options of a new instance, and where its output goes.

use std::sync::Arc;
use std::time::Duration;

use rwc_protocol::{NetRef, Service, Value};
use serde_bytes::ByteBuf;

type OutputFn = dyn Fn(&str, &[u8]) + Send + Sync;

/// Called with each chunk of guest output: the stream (`stdout`, `stderr`, `log`) and bytes.
#[derive(Clone)]
pub struct OutputHandler(Arc<OutputFn>);

impl OutputHandler {
    /// Output goes to `f`.
    pub fn new(f: impl Fn(&str, &[u8]) + Send + Sync + 'static) -> Self {
        OutputHandler(Arc::new(f))
    }

    /// Output goes to this process's stderr as it arrives, whatever the guest's stream.
    pub fn stderr() -> Self {
        OutputHandler::new(|_stream, bytes| {
            use std::io::Write;
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(bytes);
            let _ = err.flush();
        })
    }

    /// The callback object the node calls.
    pub(crate) fn into_netref(self) -> NetRef {
        Service::new("output")
            .method("write", move |(stream, bytes): (String, ByteBuf)| {
                (self.0)(&stream, &bytes);
                async move { Ok(()) }
            })
            .into_object()
    }
}

impl std::fmt::Debug for OutputHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OutputHandler")
    }
}

/// How to make an instance. Unset fields take the node's defaults; the node caps what a
/// client may ask for.
#[derive(Debug, Clone, Default)]
pub struct InstanceOptions {
    /// Linear memory cap in bytes.
    pub memory: Option<u64>,
    /// Fuel budget; unmetered if unset.
    pub fuel: Option<u64>,
    /// Deadline of each call.
    pub timeout: Option<Duration>,
    /// Output captured per call, in bytes.
    pub max_output: Option<u64>,
    /// WASI environment variables.
    pub env: Vec<(String, String)>,
    /// WASI arguments (`argv`).
    pub args: Vec<String>,
    /// Node capabilities to hand to the guest (`sys`, `log`).
    pub capabilities: Vec<String>,
    /// Objects of this client handed to the guest by name.
    pub grant: Vec<(String, NetRef)>,
    /// Where the guest's output goes while it runs.
    pub output: Option<OutputHandler>,
}

impl InstanceOptions {
    /// The options as the node's `instantiate` takes them.
    pub fn to_value(&self) -> Value {
        let mut m: Vec<(Value, Value)> = Vec::new();
        let mut put = |k: &str, v: Value| m.push((Value::from(k), v));
        if let Some(v) = self.memory {
            put("memory", Value::U64(v));
        }
        if let Some(v) = self.fuel {
            put("fuel", Value::U64(v));
        }
        if let Some(t) = self.timeout {
            put(
                "timeout_ms",
                Value::U64(u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
            );
        }
        if let Some(v) = self.max_output {
            put("max_output", Value::U64(v));
        }
        if !self.env.is_empty() {
            put(
                "env",
                Value::Map(
                    self.env
                        .iter()
                        .map(|(k, v)| (Value::from(k.as_str()), Value::from(v.as_str())))
                        .collect(),
                ),
            );
        }
        if !self.args.is_empty() {
            put(
                "args",
                Value::List(self.args.iter().map(|a| Value::from(a.as_str())).collect()),
            );
        }
        if !self.capabilities.is_empty() {
            put(
                "capabilities",
                Value::List(
                    self.capabilities
                        .iter()
                        .map(|a| Value::from(a.as_str()))
                        .collect(),
                ),
            );
        }
        if !self.grant.is_empty() {
            put(
                "grant",
                Value::Map(
                    self.grant
                        .iter()
                        .map(|(k, r)| (Value::from(k.as_str()), Value::from(r.clone())))
                        .collect(),
                ),
            );
        }
        if let Some(o) = &self.output {
            put("output", Value::from(o.clone().into_netref()));
        }
        Value::Map(m)
    }
}
