//! What the NATS tests share: nodes started with `--nats` whose log lines the tests can
//! wait on, `rwc map --nats` as a process, and short TTLs and AckWaits so failures are
//! noticed in about a second.
#![allow(dead_code, unused_imports)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rwc_client::nats::NatsFleet;
use rwc_tests::process::Listening;

use crate::support::{node_bin, rwc_bin};

pub use rwc_tests::nats_server::{NatsCluster, NatsServer};

/// The TTL of node entries in these tests.
pub const TTL_SECS: &str = "2";
/// The AckWait of tasks in these tests.
pub const ACK_WAIT_SECS: &str = "1";

/// A node started with `--nats`: its address, and every line it logs (debug level for
/// its NATS module), kept so a test can wait for one. SIGKILLed on drop.
#[derive(Debug)]
pub struct NatsNode {
    pub addr: String,
    process: Listening,
    log: Arc<(Mutex<Vec<String>>, Condvar)>,
}

impl NatsNode {
    /// `rwc-node --listen 127.0.0.1:0 --nats URL` with the short test timings and `args`.
    pub fn start(url: &str, args: &[&str]) -> NatsNode {
        let mut cmd = Command::new(node_bin());
        cmd.args(["--listen", "127.0.0.1:0", "--nats", url])
            .args([
                "--nats-ttl-secs",
                TTL_SECS,
                "--nats-ack-wait-secs",
                ACK_WAIT_SECS,
            ])
            .args(args)
            .env("RUST_LOG", "info,rwc_node::nats=debug")
            .env("NO_COLOR", "1");
        let process = Listening::start_with_stderr(cmd, Stdio::piped()).expect("start rwc-node");
        let log = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let sink = log.clone();
        let stderr = process.take_stderr().expect("stderr is piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let (lines, changed) = &*sink;
                lines
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(line);
                changed.notify_all();
            }
        });
        let node = NatsNode {
            addr: process.addr.clone(),
            process,
            log,
        };
        node.wait_for_log("joined the NATS fleet", Duration::from_secs(20));
        node
    }

    /// `n` nodes [started](NatsNode::start) with the same `args`.
    pub fn start_many(url: &str, n: usize, args: &[&str]) -> Vec<NatsNode> {
        (0..n).map(|_| NatsNode::start(url, args)).collect()
    }

    /// Waits until the node has logged a line containing `text`; returns it.
    pub fn wait_for_log(&self, text: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        let (lines, changed) = &*self.log;
        let mut guard = lines.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(l) = guard.iter().find(|l| l.contains(text)) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "node {} never logged {text:?} within {limit:?}; its log:\n{}",
                self.addr,
                guard.join("\n")
            );
            guard = changed
                .wait_timeout(guard, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Whether the node logged a line containing `text` so far.
    pub fn logged(&self, text: &str) -> bool {
        self.log
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|l| l.contains(text))
    }

    /// SIGKILL: the node vanishes without deregistering.
    pub fn kill(&self) {
        self.process.kill();
    }

    /// SIGTERM, then waits for the node to exit (it deregisters on the way).
    pub fn terminate(&self) {
        self.process.terminate();
    }
}

/// Guest calls a node has served (`rwc info`'s `calls`).
pub async fn calls_served(addr: &str) -> u64 {
    calls_served_with(addr, &rwc_client::ConnectOptions::default()).await
}

/// [`calls_served`], connecting with `options`.
pub async fn calls_served_with(addr: &str, options: &rwc_client::ConnectOptions) -> u64 {
    let client = rwc_client::Client::connect_with(addr, options)
        .await
        .expect("connect to the node");
    let info = client.info().await.expect("the node's info");
    client.close();
    info.calls
}

/// Connects to NATS at `url`.
pub async fn fleet(url: &str) -> NatsFleet {
    NatsFleet::connect(url).await.expect("connect to NATS")
}

/// `rwc map --nats URL …` as a child process with piped stdout (read it line by line).
pub fn spawn_map(args: &[&str]) -> Child {
    Command::new(rwc_bin())
        .arg("map")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rwc map")
}

/// Inputs `0..n`, one per line.
pub fn numbers(n: i64) -> String {
    (0..n).map(|i| format!("{i}\n")).collect()
}
