//! The `log` capability: structured log lines to the node's log and to the caller.

use futures::future::BoxFuture;
use rwc_protocol::{CallContext, Error, MethodInfo, Object, Value, object::decode_args};

use crate::instance::output::OutputForwarder;

/// Writes a guest's log lines to the node's log (through `tracing`) and, as stream `log`,
/// to the caller's output callback.
pub struct LogCapability {
    label: String,
    output: Option<OutputForwarder>,
}

impl std::fmt::Debug for LogCapability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogCapability")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl LogCapability {
    pub(crate) fn new(label: String, output: Option<OutputForwarder>) -> Self {
        LogCapability { label, output }
    }
}

const LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace"];

impl Object for LogCapability {
    fn call<'a>(
        &'a self,
        _ctx: CallContext,
        method: &'a str,
        args: Vec<Value>,
    ) -> BoxFuture<'a, Result<Value, Error>> {
        Box::pin(async move {
            if !LEVELS.contains(&method) {
                return Err(rwc_protocol::object::no_such_method("log", method, LEVELS));
            }
            let (message, fields): (String, Option<Value>) = match args.len() {
                1 => {
                    let (m,): (String,) = decode_args(method, args)?;
                    (m, None)
                }
                _ => decode_args(method, args)?,
            };
            let fields_text = fields
                .as_ref()
                .map(|f| format!(" {f:?}"))
                .unwrap_or_default();
            let guest = self.label.as_str();
            match method {
                "error" => tracing::error!(guest, "{message}{fields_text}"),
                "warn" => tracing::warn!(guest, "{message}{fields_text}"),
                "info" => tracing::info!(guest, "{message}{fields_text}"),
                "debug" => tracing::debug!(guest, "{message}{fields_text}"),
                _ => tracing::trace!(guest, "{message}{fields_text}"),
            }
            if let Some(out) = &self.output {
                out.send(
                    "log",
                    format!("[{method}] {message}{fields_text}\n").into_bytes(),
                );
            }
            Ok(Value::Unit)
        })
    }

    fn methods(&self) -> Vec<MethodInfo> {
        LEVELS
            .iter()
            .map(|l| MethodInfo::new(*l, "(message, fields?): log a line at this level"))
            .collect()
    }

    fn type_name(&self) -> &str {
        "log"
    }
}
