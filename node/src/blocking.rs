//! Blocking work (anything that touches the file system or waits on the kernel: disk cache
//! reads, deserializing artifacts, `statvfs`, `/proc` files) runs here, on Tokio's
//! blocking pool with a deadline, never on a task that serves a connection: a hung mount
//! then fails one call with `timed out` instead of stalling a connection's reader.
//!
//! A thread stuck in the kernel cannot be stopped; it keeps its slot until it returns, so
//! at most [`MAX_BLOCKING`] such jobs run at once and a hung disk cannot make the node
//! start threads without bound: once every slot is taken, new jobs fail `overloaded`.

use std::time::Duration;

use rwc_protocol::{Error, ErrorKind};
use tokio::sync::Semaphore;

/// Most blocking jobs running at once, node-wide.
pub const MAX_BLOCKING: usize = 64;

/// How long a blocking job may take before its caller gets `timed out`.
pub const BLOCKING_TIMEOUT: Duration = Duration::from_secs(10);

static NODE: Blocking = Blocking::new(MAX_BLOCKING);

/// Blocking jobs of the node running now (a hung one included until it returns).
pub fn running() -> usize {
    NODE.running()
}

/// Runs `f` on the blocking pool within [`BLOCKING_TIMEOUT`]; `what` says what it does,
/// for the errors ("reading the disk cache").
///
/// # Cancel safety
/// Dropping the future stops waiting; `f` still runs to its end on its thread, holding its
/// slot.
pub async fn run<T, F>(what: &str, f: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    NODE.run(what, BLOCKING_TIMEOUT, f).await
}

/// Slots for blocking jobs.
struct Blocking {
    slots: Semaphore,
    max: usize,
}

impl Blocking {
    const fn new(max: usize) -> Blocking {
        Blocking {
            slots: Semaphore::const_new(max),
            max,
        }
    }

    fn running(&self) -> usize {
        self.max - self.slots.available_permits()
    }

    async fn run<T, F>(&'static self, what: &str, timeout: Duration, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let permit = self.slots.try_acquire().map_err(|_| {
            Error::new(
                ErrorKind::Overloaded,
                format!(
                    "{what}: the node has {} file-system jobs running already (a slow or hung \
                     disk?); retry later",
                    self.max
                ),
            )
        })?;
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f()
        });
        match tokio::time::timeout(timeout, task).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(join)) => Err(Error::failed(format!("{what} failed: {join}"))),
            Err(_) => Err(Error::new(
                ErrorKind::TimedOut,
                format!("{what} took longer than {timeout:?} (a slow or hung disk or mount?)"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stuck_job_times_out_and_holds_its_slot_until_it_returns() {
        static ONE: Blocking = Blocking::new(1);
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (started, start) = tokio::sync::oneshot::channel();
        let err = ONE
            .run(
                "statting a hung mount",
                Duration::from_millis(50),
                move || {
                    let _ = started.send(());
                    let _ = released.recv();
                },
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut);
        assert!(
            err.message()
                .starts_with("statting a hung mount took longer than"),
            "{err}"
        );
        start.await.unwrap();
        assert_eq!(ONE.running(), 1, "the stuck thread still holds its slot");
        let err = ONE
            .run("reading the disk cache", Duration::from_secs(5), || ())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Overloaded);
        assert!(
            err.message().contains("1 file-system jobs running"),
            "{err}"
        );
        release.send(()).unwrap();
        // The thread returns and gives its slot back.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while ONE.running() > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the slot never came back"
            );
            tokio::task::yield_now().await;
        }
        assert_eq!(
            ONE.run("a quick job", Duration::from_secs(5), || 7)
                .await
                .unwrap(),
            7
        );
    }
}
