//! An instance's job queue: the calls of exports and guest objects, memory reads and
//! writes, fuel queries, closes and object drops that wait for its actor.
//!
//! Every job is counted while it waits, in the instance's queue and node-wide (`info`
//! shows the total). At most [`max_queued_jobs_per_instance`] jobs that someone waits for
//! may wait at once; one more is refused at once with `overloaded`, naming the limit, so a
//! client that floods a busy guest with `rwc.write_memory` is told so instead of piling up
//! memory. A guest object's drop is never refused (that would leak the object): drops are
//! counted too, and their number is bounded by the objects the guest handed out.
//!
//! [`max_queued_jobs_per_instance`]: rwc_api::Limits::max_queued_jobs_per_instance

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rwc_protocol::{Error, ErrorKind};
use tokio::sync::mpsc;

use super::actor::Job;

/// The sending side of an instance's queue. Cloning gives another sender; the actor ends
/// when every sender is gone.
#[derive(Clone)]
pub(crate) struct Jobs {
    tx: mpsc::UnboundedSender<Job>,
    depth: Arc<Depth>,
}

/// A sender that does not keep the instance alive (held by the instance itself).
#[derive(Clone)]
pub(crate) struct WeakJobs {
    tx: mpsc::WeakUnboundedSender<Job>,
    depth: Arc<Depth>,
}

/// The receiving end, shared by the actor and its suspended host calls (which run jobs
/// nested while the guest waits on a callback).
#[derive(Clone)]
pub(crate) struct JobQueue(Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Job>>>);

/// Why a job was not queued.
pub(crate) enum NotQueued {
    /// The queue is full: the error for the caller.
    Full(Error),
    /// The actor is gone.
    Gone,
}

/// Counts of waiting jobs.
struct Depth {
    /// Jobs waiting in this queue.
    queued: AtomicUsize,
    /// Jobs waiting in every instance's queue.
    node: Arc<AtomicUsize>,
    cap: usize,
}

/// A job's place in the counts, given back when the actor takes the job (or drops it
/// unrun).
pub(crate) struct Queued(Arc<Depth>);

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::AcqRel);
        self.0.node.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A new queue of at most `cap` waited-for jobs, counted in `node` too.
pub(crate) fn channel(cap: usize, node: Arc<AtomicUsize>) -> (Jobs, JobQueue) {
    let (tx, rx) = mpsc::unbounded_channel();
    let depth = Arc::new(Depth {
        queued: AtomicUsize::new(0),
        node,
        cap,
    });
    (
        Jobs { tx, depth },
        JobQueue(Arc::new(tokio::sync::Mutex::new(rx))),
    )
}

impl Jobs {
    /// Queues `job`, unless the queue is full (a job someone waits for) or the actor is
    /// gone.
    pub(crate) fn send(&self, mut job: Job) -> Result<(), NotQueued> {
        let depth = &self.depth;
        let waited_for = job.reply.is_some();
        let before = depth.queued.fetch_add(1, Ordering::AcqRel);
        depth.node.fetch_add(1, Ordering::AcqRel);
        let queued = Queued(depth.clone());
        if waited_for && before >= depth.cap {
            drop(queued);
            return Err(NotQueued::Full(Error::new(
                ErrorKind::Overloaded,
                format!(
                    "the instance has {} jobs waiting, its limit (max_queued_jobs_per_instance); \
                     retry when its calls have returned",
                    depth.cap
                ),
            )));
        }
        job.queued = Some(queued);
        self.tx.send(job).map_err(|_| NotQueued::Gone)
    }

    /// A sender that does not keep the actor running.
    pub(crate) fn downgrade(&self) -> WeakJobs {
        WeakJobs {
            tx: self.tx.downgrade(),
            depth: self.depth.clone(),
        }
    }
}

impl WeakJobs {
    /// A sender, if the actor still runs.
    pub(crate) fn upgrade(&self) -> Option<Jobs> {
        Some(Jobs {
            tx: self.tx.upgrade()?,
            depth: self.depth.clone(),
        })
    }
}

impl JobQueue {
    /// The next job (no longer counted as waiting); `None` once every sender is gone.
    pub(crate) async fn next(&self) -> Option<Job> {
        let mut job = self.0.lock().await.recv().await?;
        job.queued = None;
        Some(job)
    }
}

#[cfg(test)]
mod tests {
    use rwc_protocol::Value;
    use tokio::sync::oneshot;

    use super::*;
    use crate::instance::actor::JobKind;

    fn waited_for() -> (Job, oneshot::Receiver<Result<Value, Error>>) {
        let (tx, rx) = oneshot::channel();
        (Job::new(JobKind::Fuel, Some(tx), None), rx)
    }

    #[tokio::test]
    async fn waited_for_jobs_are_capped_drops_are_not_and_every_job_is_counted() {
        let node = Arc::new(AtomicUsize::new(0));
        let (jobs, queue) = channel(2, node.clone());
        let mut replies = Vec::new();
        for _ in 0..2 {
            let (job, rx) = waited_for();
            assert!(jobs.send(job).is_ok());
            replies.push(rx);
        }
        let (job, _rx) = waited_for();
        match jobs.send(job) {
            Err(NotQueued::Full(e)) => {
                assert_eq!(e.kind(), ErrorKind::Overloaded);
                assert!(e.message().contains("max_queued_jobs_per_instance"), "{e}");
            }
            _ => panic!("a third waited-for job must be refused"),
        }
        // A drop always gets in, and counts.
        assert!(jobs.send(Job::new(JobKind::Close, None, None)).is_ok());
        assert_eq!(node.load(Ordering::Acquire), 3);
        let taken = queue.next().await.unwrap();
        assert_eq!(
            node.load(Ordering::Acquire),
            2,
            "taken jobs are no longer waiting"
        );
        drop(taken);
        // Jobs dropped unrun (the actor ended) stop counting too.
        drop(queue);
        assert_eq!(node.load(Ordering::Acquire), 0);
        let (job, _rx) = waited_for();
        assert!(matches!(jobs.send(job), Err(NotQueued::Gone)));
        assert_eq!(node.load(Ordering::Acquire), 0);
    }
}
