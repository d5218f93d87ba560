//! The question table: calls this side made that have not been answered, and their
//! deadlines.
//!
//! One deadline task per connection expires questions when their deadline passes, whether
//! or not anyone is polling their [`PendingCall`](super::PendingCall): the question leaves
//! the table, its caller is told it expired, and the peer gets a `Cancel`. The task sleeps
//! until the earliest deadline and is woken only when a call comes with a deadline earlier
//! than the one it sleeps until; calls with the connection's default timeout come in
//! deadline order, so a busy connection wakes it about once per timeout, not once per call.
//!
//! The deadlines are a min-heap that an answer does not touch: an answered question's
//! deadline stays in the heap until it comes to the top or the heap is compacted (when it
//! holds twice as many deadlines as questions wait). Calls with the same timeout push ever
//! later deadlines, which a heap takes without reordering anything, so a call costs the
//! connection's timekeeping a push and, amortized, a couple of lookups.
//!
//! Answers are handed to the caller's channel under the table's lock, so whoever removes a
//! question has delivered its outcome by the time anyone else can look.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::{Shared, lock};
use crate::error::Error;
use crate::message::Message;
use crate::value::Value;

/// What the caller of a question learns.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The peer answered (or the connection closed: an error).
    Answered(Result<Value, Error>),
    /// The deadline passed first; the question is gone and the peer was told to stop.
    Expired,
}

#[derive(Default)]
pub(crate) struct Questions {
    /// Where to send each waiting question's outcome.
    waiting: HashMap<u64, oneshot::Sender<Outcome>>,
    /// The deadlines of questions, earliest on top; some of them may have been answered
    /// already (question ids are never reused, so a stale entry cannot be mistaken).
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    /// When the deadline task looks next; `None`: it waits until told.
    wake_at: Option<Instant>,
}

impl Questions {
    /// Records a question. Returns whether the deadline task must be woken: the deadline
    /// is earlier than any it knows of.
    pub(crate) fn insert(
        &mut self,
        question: u64,
        tx: oneshot::Sender<Outcome>,
        deadline: Option<Instant>,
    ) -> bool {
        self.waiting.insert(question, tx);
        let Some(at) = deadline else {
            return false;
        };
        if self.deadlines.len() >= 2 * self.waiting.len() + 64 {
            let waiting = &self.waiting;
            self.deadlines
                .retain(|Reverse((_, q))| waiting.contains_key(q));
        }
        self.deadlines.push(Reverse((at, question)));
        if self.wake_at.is_some_and(|wake| wake <= at) {
            return false;
        }
        self.wake_at = Some(at);
        true
    }

    /// Takes a question out of the table.
    fn take(&mut self, question: u64) -> Option<oneshot::Sender<Outcome>> {
        self.waiting.remove(&question)
    }

    /// Takes a question out and hands it `outcome`. Returns the outcome back when nobody
    /// wants it (no such question, or its caller is gone), to be dropped by the caller
    /// outside the lock: it may hold netrefs.
    pub(crate) fn resolve(&mut self, question: u64, outcome: Outcome) -> Option<Outcome> {
        match self.take(question) {
            Some(tx) => tx.send(outcome).err(),
            None => Some(outcome),
        }
    }

    /// Removes a question without telling its caller (the caller is the one giving up).
    /// Returns whether it was still there.
    pub(crate) fn forget(&mut self, question: u64) -> bool {
        self.take(question).is_some()
    }

    /// Expires every question whose deadline is not after `now`; returns them, and sets
    /// when to look next.
    fn expire_due(&mut self, now: Instant) -> Vec<u64> {
        let mut expired = Vec::new();
        self.wake_at = None;
        while let Some(&Reverse((at, question))) = self.deadlines.peek() {
            if !self.waiting.contains_key(&question) {
                // Answered or cancelled already.
                self.deadlines.pop();
                continue;
            }
            if at > now {
                self.wake_at = Some(at);
                break;
            }
            self.deadlines.pop();
            if let Some(tx) = self.waiting.remove(&question) {
                let _ = tx.send(Outcome::Expired);
                expired.push(question);
            }
        }
        expired
    }

    /// Fails every question with `error` (the connection closed).
    pub(crate) fn fail_all(&mut self, error: &Error) {
        self.deadlines.clear();
        for (_, tx) in self.waiting.drain() {
            let _ = tx.send(Outcome::Answered(Err(error.clone())));
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }
}

impl Shared {
    /// The peer answered `question`.
    pub(crate) fn answer(&self, question: u64, result: Result<Value, Error>) {
        let unwanted = lock(&self.questions).resolve(question, Outcome::Answered(result));
        // No waiter: the call was cancelled or expired; the late answer is dropped, here,
        // outside the lock.
        drop(unwanted);
    }

    /// Expires `question` now, if it is still waiting, and tells the peer. Returns whether
    /// it was (if not, its outcome is already in its caller's channel).
    pub(crate) fn expire(&self, question: u64) -> bool {
        let expired = lock(&self.questions)
            .resolve(question, Outcome::Expired)
            .is_none();
        if expired {
            let _ = self.send(Message::Cancel { question });
        }
        expired
    }

    /// The caller of `question` gave up: forget it and tell the peer.
    pub(crate) fn cancel_question(&self, question: u64) {
        if lock(&self.questions).forget(question) {
            let _ = self.send(Message::Cancel { question });
        }
    }
}

/// The deadline task: expires questions as their deadlines pass, until the connection
/// closes.
pub(crate) async fn expire_loop(shared: Arc<Shared>, mut closed: watch::Receiver<bool>) {
    let closed = closed.wait_for(|c| *c);
    tokio::pin!(closed);
    loop {
        let told = shared.deadline_changed.notified();
        tokio::pin!(told);
        told.as_mut().enable();
        let (expired, next) = {
            let mut questions = lock(&shared.questions);
            let expired = questions.expire_due(Instant::now());
            (expired, questions.wake_at)
        };
        for question in expired {
            let _ = shared.send(Message::Cancel { question });
        }
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = &mut closed => break,
            () = &mut told => {}
            () = sleep => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_task_is_woken_only_for_an_earlier_deadline() {
        let mut q = Questions::default();
        let t0 = Instant::now();
        let (tx, _rx1) = oneshot::channel();
        assert!(q.insert(1, tx, Some(t0 + Duration::from_secs(30))));
        let (tx, _rx2) = oneshot::channel();
        assert!(
            !q.insert(2, tx, Some(t0 + Duration::from_secs(31))),
            "later"
        );
        let (tx, _rx3) = oneshot::channel();
        assert!(!q.insert(3, tx, None), "no deadline");
        let (tx, _rx4) = oneshot::channel();
        assert!(
            q.insert(4, tx, Some(t0 + Duration::from_secs(1))),
            "earlier"
        );
        assert_eq!(q.len(), 4);
    }

    #[test]
    fn due_questions_expire_and_the_rest_wait() {
        let mut q = Questions::default();
        let t0 = Instant::now();
        let (tx, mut due) = oneshot::channel();
        q.insert(1, tx, Some(t0));
        let (tx, mut later) = oneshot::channel();
        q.insert(2, tx, Some(t0 + Duration::from_secs(60)));
        let (tx, mut answered) = oneshot::channel();
        q.insert(3, tx, Some(t0));
        assert!(q.resolve(3, Outcome::Answered(Ok(Value::Unit))).is_none());

        assert_eq!(q.expire_due(t0), vec![1]);
        assert!(matches!(due.try_recv(), Ok(Outcome::Expired)));
        assert!(later.try_recv().is_err());
        assert!(matches!(answered.try_recv(), Ok(Outcome::Answered(Ok(_)))));
        assert_eq!(q.wake_at, Some(t0 + Duration::from_secs(60)));
        assert_eq!(q.len(), 1);
        assert!(q.forget(2));
        assert!(q.expire_due(t0 + Duration::from_secs(61)).is_empty());
        assert_eq!(q.wake_at, None);
    }

    #[test]
    fn answered_deadlines_do_not_pile_up() {
        // One question waits a long time while 100 000 come and go behind it.
        let mut q = Questions::default();
        let t0 = Instant::now();
        let (tx, _stuck) = oneshot::channel();
        q.insert(0, tx, Some(t0 + Duration::from_secs(30)));
        for question in 1..100_000 {
            let (tx, _rx) = oneshot::channel();
            q.insert(question, tx, Some(t0 + Duration::from_secs(31)));
            q.resolve(question, Outcome::Answered(Ok(Value::Unit)));
            // Compacted at twice the waiting questions (here one or two) plus 64.
            assert!(q.deadlines.len() <= 2 * 2 + 64 + 1, "{}", q.deadlines.len());
        }
        assert_eq!(q.len(), 1);
        assert_eq!(q.expire_due(t0 + Duration::from_secs(30)), vec![0]);
        assert!(q.deadlines.is_empty());
    }
}
