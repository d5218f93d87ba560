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

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rwc_client::{Client, InstanceOptions};
use rwc_node::server::Server;
use rwc_node::{Node, NodeConfig};
use rwc_protocol::callable;
use rwc_tests::{guest_bytes, guests};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

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
    let same = current_thread().block_on(async {
        let addrs = start_servers().await;
        client(addrs, n, callbacks).await
    });
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
        let sdk = r.sdk.0 / r.numeric.0;
        let cb = r.callback_us / r.raw.0;
        println!(
            "{name}: SDK/raw-export = {sdk:.2}x (target <= {TARGET_SDK_RATIO}x: {}); callback/raw TCP = {cb:.2}x (target <= {TARGET_CALLBACK_RATIO}x: {})",
            verdict(sdk, TARGET_SDK_RATIO),
            verdict(cb, TARGET_CALLBACK_RATIO)
        );
    }
}

fn verdict(ratio: f64, target: f64) -> String {
    if ratio <= target {
        "met".to_owned()
    } else {
        format!("missed by {:.0}%", (ratio / target - 1.0) * 100.0)
    }
}

/// (median, p99) in µs.
fn stats(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at =
        |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e6;
    (at(0.5), at(0.99))
}

fn row(name: &str, same: (f64, f64), two: (f64, f64)) {
    println!(
        "{name:<46} {:>6.1} ({:>5.0}) {:>6.1} ({:>5.0})",
        same.0, same.1, two.0, two.1
    );
}

struct Figures {
    raw: (f64, f64),
    numeric: (f64, f64),
    sdk: (f64, f64),
    callback_us: f64,
}

fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn two_threads(n: usize, callbacks: u64) -> Figures {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        current_thread().block_on(async {
            tx.send(start_servers().await).unwrap();
            std::future::pending::<()>().await;
        });
    });
    let addrs = rx.recv().unwrap();
    current_thread().block_on(client(addrs, n, callbacks))
}

async fn start_servers() -> (String, SocketAddr) {
    let node = Node::new(NodeConfig::default()).unwrap();
    let server = Server::bind(node, "127.0.0.1:0").await.unwrap();
    let node_addr = server.address().to_owned();
    tokio::spawn(server.run(std::future::pending()));
    let raw = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let raw_addr = raw.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = raw.accept().await {
            s.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 16];
                while s.read_exact(&mut buf).await.is_ok() {
                    if s.write_all(&buf).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (node_addr, raw_addr)
}

async fn client((node_addr, raw_addr): (String, SocketAddr), n: usize, callbacks: u64) -> Figures {
    let mut s = TcpStream::connect(raw_addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let mut buf = [1u8; 16];
    let mut raw = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        s.write_all(&buf).await.unwrap();
        s.read_exact(&mut buf).await.unwrap();
        raw.push(t.elapsed());
    }

    let client = Client::connect(&node_addr).await.unwrap();
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
