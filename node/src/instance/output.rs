//! Forwards a guest's output to the caller's output callback while the guest runs.
//!
//! The sandbox's sink is synchronous; it queues chunks here, and one task per instance
//! sends them in order as `write(stream, bytes)` calls on the callback, coalescing what
//! piles up. Before a call returns, the instance flushes, so the caller has seen every
//! line before the result.

use rwc_api::Request;
use rwc_api::output::{self, Write};
use rwc_protocol::NetRef;
use serde_bytes::ByteBuf;
use tokio::sync::{mpsc, oneshot};

use crate::sandbox::{OutputSink, Stream};

/// Most bytes sent in one `write` call.
const MAX_CHUNK: usize = 1 << 20;

#[derive(Clone)]
pub(crate) struct OutputForwarder {
    tx: mpsc::UnboundedSender<Out>,
}

enum Out {
    Data(&'static str, Vec<u8>),
    Flush(oneshot::Sender<()>),
}

impl OutputForwarder {
    /// Starts forwarding to `target` (an object with a `write(stream, bytes)` method).
    pub(crate) fn start(target: NetRef) -> OutputForwarder {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(forward(target, rx));
        OutputForwarder { tx }
    }

    /// The sink to give the sandbox.
    pub(crate) fn sink(&self) -> OutputSink {
        let tx = self.tx.clone();
        OutputSink::new(move |stream, bytes| {
            let name = match stream {
                Stream::Stdout => output::STDOUT,
                Stream::Stderr => output::STDERR,
            };
            let _ = tx.send(Out::Data(name, bytes.to_vec()));
        })
    }

    /// Queues a line on another stream (the `log` capability uses [`output::LOG`]).
    pub(crate) fn send(&self, stream: &'static str, bytes: Vec<u8>) {
        let _ = self.tx.send(Out::Data(stream, bytes));
    }

    /// Waits until everything queued so far has been delivered.
    pub(crate) async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Out::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

async fn forward(target: NetRef, mut rx: mpsc::UnboundedReceiver<Out>) {
    let mut target = Some(target);
    let mut next = rx.recv().await;
    while let Some(msg) = next.take() {
        match msg {
            Out::Flush(done) => {
                let _ = done.send(());
                next = rx.recv().await;
            }
            Out::Data(stream, mut bytes) => {
                // Coalesce what is already queued for the same stream.
                loop {
                    match rx.try_recv() {
                        Ok(Out::Data(s, more))
                            if s == stream && bytes.len() + more.len() <= MAX_CHUNK =>
                        {
                            bytes.extend_from_slice(&more);
                        }
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let write = Write {
                    stream: stream.to_owned(),
                    bytes: ByteBuf::from(bytes),
                };
                if let Some(t) = &target
                    && let Err(e) = call(t, &write).await
                {
                    // The caller's callback is gone: drop the rest of the output.
                    tracing::debug!(error = %e, "guest output callback failed; output dropped");
                    target = None;
                }
                if next.is_none() {
                    next = rx.recv().await;
                }
            }
        }
    }
}

/// One `write` on the caller's sink.
async fn call(target: &NetRef, write: &Write) -> Result<(), rwc_protocol::Error> {
    let value = target.call_value(Write::METHOD, write.to_args()?).await?;
    Write::reply(value)
}
