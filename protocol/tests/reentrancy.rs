//! Nested calls back and forth through one connection: A→B→A→B… to depth 64, on a single
//! thread (so certainly no thread per level), and two chains interleaved.

mod common;

use common::Server;
use rwc_protocol::{CallContext, Connection, Error, NetRef, Service};

/// A root whose `down(n)` calls `down(n - 1)` on the peer's root, over the connection the
/// call came in on, and returns the depth reached.
fn bouncer(name: &str) -> NetRef {
    Service::new(name)
        .method_with_context("down", |ctx: CallContext, (n,): (u64,)| async move {
            if n == 0 {
                return Ok(0u64);
            }
            let conn = ctx
                .connection()
                .ok_or_else(|| Error::failed("no connection"))?
                .clone();
            let below: u64 = conn.root().call("down", (n - 1,)).await?;
            Ok(below + 1)
        })
        .into_object()
}

/// A server and a client that both bounce.
async fn bouncers() -> (Server, Connection) {
    let server = Server::start(|| bouncer("server")).await;
    let conn = server.connect_with(bouncer("client")).await;
    (server, conn)
}

#[tokio::test(flavor = "current_thread")]
async fn chain_of_depth_64_on_one_thread() {
    let (server, conn) = bouncers().await;
    let depth: u64 = conn.root().call("down", (64,)).await.unwrap();
    assert_eq!(depth, 64);
    // Every level answered: nothing left in flight on either side.
    assert_eq!(conn.stats().questions, 0);
    let s = server.server_side(0).await;
    common::eventually(|| async { (s.stats().answers == 0).then_some(()) }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_chains_interleaved() {
    let (_server, conn) = bouncers().await;
    let root = conn.root();
    let (a, b) = tokio::join!(
        root.call::<u64>("down", (64,)),
        root.call::<u64>("down", (63,))
    );
    assert_eq!((a.unwrap(), b.unwrap()), (64, 63));
}

#[tokio::test(flavor = "current_thread")]
async fn deep_chain_of_256() {
    let (_server, conn) = bouncers().await;
    let depth: u64 = conn.root().call("down", (256,)).await.unwrap();
    assert_eq!(depth, 256);
}
