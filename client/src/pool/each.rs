//! [`Pool::each`]: the same call once on every node, in parallel, one answer per node.

use std::time::{Duration, Instant};

use futures::future::join_all;
use rwc_api::InstanceOptions;
use rwc_protocol::{Error, Value};

use super::Pool;

/// One node's answer to [`Pool::each`].
#[derive(Debug, Clone)]
pub struct EachResult {
    /// The node's address.
    pub addr: String,
    /// What the call returned, or why this node could not run it.
    pub result: Result<Value, Error>,
    /// From sending the call to its answer; `None` for a node that never got the call (it
    /// was unreachable, or did not take the module).
    pub elapsed: Option<Duration>,
}

impl Pool {
    /// Calls `export` with `args` once on every node of the pool, all at once, each in a
    /// fresh instance of the [`load`](Pool::load)ed module made with `options` (freed when
    /// the call returns): what an operator runs across a fleet. One answer per node, in
    /// the pool's order, then one per node that was [`unreachable`](Pool::unreachable)
    /// when the pool connected (with that error); a node failing does not stop the others.
    ///
    /// Fails only if no module was loaded.
    ///
    /// # Cancel safety
    /// Dropping the future cancels every call in flight; the nodes free the instances.
    pub async fn each(
        &self,
        export: &str,
        args: Vec<Value>,
        options: &InstanceOptions,
    ) -> Result<Vec<EachResult>, Error> {
        if self.hash.is_none() {
            return Err(Error::bad_argument(
                "no module loaded: call Pool::load with the module's bytes first",
            ));
        }
        let calls = self.nodes.iter().map(|node| {
            let args = args.clone();
            let options = options.clone();
            async move {
                let module = match (&node.failed, &node.module) {
                    (Some(e), _) => return (Err(e.clone()), None),
                    (None, None) => return (Err(Error::failed("does not hold the module")), None),
                    (None, Some(m)) => m,
                };
                let started = Instant::now();
                let result = node.client.run(module, export, args, options).await;
                (result, Some(started.elapsed()))
            }
        });
        let answers = join_all(calls).await;
        let mut rows: Vec<EachResult> = self
            .nodes
            .iter()
            .zip(answers)
            .map(|(node, (result, elapsed))| EachResult {
                addr: node.addr.clone(),
                result,
                elapsed,
            })
            .collect();
        rows.extend(self.unreachable.iter().map(|(addr, e)| EachResult {
            addr: addr.clone(),
            result: Err(e.clone()),
            elapsed: None,
        }));
        Ok(rows)
    }
}
