//! Where a guest's output goes: a handler the node calls while the guest runs.

use std::sync::Arc;

use rwc_api::ObjectRef;
use rwc_api::output::{self, Write};
use rwc_protocol::{NetRef, Service};

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
            if stream == output::STDOUT {
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

    /// The sink object the node calls ([`rwc_api::output::Write`]).
    pub fn into_netref(self) -> NetRef {
        Service::new("output")
            .method(
                <Write as rwc_api::Request>::METHOD,
                move |Write { stream, bytes }: Write| {
                    (self.0)(&stream, &bytes);
                    async move { Ok(()) }
                },
            )
            .into_object()
    }
}

impl std::fmt::Debug for OutputHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OutputHandler")
    }
}

/// `output: Some(OutputHandler::stderr().into())` in [`InstanceOptions`](crate::InstanceOptions).
impl From<OutputHandler> for ObjectRef {
    fn from(handler: OutputHandler) -> Self {
        ObjectRef::from(handler.into_netref())
    }
}
