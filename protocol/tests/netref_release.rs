//! Netref reference counting, release and identity, observed on both sides, and through a
//! third party.
//!
//! "Nothing was released" is checked after a ping from the side that would have sent the
//! release: the peer handles messages in order, so once the pong is back a release sent
//! before the ping has been handled.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{Server, eventually};
use rwc_protocol::transport::connect_tcp;
use rwc_protocol::{Connection, ConnectionConfig, Error, NetRef, Service};

/// Counts, in `drops`, the drops of the object that owns it.
struct CountsDrops(Arc<AtomicUsize>);

impl Drop for CountsDrops {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// An object that counts its drops and records the connection each call came in on
/// (`None` for a direct local call).
fn tracked(drops: &Arc<AtomicUsize>, calls: &Arc<Mutex<Vec<Option<u64>>>>) -> NetRef {
    let guard = CountsDrops(drops.clone());
    let calls = calls.clone();
    Service::new("tracked")
        .method_with_context("hello", move |ctx, (): ()| {
            let _owned_by_the_object = &guard;
            calls
                .lock()
                .unwrap()
                .push(ctx.connection().map(Connection::id));
            async move { Ok("hi") }
        })
        .into_object()
}

/// A service holding one netref (`held`) that it hands out with `get` until `forget`.
fn holder(held: Arc<Mutex<Option<NetRef>>>) -> NetRef {
    let (h1, h2, h3, h4) = (held.clone(), held.clone(), held.clone(), held);
    Service::new("holder")
        .method("get", move |(): ()| {
            let obj = h1.lock().unwrap().clone();
            async move { obj.ok_or_else(|| Error::failed("forgotten")) }
        })
        .method("forget", move |(): ()| {
            h2.lock().unwrap().take();
            async move { Ok(()) }
        })
        .method("is_held", move |(r,): (NetRef,)| {
            let same = h3
                .lock()
                .unwrap()
                .as_ref()
                .is_some_and(|h| h.same_object(&r));
            async move { Ok(same) }
        })
        .method("keep", move |(r,): (NetRef,)| {
            *h4.lock().unwrap() = Some(r.clone());
            async move { Ok(r) }
        })
        .method("give_back", |(r,): (NetRef,)| async move { Ok(r) })
        .into_object()
}

/// A server whose holder holds a tracked object, a client of it, and the server's side.
struct Holding {
    drops: Arc<AtomicUsize>,
    server: Server,
    conn: Connection,
    root: NetRef,
}

impl Holding {
    async fn start() -> Holding {
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        let server = Server::start(move || {
            let calls = Arc::new(Mutex::new(Vec::new()));
            holder(Arc::new(Mutex::new(Some(tracked(&d, &calls)))))
        })
        .await;
        let conn = server.connect().await;
        let root = conn.root();
        Holding {
            drops,
            server,
            conn,
            root,
        }
    }

    async fn get(&self) -> NetRef {
        self.root.call("get", ()).await.unwrap()
    }

    fn drops(&self) -> usize {
        self.drops.load(Ordering::SeqCst)
    }
}

async fn exports_become(conn: &Connection, n: usize) {
    eventually(|| async { (conn.stats().exports == n).then_some(()) }).await;
}

#[tokio::test]
async fn sent_three_times_freed_exactly_once() {
    let h = Holding::start().await;
    let (a, b, c) = (h.get().await, h.get().await, h.get().await);
    assert!(a.same_object(&b) && b.same_object(&c));
    assert_eq!(h.conn.stats().imports, 1, "three references, one proxy");
    let s = h.server.server_side(0).await;
    assert_eq!(s.stats().exports, 2, "root + the object");
    h.root.call::<()>("forget", ()).await.unwrap();
    assert_eq!(h.drops(), 0, "still exported to the client");
    drop((a, b, c));
    exports_become(&s, 1).await;
    assert_eq!(h.drops(), 1);
    assert_eq!(h.conn.stats().imports, 0);
    // Nothing else is released later: the client's one release carried all three
    // references, and the server accepted it.
    h.conn.ping().await.unwrap();
    assert_eq!(h.drops(), 1);
    assert!(!h.conn.is_closed(), "the release counts were accepted");
}

#[tokio::test]
async fn two_handles_dropping_one_keeps_it() {
    let h = Holding::start().await;
    let a = h.get().await;
    let b = h.get().await;
    h.root.call::<()>("forget", ()).await.unwrap();
    let s = h.server.server_side(0).await;
    drop(a);
    h.conn.ping().await.unwrap();
    assert_eq!(s.stats().exports, 2, "one handle still holds it");
    assert_eq!(h.drops(), 0);
    let hi: String = b.call("hello", ()).await.unwrap();
    assert_eq!(hi, "hi");
    drop(b);
    exports_become(&s, 1).await;
    assert_eq!(h.drops(), 1);
}

#[tokio::test]
async fn identity_is_kept_when_sent_back() {
    let h = Holding::start().await;
    // The server's object sent back arrives as the server's own object.
    let a = h.get().await;
    assert!(h.root.call::<bool>("is_held", (a.clone(),)).await.unwrap());
    // The client's object sent to the server and back arrives as the client's own object.
    let mine = Service::new("mine").into_object();
    let back: NetRef = h.root.call("give_back", (mine.clone(),)).await.unwrap();
    assert!(back.is_local() && back.same_object(&mine));
    // And the server released its reference to the client's object.
    exports_become(&h.conn, 1).await;
}

#[tokio::test]
async fn release_races_with_resend_stay_consistent() {
    // Get and drop the same object many times quickly: releases and re-sends cross on
    // the wire; the tables must stay exact.
    let h = Holding::start().await;
    let pending: Vec<_> = (0..500).map(|_| h.root.call_async("get", ())).collect();
    for p in pending {
        let r: NetRef = rwc_protocol::from_value(p.await.unwrap()).unwrap();
        drop(r);
    }
    h.root.call::<()>("forget", ()).await.unwrap();
    let s = h.server.server_side(0).await;
    exports_become(&s, 1).await;
    assert_eq!(h.drops(), 1);
    assert!(!h.conn.is_closed() && !s.is_closed());
}

/// What B saw of the object C handed back: whether it is B's own proxy.
type Seen = (NetRef, bool, bool);

/// B's root: `relay(x)` sends x to C, which keeps it and hands it back; B keeps what came
/// back too, calls it once, and returns it with whether it is B's proxy to x.
fn relay_through(to_c: Connection, kept: Arc<Mutex<Option<NetRef>>>) -> NetRef {
    let k = kept.clone();
    Service::new("b")
        .method("relay", move |(x,): (NetRef,)| {
            let (c, kept) = (to_c.root(), kept.clone());
            async move {
                let back: NetRef = c.call("keep", (x.clone(),)).await?;
                let hi: String = back.call("hello", ()).await?;
                assert_eq!(hi, "hi");
                *kept.lock().unwrap() = Some(back.clone());
                let (same, local) = (back.same_object(&x), back.is_local());
                Ok::<Seen, Error>((back, same, local))
            }
        })
        .method("forget", move |(): ()| {
            k.lock().unwrap().take();
            async move { Ok(()) }
        })
        .into_object()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_and_counts_hold_through_a_third_party() {
    // A → B → C → B → A, each a real connection: A's object goes to B, B sends it on to
    // C, C hands it back to B, and B hands it back to A.
    let c_held = Arc::new(Mutex::new(None));
    let ch = c_held.clone();
    let c = Server::start(move || holder(ch.clone())).await;
    let b_to_c = connect_tcp(
        c.addr,
        Service::new("b").into_object(),
        ConnectionConfig::default(),
    )
    .await
    .unwrap();
    let b_kept = Arc::new(Mutex::new(None));
    let (bc, bk) = (b_to_c.clone(), b_kept.clone());
    let b = Server::start(move || relay_through(bc.clone(), bk.clone())).await;
    let a_to_b = b.connect().await;
    let b_to_a = b.server_side(0).await;
    let c_to_b = c.server_side(0).await;

    let drops = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(Mutex::new(Vec::new()));
    let x = tracked(&drops, &calls);
    let (back, same_at_b, local_at_b): Seen =
        a_to_b.root().call("relay", (x.clone(),)).await.unwrap();

    // B recognised what C returned as its own proxy to A's object, not a new local object.
    assert!(
        same_at_b && !local_at_b,
        "at B: same {same_at_b}, local {local_at_b}"
    );
    // A got its own object back.
    assert!(back.is_local() && back.same_object(&x));
    // One hop each: B's call reached A straight from B, A's own call never left A.
    let hi: String = back.call("hello", ()).await.unwrap();
    assert_eq!(hi, "hi");
    assert_eq!(*calls.lock().unwrap(), [Some(a_to_b.id()), None]);
    // The tables: A exports x once (to B); B holds one proxy to it, and exports that
    // proxy once (to C), which holds one proxy to it.
    assert_eq!(a_to_b.stats().exports, 2, "A: root + x");
    assert_eq!(b_to_a.stats().imports, 1, "B: one proxy to x");
    assert_eq!(b_to_c.stats().exports, 2, "B: root + the proxy, to C");
    assert_eq!(c_to_b.stats().imports, 1, "C: one proxy to B's proxy");

    // Every holder but C lets go: x lives on, for C.
    drop((x, back));
    a_to_b.root().call::<()>("forget", ()).await.unwrap();
    b_to_a.ping().await.unwrap();
    assert_eq!(drops.load(Ordering::SeqCst), 0, "C still holds it");
    assert_eq!(a_to_b.stats().exports, 2);

    // C lets go: B's export to C goes, so B's proxy goes, so A's x goes, exactly once.
    b_to_c.root().call::<()>("forget", ()).await.unwrap();
    eventually(|| async { (drops.load(Ordering::SeqCst) == 1).then_some(()) }).await;
    c_to_b.ping().await.unwrap();
    b_to_a.ping().await.unwrap();
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert_eq!(a_to_b.stats().exports, 1, "A: root only");
    assert_eq!(b_to_a.stats().imports, 0);
    assert_eq!(b_to_c.stats().exports, 1, "B: root only");
    assert_eq!(c_to_b.stats().imports, 0);
    assert!(
        !a_to_b.is_closed() && !b_to_c.is_closed(),
        "every release was exact"
    );
    assert!(c_held.lock().unwrap().is_none());
}
