//! Bytes benchmark: prints figures beside baselines measured in the same run; asserts
//! nothing about speed.
//!
//! - the protocol's own bulk echo (a host service answering with the bytes it got), the
//!   ceiling for anything that crosses the connection;
//! - bytes into a guest (`len` of the blob guest), out of it (`fill`) and both ways
//!   (`echo`), at 1 KiB, 1 MiB and 64 MiB;
//! - at 4 and 16 MiB, the same bytes sent as one value per byte, which is how a `Vec<u8>`
//!   travelled before bytes were bytes (on a node whose memory cap fits it);
//! - SHA-256 of 16 MiB through the guest against native code: `sha2` (which uses the
//!   CPU's SHA instructions when it has them) and a plain scalar implementation (no SHA
//!   instructions, as in Wasm).
//!
//! Placement: the node (or the echo service) on a current-thread runtime in a thread of its
//! own, the client on another: two threads, in one process, over TCP on 127.0.0.1. The
//! allocator is mimalloc, as in the `rwc-node` and `rwc` binaries (the system allocator
//! hands out fresh pages for every 64 MiB buffer, which costs more than the copies).
//!
//! Run with `cargo bench -p rwc-tests --bench bytes`; `RWC_BENCH_QUICK=1` takes fewer
//! samples.
// Throughput arithmetic on byte counts and seconds: float conversions are intended.
#![allow(clippy::cast_precision_loss)]

use std::time::{Duration, Instant};

use rwc_client::{Client, Instance, InstanceOptions, Value};
use rwc_node::server::Server;
use rwc_node::{Node, NodeConfig};
use rwc_protocol::transport::{accept_tcp, connect_tcp};
use rwc_protocol::{ConnectionConfig, NetRef, Service};
use rwc_tests::{guest_bytes, guests, random_bytes};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;
/// The node's memory cap here: room for 16 MiB as one value per byte (about 26 bytes each
/// in the guest).
const NODE_MEMORY: u64 = 1 << 30;
/// What each instance of the fast paths gets: the node's default.
const INSTANCE_MEMORY: u64 = 256 << 20;

/// The same allocator as the `rwc-node` and `rwc` binaries.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let quick = std::env::var_os("RWC_BENCH_QUICK").is_some();
    println!(
        "rwc bytes benchmark ({} mode); node and client on two threads of one process, TCP on 127.0.0.1, mimalloc",
        if quick { "quick" } else { "full" }
    );
    let echo = on_own_thread(start_echo_service);
    let node = on_own_thread(start_node);
    current_thread().block_on(async move { client(&echo, &node, quick).await });
}

async fn client(echo: &str, node: &str, quick: bool) {
    let echo = connect_tcp(
        echo,
        Service::new("bench-client").into_object(),
        ConnectionConfig::default(),
    )
    .await
    .expect("connect to the echo service");
    let echo_root = echo.root();
    let client = Client::connect(node).await.expect("connect to the node");
    let module = client
        .upload(&guest_bytes(guests::BLOB))
        .await
        .expect("upload the blob guest");
    let options = InstanceOptions {
        memory: Some(INSTANCE_MEMORY),
        ..InstanceOptions::default()
    };
    let blob = client
        .instantiate(&module, options)
        .await
        .expect("instantiate the blob guest");

    println!();
    println!(
        "{:<10} {:>16} {:>16} {:>16} {:>16}",
        "size", "protocol echo", "into guest", "out of guest", "guest echo"
    );
    println!(
        "{:<10} {:>16} {:>16} {:>16} {:>16}",
        "", "(both ways)", "(`len`)", "(`fill`)", "(both ways)"
    );
    for (name, size) in [("1 KiB", KIB), ("1 MiB", MIB), ("64 MiB", 64 * MIB)] {
        let n = samples(size, quick);
        let data = random_bytes(size, 1);
        let protocol = echo_time(n, &echo_root, &data, "protocol echo").await;
        let into = best(n, || async {
            let len: u64 = blob.call("len", (data.clone(),)).await.expect("len");
            check(len == size as u64, "len");
        })
        .await;
        let out = best(n, || async {
            let made = blob
                .call_value("fill", vec![Value::U64(size as u64)])
                .await
                .expect("fill");
            check(matches!(&made, Value::Bytes(b) if b.len() == size), "fill");
        })
        .await;
        let both = echo_time(n, blob.netref(), &data, "guest echo").await;
        println!(
            "{name:<10} {:>16} {:>16} {:>16} {:>16}",
            rate(2 * size, protocol),
            rate(size, into),
            rate(size, out),
            rate(2 * size, both)
        );
    }
    println!(
        "(best of several calls each; a guest's figure includes its call and, for `fill`, \
         making the bytes; the clone of the argument on the client is included everywhere)"
    );

    before_and_after(&client, &module, &blob).await;
    sha256(&blob, quick).await;
    println!();
    println!(
        "node info: {}",
        serde_json::to_string(&client.info().await.expect("info").limits).unwrap_or_default()
    );
}

/// 4 and 16 MiB into a guest as bytes (typed `Vec<u8>` and a ready `Value::Bytes`), and as
/// one value per byte (what a `Vec<u8>` argument was before bytes were bytes), in the same
/// run.
async fn before_and_after(client: &Client, module: &rwc_client::Module, blob: &Instance) {
    // A fresh instance with the node's whole cap: the per-byte form needs ~26 bytes a byte.
    let big = client
        .instantiate(
            module,
            InstanceOptions {
                memory: Some(NODE_MEMORY),
                ..InstanceOptions::default()
            },
        )
        .await
        .expect("instantiate with 1 GiB");
    println!();
    println!("into a guest (`len`), same run:");
    for (name, size) in [("4 MiB", 4 * MIB), ("16 MiB", 16 * MIB)] {
        let data = random_bytes(size, 3);
        let typed = best(3, || async {
            let len: u64 = blob.call("len", (data.clone(),)).await.expect("len");
            check(len == size as u64, "len of bytes");
        })
        .await;
        let value = best(3, || async {
            let len = blob
                .call_value("len", vec![Value::Bytes(data.clone().into())])
                .await
                .expect("len");
            check(len == Value::U64(size as u64), "len of a bytes value");
        })
        .await;
        let list = Value::List(data.iter().map(|b| Value::U64(u64::from(*b))).collect());
        let start = Instant::now();
        let result = big.call_value("len", vec![list]).await;
        let as_list = start.elapsed();
        println!(
            "  {name:<7} Vec<u8> as bytes (now)                  {:>12}",
            rate(size, typed)
        );
        println!(
            "  {name:<7} a Value::Bytes (no client-side serde)   {:>12}",
            rate(size, value)
        );
        match result {
            Ok(Value::U64(n)) if n == size as u64 => println!(
                "  {name:<7} one value per byte (before; 1 GiB)     {:>12}   ({:.1}x the time)",
                rate(size, as_list),
                as_list.as_secs_f64() / typed.as_secs_f64()
            ),
            Ok(other) => {
                println!("  {name:<7} one value per byte (before): wrong answer {other:?}")
            }
            Err(e) => println!("  {name:<7} one value per byte (before): fails: {e}"),
        }
    }
}

/// SHA-256 of 16 MiB: through the guest (bytes in, 32 bytes back) and natively.
async fn sha256(blob: &Instance, quick: bool) {
    let size = 16 * MIB;
    let data = random_bytes(size, 4);
    let n = if quick { 2 } else { 5 };
    let expected = Sha256::digest(&data).to_vec();
    let guest = best(n, || async {
        let digest: Vec<u8> = blob.call("sha256", (data.clone(),)).await.expect("sha256");
        check(digest == expected, "guest sha256");
    })
    .await;
    let native = best_sync(n, || {
        check(Sha256::digest(&data).to_vec() == expected, "sha2")
    });
    let scalar = best_sync(n, || {
        check(scalar_sha256(&data).to_vec() == expected, "scalar")
    });
    let sha_ni = std::fs::read_to_string("/proc/cpuinfo")
        .map(|c| c.split_whitespace().any(|w| w == "sha_ni"))
        .unwrap_or(false);
    println!();
    println!("SHA-256 of 16 MiB:");
    println!(
        "  through the guest (call included)       {:>12}",
        rate(size, guest)
    );
    println!(
        "  native, sha2 {:<26} {:>12}",
        if sha_ni {
            "(SHA instructions)"
        } else {
            "(no SHA-NI on this CPU)"
        },
        rate(size, native)
    );
    println!(
        "  native, scalar (no SHA instructions)    {:>12}",
        rate(size, scalar)
    );
}

/// Samples for a size: enough calls to take a stable best, fewer for huge buffers.
fn samples(size: usize, quick: bool) -> usize {
    match (size, quick) {
        (s, false) if s <= KIB => 2000,
        (s, false) if s <= MIB => 50,
        (_, false) => 5,
        (s, true) if s <= KIB => 200,
        (s, true) if s <= MIB => 10,
        (_, true) => 2,
    }
}

/// The fastest of `n` runs of `once`, after one warm-up run.
async fn best<F, Fut>(n: usize, mut once: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    once().await;
    let mut fastest = Duration::MAX;
    for _ in 0..n {
        let start = Instant::now();
        once().await;
        fastest = fastest.min(start.elapsed());
    }
    fastest
}

fn best_sync(n: usize, mut once: impl FnMut()) -> Duration {
    once();
    (0..n)
        .map(|_| {
            let start = Instant::now();
            once();
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

/// The best time of `n` `echo` calls of `data` on `target` (the echo service or the blob
/// guest), each checked to give the bytes back whole.
async fn echo_time(n: usize, target: &NetRef, data: &[u8], what: &str) -> Duration {
    best(n, || async {
        let back = target
            .call_value("echo", vec![Value::Bytes(data.to_vec().into())])
            .await
            .expect(what);
        check(
            matches!(&back, Value::Bytes(b) if b.len() == data.len()),
            what,
        );
    })
    .await
}

/// A wrong answer makes the figure meaningless: say so loudly, but keep measuring.
fn check(ok: bool, what: &str) {
    if !ok {
        eprintln!("bytes bench: {what} gave a wrong answer");
    }
}

fn rate(bytes: usize, took: Duration) -> String {
    let per_sec = bytes as f64 / took.as_secs_f64();
    if per_sec >= 1e9 {
        format!("{:.2} GB/s", per_sec / 1e9)
    } else {
        format!("{:.0} MB/s", per_sec / 1e6)
    }
}

fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Runs `start` on a current-thread runtime in a thread of its own; returns its address.
fn on_own_thread<F, Fut>(start: F) -> String
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = String>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        current_thread().block_on(async move {
            let _ = tx.send(start().await);
            std::future::pending::<()>().await;
        });
    });
    rx.recv().expect("the server thread started")
}

async fn start_node() -> String {
    let mut config = NodeConfig::default();
    config.limits.memory_bytes = NODE_MEMORY;
    let node = Node::new(config).expect("a node");
    let server = Server::bind(node, "127.0.0.1:0")
        .await
        .expect("bind the node");
    let addr = server.address().to_owned();
    tokio::spawn(server.run(std::future::pending()));
    addr
}

/// A host service that answers `echo` with the value it got: the protocol alone.
async fn start_echo_service() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address").to_string();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(conn) =
                    accept_tcp(stream, echo_service(), ConnectionConfig::default()).await
                {
                    conn.closed().await;
                }
            });
        }
    });
    addr
}

fn echo_service() -> NetRef {
    Service::new("echo")
        .raw_method("echo", |_ctx, mut args: Vec<Value>| async move {
            Ok(args.pop().unwrap_or(Value::Unit))
        })
        .into_object()
}

/// SHA-256 in plain scalar Rust (FIPS 180-4), with no SHA instructions: the native
/// baseline that matches what Wasm can do.
fn scalar_sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut message = data.to_vec();
    let bits = (data.len() as u64).wrapping_mul(8);
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&bits.to_be_bytes());
    for block in message.chunks_exact(64) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (state, v) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *state = state.wrapping_add(v);
        }
    }
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}
