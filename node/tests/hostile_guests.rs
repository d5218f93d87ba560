//! Hostile guests each get a clear error, while a second client keeps getting answers.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{TestClient, TestNode, options, output_channel, wat};
use rwc_protocol::{Error, ErrorKind, Value};

/// A second client calling `add` in a loop; counts answers and failures.
struct Bystander {
    answers: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Bystander {
    async fn start(node: &TestNode) -> Bystander {
        let c = node.client().await;
        let inst = c.instance_of(wat::ADD).await;
        let (answers, failures, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (a, f, s) = (answers.clone(), failures.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let _keep = c;
            while !s.load(Ordering::SeqCst) {
                let call = inst.call::<i32>("add", (20, 22));
                match tokio::time::timeout(Duration::from_secs(2), call).await {
                    Ok(Ok(42)) => a.fetch_add(1, Ordering::SeqCst),
                    _ => f.fetch_add(1, Ordering::SeqCst),
                };
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        Bystander {
            answers,
            failures,
            stop,
            task,
        }
    }

    /// Runs `hostile` and checks the bystander kept being answered meanwhile.
    async fn during<T>(&self, what: &str, hostile: impl Future<Output = T>) -> T {
        let before = self.answers.load(Ordering::SeqCst);
        let out = hostile.await;
        // The bystander is answered after the storm too: its count of answers moves on.
        let answers = self.answers.clone();
        common::eventually(async || answers.load(Ordering::SeqCst) > before).await;
        assert_eq!(
            self.failures.load(Ordering::SeqCst),
            0,
            "{what}: the other client saw failures"
        );
        out
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap();
    }
}

impl Bystander {
    /// `c` calls `export` of `wat_text` with no arguments, in an instance made with
    /// `opts`, and fails (while the bystander is answered): the error.
    async fn fails(
        &self,
        what: &str,
        c: &TestClient,
        wat_text: &str,
        opts: Value,
        export: &str,
    ) -> Error {
        let failing = async {
            let module = c.upload(wat_text.as_bytes()).await.unwrap();
            let inst = c.instantiate(&module, opts).await.unwrap();
            inst.call_value(export, vec![]).await.unwrap_err()
        };
        self.during(what, failing).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_guests_fail_alone() {
    let mut config = rwc_node::NodeConfig::default();
    config.limits.max_module_bytes = 1 << 20;
    let node = TestNode::start_with(config).await;
    let by = Bystander::start(&node).await;
    let c = node.client().await;

    let opts = options(&[("call_timeout_ms", Value::U64(500))]);
    let e = by.fails("infinite loop", &c, wat::SPIN, opts, "spin").await;
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    assert!(
        e.trace().is_some_and(|t| t.contains("spin")),
        "wasm backtrace kept: {e}"
    );

    let opts = options(&[("fuel", Value::U64(10_000_000))]);
    let e = by
        .fails("infinite loop with fuel", &c, wat::SPIN, opts, "spin")
        .await;
    assert_eq!(e.kind(), ErrorKind::OutOfFuel, "{e}");

    let opts = options(&[("memory", Value::U64(16 << 20))]);
    let e = by
        .fails("memory.grow bomb", &c, wat::GROW_BOMB, opts, "grow")
        .await;
    assert_eq!(e.kind(), ErrorKind::Limit, "{e}");
    assert!(e.message().contains("limit"), "{e}");

    let module = c.upload(wat::RECURSE.as_bytes()).await.unwrap();
    let recursing = c.instantiate(&module, Value::Unit).await.unwrap();
    let e = by
        .during("stack overflow", recursing.call::<i32>("down", (0,)))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Trapped, "{e}");
    assert!(e.message().contains("stack overflow"), "{e}");

    let opts = Value::Unit;
    let e = by
        .fails("unreachable", &c, wat::UNREACHABLE, opts, "boom")
        .await;
    assert_eq!(e.kind(), ErrorKind::Trapped, "{e}");
    assert!(e.message().contains("unreachable"), "{e}");
    assert!(
        e.trace()
            .is_some_and(|t| t.contains("inner") && t.contains("outer")),
        "{e}"
    );

    let (cb, mut rx) = output_channel();
    let module = c.upload(wat::FLOOD.as_bytes()).await.unwrap();
    let flooding = c
        .instantiate(
            &module,
            options(&[("output", cb.into()), ("max_output", Value::U64(1 << 20))]),
        )
        .await
        .unwrap();
    let r: i32 = by
        .during("100 MiB stdout flood", flooding.call("flood", ()))
        .await
        .unwrap();
    assert_eq!(r, 0);
    let mut got = Vec::new();
    while let Ok((_, bytes, _)) = rx.try_recv() {
        got.extend(bytes);
    }
    assert!(
        got.len() <= (1 << 20) + 100,
        "captured {} bytes past a 1 MiB cap",
        got.len()
    );
    assert!(
        String::from_utf8_lossy(&got[got.len() - 60..]).contains("output truncated"),
        "marker at the end"
    );

    let too_big = [b"\0asm\x01\0\0\0".as_slice(), &vec![0u8; 2 << 20]].concat();
    let e = by
        .during("module over the size cap", c.upload(&too_big))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Limit, "{e}");
    assert!(e.message().contains("limit"), "{e}");

    let e = by
        .during("invalid wasm", c.upload(b"\0asm\x01\0\0\0\x99garbage"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadArgument, "{e}");
    let e = by
        .during("not wasm or wat at all", c.upload(b"this is not a module"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadArgument, "{e}");

    let e = by
        .during("missing import", c.upload(wat::IMPORTS_ENV_FOO.as_bytes()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadArgument, "{e}");
    assert!(e.message().contains("env::foo"), "{e}");

    // Nothing leaked. Of the instances the hostile client made, it holds two (the
    // stack-overflow and flood ones); the others went with their netrefs. Once it lets go
    // of those two, only the bystander's instance is left, and none once it leaves.
    assert!(
        node.node.stats().live_instances >= 3,
        "the held ones are alive"
    );
    drop((recursing, flooding));
    common::eventually(async || node.node.stats().live_instances == 1).await;
    by.stop().await;
    common::eventually(async || node.node.stats().live_instances == 0).await;
    assert!(
        !c.conn.is_closed(),
        "hostile guests never cost the client its connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_guest_does_not_slow_another_connection() {
    let node = TestNode::start().await;
    let spinner = node.client().await;
    let inst = spinner.instance_of(wat::SPIN).await;
    let spinning = tokio::spawn(async move { inst.call_value("spin", vec![]).await });
    // The spinner is running once the node counts its call.
    common::eventually(async || node.node.info().calls == 1).await;

    let other = node.client().await;
    let add = other.instance_of(wat::ADD).await;
    let start = tokio::time::Instant::now();
    for i in 0..100 {
        let r: i32 = add.call("add", (i, 1)).await.unwrap();
        assert_eq!(r, i + 1);
    }
    let took = start.elapsed();
    assert!(!spinning.is_finished(), "the spinner is still running");
    assert!(
        took < Duration::from_secs(10),
        "100 calls took {took:?} beside a spinning guest"
    );
    spinner.conn.close();
    let e = spinning.await.unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Disconnected);
}

/// A TCP relay to `node` that forwards the client's bytes always and the node's replies
/// only until `deaf` is set: past that point the client has, to the node, stopped reading.
async fn deafening_relay(node: &str, deaf: Arc<AtomicBool>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let node = node.to_owned();
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let upstream = tokio::net::TcpStream::connect(&node).await.unwrap();
        let (mut cr, mut cw) = client.into_split();
        let (mut ur, mut uw) = upstream.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut cr, &mut uw).await;
        });
        let mut buf = vec![0u8; 16 * 1024];
        while !deaf.load(Ordering::SeqCst) {
            let n = match tokio::time::timeout(Duration::from_millis(5), ur.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => return,
                Ok(Ok(n)) => n,
                Err(_) => continue,
            };
            if cw.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
        // Deaf: hold both sockets open and read nothing more from the node.
        std::future::pending::<()>().await;
        drop((ur, cw));
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_disconnected_and_its_instances_freed() {
    let mut config = rwc_node::NodeConfig::default();
    config.limits.max_queued_bytes = 1 << 20;
    config.limits.stall_timeout_ms = 1000;
    let node = TestNode::start_with(config).await;
    let bystander = Bystander::start(&node).await;

    let deaf = Arc::new(AtomicBool::new(false));
    let relay = deafening_relay(&node.addr, deaf.clone()).await;
    let conn = common::try_connect(relay.as_str()).await.unwrap();
    let module: rwc_protocol::NetRef = conn
        .root()
        .call(
            "upload",
            (serde_bytes::ByteBuf::from(
                &b"(module (memory (export \"memory\") 16))"[..],
            ),),
        )
        .await
        .unwrap();
    let inst: rwc_protocol::NetRef = conn
        .root()
        .call("instantiate", (module, Value::Unit))
        .await
        .unwrap();
    assert_eq!(node.node.stats().live_instances, 2);

    // From now on the client asks for 200 MiB of memory reads and reads none of it.
    deaf.store(true, Ordering::SeqCst);
    let greedy: Vec<_> = (0..200)
        .map(|_| {
            inst.call_with(
                "rwc.read_memory",
                vec![Value::U64(0), Value::U64(1 << 20)],
                rwc_protocol::CallOptions::timeout(Duration::from_secs(60)),
            )
        })
        .collect();

    // The node drops it once it has read nothing for the stall timeout, which frees its
    // instance; the other client was answered throughout.
    bystander
        .during("a client that stopped reading", async {
            common::eventually(async || node.node.stats().live_instances == 1).await;
        })
        .await;
    bystander.stop().await;
    drop(greedy);
}
