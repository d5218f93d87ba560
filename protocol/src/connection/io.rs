//! The connection's two tasks: the reader (decode, dispatch) and the writer (batch, write).

use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::FutureExt;
use futures::future::abortable;
use futures::task::noop_waker_ref;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::{Answering, Connection, Shared, lock};
use crate::codec::{self, Head, Refused};
use crate::error::{Error, ErrorKind};
use crate::frame::{self, Incoming};
use crate::message::{Call, Message, Target};
use crate::netref::METHODS_METHOD;
use crate::object::{CallContext, Object};
use crate::value::{Value, to_value};

/// What the writer task is asked to do.
pub(crate) enum Outgoing {
    /// Write one encoded frame, from its pieces.
    Frame(codec::Segments),
    /// Flush what is queued before this, then shut the stream down.
    Shutdown,
}

/// Frames at least this big are written from their own buffer rather than copied into the
/// batch.
const DIRECT_WRITE: usize = 64 * 1024;
/// A batch is written out once it holds this much.
const BATCH_LIMIT: usize = 256 * 1024;

/// The writer task. A peer that reads nothing for the stall timeout while frames wait for
/// it is disconnected and the queue freed; that holds after a close too, when what was
/// queued is still sent for as long as the peer keeps reading.
pub(crate) async fn write_loop<W: AsyncWrite + Unpin>(
    w: W,
    rx: mpsc::UnboundedReceiver<Outgoing>,
    shared: Arc<Shared>,
) {
    let counted = Counted {
        inner: w,
        shared: shared.clone(),
    };
    tokio::select! {
        () = write_frames(counted, rx, &shared) => {}
        reason = shared.flow.stalled() => {
            tracing::warn!(connection = shared.id, %reason, "closing connection");
            shared.close(reason);
        }
    }
    shared.flow.writer_done();
}

/// A transport writer that tells the connection how much of its queue went out.
struct Counted<W> {
    inner: W,
    shared: Arc<Shared>,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Counted<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled
            && n > 0
        {
            self.shared.flow.wrote(n);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

async fn write_frames<W: AsyncWrite + Unpin>(
    mut w: W,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    shared: &Shared,
) {
    let mut batch: Vec<u8> = Vec::with_capacity(DIRECT_WRITE);
    while let Some(first) = rx.recv().await {
        let mut shutdown = false;
        let mut next = Some(first);
        let result: std::io::Result<()> = async {
            while let Some(item) = next.take() {
                match item {
                    Outgoing::Frame(f) => {
                        // Small pieces are batched; large ones (large frames, and the
                        // bytes values a frame references) are written from where they are.
                        for part in f.parts() {
                            if part.len() >= DIRECT_WRITE {
                                if !batch.is_empty() {
                                    w.write_all(&batch).await?;
                                    batch.clear();
                                }
                                w.write_all(part).await?;
                            } else {
                                batch.extend_from_slice(part);
                            }
                        }
                    }
                    Outgoing::Shutdown => {
                        shutdown = true;
                        break;
                    }
                }
                if batch.len() >= BATCH_LIMIT {
                    w.write_all(&batch).await?;
                    batch.clear();
                }
                next = rx.try_recv().ok();
            }
            if !batch.is_empty() {
                w.write_all(&batch).await?;
                batch.clear();
            }
            w.flush().await
        }
        .await;
        if let Err(e) = result {
            shared.close(Error::disconnected(format!("write failed: {e}")));
            break;
        }
        if shutdown {
            let _ = w.shutdown().await;
            break;
        }
    }
}

/// Bytes of an oversize frame read to learn which question it is: enough for a message's
/// variant and question id, whatever their varint widths.
const HEAD_LEN: usize = 16;

pub(crate) async fn read_loop<R: AsyncRead + Unpin>(
    mut r: BufReader<R>,
    shared: Arc<Shared>,
    mut closed: watch::Receiver<bool>,
) {
    let max_frame = shared.limits.max_frame;
    // One waiter on `closed` for the whole loop, not one registered and dropped per frame.
    let closed = closed.wait_for(|c| *c);
    tokio::pin!(closed);
    loop {
        // Reading a frame is not cancel safe; it is dropped only when the loop ends.
        let incoming = tokio::select! {
            biased;
            _ = &mut closed => break,
            f = frame::read_incoming(&mut r, max_frame, HEAD_LEN) => f,
        };
        let handled = match incoming {
            Ok(Some(Incoming::Frame(bytes))) => {
                // Shared, so that large bytes values decode as slices of it.
                let bytes = Bytes::from(bytes);
                // A panic while handling a frame (a decoder bug) must still close the
                // connection, or its pending calls would wait for their deadlines.
                std::panic::catch_unwind(AssertUnwindSafe(|| shared.handle_frame(&bytes)))
                    .unwrap_or_else(|_| {
                        Err(Error::protocol(
                            "internal error while handling a frame from the peer",
                        ))
                    })
            }
            Ok(Some(Incoming::Oversize { head, len })) => match codec::decode_head(&head) {
                // A call or return too big to take: skip it and fail only its question.
                Some(which) => {
                    let skipped = tokio::select! {
                        biased;
                        _ = &mut closed => break,
                        s = frame::skip(&mut r, len - head.len()) => s,
                    };
                    skipped.map(|()| {
                        let why = format!(
                            "a message of {len} bytes exceeds the frame limit of {max_frame} bytes"
                        );
                        shared.refuse(which, &why);
                    })
                }
                None => Err(frame::oversize(len, max_frame)),
            },
            Ok(None) => {
                shared.close(Error::disconnected("peer closed the connection"));
                break;
            }
            Err(e) => Err(e),
        };
        match handled {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Protocol => {
                shared.abort(e);
                break;
            }
            Err(e) => {
                shared.close(e);
                break;
            }
        }
        // Flow control: a peer that does not read what it asked for gets no more work
        // done until it does.
        if shared.flow.over_high_water() {
            tokio::select! {
                biased;
                _ = &mut closed => break,
                () = shared.flow.drained() => {}
            }
        }
    }
}

impl Shared {
    /// Decodes and dispatches one frame. An error is a protocol violation by the peer.
    fn handle_frame(self: &Arc<Self>, bytes: &Bytes) -> Result<(), Error> {
        let mut msg = match codec::decode_message_or_refuse(bytes, self.limits.decode) {
            Ok(msg) => msg,
            Err(Refused::OverLimit(which, breach)) => {
                self.refuse(which, &breach.to_string());
                return Ok(());
            }
            Err(Refused::Malformed(e)) => return Err(e),
        };
        self.import_refs(&mut msg)?;
        match msg {
            Message::Call(call) => self.incoming_call(call, bytes.len())?,
            Message::Return(ret) => {
                self.answer(ret.question, ret.result.map_err(Error::into_remote))
            }
            Message::Cancel { question } => {
                let answering = lock(&self.answers).remove(&question);
                if let Some(answering) = answering {
                    answering.handle.abort();
                }
            }
            Message::Release { export, count } => {
                let freed = lock(&self.exports).release(export, count)?;
                drop(freed);
            }
            Message::Ping { nonce } => self.send(Message::Pong { nonce })?,
            Message::Pong { nonce } => {
                if let Some(tx) = lock(&self.pings).remove(&nonce) {
                    let _ = tx.send(());
                }
            }
            Message::Abort { reason } => {
                let reason = reason.into_remote();
                self.close(
                    Error::disconnected("peer aborted the connection")
                        .with_cause(reason.to_string()),
                );
            }
        }
        Ok(())
    }

    /// A call or a return from the peer broke a limit (`why`) in a frame that was
    /// otherwise sound: fail only its question. A call is answered with the error; the
    /// caller of a return gets it. References inside the message were never taken, so the
    /// peer keeps counting them (it should not have sent the message).
    fn refuse(&self, head: Head, why: &str) {
        match head {
            Head::Call(question) => self.reply(
                question,
                Err(Error::bad_argument(format!(
                    "the call was refused by the peer: {why}"
                ))),
            ),
            Head::Return(question) => self.answer(
                question,
                Err(Error::bad_argument(format!(
                    "the result was refused by this side: {why}"
                ))),
            ),
        }
    }

    /// Runs a call from the peer whose request frame was `request_bytes` long.
    fn incoming_call(self: &Arc<Self>, call: Call, request_bytes: usize) -> Result<(), Error> {
        let Call {
            question,
            target,
            method,
            args,
            deadline_ms,
        } = call;
        let object = match target {
            Target::Export(id) => lock(&self.exports).object(id).ok_or_else(|| {
                Error::protocol(format!(
                    "peer called export #{id}, which this side never exported"
                ))
            })?,
            Target::Promise { .. } => {
                self.reply(
                    question,
                    Err(Error::new(
                        ErrorKind::Unimplemented,
                        "promise pipelining is not implemented by this peer",
                    )),
                );
                return Ok(());
            }
        };
        if method == METHODS_METHOD && object.knows_methods() {
            self.reply(question, to_value(&object.methods()));
            return Ok(());
        }
        // Held until the call is answered, cancelled or the connection closes.
        let ticket = match self.inbound.admit(request_bytes) {
            Ok(ticket) => ticket,
            Err(overloaded) => {
                self.reply(question, Err(overloaded));
                return Ok(());
            }
        };
        // A deadline too far away to represent is no deadline.
        let deadline = deadline_ms
            .and_then(|ms| Instant::now().checked_add(std::time::Duration::from_millis(ms)));
        let ctx = CallContext {
            connection: self
                .link
                .get()
                .and_then(std::sync::Weak::upgrade)
                .map(Connection::from_link),
            deadline,
        };
        let runs_long = object.runs_long();
        let mut fut = Box::pin(run_method(object, ctx, method, args, deadline));
        if !runs_long {
            // Most methods finish at once: answering inline saves a task and two wakeups.
            // If it is not ready, the spawned task polls it again with a real waker.
            if let Poll::Ready(result) = fut
                .as_mut()
                .poll(&mut Context::from_waker(noop_waker_ref()))
            {
                self.reply(question, result);
                drop(ticket);
                return Ok(());
            }
        }
        let (fut, handle) = abortable(fut);
        let answering = Answering {
            handle,
            _ticket: ticket,
        };
        lock(&self.answers).insert(question, answering);
        let shared = self.clone();
        tokio::spawn(async move {
            // `Err(Aborted)`: the peer cancelled; it expects no answer.
            if let Ok(result) = fut.await
                && lock(&shared.answers).remove(&question).is_some()
            {
                shared.reply(question, result);
            }
        });
        Ok(())
    }
}

/// Runs one method call with its deadline, turning a panic into an error for that call.
pub(crate) async fn run_method(
    object: Arc<dyn Object>,
    ctx: CallContext,
    method: String,
    args: Vec<Value>,
    deadline: Option<Instant>,
) -> Result<Value, Error> {
    // Answered here too, so that a local call answers it as a call from the peer does.
    if method == METHODS_METHOD && object.knows_methods() {
        return to_value(&object.methods());
    }
    let call = AssertUnwindSafe(object.call(ctx, &method, args)).catch_unwind();
    let outcome = match deadline {
        Some(at) => match tokio::time::timeout_at(at, call).await {
            Ok(outcome) => outcome,
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::TimedOut,
                    format!("`{method}` did not finish before its deadline"),
                ));
            }
        },
        None => call.await,
    };
    outcome.unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".to_owned());
        Err(Error::failed(format!("`{method}` panicked: {msg}")))
    })
}
