//! A call in flight: poll it, await it (with a timeout), or give it a callback.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::{AbortHandle, abortable};
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

use super::Shared;
use super::io::run_method;
use crate::error::{Error, ErrorKind};
use crate::object::{CallContext, Object};
use crate::value::{Value, from_value};

use super::CallOptions;

/// A call that has been sent and not yet answered.
///
/// It is a future of the call's result. It can also be checked without waiting
/// ([`is_ready`](PendingCall::is_ready)), awaited with a timeout
/// ([`wait_timeout`](PendingCall::wait_timeout)), or handed a callback
/// ([`on_complete`](PendingCall::on_complete)).
///
/// # Cancel safety
/// Dropping it before the result arrives cancels the call: the peer is told to stop, and a
/// late reply is discarded.
#[must_use = "dropping a PendingCall cancels the call"]
pub struct PendingCall {
    rx: Option<oneshot::Receiver<Result<Value, Error>>>,
    cancel: Canceller,
    sleep: Option<Pin<Box<Sleep>>>,
    deadline: Option<Duration>,
    method: String,
    ready: Option<Result<Value, Error>>,
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
        rx: oneshot::Receiver<Result<Value, Error>>,
        deadline: Option<Duration>,
    ) -> Self {
        PendingCall {
            rx: Some(rx),
            cancel: Canceller::Remote { shared, question },
            sleep: deadline.map(|d| Box::pin(tokio::time::sleep(d))),
            deadline,
            method: method.to_owned(),
            ready: None,
            finished: false,
        }
    }

    pub(crate) fn local(
        object: Arc<dyn Object>,
        method: &str,
        args: Vec<Value>,
        options: CallOptions,
    ) -> Self {
        let (tx, rx) = oneshot::channel();
        let deadline = options.deadline;
        let at = deadline.map(|d| Instant::now() + d);
        let (fut, handle) = abortable(run_method(
            object,
            CallContext::local(),
            method.to_owned(),
            args,
            at,
        ));
        tokio::spawn(async move {
            if let Ok(result) = fut.await {
                let _ = tx.send(result);
            }
        });
        PendingCall {
            rx: Some(rx),
            cancel: Canceller::Local(handle),
            sleep: None,
            deadline,
            method: method.to_owned(),
            ready: None,
            finished: false,
        }
    }

    pub(crate) fn failed(error: Error) -> Self {
        PendingCall {
            rx: None,
            cancel: Canceller::None,
            sleep: None,
            deadline: None,
            method: String::new(),
            ready: Some(Err(error)),
            finished: false,
        }
    }

    /// Whether the result has arrived (or the call has failed). Never waits.
    pub fn is_ready(&mut self) -> bool {
        if self.ready.is_some() {
            return true;
        }
        let Some(rx) = self.rx.as_mut() else {
            return true;
        };
        match rx.try_recv() {
            Ok(result) => {
                self.ready = Some(result);
                true
            }
            Err(oneshot::error::TryRecvError::Empty) => false,
            Err(oneshot::error::TryRecvError::Closed) => {
                self.ready = Some(Err(Error::disconnected(
                    "connection closed before the call returned",
                )));
                true
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
            return Poll::Ready(result);
        }
        let Some(rx) = this.rx.as_mut() else {
            this.finished = true;
            return Poll::Ready(Err(Error::new(
                ErrorKind::Failed,
                "the call's result was already taken",
            )));
        };
        if let Poll::Ready(result) = Pin::new(rx).poll(cx) {
            this.finished = true;
            return Poll::Ready(result.unwrap_or_else(|_| {
                Err(Error::disconnected(
                    "connection closed before the call returned",
                ))
            }));
        }
        if let Some(sleep) = this.sleep.as_mut()
            && sleep.as_mut().poll(cx).is_ready()
        {
            this.cancel();
            this.finished = true;
            let after = this.deadline.unwrap_or_default();
            return Poll::Ready(Err(Error::new(
                ErrorKind::TimedOut,
                format!(
                    "call to `{}` exceeded its deadline of {after:?}",
                    this.method
                ),
            )));
        }
        Poll::Pending
    }
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
        f.debug_struct("PendingCall")
            .field("method", &self.method)
            .field("finished", &self.finished)
            .finish()
    }
}
