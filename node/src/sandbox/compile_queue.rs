//! The compile queue: at most [`SandboxConfig::max_concurrent_compiles`] compilations run
//! at once, turns are handed out fairly across clients, each compilation has a deadline,
//! and two loads of the same bytes compile once.
//!
//! - **Fair turns.** A client (a connection) that queues many compilations does not starve
//!   the others: waiting compilations are kept per client, and each freed turn goes to the
//!   next client in round-robin order.
//! - **Single flight.** The first load of a hash starts a compilation; every load of the
//!   same hash while it runs waits for that one and gets its outcome.
//! - **Deadline.** A compilation that runs past [`SandboxConfig::compile_timeout`] fails
//!   every load waiting for it with [`SandboxError::CompileTimedOut`]. Wasmtime cannot
//!   stop a compilation half-way, so its thread runs on to the end; it keeps its turn
//!   until then (the node never runs more compilations than its limit) and its result is
//!   thrown away, not cached.
//!
//! [`SandboxConfig::max_concurrent_compiles`]: super::SandboxConfig::max_concurrent_compiles
//! [`SandboxConfig::compile_timeout`]: super::SandboxConfig::compile_timeout

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::{oneshot, watch};

use super::module::LoadedModule;
use super::{Sandbox, SandboxError};

/// What a compilation ends with, for everyone waiting on it.
type Outcome = Result<Arc<LoadedModule>, SandboxError>;

/// Turns, flights and counters of a sandbox's compilations.
pub(crate) struct CompileQueue {
    turns: Arc<Turns>,
    timeout: Duration,
    /// Compilations running or waiting for a turn, by module hash.
    flights: Mutex<HashMap<String, Arc<watch::Sender<Option<Outcome>>>>>,
    timed_out: AtomicU64,
}

/// Counts of a [`CompileQueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct CompileStats {
    pub(crate) running: usize,
    pub(crate) queued: usize,
    pub(crate) timed_out: u64,
}

impl CompileQueue {
    pub(crate) fn new(max: usize, timeout: Duration) -> CompileQueue {
        CompileQueue {
            turns: Arc::new(Turns::new(max.max(1))),
            timeout,
            flights: Mutex::new(HashMap::new()),
            timed_out: AtomicU64::new(0),
        }
    }

    pub(crate) fn stats(&self) -> CompileStats {
        let turns = self.turns.lock();
        CompileStats {
            running: turns.running,
            queued: turns.queued,
            timed_out: self.timed_out.load(Ordering::Relaxed),
        }
    }

    /// Waits for a compile turn for `client`.
    pub(crate) async fn turn(&self, client: u64) -> Turn {
        self.turns.take(client).await
    }

    /// The deadline of one compilation.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    fn flights(&self) -> MutexGuard<'_, HashMap<String, Arc<watch::Sender<Option<Outcome>>>>> {
        self.flights.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Sandbox {
    /// Loads an upload (Wasm binary or WAT) like [`Sandbox::load`], through the compile
    /// queue: on `client`'s turn, with the compile deadline, sharing the compilation of a
    /// concurrent load of the same bytes. Runs the blocking work (disk cache, compiling)
    /// on Tokio's blocking pool.
    ///
    /// # Cancel safety
    /// Dropping the future stops waiting. A compilation that nobody waits for any more is
    /// not started; one already running finishes (and is cached) for the next load.
    pub async fn load_queued(
        &self,
        bytes: Vec<u8>,
        client: u64,
    ) -> Result<Arc<LoadedModule>, SandboxError> {
        self.check_size(&bytes)?;
        let hash = hex::encode(Sha256::digest(&bytes));
        if let Some(module) = self.cached(&hash) {
            return Ok(module);
        }
        let mut outcome = {
            let mut flights = self.inner.compiles.flights();
            match flights.get(&hash) {
                Some(flight) => flight.subscribe(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    let tx = Arc::new(tx);
                    flights.insert(hash.clone(), tx.clone());
                    tokio::spawn(self.clone().fly(hash, bytes, client, tx));
                    rx
                }
            }
        };
        match outcome.wait_for(Option::is_some).await {
            Ok(done) => done.clone().unwrap_or_else(|| Err(ended())),
            Err(_) => Err(ended()),
        }
    }

    /// Runs one compilation for everyone subscribed to `flight`.
    async fn fly(
        self,
        hash: String,
        bytes: Vec<u8>,
        client: u64,
        flight: Arc<watch::Sender<Option<Outcome>>>,
    ) {
        let queue = &self.inner.compiles;
        let outcome = tokio::select! {
            turn = queue.turn(client) => Some(self.compile_on_turn(turn, &hash, bytes).await),
            // Everyone waiting gave up before the turn came.
            () = flight.closed() => None,
        };
        queue.flights().remove(&hash);
        if let Some(outcome) = outcome {
            flight.send_replace(Some(outcome));
        }
    }

    async fn compile_on_turn(&self, turn: Turn, hash: &str, bytes: Vec<u8>) -> Outcome {
        let queue = &self.inner.compiles;
        let abandoned = Arc::new(AtomicBool::new(false));
        let sandbox = self.clone();
        let gave_up = abandoned.clone();
        let job = tokio::task::spawn_blocking(move || {
            // The turn is held until the compilation really ends, deadline or not.
            let _turn = turn;
            sandbox.load_unless(&bytes, &gave_up)
        });
        match tokio::time::timeout(queue.timeout, job).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(join)) => Err(SandboxError::Other(format!(
                "the compile task failed: {join}"
            ))),
            Err(_) => {
                abandoned.store(true, Ordering::Release);
                queue.timed_out.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    module = hash,
                    timeout = ?queue.timeout,
                    "compilation passed its deadline; its result will be discarded"
                );
                Err(SandboxError::CompileTimedOut {
                    hash: hash.to_owned(),
                    timeout: queue.timeout,
                })
            }
        }
    }
}

fn ended() -> SandboxError {
    SandboxError::Other("the compilation ended without an outcome".to_owned())
}

/// Compile turns handed out fairly across clients.
struct Turns {
    max: usize,
    state: Mutex<TurnState>,
}

#[derive(Default)]
struct TurnState {
    running: usize,
    /// Waiting compilations of each client, oldest first.
    waiting: HashMap<u64, VecDeque<oneshot::Sender<()>>>,
    /// Clients with waiting compilations, in the order they get the next turns.
    order: VecDeque<u64>,
    /// Waiting compilations in all.
    queued: usize,
}

/// A compile turn; dropping it hands the turn to the next waiting compilation.
pub(crate) struct Turn {
    turns: Arc<Turns>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.turns.release();
    }
}

/// A place in the queue; dropping it before the turn came gives the place up (and the
/// turn, if it came just then).
struct Waiting {
    rx: Option<oneshot::Receiver<()>>,
    client: u64,
    turns: Arc<Turns>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let Some(mut rx) = self.rx.take() else {
            return;
        };
        rx.close();
        if rx.try_recv().is_ok() {
            // The turn was handed over just as we gave up: pass it on.
            self.turns.release();
            return;
        }
        let mut state = self.turns.lock();
        let state = &mut *state;
        if let Some(waiting) = state.waiting.get_mut(&self.client) {
            let before = waiting.len();
            waiting.retain(|tx| !tx.is_closed());
            state.queued -= before - waiting.len();
            if waiting.is_empty() {
                state.waiting.remove(&self.client);
                state.order.retain(|c| *c != self.client);
            }
        }
    }
}

impl Turns {
    fn new(max: usize) -> Turns {
        Turns {
            max,
            state: Mutex::new(TurnState::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, TurnState> {
        // Every update completes without panicking: a poisoned lock guards sound counts.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn take(self: &Arc<Self>, client: u64) -> Turn {
        let rx = {
            let mut state = self.lock();
            if state.running < self.max && state.queued == 0 {
                state.running += 1;
                return Turn {
                    turns: self.clone(),
                };
            }
            let (tx, rx) = oneshot::channel();
            let state = &mut *state;
            let waiting = state.waiting.entry(client).or_default();
            if waiting.is_empty() {
                state.order.push_back(client);
            }
            waiting.push_back(tx);
            state.queued += 1;
            rx
        };
        let mut place = Waiting {
            rx: Some(rx),
            client,
            turns: self.clone(),
        };
        let handed = match place.rx.as_mut() {
            Some(rx) => rx.await.is_ok(),
            None => false,
        };
        place.rx = None;
        if !handed {
            // Only if the turns themselves were dropped, which they are not while `self`
            // is alive: take one anyway rather than hang.
            self.lock().running += 1;
        }
        Turn {
            turns: self.clone(),
        }
    }

    /// A turn ended: hand it to the next client's oldest waiting compilation.
    fn release(&self) {
        let mut state = self.lock();
        let state = &mut *state;
        while let Some(client) = state.order.pop_front() {
            let Some(waiting) = state.waiting.get_mut(&client) else {
                continue;
            };
            let next = waiting.pop_front();
            if waiting.is_empty() {
                state.waiting.remove(&client);
            } else {
                state.order.push_back(client);
            }
            if let Some(tx) = next {
                state.queued -= 1;
                if tx.send(()).is_ok() {
                    return;
                }
            }
        }
        state.running = state.running.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;

    use super::*;

    /// A `take` for `client` that has taken its place in the queue.
    async fn queued(turns: &Arc<Turns>, client: u64) -> Pin<Box<dyn Future<Output = Turn> + Send>> {
        let turns = turns.clone();
        let mut take: Pin<Box<dyn Future<Output = Turn> + Send>> =
            Box::pin(async move { turns.take(client).await });
        assert!(futures::poll!(&mut take).is_pending(), "no turn is free");
        take
    }

    #[tokio::test]
    async fn turns_go_round_robin_across_clients() {
        let turns = Arc::new(Turns::new(1));
        let first = turns.take(1).await;
        // Client 1 queues three compilations, then client 2 one.
        let (tx, mut order) = tokio::sync::mpsc::unbounded_channel();
        for (client, i) in [(1, 0), (1, 1), (1, 2), (2, 0)] {
            let take = queued(&turns, client).await;
            let tx = tx.clone();
            tokio::spawn(async move {
                let turn = take.await;
                let _ = tx.send((client, i));
                drop(turn);
            });
        }
        assert_eq!(turns.lock().queued, 4);
        drop(first);
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(order.recv().await.unwrap());
        }
        assert_eq!(
            got,
            [(1, 0), (2, 0), (1, 1), (1, 2)],
            "client 2 does not wait behind all of client 1"
        );
        let state = turns.lock();
        assert_eq!((state.running, state.queued), (0, 0));
    }

    #[tokio::test]
    async fn a_place_given_up_is_not_counted_and_its_turn_goes_on() {
        let turns = Arc::new(Turns::new(1));
        let first = turns.take(1).await;
        let take = queued(&turns, 2).await;
        assert_eq!(turns.lock().queued, 1);
        drop(take);
        assert_eq!(turns.lock().queued, 0, "the abandoned place is gone");
        drop(first);
        assert_eq!(turns.lock().running, 0);
        let _again = turns.take(3).await;
        assert_eq!(turns.lock().running, 1);
    }
}
