//! Raw peers: TCP streams that speak the wire protocol by hand, as a broken, hostile or
//! older implementation would. Nothing here checks limits before sending.

use std::net::SocketAddr;
use std::time::Duration;

use rwc_protocol::codec;
use rwc_protocol::frame;
use rwc_protocol::message::{Call, Message, Return, Target};
use rwc_protocol::{DecodeLimits, Error, Hello, MAGIC, PROTOCOL_VERSION, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest frame a raw peer reads.
const MAX_READ: usize = 1 << 30;

/// The magic bytes and a framed `Ok(Hello)` of `version` announcing `features`.
pub fn hello_bytes(version: u16, features: &[&str]) -> Vec<u8> {
    let hello = Hello {
        version,
        features: features.iter().map(|f| (*f).to_owned()).collect(),
        credentials: None,
        agent: "raw test".into(),
    };
    let mut bytes = MAGIC.to_vec();
    bytes.extend(frame::frame(&codec::encode(&Ok::<_, Error>(hello)).unwrap(), 1 << 16).unwrap());
    bytes
}

/// Connects to `addr` and does the connecting side of the handshake by hand, speaking
/// `version` and announcing `features` (no limits, unless among them: a peer of an older
/// build). Returns the stream and the acceptor's answer.
pub async fn handshake(
    addr: SocketAddr,
    version: u16,
    features: &[&str],
) -> (TcpStream, Result<Hello, Error>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&hello_bytes(version, features)).await.unwrap();
    let mut magic = [0u8; 8];
    s.read_exact(&mut magic).await.unwrap();
    assert_eq!(magic, MAGIC);
    let reply = frame::read_frame(&mut s, 1 << 16).await.unwrap().unwrap();
    let theirs: Result<Hello, Error> = codec::decode(&reply, DecodeLimits::default()).unwrap();
    (s, theirs)
}

/// A raw peer of the server at `addr` that has completed the handshake.
pub async fn peer(addr: SocketAddr) -> TcpStream {
    let (s, theirs) = handshake(addr, PROTOCOL_VERSION, &[]).await;
    assert_eq!(theirs.unwrap().version, PROTOCOL_VERSION);
    s
}

/// `msg`, encoded and framed, with no limit checked.
pub fn frame_of(msg: &Message) -> Vec<u8> {
    frame::frame(&codec::encode_message(msg).unwrap(), usize::MAX).unwrap()
}

/// A call of the root's `method` asking `question`, with no deadline.
pub fn call(question: u64, method: &str, args: Vec<Value>) -> Message {
    Message::Call(Call {
        question,
        target: Target::Export(0),
        method: method.into(),
        args,
        deadline_ms: None,
    })
}

/// Sends `msg` as one frame.
pub async fn send(s: &mut TcpStream, msg: &Message) {
    s.write_all(&frame_of(msg)).await.unwrap();
}

/// The next message the other side sends; `None` once it closes. Waits at most 10 s.
pub async fn next_message(s: &mut TcpStream) -> Option<Message> {
    let read = tokio::time::timeout(Duration::from_secs(10), frame::read_frame(s, MAX_READ))
        .await
        .expect("a message within 10 s");
    let payload = read.ok().flatten()?;
    Some(codec::decode_message(&payload, DecodeLimits::default()).unwrap())
}

/// The answer to `question`, skipping other messages. Panics if the other side aborts or
/// closes first: the tests that use this expect the connection to survive.
pub async fn answer_to(s: &mut TcpStream, question: u64) -> Result<Value, Error> {
    loop {
        match next_message(s).await {
            Some(Message::Return(Return {
                question: q,
                result,
            })) if q == question => {
                return result;
            }
            Some(Message::Abort { reason }) => panic!("the peer aborted: {reason}"),
            Some(_) => {}
            None => panic!("the peer closed the connection"),
        }
    }
}

/// Reads what the other side sends until it closes; returns the abort reason, if one came.
pub async fn abort_reason(s: &mut TcpStream) -> Option<Error> {
    let mut reason = None;
    while let Some(msg) = next_message(s).await {
        if let Message::Abort { reason: r } = msg {
            reason = Some(r);
        }
    }
    reason
}

/// A raw server: accepts one connection on 127.0.0.1, answers its handshake announcing no
/// limits, and hands the stream to the test.
pub struct RawServer {
    pub addr: SocketAddr,
    listener: TcpListener,
}

impl RawServer {
    pub async fn start() -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        RawServer {
            addr: listener.local_addr().unwrap(),
            listener,
        }
    }

    /// Accepts the next connection and does the accepting side of the handshake.
    pub async fn accept(&self) -> TcpStream {
        let (mut s, _) = self.listener.accept().await.unwrap();
        let mut magic = [0u8; 8];
        s.read_exact(&mut magic).await.unwrap();
        assert_eq!(magic, MAGIC);
        frame::read_frame(&mut s, 1 << 16).await.unwrap().unwrap();
        s.write_all(&hello_bytes(PROTOCOL_VERSION, &[]))
            .await
            .unwrap();
        s
    }
}
