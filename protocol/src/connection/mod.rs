//! The symmetric connection: both sides export objects, both call.
//!
//! This file is the core: [`Connection`], the state its handles and tasks share, opening
//! and closing. Each other concept has its own file:
//! - [`io`]: the reader task (decode, dispatch; never waits on a reply: each incoming call
//!   is first tried inline and, if it does not finish at once, runs as its own task, so
//!   A→B→A→B… nests to any depth) and the writer task (batches frames);
//! - [`config`]: [`ConnectionConfig`] and [`CallOptions`];
//! - [`limits`]: the frame and value limits both sides agree on in the handshake;
//! - [`flow`]: flow control (queued bytes, high water, stalled peers);
//! - [`questions`] and [`pending`]: calls this side made, their deadlines, and the
//!   [`PendingCall`] a caller holds;
//! - [`refs`], [`exports`], [`imports`]: netrefs crossing the connection and the tables
//!   that count them.

mod config;
mod exports;
mod flow;
mod imports;
mod inbound;
mod io;
mod limits;
mod pending;
mod questions;
mod refs;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use futures::future::AbortHandle;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::time::Instant;

pub use config::{
    CallOptions, ConnectionConfig, DEFAULT_MAX_CALLS_IN_FLIGHT, DEFAULT_MAX_REQUEST_BYTES_IN_FLIGHT,
};
pub(crate) use inbound::Seat;
pub use inbound::{ANONYMOUS, InboundUsage, PrincipalBudget};
pub use limits::ConnectionLimits;
pub use pending::PendingCall;

use crate::PROTOCOL_VERSION;
use crate::codec;
use crate::error::{Error, ErrorKind};
use crate::frame;
use crate::handshake::{self, Hello, PeerInfo};
use crate::message::{Call, Message, ROOT_EXPORT, Return, Target};
use crate::netref::{Handle, NetRef, Proxy};
use crate::value::Value;
use exports::Exports;
use flow::Flow;
use imports::Imports;
use inbound::Inbound;
use io::Outgoing;
use questions::Questions;

/// Counts of a connection's tables, for monitoring and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnectionStats {
    /// Objects this side exports to the peer (the root included while open).
    pub exports: usize,
    /// Distinct peer objects this side holds proxies to (the root not counted).
    pub imports: usize,
    /// Calls this side made that have not returned.
    pub questions: usize,
    /// Calls from the peer that are running.
    pub answers: usize,
    /// Bytes of frames queued for the peer and not yet written to the transport.
    pub queued_bytes: usize,
    /// Bytes of the requests of the peer's calls in flight on this side (see
    /// [`ConnectionConfig::max_request_bytes_in_flight`]).
    pub request_bytes_in_flight: usize,
}

/// A connection to a peer. Cloning gives another handle to the same connection.
///
/// The connection closes when [`close`](Connection::close) is called, when the peer closes
/// it or breaks the protocol, or when the last handle to it (connection or proxy) drops.
#[derive(Clone)]
pub struct Connection {
    link: Arc<Link>,
}

/// What user handles and proxies hold: dropping the last one closes the connection.
pub(crate) struct Link {
    pub(crate) shared: Arc<Shared>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.shared.close(Error::disconnected(
            "the last handle to the connection was dropped",
        ));
    }
}

static CONNECTION_IDS: AtomicU64 = AtomicU64::new(1);

/// State shared by the handles, proxies and the connection's tasks.
pub(crate) struct Shared {
    pub(crate) id: u64,
    config: ConnectionConfig,
    /// The limits both sides agreed on: what this side sends and accepts.
    limits: ConnectionLimits,
    peer: Hello,
    /// What the transport told of the peer (accepting side).
    peer_info: PeerInfo,
    principal: Option<String>,
    link: OnceLock<Weak<Link>>,
    exports: Mutex<Exports>,
    imports: Mutex<Imports>,
    questions: Mutex<Questions>,
    /// Tells the deadline task that a question has an earlier deadline than it knew.
    deadline_changed: Notify,
    next_question: AtomicU64,
    answers: Mutex<HashMap<u64, Answering>>,
    pings: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    out: mpsc::UnboundedSender<Outgoing>,
    flow: Flow,
    /// Calls from the peer in flight, and their request bytes.
    inbound: Arc<Inbound>,
    /// The principal's place for this connection, given back when it closes.
    seat: Mutex<Option<Seat>>,
    closed: AtomicBool,
    close_reason: Mutex<Option<Error>>,
    closed_tx: watch::Sender<bool>,
}

/// A call from the peer being answered by a task: how to abort it, and its share of the
/// inbound bounds, given back when it leaves the table (answered, cancelled, or the
/// connection closed), not whenever the aborted task next runs.
pub(crate) struct Answering {
    pub(crate) handle: AbortHandle,
    pub(crate) _ticket: inbound::Ticket,
}

/// The read half of a transport a connection runs over (a TCP stream's, a child process's
/// stdout, a TLS stream's).
pub trait ReadHalf: AsyncRead + Send + Unpin + 'static {}

impl<T: AsyncRead + Send + Unpin + 'static> ReadHalf for T {}

/// The write half of a transport a connection runs over.
pub trait WriteHalf: AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncWrite + Send + Unpin + 'static> WriteHalf for T {}

/// Which end of the handshake this side is, and what the transport knows of the peer.
enum Side {
    /// `peer` names the node in messages (`127.0.0.1:18870`), where the transport knows it.
    Connecting {
        peer: Option<String>,
    },
    Accepting {
        peer: PeerInfo,
    },
}

impl Connection {
    /// Opens a connection as the connecting side, serving `root` to the peer.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the handshake and the transport.
    pub async fn connect<T>(
        io: T,
        root: NetRef,
        config: ConnectionConfig,
    ) -> Result<Connection, Error>
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (r, w) = tokio::io::split(io);
        Self::connect_split(r, w, root, config).await
    }

    /// Opens a connection as the accepting side, serving `root` to the peer.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the handshake and the transport.
    pub async fn accept<T>(
        io: T,
        root: NetRef,
        config: ConnectionConfig,
    ) -> Result<Connection, Error>
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (r, w) = tokio::io::split(io);
        Self::accept_split(r, w, root, config).await
    }

    /// [`connect`](Connection::connect) over separate read and write halves (a child
    /// process's stdout and stdin, a TCP stream's owned halves).
    ///
    /// # Cancel safety
    /// Dropping the future abandons the handshake and the transport.
    pub async fn connect_split(
        r: impl ReadHalf,
        w: impl WriteHalf,
        root: NetRef,
        config: ConnectionConfig,
    ) -> Result<Connection, Error> {
        Self::establish(r, w, |_| root, config, Side::Connecting { peer: None }).await
    }

    /// [`accept`](Connection::accept) over separate read and write halves.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the handshake and the transport.
    pub async fn accept_split(
        r: impl ReadHalf,
        w: impl WriteHalf,
        root: NetRef,
        config: ConnectionConfig,
    ) -> Result<Connection, Error> {
        Self::accept_peer(r, w, PeerInfo::default(), config, |_| root).await
    }

    /// Opens a connection as the accepting side over a transport that knows the `peer`
    /// (its address, its TLS client certificate), for the authenticator to see. The root
    /// served is made once the peer is authenticated: `root` gets the principal's name
    /// (`None` without an [`Authenticator`](crate::Authenticator)), so each principal can
    /// be served its own.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the handshake and the transport.
    pub async fn accept_peer(
        r: impl ReadHalf,
        w: impl WriteHalf,
        peer: PeerInfo,
        config: ConnectionConfig,
        root: impl FnOnce(Option<&str>) -> NetRef,
    ) -> Result<Connection, Error> {
        Self::establish(r, w, root, config, Side::Accepting { peer }).await
    }

    /// [`connect_split`](Connection::connect_split) to a node the transport can name
    /// (`127.0.0.1:18870`), so that errors say which node and what address to use.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the handshake and the transport.
    pub(crate) async fn connect_named(
        r: impl ReadHalf,
        w: impl WriteHalf,
        peer: String,
        root: NetRef,
        config: ConnectionConfig,
    ) -> Result<Connection, Error> {
        let side = Side::Connecting { peer: Some(peer) };
        Self::establish(r, w, |_| root, config, side).await
    }

    async fn establish(
        r: impl ReadHalf,
        mut w: impl WriteHalf,
        root: impl FnOnce(Option<&str>) -> NetRef,
        config: ConnectionConfig,
        side: Side,
    ) -> Result<Connection, Error> {
        let mut r = tokio::io::BufReader::with_capacity(64 * 1024, r);
        let mine = ConnectionLimits::of(&config);
        let hello = Hello {
            version: PROTOCOL_VERSION,
            features: mine.announce(&config.features),
            credentials: match side {
                Side::Connecting { .. } => config.credentials.clone(),
                Side::Accepting { .. } => None,
            },
            agent: config.agent.clone(),
        };
        let handshake = async {
            match &side {
                Side::Connecting { peer } => {
                    let theirs =
                        handshake::connect(&mut r, &mut w, &hello, peer.as_deref()).await?;
                    // The acceptor's places, if this side was given a budget anyway.
                    let seat = config
                        .principal_budget
                        .as_ref()
                        .map(|budget| budget.seat(None))
                        .transpose()?;
                    Ok((theirs, None, seat))
                }
                Side::Accepting { peer } => {
                    let auth = config.authenticator.as_deref();
                    let budget = config.principal_budget.as_ref();
                    handshake::accept(&mut r, &mut w, &hello, auth, peer, budget).await
                }
            }
        };
        let (peer, principal, seat) = tokio::time::timeout(config.handshake_timeout, handshake)
            .await
            .map_err(|_| {
                Error::new(
                    ErrorKind::TimedOut,
                    format!(
                        "handshake did not finish within {:?}",
                        config.handshake_timeout
                    ),
                )
            })??;
        // The handshake has checked that the peer's limits parse.
        let limits = mine.min(ConnectionLimits::from_features(&peer.features)?);
        let root = root(principal.as_deref());
        let peer_info = match side {
            Side::Accepting { peer } => peer,
            Side::Connecting { .. } => PeerInfo::default(),
        };

        let (out, out_rx) = mpsc::unbounded_channel();
        let (closed_tx, closed_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            id: CONNECTION_IDS.fetch_add(1, Ordering::Relaxed),
            limits,
            exports: Mutex::new(Exports::new(root.as_object())),
            imports: Mutex::new(Imports::default()),
            questions: Mutex::new(Questions::default()),
            deadline_changed: Notify::new(),
            next_question: AtomicU64::new(1),
            answers: Mutex::new(HashMap::new()),
            pings: Mutex::new(HashMap::new()),
            out,
            flow: Flow::new(config.max_queued_bytes, config.stall_timeout),
            inbound: Inbound::new(
                config.max_calls_in_flight,
                config.max_request_bytes_in_flight,
                seat.as_ref().map(Seat::share),
            ),
            seat: Mutex::new(seat),
            closed: AtomicBool::new(false),
            close_reason: Mutex::new(None),
            closed_tx,
            link: OnceLock::new(),
            config,
            peer,
            peer_info,
            principal,
        });
        let link = Arc::new(Link {
            shared: shared.clone(),
        });
        let _ = shared.link.set(Arc::downgrade(&link));
        tokio::spawn(io::write_loop(w, out_rx, shared.clone()));
        tokio::spawn(io::read_loop(r, shared.clone(), closed_rx.clone()));
        tokio::spawn(questions::expire_loop(shared.clone(), closed_rx));
        tracing::debug!(connection = shared.id, peer = %shared.peer.agent, "connection open");
        Ok(Connection { link })
    }

    pub(crate) fn from_link(link: Arc<Link>) -> Connection {
        Connection { link }
    }

    /// The peer's root object.
    pub fn root(&self) -> NetRef {
        NetRef(Handle::Remote(Arc::new(Proxy {
            link: self.link.clone(),
            id: ROOT_EXPORT,
        })))
    }

    /// Closes the connection: pending calls fail with `disconnected`, everything exported
    /// to the peer is released. Frames already queued are still sent while the peer reads
    /// them; if it reads nothing for [`ConnectionConfig::stall_timeout`] they are dropped.
    pub fn close(&self) {
        self.link
            .shared
            .close(Error::disconnected("connection closed by this side"));
    }

    /// Waits until the connection is closed; returns why.
    ///
    /// # Cancel safety
    /// Dropping the future has no effect on the connection.
    pub async fn closed(&self) -> Error {
        let mut rx = self.link.shared.closed_tx.subscribe();
        let _ = rx.wait_for(|closed| *closed).await;
        self.close_reason()
            .unwrap_or_else(|| Error::disconnected("connection closed"))
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.link.shared.is_closed()
    }

    /// Why the connection closed, once it has.
    pub fn close_reason(&self) -> Option<Error> {
        lock(&self.link.shared.close_reason).clone()
    }

    /// Sends a ping and waits for the pong; returns the round-trip time. The peer handles
    /// messages in order, so once the pong is back it has handled everything this side
    /// sent before the ping (a release, a cancel): a ping is a barrier.
    ///
    /// # Cancel safety
    /// Dropping the future forgets the ping; a late pong is ignored.
    pub async fn ping(&self) -> Result<Duration, Error> {
        let shared = &self.link.shared;
        let nonce = shared.next_question.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut pings = lock(&shared.pings);
            shared.check_open()?;
            pings.insert(nonce, tx);
        }
        let start = Instant::now();
        shared.send(Message::Ping { nonce })?;
        rx.await.map_err(|_| shared.disconnected_error())?;
        Ok(start.elapsed())
    }

    /// Counts of the connection's tables.
    pub fn stats(&self) -> ConnectionStats {
        self.link.shared.stats()
    }

    /// The limits in force: the smaller of this side's and the peer's, for what either
    /// sends. A call whose arguments break them fails with `bad argument` before it is
    /// sent; so does a result, whose caller gets that error instead.
    pub fn limits(&self) -> ConnectionLimits {
        self.link.shared.limits
    }

    /// What the peer said about itself in the handshake.
    pub fn peer(&self) -> &Hello {
        &self.link.shared.peer
    }

    /// The principal the peer authenticated as (accepting side with an authenticator).
    pub fn principal(&self) -> Option<&str> {
        self.link.shared.principal.as_deref()
    }

    /// What the transport told of the peer: its address and TLS client certificate
    /// (accepting side, through [`accept_peer`](Connection::accept_peer); empty otherwise).
    pub fn peer_info(&self) -> &PeerInfo {
        &self.link.shared.peer_info
    }

    /// A number that identifies the connection in logs.
    pub fn id(&self) -> u64 {
        self.link.shared.id
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.link.shared.id)
            .field("peer", &self.link.shared.peer.agent)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Shared {
    pub(crate) fn stats(&self) -> ConnectionStats {
        ConnectionStats {
            exports: lock(&self.exports).len(),
            imports: lock(&self.imports).len(),
            questions: lock(&self.questions).len(),
            answers: lock(&self.answers).len(),
            queued_bytes: self.flow.queued(),
            request_bytes_in_flight: self.inbound.usage().bytes,
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    fn check_open(&self) -> Result<(), Error> {
        if self.is_closed() {
            Err(self.disconnected_error())
        } else {
            Ok(())
        }
    }

    fn disconnected_error(&self) -> Error {
        match &*lock(&self.close_reason) {
            Some(reason) if reason.kind() == ErrorKind::Disconnected => {
                Error::disconnected(format!("connection is closed ({})", reason.message()))
            }
            Some(reason) => {
                Error::disconnected("connection is closed").with_cause(reason.to_string())
            }
            None => Error::disconnected("connection is closed"),
        }
    }

    /// Starts a call of `method` on the peer's export `target`.
    pub(crate) fn start_call(
        self: &Arc<Self>,
        target: u64,
        method: &str,
        args: Vec<Value>,
        options: CallOptions,
    ) -> PendingCall {
        let timeout = options.timeout.or(self.config.default_timeout);
        // A timeout too long to represent is no deadline.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let question = self.next_question.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let wake = {
            let mut questions = lock(&self.questions);
            // Checked under the lock that `close` drains, so no question is left behind.
            if let Err(e) = self.check_open() {
                return PendingCall::failed(e);
            }
            questions.insert(question, tx, deadline)
        };
        if wake {
            self.deadline_changed.notify_one();
        }
        let msg = Message::Call(Call {
            question,
            target: Target::Export(target),
            method: method.to_owned(),
            args,
            deadline_ms: timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        });
        if let Err(e) = self.send(msg) {
            lock(&self.questions).forget(question);
            return PendingCall::failed(e);
        }
        PendingCall::remote(self.clone(), question, method, rx, timeout, deadline)
    }

    /// Checks `msg` against the agreed limits, encodes it (exporting the objects it
    /// carries) and queues it for the writer. A message over a limit is not sent: the error
    /// (`bad argument`) is for its caller.
    pub(crate) fn send(&self, mut msg: Message) -> Result<(), Error> {
        self.check_open()?;
        let has_refs = self.limits.decode.measure(msg.values()).map_err(|breach| {
            Error::bad_argument(format!("the peer would refuse this message: {breach}"))
        })?;
        let mut exported = Vec::new();
        // The replaced netrefs stay alive until the frame is queued: dropping a proxy sends
        // a `Release`, which must not overtake the message that sends the object back.
        let mut keep_alive = Vec::new();
        let result = if has_refs {
            self.export_refs(&mut msg, &mut exported, &mut keep_alive)
        } else {
            Ok(())
        }
        .and_then(|()| self.encode_frame(&msg));
        match result {
            Ok(bytes) => {
                self.flow.queue(bytes.len());
                let _ = self.out.send(Outgoing::Frame(bytes));
                drop(keep_alive);
                Ok(())
            }
            Err(e) => {
                let mut freed = Vec::new();
                {
                    let mut exports = lock(&self.exports);
                    for id in exported {
                        if let Ok(Some(obj)) = exports.release(id, 1) {
                            freed.push(obj);
                        }
                    }
                }
                drop(freed);
                Err(e)
            }
        }
    }

    /// The frame for `msg`: its large bytes values are not copied into it but written
    /// from their own buffers.
    fn encode_frame(&self, msg: &Message) -> Result<codec::Segments, Error> {
        let len = codec::encoded_len(msg)?;
        let prefix = frame::prefix(len, self.limits.max_frame)?;
        let segments = codec::encode_segments(&prefix, msg)?;
        if segments.len() == frame::PREFIX_LEN + len {
            Ok(segments)
        } else {
            Err(Error::failed(format!(
                "a message measured {len} bytes but encoded to {}",
                segments.len() - frame::PREFIX_LEN
            )))
        }
    }

    /// A call from the peer finished (or failed before it started): answer it.
    pub(crate) fn reply(&self, question: u64, result: Result<Value, Error>) {
        let msg = Message::Return(Return { question, result });
        if let Err(e) = self.send(msg) {
            if e.kind() == ErrorKind::Disconnected {
                return;
            }
            // The result could not be sent (over a limit, not encodable): say so instead.
            let err = e.in_context("the result could not be sent");
            let _ = self.send(Message::Return(Return {
                question,
                result: Err(err),
            }));
        }
    }

    /// Closes because the peer broke the protocol: tell it why, then close.
    pub(crate) fn abort(&self, reason: Error) {
        tracing::warn!(connection = self.id, %reason, "aborting connection");
        let _ = self.send(Message::Abort {
            reason: reason.clone(),
        });
        self.close(reason);
    }

    /// Closes the connection (idempotent).
    pub(crate) fn close(&self, reason: Error) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        tracing::debug!(connection = self.id, %reason, "connection closed");
        *lock(&self.close_reason) = Some(reason);
        let failed = self.disconnected_error();
        lock(&self.questions).fail_all(&failed);
        let answers: Vec<_> = lock(&self.answers).drain().collect();
        for (_, answering) in answers {
            answering.handle.abort();
        }
        lock(&self.pings).clear();
        let freed = lock(&self.exports).clear();
        lock(&self.imports).clear();
        drop(lock(&self.seat).take());
        let _ = self.out.send(Outgoing::Shutdown);
        self.closed_tx.send_replace(true);
        // Objects are dropped outside every lock: their drops may touch other connections.
        drop(freed);
    }
}

/// Locks a mutex, recovering from poisoning: the tables stay consistent at every point
/// where a panic could unwind (user code never runs under these locks).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
