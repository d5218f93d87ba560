//! The node's bounds on what a connected client can make it hold: instance job queues,
//! upload bytes, compilations (at most N at once, single flight, a deadline), calls in
//! flight and connections (in all, per address, per principal). Each over-the-bound case gets `overloaded` (or `timed out` for
//! the compile deadline) naming the `[limits]` key, at once, and the node recovers.

mod common;

use common::{TestClient, TestNode, eventually, wat};
use rwc_node::NodeConfig;
use rwc_node::config::Limits;
use rwc_protocol::{Error, ErrorKind, NetRef, Value};
use serde_bytes::ByteBuf;

fn with_limits(f: impl FnOnce(&mut Limits)) -> NodeConfig {
    let mut config = NodeConfig::default();
    f(&mut config.limits);
    config
}

fn assert_bound(err: &Error, kind: ErrorKind, key: &str) {
    assert_eq!(err.kind(), kind, "{err}");
    assert!(err.message().contains(key), "`{key}` not named: {err}");
}

/// Functions in a module that takes a second or so to compile here (debug builds of
/// wasmtime compile about 100 of these a second, release builds a few thousand).
const SLOW_FUNCS: usize = if cfg!(debug_assertions) { 150 } else { 4000 };

/// A valid module that takes a while to compile: `funcs` functions of arithmetic.
/// `salt` makes modules of the same size differ.
fn slow_to_compile(funcs: usize, salt: u32) -> String {
    let mut m = String::from("(module\n");
    for f in 0..funcs {
        m.push_str(&format!(
            "(func (export \"f{f}\") (param i64) (result i64) local.get 0\n"
        ));
        for k in 0..40 {
            m.push_str(&format!(
                "i64.const {} i64.mul i64.const {} i64.add\n",
                k + 3,
                u64::from(salt) + k
            ));
        }
        m.push_str(")\n");
    }
    m.push(')');
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_queues_a_bounded_number_of_jobs_of_every_kind() {
    let node = TestNode::start_with(with_limits(|l| l.max_queued_jobs_per_instance = 4)).await;
    let client = node.client().await;
    let module = client
        .upload(
            br#"(module (memory (export "memory") 1) (func (export "spin") (loop $l (br $l))))"#,
        )
        .await
        .unwrap();
    let instance = client.instantiate(&module, Value::Unit).await.unwrap();
    // The guest is busy: every job after this one waits.
    let spinning = instance.call_with("spin", vec![], Default::default());
    eventually(async || node.node.info().calls == 1).await;
    let write = |offset: u64| {
        instance.call_with(
            "rwc.write_memory",
            vec![Value::U64(offset), Value::Bytes(vec![7; 16].into())],
            Default::default(),
        )
    };
    let waiting: Vec<_> = (0..4).map(|i| write(i * 16)).collect();
    eventually(async || node.node.usage().queued_jobs == 4).await;

    // A fifth job of any kind is refused at once.
    let err = write(64).await.unwrap_err();
    assert_bound(&err, ErrorKind::Overloaded, "max_queued_jobs_per_instance");
    let err = instance
        .call_value("rwc.read_memory", vec![Value::U64(0), Value::U64(4)])
        .await
        .unwrap_err();
    assert_bound(&err, ErrorKind::Overloaded, "max_queued_jobs_per_instance");
    let err = instance.call_value("rwc.close", vec![]).await.unwrap_err();
    assert_bound(&err, ErrorKind::Overloaded, "max_queued_jobs_per_instance");

    // Stopping the busy call lets the queued jobs run; then the queue is empty again.
    drop(spinning);
    for w in waiting {
        w.await.unwrap();
    }
    assert_eq!(node.node.usage().queued_jobs, 0);
    let bytes: ByteBuf = instance
        .call("rwc.read_memory", (48u64, 4u64))
        .await
        .unwrap();
    assert_eq!(bytes.into_vec(), [7; 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connections_uploads_hold_a_bounded_number_of_bytes() {
    let node = TestNode::start_with(with_limits(|l| l.max_upload_bytes_in_flight = 1000)).await;
    let client = node.client().await;
    let first: NetRef = client.root.call("upload_stream", (600u64,)).await.unwrap();
    let err = client
        .root
        .call::<NetRef>("upload_stream", (600u64,))
        .await
        .unwrap_err();
    assert_bound(&err, ErrorKind::Overloaded, "max_upload_bytes_in_flight");
    // A whole-module upload counts too.
    let err = client.upload(&[b' '; 500]).await.unwrap_err();
    assert_bound(&err, ErrorKind::Overloaded, "max_upload_bytes_in_flight");
    assert_eq!(node.node.usage().upload_bytes_in_flight, 600);
    // Another connection has its own budget.
    let other = node.client().await;
    let _theirs: NetRef = other.root.call("upload_stream", (900u64,)).await.unwrap();

    // Dropping the uploader gives its bytes back.
    drop(first);
    eventually(async || node.node.usage().upload_bytes_in_flight == 900).await;
    client.upload(wat::ADD.as_bytes()).await.unwrap();
    let _again: NetRef = client.root.call("upload_stream", (600u64,)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_of_the_same_bytes_compile_once_and_compiles_wait_their_turn() {
    let node = TestNode::start_with(with_limits(|l| l.max_concurrent_compiles = 1)).await;
    let client = node.client().await;
    // Takes the only compile turn for a while.
    let busy = slow_to_compile(SLOW_FUNCS, 1);
    let occupying = client.root.call_with(
        "upload",
        vec![Value::Bytes(busy.into_bytes().into())],
        Default::default(),
    );
    eventually(async || node.node.usage().compiles_running == 1).await;
    // Two loads of the same module, from two connections, while the turn is taken.
    let other = node.client().await;
    let same = slow_to_compile(2, 2).into_bytes();
    let a = client.root.call_with(
        "upload",
        vec![Value::Bytes(same.clone().into())],
        Default::default(),
    );
    let b = other.root.call_with(
        "upload",
        vec![Value::Bytes(same.into())],
        Default::default(),
    );
    eventually(async || node.node.usage().calls_in_flight == 3).await;
    let usage = node.node.usage();
    assert_eq!(
        (usage.compiles_running, usage.compiles_queued),
        (1, 1),
        "one compilation at a time, and one flight for both loads"
    );

    occupying.await.unwrap();
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let hash = |m: Value| async move {
        let m: NetRef = rwc_protocol::from_value(m).unwrap();
        m.call::<String>("hash", ()).await.unwrap()
    };
    assert_eq!(hash(a).await, hash(b).await);
    assert_eq!(
        node.node.info().compiles,
        2,
        "the shared module compiled once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compilation_past_its_deadline_fails_clearly_and_is_not_cached() {
    let node = TestNode::start_with(with_limits(|l| l.compile_timeout_ms = 300)).await;
    let client = node.client().await;
    let slow = slow_to_compile(SLOW_FUNCS, 3);
    let started = std::time::Instant::now();
    let err = client.upload(slow.as_bytes()).await.unwrap_err();
    assert_bound(&err, ErrorKind::TimedOut, "compile_timeout_ms");
    println!("compile deadline reported after {:?}", started.elapsed());
    assert_eq!(node.node.usage().compiles_timed_out, 1);

    // The compilation runs on to its end, keeping its turn, then is thrown away.
    eventually(async || node.node.usage().compiles_running == 0).await;
    let hash = rwc_client_hash(slow.as_bytes());
    let found: Value = client.root.call("module", (hash,)).await.unwrap();
    assert_eq!(
        found,
        Value::Unit,
        "a module past its deadline is not cached"
    );
    // Small modules still compile.
    client.upload(wat::ADD.as_bytes()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_flight_per_connection_follow_the_node_config() {
    let node = TestNode::start_with(with_limits(|l| l.max_calls_in_flight = 2)).await;
    let client = node.client().await;
    let instance = client.instance_of(wat::SPIN).await;
    let spinning = instance.call_with("spin", vec![], Default::default());
    // The spin and one `info` fit; a third call does not.
    let info = client.info().await;
    assert_eq!(
        info.get("usage")
            .and_then(|u| u.get("this_connection"))
            .and_then(|c| c.get("calls_in_flight"))
            .and_then(Value::as_u64),
        Some(2),
        "{info:?}"
    );
    let spinning_too = instance.call_with("spin", vec![], Default::default());
    eventually(async || node.node.usage().calls_in_flight == 2).await;
    let err = client.root.call_value("info", vec![]).await.unwrap_err();
    assert_bound(&err, ErrorKind::Overloaded, "max_calls_in_flight");
    drop((spinning, spinning_too));
    eventually(async || node.node.usage().calls_in_flight == 0).await;
    client.info().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_node_caps_are_refused_and_info_counts_them() {
    let (_node, [one, _two], _) =
        two_connected_third_refused(|l| &mut l.max_connections, "max_connections").await;
    let usage = one.info().await;
    let usage = usage.get("usage").unwrap();
    assert_eq!(usage.get("connections").and_then(Value::as_u64), Some(2));
    assert_eq!(
        usage.get("connections_refused").and_then(Value::as_u64),
        Some(1)
    );
    // What this connection holds: its module and instance netrefs.
    let module = one.upload(wat::ADD.as_bytes()).await.unwrap();
    let instance = one.instantiate(&module, Value::Unit).await.unwrap();
    let info = one.info().await;
    let mine = info
        .get("usage")
        .and_then(|u| u.get("this_connection"))
        .unwrap();
    assert_eq!(
        mine.get("instances").and_then(Value::as_u64),
        Some(1),
        "{mine:?}"
    );
    assert_eq!(
        mine.get("netrefs").and_then(Value::as_u64),
        Some(2),
        "{mine:?}"
    );
    drop((module, instance));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_principals_cap_are_refused_in_the_handshake() {
    // Without credentials every client is the principal `anonymous`.
    let (node, [one, two], err) = two_connected_third_refused(
        |l| &mut l.max_connections_per_principal,
        "max_connections_per_principal",
    )
    .await;
    assert!(err.message().contains("`anonymous`"), "{err}");
    let info = one.info().await;
    let usage = info.get("usage").unwrap();
    assert_eq!(
        usage
            .get("connections_busiest_principal")
            .and_then(Value::as_u64),
        Some(2),
        "{usage:?}"
    );
    // A client that leaves gives its place back.
    two.conn.close();
    drop(two);
    eventually(async || node.node.usage().connections_busiest_principal == 1).await;
    let again = node.client().await;
    again.info().await;
}

/// A node whose connection cap `cap` (the `[limits]` key `key`) is 2: two clients
/// connect, and a third is refused as `overloaded` naming `key`. The node, the two
/// clients and the third's error.
async fn two_connected_third_refused(
    cap: fn(&mut Limits) -> &mut usize,
    key: &str,
) -> (TestNode, [TestClient; 2], Error) {
    let node = TestNode::start_with(with_limits(|l| *cap(l) = 2)).await;
    let two = [node.client().await, node.client().await];
    let err = common::try_connect(&node.addr).await.unwrap_err();
    assert_bound(&err, ErrorKind::Overloaded, key);
    (node, two, err)
}

fn rwc_client_hash(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}
