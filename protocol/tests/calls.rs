//! Calls by value, typed calls, callbacks, errors and panics, over real TCP.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Server, calc};
use futures::FutureExt;
use rwc_protocol::{ConnectionConfig, ErrorKind, NetRef, Ref, Service, Value, callable};

#[tokio::test]
async fn every_value_kind_round_trips_by_value() {
    let server = Server::start(calc).await;
    let conn = server.connect().await;
    let root = conn.root();
    let nested = Value::Map(vec![
        (
            Value::String("list".into()),
            Value::List(vec![Value::U64(1), Value::I64(-2), Value::F64(0.5)]),
        ),
        (
            Value::I64(7),
            Value::Map(vec![(Value::Bool(true), Value::Bytes(vec![0, 255].into()))]),
        ),
        (
            Value::Unit,
            Value::List(vec![Value::List(vec![Value::List(vec![])])]),
        ),
    ]);
    let samples = vec![
        Value::Unit,
        Value::Bool(false),
        Value::I64(i64::MIN),
        Value::U64(u64::MAX),
        Value::F64(f64::NAN),
        Value::F64(-0.0),
        Value::String("héllo, wörld".into()),
        Value::Bytes(vec![1, 2, 3].into()),
        Value::List(vec![Value::Unit, Value::String("x".into())]),
        nested,
        Value::Bytes((0..16 * 1024 * 1024).map(|i| (i % 251) as u8).collect()),
    ];
    for v in samples {
        let back = root.call_value("echo", vec![v.clone()]).await.unwrap();
        assert_eq!(back, v, "{} did not round-trip", v.type_name());
    }
}

#[tokio::test]
async fn typed_call_and_unknown_method() {
    let server = Server::start(calc).await;
    let conn = server.connect().await;
    let sum: u64 = conn.root().call("add", (2, 3)).await.unwrap();
    assert_eq!(sum, 5);

    let err = conn.root().call::<u64>("mul", (2, 3)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unimplemented);
    assert!(
        err.message().contains("no method `mul`") && err.message().contains("add"),
        "{err}"
    );

    let err = conn
        .root()
        .call::<u64>("add", ("two", 3))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadArgument, "{err}");

    let methods = conn.root().methods().await.unwrap();
    let names: Vec<_> = methods.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["add", "echo", "fail"]);
}

#[tokio::test]
async fn callback_passed_as_argument_is_invoked_during_the_call() {
    let server = Server::start(|| {
        Service::new("svc")
            .method("each", |(items, cb): (Vec<String>, NetRef)| async move {
                let mut total = 0usize;
                for item in items {
                    total += cb.call::<usize>("call", (item,)).await?;
                }
                Ok(total)
            })
            .into_object()
    })
    .await;
    let conn = server.connect().await;
    let seen = Arc::new(AtomicUsize::new(0));
    let seen2 = seen.clone();
    let cb = callable(move |(s,): (String,)| {
        let seen = seen2.clone();
        async move {
            seen.fetch_add(1, Ordering::SeqCst);
            Ok(s.len())
        }
    });
    let total: usize = conn
        .root()
        .call("each", (vec!["a", "bb", "ccc"], cb))
        .await
        .unwrap();
    assert_eq!(total, 6);
    assert_eq!(seen.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn remote_error_keeps_kind_message_and_trace() {
    let server = Server::start(calc).await;
    let conn = server.connect().await;
    let err = conn.root().call::<()>("fail", ()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert_eq!(err.message(), "it broke");
    assert_eq!(err.trace(), Some("frame 0: fail\nframe 1: caller"));
    assert!(err.is_remote());
    let shown = err.to_string();
    assert!(
        shown.contains("remote error (failed): it broke") && shown.contains("frame 1: caller"),
        "{shown}"
    );
}

#[tokio::test]
async fn panic_fails_only_that_call() {
    let server = Server::start(|| {
        Service::new("svc")
            .method("boom", |(): ()| async move {
                if true {
                    panic!("kaboom {}", 42);
                }
                Ok(())
            })
            .method("ok", |(): ()| async move { Ok("fine") })
            .into_object()
    })
    .await;
    let conn = server.connect().await;
    let err = conn.root().call::<()>("boom", ()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert!(err.message().contains("panicked: kaboom 42"), "{err}");
    let ok: String = conn.root().call("ok", ()).await.unwrap();
    assert_eq!(ok, "fine");
    assert!(!conn.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_async_calls_in_flight() {
    // Far more than the default bound on calls in flight: a server may allow that many.
    let config = ConnectionConfig {
        max_calls_in_flight: 10_000,
        ..ConnectionConfig::default()
    };
    let server = Server::start_with(config, || {
        Service::new("svc")
            .method("double", |(n,): (u64,)| async move {
                // Yield so that calls really overlap on the server.
                tokio::task::yield_now().await;
                Ok(n * 2)
            })
            .into_object()
    })
    .await;
    let conn = server.connect().await;
    let root = conn.root();
    let pending: Vec<_> = (0..10_000u64)
        .map(|i| root.call_async("double", (i,)))
        .collect();
    let results = futures::future::join_all(pending).await;
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap(), Value::U64(i as u64 * 2));
    }
}

#[tokio::test]
async fn pending_call_can_be_polled_waited_or_given_a_callback() {
    let server = Server::start(|| {
        Service::new("svc")
            .method("later", |(ms,): (u64,)| async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(ms)
            })
            .into_object()
    })
    .await;
    let conn = server.connect().await;
    let root = conn.root();

    // Not ready until the server answers, 100 ms on; ready from then on, with the result
    // there to take without waiting.
    let start = tokio::time::Instant::now();
    let mut p = root.call_async("later", (100,));
    while !p.is_ready() {
        assert!(start.elapsed() < Duration::from_secs(5), "never ready");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(
        start.elapsed() >= Duration::from_millis(100),
        "ready after {:?}, before the server answered",
        start.elapsed()
    );
    assert!(p.is_ready() && !p.expired());
    assert_eq!(p.now_or_never().unwrap().unwrap(), Value::U64(100));

    let err = root
        .call_async("later", (2_000,))
        .wait_timeout(Duration::from_millis(50))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    let ok = root
        .call_async("later", (10,))
        .wait_timeout(Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(ok, Value::U64(10));

    let (tx, rx) = tokio::sync::oneshot::channel();
    root.call_async("later", (20,)).on_complete(move |r| {
        let _ = tx.send(r);
    });
    assert_eq!(rx.await.unwrap().unwrap(), Value::U64(20));
}

#[tokio::test]
async fn raw_wire_refs_cannot_be_sent() {
    let server = Server::start(calc).await;
    let conn = server.connect().await;
    let err = conn
        .root()
        .call_value(
            "echo",
            vec![Value::Ref(Ref::Wire(rwc_protocol::WireRef::Sender(1)))],
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadArgument);
    let sum: u64 = conn.root().call("add", (1, 1)).await.unwrap();
    assert_eq!(sum, 2, "a refused send leaves the connection usable");
}
