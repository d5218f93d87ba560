//! Guests built with the SDK, through a real node on 127.0.0.1: typed values, guest objects
//! as netrefs, guest→client callbacks with reentrancy, capabilities, and guests that break
//! the ABI.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rwc_client::api::module::AbiKind;
use rwc_client::{Client, ErrorKind, Instance, InstanceOptions, NetRef, Value};
use rwc_node::server::Server;
use rwc_node::{Node, NodeConfig};
use rwc_protocol::callable;
use rwc_tests::wordcount::{Point, Record, Shape};
use rwc_tests::{guest_bytes, guests};
use serde::Serialize;
use serde_bytes::ByteBuf;

/// A node in this process, serving on an ephemeral port.
async fn node() -> String {
    node_with(NodeConfig::default()).await
}

/// A node with `config`, in this process.
async fn node_with(config: NodeConfig) -> String {
    let node = Node::new(config).unwrap();
    let server = Server::bind(node, "127.0.0.1:0").await.unwrap();
    let addr = server.address().to_owned();
    tokio::spawn(server.run(std::future::pending()));
    addr
}

/// What introspection of `netref` lists, by name.
async fn method_names(netref: &NetRef) -> Vec<String> {
    let methods = netref.methods().await.unwrap();
    methods.into_iter().map(|m| m.name).collect()
}

async fn instance(client: &Client, path: &str, options: InstanceOptions) -> Instance {
    let module = client.upload(&guest_bytes(path)).await.unwrap();
    client.instantiate(&module, options).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_values_round_trip_through_a_guest() {
    let client = Client::connect(&node().await).await.unwrap();
    let wc = instance(&client, guests::WORDCOUNT, InstanceOptions::default()).await;

    let counts: BTreeMap<String, u32> = wc
        .call("word_count", ("the cat and the hat",))
        .await
        .unwrap();
    assert_eq!(counts.get("the"), Some(&2));
    assert_eq!(counts.get("hat"), Some(&1));

    let record = Record {
        name: "räksmörgås".into(),
        count: -42,
        ratio: 0.125,
        flags: vec![true, false],
        tags: [("a".to_owned(), 1), ("b".to_owned(), u32::MAX)].into(),
        shape: Shape::Rect {
            width: 3,
            height: 4,
        },
        data: ByteBuf::from(vec![0, 1, 254, 255]),
        maybe: None,
        points: vec![Point { x: -1, y: 2 }],
    };
    let back: Record = wc.call("roundtrip", (record.clone(),)).await.unwrap();
    assert_eq!(back, record);
    for shape in [
        Shape::Empty,
        Shape::Circle(1.5),
        Shape::Segment(Point { x: 0, y: 0 }, Point { x: 3, y: 4 }),
        Shape::Rect {
            width: 2,
            height: 5,
        },
    ] {
        let back: Shape = wc.call("roundtrip_shape", (shape.clone(),)).await.unwrap();
        assert_eq!(back, shape);
    }
    let area: f64 = wc
        .call(
            "area",
            (Shape::Rect {
                width: 2,
                height: 5,
            },),
        )
        .await
        .unwrap();
    assert_eq!(area, 10.0);

    let mib: Vec<u8> = (0..1 << 20).map(|i| (i % 253) as u8).collect();
    let reversed: ByteBuf = wc
        .call("reverse_bytes", (ByteBuf::from(mib.clone()),))
        .await
        .unwrap();
    assert_eq!(reversed.len(), mib.len());
    assert!(reversed.iter().eq(mib.iter().rev()));

    let nested = Value::Map(vec![(
        Value::from("k"),
        Value::List(vec![Value::I64(-1), Value::Bytes(vec![9].into())]),
    )]);
    assert_eq!(
        wc.call_value("echo", vec![nested.clone()]).await.unwrap(),
        nested
    );

    // Result::Err and wrong arity come back as errors naming what went wrong.
    let e = wc.call::<()>("fail", ("no luck",)).await.unwrap_err();
    assert_eq!((e.kind(), e.message()), (ErrorKind::Failed, "no luck"));
    let e = wc.call::<()>("word_count", ()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadArgument);
    assert!(
        e.message().contains("word_count") && e.message().contains("1 argument"),
        "{e}"
    );

    let exports = wc.exports().await.unwrap();
    let rich: Vec<&str> = exports
        .iter()
        .filter(|e| e.abi == AbiKind::Rich)
        .map(|e| e.name.as_str())
        .collect();
    assert!(
        rich.contains(&"word_count") && rich.contains(&"roundtrip"),
        "{rich:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_panic_message_reaches_the_client() {
    let client = Client::connect(&node().await).await.unwrap();
    let wc = instance(&client, guests::WORDCOUNT, InstanceOptions::default()).await;
    let e = wc
        .call::<()>("panic_now", ("the sky is falling",))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Trapped);
    for part in ["guest panicked", "the sky is falling"] {
        assert!(e.message().contains(part), "{e}");
    }
    // The instance is still usable after the trap.
    let counts: BTreeMap<String, u32> = wc.call("word_count", ("still here",)).await.unwrap();
    assert_eq!(counts.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_object_keeps_state_and_is_freed_with_its_netref() {
    let client = Client::connect(&node().await).await.unwrap();
    let guest = instance(&client, guests::COUNTER, InstanceOptions::default()).await;
    let counter: NetRef = guest.call("new_counter", (10,)).await.unwrap();
    let mut last = 0i64;
    for _ in 0..1000 {
        last = counter.call("incr", (1,)).await.unwrap();
    }
    assert_eq!(last, 1010);
    assert_eq!(counter.call::<i64>("get", ()).await.unwrap(), 1010);
    assert_eq!(guest.call::<u32>("live", ()).await.unwrap(), 1);
    let e = counter.call::<i64>("decr", ()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unimplemented);

    drop(counter);
    let dropped = async || guest.call::<u32>("live", ()).await.unwrap() == 0;
    support::eventually(
        Duration::from_secs(10),
        "the guest drops its object",
        dropped,
    )
    .await;
    // The numeric export sees the same state without the rich ABI.
    assert_eq!(guest.call::<i64>("live_counters", ()).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_calls_a_client_callback_a_thousand_times() {
    let client = Client::connect(&node().await).await.unwrap();
    let guest = instance(&client, guests::PROGRESS, InstanceOptions::default()).await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let cb = callable(move |(percent,): (u64,)| {
        s.lock().unwrap().push(percent);
        async move { Ok(()) }
    });
    let steps: u32 = guest.call("run", (1000, cb)).await.unwrap();
    assert_eq!(steps, 1000);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1000);
    assert!(seen.windows(2).all(|w| w[0] <= w[1]) && seen.last() == Some(&100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_callback_calls_back_into_the_same_instance() {
    let client = Client::connect(&node().await).await.unwrap();
    let guest = instance(&client, guests::PROGRESS, InstanceOptions::default()).await;
    let calls = Arc::new(AtomicU64::new(0));
    let (g, c) = (guest.clone(), calls.clone());
    // During `ping_back`, each callback calls `inc` on the very instance that is waiting.
    let cb = callable(move |(i,): (u64,)| {
        let (g, c) = (g.clone(), c.clone());
        async move {
            c.fetch_add(1, Ordering::SeqCst);
            g.call::<u64>("inc", (i,)).await
        }
    });
    let n = 1000u64;
    let sum: u64 = guest.call("ping_back", (n, cb)).await.unwrap();
    assert_eq!(sum, n * (n + 1) / 2);
    assert_eq!(calls.load(Ordering::SeqCst), n);

    // The guest hands the client's own callback back: identity is kept.
    let mine = callable(|(): ()| async move { Ok(()) });
    let back: NetRef = guest.call("hand_back", (mine.clone(),)).await.unwrap();
    assert!(back.is_local() && back.same_object(&mine));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nesting_past_the_engines_fiber_stacks_is_overloaded_not_a_trap() {
    // Every running call, and every call nested inside one, takes one of the engine's
    // fiber stacks: a node with room for 2 instances has 2.
    let mut config = NodeConfig::default();
    config.limits.max_instances = 2;
    let client = Client::connect(&node_with(config).await).await.unwrap();
    let guest = instance(&client, guests::PROGRESS, InstanceOptions::default()).await;
    let innermost = Arc::new(std::sync::Mutex::new(None));
    let (g, seen) = (guest.clone(), innermost.clone());
    // The third level: `inc` inside `ping_back` inside `ping_back`.
    let deepest = callable(move |(i,): (u64,)| {
        let (g, seen) = (g.clone(), seen.clone());
        async move {
            let r = g.call::<u64>("inc", (i,)).await;
            *seen.lock().unwrap() = Some(r.clone());
            r
        }
    });
    let g = guest.clone();
    let middle = callable(move |(_,): (u64,)| {
        let (g, deepest) = (g.clone(), deepest.clone());
        async move { g.call::<u64>("ping_back", (1u32, deepest)).await }
    });
    let outer = guest.call::<u64>("ping_back", (1u32, middle)).await;
    assert!(outer.is_err(), "{outer:?}");
    let err = innermost.lock().unwrap().take().unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Overloaded, "{err}");
    assert!(
        err.message().contains("(max_instances)") && err.message().contains("fibers"),
        "{err}"
    );
    // The instance is fine once the nesting unwinds.
    assert_eq!(guest.call::<u64>("inc", (1u64,)).await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_are_reached_only_when_handed_over() {
    let client = Client::connect(&node().await).await.unwrap();
    let bare = instance(&client, guests::SYSREPORT, InstanceOptions::default()).await;
    let e = bare.call::<Value>("report", ()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
    assert!(e.message().contains("sys"), "{e}");

    let options = InstanceOptions {
        capabilities: vec!["sys".into()],
        ..Default::default()
    };
    let granted = instance(&client, guests::SYSREPORT, options).await;
    let report = granted.call_value("report", vec![]).await.unwrap();
    assert_eq!(
        report.get("os").and_then(Value::as_str),
        Some(std::env::consts::OS)
    );
    assert!(
        report
            .get("cpu_count")
            .and_then(Value::as_u64)
            .is_some_and(|n| n >= 1)
    );
    assert!(report.get("memory").and_then(|m| m.get("total")).is_some());
    let e = granted
        .call::<String>("report_denied", ())
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::Denied,
        "only what was handed over: {e}"
    );

    // A client granted `sys` by the node's config can call it directly too.
    let sys: NetRef = client.root().call("capability", ("sys",)).await.unwrap();
    assert_eq!(
        sys.call::<String>("os", ()).await.unwrap(),
        std::env::consts::OS
    );
    // Asking the node for a capability it does not have is a clear error.
    let e = client
        .instantiate(
            &client
                .upload(&guest_bytes(guests::SYSREPORT))
                .await
                .unwrap(),
            InstanceOptions {
                capabilities: vec!["fs".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadArgument, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_written_in_wat_against_the_abi_doc() {
    let client = Client::connect(&node().await).await.unwrap();
    let hello = instance(&client, guests::HELLO_WAT, InstanceOptions::default()).await;
    assert_eq!(hello.call::<String>("hello", ()).await.unwrap(), "hello");
    let args = hello
        .call_value("args", vec![Value::I64(1), Value::from("x")])
        .await
        .unwrap();
    assert_eq!(args, Value::List(vec![Value::I64(1), Value::from("x")]));
    let e = hello.call::<()>("fail", ()).await.unwrap_err();
    assert_eq!((e.kind(), e.message()), (ErrorKind::Failed, "nope"));
    assert_eq!(hello.call::<i32>("add", (2, 3)).await.unwrap(), 5);
}

/// A guest that breaks the ABI on purpose.
const HOSTILE: &str = r#"(module
  (import "rwc" "call" (func $call (param i64 i32 i32) (result i32)))
  (import "rwc" "take_result" (func $take (param i32 i32)))
  (import "rwc" "release" (func $release (param i64)))
  (memory (export "memory") 1)
  ;; An encoded request ("x", []): string of length 1, then an empty argument list.
  (data (i32.const 16) "\01x\00")
  (global $next (mut i32) (i32.const 1024))
  (func (export "rwc_alloc") (param i32) (result i32) (local $p i32)
    (local.set $p (global.get $next))
    (global.set $next (i32.add (global.get $next) (local.get 0)))
    (local.get $p))
  (func (export "rwc_dealloc") (param i32 i32))
  ;; Calls a handle it was never given, and returns what the node answered.
  (func (export "rwc_export_forge") (param i32 i32) (result i64) (local $n i32)
    (local.set $n (call $call (i64.const 999) (i32.const 16) (i32.const 3)))
    (call $take (i32.const 4096) (local.get $n))
    (i64.or (i64.shl (i64.const 4096) (i64.const 32)) (i64.extend_i32_u (local.get $n))))
  ;; Returns a buffer far outside its 64 KiB memory.
  (func (export "rwc_export_oob") (param i32 i32) (result i64) (i64.const 0xFFFF000000000064))
  ;; Returns three bytes that are not an encoded result.
  (func (export "rwc_export_garbage") (param i32 i32) (result i64) (i64.const 0x0000001000000003))
  ;; Releases a handle it does not hold.
  (func (export "rwc_export_bad_release") (param i32 i32) (result i64) (call $release (i64.const 12345)) (i64.const 0))
  (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_that_break_the_abi_get_clear_errors_and_the_node_goes_on() {
    let client = Client::connect(&node().await).await.unwrap();
    let module = client.upload(HOSTILE.as_bytes()).await.unwrap();
    let guest = client
        .instantiate(&module, InstanceOptions::default())
        .await
        .unwrap();

    let e = guest.call::<()>("forge", ()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadArgument, "{e}");
    assert!(e.message().contains("handle 999"), "{e}");

    let e = guest.call::<()>("oob", ()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadArgument, "{e}");
    assert!(e.message().contains("outside the guest's"), "{e}");

    let e = guest.call::<()>("garbage", ()).await.unwrap_err();
    assert!(e.message().contains("malformed result"), "{e}");

    let e = guest.call::<()>("bad_release", ()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Trapped, "{e}");
    assert!(e.message().contains("12345"), "{e}");

    // The same instance, and the node, keep working.
    assert_eq!(guest.call::<i32>("add", (2, 2)).await.unwrap(), 4);
    let other = instance(&client, guests::WORDCOUNT, InstanceOptions::default()).await;
    let counts: BTreeMap<String, u32> = other.call("word_count", ("ok",)).await.unwrap();
    assert_eq!(counts.get("ok"), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_println_and_log_lines_reach_the_caller() {
    let client = Client::connect(&node().await).await.unwrap();
    let lines = Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let sink = lines.clone();
    let output = rwc_client::OutputHandler::new(move |stream, bytes| {
        sink.lock().unwrap().push((
            stream.to_owned(),
            String::from_utf8_lossy(bytes).into_owned(),
        ));
    });
    let options = InstanceOptions {
        output: Some(output.into()),
        capabilities: vec!["log".into()],
        ..Default::default()
    };
    let wc = instance(&client, guests::WORDCOUNT, options).await;
    let n: u64 = wc.call("shout", ("hi there",)).await.unwrap();
    assert_eq!(n, 8);
    // Flushed before the call returned: everything is here already.
    let lines = lines.lock().unwrap().clone();
    let text = |s: &str| {
        lines
            .iter()
            .filter(|(st, _)| st == s)
            .map(|(_, t)| t.as_str())
            .collect::<String>()
    };
    assert_eq!(text("stdout"), "stdout: hi there\n");
    assert_eq!(text("stderr"), "stderr: hi there\n");
    assert!(text("log").contains("[info] logged: hi there"), "{lines:?}");
}

/// The same escape-time computation as the mandelbrot guest, natively.
fn native_tile(width: u32, height: u32, rows: std::ops::Range<u32>, max_iter: u32) -> Vec<u8> {
    let coord = |i: u32, n: u32, min: f64, max: f64| {
        min + (max - min) * (f64::from(i) + 0.5) / f64::from(n)
    };
    let mut out = Vec::new();
    for row in rows {
        let cy = coord(row, height, -1.5, 1.5);
        for col in 0..width {
            let cx = coord(col, width, -2.0, 1.0);
            let (mut x, mut y, mut i) = (0.0f64, 0.0f64, 0u32);
            while i < max_iter && x * x + y * y <= 4.0 {
                let xt = x * x - y * y + cx;
                y = 2.0 * x * y + cy;
                x = xt;
                i += 1;
            }
            out.push(u8::try_from(i).unwrap_or(u8::MAX));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mandelbrot_tiles_match_a_native_render() {
    #[derive(Serialize)]
    struct Tile {
        width: u32,
        height: u32,
        row_start: u32,
        row_end: u32,
        x_min: f64,
        x_max: f64,
        y_min: f64,
        y_max: f64,
        max_iter: u32,
    }
    let client = Client::connect(&node().await).await.unwrap();
    let m = instance(&client, guests::MANDELBROT, InstanceOptions::default()).await;
    let (w, h) = (96, 64);
    let mut image = Vec::new();
    for band in (0..h).step_by(16) {
        let tile = Tile {
            width: w,
            height: h,
            row_start: band,
            row_end: band + 16,
            x_min: -2.0,
            x_max: 1.0,
            y_min: -1.5,
            y_max: 1.5,
            max_iter: 200,
        };
        let bytes: ByteBuf = m.call("render", (tile,)).await.unwrap();
        assert_eq!(bytes.len(), (w * 16) as usize);
        image.extend(bytes.into_vec());
    }
    assert_eq!(image, native_tile(w, h, 0..h, 200));
    assert!(
        image.contains(&200) && image.iter().any(|&p| p < 5),
        "inside and outside both present"
    );
    let bad = Tile {
        width: w,
        height: h,
        row_start: 10,
        row_end: 100,
        x_min: -2.0,
        x_max: 1.0,
        y_min: -1.5,
        y_max: 1.5,
        max_iter: 10,
    };
    let e = m.call::<ByteBuf>("render", (bad,)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Failed);
    assert!(e.message().contains("rows 10..100"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_object_describes_its_own_methods() {
    let client = Client::connect(&node().await).await.unwrap();
    let guest = instance(&client, guests::COUNTER, InstanceOptions::default()).await;
    let counter: NetRef = guest.call("new_counter", (0,)).await.unwrap();
    let names = method_names(&counter).await;
    assert!(
        names.contains(&"incr".to_owned()) && names.contains(&"get".to_owned()),
        "{names:?}"
    );
    // The instance lists its exports as methods too.
    let names = method_names(guest.netref()).await;
    assert!(
        names.contains(&"new_counter".to_owned()) && names.contains(&"rwc.close".to_owned()),
        "{names:?}"
    );
}
