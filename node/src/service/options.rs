//! Instance options as a client sends them: a map with string keys.

use std::collections::BTreeMap;
use std::time::Duration;

use rwc_protocol::{Error, NetRef, Value, from_value};
use serde::Deserialize;

use crate::config::Limits;
use crate::sandbox::InstanceOptions;

/// What a client may set when instantiating (every key optional).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Options {
    /// Linear memory cap in bytes.
    pub(crate) memory: Option<u64>,
    /// Fuel budget (instructions, roughly); none by default.
    pub(crate) fuel: Option<u64>,
    /// Deadline per call, in milliseconds.
    pub(crate) timeout_ms: Option<u64>,
    /// Output captured per call, in bytes.
    pub(crate) max_output: Option<u64>,
    /// Environment variables for WASI.
    pub(crate) env: BTreeMap<String, String>,
    /// Command-line arguments for WASI (`argv[0]` included).
    pub(crate) args: Vec<String>,
    /// Node capabilities to hand to the guest, by name.
    pub(crate) capabilities: Vec<String>,
    /// Objects the client holds, handed to the guest under the given names.
    pub(crate) grant: BTreeMap<String, NetRef>,
    /// Receives the guest's output: `write(stream, bytes)`.
    pub(crate) output: Option<NetRef>,
}

impl Options {
    pub(crate) fn from_value(v: Value) -> Result<Options, Error> {
        match v {
            Value::Unit => Ok(Options::default()),
            Value::Map(_) => from_value(v)
                .map_err(|e| Error::bad_argument(format!("bad instance options: {}", e.message()))),
            other => Err(Error::bad_argument(format!(
                "instance options must be a map, got a {}",
                other.type_name()
            ))),
        }
    }

    /// The sandbox options, with client requests capped by the node's limits.
    pub(crate) fn sandbox_options(&self, limits: &Limits) -> InstanceOptions {
        InstanceOptions {
            memory_limit: Some(
                self.memory
                    .unwrap_or(limits.memory_bytes)
                    .min(limits.memory_bytes),
            ),
            fuel: self.fuel,
            call_timeout: Some(Duration::from_millis(
                self.timeout_ms
                    .unwrap_or(limits.call_timeout_ms)
                    .min(limits.call_timeout_ms),
            )),
            max_output: Some(
                self.max_output
                    .unwrap_or(limits.max_output_bytes)
                    .min(limits.max_output_bytes),
            ),
            env: self
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            args: self.args.clone(),
            output: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_requests_are_capped_and_typos_refused() {
        let v = Value::Map(vec![
            (Value::from("memory"), Value::U64(1 << 40)),
            (Value::from("timeout_ms"), Value::U64(500)),
        ]);
        let o = Options::from_value(v).unwrap();
        let s = o.sandbox_options(&Limits::default());
        assert_eq!(s.memory_limit, Some(256 << 20));
        assert_eq!(s.call_timeout, Some(Duration::from_millis(500)));
        let err = Options::from_value(Value::Map(vec![(Value::from("memroy"), Value::U64(1))]))
            .unwrap_err();
        assert!(err.message().contains("memroy"), "{err}");
        assert!(Options::from_value(Value::Unit).is_ok());
    }
}
