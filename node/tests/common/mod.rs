//! A real node on 127.0.0.1 and clients speaking the wire API, for the node's tests.
#![allow(dead_code)]

use std::time::Duration;

use rwc_api::{Request, root};
use rwc_node::server::Server;
use rwc_node::{Node, NodeConfig};
use rwc_protocol::transport::connect_tcp;
use rwc_protocol::{Connection, ConnectionConfig, Error, NetRef, Service, Value};
use serde_bytes::ByteBuf;
use tokio::sync::mpsc;

/// A node serving on an ephemeral port, in this process.
pub struct TestNode {
    pub addr: String,
    pub node: Node,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl TestNode {
    pub async fn start() -> TestNode {
        Self::start_with(NodeConfig::default()).await
    }

    pub async fn start_with(mut config: NodeConfig) -> TestNode {
        config.listen = "127.0.0.1:0".into();
        let node = Node::new(config).unwrap();
        let server = Server::bind(node.clone(), "127.0.0.1:0").await.unwrap();
        let addr = server.address().to_owned();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        TestNode {
            addr,
            node,
            _stop: stop,
        }
    }

    pub async fn client(&self) -> TestClient {
        connect(&self.addr).await
    }
}

/// A plain TCP connection to `addr` (default settings, an empty root of our own), or
/// why the node refused it.
pub async fn try_connect(addr: &str) -> Result<Connection, Error> {
    let root = Service::new("test client").into_object();
    connect_tcp(addr, root, ConnectionConfig::default()).await
}

/// A client of the node at `addr`.
pub async fn connect(addr: &str) -> TestClient {
    let conn = try_connect(addr).await.unwrap();
    TestClient {
        root: conn.root(),
        conn,
    }
}

/// A client using the node's wire API directly.
pub struct TestClient {
    pub conn: Connection,
    pub root: NetRef,
}

/// `upload(bytes)` on a node's root: the module.
pub async fn upload(root: &NetRef, bytes: &[u8]) -> Result<NetRef, Error> {
    let req = root::Upload {
        bytes: ByteBuf::from(bytes),
    };
    root.call(root::Upload::METHOD, req.to_args()?).await
}

/// `run(module, export, args)` on a node's root: instantiate, call, drop, in one request.
pub async fn run(
    root: &NetRef,
    module: &NetRef,
    export: &str,
    args: Vec<Value>,
) -> Result<Value, Error> {
    let req = root::Run {
        module: module.clone().into(),
        export: export.to_owned(),
        args,
        options: Default::default(),
    };
    root.call_value(root::Run::METHOD, req.to_args()?).await
}

impl TestClient {
    pub async fn upload(&self, bytes: &[u8]) -> Result<NetRef, Error> {
        upload(&self.root, bytes).await
    }

    pub async fn instantiate(&self, module: &NetRef, options: Value) -> Result<NetRef, Error> {
        self.root
            .call("instantiate", (module.clone(), options))
            .await
    }

    pub async fn instance_of(&self, wat: &str) -> NetRef {
        let module = self.upload(wat.as_bytes()).await.unwrap();
        self.instantiate(&module, Value::Unit).await.unwrap()
    }

    pub async fn info(&self) -> Value {
        self.root.call_value("info", vec![]).await.unwrap()
    }
}

/// Instance options from `(key, value)` pairs.
pub fn options(pairs: &[(&str, Value)]) -> Value {
    Value::Map(
        pairs
            .iter()
            .map(|(k, v)| (Value::from(*k), v.clone()))
            .collect(),
    )
}

/// An output callback that forwards `(stream, bytes, when)` to a channel.
pub fn output_channel() -> (
    NetRef,
    mpsc::UnboundedReceiver<(String, Vec<u8>, tokio::time::Instant)>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let cb = Service::new("output")
        .method("write", move |(stream, bytes): (String, ByteBuf)| {
            let _ = tx.send((stream, bytes.into_vec(), tokio::time::Instant::now()));
            async move { Ok(()) }
        })
        .into_object();
    (cb, rx)
}

/// Polls `f` until it is true, for at most 10 s.
pub async fn eventually(mut f: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub mod wat {
    pub const ADD: &str = r#"(module
      (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
      (func (export "mul64") (param i64 i64) (result i64) local.get 0 local.get 1 i64.mul)
      (memory (export "memory") 1))"#;

    /// Prints "hello from the guest\n" through WASI, then spins for about `ms` milliseconds
    /// of its own counting (the argument is a loop count in millions).
    pub const PRINT_THEN_SPIN: &str = r#"(module
      (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 16) "hello from the guest\n")
      (func (export "run") (param $millions i32) (result i32)
        (local $i i64)
        (i32.store (i32.const 0) (i32.const 16))
        (i32.store (i32.const 4) (i32.const 21))
        (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
        (local.set $i (i64.mul (i64.extend_i32_u (local.get $millions)) (i64.const 1000000)))
        (block $done (loop $l
          (br_if $done (i64.eqz (local.get $i)))
          (local.set $i (i64.sub (local.get $i) (i64.const 1)))
          (br $l)))
        (i32.const 7)))"#;

    pub const SPIN: &str = r#"(module (func $spin (export "spin") (loop $l (br $l))))"#;

    pub const GROW_BOMB: &str = r#"(module (memory 1)
      (func (export "grow") (result i32) (local $r i32)
        (loop $l (local.set $r (memory.grow (i32.const 16))) (br_if $l (i32.ne (local.get $r) (i32.const -1))))
        (local.get $r)))"#;

    pub const RECURSE: &str = r#"(module (func $down (export "down") (param i32) (result i32)
      (call $down (i32.add (local.get 0) (i32.const 1)))))"#;

    /// Writes 64 KiB to stdout 1600 times: 100 MiB.
    pub const FLOOD: &str = r#"(module
      (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 2)
      (func (export "flood") (result i32) (local $n i32)
        (i32.store (i32.const 0) (i32.const 1024))
        (i32.store (i32.const 4) (i32.const 65536))
        (local.set $n (i32.const 1600))
        (loop $l
          (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
          (local.set $n (i32.sub (local.get $n) (i32.const 1)))
          (br_if $l (local.get $n)))
        (i32.const 0)))"#;

    pub const UNREACHABLE: &str = r#"(module
      (func $inner unreachable)
      (func $outer (export "boom") (call $inner)))"#;

    pub const IMPORTS_ENV_FOO: &str =
        r#"(module (import "env" "foo" (func (param i32))) (func (export "f")))"#;
}
