//! Closing: pending calls fail with `disconnected`, netrefs say the connection is closed,
//! both sides' tables are empty; ping/pong for liveness.

mod common;

use std::time::Duration;

use common::{Server, eventually};
use rwc_protocol::{ConnectionStats, ErrorKind, NetRef, Service, callable};

fn service() -> NetRef {
    Service::new("svc")
        .method("hang", |(): ()| async move {
            std::future::pending::<()>().await;
            Ok(())
        })
        .method("object", |(): ()| async move {
            Ok(Service::new("inner").into_object())
        })
        .method("keep", |(cb,): (NetRef,)| async move {
            // Holds the callback for as long as the call runs.
            let _held = cb;
            std::future::pending::<()>().await;
            Ok(())
        })
        .into_object()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_closing_mid_call_fails_pending_calls() {
    let server = Server::start(service).await;
    let conn = server.connect().await;
    let root = conn.root();
    let inner: NetRef = root.call("object", ()).await.unwrap();
    let hung = root.call_async("hang", ());
    let hung_with_cb = root.call_async("keep", (callable(|(): ()| async move { Ok(()) }),));
    let s = server.server_side(0).await;
    eventually(|| async { (s.stats().answers == 2).then_some(()) }).await;
    assert_eq!(s.stats().exports, 2, "root + inner");
    assert_eq!(conn.stats().exports, 2, "root + callback");

    s.close();
    let err = hung.await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Disconnected, "{err}");
    assert_eq!(
        hung_with_cb.await.unwrap_err().kind(),
        ErrorKind::Disconnected
    );

    let err = inner.call::<()>("anything", ()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Disconnected);
    assert!(err.message().contains("closed"), "{err}");

    let empty = ConnectionStats::default();
    eventually(|| async { (conn.is_closed() && conn.stats() == empty).then_some(()) }).await;
    assert_eq!(s.stats(), empty);
    assert!(
        conn.close_reason()
            .unwrap()
            .message()
            .contains("peer closed"),
        "{:?}",
        conn.close_reason()
    );
}

#[tokio::test]
async fn closing_locally_fails_our_calls_and_frees_the_peer() {
    let server = Server::start(service).await;
    let conn = server.connect().await;
    let root = conn.root();
    let hung = root.call_async("hang", ());
    let s = server.server_side(0).await;
    eventually(|| async { (s.stats().answers == 1).then_some(()) }).await;
    conn.close();
    assert_eq!(hung.await.unwrap_err().kind(), ErrorKind::Disconnected);
    eventually(|| async {
        (s.is_closed() && s.stats() == ConnectionStats::default()).then_some(())
    })
    .await;
    let reason = s.closed().await;
    assert_eq!(reason.kind(), ErrorKind::Disconnected);
}

#[tokio::test]
async fn dropping_every_handle_closes_the_connection() {
    let server = Server::start(service).await;
    let conn = server.connect().await;
    let root = conn.root();
    drop(conn);
    // A proxy still holds the connection open.
    let _: NetRef = root.call("object", ()).await.unwrap();
    drop(root);
    let s = server.server_side(0).await;
    eventually(|| async { s.is_closed().then_some(()) }).await;
}

#[tokio::test]
async fn ping_measures_a_round_trip() {
    let server = Server::start(service).await;
    let conn = server.connect().await;
    let rtt = conn.ping().await.unwrap();
    assert!(rtt < Duration::from_secs(5));
    conn.close();
    assert_eq!(
        conn.ping().await.unwrap_err().kind(),
        ErrorKind::Disconnected
    );
}
