//! What a map tells its caller: progress while it runs, a report when it ends.

use std::sync::Arc;
use std::time::Duration;

use rwc_protocol::{Error, Value};

/// A callback a map calls (shared, so the options can be cloned); `Debug` shows only that
/// it is there.
pub struct Callback<F: ?Sized>(pub Arc<F>);

impl<F: ?Sized> Clone for Callback<F> {
    fn clone(&self) -> Self {
        Callback(Arc::clone(&self.0))
    }
}

impl<F: ?Sized> std::ops::Deref for Callback<F> {
    type Target = F;

    fn deref(&self) -> &F {
        &self.0
    }
}

impl<F: ?Sized> std::fmt::Debug for Callback<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<callback>")
    }
}

/// Called as a map makes progress: after every finished input, and when a node fails.
pub type ProgressFn = Callback<dyn Fn(&MapProgress) + Send + Sync>;

/// Called once per input as its result is settled, with the input's index: in the order
/// results come in, which is not input order.
pub type ResultFn = Callback<dyn Fn(usize, &Result<Value, Error>) + Send + Sync>;

/// The `on_progress` and `on_result` builder methods of a map's options, which set its
/// `progress` and `each_result` fields: every kind of map takes the same two callbacks.
macro_rules! callback_setters {
    ($options:ident) => {
        #[doc = concat!("Sets the [`progress`](", stringify!($options), "::progress) callback.")]
        pub fn on_progress(
            mut self,
            f: impl Fn(&$crate::pool::MapProgress) + Send + Sync + 'static,
        ) -> Self {
            self.progress = Some($crate::pool::Callback(std::sync::Arc::new(f)));
            self
        }

        #[doc = concat!(
            "Sets the [`each_result`](", stringify!($options), "::each_result) callback."
        )]
        pub fn on_result(
            mut self,
            f: impl Fn(usize, &Result<rwc_protocol::Value, rwc_protocol::Error>) + Send + Sync + 'static,
        ) -> Self {
            self.each_result = Some($crate::pool::Callback(std::sync::Arc::new(f)));
            self
        }
    };
}

pub(crate) use callback_setters;

/// A map's progress so far.
#[derive(Debug, Clone)]
pub struct MapProgress {
    /// Inputs with a result (a value or an error).
    pub done: usize,
    /// Inputs in the map.
    pub total: usize,
    /// How many of the results so far are errors.
    pub errors: usize,
    /// Per node, in the pool's order.
    pub nodes: Vec<NodeProgress>,
    /// Time since the map started.
    pub elapsed: Duration,
}

impl MapProgress {
    /// Results per second since the map started.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            count_f64(self.done) / secs
        } else {
            0.0
        }
    }

    /// `done / total`, between 0 and 1 (1 for an empty map).
    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            count_f64(self.done) / count_f64(self.total)
        }
    }
}

/// One node's part in a map so far.
#[derive(Debug, Clone)]
pub struct NodeProgress {
    /// The node's address.
    pub addr: String,
    /// Inputs it has finished.
    pub done: usize,
    /// Whether it is still taking work.
    pub alive: bool,
}

/// The outcome of [`Pool::map`](super::Pool::map).
#[derive(Debug)]
pub struct MapReport {
    /// One result per input, in input order: the export's return value, or the error it
    /// failed with (a deterministic guest error, or "no node left" if every node failed).
    pub results: Vec<Result<Value, Error>>,
    /// What each node did, in the pool's order.
    pub nodes: Vec<NodeReport>,
    /// Wall-clock time of the map.
    pub elapsed: Duration,
}

impl MapReport {
    /// How many inputs succeeded.
    pub fn succeeded(&self) -> usize {
        self.results.iter().filter(|r| r.is_ok()).count()
    }

    /// How many inputs failed.
    pub fn failed(&self) -> usize {
        self.results.len() - self.succeeded()
    }

    /// The nodes that failed during the map (and why).
    pub fn failed_nodes(&self) -> impl Iterator<Item = &NodeReport> {
        self.nodes.iter().filter(|n| n.failed.is_some())
    }
}

/// One node's part in a map.
#[derive(Debug, Clone)]
pub struct NodeReport {
    /// The node's address.
    pub addr: String,
    /// Instances the map asked for on the node.
    pub instances: usize,
    /// Inputs the node finished (results, including deterministic errors).
    pub done: usize,
    /// Why the node stopped taking work, if it did (it died, refused instances, or was
    /// overloaded); its unfinished inputs went to the other nodes.
    pub failed: Option<Error>,
}

/// A count as a float, for rates (exact below 2^53, far beyond any map).
pub(crate) fn count_f64(n: usize) -> f64 {
    n as f64
}
