//! Load: many concurrent connections, each making a mix of calls, against one node.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use rwc_client::{Client, Error, InstanceOptions, NetRef, callable};
use rwc_tests::{guest_bytes, guests};
use tokio::sync::Barrier;

use crate::Failure;
use crate::node::Launcher;
use crate::stats::Latencies;

/// Connections opened at once while setting up (the listen backlog is finite).
const CONNECT_BATCH: usize = 100;

/// One connection's objects: a host capability, two instances, a guest netref and a
/// client callback.
struct Session {
    _client: Client,
    sys: NetRef,
    progress: rwc_client::Instance,
    counter: NetRef,
    callback: NetRef,
    _counters: rwc_client::Instance,
}

/// `connections` connections × `calls` calls each, in turn a host call (`sys.cpu_count`),
/// a guest export (`inc`), a guest→client callback (`ping_back(1, cb)`, which calls `cb`
/// once) and a netref call (`incr` on a guest counter).
pub(crate) async fn run(nodes: &Launcher, connections: usize, calls: usize) -> Result<(), Failure> {
    check_fd_limit(connections)?;
    let conns = (connections + 16).to_string();
    let instances = (2 * connections + 16).to_string();
    let node = nodes.start(&[
        "--max-connections",
        &conns,
        "--max-connections-per-address",
        &conns,
        "--max-connections-per-principal",
        &conns,
        "--max-instances",
        &instances,
        "--max-concurrent-calls",
        &instances,
    ])?;
    let first = Client::connect(node.addr()).await?;
    let progress = first.upload(&guest_bytes(guests::PROGRESS)).await?;
    let counter = first.upload(&guest_bytes(guests::COUNTER)).await?;
    let (progress, counter) = (progress.hash().to_owned(), counter.hash().to_owned());
    drop(first);

    let setup = Instant::now();
    let mut sessions = Vec::with_capacity(connections);
    while sessions.len() < connections {
        let batch = CONNECT_BATCH.min(connections - sessions.len());
        let opened = join_all((0..batch).map(|_| session(node.addr(), &progress, &counter))).await;
        for s in opened {
            sessions.push(s?);
        }
    }
    println!(
        "load: {connections} connections set up in {:.1} s",
        setup.elapsed().as_secs_f64()
    );

    let rss = node.track_rss(Duration::from_millis(100))?;
    let start = Arc::new(Barrier::new(connections));
    let started = Instant::now();
    let results = join_all(sessions.iter().enumerate().map(|(n, s)| {
        let start = start.clone();
        async move {
            start.wait().await;
            drive(s, n, calls).await
        }
    }))
    .await;
    let elapsed = started.elapsed();
    let rss = rss.finish()?;

    let mut latencies = Latencies::with_capacity(connections * calls);
    let mut errors = Vec::new();
    for (lat, errs) in results {
        latencies.extend(lat);
        errors.extend(errs);
    }
    let total = latencies.len() + errors.len();
    println!(
        "load: {connections} connections x {calls} mixed calls = {total} calls in {:.1} s \
         ({:.0} calls/s), client and node on 127.0.0.1 sharing this machine's CPUs",
        elapsed.as_secs_f64(),
        crate::soak::rate(u64::try_from(total).unwrap_or(u64::MAX), elapsed)
    );
    println!("  latency: {}", latencies.describe());
    println!("  node RSS: {}", rss.describe());
    println!("  errors: {}", errors.len());
    if let Some(e) = errors.first() {
        return Err(format!("{} calls failed; the first: {e}", errors.len()).into());
    }
    if !node.alive() {
        return Err("the node died".into());
    }
    Ok(())
}

async fn session(addr: &str, progress: &str, counter: &str) -> Result<Session, Failure> {
    let client = Client::connect(addr).await?;
    let sys = client
        .capability("sys")
        .await?
        .ok_or("the node does not grant `sys`")?;
    let module = |hash: &str| {
        let hash = hash.to_owned();
        let client = &client;
        async move {
            client
                .module(&hash)
                .await?
                .ok_or_else(|| Error::failed(format!("the node lost module {hash}")))
        }
    };
    let progress_module = module(progress).await?;
    let counter_module = module(counter).await?;
    let progress = client
        .instantiate(&progress_module, InstanceOptions::default())
        .await?;
    let counters = client
        .instantiate(&counter_module, InstanceOptions::default())
        .await?;
    let counter: NetRef = counters.call("new_counter", (0i64,)).await?;
    let callback = callable(|(i,): (u64,)| async move { Ok(i + 1) });
    Ok(Session {
        _client: client,
        sys,
        progress,
        counter,
        callback,
        _counters: counters,
    })
}

/// Runs `calls` mixed calls on one session; their latencies and errors.
async fn drive(s: &Session, n: usize, calls: usize) -> (Latencies, Vec<Error>) {
    let mut latencies = Latencies::with_capacity(calls);
    let mut errors = Vec::new();
    for i in 0..calls {
        let t = Instant::now();
        let outcome = match (n + i) % 4 {
            0 => s.sys.call::<u64>("cpu_count", ()).await.map(drop),
            1 => s
                .progress
                .call::<u64>("inc", (7u64,))
                .await
                .and_then(|v| expect(v, 8)),
            2 => s
                .progress
                .call::<u64>("ping_back", (1u32, s.callback.clone()))
                .await
                .and_then(|v| expect(v, 1)),
            _ => s.counter.call::<i64>("incr", (1i64,)).await.map(drop),
        };
        match outcome {
            Ok(()) => latencies.push(t.elapsed()),
            Err(e) => errors.push(e),
        }
    }
    (latencies, errors)
}

fn expect(got: u64, want: u64) -> Result<(), Error> {
    if got == want {
        Ok(())
    } else {
        Err(Error::failed(format!(
            "wrong answer: {got}, expected {want}"
        )))
    }
}

/// Fails with what to do if this process may not open enough files for `connections`
/// connections (the node is a child and inherits the limit).
pub(crate) fn check_fd_limit(connections: usize) -> Result<(), Failure> {
    let limits = std::fs::read_to_string("/proc/self/limits")?;
    let soft: Option<usize> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok());
    let need = connections + 256;
    match soft {
        Some(n) if n < need => Err(format!(
            "{connections} connections need about {need} open files and this process may \
             open {n}: raise the limit first (`ulimit -n {need}`; scripts/stress does)"
        )
        .into()),
        _ => Ok(()),
    }
}
