//! Pool benchmarks: prints figures, asserts nothing.
//!
//! 1. Overhead per map item: a trivial export (`sq`, a WAT module) mapped over 20 000
//!    inputs on 2 nodes, in µs per item, with calls pipelined (the default depth of 2 per
//!    instance) and without.
//! 2. Mandelbrot 4096×4096, 256 iterations: natively in one thread (the guest's loop,
//!    compiled here), in one node, and across two nodes, one instance each (one core
//!    each: this is a 2-core machine). Targets: two nodes ≥ 1.8× one node; the Wasm run in
//!    one node ≥ 0.7× native single-thread speed.
//!
//! Run with `cargo bench -p rwc-client --bench pool`. It builds `rwc-node` in release
//! first (or runs the one `RWC_NODE_BIN` names), and the `mandelbrot` guest if
//! `examples/` has it (skipping part 2 if not).

// Shared with the end-to-end tests, which use all of it.
#[allow(dead_code)]
#[path = "../../tests/src/process.rs"]
mod process;
#[path = "../../examples/mandelbrot/src/tile.rs"]
mod tile;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use process::Listening;
use rwc_client::{MapOptions, Pool, Value, to_value};
use tile::Tile;
use tile::bench::{MAX_ITER, ROWS, SIZE};

const SQ: &str = r#"(module
  (func (export "sq") (param i64) (result i64) local.get 0 local.get 0 i64.mul))"#;

const ITEMS: usize = 20_000;
const RUNS: usize = 3;

fn main() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // RWC_NODE_BIN compares another node build (say, one configured differently).
    let node_bin = match std::env::var_os("RWC_NODE_BIN") {
        Some(bin) => PathBuf::from(bin),
        None => process::build_release_node(&workspace),
    };
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    println!("rwc pool benchmarks ({} CPUs)", cpus());
    println!();
    runtime.block_on(overhead(&node_bin));
    println!();
    match mandelbrot_guest(&workspace) {
        Some(guest) => runtime.block_on(mandelbrot(&node_bin, &guest)),
        None => println!("mandelbrot: skipped (the examples/mandelbrot guest could not be built)"),
    }
}

/// Per-item overhead of `Pool::map` with a trivial export.
async fn overhead(node_bin: &Path) {
    let nodes = [start_node(node_bin), start_node(node_bin)];
    let mut pool = Pool::connect(nodes.iter().map(|n| n.addr.as_str()))
        .await
        .expect("connect");
    pool.load(SQ.as_bytes()).await.expect("load");
    let inputs =
        |n: usize| -> Vec<Vec<Value>> { (0..n).map(|i| vec![Value::I64(i as i64)]).collect() };
    // Warm up: connections, instances, caches.
    let _ = pool.map("sq", inputs(2_000), MapOptions::default()).await;

    println!("map overhead: trivial export `sq`, {ITEMS} items, 2 nodes");
    for (label, options) in [
        (
            "pipelined (default: 2 calls queued per instance)",
            MapOptions::default(),
        ),
        (
            "not pipelined (1 call per instance)",
            MapOptions::default().depth(1),
        ),
        (
            "deep pipeline (8 calls per instance)",
            MapOptions::default().depth(8),
        ),
    ] {
        let mut best = Duration::MAX;
        for _ in 0..RUNS {
            let report = pool
                .map("sq", inputs(ITEMS), options.clone())
                .await
                .expect("map");
            assert_eq!(report.succeeded(), ITEMS, "every item succeeds");
            best = best.min(report.elapsed);
        }
        let us = best.as_secs_f64() * 1e6 / ITEMS as f64;
        println!(
            "  {label:<52} {us:>7.2} µs/item  ({:.0} items/s)",
            ITEMS as f64 / best.as_secs_f64()
        );
    }
    pool.close();
}

async fn mandelbrot(node_bin: &Path, guest: &[u8]) {
    println!(
        "mandelbrot {SIZE}x{SIZE}, {MAX_ITER} iterations, bands of {ROWS} rows (best of {RUNS})"
    );
    let tiles = tile::bands(SIZE, ROWS, MAX_ITER);

    let mut native = Duration::MAX;
    let mut native_sum = 0u64;
    for _ in 0..RUNS {
        let started = Instant::now();
        let mut sum = 0u64;
        for t in &tiles {
            sum += tile::pixels(t).iter().map(|&b| u64::from(b)).sum::<u64>();
        }
        native = native.min(started.elapsed());
        native_sum = sum;
    }

    // What two threads give natively: the ceiling this machine puts on two nodes.
    let mut native2 = Duration::MAX;
    for _ in 0..RUNS {
        let started = Instant::now();
        std::thread::scope(|s| {
            for half in tiles.chunks(tiles.len().div_ceil(2)) {
                s.spawn(move || half.iter().map(|t| tile::pixels(t).len()).sum::<usize>());
            }
        });
        native2 = native2.min(started.elapsed());
    }

    let one = map_mandelbrot(node_bin, guest, &tiles, 1).await;
    let two = map_mandelbrot(node_bin, guest, &tiles, 2).await;
    let same = one.1 == native_sum && two.1 == native_sum;

    let speedup = one.0.as_secs_f64() / two.0.as_secs_f64();
    let wasm_vs_native = native.as_secs_f64() / one.0.as_secs_f64();
    println!(
        "  native, one thread        {:>8.3} s",
        native.as_secs_f64()
    );
    println!(
        "  native, two threads       {:>8.3} s   {:.2}x one thread (what this machine allows)",
        native2.as_secs_f64(),
        native.as_secs_f64() / native2.as_secs_f64()
    );
    println!(
        "  one node (1 instance)     {:>8.3} s   {:.2}x native speed   (target >= 0.70x) {}",
        one.0.as_secs_f64(),
        wasm_vs_native,
        verdict(wasm_vs_native >= 0.7)
    );
    println!(
        "  two nodes (1 instance each) {:>6.3} s   speedup {:.2}x over one node, efficiency {:.0}%   (target >= 1.80x) {}",
        two.0.as_secs_f64(),
        speedup,
        speedup / 2.0 * 100.0,
        verdict(speedup >= 1.8)
    );
    println!(
        "  results {}",
        if same {
            "identical to the native render"
        } else {
            "DIFFER from the native render"
        }
    );
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

/// Best time of mapping `render` over `tiles` on `n` fresh nodes (one instance each), and
/// the sum of the iteration counts.
async fn map_mandelbrot(
    node_bin: &Path,
    guest: &[u8],
    tiles: &[Tile],
    n: usize,
) -> (Duration, u64) {
    let nodes: Vec<Listening> = (0..n).map(|_| start_node(node_bin)).collect();
    let mut pool = Pool::connect(nodes.iter().map(|n| n.addr.as_str()))
        .await
        .expect("connect");
    pool.load(guest).await.expect("load the guest");
    let inputs: Vec<Vec<Value>> = tiles
        .iter()
        .map(|t| vec![to_value(t).expect("a tile is a value")])
        .collect();
    // Warm up: compile, instantiate.
    let _ = pool
        .map(
            "render",
            inputs[..4].to_vec(),
            MapOptions::default().per_node(1),
        )
        .await;
    let mut best = Duration::MAX;
    let mut sum = 0;
    for _ in 0..RUNS {
        let report = pool
            .map("render", inputs.clone(), MapOptions::default().per_node(1))
            .await
            .expect("map");
        best = best.min(report.elapsed);
        sum = report
            .results
            .iter()
            .map(|r| match r {
                Ok(Value::Bytes(b)) => b.iter().map(|&x| u64::from(x)).sum::<u64>(),
                Ok(other) => panic!("render returned a {}", other.type_name()),
                Err(e) => panic!("render failed: {e}"),
            })
            .sum();
    }
    pool.close();
    (best, sum)
}

/// The mandelbrot guest, built if `examples/` has it.
fn mandelbrot_guest(workspace: &Path) -> Option<Vec<u8>> {
    let manifest = workspace.join("examples/Cargo.toml");
    if !workspace.join("examples/mandelbrot").exists() {
        return None;
    }
    let status = Command::new(cargo())
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip1",
            "-p",
            "mandelbrot",
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .status()
        .ok()?;
    if !status.success() {
        return None;
    }
    std::fs::read(workspace.join("examples/target/wasm32-wasip1/release/mandelbrot.wasm")).ok()
}

fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// A node process on 127.0.0.1, killed on drop.
fn start_node(bin: &Path) -> Listening {
    let mut cmd = Command::new(bin);
    cmd.args(["--listen", "127.0.0.1:0", "--no-cache"]);
    Listening::start(cmd).expect("start rwc-node")
}
