//! Hostile or broken peers: each gets an error and loses its own connection; the server
//! goes on serving everyone else.

mod common;

use std::time::Duration;

use common::{Server, calc};
use rwc_protocol::codec;
use rwc_protocol::frame;
use rwc_protocol::message::{Call, Message, Target};
use rwc_protocol::transport::connect_tcp;
use rwc_protocol::{
    ConnectionConfig, DecodeLimits, Error, ErrorKind, Hello, MAGIC, PROTOCOL_VERSION, Ref, Service,
    Value, WireRef,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn hello(version: u16) -> Vec<u8> {
    let hello = Hello {
        version,
        features: vec![],
        credentials: None,
        agent: "raw test".into(),
    };
    let mut bytes = MAGIC.to_vec();
    bytes.extend(frame::frame(&codec::encode(&Ok::<_, Error>(hello)).unwrap(), 1 << 16).unwrap());
    bytes
}

/// A raw TCP peer that has completed the handshake.
async fn raw_peer(server: &Server) -> TcpStream {
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(&hello(PROTOCOL_VERSION)).await.unwrap();
    let mut magic = [0u8; 8];
    s.read_exact(&mut magic).await.unwrap();
    assert_eq!(magic, MAGIC);
    let reply = frame::read_frame(&mut s, 1 << 16).await.unwrap().unwrap();
    let theirs: Result<Hello, Error> = codec::decode(&reply, DecodeLimits::default()).unwrap();
    assert_eq!(theirs.unwrap().version, PROTOCOL_VERSION);
    s
}

/// Reads what the server sends until it closes; returns the abort reason, if one came.
async fn abort_reason(s: &mut TcpStream) -> Option<Error> {
    let mut reason = None;
    let read = async {
        while let Ok(Some(bytes)) = frame::read_frame(s, 1 << 20).await {
            if let Ok(Message::Abort { reason: r }) =
                codec::decode_message(&bytes, DecodeLimits::default())
            {
                reason = Some(r);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("server closed the connection");
    reason
}

/// The server still answers a well-behaved client.
async fn still_serving(server: &Server) {
    let conn = server.connect().await;
    let sum: u64 = conn.root().call("add", (20, 22)).await.unwrap();
    assert_eq!(sum, 42);
}

fn call_frame(args: Vec<Value>) -> Vec<u8> {
    let msg = Message::Call(Call {
        question: 1,
        target: Target::Export(0),
        method: "echo".into(),
        args,
        deadline_ms: None,
    });
    frame::frame(&codec::encode_message(&msg).unwrap(), usize::MAX).unwrap()
}

#[tokio::test]
async fn garbage_handshake_is_refused() {
    let server = Server::start(calc).await;
    let good = server.connect().await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        buf.is_empty(),
        "a non-rwc peer gets nothing, not even an object"
    );
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
        tokio::time::sleep(Duration::from_secs(1)).await;
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
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(&hello(PROTOCOL_VERSION + 1)).await.unwrap();
    let mut magic = [0u8; 8];
    s.read_exact(&mut magic).await.unwrap();
    let reply = frame::read_frame(&mut s, 1 << 16).await.unwrap().unwrap();
    let theirs: Result<Hello, Error> = codec::decode(&reply, DecodeLimits::default()).unwrap();
    let err = theirs.unwrap_err();
    assert!(
        err.message()
            .contains(&format!("version {}", PROTOCOL_VERSION + 1)),
        "{err}"
    );
    still_serving(&server).await;
}

#[tokio::test]
async fn oversize_frame_aborts_that_connection_only() {
    let config = ConnectionConfig {
        max_frame: 1024 * 1024,
        ..Default::default()
    };
    let server = Server::start_with(config, calc).await;
    let good = server.connect().await;
    let mut s = raw_peer(&server).await;
    s.write_all(&(64u32 * 1024 * 1024).to_le_bytes())
        .await
        .unwrap();
    let reason = abort_reason(&mut s).await.expect("an abort with a reason");
    assert!(reason.message().contains("exceeds the limit"), "{reason}");
    still_serving(&server).await;
    let sum: u64 = good.root().call("add", (1, 2)).await.unwrap();
    assert_eq!(sum, 3);
}

#[tokio::test]
async fn truncated_frame_closes_that_connection_only() {
    let server = Server::start(calc).await;
    let mut s = raw_peer(&server).await;
    let frame = call_frame(vec![Value::String("hello".into())]);
    s.write_all(&frame[..frame.len() - 3]).await.unwrap();
    s.shutdown().await.unwrap();
    let reason = abort_reason(&mut s).await.expect("an abort with a reason");
    assert!(reason.message().contains("truncated"), "{reason}");
    still_serving(&server).await;
}

#[tokio::test]
async fn nesting_bomb_aborts_that_connection_only() {
    let server = Server::start(calc).await;
    let mut s = raw_peer(&server).await;
    // A Call message whose one argument is nested 100 000 lists deep, written by hand
    // (building it as a Value would itself be the bomb): prefix of an encoded call with
    // an empty argument list, then the bomb as the single argument.
    let prefix = codec::encode_message(&Message::Call(Call {
        question: 1,
        target: Target::Export(0),
        method: "echo".into(),
        args: vec![Value::Unit],
        deadline_ms: None,
    }))
    .unwrap();
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
    let reason = abort_reason(&mut s).await.expect("an abort with a reason");
    assert!(reason.message().contains("deeper than"), "{reason}");
    still_serving(&server).await;
}

#[tokio::test]
async fn reference_that_was_never_exported_aborts_that_connection_only() {
    let server = Server::start(calc).await;
    let mut s = raw_peer(&server).await;
    s.write_all(&call_frame(vec![Value::Ref(Ref::Wire(WireRef::Receiver(
        999,
    )))]))
    .await
    .unwrap();
    let reason = abort_reason(&mut s).await.expect("an abort with a reason");
    assert!(
        reason.message().contains("#999") && reason.message().contains("never exported"),
        "{reason}"
    );
    still_serving(&server).await;
}

#[tokio::test]
async fn call_to_unknown_export_and_bogus_release_abort() {
    let server = Server::start(calc).await;
    let mut s = raw_peer(&server).await;
    let msg = Message::Call(Call {
        question: 1,
        target: Target::Export(42),
        method: "x".into(),
        args: vec![],
        deadline_ms: None,
    });
    s.write_all(&frame::frame(&codec::encode_message(&msg).unwrap(), usize::MAX).unwrap())
        .await
        .unwrap();
    let reason = abort_reason(&mut s).await.expect("an abort with a reason");
    assert!(reason.message().contains("#42"), "{reason}");

    let mut s = raw_peer(&server).await;
    let msg = Message::Release {
        export: 0,
        count: 1,
    };
    s.write_all(&frame::frame(&codec::encode_message(&msg).unwrap(), usize::MAX).unwrap())
        .await
        .unwrap();
    let reason = abort_reason(&mut s).await.expect("an abort with a reason");
    assert!(reason.message().contains("root"), "{reason}");
    still_serving(&server).await;
}

#[tokio::test]
async fn undecodable_message_aborts() {
    let server = Server::start(calc).await;
    let mut s = raw_peer(&server).await;
    s.write_all(&frame::frame(&[0xff, 0xff, 0xff, 0x00, 0x13], usize::MAX).unwrap())
        .await
        .unwrap();
    let reason = abort_reason(&mut s).await.expect("an abort with a reason");
    assert_eq!(reason.kind(), ErrorKind::Protocol);
    assert!(reason.message().contains("malformed"), "{reason}");
    still_serving(&server).await;
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
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        buf.is_empty(),
        "no object for a peer whose hello does not decode"
    );
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
