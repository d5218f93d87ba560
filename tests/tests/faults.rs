//! Faults, with real processes on 127.0.0.1: a client killed (SIGKILL) mid-call and
//! mid-upload, a node killed mid-call, and a full disk under the node's cache. (A node
//! killed or hung during a pool map: `pool_map.rs`; a peer that stops reading:
//! `protocol/tests/flow_control.rs`.)

mod support;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use rwc_client::{Client, ErrorKind, InstanceOptions, NodeInfo, Value};
use rwc_protocol::CallOptions;
use rwc_tests::process::Listening;
use support::{
    Proc, Scratch, eventually, node_bin, spawn_node, spawn_piped, square, stress_bin, wat,
};

/// Runs `rwc-stress ARGS…` and waits for it to print `line`.
fn helper(args: &[&str], line: &str) -> Child {
    let (child, mut out) = spawn_piped(Command::new(stress_bin()).args(args));
    let mut got = String::new();
    out.read_line(&mut got).expect("read the helper's stdout");
    assert_eq!(got.trim(), line, "the helper did not get there");
    child
}

/// Kills the `helper` client (SIGKILL) and waits until the node, as `observer` sees it,
/// has `freed` what the client held (`what`).
async fn kill_helper(
    mut client: Child,
    observer: &Client,
    what: &str,
    freed: impl Fn(&NodeInfo) -> bool,
) {
    client.kill().unwrap();
    client.wait().unwrap();
    eventually(Duration::from_secs(10), what, async || {
        freed(&info(observer).await)
    })
    .await;
}

async fn info(client: &Client) -> NodeInfo {
    client.info().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_killed_mid_call_leaves_nothing_behind() {
    let node = spawn_node(&[]);
    let observer = Client::connect(&node.addr).await.unwrap();
    let client = helper(&["hang-in-call", "--node", &node.addr], "calling");
    let during = info(&observer).await;
    assert_eq!(during.live_instances, 1);
    assert_eq!(during.usage.connections, 2);

    kill_helper(
        client,
        &observer,
        "the killed client's instance freed",
        |now| now.live_instances == 0 && now.usage.connections == 1 && now.usage.queued_jobs == 0,
    )
    .await;
    assert_eq!(
        square(&observer, 9).await.unwrap(),
        Value::I64(81),
        "the node still serves"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_killed_mid_upload_frees_the_partial_upload() {
    let node = spawn_node(&[]);
    let observer = Client::connect(&node.addr).await.unwrap();
    let bytes = 8u64 << 20;
    let client = helper(
        &[
            "hang-in-upload",
            "--node",
            &node.addr,
            "--bytes",
            &bytes.to_string(),
        ],
        "uploading",
    );
    assert_eq!(info(&observer).await.usage.upload_bytes_in_flight, bytes);

    kill_helper(client, &observer, "the partial upload freed", |now| {
        now.usage.upload_bytes_in_flight == 0 && now.usage.connections == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_call_fails_the_call_at_once_not_at_its_deadline() {
    let node = spawn_node(&[]);
    let client = Client::connect(&node.addr).await.unwrap();
    let module = client.upload(wat::MATH.as_bytes()).await.unwrap();
    let instance = client
        .instantiate(&module, InstanceOptions::default())
        .await
        .unwrap();
    let deadline = Duration::from_secs(300);
    let call = instance
        .netref()
        .call_with("spin", vec![], CallOptions::timeout(deadline));
    eventually(Duration::from_secs(10), "the call running", async || {
        info(&client).await.calls == 1
    })
    .await;

    node.kill();
    let killed = Instant::now();
    let err = call.await.unwrap_err();
    let after = killed.elapsed();
    assert_eq!(err.kind(), ErrorKind::Disconnected, "{err}");
    assert!(!err.is_remote(), "{err}");
    assert!(
        after < deadline / 10,
        "the call failed {after:?} after the kill, as if it waited for its deadline"
    );
}

/// A tmpfs mounted for a test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .expect("run mount(8)");
        assert!(
            out.status.success(),
            "this test needs root for a tmpfs mount (run the tests as root, e.g. in the CI \
             container): mount -t tmpfs failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_the_cache_is_a_warning_and_uploads_still_work() {
    let scratch = Scratch::new();
    let cache = scratch.path().join("cache");
    let mount = Tmpfs::mount(&cache, "256k");
    // Fill it: the write stops at the end of the space.
    let err = std::fs::write(cache.join("filler"), vec![0u8; 1 << 20]).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(28), "expected ENOSPC: {err}");

    let log = scratch.path().join("node.log");
    let mut cmd = Command::new(node_bin());
    cmd.args(["--listen", "127.0.0.1:0", "--cache-dir"])
        .arg(&cache)
        .env("RUST_LOG", "warn");
    let node: Proc = Listening::start_with_stderr(cmd, std::fs::File::create(&log).unwrap().into())
        .expect("start rwc-node");

    let client = Client::connect(&node.addr).await.unwrap();
    assert_eq!(
        square(&client, 12).await.unwrap(),
        Value::I64(144),
        "served from memory"
    );
    // Found again by hash, from memory.
    let hash = rwc_client::module_hash(wat::MATH.as_bytes());
    assert!(client.module(&hash).await.unwrap().is_some());
    let usage = info(&client).await.usage;
    assert!(usage.cache_disk_write_failures >= 1, "{usage:?}");

    node.kill();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("cannot write the module cache")
            && logged.contains("No space left on device")
            && logged.contains("stays in memory"),
        "no warning about the full disk in the node's log:\n{logged}"
    );
    drop(mount);
}
