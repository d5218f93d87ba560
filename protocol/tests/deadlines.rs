//! Deadlines and cancellation: expiry gives `timed out` on time, whether or not the call is
//! being polled, and the peer sees the cancel; dropping a call's future cancels the remote
//! work; late replies are harmless.
//!
//! A call's timeout is also sent to the peer, which stops the work at the same moment on
//! its own: to see that the peer was *cancelled*, these tests put a relay in between that
//! gives the server a deadline of a minute (as a server that grants long deadlines would).

mod common;

use std::time::Duration;

use common::Server;
use common::relay::Relay;
use rwc_protocol::message::Message;
use rwc_protocol::{CallOptions, Connection, ErrorKind, NetRef, PendingCall, Service, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The deadline the relay gives the server for every call.
const SERVER_DEADLINE: Duration = Duration::from_secs(60);

/// Sends the instant it is dropped: tells the test when the remote work stopped.
struct OnDrop(mpsc::UnboundedSender<Instant>);
impl Drop for OnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(Instant::now());
    }
}

/// `sleep(ms)` reports, through `stopped`, when it was stopped before finishing, and
/// through `deadlines`, the deadline it was given.
fn slow(
    stopped: mpsc::UnboundedSender<Instant>,
    deadlines: mpsc::UnboundedSender<Instant>,
) -> NetRef {
    Service::new("slow")
        .method_with_context("sleep", move |ctx, (ms,): (u64,)| {
            let guard = OnDrop(stopped.clone());
            if let Some(at) = ctx.deadline() {
                let _ = deadlines.send(at);
            }
            async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                std::mem::forget(guard);
                Ok(ms)
            }
        })
        .method("quick", |(): ()| async move { Ok(1u8) })
        .into_object()
}

/// A server of [`slow`] behind a relay that gives it [`SERVER_DEADLINE`] for every call,
/// and a client connected through the relay.
struct Setup {
    server: Server,
    relay: Relay,
    conn: Connection,
    stopped: mpsc::UnboundedReceiver<Instant>,
    deadlines: mpsc::UnboundedReceiver<Instant>,
}

impl Setup {
    async fn new(filter: common::relay::Filter) -> Setup {
        let (stopped_tx, stopped) = mpsc::unbounded_channel();
        let (deadlines_tx, deadlines) = mpsc::unbounded_channel();
        let server = Server::start(move || slow(stopped_tx.clone(), deadlines_tx.clone())).await;
        let relay = Relay::start(server.addr, filter).await;
        let conn = rwc_protocol::transport::connect_tcp(
            relay.addr,
            Service::new("client").into_object(),
            Default::default(),
        )
        .await
        .unwrap();
        Setup {
            server,
            relay,
            conn,
            stopped,
            deadlines,
        }
    }

    /// Through a relay that gives the server a long deadline.
    async fn long_server_deadline() -> Setup {
        Setup::new(long_deadline).await
    }

    /// The instant the server's work was stopped; fails after 5 s.
    async fn server_stopped(&mut self) -> Instant {
        tokio::time::timeout(Duration::from_secs(5), self.stopped.recv())
            .await
            .expect("the server's work was stopped within 5 s")
            .unwrap()
    }

    /// Asserts that the server was given [`SERVER_DEADLINE`], far beyond the client's.
    async fn server_had_a_long_deadline(&mut self, sent: Instant) {
        let at = self.deadlines.recv().await.unwrap();
        assert!(
            at >= sent + SERVER_DEADLINE - Duration::from_secs(1),
            "the server's own deadline was {:?} after the call",
            at - sent
        );
    }
}

/// Gives every call the server deadline.
fn long_deadline(msg: Message) -> Option<Message> {
    Some(match msg {
        Message::Call(mut call) => {
            call.deadline_ms = Some(u64::try_from(SERVER_DEADLINE.as_millis()).unwrap());
            Message::Call(call)
        }
        other => other,
    })
}

fn sleep_call(conn: &Connection, ms: u64, timeout: Duration) -> PendingCall {
    conn.root()
        .call_with("sleep", vec![Value::U64(ms)], CallOptions::timeout(timeout))
}

/// Asserts that `took` is `deadline` or at most 10 % later.
fn on_time(took: Duration, deadline: Duration) {
    assert!(
        took >= deadline && took <= deadline + deadline / 10,
        "took {took:?} for a deadline of {deadline:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_expiry_is_on_time_and_cancels_the_peer() {
    let mut t = Setup::long_server_deadline().await;
    let timeout = Duration::from_millis(500);
    let start = Instant::now();
    let err = sleep_call(&t.conn, 10_000, timeout).await.unwrap_err();
    on_time(start.elapsed(), timeout);
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert!(
        err.message().contains("exceeded its deadline of 500ms"),
        "{err}"
    );
    t.server_had_a_long_deadline(start).await;
    // The server stopped at the client's deadline, a minute before its own: a cancel.
    let stopped = t.server_stopped().await - start;
    assert!(
        stopped >= timeout && stopped < Duration::from_secs(2),
        "the server's work stopped {stopped:?} after the call"
    );
    let s = t.server.server_side(0).await;
    common::eventually(|| async { (s.stats().answers == 0).then_some(()) }).await;
    assert_eq!(t.conn.stats().questions, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpolled_call_expires_and_cancels_the_peer_at_its_deadline() {
    let mut t = Setup::long_server_deadline().await;
    let timeout = Duration::from_millis(300);
    let start = Instant::now();
    // Nobody polls or awaits this until the end.
    let mut pending = sleep_call(&t.conn, 10_000, timeout);
    t.server_had_a_long_deadline(start).await;
    let stopped = t.server_stopped().await - start;
    assert!(
        stopped >= timeout && stopped < Duration::from_secs(2),
        "the server's work stopped {stopped:?} after the call"
    );
    // The question left the table at the deadline, with no one looking.
    assert_eq!(t.conn.stats().questions, 0);
    assert!(pending.is_ready() && pending.expired());
    assert_eq!(pending.await.unwrap_err().kind(), ErrorKind::TimedOut);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn is_ready_turns_true_at_the_deadline_when_the_peer_goes_silent() {
    let t = Setup::new(Some).await;
    let one: u8 = t.conn.root().call("quick", ()).await.unwrap();
    assert_eq!(one, 1, "the relay forwards until told not to");
    t.relay.go_silent();

    let timeout = Duration::from_millis(200);
    let start = Instant::now();
    let mut pending = t
        .conn
        .root()
        .call_with("quick", vec![], CallOptions::timeout(timeout));
    assert!(!pending.is_ready() && !pending.expired());
    while !pending.is_ready() {
        assert!(start.elapsed() < Duration::from_secs(5), "never ready");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    on_time(start.elapsed(), timeout);
    assert!(pending.expired());
    assert_eq!(t.conn.stats().questions, 0, "the question is gone");
    let err = pending.await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    // Silent, not closed: the connection itself is still open.
    assert!(!t.conn.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_in_time_is_not_expired() {
    let t = Setup::long_server_deadline().await;
    let mut pending = sleep_call(&t.conn, 50, Duration::from_secs(5));
    let start = Instant::now();
    while !pending.is_ready() {
        assert!(start.elapsed() < Duration::from_secs(5), "never ready");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(!pending.expired());
    assert_eq!(pending.await.unwrap(), Value::U64(50));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_default_timeout_applies() {
    let (stopped, _) = mpsc::unbounded_channel();
    let (deadlines, _) = mpsc::unbounded_channel();
    let server = Server::start(move || slow(stopped.clone(), deadlines.clone())).await;
    let config = rwc_protocol::ConnectionConfig {
        default_timeout: Some(Duration::from_millis(200)),
        ..Default::default()
    };
    let conn = server
        .connect_with_config(Service::new("c").into_object(), config)
        .await;
    let start = Instant::now();
    let err = conn
        .root()
        .call::<u64>("sleep", (5_000,))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    on_time(start.elapsed(), Duration::from_millis(200));
    // Per-call override beats the default.
    let ok = sleep_call(&conn, 300, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(ok, Value::U64(300));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_future_cancels_remote_work() {
    let mut t = Setup::long_server_deadline().await;
    let root = t.conn.root();
    let start = Instant::now();
    tokio::select! {
        _ = root.call::<u64>("sleep", (10_000,)) => panic!("should not finish"),
        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
    }
    let stopped = t.server_stopped().await - start;
    assert!(
        stopped < Duration::from_secs(2),
        "stopped after {stopped:?}"
    );
    assert_eq!(t.conn.stats().questions, 0);
    let one: u8 = root.call("quick", ()).await.unwrap();
    assert_eq!(one, 1);
}

/// Drops every cancel, so that the server finishes work its caller gave up on.
fn lose_cancels(msg: Message) -> Option<Message> {
    match msg {
        Message::Cancel { .. } => None,
        other => long_deadline(other),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_reply_is_discarded_safely() {
    // The server finishes at 150 ms; the client gave up at 100 ms, and its cancels are
    // lost on the way. The late returns must be ignored and the connection stay healthy.
    let t = Setup::new(lose_cancels).await;
    for _ in 0..5 {
        let err = sleep_call(&t.conn, 150, Duration::from_millis(100))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut);
    }
    // Barrier: once the relay has passed the five late returns on, a ping answered after
    // them proves the client has handled them.
    common::eventually(|| async { (t.relay.returns_forwarded() == 5).then_some(()) }).await;
    t.conn.ping().await.unwrap();
    let one: u8 = t.conn.root().call("quick", ()).await.unwrap();
    assert_eq!(one, 1);
    assert!(!t.conn.is_closed());
    assert_eq!(t.conn.stats().questions, 0);
}

#[tokio::test]
async fn a_timeout_too_long_to_represent_is_no_deadline() {
    // `Duration::MAX` from now is no instant this clock has: the call simply has no
    // deadline, here, on the peer (which is sent `u64::MAX` ms), and for a local object.
    let t = Setup::new(Some).await;
    let forever = CallOptions::timeout(Duration::MAX);
    let mut pending = t.conn.root().call_with("quick", vec![], forever.clone());
    assert_eq!((&mut pending).await.unwrap(), Value::U64(1));
    assert!(!pending.expired());
    let local = Service::new("local")
        .method("quick", |(): ()| async move { Ok(2u8) })
        .into_object();
    let two = local.call_with("quick", vec![], forever).await.unwrap();
    assert_eq!(two, Value::U64(2));
}
