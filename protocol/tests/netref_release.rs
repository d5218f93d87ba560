//! Netref reference counting, release and identity, observed on both sides.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{Server, eventually};
use futures::future::BoxFuture;
use rwc_protocol::{CallContext, Error, MethodInfo, NetRef, Object, Service, Value};

/// An object that counts its drops.
struct Tracked {
    drops: Arc<AtomicUsize>,
}

impl Object for Tracked {
    fn call<'a>(
        &'a self,
        _ctx: CallContext,
        method: &'a str,
        _args: Vec<Value>,
    ) -> BoxFuture<'a, Result<Value, Error>> {
        Box::pin(async move {
            match method {
                "hello" => Ok(Value::from("hi")),
                _ => Err(Error::failed("no")),
            }
        })
    }
    fn methods(&self) -> Vec<MethodInfo> {
        vec![MethodInfo::new("hello", "says hi")]
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// A server holding one tracked object that it hands out with `get` until `forget`.
fn holder(drops: Arc<AtomicUsize>) -> NetRef {
    let held: Arc<Mutex<Option<NetRef>>> =
        Arc::new(Mutex::new(Some(NetRef::new(Tracked { drops }))));
    let (h1, h2, h3) = (held.clone(), held.clone(), held);
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
        .method("give_back", |(r,): (NetRef,)| async move { Ok(r) })
        .into_object()
}

async fn exports_become(conn: &rwc_protocol::Connection, n: usize) {
    eventually(|| async { (conn.stats().exports == n).then_some(()) }).await;
}

#[tokio::test]
async fn sent_three_times_freed_exactly_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    let server = Server::start(move || holder(d.clone())).await;
    let conn = server.connect().await;
    let root = conn.root();
    let a: NetRef = root.call("get", ()).await.unwrap();
    let b: NetRef = root.call("get", ()).await.unwrap();
    let c: NetRef = root.call("get", ()).await.unwrap();
    assert!(a.same_object(&b) && b.same_object(&c));
    assert_eq!(conn.stats().imports, 1, "three references, one proxy");
    let s = server.server_side(0).await;
    assert_eq!(s.stats().exports, 2, "root + the object");
    root.call::<()>("forget", ()).await.unwrap();
    assert_eq!(
        drops.load(Ordering::SeqCst),
        0,
        "still exported to the client"
    );
    drop((a, b, c));
    exports_become(&s, 1).await;
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert_eq!(conn.stats().imports, 0);
    // Nothing else is released later.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert!(!conn.is_closed(), "the release counts were accepted");
}

#[tokio::test]
async fn two_handles_dropping_one_keeps_it() {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    let server = Server::start(move || holder(d.clone())).await;
    let conn = server.connect().await;
    let root = conn.root();
    let a: NetRef = root.call("get", ()).await.unwrap();
    let b: NetRef = root.call("get", ()).await.unwrap();
    root.call::<()>("forget", ()).await.unwrap();
    let s = server.server_side(0).await;
    drop(a);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(s.stats().exports, 2);
    let hi: String = b.call("hello", ()).await.unwrap();
    assert_eq!(hi, "hi");
    drop(b);
    exports_become(&s, 1).await;
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn identity_is_kept_when_sent_back() {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    let server = Server::start(move || holder(d.clone())).await;
    let conn = server.connect().await;
    let root = conn.root();
    // The server's object sent back arrives as the server's own object.
    let a: NetRef = root.call("get", ()).await.unwrap();
    assert!(root.call::<bool>("is_held", (a.clone(),)).await.unwrap());
    // The client's object sent to the server and back arrives as the client's own object.
    let mine = Service::new("mine").into_object();
    let back: NetRef = root.call("give_back", (mine.clone(),)).await.unwrap();
    assert!(back.is_local() && back.same_object(&mine));
    // And the server released its reference to the client's object.
    eventually(|| async { (conn.stats().exports == 1).then_some(()) }).await;
}

#[tokio::test]
async fn release_races_with_resend_stay_consistent() {
    // Get and drop the same object many times quickly: releases and re-sends cross on
    // the wire; the tables must stay exact.
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    let server = Server::start(move || holder(d.clone())).await;
    let conn = server.connect().await;
    let root = conn.root();
    let pending: Vec<_> = (0..500).map(|_| root.call_async("get", ())).collect();
    for p in pending {
        let r: NetRef = rwc_protocol::from_value(p.await.unwrap()).unwrap();
        drop(r);
    }
    root.call::<()>("forget", ()).await.unwrap();
    let s = server.server_side(0).await;
    exports_become(&s, 1).await;
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert!(!conn.is_closed() && !s.is_closed());
}
