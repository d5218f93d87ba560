//! Latency samples and their percentiles.

use std::time::Duration;

/// Latencies of calls, in microseconds.
#[derive(Debug, Default)]
pub(crate) struct Latencies(Vec<u32>);

impl Latencies {
    pub(crate) fn with_capacity(n: usize) -> Latencies {
        Latencies(Vec::with_capacity(n))
    }

    pub(crate) fn push(&mut self, d: Duration) {
        self.0
            .push(u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
    }

    pub(crate) fn extend(&mut self, other: Latencies) {
        self.0.extend(other.0);
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// `p50 …  p99 …  p999 …  max …`, in milliseconds.
    pub(crate) fn describe(&mut self) -> String {
        self.0.sort_unstable();
        format!(
            "p50 {}  p99 {}  p999 {}  max {}",
            ms(self.percentile(50.0)),
            ms(self.percentile(99.0)),
            ms(self.percentile(99.9)),
            ms(self.0.last().copied().unwrap_or(0)),
        )
    }

    /// The `p`th percentile, in microseconds (the samples must be sorted).
    pub(crate) fn percentile(&self, p: f64) -> u32 {
        if self.0.is_empty() {
            return 0;
        }
        // Index arithmetic on a sample count: precision is not an issue at these sizes.
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let at = ((self.0.len() - 1) as f64 * p / 100.0).round() as usize;
        self.0[at.min(self.0.len() - 1)]
    }

    /// Sorts the samples, so that [`percentile`](Self::percentile) can be read.
    pub(crate) fn sort(&mut self) {
        self.0.sort_unstable();
    }
}

fn ms(us: u32) -> String {
    format!("{:.2} ms", f64::from(us) / 1000.0)
}
