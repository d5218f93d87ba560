//! What the node and guest-SDK benchmarks share: a node next to a raw TCP echo server (the
//! baseline), on this thread or on a thread of their own, and the arithmetic of the
//! figures. `tests/benches/sdk.rs` includes this file by path.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rwc_node::server::Server;
use rwc_node::{Node, NodeConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

/// Size of one raw ping-pong message.
const RAW_MESSAGE: usize = 16;

/// Median and 99th percentile of a set of samples, in µs.
#[derive(Default, Clone, Copy)]
pub struct Stats {
    pub median: f64,
    pub p99: f64,
}

pub fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let at = |p: f64| {
        let i = ((samples.len() - 1) as f64 * p).round() as usize;
        samples[i].as_secs_f64() * 1e6
    };
    Stats {
        median: at(0.5),
        p99: at(0.99),
    }
}

/// "met", or by how much a ratio missed its target.
pub fn verdict(ratio: f64, target: f64) -> String {
    if ratio <= target {
        "met".to_owned()
    } else {
        format!("missed by {:.0}%", (ratio / target - 1.0) * 100.0)
    }
}

pub fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Where the node and the raw echo server listen.
pub struct Servers {
    pub node: String,
    pub raw: SocketAddr,
}

/// Starts a node with the default config and a raw TCP echo server on this runtime.
pub async fn start_servers() -> Servers {
    let node = Node::new(NodeConfig::default()).unwrap();
    let server = Server::bind(node, "127.0.0.1:0").await.unwrap();
    let node = server.address().to_owned();
    tokio::spawn(server.run(std::future::pending()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let raw = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            s.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; RAW_MESSAGE];
                while s.read_exact(&mut buf).await.is_ok() {
                    if s.write_all(&buf).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Servers { node, raw }
}

/// [`start_servers`] on a current-thread runtime in a thread of their own.
pub fn servers_on_their_own_thread() -> Servers {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        current_thread().block_on(async {
            tx.send(start_servers().await).unwrap();
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}

/// `n` sequential raw TCP ping-pongs with the echo server: the floor.
pub async fn raw_round_trips(raw: SocketAddr, n: usize) -> Vec<Duration> {
    let mut s = TcpStream::connect(raw).await.unwrap();
    s.set_nodelay(true).unwrap();
    let mut buf = [7u8; RAW_MESSAGE];
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        s.write_all(&buf).await.unwrap();
        s.read_exact(&mut buf).await.unwrap();
        samples.push(t.elapsed());
    }
    samples
}
