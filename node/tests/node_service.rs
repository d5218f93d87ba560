//! The node's root service over a real socket: upload, instantiate, call, run, info, output.

mod common;

use std::time::Duration;

use common::{TestNode, eventually, options, output_channel, wat};
use rwc_protocol::{ErrorKind, NetRef, Value};
use serde_bytes::ByteBuf;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_through_the_library_api() {
    let node = TestNode::start().await;
    let c = node.client().await;
    let module = c.upload(wat::ADD.as_bytes()).await.unwrap();
    let hash: String = module.call("hash", ()).await.unwrap();
    assert_eq!(hash.len(), 64);
    let exports = module.call_value("exports", vec![]).await.unwrap();
    let names: Vec<&str> = exports
        .as_list()
        .unwrap()
        .iter()
        .filter_map(|e| e.get("name")?.as_str())
        .collect();
    assert_eq!(names, ["add", "mul64"]);
    let sig = exports.as_list().unwrap()[0]
        .get("signature")
        .and_then(Value::as_str)
        .unwrap()
        .to_owned();
    assert_eq!(sig, "add takes (i32, i32) -> i32");

    let inst = c.instantiate(&module, Value::Unit).await.unwrap();
    let sum: i32 = inst.call("add", (2, 3)).await.unwrap();
    assert_eq!(sum, 5);
    let big: i64 = inst.call("mul64", (1i64 << 40, 3)).await.unwrap();
    assert_eq!(big, 3 << 40);

    let err = inst.call::<i32>("add", (1,)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadArgument);
    assert!(
        err.message()
            .contains("add takes (i32, i32) -> i32, got 1 argument"),
        "{err}"
    );
    let err = inst.call::<i32>("add", ("x", 1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadArgument, "{err}");
    let err = inst.call::<i32>("sub", (1, 1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unimplemented);
    assert!(err.message().contains("add"), "lists what exists: {err}");

    // `run`: instantiate, call, drop in one request.
    let r = common::run(&c.root, &module, "add", vec![Value::I64(40), Value::I64(2)])
        .await
        .unwrap();
    assert_eq!(r, Value::I64(42));

    // Memory access.
    inst.call::<()>("rwc.write_memory", (100u64, ByteBuf::from(vec![1u8, 2, 3])))
        .await
        .unwrap();
    let back: ByteBuf = inst.call("rwc.read_memory", (100u64, 3u64)).await.unwrap();
    assert_eq!(back.into_vec(), vec![1, 2, 3]);
    let err = inst
        .call::<ByteBuf>("rwc.read_memory", (65_535u64, 2u64))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_by_hash_skips_the_upload() {
    let node = TestNode::start().await;
    let c = node.client().await;
    let hash = {
        let m = c.upload(wat::ADD.as_bytes()).await.unwrap();
        m.call::<String>("hash", ()).await.unwrap()
    };
    let found: Option<NetRef> = c.root.call("module", (hash.clone(),)).await.unwrap();
    let found = found.expect("the node has it");
    let inst = c.instantiate(&found, Value::Unit).await.unwrap();
    assert_eq!(inst.call::<i32>("add", (1, 1)).await.unwrap(), 2);
    let missing: Option<NetRef> = c.root.call("module", ("0".repeat(64),)).await.unwrap();
    assert!(missing.is_none());
    let info = c.info().await;
    assert_eq!(info.get("uploads").and_then(Value::as_u64), Some(1));
    assert_eq!(info.get("compiles").and_then(Value::as_u64), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_output_arrives_before_the_call_returns() {
    let node = TestNode::start().await;
    let c = node.client().await;
    let module = c.upload(wat::PRINT_THEN_SPIN.as_bytes()).await.unwrap();
    let (cb, mut rx) = output_channel();
    let inst = c
        .instantiate(&module, options(&[("output", cb.into())]))
        .await
        .unwrap();
    let start = tokio::time::Instant::now();
    // Spin long enough (hundreds of ms even in a fast build) that "before the end" is clear.
    let r: i32 = inst.call("run", (400,)).await.unwrap();
    let returned = tokio::time::Instant::now();
    assert_eq!(r, 7);
    let (stream, bytes, when) = rx
        .try_recv()
        .expect("output arrived by the time the call returned");
    assert_eq!(stream, "stdout");
    assert_eq!(bytes, b"hello from the guest\n");
    let run_time = returned - start;
    assert!(
        when - start < run_time / 2,
        "output arrived at {:?} of a {run_time:?} call: it must stream while the guest runs",
        when - start
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_connection_frees_its_instances() {
    let node = TestNode::start().await;
    let watcher = node.client().await;
    let c = node.client().await;
    let module = c.upload(wat::ADD.as_bytes()).await.unwrap();
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(c.instantiate(&module, Value::Unit).await.unwrap());
    }
    assert_eq!(
        watcher
            .info()
            .await
            .get("live_instances")
            .and_then(Value::as_u64),
        Some(5)
    );
    c.conn.close();
    eventually(async || {
        watcher
            .info()
            .await
            .get("live_instances")
            .and_then(Value::as_u64)
            == Some(0)
    })
    .await;
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_an_instance_netref_frees_it() {
    let node = TestNode::start().await;
    let c = node.client().await;
    let inst = c.instance_of(wat::ADD).await;
    assert_eq!(node.node.stats().live_instances, 1);
    drop(inst);
    eventually(async || node.node.stats().live_instances == 0).await;
    assert!(!c.conn.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_connection_instance_cap() {
    let mut config = rwc_node::NodeConfig::default();
    config.limits.max_instances_per_connection = 2;
    let node = TestNode::start_with(config).await;
    let c = node.client().await;
    let module = c.upload(wat::ADD.as_bytes()).await.unwrap();
    let _a = c.instantiate(&module, Value::Unit).await.unwrap();
    let _b = c.instantiate(&module, Value::Unit).await.unwrap();
    let err = c.instantiate(&module, Value::Unit).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Overloaded, "{err}");
    // Another connection has its own allowance.
    let other = node.client().await;
    let m = other.upload(wat::ADD.as_bytes()).await.unwrap();
    assert!(other.instantiate(&m, Value::Unit).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_reports_versions_limits_and_uptime() {
    let node = TestNode::start().await;
    let c = node.client().await;
    let info = c.info().await;
    assert_eq!(
        info.get("version").and_then(Value::as_str),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert!(
        info.get("wasmtime_version")
            .and_then(Value::as_str)
            .is_some_and(|v| v.starts_with("48.")),
        "{info:?}"
    );
    assert_eq!(
        info.get("limits")
            .and_then(|l| l.get("call_timeout_ms"))
            .and_then(Value::as_u64),
        Some(30_000)
    );
    assert!(info.get("uptime_secs").and_then(Value::as_f64).is_some());
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// `_initialize` runs once when the instance is made; it and the ABI's `rwc_*` exports are
/// plumbing: not listed, and not callable, so what a client sees listed is exactly what
/// it can call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plumbing_exports_are_neither_listed_nor_callable() {
    const REACTOR: &str = r#"(module
      (global $inits (mut i32) (i32.const 0))
      (func (export "_initialize") (global.set $inits (i32.add (global.get $inits) (i32.const 1))))
      (func (export "rwc_helper") (result i32) i32.const 9)
      (func (export "inits") (result i32) global.get $inits))"#;
    let node = TestNode::start().await;
    let c = node.client().await;
    let module = c.upload(REACTOR.as_bytes()).await.unwrap();
    let inst = c.instantiate(&module, Value::Unit).await.unwrap();
    let listed = |v: Value| -> Vec<String> {
        v.as_list()
            .unwrap()
            .iter()
            .filter_map(|e| Some(e.get("name")?.as_str()?.to_owned()))
            .collect()
    };
    let exports = module.call_value("exports", vec![]).await.unwrap();
    assert_eq!(listed(exports), ["inits"]);
    let exports = inst.call_value("rwc.exports", vec![]).await.unwrap();
    assert_eq!(listed(exports), ["inits"]);
    for plumbing in ["_initialize", "rwc_helper"] {
        let err = inst.call::<i32>(plumbing, ()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unimplemented, "{plumbing}: {err}");
        assert!(
            err.message().ends_with("it exports: inits"),
            "{plumbing}: the error lists what can be called: {err}"
        );
    }
    assert_eq!(
        inst.call::<i32>("inits", ()).await.unwrap(),
        1,
        "initialised exactly once"
    );
}
