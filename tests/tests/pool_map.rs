//! `Pool::map` over real `rwc-node` processes: order, exactly-once results, balance, a node
//! killed mid-map, deterministic guest errors, every node gone, an overloaded node.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rwc_client::{Client, Error, ErrorKind, MapOptions, MapReport, NodeInfo, Pool, Value};
use support::{Proc, spawn_node, spawn_nodes, wat};

/// What a map's `on_result` callback was handed: every result per input, as it came.
#[derive(Clone, Default)]
struct Handed(Arc<Mutex<Vec<Vec<String>>>>);

impl Handed {
    fn options(&self, n: usize) -> MapOptions {
        *self.0.lock().unwrap() = vec![Vec::new(); n];
        let seen = self.0.clone();
        MapOptions::default().on_result(move |i, r| seen.lock().unwrap()[i].push(format!("{r:?}")))
    }

    /// [`options`](Handed::options) that also run `act` once, when the map has `done` of
    /// `total` inputs such that `at(done, total)` first holds; and whether it ran.
    fn acting_once(
        &self,
        n: usize,
        at: impl Fn(usize, usize) -> bool + Send + Sync + 'static,
        act: impl Fn() + Send + Sync + 'static,
    ) -> (MapOptions, Arc<AtomicBool>) {
        let acted = Arc::new(AtomicBool::new(false));
        let a = acted.clone();
        let options = self.options(n).on_progress(move |p| {
            if at(p.done, p.total) && !a.swap(true, Ordering::SeqCst) {
                act();
            }
        });
        (options, acted)
    }

    /// Each input was handed over exactly once, with the result the report holds.
    fn check(&self, results: &[Result<Value, rwc_client::Error>]) {
        let seen = self.0.lock().unwrap();
        assert_eq!(seen.len(), results.len());
        for (i, (seen, r)) in seen.iter().zip(results).enumerate() {
            assert_eq!(seen, &[format!("{r:?}")], "input {i}");
        }
    }
}

fn int(i: usize) -> i64 {
    i64::try_from(i).unwrap()
}

fn numbers(n: usize) -> Vec<Vec<Value>> {
    (0..n).map(|i| vec![Value::I64(int(i))]).collect()
}

fn work_inputs(n: usize, spins: i64) -> Vec<Vec<Value>> {
    (0..n)
        .map(|i| vec![Value::I64(int(i)), Value::I64(spins)])
        .collect()
}

fn addrs(nodes: &[Proc]) -> Vec<String> {
    nodes.iter().map(|n| n.addr.clone()).collect()
}

/// Every result is `i * i`, in input order.
fn assert_squares(results: &[Result<Value, rwc_client::Error>]) {
    for (i, r) in results.iter().enumerate() {
        let i = int(i);
        match r {
            Ok(v) => assert_eq!(v, &Value::I64(i * i), "result {i}"),
            Err(e) => panic!("input {i} failed: {e}"),
        }
    }
}

/// A node's info (its counters).
async fn info(addr: &str) -> NodeInfo {
    let c = Client::connect(addr).await.unwrap();
    let info = c.info().await.unwrap();
    c.close();
    info
}

/// Guest calls the nodes have served in all, from their info.
async fn calls_served(nodes: &[Proc]) -> u64 {
    let mut served = 0;
    for node in nodes {
        served += info(&node.addr).await.calls;
    }
    served
}

/// A pool of the nodes at `addrs`, holding `wat::MATH`.
async fn math_pool<S: AsRef<str>>(addrs: impl IntoIterator<Item = S>) -> Pool {
    let mut pool = Pool::connect(addrs).await.unwrap();
    pool.load(wat::MATH.as_bytes()).await.unwrap();
    pool
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_inputs_over_three_nodes_in_order_exactly_once_and_balanced() {
    let nodes = spawn_nodes(3);
    let pool = math_pool(addrs(&nodes)).await;
    assert_eq!(pool.len(), 3);

    let updates = Arc::new(Mutex::new(Vec::new()));
    let seen = updates.clone();
    let options = MapOptions::default().on_progress(move |p| {
        seen.lock().unwrap().push((p.done, p.total));
    });
    let n = 10_000;
    let report = pool.map("sq", numbers(n), options).await.unwrap();

    assert_eq!(report.results.len(), n);
    assert_squares(&report.results);
    let per_node: Vec<usize> = report.nodes.iter().map(|r| r.done).collect();
    assert_eq!(per_node.iter().sum::<usize>(), n, "{per_node:?}");
    for r in &report.nodes {
        assert!(r.failed.is_none(), "{}: {:?}", r.addr, r.failed);
        assert!(
            r.done * 100 >= n * 15,
            "node {} did {} of {n}: {per_node:?}",
            r.addr,
            r.done
        );
    }
    // The nodes ran each input once: no call was repeated behind the caller's back.
    assert_eq!(calls_served(&nodes).await, u64::try_from(n).unwrap());

    let updates = updates.lock().unwrap();
    assert_eq!(updates.last(), Some(&(n, n)));
    assert!(
        updates.windows(2).all(|w| w[0].0 <= w[1].0),
        "progress went back"
    );
}

/// Three nodes, each shareable with the closure that kills or stops it mid-map, and a
/// pool of them with the math module loaded.
async fn three_shared_nodes() -> (Vec<Arc<Proc>>, Pool) {
    let nodes: Vec<Arc<Proc>> = spawn_nodes(3).into_iter().map(Arc::new).collect();
    let pool = math_pool(nodes.iter().map(|n| n.addr.clone())).await;
    (nodes, pool)
}

/// Maps `work` over `n` inputs with some work each, so that calls are in flight on a
/// node when it fails.
async fn map_work(pool: &Pool, n: usize, options: MapOptions) -> MapReport {
    pool.map("work", work_inputs(n, 20_000), options)
        .await
        .unwrap()
}

/// Asserts that the other nodes took over from `nodes[victim]`: each of the `n` inputs has
/// its square, handed over once, the nodes' counts add up to `n`, and `nodes[victim]`,
/// and no other node of the map, failed, as `kind`. Returns why it failed.
fn assert_taken_over<'a>(
    report: &'a MapReport,
    handed: &Handed,
    n: usize,
    nodes: &[Arc<Proc>],
    victim: usize,
    kind: ErrorKind,
) -> &'a Error {
    assert_eq!(report.results.len(), n);
    assert_squares(&report.results);
    handed.check(&report.results);
    assert_eq!(report.nodes.iter().map(|r| r.done).sum::<usize>(), n);
    let failed: Vec<&str> = report.failed_nodes().map(|r| r.addr.as_str()).collect();
    assert_eq!(failed, [nodes[victim].addr.as_str()]);
    let why = report.nodes[victim].failed.as_ref().unwrap();
    assert_eq!(why.kind(), kind, "{why}");
    why
}

/// When the fault tests strike: once 30 % of the inputs are done.
fn thirty_percent_done(done: usize, total: usize) -> bool {
    done * 10 >= total * 3
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_map_gives_its_work_to_the_others() {
    let (nodes, pool) = three_shared_nodes().await;

    let victim = nodes[1].clone();
    let n = 4_000;
    let handed = Handed::default();
    let (options, killed) = handed.acting_once(n, thirty_percent_done, move || victim.kill());
    // Some work per call, so calls are in flight on the victim when it dies.
    let report = map_work(&pool, n, options).await;

    assert!(killed.load(Ordering::SeqCst), "the kill never happened");
    assert_taken_over(&report, &handed, n, &nodes, 1, ErrorKind::Disconnected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deterministic_guest_errors_are_per_input_and_not_retried() {
    let nodes = spawn_nodes(2);
    let pool = math_pool(addrs(&nodes)).await;

    let n = 300;
    let report = pool
        .map("sq_or_trap13", numbers(n), MapOptions::default())
        .await
        .unwrap();
    for (i, r) in report.results.iter().enumerate() {
        if i == 13 {
            let e = r.as_ref().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Trapped, "{e}");
        } else {
            let i = int(i);
            assert_eq!(r.as_ref().unwrap(), &Value::I64(i * i));
        }
    }
    assert_eq!(report.failed(), 1);
    assert!(report.failed_nodes().next().is_none());
    // 300 calls in all: the trap was not run again elsewhere.
    assert_eq!(calls_served(&nodes).await, u64::try_from(n).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_node_dies_the_rest_fail_with_a_clear_error() {
    let nodes: Vec<Arc<Proc>> = spawn_nodes(2).into_iter().map(Arc::new).collect();
    let pool = math_pool(nodes.iter().map(|n| n.addr.clone())).await;
    let victims = nodes.clone();
    let n = 2_000;
    let handed = Handed::default();
    let (options, killed) = handed.acting_once(
        n,
        |done, total| done * 5 >= total,
        move || {
            for v in &victims {
                v.kill();
            }
        },
    );
    let report = map_work(&pool, n, options).await;
    assert!(killed.load(Ordering::SeqCst), "the kill never happened");
    assert_eq!(report.results.len(), n);
    handed.check(&report.results);
    assert_eq!(report.failed_nodes().count(), 2);
    let failures: Vec<_> = report
        .results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .collect();
    assert!(
        !failures.is_empty(),
        "some inputs must be left when both nodes die"
    );
    for e in failures {
        assert_eq!(e.kind(), ErrorKind::Disconnected, "{e}");
        assert!(e.message().contains("no node left"), "{e}");
    }
    for (i, r) in report.results.iter().enumerate() {
        if let Ok(v) = r {
            let i = int(i);
            assert_eq!(v, &Value::I64(i * i));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_node_hands_work_back() {
    // This node runs one guest call at a time and refuses the rest (`overloaded`).
    let busy = spawn_node(&["--max-concurrent-calls", "1"]);
    let normal = spawn_node(&[]);
    let pool = math_pool([busy.addr.clone(), normal.addr.clone()]).await;
    let n = 1_000;
    // Enough work per call that the busy node's three instances want to run at once.
    let report = pool
        .map(
            "work",
            work_inputs(n, 200_000),
            MapOptions::default().per_node(3),
        )
        .await
        .unwrap();
    assert_squares(&report.results);
    assert_eq!(report.nodes.iter().map(|r| r.done).sum::<usize>(), n);
    assert!(
        report.failed_nodes().next().is_none(),
        "refusals are not failures"
    );

    // The busy node did refuse work, the other refused none, and every refused call was
    // run again elsewhere or later: each input ran exactly once in all.
    let (busy, normal) = (info(&busy.addr).await, info(&normal.addr).await);
    assert!(
        busy.calls_refused > 0,
        "the busy node never refused a call: {busy:?}"
    );
    assert_eq!(normal.calls_refused, 0, "{normal:?}");
    assert_eq!(busy.calls + normal.calls, u64::try_from(n).unwrap());
    assert_eq!(
        usize::try_from(busy.calls).unwrap(),
        report.nodes[0].done,
        "the report counts what the busy node ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_are_resolved_and_deduplicated() {
    let node = spawn_node(&[]);
    let port = node.addr.rsplit_once(':').unwrap().1;
    // The same node three ways: twice by address, once by name. `localhost` may also
    // resolve to ::1, where nothing listens: that address is left out, not fatal.
    let pool = Pool::connect([
        node.addr.clone(),
        node.addr.clone(),
        format!("localhost:{port}"),
    ])
    .await
    .unwrap();
    assert_eq!(pool.addresses(), [node.addr.as_str()]);
    let unreachable: BTreeMap<&str, ErrorKind> = pool
        .unreachable()
        .iter()
        .map(|(a, e)| (a.as_str(), e.kind()))
        .collect();
    assert!(
        unreachable.keys().all(|a| a.starts_with("[::1]")),
        "{unreachable:?}"
    );

    let err = Pool::connect(["127.0.0.1:1"]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Disconnected);
    assert!(err.message().contains("no node reachable"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_needs_a_module_and_reports_bad_exports_per_input() {
    let node = spawn_node(&[]);
    let mut pool = Pool::connect([node.addr.clone()]).await.unwrap();
    let err = pool
        .map("sq", numbers(1), MapOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadArgument);
    pool.load(wat::MATH.as_bytes()).await.unwrap();
    let report = pool
        .map("nope", numbers(3), MapOptions::default())
        .await
        .unwrap();
    for r in &report.results {
        assert_eq!(r.as_ref().unwrap_err().kind(), ErrorKind::Unimplemented);
    }
    assert!(report.failed_nodes().next().is_none());
    // A pool outlives a map: the next one works.
    let report = pool
        .map("sq", numbers(50), MapOptions::default())
        .await
        .unwrap();
    assert_squares(&report.results);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_per_node_stay_within_what_the_node_allows() {
    let node = spawn_node(&["--max-instances-per-connection", "2"]);
    let pool = math_pool([node.addr.clone()]).await;
    let report = pool
        .map("sq", numbers(500), MapOptions::default().per_node(5))
        .await
        .unwrap();
    assert_squares(&report.results);
    assert_eq!(report.nodes[0].instances, 2);
    assert!(report.nodes[0].failed.is_none());
}

/// A small deterministic generator (64-bit LCG), so each seed names one kill point.
fn kill_point(seed: u64, n: usize) -> usize {
    let x = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    usize::try_from((x >> 33) % u64::try_from(n).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_at_a_random_point_loses_nothing_twenty_seeds() {
    for seed in 0..20u64 {
        let (nodes, pool) = three_shared_nodes().await;
        let n = 120;
        let at = kill_point(seed, n);
        let victim_index = usize::try_from(seed % 3).unwrap();
        let victim = nodes[victim_index].clone();
        let handed = Handed::default();
        let (options, killed) =
            handed.acting_once(n, move |done, _| done >= at, move || victim.kill());
        let report = map_work(&pool, n, options).await;
        assert!(killed.load(Ordering::SeqCst), "seed {seed}: no kill");
        assert_eq!(report.results.len(), n, "seed {seed}");
        assert_squares(&report.results);
        handed.check(&report.results);
        assert_eq!(
            report.nodes.iter().map(|r| r.done).sum::<usize>(),
            n,
            "seed {seed}: every input answered exactly once"
        );
        for (i, r) in report.nodes.iter().enumerate() {
            if i != victim_index {
                assert!(
                    r.failed.is_none(),
                    "seed {seed}: {} failed: {:?}",
                    r.addr,
                    r.failed
                );
            }
        }
    }
}

/// Sends `signal` (`STOP`, `CONT`) to the process `pid`.
fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("run kill(1)");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_node_gives_its_work_to_the_others_after_a_bounded_time() {
    let (nodes, pool) = three_shared_nodes().await;
    let victim = nodes[2].clone();
    let n = 600;
    let handed = Handed::default();
    let liveness = std::time::Duration::from_secs(2);
    let call_timeout = std::time::Duration::from_secs(300);
    let (mut options, stopped) =
        handed.acting_once(n, thirty_percent_done, move || signal(victim.pid(), "STOP"));
    options.liveness_timeout = liveness;
    options.call_timeout = call_timeout;
    let started = std::time::Instant::now();
    let report = map_work(&pool, n, options).await;
    let took = started.elapsed();
    signal(nodes[2].pid(), "CONT");

    assert!(stopped.load(Ordering::SeqCst), "the stop never happened");
    let why = assert_taken_over(&report, &handed, n, &nodes, 2, ErrorKind::TimedOut);
    assert!(why.message().contains("stopped answering"), "{why}");
    // Its inputs moved after the liveness timeout, not after the calls' own timeout.
    println!("map with a hung node took {took:?}");
    assert!(
        took < call_timeout / 4,
        "the map took {took:?}: the hung node's inputs waited for their call timeout"
    );
}
