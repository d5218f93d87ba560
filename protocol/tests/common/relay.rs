//! A relay between a client and a server, on 127.0.0.1, that passes the handshake through
//! and then forwards frame by frame. It can change or drop what the client sends (a server
//! that grants longer deadlines, a network that loses cancels), and it can go silent: stop
//! forwarding in both directions while keeping both sockets open, as a peer that hangs
//! without closing (no FIN) does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rwc_protocol::codec;
use rwc_protocol::frame;
use rwc_protocol::message::Message;
use rwc_protocol::{DecodeLimits, MAGIC};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the relay does with each message the client sends: forward it (changed or not),
/// or drop it (`None`).
pub type Filter = fn(Message) -> Option<Message>;

pub struct Relay {
    pub addr: SocketAddr,
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    silent: AtomicBool,
    /// Returns forwarded from the server to the client.
    returns: AtomicUsize,
}

impl Relay {
    /// Relays every connection made to it to `target`, passing what the client sends
    /// through `filter`.
    pub async fn start(target: SocketAddr, filter: Filter) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let st = state.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(target).await else {
                    break;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, st.clone(), Some(filter)));
                tokio::spawn(pump(sr, cw, st.clone(), None));
            }
        });
        Relay { addr, state }
    }

    /// A relay that forwards everything unchanged.
    pub async fn transparent(target: SocketAddr) -> Relay {
        Relay::start(target, Some).await
    }

    /// From now on nothing is forwarded either way; both connections stay open.
    pub fn go_silent(&self) {
        self.state.silent.store(true, Ordering::SeqCst);
    }

    /// How many returns the server sent that reached the client.
    pub fn returns_forwarded(&self) -> usize {
        self.state.returns.load(Ordering::SeqCst)
    }
}

/// Forwards one direction: the magic and the handshake frame as they are, then each
/// message, through `filter` when there is one.
async fn pump<R, W>(mut r: R, mut w: W, state: Arc<State>, filter: Option<Filter>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut magic = [0u8; MAGIC.len()];
    if r.read_exact(&mut magic).await.is_err() || w.write_all(&magic).await.is_err() {
        return;
    }
    let mut handshake_done = false;
    // Read errors end the relay of this direction, dropping (closing) its writer.
    while let Ok(Some(payload)) = frame::read_frame(&mut r, usize::MAX).await {
        if state.silent.load(Ordering::SeqCst) {
            continue;
        }
        let payload = if !handshake_done {
            handshake_done = true;
            payload
        } else {
            let msg = codec::decode_message(&payload, DecodeLimits::default())
                .expect("the relay is given messages it can decode");
            let msg = match filter {
                Some(filter) => match filter(msg) {
                    Some(msg) => msg,
                    None => continue,
                },
                None => msg,
            };
            if matches!(msg, Message::Return(_)) {
                state.returns.fetch_add(1, Ordering::SeqCst);
            }
            codec::encode_message(&msg).unwrap()
        };
        let framed = frame::frame(&payload, usize::MAX).unwrap();
        if w.write_all(&framed).await.is_err() {
            return;
        }
    }
}
