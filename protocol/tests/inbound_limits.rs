//! Inbound bounds: what a peer can make this side hold at once (calls in flight, their
//! request bytes, per connection and per principal, and connections themselves). Over a
//! bound the peer is told `overloaded`, naming the bound, at once: never a hang; and once
//! the load drops, everything works again.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Server, eventually};
use rwc_protocol::admission::Admission;
use rwc_protocol::listener::Listener;
use rwc_protocol::transport::connect_tcp;
use rwc_protocol::{
    Authenticator, ConnectionConfig, Error, ErrorKind, NetRef, PeerInfo, PendingCall,
    PrincipalBudget, Service, Value,
};
use serde_bytes::ByteBuf;
use tokio::sync::Semaphore;

/// Where `hold` calls wait until the test lets some through.
struct Gate(Semaphore);

impl Gate {
    /// Waits for a pass, and uses it up.
    async fn pass(&self) -> Result<(), Error> {
        let permit = self
            .0
            .acquire()
            .await
            .map_err(|e| Error::failed(e.to_string()))?;
        permit.forget();
        Ok(())
    }

    /// Lets `n` more calls through.
    fn open(&self, n: usize) {
        self.0.add_permits(n);
    }
}

/// A server with `config` whose root's `hold(bytes)` waits at the returned gate, and whose
/// `add` answers at once.
async fn gated_server(config: ConnectionConfig) -> (Server, Arc<Gate>) {
    let gate = Arc::new(Gate(Semaphore::new(0)));
    let g = gate.clone();
    let server = Server::start_with(config, move || gated(g.clone())).await;
    (server, gate)
}

fn gated(gate: Arc<Gate>) -> NetRef {
    Service::new("gated")
        .method("hold", move |(_bytes,): (ByteBuf,)| {
            let gate = gate.clone();
            async move { gate.pass().await }
        })
        .method("add", |(a, b): (u64, u64)| async move { Ok(a + b) })
        .into_object()
}

fn hold(root: &NetRef, bytes: usize) -> PendingCall {
    root.call_with(
        "hold",
        vec![Value::Bytes(vec![0; bytes].into())],
        Default::default(),
    )
}

fn assert_overloaded(err: &Error, bound: &str) {
    assert_eq!(err.kind(), ErrorKind::Overloaded, "{err}");
    assert!(err.message().contains(bound), "{bound} not named: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_the_connections_bound_are_refused_at_once_and_it_recovers() {
    let config = ConnectionConfig {
        max_calls_in_flight: 4,
        ..ConnectionConfig::default()
    };
    let (server, gate) = gated_server(config).await;
    let conn = server.connect().await;
    let root = conn.root();
    let held: Vec<PendingCall> = (0..4).map(|_| hold(&root, 10)).collect();
    let side = server.server_side(0).await;
    eventually(|| async { (side.stats().answers == 4).then_some(()) }).await;

    // A fifth call, even a quick one, is refused without waiting.
    let err = root.call::<u64>("add", (1, 2)).await.unwrap_err();
    assert_overloaded(&err, "max_calls_in_flight");

    gate.open(4);
    for call in held {
        call.await.unwrap();
    }
    let sum: u64 = root.call("add", (1, 2)).await.unwrap();
    assert_eq!(sum, 3, "served again once the calls in flight returned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bytes_in_flight_are_bounded_and_a_cancel_gives_them_back() {
    let config = ConnectionConfig {
        max_request_bytes_in_flight: 100 * 1024,
        ..ConnectionConfig::default()
    };
    let (server, gate) = gated_server(config).await;
    let conn = server.connect().await;
    let root = conn.root();
    let first = hold(&root, 60 * 1024);
    let side = server.server_side(0).await;
    eventually(|| async { (side.stats().request_bytes_in_flight > 60 * 1024).then_some(()) }).await;

    let err = hold(&root, 60 * 1024).await.unwrap_err();
    assert_overloaded(&err, "max_request_bytes_in_flight");
    // Small calls still fit.
    let sum: u64 = root.call("add", (2, 2)).await.unwrap();
    assert_eq!(sum, 4);

    // Cancelling the held call frees its bytes on the server.
    drop(first);
    eventually(|| async { (side.stats().request_bytes_in_flight == 0).then_some(()) }).await;
    let second = hold(&root, 60 * 1024);
    eventually(|| async { (side.stats().answers == 1).then_some(()) }).await;
    gate.open(1);
    second.await.unwrap();
    assert_eq!(side.stats().request_bytes_in_flight, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_of_one_principal_share_its_bound() {
    let budget = PrincipalBudget::new(usize::MAX, 3, usize::MAX);
    let config = ConnectionConfig {
        principal_budget: Some(budget.clone()),
        ..ConnectionConfig::default()
    };
    let (server, gate) = gated_server(config).await;
    let (a, b) = (server.connect().await, server.connect().await);
    let held = [hold(&a.root(), 1), hold(&a.root(), 1), hold(&b.root(), 1)];
    eventually(|| async { (budget.usage(None).calls == 3).then_some(()) }).await;

    // Neither connection is at its own bound, but the (anonymous) principal is.
    let err = b.root().call::<u64>("add", (1, 1)).await.unwrap_err();
    assert_overloaded(&err, "max_calls_in_flight_per_principal");
    assert!(err.message().contains("`anonymous`"), "{err}");

    gate.open(3);
    for call in held {
        call.await.unwrap();
    }
    let sum: u64 = b.root().call("add", (1, 1)).await.unwrap();
    assert_eq!(sum, 2);
    eventually(|| async { (budget.total().calls == 0).then_some(()) }).await;
}

/// Principals by token: `ops-token` is `ops`, `dev-token` is `dev`; nothing else gets in.
struct Tokens;

impl Authenticator for Tokens {
    fn authenticate(&self, _peer: &PeerInfo, credentials: Option<&[u8]>) -> Result<String, Error> {
        match credentials {
            Some(b"ops-token") => Ok("ops".to_owned()),
            Some(b"dev-token") => Ok("dev".to_owned()),
            _ => Err(Error::new(ErrorKind::Denied, "unknown token")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_over_its_connections_is_refused_in_the_handshake_and_others_are_not() {
    let budget = PrincipalBudget::new(2, usize::MAX, usize::MAX);
    let config = ConnectionConfig {
        authenticator: Some(Arc::new(Tokens)),
        principal_budget: Some(budget.clone()),
        ..ConnectionConfig::default()
    };
    let server = Server::start_with(config, common::calc).await;
    let as_principal = |token: &str| ConnectionConfig {
        credentials: Some(token.as_bytes().to_vec()),
        ..ConnectionConfig::default()
    };
    let client = || Service::new("client").into_object();
    let connect = |token: &'static str| {
        let config = as_principal(token);
        let addr = server.addr;
        async move { connect_tcp(addr, client(), config).await }
    };
    let first = connect("ops-token").await.unwrap();
    let second = connect("ops-token").await.unwrap();
    let err = connect("ops-token").await.unwrap_err();
    assert_overloaded(&err, "max_connections_per_principal");
    assert!(err.message().contains("principal `ops`"), "{err}");
    assert!(err.is_remote(), "the server said why: {err}");
    assert_eq!(budget.connections(Some("ops")), 2);

    // Another principal has its own places.
    let dev = connect("dev-token").await.unwrap();
    let sum: u64 = dev.root().call("add", (2, 3)).await.unwrap();
    assert_eq!(sum, 5);

    // A closed connection gives its place back, even while the server still holds a
    // handle to it.
    first.close();
    eventually(|| async { (budget.connections(Some("ops")) == 1).then_some(()) }).await;
    let again = connect("ops-token").await.unwrap();
    let sum: u64 = again.root().call("add", (1, 1)).await.unwrap();
    assert_eq!(sum, 2);
    drop((second, again, dev));
}

/// A listener on 127.0.0.1 serving [`common::calc`] within `admission`, until dropped.
async fn listening(admission: Arc<Admission>) -> (String, tokio::task::JoinHandle<()>) {
    let listener = Listener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .with_admission(admission);
    let addr = listener.address().to_owned();
    let task = tokio::spawn(async move {
        let mut tasks = listener
            .serve(
                std::future::pending(),
                ConnectionConfig::default(),
                |_: Option<&str>| common::calc(),
            )
            .await;
        tasks.abort_all();
    });
    (addr, task)
}

async fn connect(addr: &str) -> Result<rwc_protocol::Connection, Error> {
    connect_tcp(
        addr,
        Service::new("client").into_object(),
        ConnectionConfig::default(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_a_cap_are_refused_before_the_handshake_with_the_cap_named() {
    let admission = Admission::new(2, 8);
    let (addr, server) = listening(admission.clone()).await;
    let one = connect(&addr).await.unwrap();
    let two = connect(&addr).await.unwrap();
    let started = std::time::Instant::now();
    let err = connect(&addr).await.unwrap_err();
    assert_overloaded(&err, "(max_connections)");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused at once, not after a timeout"
    );
    assert_eq!(admission.usage().refused, 1);
    let sum: u64 = one.root().call("add", (1, 2)).await.unwrap();
    assert_eq!(sum, 3, "the admitted connections are served");

    // A place comes back when a connection closes.
    one.close();
    drop(one);
    eventually(|| async { (admission.usage().open == 1).then_some(()) }).await;
    let three = connect(&addr).await.unwrap();
    let sum: u64 = three.root().call("add", (2, 2)).await.unwrap();
    assert_eq!(sum, 4);
    drop((two, three));
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_every_place() {
    let admission = Admission::new(100, 2);
    let (addr, server) = listening(admission.clone()).await;
    let held = [connect(&addr).await.unwrap(), connect(&addr).await.unwrap()];
    let err = connect(&addr).await.unwrap_err();
    assert_overloaded(&err, "max_connections_per_address");
    assert!(err.message().contains("127.0.0.1"), "{err}");
    assert_eq!(admission.usage().busiest_address, 2);
    drop(held);
    eventually(|| async { (admission.usage().open == 0).then_some(()) }).await;
    connect(&addr).await.unwrap();
    server.abort();
}
