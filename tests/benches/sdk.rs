//! Guest SDK benchmark: prints figures side by side with their baselines; asserts nothing.
//!
//! - raw tokio TCP ping-pong round trip (the floor),
//! - a raw numeric export (`add`, WAT, no SDK) called over rwc,
//! - a trivial typed SDK export (`inc` of the progress guest) called over rwc,
//! - a guest→client callback round trip (`ping_back` calls a client callback n times).
//!
//! Run with `cargo bench -p rwc-tests --bench sdk`; `RWC_BENCH_QUICK=1` shrinks the counts.
//! Baseline and rwc always run with the same placement: one thread for client and node, or
//! one thread each.
// Statistics on sample counts and microseconds: float conversions are intended.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss
)]

#[path = "../../node/benches/common/mod.rs"]
mod common;

use std::time::Instant;

use common::{
    Servers, Stats, current_thread, raw_round_trips, servers_on_their_own_thread, start_servers,
    stats, verdict,
};
use rwc_client::{Client, InstanceOptions};
use rwc_protocol::callable;
use rwc_tests::{guest_bytes, guests};

const ADD: &str = r#"(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))"#;
const TARGET_SDK_RATIO: f64 = 1.2;
const TARGET_CALLBACK_RATIO: f64 = 2.0;

fn main() {
    let quick = std::env::var_os("RWC_BENCH_QUICK").is_some();
    let n = if quick { 500 } else { 10_000 };
    let callbacks = if quick { 200 } else { 5_000 };
    println!(
        "rwc guest SDK benchmark ({} mode)",
        if quick { "quick" } else { "full" }
    );
    let same =
        current_thread().block_on(async { client(start_servers().await, n, callbacks).await });
    let two = two_threads(n, callbacks);
    println!();
    println!(
        "{:<46} {:>14} {:>14}",
        "median µs (p99)", "same thread", "two threads"
    );
    row("raw TCP round trip (floor)", same.raw, two.raw);
    row("rwc: raw numeric export `add`", same.numeric, two.numeric);
    row("rwc: typed SDK export `inc`", same.sdk, two.sdk);
    println!(
        "{:<46} {:>14.1} {:>14.1}",
        "guest→client callback round trip (mean)", same.callback_us, two.callback_us
    );
    println!();
    for (name, r) in [("same thread", &same), ("two threads", &two)] {
        let sdk = r.sdk.median / r.numeric.median;
        let cb = r.callback_us / r.raw.median;
        println!(
            "{name}: SDK/raw-export = {sdk:.2}x (target <= {TARGET_SDK_RATIO}x: {}); callback/raw TCP = {cb:.2}x (target <= {TARGET_CALLBACK_RATIO}x: {})",
            verdict(sdk, TARGET_SDK_RATIO),
            verdict(cb, TARGET_CALLBACK_RATIO)
        );
    }
}

fn row(name: &str, same: Stats, two: Stats) {
    println!(
        "{name:<46} {:>6.1} ({:>5.0}) {:>6.1} ({:>5.0})",
        same.median, same.p99, two.median, two.p99
    );
}

struct Figures {
    raw: Stats,
    numeric: Stats,
    sdk: Stats,
    callback_us: f64,
}

fn two_threads(n: usize, callbacks: u64) -> Figures {
    let servers = servers_on_their_own_thread();
    current_thread().block_on(client(servers, n, callbacks))
}

async fn client(servers: Servers, n: usize, callbacks: u64) -> Figures {
    let raw = raw_round_trips(servers.raw, n).await;

    let client = Client::connect(&servers.node).await.unwrap();
    let add = client.upload(ADD.as_bytes()).await.unwrap();
    let add = client
        .instantiate(&add, InstanceOptions::default())
        .await
        .unwrap();
    let progress = client.upload(&guest_bytes(guests::PROGRESS)).await.unwrap();
    let progress = client
        .instantiate(&progress, InstanceOptions::default())
        .await
        .unwrap();
    for i in 0..200 {
        let _: i32 = add.call("add", (i, 1)).await.unwrap();
        let _: u64 = progress.call("inc", (i,)).await.unwrap();
    }
    let mut numeric = Vec::with_capacity(n);
    let mut sdk = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        let _: i32 = add.call("add", (i as i32, 1)).await.unwrap();
        numeric.push(t.elapsed());
        let t = Instant::now();
        let _: u64 = progress.call("inc", (i as u64,)).await.unwrap();
        sdk.push(t.elapsed());
    }
    let cb = callable(|(i,): (u64,)| async move { Ok(i) });
    let t = Instant::now();
    let _: u64 = progress.call("ping_back", (callbacks, cb)).await.unwrap();
    let callback_us = t.elapsed().as_secs_f64() * 1e6 / callbacks as f64;
    client.close();
    Figures {
        raw: stats(raw),
        numeric: stats(numeric),
        sdk: stats(sdk),
        callback_us,
    }
}
