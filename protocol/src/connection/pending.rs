//! A call in flight: poll it, await it (with a timeout), or give it a callback.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::{AbortHandle, abortable};
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::io::run_method;
use super::questions::Outcome;
use super::{CallOptions, Shared};
use crate::error::{Error, ErrorKind};
use crate::object::{CallContext, Object};
use crate::value::{Value, from_value};

/// A call that has been sent and not yet answered.
///
/// It is a future of the call's result. It can also be checked without waiting
/// ([`is_ready`](PendingCall::is_ready), [`expired`](PendingCall::expired)), awaited with a
/// timeout ([`wait_timeout`](PendingCall::wait_timeout)), or handed a callback
/// ([`on_complete`](PendingCall::on_complete)).
///
/// The call's deadline (its [timeout](CallOptions::timeout) from when it was sent) is kept
/// by the connection, not by this handle: when it passes, the call fails with `timed out`,
/// the connection forgets the question and tells the peer to stop, whether or not anyone
/// is polling or awaiting this.
///
/// # Cancel safety
/// Dropping it before the result arrives cancels the call: the peer is told to stop, and a
/// late reply is discarded.
#[must_use = "dropping a PendingCall cancels the call"]
pub struct PendingCall {
    rx: Option<oneshot::Receiver<Outcome>>,
    cancel: Canceller,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    method: String,
    ready: Option<Result<Value, Error>>,
    expired: bool,
    finished: bool,
}

enum Canceller {
    Remote { shared: Arc<Shared>, question: u64 },
    Local(AbortHandle),
    None,
}

impl PendingCall {
    pub(crate) fn remote(
        shared: Arc<Shared>,
        question: u64,
        method: &str,
        rx: oneshot::Receiver<Outcome>,
        timeout: Option<Duration>,
        deadline: Option<Instant>,
    ) -> Self {
        PendingCall::new(
            rx,
            Canceller::Remote { shared, question },
            method,
            timeout,
            deadline,
        )
    }

    /// A call of a local object: it runs on its own task, under the call's timeout.
    pub(crate) fn local(
        object: Arc<dyn Object>,
        method: &str,
        args: Vec<Value>,
        options: CallOptions,
    ) -> Self {
        let (tx, rx) = oneshot::channel();
        let timeout = options.timeout;
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        // The deadline is kept here rather than by `run_method`, so that its passing is
        // told apart from a method that itself fails with `timed out`.
        let (fut, handle) = abortable(run_method(
            object,
            CallContext::local(),
            method.to_owned(),
            args,
            None,
        ));
        tokio::spawn(async move {
            let outcome = match deadline {
                Some(at) => tokio::time::timeout_at(at, fut).await.ok(),
                None => Some(fut.await),
            };
            let _ = tx.send(match outcome {
                Some(Ok(result)) => Outcome::Answered(result),
                // Cancelled: nobody waits for it.
                Some(Err(_aborted)) => return,
                None => Outcome::Expired,
            });
        });
        PendingCall::new(rx, Canceller::Local(handle), method, timeout, deadline)
    }

    pub(crate) fn failed(error: Error) -> Self {
        PendingCall {
            rx: None,
            cancel: Canceller::None,
            timeout: None,
            deadline: None,
            method: String::new(),
            ready: Some(Err(error)),
            expired: false,
            finished: false,
        }
    }

    fn new(
        rx: oneshot::Receiver<Outcome>,
        cancel: Canceller,
        method: &str,
        timeout: Option<Duration>,
        deadline: Option<Instant>,
    ) -> Self {
        PendingCall {
            rx: Some(rx),
            cancel,
            timeout,
            deadline,
            method: method.to_owned(),
            ready: None,
            expired: false,
            finished: false,
        }
    }

    /// Whether the call is over: its result has arrived, or it has failed (the connection
    /// closed, or its deadline passed). Never waits; once it is true, awaiting the call
    /// gives the result at once.
    ///
    /// Once the deadline has passed this is true whether or not an answer came: the call
    /// has then failed with `timed out` and [`expired`](PendingCall::expired) is true. The
    /// connection forgets the question and cancels it on the peer at the deadline, without
    /// waiting for anyone to look.
    pub fn is_ready(&mut self) -> bool {
        if self.ready.is_some() {
            return true;
        }
        let Some(rx) = self.rx.as_mut() else {
            return true;
        };
        match rx.try_recv() {
            Ok(outcome) => self.resolve(outcome),
            Err(oneshot::error::TryRecvError::Closed) => self.resolve(closed()),
            Err(oneshot::error::TryRecvError::Empty) => {
                // The connection expires the call at its deadline; if this looks first, it
                // does the same, so the answer never depends on which task ran first.
                self.deadline.is_some_and(|at| Instant::now() >= at) && self.expire_now()
            }
        }
    }

    /// Whether the call's deadline passed before its result came: the call has then failed
    /// with `timed out`, and the peer was told to stop. Never waits; like
    /// [`is_ready`](PendingCall::is_ready), it notices a passed deadline itself.
    pub fn expired(&mut self) -> bool {
        self.is_ready() && self.expired
    }

    /// The deadline has passed with no outcome in the channel: expire the call here.
    fn expire_now(&mut self) -> bool {
        match &self.cancel {
            Canceller::Remote { shared, question } => {
                if !shared.expire(*question) {
                    // Resolved by someone else a moment ago: the outcome is in the channel.
                    return match self.rx.as_mut().map(oneshot::Receiver::try_recv) {
                        Some(Ok(outcome)) => self.resolve(outcome),
                        _ => self.resolve(closed()),
                    };
                }
            }
            Canceller::Local(handle) => handle.abort(),
            Canceller::None => {}
        }
        self.cancel = Canceller::None;
        self.resolve(Outcome::Expired)
    }

    /// Stores the call's outcome as its result; returns true.
    fn resolve(&mut self, outcome: Outcome) -> bool {
        let result = self.result_of(outcome);
        self.ready = Some(result);
        true
    }

    fn result_of(&mut self, outcome: Outcome) -> Result<Value, Error> {
        match outcome {
            Outcome::Answered(result) => result,
            Outcome::Expired => {
                self.expired = true;
                let after = self.timeout.unwrap_or_default();
                Err(Error::new(
                    ErrorKind::TimedOut,
                    format!(
                        "call to `{}` exceeded its deadline of {after:?}",
                        self.method
                    ),
                ))
            }
        }
    }

    /// Waits at most `timeout` for the result; on expiry the call is cancelled and a
    /// `timed out` error returned.
    ///
    /// # Cancel safety
    /// Dropping the future cancels the call.
    pub async fn wait_timeout(self, timeout: Duration) -> Result<Value, Error> {
        let method = self.method.clone();
        match tokio::time::timeout(timeout, self).await {
            Ok(result) => result,
            Err(_) => Err(Error::new(
                ErrorKind::TimedOut,
                format!("no answer to `{method}` within {timeout:?}"),
            )),
        }
    }

    /// Runs `callback` with the result when it arrives (on a new task). The call is no
    /// longer cancelled by dropping anything.
    pub fn on_complete<F>(self, callback: F)
    where
        F: FnOnce(Result<Value, Error>) + Send + 'static,
    {
        tokio::spawn(async move { callback(self.await) });
    }

    /// The result converted to `R`.
    ///
    /// # Cancel safety
    /// Dropping the future cancels the call.
    pub async fn typed<R: DeserializeOwned>(self) -> Result<R, Error> {
        from_value(self.await?)
    }

    fn cancel(&mut self) {
        match std::mem::replace(&mut self.cancel, Canceller::None) {
            Canceller::Remote { shared, question } => shared.cancel_question(question),
            Canceller::Local(handle) => handle.abort(),
            Canceller::None => {}
        }
    }
}

impl Future for PendingCall {
    type Output = Result<Value, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(result) = this.ready.take() {
            this.finished = true;
            this.rx = None;
            return Poll::Ready(result);
        }
        let Some(rx) = this.rx.as_mut() else {
            this.finished = true;
            return Poll::Ready(Err(Error::new(
                ErrorKind::Failed,
                "the call's result was already taken",
            )));
        };
        let outcome = match Pin::new(rx).poll(cx) {
            Poll::Ready(Ok(outcome)) => outcome,
            Poll::Ready(Err(_)) => closed(),
            Poll::Pending => return Poll::Pending,
        };
        this.finished = true;
        this.rx = None;
        Poll::Ready(this.result_of(outcome))
    }
}

/// The outcome of a call whose channel closed with no answer.
fn closed() -> Outcome {
    Outcome::Answered(Err(Error::disconnected(
        "connection closed before the call returned",
    )))
}

impl Drop for PendingCall {
    fn drop(&mut self) {
        if !self.finished {
            self.cancel();
        }
    }
}

impl std::fmt::Debug for PendingCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.finished { "finished" } else { "pending" };
        write!(
            f,
            "PendingCall(`{}`, {state}, deadline {:?})",
            self.method, self.deadline
        )
    }
}
