//! Hostile or broken peers: each gets an error and loses its own connection; the server
//! goes on serving everyone else.

mod common;

use std::time::Duration;

use common::{Server, calc, raw};
use rwc_protocol::codec;
use rwc_protocol::frame;
use rwc_protocol::message::{Call, Message, Target};
use rwc_protocol::transport::connect_tcp;
use rwc_protocol::{
    ConnectionConfig, DecodeLimits, Error, ErrorKind, MAGIC, PROTOCOL_VERSION, Ref, Service, Value,
    WireRef,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The server still answers a well-behaved client.
async fn still_serving(server: &Server) {
    let conn = server.connect().await;
    let sum: u64 = conn.root().call("add", (20, 22)).await.unwrap();
    assert_eq!(sum, 42);
}

/// Asserts that the server aborted the raw peer `s` with a reason naming `what`, and goes
/// on serving everyone else.
async fn aborted(s: &mut TcpStream, server: &Server, what: &str) -> Error {
    let reason = raw::abort_reason(s).await.expect("an abort with a reason");
    assert_eq!(reason.kind(), ErrorKind::Protocol, "{reason}");
    assert!(reason.message().contains(what), "{reason}");
    still_serving(server).await;
    reason
}

/// Asserts that the server closes `s` without sending it a byte.
async fn gets_nothing(s: &mut TcpStream, why: &str) {
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("the server closed the connection")
        .unwrap();
    assert!(buf.is_empty(), "{why}");
}

/// The raw peer `s` is still served: a call on it gets its answer.
async fn raw_still_served(s: &mut TcpStream, question: u64) {
    raw::send(
        s,
        &raw::call(question, "add", vec![Value::U64(1), Value::U64(2)]),
    )
    .await;
    assert_eq!(raw::answer_to(s, question).await.unwrap(), Value::U64(3));
}

#[tokio::test]
async fn garbage_handshake_is_refused() {
    let server = Server::start(calc).await;
    let good = server.connect().await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    gets_nothing(&mut s, "a non-rwc peer gets nothing, not even an object").await;
    still_serving(&server).await;
    assert!(!good.is_closed());
}

#[tokio::test]
async fn connecting_to_something_that_is_not_rwc_is_a_clear_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").await.unwrap();
        // Keep the stream open until the client has read that and hung up.
        let _ = s.read_to_end(&mut Vec::new()).await;
    });
    let err = connect_tcp(
        addr,
        Service::new("c").into_object(),
        ConnectionConfig::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol);
    assert!(
        err.message().contains("not speaking rwc") && err.message().contains("SSH-2.0"),
        "{err}"
    );
}

#[tokio::test]
async fn other_protocol_version_is_refused_on_both_sides() {
    let server = Server::start(calc).await;
    let (_s, theirs) = raw::handshake(server.addr, PROTOCOL_VERSION + 1, &[]).await;
    let err = theirs.unwrap_err();
    assert!(
        err.message()
            .contains(&format!("version {}", PROTOCOL_VERSION + 1)),
        "{err}"
    );
    still_serving(&server).await;
}

#[tokio::test]
async fn oversize_frame_that_is_not_a_call_aborts_that_connection_only() {
    // A frame over the limit is refused before it is read, except for its first bytes: a
    // call or a return over the limit fails only its question (tests/limits.rs); anything
    // else, garbage here, ends the connection.
    let server = Server::start_with(common::max_frame(1024 * 1024), calc).await;
    let good = server.connect().await;
    let mut s = raw::peer(server.addr).await;
    s.write_all(&(64u32 * 1024 * 1024).to_le_bytes())
        .await
        .unwrap();
    s.write_all(&[0xff; 16]).await.unwrap();
    aborted(&mut s, &server, "exceeds the limit").await;
    let sum: u64 = good.root().call("add", (1, 2)).await.unwrap();
    assert_eq!(sum, 3);
}

#[tokio::test]
async fn truncated_frame_closes_that_connection_only() {
    let server = Server::start(calc).await;
    let mut s = raw::peer(server.addr).await;
    let frame = raw::frame_of(&raw::call(1, "echo", vec![Value::String("hello".into())]));
    s.write_all(&frame[..frame.len() - 3]).await.unwrap();
    s.shutdown().await.unwrap();
    aborted(&mut s, &server, "truncated").await;
}

#[tokio::test]
async fn nesting_bomb_fails_only_its_call() {
    let server = Server::start(calc).await;
    let mut s = raw::peer(server.addr).await;
    // A Call message whose one argument is nested 100 000 lists deep, written by hand
    // (building it as a Value would itself be the bomb): prefix of an encoded call with
    // one unit argument, then the bomb in place of the argument.
    let prefix = codec::encode_message(&raw::call(1, "echo", vec![Value::Unit])).unwrap();
    // The encoded call ends with: args [len=1, Unit tag=0], deadline None (0).
    assert_eq!(&prefix[prefix.len() - 2..], &[0, 0]);
    let mut payload = prefix[..prefix.len() - 2].to_vec();
    for _ in 0..100_000 {
        payload.extend_from_slice(&[7, 1]);
    }
    payload.extend_from_slice(&[0, 0]);
    s.write_all(&frame::frame(&payload, usize::MAX).unwrap())
        .await
        .unwrap();
    // The decoder stops at the depth limit; the frame is still whole, so only the call
    // fails, and the connection goes on.
    let err = raw::answer_to(&mut s, 1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadArgument, "{err}");
    assert!(err.message().contains("deeper than 128"), "{err}");
    raw_still_served(&mut s, 2).await;
}

#[tokio::test]
async fn a_deadline_too_far_to_represent_is_no_deadline() {
    let server = Server::start(calc).await;
    let mut s = raw::peer(server.addr).await;
    let Message::Call(mut call) = raw::call(1, "add", vec![Value::U64(2), Value::U64(3)]) else {
        unreachable!()
    };
    call.deadline_ms = Some(u64::MAX);
    raw::send(&mut s, &Message::Call(call)).await;
    assert_eq!(raw::answer_to(&mut s, 1).await.unwrap(), Value::U64(5));
    raw_still_served(&mut s, 2).await;
    still_serving(&server).await;
}

#[tokio::test]
async fn reference_that_was_never_exported_aborts_that_connection_only() {
    let server = Server::start(calc).await;
    let mut s = raw::peer(server.addr).await;
    let arg = Value::Ref(Ref::Wire(WireRef::Receiver(999)));
    raw::send(&mut s, &raw::call(1, "echo", vec![arg])).await;
    let reason = aborted(&mut s, &server, "#999").await;
    assert!(reason.message().contains("never exported"), "{reason}");
}

#[tokio::test]
async fn call_to_unknown_export_and_bogus_release_abort() {
    let server = Server::start(calc).await;
    let mut s = raw::peer(server.addr).await;
    let msg = Message::Call(Call {
        question: 1,
        target: Target::Export(42),
        method: "x".into(),
        args: vec![],
        deadline_ms: None,
    });
    raw::send(&mut s, &msg).await;
    aborted(&mut s, &server, "#42").await;

    let mut s = raw::peer(server.addr).await;
    let msg = Message::Release {
        export: 0,
        count: 1,
    };
    raw::send(&mut s, &msg).await;
    aborted(&mut s, &server, "root").await;
}

#[tokio::test]
async fn undecodable_message_aborts() {
    let server = Server::start(calc).await;
    let mut s = raw::peer(server.addr).await;
    s.write_all(&frame::frame(&[0xff, 0xff, 0xff, 0x00, 0x13], usize::MAX).unwrap())
        .await
        .unwrap();
    aborted(&mut s, &server, "malformed").await;
}

#[tokio::test]
async fn hello_claiming_a_terabyte_string_is_refused_before_authentication() {
    // A Hello whose one feature name claims 1 TiB (varint marker 253 + u64) and carries
    // nothing: decoding must check the claim against the frame, not allocate it.
    let server = Server::start(calc).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let payload = [0u8, 1, 1, 253, 0, 0, 0, 0, 0, 1, 0, 0];
    let mut bytes = MAGIC.to_vec();
    bytes.extend(frame::frame(&payload, 1 << 16).unwrap());
    s.write_all(&bytes).await.unwrap();
    gets_nothing(&mut s, "no object for a peer whose hello does not decode").await;
    still_serving(&server).await;
}

#[test]
fn values_claiming_huge_strings_or_buffers_fail_cleanly() {
    for bytes in [
        &[5u8, 253, 0, 0, 0, 0, 0, 1, 0, 0][..],
        &[6, 253, 0, 0, 0, 0, 0, 1, 0, 0],
        &[5, 253, 0, 0, 0, 0, 0, 0, 0, 0x80],
    ] {
        let err = codec::decode_value(bytes, DecodeLimits::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol);
    }
}
