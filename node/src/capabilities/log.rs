//! The `log` capability: structured log lines to the node's log and to the caller.

use rwc_protocol::object::{Call, Dispatch, MethodTable};
use rwc_protocol::{Error, Value};

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

const LEVELS: MethodTable = MethodTable(rwc_api::capability::log::METHODS);

impl Dispatch for LogCapability {
    const TYPE_NAME: &'static str = rwc_api::capability::LOG;
    const METHODS: MethodTable = LEVELS;

    async fn dispatch<'a>(&'a self, call: Call<'a>) -> Result<Value, Error> {
        let method = call.method;
        if !LEVELS.0.iter().any(|(level, _)| *level == method) {
            return Err(Self::unknown(method));
        }
        let (message, fields): (String, Option<Value>) = match call.args.len() {
            1 => {
                let (m,): (String,) = call.args()?;
                (m, None)
            }
            _ => call.args()?,
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
                rwc_api::output::LOG,
                format!("[{method}] {message}{fields_text}\n").into_bytes(),
            );
        }
        Ok(Value::Unit)
    }
}
