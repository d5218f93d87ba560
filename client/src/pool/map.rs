//! The map engine: workers on every node pull inputs from one shared queue, so whichever
//! node frees first gets the next input; a node that dies gives its unfinished inputs back
//! to the queue for the others.
//!
//! Each node gets `per_node` instances (an instance runs one call at a time) and each
//! instance `depth` call slots, so the next call is already queued on the node when the
//! current one returns. Every slot is a loop: take an input, call, record the result.
//! What a failure means decides what happens to the input:
//!
//! - the connection to the node is lost (a local `disconnected`): the input goes back to
//!   the queue and the node is retired;
//! - the node is `overloaded`: the input goes back, the slot backs off, and a slot that is
//!   refused again and again stops;
//! - the node says the instance is gone (a remote `disconnected`): the input goes back and
//!   the slot makes a new instance;
//! - anything else (the guest failed, trapped, ran out of fuel or time, bad arguments) is
//!   the input's result: running it elsewhere would fail the same way.
//!
//! An input that keeps coming back (run [`MAX_ATTEMPTS`] times without a result) fails
//! with its last error, so a map always ends. When no node is left, the inputs still queued fail with an
//! error that says what happened to the nodes.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use rwc_api::InstanceOptions;
use rwc_api::root::Instantiate;
use rwc_protocol::{CallOptions, Error, ErrorKind, NetRef, Value};
use tokio::sync::{Notify, watch};

use super::liveness;
use super::membership::Follower;
use super::report::{MapProgress, MapReport, NodeProgress, NodeReport, ProgressFn, ResultFn};
use crate::client::request;
use crate::nats::NodeEvent;

/// The next node event of a map that follows its fleet; never, for one that does not.
async fn next_event(follower: &mut Option<Follower>) -> NodeEvent {
    match follower {
        Some(f) => f.next().await,
        None => std::future::pending().await,
    }
}

/// How many times one input may be handed out before it fails with its last error.
pub(crate) const MAX_ATTEMPTS: u32 = 8;

/// Refusals (`overloaded`) in a row after which a slot stops asking.
const MAX_OVERLOADS: u32 = 6;

/// Instances lost (a remote `disconnected`) in a row after which a node is retired.
const MAX_LOST_INSTANCES: u32 = 4;

/// A node taking part in a map.
pub(crate) struct MapNode {
    pub(crate) addr: String,
    pub(crate) root: NetRef,
    pub(crate) module: Option<NetRef>,
    pub(crate) instances: usize,
    /// Why the node cannot take part (it failed before the map started).
    pub(crate) failed: Option<Error>,
}

/// What every slot of a map needs.
pub(crate) struct MapJob<'a> {
    pub(crate) export: &'a str,
    pub(crate) inputs: &'a [Vec<Value>],
    pub(crate) instance: &'a InstanceOptions,
    pub(crate) depth: usize,
    pub(crate) call_timeout: Duration,
    /// How long a node may leave a ping unanswered before it is taken to be hung.
    pub(crate) liveness_timeout: Duration,
    pub(crate) progress: Option<ProgressFn>,
    pub(crate) each_result: Option<ResultFn>,
}

/// Runs the map to the end: every input gets exactly one result.
pub(crate) async fn run(
    nodes: Vec<MapNode>,
    job: MapJob<'_>,
    follower: Option<Follower>,
) -> MapReport {
    let total = job.inputs.len();
    let shared = Shared {
        state: Mutex::new(State {
            queue: (0..total).collect(),
            results: (0..total).map(|_| None).collect(),
            attempts: vec![0; total],
            done: 0,
            errors: 0,
            in_flight: 0,
            nodes: nodes
                .iter()
                .map(|n| NodeState {
                    addr: n.addr.clone(),
                    instances: n.instances,
                    done: 0,
                    failed: n.failed.clone(),
                    slots: 0,
                })
                .collect(),
        }),
        notify: Notify::new(),
        started: Instant::now(),
        progress: job.progress.clone(),
        each_result: job.each_result.clone(),
    };
    let holders: Vec<(usize, Arc<InstanceHolder>, NetRef)> = nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.failed.is_none())
        .filter_map(|(i, n)| n.module.as_ref().map(|m| (i, n, m)))
        .flat_map(|(i, n, module)| {
            (0..n.instances).map(move |_| {
                let holder = InstanceHolder::new(n.root.clone(), module.clone());
                (i, Arc::new(holder), n.root.clone())
            })
        })
        .collect();
    {
        let mut state = shared.lock();
        for (node, _, _) in &holders {
            state.nodes[*node].slots += job.depth;
        }
    }
    let shared = &shared;
    let job = &job;
    // A node that stops answering pings is retired and its slots let go of their inputs:
    // one watcher per live node, nodes that join during the map included.
    let start = |node: usize,
                 holder: Arc<InstanceHolder>,
                 root: NetRef,
                 hung: watch::Receiver<Option<Error>>|
     -> BoxFuture<'_, ()> {
        Box::pin(async move { slot(shared, job, node, &holder, &root, hung).await })
    };
    let watch = |node: usize,
                 root: &NetRef|
     -> (watch::Receiver<Option<Error>>, Option<BoxFuture<'_, ()>>) {
        let (tx, rx) = watch::channel(None);
        let watcher = root.connection().map(|conn| -> BoxFuture<'_, ()> {
            Box::pin(async move {
                let error = liveness::until_hung(&conn, job.liveness_timeout).await;
                shared.retire(node, error.clone());
                tx.send_replace(Some(error));
            })
        });
        (rx, watcher)
    };
    let mut slots: FuturesUnordered<BoxFuture<'_, ()>> = FuturesUnordered::new();
    let mut watchers: FuturesUnordered<BoxFuture<'_, ()>> = FuturesUnordered::new();
    let mut receivers: Vec<Option<watch::Receiver<Option<Error>>>> = vec![None; nodes.len()];
    for (i, n) in nodes.iter().enumerate().filter(|(_, n)| n.failed.is_none()) {
        let (rx, watcher) = watch(i, &n.root);
        receivers[i] = Some(rx);
        watchers.extend(watcher);
    }
    for (node, holder, root) in &holders {
        if let Some(hung) = &receivers[*node] {
            for _ in 0..job.depth {
                slots.push(start(*node, holder.clone(), root.clone(), hung.clone()));
            }
        }
    }
    let mut follower = follower;
    let mut joining: FuturesUnordered<_> = follower
        .as_ref()
        .map(|f| f.rejoin().into_iter().collect())
        .unwrap_or_default();
    loop {
        tokio::select! {
            done = slots.next() => if done.is_none() { break },
            Some(()) = watchers.next(), if !watchers.is_empty() => {}
            // Nodes join and leave while the map runs.
            event = next_event(&mut follower) => match event {
                NodeEvent::Joined(entry) if !shared.has_live(&entry.address) => {
                    if let Some(f) = &follower {
                        joining.push(f.connect(entry.address));
                    }
                }
                NodeEvent::Joined(_) => {}
                NodeEvent::Left(addr) => shared.retire_addr(
                    &addr,
                    Error::disconnected("left the fleet: its NATS entry was deleted or expired"),
                ),
            },
            Some(ready) = joining.next(), if !joining.is_empty() => match ready {
                Ok(node) if !shared.has_live(&node.addr) => {
                    let index = shared.add_node(&node, job.depth);
                    let (hung, watcher) = watch(index, &node.root);
                    watchers.extend(watcher);
                    if let Some(module) = &node.module {
                        for _ in 0..node.instances {
                            let holder = Arc::new(InstanceHolder::new(node.root.clone(), module.clone()));
                            for _ in 0..job.depth {
                                slots.push(start(index, holder.clone(), node.root.clone(), hung.clone()));
                            }
                        }
                    }
                }
                Ok(_) => {}
                Err((addr, e)) => {
                    tracing::warn!(node = %addr, error = %e, "node joined but cannot take part");
                }
            },
        }
    }
    drop((slots, watchers));

    let elapsed = shared.started.elapsed();
    let state = std::mem::take(&mut *shared.lock());
    let no_node = no_node_left(&state.nodes);
    let results = state
        .results
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.unwrap_or_else(|| {
                let r = Err(no_node.clone());
                if let Some(f) = &job.each_result {
                    f(i, &r);
                }
                r
            })
        })
        .collect();
    MapReport {
        results,
        nodes: state
            .nodes
            .into_iter()
            .map(|n| NodeReport {
                addr: n.addr,
                instances: n.instances,
                done: n.done,
                failed: n.failed,
            })
            .collect(),
        elapsed,
    }
}

struct Shared {
    state: Mutex<State>,
    /// Wakes slots waiting for work: an input came back, or the map is over.
    notify: Notify,
    started: Instant,
    progress: Option<ProgressFn>,
    each_result: Option<ResultFn>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<usize>,
    results: Vec<Option<Result<Value, Error>>>,
    attempts: Vec<u32>,
    done: usize,
    errors: usize,
    /// Inputs handed to a slot and not yet finished or given back.
    in_flight: usize,
    nodes: Vec<NodeState>,
}

struct NodeState {
    addr: String,
    instances: usize,
    done: usize,
    failed: Option<Error>,
    /// Slots still working for the node.
    slots: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent at every point a panic could leave it (no user code runs
        // under the lock), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next input for a slot of `node`, waiting while others are in flight (one may
    /// come back); `None` when the map is over or the node is retired.
    async fn next(&self, node: usize) -> Option<usize> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.lock();
                if s.nodes[node].failed.is_some() {
                    return None;
                }
                if let Some(i) = s.queue.pop_front() {
                    s.in_flight += 1;
                    s.attempts[i] += 1;
                    return Some(i);
                }
                if s.in_flight == 0 {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Hands a settled result to the caller's callback, outside the lock. Only the slot
    /// that holds input `i` settles it, so it is not settled twice.
    fn settled(&self, i: usize, result: &Result<Value, Error>) {
        if let Some(f) = &self.each_result
            && self.lock().results[i].is_none()
        {
            f(i, result);
        }
    }

    /// Records the result of input `i`, finished by `node`.
    fn complete(&self, i: usize, node: usize, result: Result<Value, Error>) {
        self.settled(i, &result);
        let snapshot = {
            let mut s = self.lock();
            s.in_flight -= 1;
            if s.results[i].is_some() {
                // Cannot happen: an input is only handed out again after it came back.
                tracing::error!(input = i, "second result for an input; keeping the first");
            } else {
                if result.is_err() {
                    s.errors += 1;
                }
                s.results[i] = Some(result);
                s.done += 1;
                s.nodes[node].done += 1;
            }
            if s.queue.is_empty() && s.in_flight == 0 {
                self.notify.notify_waiters();
            }
            self.snapshot(&s)
        };
        self.report(&snapshot);
    }

    /// Gives input `i` back to the queue after `error`, unless it came back too often.
    /// A refusal (`overloaded`: the node did not run it) does not count as an attempt.
    fn requeue(&self, i: usize, error: &Error) {
        let mut s = self.lock();
        if error.kind() == ErrorKind::Overloaded {
            s.attempts[i] = s.attempts[i].saturating_sub(1);
        }
        if s.attempts[i] >= MAX_ATTEMPTS {
            drop(s);
            let e = Error::new(
                error.kind(),
                format!(
                    "gave up on this input after {MAX_ATTEMPTS} attempts; the last one failed: {}",
                    error.message()
                ),
            );
            self.complete_orphan(i, e);
            return;
        }
        s.in_flight -= 1;
        s.queue.push_front(i);
        self.notify.notify_waiters();
    }

    /// Records a result no node finished (an input that was given up on).
    fn complete_orphan(&self, i: usize, error: Error) {
        let error = Err(error);
        self.settled(i, &error);
        let snapshot = {
            let mut s = self.lock();
            s.in_flight -= 1;
            if s.results[i].is_none() {
                s.results[i] = Some(error);
                s.errors += 1;
                s.done += 1;
            }
            if s.queue.is_empty() && s.in_flight == 0 {
                self.notify.notify_waiters();
            }
            self.snapshot(&s)
        };
        self.report(&snapshot);
    }

    /// Whether a node at `addr` takes part and has not failed.
    fn has_live(&self, addr: &str) -> bool {
        self.lock()
            .nodes
            .iter()
            .any(|n| n.addr == addr && n.failed.is_none())
    }

    /// Adds a node that joined mid-map, with `depth` slots per instance; its index.
    fn add_node(&self, node: &MapNode, depth: usize) -> usize {
        let mut s = self.lock();
        s.nodes.push(NodeState {
            addr: node.addr.clone(),
            instances: node.instances,
            done: 0,
            failed: None,
            slots: node.instances * depth,
        });
        s.nodes.len() - 1
    }

    /// Retires the live node at `addr`, if there is one.
    fn retire_addr(&self, addr: &str, error: Error) {
        let index = self
            .lock()
            .nodes
            .iter()
            .position(|n| n.addr == addr && n.failed.is_none());
        if let Some(i) = index {
            self.retire(i, error);
        }
    }

    /// Takes `node` out of the map: its slots stop at their next input.
    fn retire(&self, node: usize, error: Error) {
        let snapshot = {
            let mut s = self.lock();
            if s.nodes[node].failed.is_some() {
                return;
            }
            tracing::warn!(node = %s.nodes[node].addr, %error, "node retired from the map; its inputs go to the others");
            s.nodes[node].failed = Some(error);
            self.notify.notify_waiters();
            self.snapshot(&s)
        };
        self.report(&snapshot);
    }

    /// A slot of `node` stopped; the node is retired with `error` when it was the last.
    fn slot_stopped(&self, node: usize, error: Option<Error>) {
        let last = {
            let mut s = self.lock();
            s.nodes[node].slots -= 1;
            s.nodes[node].slots == 0 && s.nodes[node].failed.is_none()
        };
        if let (true, Some(e)) = (last, error) {
            self.retire(node, e);
        }
    }

    fn snapshot(&self, s: &State) -> Option<MapProgress> {
        self.progress.as_ref()?;
        Some(MapProgress {
            done: s.done,
            total: s.results.len(),
            errors: s.errors,
            nodes: s
                .nodes
                .iter()
                .map(|n| NodeProgress {
                    addr: n.addr.clone(),
                    done: n.done,
                    alive: n.failed.is_none(),
                })
                .collect(),
            elapsed: self.started.elapsed(),
        })
    }

    /// Calls the progress callback outside the lock.
    fn report(&self, snapshot: &Option<MapProgress>) {
        if let (Some(f), Some(p)) = (&self.progress, snapshot) {
            f(p);
        }
    }
}

/// The instance that a node's slots share, made when first needed and replaced after a
/// failure that may have left it in a bad state.
struct InstanceHolder {
    root: NetRef,
    module: NetRef,
    current: tokio::sync::Mutex<Current>,
}

#[derive(Default)]
struct Current {
    instance: Option<NetRef>,
    /// Counts the instances made, so a slot discards only the one it saw fail.
    generation: u64,
}

impl InstanceHolder {
    fn new(root: NetRef, module: NetRef) -> Self {
        InstanceHolder {
            root,
            module,
            current: tokio::sync::Mutex::new(Current::default()),
        }
    }

    /// The current instance and its generation, making one if there is none.
    async fn get(&self, options: &InstanceOptions) -> Result<(NetRef, u64), Error> {
        let mut current = self.current.lock().await;
        if let Some(netref) = &current.instance {
            return Ok((netref.clone(), current.generation));
        }
        let req = Instantiate {
            module: self.module.clone().into(),
            options: options.clone(),
        };
        let netref = request(&self.root, &req)
            .await?
            .into_netref("the instance")?;
        current.generation += 1;
        current.instance = Some(netref.clone());
        Ok((netref, current.generation))
    }

    /// Forgets instance `generation` (if it is still the current one): the next call
    /// makes a fresh one, and the node frees the old one when its last call returns.
    async fn discard(&self, generation: u64) {
        let mut current = self.current.lock().await;
        if current.generation == generation {
            current.instance = None;
        }
    }
}

/// One call slot: takes inputs until the map is over or its node is retired.
async fn slot(
    shared: &Shared,
    job: &MapJob<'_>,
    node: usize,
    holder: &InstanceHolder,
    root: &NetRef,
    mut hung: watch::Receiver<Option<Error>>,
) {
    let mut overloads = 0u32;
    let mut lost = 0u32;
    let mut last_error = None;
    while let Some(i) = shared.next(node).await {
        let (instance, generation) = match unless_hung(holder.get(job.instance), &mut hung)
            .await
            .and_then(|got| got)
        {
            Ok(x) => x,
            Err(e) => {
                shared.requeue(i, &e);
                if e.kind() == ErrorKind::Overloaded {
                    overloads += 1;
                    if overloads >= MAX_OVERLOADS {
                        last_error = Some(e);
                        break;
                    }
                    back_off(overloads).await;
                    continue;
                }
                // The node is gone, or will not run this module with these options:
                // either way it cannot take part.
                shared.retire(node, node_error(root, e, "cannot make an instance"));
                break;
            }
        };
        let args = job.inputs[i].clone();
        let call = instance.call_with(job.export, args, CallOptions::timeout(job.call_timeout));
        // Dropping the call when the node is found hung cancels it there.
        let result = match unless_hung(call, &mut hung).await {
            Ok(result) => result,
            Err(e) => {
                shared.requeue(i, &e);
                break;
            }
        };
        match result {
            Err(e) if e.kind() == ErrorKind::Disconnected && !e.is_remote() => {
                shared.requeue(i, &e);
                shared.retire(node, node_error(root, e, "lost the connection"));
                break;
            }
            Err(e) if e.kind() == ErrorKind::Disconnected => {
                // The node is there but the instance is gone: make another.
                shared.requeue(i, &e);
                holder.discard(generation).await;
                lost += 1;
                if lost >= MAX_LOST_INSTANCES {
                    shared.retire(node, node_error(root, e, "keeps losing instances"));
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Overloaded => {
                shared.requeue(i, &e);
                overloads += 1;
                if overloads >= MAX_OVERLOADS {
                    last_error = Some(e);
                    break;
                }
                back_off(overloads).await;
            }
            result => {
                overloads = 0;
                lost = 0;
                if let Err(e) = &result
                    && matches!(
                        e.kind(),
                        ErrorKind::Trapped | ErrorKind::OutOfFuel | ErrorKind::TimedOut
                    )
                {
                    // The guest stopped mid-way (or used its fuel): start the next input
                    // on a fresh instance.
                    holder.discard(generation).await;
                }
                shared.complete(i, node, result);
            }
        }
    }
    shared.slot_stopped(node, last_error);
}

/// What `fut` gives, or the error the node was found hung with if that comes first (then
/// `fut` is dropped: a call in it is cancelled).
async fn unless_hung<T>(
    fut: impl Future<Output = T>,
    hung: &mut watch::Receiver<Option<Error>>,
) -> Result<T, Error> {
    tokio::select! {
        out = fut => Ok(out),
        Ok(why) = hung.wait_for(Option::is_some) => {
            Err(why.clone().unwrap_or_else(|| Error::failed("the node hung")))
        }
    }
}

/// The error a retired node is reported with: what happened, and the connection's own
/// reason when it closed.
fn node_error(root: &NetRef, e: Error, what: &str) -> Error {
    let closed = root
        .connection()
        .and_then(|c| c.close_reason())
        .map(|r| r.message().to_owned());
    let message = match closed {
        Some(reason) if e.kind() == ErrorKind::Disconnected && !e.is_remote() => {
            format!("{what}: {reason}")
        }
        _ => format!("{what}: {}", e.message()),
    };
    Error::new(e.kind(), message)
}

async fn back_off(attempt: u32) {
    let ms = 20u64.saturating_mul(1 << attempt.min(6));
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// The error of inputs left when every node has stopped.
fn no_node_left(nodes: &[NodeState]) -> Error {
    let why: Vec<String> = nodes
        .iter()
        .map(|n| match &n.failed {
            Some(e) => format!("{}: {}", n.addr, e.message()),
            None => format!("{}: stopped", n.addr),
        })
        .collect();
    let kind = nodes
        .iter()
        .rev()
        .find_map(|n| n.failed.as_ref().map(Error::kind))
        .unwrap_or(ErrorKind::Disconnected);
    Error::new(
        kind,
        format!(
            "no node left to run this input ({}); start nodes or fix what they reported, then map again",
            why.join("; ")
        ),
    )
}
