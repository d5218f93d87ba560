//! Flow control: how much waits to be written to the peer, and what the reader does about
//! it.
//!
//! Every frame queued for the writer counts its bytes until the transport has taken them.
//! Above the high-water mark ([`ConnectionConfig::max_queued_bytes`]) the reader stops
//! taking work from the peer until the queue has drained to half, so a peer that asks for
//! more than it reads gets nothing more done until it reads. A peer that reads nothing for
//! [`ConnectionConfig::stall_timeout`] while frames wait for it has stalled, and is
//! disconnected.
//!
//! [`ConnectionConfig::max_queued_bytes`]: super::ConnectionConfig::max_queued_bytes
//! [`ConnectionConfig::stall_timeout`]: super::ConnectionConfig::stall_timeout

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use crate::error::Error;

pub(crate) struct Flow {
    /// Bytes queued for the writer and not yet written to the transport.
    queued: AtomicUsize,
    /// Counts writes to the transport that made progress: a stalled peer leaves it still.
    progress: AtomicU64,
    /// Woken when `queued` falls to the low-water mark.
    drained: Notify,
    high_water: usize,
    stall_timeout: Duration,
}

impl Flow {
    pub(crate) fn new(high_water: usize, stall_timeout: Duration) -> Self {
        Flow {
            queued: AtomicUsize::new(0),
            progress: AtomicU64::new(0),
            drained: Notify::new(),
            high_water,
            stall_timeout,
        }
    }

    fn low_water(&self) -> usize {
        self.high_water / 2
    }

    /// Bytes queued and not yet written.
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// A frame of `n` bytes was queued for the writer.
    pub(crate) fn queue(&self, n: usize) {
        self.queued.fetch_add(n, Ordering::Relaxed);
    }

    /// `n` bytes of queued frames reached the transport.
    pub(crate) fn wrote(&self, n: usize) {
        self.progress.fetch_add(1, Ordering::Relaxed);
        let before = self
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                Some(q.saturating_sub(n))
            })
            .unwrap_or_else(|q| q);
        let low = self.low_water();
        if before > low && before.saturating_sub(n) <= low {
            self.drained.notify_waiters();
        }
    }

    /// Whether so much waits to be written that the reader should stop taking work from
    /// the peer.
    pub(crate) fn over_high_water(&self) -> bool {
        self.queued() > self.high_water
    }

    /// Waits until the queue has drained to the low-water mark (or the writer is gone).
    pub(crate) async fn drained(&self) {
        loop {
            let notified = self.drained.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.queued() <= self.low_water() {
                return;
            }
            notified.await;
        }
    }

    /// Waits until frames have waited a whole stall timeout and the transport took none of
    /// their bytes: the peer has stopped reading. Returns why, as an error.
    pub(crate) async fn stalled(&self) -> Error {
        let sample = || (self.progress.load(Ordering::Relaxed), self.queued());
        let mut last = sample();
        loop {
            tokio::time::sleep(self.stall_timeout).await;
            let now = sample();
            if last.1 > 0 && now.1 > 0 && now.0 == last.0 {
                return Error::disconnected(format!(
                    "peer stopped reading: nothing was written to it for {:?} while {} bytes waited",
                    self.stall_timeout, now.1
                ));
            }
            last = now;
        }
    }

    /// The writer is gone: what it had queued is freed, and a paused reader wakes.
    pub(crate) fn writer_done(&self) {
        self.queued.store(0, Ordering::Relaxed);
        self.drained.notify_waiters();
    }
}
