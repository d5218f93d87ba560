//! Bytes as bytes, end to end: `Vec<u8>` (and `Box<[u8]>`, `ByteBuf`) into and out of a
//! guest on a real `rwc-node` with its default limits, through a client callback and a
//! guest object, byte for byte; and text refused where bytes are wanted.

mod support;

use rwc_client::{Client, ErrorKind, Instance, InstanceOptions, NetRef, Value};
use rwc_protocol::callable;
use rwc_tests::{fill_pattern as pattern, guest_bytes, guests, random_bytes as random};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};
use support::{Proc, spawn_node};

/// 16 MiB: a quarter of the default 256 MiB instance memory would not hold it as one
/// value per byte (about 26 bytes each), so this passes only if bytes travel as bytes.
const BIG: usize = 16 << 20;

/// A fresh node with its default limits, a connection to it, and an instance of the blob
/// guest there.
async fn blob() -> (Proc, Client, Instance) {
    let node = spawn_node(&[]);
    let client = Client::connect(&node.addr).await.unwrap();
    let module = client.upload(&guest_bytes(guests::BLOB)).await.unwrap();
    let blob = client
        .instantiate(&module, InstanceOptions::default())
        .await
        .unwrap();
    (node, client, blob)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_mib_of_vec_u8_go_in_and_out_of_a_default_node() {
    let (_node, _client, blob) = blob().await;

    // In: a typed `Vec<u8>` argument to a `Vec<u8>` parameter.
    let data = random(BIG, 1);
    let n: u64 = blob.call("len", (data.clone(),)).await.unwrap();
    assert_eq!(n, u64::try_from(BIG).unwrap());
    // Out: a `Vec<u8>` result, as bytes on the wire and as a typed `Vec<u8>` here.
    let made = blob
        .call_value("fill", vec![Value::U64(BIG as u64)])
        .await
        .unwrap();
    assert!(
        matches!(&made, Value::Bytes(b) if *b == pattern(BIG)),
        "a Vec<u8> result is a bytes value"
    );
    let made: Vec<u8> = blob.call("fill", (BIG as u64,)).await.unwrap();
    assert_eq!(made, pattern(BIG));
    // Both ways, byte for byte.
    let back: Vec<u8> = blob.call("echo", (data.clone(),)).await.unwrap();
    assert!(back == data, "16 MiB of random bytes came back changed");
    let digest: Vec<u8> = blob.call("sha256", (data.clone(),)).await.unwrap();
    assert_eq!(digest, Sha256::digest(&data).to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_round_trip_exactly_in_every_bytes_type() {
    let (_node, _client, blob) = blob().await;
    for (i, n) in [1usize, 2, 255, 256, 65_535, 65_536, 1_000_003]
        .into_iter()
        .enumerate()
    {
        let data = random(n, 10 + i as u64);
        let echoed: Vec<u8> = blob.call("echo", (data.clone(),)).await.unwrap();
        assert!(echoed == data, "echo of {n} bytes");
        let reversed: Vec<u8> = blob.call("reverse", (data.clone(),)).await.unwrap();
        assert!(
            reversed.iter().rev().eq(data.iter()),
            "Box<[u8]> of {n} bytes"
        );
        let appended: ByteBuf = blob
            .call("append", (ByteBuf::from(data.clone()), 7u8))
            .await
            .unwrap();
        assert!(
            appended[..n] == data[..] && appended[n] == 7,
            "ByteBuf of {n} bytes"
        );
    }
    // Nothing in, nothing out: an empty Vec<u8> is still a valid argument and result.
    let empty: Vec<u8> = blob.call("echo", (Vec::<u8>::new(),)).await.unwrap();
    assert!(empty.is_empty());
    // A list of small numbers (what a peer without a bytes type sends) is bytes too.
    let n = blob
        .call_value("len", vec![Value::List(vec![Value::U64(1), Value::U64(2)])])
        .await
        .unwrap();
    assert_eq!(n, Value::U64(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_pass_through_a_client_callback_and_a_guest_object() {
    let (_node, _client, blob) = blob().await;
    let data = random(BIG, 2);

    // The guest hands 16 MiB to a client callback, which answers with them reversed.
    let cb = callable(|(mut got,): (Vec<u8>,)| async move {
        got.reverse();
        Ok(got)
    });
    let answered: Vec<u8> = blob.call("through", (cb, data.clone())).await.unwrap();
    assert!(
        answered.iter().rev().eq(data.iter()),
        "the callback's answer came back changed"
    );

    // A guest object keeps bytes between method calls.
    let buffer: NetRef = blob.call("new_buffer", ()).await.unwrap();
    let half = BIG / 2;
    let len: u64 = buffer.call("push", (data[..half].to_vec(),)).await.unwrap();
    assert_eq!(len, half as u64);
    let len: u64 = buffer.call("push", (data[half..].to_vec(),)).await.unwrap();
    assert_eq!(len, BIG as u64);
    let taken: Vec<u8> = buffer.call("take", ()).await.unwrap();
    assert!(taken == data, "the object's bytes came back changed");
    let taken: Vec<u8> = buffer.call("take", ()).await.unwrap();
    assert!(taken.is_empty(), "take empties the buffer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_given_for_bytes_is_refused_with_how_to_pass_bytes() {
    let (_node, _client, blob) = blob().await;
    for export in ["sha256", "reverse"] {
        let err = blob
            .call_value(export, vec![Value::from("data.bin")])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadArgument, "{err}");
        let msg = err.message();
        assert!(
            msg.starts_with("argument 1 (`data: ") && msg.contains(&format!("of `{export}`")),
            "names the parameter: {msg}"
        );
        assert!(msg.contains("expected bytes, found string"), "{msg}");
        assert!(msg.contains("`@FILE`"), "{msg}");
        assert!(msg.contains(r#"{"$bytes": "<base64>"}"#), "{msg}");
    }
}
