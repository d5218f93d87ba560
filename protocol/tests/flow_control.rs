//! Flow control: a peer that asks for more than it reads stops getting work done until it
//! reads, and one that reads nothing at all is disconnected; neither costs the server
//! unbounded memory, and everyone else keeps being served.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Server, eventually, raw};
use rwc_protocol::{ConnectionConfig, ErrorKind, NetRef, Service, Value};
use tokio::io::AsyncWriteExt;

const HIGH_WATER: usize = 1024 * 1024;
const BLOB: u64 = 256 * 1024;

/// Serves `blob(n)`, n bytes of zeros, and counts the blobs it made.
fn blobs(made: Arc<AtomicUsize>) -> NetRef {
    Service::new("blobs")
        .method("blob", move |(n,): (u64,)| {
            let made = made.clone();
            async move {
                made.fetch_add(1, Ordering::SeqCst);
                Ok(serde_bytes::ByteBuf::from(vec![
                    0u8;
                    usize::try_from(n).unwrap()
                ]))
            }
        })
        .method("add", |(a, b): (u64, u64)| async move { Ok(a + b) })
        .into_object()
}

/// A server of [`blobs`] with a 1 MiB high-water mark, and its count of blobs made.
async fn blob_server(stall: Duration) -> (Server, Arc<AtomicUsize>) {
    let config = ConnectionConfig {
        max_queued_bytes: HIGH_WATER,
        stall_timeout: stall,
        ..Default::default()
    };
    let made = Arc::new(AtomicUsize::new(0));
    let m = made.clone();
    let server = Server::start_with(config, move || blobs(m.clone())).await;
    (server, made)
}

/// `count` pipelined calls of `blob(BLOB)`, as one buffer.
fn blob_calls(count: u64) -> Vec<u8> {
    (1..=count)
        .flat_map(|question| raw::frame_of(&raw::call(question, "blob", vec![Value::U64(BLOB)])))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_is_paused_then_disconnected() {
    let (server, made) = blob_server(Duration::from_millis(1500)).await;

    // 400 calls asking for 100 MiB of replies, and not one byte read back.
    const CALLS: u64 = 400;
    let mut greedy = raw::peer(server.addr).await;
    greedy.write_all(&blob_calls(CALLS)).await.unwrap();
    let side = server.server_side(0).await;

    // The server stops taking calls: what it made fits in its high-water mark plus what
    // the kernel's socket buffers took, far below the 100 MiB asked for.
    let mut peak = 0;
    let start = std::time::Instant::now();
    while !side.is_closed() {
        peak = peak.max(side.stats().queued_bytes);
        assert!(start.elapsed() < Duration::from_secs(30), "never closed");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let made_then = made.load(Ordering::SeqCst);
    println!("{made_then} of {CALLS} calls run, at most {peak} bytes queued");
    assert!(
        made_then < usize::try_from(CALLS).unwrap() / 2,
        "the server kept working for a peer that read nothing: {made_then} of {CALLS} calls run"
    );
    assert!(
        peak <= HIGH_WATER + 2 * usize::try_from(BLOB).unwrap(),
        "{peak} bytes were queued for the peer, high-water mark {HIGH_WATER}"
    );

    // It was then disconnected for not reading, and what was queued for it is freed.
    let reason = side.close_reason().expect("closed with a reason");
    assert_eq!(reason.kind(), ErrorKind::Disconnected);
    assert!(reason.message().contains("stopped reading"), "{reason}");
    eventually(|| async { (side.stats().queued_bytes == 0).then_some(()) }).await;

    // Everyone else was served all along, and still is.
    let other = server.connect().await;
    let sum: u64 = other.root().call("add", (40, 2)).await.unwrap();
    assert_eq!(sum, 42);
    drop(greedy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bystander_is_served_while_a_greedy_peer_is_paused() {
    let (server, made) = blob_server(Duration::from_secs(30)).await;
    let mut greedy = raw::peer(server.addr).await;
    greedy.write_all(&blob_calls(400)).await.unwrap();
    let side = server.server_side(0).await;
    // Paused: reading stops once the queue passes the high-water mark and resumes only
    // when it is down to half, which a peer that reads nothing never lets happen once
    // the socket buffers are full too. From then on nothing more gets made.
    let made_then = eventually(|| async {
        let before = made.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let after = made.load(Ordering::SeqCst);
        (after == before && side.stats().queued_bytes > HIGH_WATER / 2).then_some(after)
    })
    .await;

    let other = server.connect().await;
    for i in 0..100u64 {
        let sum: u64 = other.root().call("add", (i, 1)).await.unwrap();
        assert_eq!(sum, i + 1);
    }
    assert!(
        !side.is_closed(),
        "paused, not closed, within its stall timeout"
    );
    assert_eq!(
        made.load(Ordering::SeqCst),
        made_then,
        "no more work was done for the paused peer"
    );
    assert!(made_then < 200, "{made_then} of 400 calls run");
    drop(greedy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_still_gets_every_reply() {
    let (server, made) = blob_server(Duration::from_secs(30)).await;
    let conn = server.connect().await;
    // 64 calls in flight asking for 16 MiB, through a server that queues at most 1 MiB.
    let root = conn.root();
    let calls: Vec<_> = (0..64)
        .map(|_| root.call::<serde_bytes::ByteBuf>("blob", (BLOB,)))
        .collect();
    for reply in futures::future::join_all(calls).await {
        assert_eq!(reply.unwrap().len(), usize::try_from(BLOB).unwrap());
    }
    assert_eq!(made.load(Ordering::SeqCst), 64);
    let side = server.server_side(0).await;
    assert!(!side.is_closed());
    assert_eq!(side.stats().queued_bytes, 0);
}
