//! Options of a new instance, and where its output goes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rwc_protocol::{Error, NetRef, Service, Value, from_value};
use serde::Deserialize;
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

    /// Output goes to this process's stdout or stderr, as the guest wrote it (`log`
    /// records to stderr): for interactive use, where guest output and results mix.
    pub fn terminal() -> Self {
        OutputHandler::new(|stream, bytes| {
            use std::io::Write;
            if stream == "stdout" {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(bytes);
                let _ = out.flush();
            } else {
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(bytes);
                let _ = err.flush();
            }
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

/// The keys a person may write in an options map (`rwc shell`'s `new $m {…}`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OptionsMap {
    memory: Option<u64>,
    fuel: Option<u64>,
    timeout_ms: Option<u64>,
    max_output: Option<u64>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    capabilities: Vec<String>,
    #[serde(default)]
    grant: BTreeMap<String, NetRef>,
}

impl InstanceOptions {
    /// Options from a map with the node's keys: `memory`, `fuel`, `timeout_ms`,
    /// `max_output`, `env` (map), `args` (list), `capabilities` (list of names) and
    /// `grant` (map of name to netref). Unit gives the defaults; an unknown key is an
    /// error naming it.
    pub fn from_value(value: Value) -> Result<InstanceOptions, Error> {
        if value == Value::Unit {
            return Ok(InstanceOptions::default());
        }
        let m: OptionsMap = from_value(value).map_err(|e| {
            Error::bad_argument(format!(
                "bad instance options: {} (keys: memory, fuel, timeout_ms, max_output, env, \
                 args, capabilities, grant)",
                e.message()
            ))
        })?;
        Ok(InstanceOptions {
            memory: m.memory,
            fuel: m.fuel,
            timeout: m.timeout_ms.map(Duration::from_millis),
            max_output: m.max_output,
            env: m.env.into_iter().collect(),
            args: m.args,
            capabilities: m.capabilities,
            grant: m.grant.into_iter().collect(),
            output: None,
        })
    }

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
