//! Limits on values and frames, over real TCP: one value over a limit fails its own call,
//! never the connection. The sender checks the limits agreed in the handshake (the smaller
//! of both sides') before sending; a receiver that still gets a value over a limit, from a
//! peer that does not check, answers that question with an error.

mod common;

use std::time::Duration;

use common::{Server, raw};
use rwc_protocol::message::{Message, Return};
use rwc_protocol::transport::connect_tcp;
use rwc_protocol::{
    Connection, ConnectionConfig, ConnectionLimits, DecodeLimits, ErrorKind, NetRef,
    PROTOCOL_VERSION, PendingCall, Service, Value,
};
use serde_bytes::ByteBuf;
use tokio::io::AsyncWriteExt;

/// `depth` lists nested around a unit.
fn nested(depth: usize) -> Value {
    (0..depth).fold(Value::Unit, |v, _| Value::List(vec![v]))
}

fn bytes(n: usize) -> Value {
    Value::Bytes(vec![0x5a; n].into())
}

/// Echoes, builds deep or big results, answers slowly, and hands out an object.
fn service() -> NetRef {
    Service::new("limits")
        .method("echo", |(v,): (Value,)| async move { Ok(v) })
        .method("count", |(v,): (Vec<Value>,)| async move { Ok(v.len()) })
        .method("deep", |(n,): (usize,)| async move { Ok(nested(n)) })
        .method("big", |(n,): (usize,)| async move {
            Ok(ByteBuf::from(vec![0u8; n]))
        })
        .method("slow", |(ms,): (u64,)| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(ms)
        })
        .method("object", |(): ()| async move {
            Ok(Service::new("obj")
                .method("hello", |(): ()| async move { Ok("hi") })
                .into_object())
        })
        .into_object()
}

/// A server of [`service`] configured with `config`, a default client of it, the
/// server's side of that connection, and what a failed call must leave intact: a call in
/// flight at the time, a netref obtained before, the next call, both ends.
struct Served {
    _server: Server,
    conn: Connection,
    side: Connection,
    root: NetRef,
    in_flight: PendingCall,
    object: NetRef,
}

impl Served {
    async fn start(config: ConnectionConfig) -> Served {
        let server = Server::start_with(config, service).await;
        let conn = server.connect().await;
        let side = server.server_side(0).await;
        let root = conn.root();
        let object: NetRef = root.call("object", ()).await.unwrap();
        let in_flight = root.call_async("slow", (300u64,));
        Served {
            _server: server,
            conn,
            side,
            root,
            in_flight,
            object,
        }
    }

    /// Asserts that everything a failed call must leave intact is.
    async fn bystanders_unharmed(self) {
        assert_eq!(self.in_flight.await.unwrap(), Value::U64(300));
        let hi: String = self.object.call("hello", ()).await.unwrap();
        assert_eq!(hi, "hi");
        let echoed = self.root.call_value("echo", vec![nested(3)]).await.unwrap();
        assert_eq!(echoed, nested(3));
        assert!(!self.conn.is_closed() && !self.side.is_closed());
        assert_eq!(self.conn.stats().questions, 0);
    }
}

/// Asserts that `err` is a `bad argument` raised on this side, naming `what`.
fn refused_here(err: &rwc_protocol::Error, what: &str) {
    assert_eq!(err.kind(), ErrorKind::BadArgument, "{err}");
    assert!(err.message().contains(what), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_deep_argument_fails_that_call_only() {
    let t = Served::start(ConnectionConfig::default()).await;
    let err = t
        .root
        .call_value("echo", vec![nested(200)])
        .await
        .unwrap_err();
    refused_here(&err, "deeper than 128 levels");
    assert!(!err.is_remote(), "refused before sending: {err}");
    // At the limit itself it goes through.
    let echoed = t.root.call_value("echo", vec![nested(128)]).await.unwrap();
    assert_eq!(echoed.depth(), 128);
    t.bystanders_unharmed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_deep_result_fails_that_call_only() {
    let t = Served::start(ConnectionConfig::default()).await;
    let err = t.root.call::<Value>("deep", (200,)).await.unwrap_err();
    // The server did not send it: its caller got an error saying why.
    refused_here(&err, "deeper than 128 levels");
    assert!(
        err.is_remote() && err.message().contains("the result could not be sent"),
        "{err}"
    );
    let fine: Value = t.root.call("deep", (128,)).await.unwrap();
    assert_eq!(fine.depth(), 128);
    t.bystanders_unharmed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_with_a_1_mib_frame_limit_fails_a_2_mib_argument_only() {
    let t = Served::start(common::max_frame(1024 * 1024)).await;
    // Both ends agreed on the smaller frame limit.
    assert_eq!(t.conn.limits().max_frame, 1024 * 1024);
    assert_eq!(t.side.limits(), t.conn.limits());
    let err = t
        .root
        .call_value("echo", vec![bytes(2 * 1024 * 1024)])
        .await
        .unwrap_err();
    refused_here(&err, "exceeds the frame limit of 1048576 bytes");
    assert!(!err.is_remote(), "refused before sending: {err}");
    // The same size as a result, from the side whose own limit is larger.
    let err = t
        .root
        .call::<ByteBuf>("big", (2 * 1024 * 1024,))
        .await
        .unwrap_err();
    refused_here(&err, "the result could not be sent");
    let half = t.root.call_value("echo", vec![bytes(512 * 1024)]).await;
    assert_eq!(half.unwrap(), bytes(512 * 1024));
    t.bystanders_unharmed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depth_length_and_value_count_are_checked_against_the_peers_limits() {
    let t = Served::start(ConnectionConfig {
        limits: config_limits(),
        ..Default::default()
    })
    .await;
    assert_eq!(t.conn.limits().decode, config_limits());
    let root = &t.root;

    let err = root.call_value("echo", vec![nested(17)]).await.unwrap_err();
    refused_here(&err, "deeper than 16 levels");
    assert!(!err.is_remote(), "{err}");
    assert!(root.call_value("echo", vec![nested(16)]).await.is_ok());

    let list = |n| Value::List(vec![Value::Unit; n]);
    let err = root
        .call_value("count", vec![list(1001)])
        .await
        .unwrap_err();
    refused_here(
        &err,
        "collection of 1001 elements exceeds the limit of 1000",
    );
    assert!(!err.is_remote(), "{err}");
    let n: usize = root
        .call("count", (vec![Value::Unit; 1000],))
        .await
        .unwrap();
    assert_eq!(n, 1000);

    // Five lists of 1000 are 5005 values with the lists themselves.
    let err = root
        .call_value("echo", vec![list(1000); 5])
        .await
        .unwrap_err();
    refused_here(&err, "more than 5000 values");
    assert!(!err.is_remote(), "{err}");
    t.bystanders_unharmed().await;
}

/// Limits tighter than the defaults: depth 16, 1000 elements, 5000 values.
fn config_limits() -> DecodeLimits {
    DecodeLimits {
        max_depth: 16,
        max_collection_len: 1000,
        max_values: 5000,
    }
}

#[tokio::test]
async fn each_side_announces_its_limits_and_both_use_the_smaller() {
    let server_config = ConnectionConfig {
        max_frame: 8 * 1024 * 1024,
        limits: DecodeLimits {
            max_depth: 200,
            ..DecodeLimits::default()
        },
        ..Default::default()
    };
    let server = Server::start_with(server_config, service).await;
    let client_config = ConnectionConfig {
        limits: DecodeLimits {
            max_collection_len: 10,
            ..DecodeLimits::default()
        },
        ..Default::default()
    };
    let conn = server
        .connect_with_config(Service::new("c").into_object(), client_config)
        .await;
    let side = server.server_side(0).await;
    let agreed = conn.limits();
    assert_eq!(agreed.max_frame, 8 * 1024 * 1024, "the server's, smaller");
    assert_eq!(agreed.decode.max_depth, 128, "the client's, smaller");
    assert_eq!(agreed.decode.max_collection_len, 10, "the client's");
    assert_eq!(side.limits(), agreed);
    assert!(
        conn.peer()
            .features
            .iter()
            .any(|f| f == "limits:frame=8388608,depth=200,len=16777216,values=16777216"),
        "{:?}",
        conn.peer().features
    );
    // The smaller limit binds the side that allowed more, too: the server cannot send the
    // client a list longer than the client accepts.
    let err = conn
        .root()
        .call_value("echo", vec![Value::List(vec![Value::Unit; 11])])
        .await
        .unwrap_err();
    refused_here(&err, "exceeds the limit of 10");
}

#[tokio::test]
async fn a_peer_that_announces_no_limits_gets_the_defaults() {
    let server = Server::start_with(common::max_frame(1024 * 1024), service).await;
    let (mut s, answer) = raw::handshake(server.addr, PROTOCOL_VERSION, &["some-feature"]).await;
    assert!(answer.is_ok());
    let side = server.server_side(0).await;
    assert_eq!(side.limits().decode, ConnectionLimits::DEFAULT.decode);
    assert_eq!(side.limits().max_frame, 1024 * 1024, "its own, smaller");
    raw::send(&mut s, &raw::call(1, "count", vec![Value::List(vec![])])).await;
    assert_eq!(raw::answer_to(&mut s, 1).await.unwrap(), Value::U64(0));
}

#[tokio::test]
async fn malformed_limits_are_refused_in_the_handshake() {
    let server = Server::start(service).await;
    let (_s, answer) = raw::handshake(server.addr, PROTOCOL_VERSION, &["limits:frame=12"]).await;
    let err = answer.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    assert!(err.message().contains("malformed limits"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Receivers: a peer that does not check its values still fails only its own call.

#[tokio::test]
async fn a_call_over_a_limit_from_a_careless_peer_is_answered_with_an_error() {
    let config = ConnectionConfig {
        max_frame: 1024 * 1024,
        limits: config_limits(),
        ..Default::default()
    };
    let server = Server::start_with(config, service).await;
    let mut s = raw::peer(server.addr).await;
    let list = |n| Value::List(vec![Value::Unit; n]);
    let cases = [
        (vec![nested(17)], "deeper than 16 levels"),
        (vec![list(1001)], "collection of 1001 elements"),
        (vec![list(1000); 5], "more than 5000 values"),
        (
            vec![bytes(2 * 1024 * 1024)],
            "exceeds the frame limit of 1048576",
        ),
    ];
    for (question, (args, what)) in (1..).zip(cases) {
        raw::send(&mut s, &raw::call(question, "echo", args)).await;
        let err = raw::answer_to(&mut s, question).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadArgument, "{err}");
        assert!(
            err.message().contains("the call was refused by the peer")
                && err.message().contains(what),
            "{err}"
        );
        // And the next call on the same connection is served.
        raw::send(&mut s, &raw::call(100 + question, "count", vec![list(3)])).await;
        assert_eq!(
            raw::answer_to(&mut s, 100 + question).await.unwrap(),
            Value::U64(3)
        );
    }
    // Several calls in one write, the bad one in the middle: only it fails.
    let mut batch = raw::frame_of(&raw::call(201, "count", vec![list(1)]));
    batch.extend(raw::frame_of(&raw::call(202, "echo", vec![nested(40)])));
    batch.extend(raw::frame_of(&raw::call(203, "count", vec![list(2)])));
    s.write_all(&batch).await.unwrap();
    assert_eq!(raw::answer_to(&mut s, 201).await.unwrap(), Value::U64(1));
    assert!(raw::answer_to(&mut s, 202).await.is_err());
    assert_eq!(raw::answer_to(&mut s, 203).await.unwrap(), Value::U64(2));
}

#[tokio::test]
async fn a_result_over_a_limit_from_a_careless_peer_fails_that_call_only() {
    let peer = raw::RawServer::start().await;
    // This side accepts frames of 1 MiB at most; the raw server ignores that.
    let connecting = tokio::spawn(connect_tcp(
        peer.addr,
        Service::new("c").into_object(),
        common::max_frame(1024 * 1024),
    ));
    let mut s = peer.accept().await;
    let conn = connecting.await.unwrap().unwrap();
    let root = conn.root();
    let (deep, big, fine) = (
        root.call_async("deep", ()),
        root.call_async("big", ()),
        root.call_async("fine", ()),
    );
    // The calls arrive in the order they were made; they are answered in reverse.
    let mut questions = Vec::new();
    for _ in 0..3 {
        match raw::next_message(&mut s).await {
            Some(Message::Call(call)) => questions.push(call.question),
            other => panic!("expected a call, got {other:?}"),
        }
    }
    let [q_deep, q_big, q_fine] = questions[..] else {
        unreachable!()
    };
    let answer = |question, result| Message::Return(Return { question, result });
    raw::send(&mut s, &answer(q_fine, Ok(Value::U64(7)))).await;
    raw::send(&mut s, &answer(q_big, Ok(bytes(2 * 1024 * 1024)))).await;
    raw::send(&mut s, &answer(q_deep, Ok(nested(200)))).await;

    let err = deep.await.unwrap_err();
    refused_here(&err, "deeper than 128 levels");
    assert!(
        err.message()
            .contains("the result was refused by this side"),
        "{err}"
    );
    let err = big.await.unwrap_err();
    refused_here(&err, "exceeds the frame limit");
    assert_eq!(fine.await.unwrap(), Value::U64(7));

    // The connection is whole: the next call is answered.
    let next = root.call_async("again", ());
    let Some(Message::Call(call)) = raw::next_message(&mut s).await else {
        panic!("expected a call");
    };
    raw::send(
        &mut s,
        &answer(call.question, Ok(Value::from("still here"))),
    )
    .await;
    assert_eq!(next.await.unwrap(), Value::from("still here"));
    assert!(!conn.is_closed());
    assert_eq!(conn.stats().questions, 0);
}
