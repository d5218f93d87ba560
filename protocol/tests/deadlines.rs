//! Deadlines and cancellation: expiry gives `timed out` on time and the peer sees the
//! cancel; dropping a call's future cancels the remote work; late replies are harmless.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Server;
use rwc_protocol::{CallOptions, ErrorKind, NetRef, Service, Value};
use tokio::sync::Notify;

/// Sets the notify when dropped: tells the test the remote work was cancelled.
struct OnDrop(Arc<Notify>);
impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

fn slow(cancelled: Arc<Notify>) -> NetRef {
    Service::new("slow")
        .method("sleep", move |(ms,): (u64,)| {
            let guard = OnDrop(cancelled.clone());
            async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                std::mem::forget(guard);
                Ok(ms)
            }
        })
        .method("quick", |(): ()| async move { Ok(1u8) })
        .into_object()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_expiry_is_on_time_and_cancels_the_peer() {
    let cancelled = Arc::new(Notify::new());
    let c = cancelled.clone();
    let server = Server::start(move || slow(c.clone())).await;
    let conn = server.connect().await;
    let deadline = Duration::from_millis(500);
    let start = Instant::now();
    let err = conn
        .root()
        .call_with(
            "sleep",
            vec![Value::U64(10_000)],
            CallOptions::deadline(deadline),
        )
        .await
        .unwrap_err();
    let took = start.elapsed();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert!(
        took >= deadline && took <= deadline + deadline / 10,
        "timed out after {took:?}, deadline {deadline:?}"
    );
    tokio::time::timeout(Duration::from_secs(5), cancelled.notified())
        .await
        .expect("the server saw the cancel and dropped the work");
    let s = server.server_side(0).await;
    // The server's own copy of the deadline may have dropped the work an instant before
    // the cancel came; its task then forgets the call right after.
    common::eventually(|| async { (s.stats().answers == 0).then_some(()) }).await;
    assert_eq!(conn.stats().questions, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_default_deadline_applies() {
    let cancelled = Arc::new(Notify::new());
    let c = cancelled.clone();
    let server = Server::start(move || slow(c.clone())).await;
    let config = rwc_protocol::ConnectionConfig {
        default_deadline: Some(Duration::from_millis(200)),
        ..Default::default()
    };
    let conn =
        rwc_protocol::transport::connect_tcp(server.addr, Service::new("c").into_object(), config)
            .await
            .unwrap();
    let err = conn
        .root()
        .call::<u64>("sleep", (5_000,))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    // Per-call override beats the default.
    let ok = conn
        .root()
        .call_with(
            "sleep",
            vec![Value::U64(300)],
            CallOptions::deadline(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    assert_eq!(ok, Value::U64(300));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_future_cancels_remote_work() {
    let cancelled = Arc::new(Notify::new());
    let c = cancelled.clone();
    let server = Server::start(move || slow(c.clone())).await;
    let conn = server.connect().await;
    let root = conn.root();
    tokio::select! {
        _ = root.call::<u64>("sleep", (10_000,)) => panic!("should not finish"),
        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
    }
    tokio::time::timeout(Duration::from_secs(5), cancelled.notified())
        .await
        .expect("dropping the future cancelled the remote work");
    assert_eq!(conn.stats().questions, 0);
    let one: u8 = root.call("quick", ()).await.unwrap();
    assert_eq!(one, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_reply_is_discarded_safely() {
    // The server finishes at 150 ms; the client gave up at 100 ms. The late Return must be
    // ignored and the connection stay healthy.
    let server = Server::start(|| {
        Service::new("late")
            .method("sleep", |(ms,): (u64,)| async move {
                // Ignore cancellation: finish anyway, so a late reply is really sent.
                tokio::task::spawn(tokio::time::sleep(Duration::from_millis(ms)))
                    .await
                    .ok();
                Ok(ms)
            })
            .method("quick", |(): ()| async move { Ok(7u8) })
            .into_object()
    })
    .await;
    let conn = server.connect().await;
    let root = conn.root();
    for _ in 0..5 {
        let err = root
            .call_with(
                "sleep",
                vec![Value::U64(150)],
                CallOptions::deadline(Duration::from_millis(100)),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let seven: u8 = root.call("quick", ()).await.unwrap();
    assert_eq!(seven, 7);
    assert!(!conn.is_closed());
}
