//! NATS benchmarks: prints figures, asserts nothing.
//!
//! 1. Overhead per map item: a trivial export (`sq`) over 20 000 inputs on 2 nodes,
//!    directly (`Pool::map`, calls pipelined) and as a durable map through NATS JetStream
//!    (one input per task message, then batches of 100). Target: NATS within 1.5× of the
//!    direct pool's per-item time.
//! 2. Mandelbrot 4096×4096, 256 iterations, bands of 16 rows, through NATS on one node
//!    and on two (one task at a time per node: one core each on this 2-core machine),
//!    next to the direct pool on two nodes. Target: two nodes ≥ 1.8× one node.
//!
//! Everything runs on this machine: nats-server, the nodes and this client share its
//! cores. Run with `cargo bench -p rwc-tests --bench nats` (it builds `rwc-node` in
//! release first; `RWC_BENCH_QUICK=1` shrinks it).

#[path = "../../examples/mandelbrot/src/tile.rs"]
mod tile;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rwc_client::nats::{DurableMapOptions, NatsFleet};
use rwc_client::{MapOptions, Pool, Value, to_value};
use rwc_tests::nats_server::NatsServer;
use rwc_tests::process::Listening;

const SQ: &str = r#"(module
  (func (export "sq") (param i64) (result i64) local.get 0 local.get 0 i64.mul))"#;

use tile::bench::{MAX_ITER, ROWS, SIZE};

fn main() {
    let quick = std::env::var_os("RWC_BENCH_QUICK").is_some();
    let items = if quick { 4_000 } else { 20_000 };
    let runs = if quick { 1 } else { 3 };
    let node_bin = build_node();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let server = NatsServer::start();
    println!(
        "rwc NATS benchmarks ({} CPUs shared by nats-server, the nodes and the client)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!();
    runtime.block_on(overhead(&node_bin, &server.url, items, runs));
    println!();
    let guest = rwc_tests::guest_bytes(rwc_tests::guests::MANDELBROT);
    runtime.block_on(mandelbrot(&node_bin, &server.url, &guest, runs));
}

/// A node of the fleet at `url` serving `tags`, `slots` tasks at a time.
fn start_node(bin: &Path, url: &str, tags: &[&str], slots: Option<usize>) -> Listening {
    let mut cmd = Command::new(bin);
    cmd.args(["--listen", "127.0.0.1:0", "--nats", url]);
    for t in tags {
        cmd.args(["--tag", t]);
    }
    if let Some(n) = slots {
        cmd.args(["--nats-slots", &n.to_string()]);
    }
    Listening::start(cmd).expect("start rwc-node")
}

/// Waits until `n` nodes serve `tag`.
async fn wait_for_nodes(fleet: &NatsFleet, tag: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while fleet.nodes(Some(tag)).await.map_or(0, |v| v.len()) < n {
        assert!(Instant::now() < deadline, "the nodes never registered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn overhead(node_bin: &Path, url: &str, items: usize, runs: usize) {
    let nodes = [
        start_node(node_bin, url, &["sq"], None),
        start_node(node_bin, url, &["sq"], None),
    ];
    let fleet = NatsFleet::connect(url).await.expect("connect to NATS");
    wait_for_nodes(&fleet, "sq", 2).await;
    let inputs = |n: usize| -> Vec<Vec<Value>> {
        (0..n)
            .map(|i| vec![Value::I64(i64::try_from(i).unwrap_or(0))])
            .collect()
    };
    let mut pool = Pool::connect(nodes.iter().map(|n| n.addr.as_str()))
        .await
        .expect("connect");
    pool.load(SQ.as_bytes()).await.expect("load");
    let direct = best_of(runs, async || {
        let report = pool.map("sq", inputs(items), MapOptions::default()).await;
        let report = report.expect("map");
        assert_eq!(report.succeeded(), items);
        report.elapsed
    })
    .await;
    pool.close();

    let mut job = 0;
    let mut durable = |batch: usize| {
        job += 1;
        let fleet = fleet.clone();
        let inputs = inputs(items);
        let name = format!("bench-{batch}-{job}");
        async move {
            let report = fleet
                .map_durable(
                    SQ.as_bytes(),
                    "sq",
                    inputs,
                    DurableMapOptions::default()
                        .job(name)
                        .tag("sq")
                        .batch(batch),
                )
                .await
                .expect("durable map");
            assert_eq!(report.map.succeeded(), report.map.results.len());
            report.map.elapsed
        }
    };
    let per_item = |d: Duration| d.as_secs_f64() * 1e6 / items as f64;
    println!("map overhead: trivial export `sq`, {items} items, 2 nodes (best of {runs})");
    println!(
        "  direct pool (pipelined, 2 calls per instance)       {:>8.2} µs/item",
        per_item(direct)
    );
    for batch in [1, 100] {
        let best = best_of(runs, async || durable(batch).await).await;
        let ratio = best.as_secs_f64() / direct.as_secs_f64();
        println!(
            "  NATS durable map, {batch:>3} input(s) per task            {:>8.2} µs/item  {ratio:.2}x direct (target <= 1.50x) {}",
            per_item(best),
            verdict(ratio <= 1.5)
        );
    }
}

async fn mandelbrot(node_bin: &Path, url: &str, guest: &[u8], runs: usize) {
    let tiles = tile::bands(SIZE, ROWS, MAX_ITER);
    let inputs: Vec<Vec<Value>> = tiles
        .iter()
        .map(|t| vec![to_value(t).expect("a tile is a value")])
        .collect();
    // One task at a time per node: one core each.
    let a = start_node(node_bin, url, &["one", "two"], Some(1));
    let b = start_node(node_bin, url, &["two"], Some(1));
    let fleet = NatsFleet::connect(url).await.expect("connect to NATS");
    wait_for_nodes(&fleet, "two", 2).await;
    let mut job = 0;
    let mut through_nats = async |tag: &str| {
        job += 1;
        let report = fleet
            .map_durable(
                guest,
                "render",
                inputs.clone(),
                DurableMapOptions::default()
                    .job(format!("mandel-{tag}-{job}"))
                    .tag(tag),
            )
            .await
            .expect("durable map");
        assert_eq!(report.map.succeeded(), inputs.len());
        report.map.elapsed
    };
    let one = best_of(runs, async || through_nats("one").await).await;
    let two = best_of(runs, async || through_nats("two").await).await;

    let mut pool = Pool::connect([a.addr.as_str(), b.addr.as_str()])
        .await
        .expect("connect");
    pool.load(guest).await.expect("load");
    let direct = best_of(runs, async || {
        let options = MapOptions::default().per_node(1);
        let report = pool.map("render", inputs.clone(), options).await;
        report.expect("map").elapsed
    })
    .await;
    pool.close();

    let speedup = one.as_secs_f64() / two.as_secs_f64();
    println!(
        "mandelbrot {SIZE}x{SIZE}, {MAX_ITER} iterations, {} bands of {ROWS} rows (best of {runs})",
        tiles.len()
    );
    println!(
        "  NATS, one node (1 slot)        {:>7.3} s",
        one.as_secs_f64()
    );
    println!(
        "  NATS, two nodes (1 slot each)  {:>7.3} s   speedup {speedup:.2}x, efficiency {:.0}%   (target >= 1.80x) {}",
        two.as_secs_f64(),
        speedup / 2.0 * 100.0,
        verdict(speedup >= 1.8)
    );
    println!(
        "  direct pool, two nodes (1 instance each) {:>7.3} s   NATS takes {:.2}x its time",
        direct.as_secs_f64(),
        two.as_secs_f64() / direct.as_secs_f64()
    );
}

/// The shortest of `runs` times that `map` takes, after a first run that is not counted:
/// it compiles the guest on the nodes that have not run it yet.
async fn best_of(runs: usize, mut map: impl AsyncFnMut() -> Duration) -> Duration {
    map().await;
    let mut best = Duration::MAX;
    for _ in 0..runs {
        best = best.min(map().await);
    }
    best
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

/// `cargo build --release -p rwc-node`; the executable's path.
fn build_node() -> PathBuf {
    rwc_tests::process::build_release_node(&Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
}
