//! Node benchmark: prints figures side by side with their baselines; asserts nothing.
//!
//! - raw tokio TCP ping-pong round trip (the floor),
//! - `add` on a live instance over rwc,
//! - `run` of a cached module over rwc (instantiate + call + drop, one request),
//! - local wasmtime instantiate + drop with the node's own sandbox config (no network),
//! - compile time of a ~1 MB module.
//!
//! Run with `cargo bench -p rwc-node --bench node`; `RWC_BENCH_QUICK=1` shrinks the counts.
//! Each figure is measured twice: client and node on one thread ("same thread") and on two
//! threads ("two threads"), baseline and rwc always with the same placement.
// Statistics on sample counts and microseconds: float conversions are intended.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss
)]

mod common;
// The node tests' client helpers (connect, upload, instantiate, run).
#[path = "../tests/common/mod.rs"]
mod node_client;

use std::time::{Duration, Instant};

use common::{
    Servers, Stats, current_thread, raw_round_trips, servers_on_their_own_thread, start_servers,
    stats, verdict,
};
use rwc_node::NodeConfig;
use rwc_node::sandbox::{InstanceOptions, Sandbox, SandboxConfig};
use rwc_protocol::Value;

const ADD: &str = r#"(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
  (memory (export "memory") 1))"#;

/// Call on a live instance: at most this many raw round trips.
const TARGET_CALL_RATIO: f64 = 1.5;

struct Counts {
    round_trips: usize,
    runs: usize,
    instantiations: usize,
    compiles: usize,
}

fn main() {
    let quick = std::env::var_os("RWC_BENCH_QUICK").is_some();
    let counts = if quick {
        Counts {
            round_trips: 500,
            runs: 200,
            instantiations: 200,
            compiles: 1,
        }
    } else {
        Counts {
            round_trips: 10_000,
            runs: 3_000,
            instantiations: 3_000,
            compiles: 3,
        }
    };
    println!(
        "rwc-node benchmark ({} mode)",
        if quick { "quick" } else { "full" }
    );

    let local = local_figures(&counts);
    let same = same_thread(&counts);
    let two = two_threads(&counts);

    println!();
    println!(
        "{:<44} {:>14} {:>14}",
        "median µs (p99)", "same thread", "two threads"
    );
    row("raw TCP round trip (floor)", &same.raw, &two.raw);
    row("rwc: add on a live instance", &same.call, &two.call);
    row("rwc: run of a cached module", &same.run, &two.run);
    println!(
        "{:<44} {:>14.1} {:>14}",
        "local instantiate + drop (no network)", local.instantiate_us, "-"
    );
    println!(
        "{:<44} {:>11.1} ms {:>14}",
        "compile a ~1 MB module", local.compile_ms, "-"
    );
    println!("  (module size: {} bytes)", local.module_bytes);
    println!();
    for (name, r) in [("same thread", &same), ("two threads", &two)] {
        let call_ratio = r.call.median / r.raw.median;
        // Target: run of a cached module <= 2 × raw round trip + local instantiate time.
        let run_budget = 2.0 * r.raw.median + local.instantiate_us;
        println!(
            "{name}: call/raw = {call_ratio:.2}x (target <= {TARGET_CALL_RATIO}x: {}); \
             run = {:.1} µs vs 2×raw + instantiate = {run_budget:.1} µs ({})",
            verdict(call_ratio, TARGET_CALL_RATIO),
            r.run.median,
            verdict(r.run.median / run_budget, 1.0),
        );
    }
}

fn row(name: &str, same: &Stats, two: &Stats) {
    println!(
        "{name:<44} {:>6.1} ({:>5.0}) {:>6.1} ({:>5.0})",
        same.median, same.p99, two.median, two.p99
    );
}

struct Remote {
    raw: Stats,
    call: Stats,
    run: Stats,
}

struct Local {
    instantiate_us: f64,
    compile_ms: f64,
    module_bytes: usize,
}

fn same_thread(counts: &Counts) -> Remote {
    current_thread().block_on(async { client(start_servers().await, counts).await })
}

fn two_threads(counts: &Counts) -> Remote {
    let servers = servers_on_their_own_thread();
    current_thread().block_on(client(servers, counts))
}

async fn client(servers: Servers, counts: &Counts) -> Remote {
    let raw = raw_round_trips(servers.raw, counts.round_trips).await;

    let c = node_client::connect(&servers.node).await;
    let module = c.upload(ADD.as_bytes()).await.unwrap();
    let inst = c.instantiate(&module, Value::Unit).await.unwrap();
    // Warm up.
    for _ in 0..200 {
        let _: i32 = inst.call("add", (1, 2)).await.unwrap();
    }
    let mut call = Vec::with_capacity(counts.round_trips);
    for i in 0..counts.round_trips {
        let t = Instant::now();
        let r: i32 = inst.call("add", (i as i32, 1)).await.unwrap();
        call.push(t.elapsed());
        debug_assert_eq!(r, i as i32 + 1);
    }
    let args = vec![Value::I64(2), Value::I64(3)];
    let mut run = Vec::with_capacity(counts.runs);
    for _ in 0..counts.runs {
        let t = Instant::now();
        let r = node_client::run(&c.root, &module, "add", args.clone())
            .await
            .unwrap();
        run.push(t.elapsed());
        debug_assert_eq!(r, Value::I64(5));
    }
    c.conn.close();
    Remote {
        raw: stats(raw),
        call: stats(call),
        run: stats(run),
    }
}

/// Local figures: instantiate with the node's own sandbox config; compile a big module.
fn local_figures(counts: &Counts) -> Local {
    let rt = current_thread();
    rt.block_on(async {
        let sandbox = Sandbox::new(NodeConfig::default().sandbox_config()).unwrap();
        let module = sandbox.load(ADD.as_bytes()).unwrap();
        for _ in 0..100 {
            drop(
                sandbox
                    .instantiate(&module, InstanceOptions::default())
                    .await
                    .unwrap(),
            );
        }
        let mut samples = Vec::with_capacity(counts.instantiations);
        for _ in 0..counts.instantiations {
            let t = Instant::now();
            let inst = sandbox
                .instantiate(&module, InstanceOptions::default())
                .await
                .unwrap();
            drop(inst);
            samples.push(t.elapsed());
        }
        let instantiate_us = stats(samples).median;

        let big = big_module();
        let mut best = Duration::MAX;
        for _ in 0..counts.compiles {
            // A fresh sandbox each time: nothing cached, so this is a real compile.
            let fresh = Sandbox::new(SandboxConfig::default()).unwrap();
            let t = Instant::now();
            fresh.load(&big).unwrap();
            best = best.min(t.elapsed());
        }
        Local {
            instantiate_us,
            compile_ms: best.as_secs_f64() * 1e3,
            module_bytes: big.len(),
        }
    })
}

/// A module of about 1 MB: many functions of straight-line integer arithmetic.
fn big_module() -> Vec<u8> {
    let mut wat = String::from("(module (memory (export \"memory\") 1)\n");
    let mut i = 0;
    loop {
        wat.push_str(&format!(
            "(func (export \"f{i}\") (param i64) (result i64) (local i64)\n"
        ));
        for k in 0..60 {
            wat.push_str(&format!(
                "local.get 0 i64.const {} i64.mul i64.const {} i64.add local.set 1 local.get 1 local.set 0\n",
                k * 7 + i,
                k + 3
            ));
        }
        wat.push_str("local.get 0)\n");
        i += 1;
        if i % 100 == 0 {
            let bytes = wat::parse_str(format!("{wat})")).unwrap();
            if bytes.len() >= 1_000_000 {
                return bytes;
            }
        }
    }
}
