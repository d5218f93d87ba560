//! The symmetric connection: both sides export objects, both call.
//!
//! One reader task decodes frames and never waits on a reply: returns complete their
//! callers' futures, and each incoming call is first tried inline and, if it does not finish
//! at once, runs as its own task. So A→B→A→B… nests to any depth with no thread per level.
//! One writer task batches outgoing frames. Flow control: while more than
//! [`ConnectionConfig::max_queued_bytes`] wait to be written, the reader stops reading, so a
//! peer that asks for more than it reads gets no more work done until it reads; one that
//! reads nothing for [`ConnectionConfig::stall_timeout`] is disconnected. Netref
//! bookkeeping (export counts, releases) happens as values are sent and received; see
//! [`exports`] and [`imports`].

mod exports;
mod imports;
mod io;
mod pending;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use futures::future::AbortHandle;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, mpsc, oneshot, watch};

pub use pending::PendingCall;

use crate::PROTOCOL_VERSION;
use crate::codec;
use crate::error::{Error, ErrorKind};
use crate::frame;
use crate::handshake::{self, Authenticator, Hello};
use crate::message::{Call, Message, ROOT_EXPORT, Return, Target};
use crate::netref::{Handle, NetRef, Proxy};
use crate::value::{DecodeLimits, Ref, Value, WireRef};
use exports::Exports;
use imports::Imports;
use io::Outgoing;

/// Settings of one connection.
#[derive(Clone)]
pub struct ConnectionConfig {
    /// Deadline of calls that don't set one; `None`: wait forever.
    pub default_deadline: Option<Duration>,
    /// Largest frame sent or accepted, in bytes.
    pub max_frame: usize,
    /// Bounds on decoding what the peer sends.
    pub limits: DecodeLimits,
    /// How long the handshake may take.
    pub handshake_timeout: Duration,
    /// Credentials presented when connecting.
    pub credentials: Option<Vec<u8>>,
    /// Checks the credentials of connecting peers (accepting side).
    pub authenticator: Option<Arc<dyn Authenticator>>,
    /// Features announced in the handshake.
    pub features: Vec<String>,
    /// Software name announced in the handshake.
    pub agent: String,
    /// Most calls from the peer running at once; more are answered `overloaded`.
    pub max_incoming_calls: usize,
    /// Flow control: when more than this many bytes wait to be written to the peer, the
    /// connection stops reading from the peer (so it starts no more work for it) until
    /// they drain to half. A single frame larger than this is still sent.
    pub max_queued_bytes: usize,
    /// A peer that reads nothing for this long while frames wait for it is disconnected
    /// and what was queued for it is freed (checked every `stall_timeout`, so it happens
    /// within twice this).
    pub stall_timeout: Duration,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            default_deadline: Some(Duration::from_secs(30)),
            max_frame: 128 * 1024 * 1024,
            limits: DecodeLimits::default(),
            handshake_timeout: Duration::from_secs(10),
            credentials: None,
            authenticator: None,
            features: Vec::new(),
            agent: format!("rwc-protocol {}", env!("CARGO_PKG_VERSION")),
            max_incoming_calls: 100_000,
            max_queued_bytes: 64 * 1024 * 1024,
            stall_timeout: Duration::from_secs(60),
        }
    }
}

impl std::fmt::Debug for ConnectionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionConfig")
            .field("default_deadline", &self.default_deadline)
            .field("max_frame", &self.max_frame)
            .field("limits", &self.limits)
            .field("handshake_timeout", &self.handshake_timeout)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .field("authenticator", &self.authenticator.is_some())
            .field("features", &self.features)
            .field("agent", &self.agent)
            .field("max_incoming_calls", &self.max_incoming_calls)
            .field("max_queued_bytes", &self.max_queued_bytes)
            .field("stall_timeout", &self.stall_timeout)
            .finish()
    }
}

/// Options of one call.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// Deadline of this call; `None`: the connection's default.
    pub deadline: Option<Duration>,
}

impl CallOptions {
    /// Options with a deadline.
    pub fn deadline(deadline: Duration) -> Self {
        CallOptions {
            deadline: Some(deadline),
        }
    }
}

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
    peer: Hello,
    principal: Option<String>,
    link: OnceLock<Weak<Link>>,
    exports: Mutex<Exports>,
    imports: Mutex<Imports>,
    questions: Mutex<HashMap<u64, oneshot::Sender<Result<Value, Error>>>>,
    next_question: AtomicU64,
    answers: Mutex<HashMap<u64, AbortHandle>>,
    pings: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    out: mpsc::UnboundedSender<Outgoing>,
    /// Bytes sent to `out` and not yet written to the transport.
    queued: AtomicUsize,
    /// Counts writes to the transport that made progress: a stalled peer leaves it still.
    progress: AtomicU64,
    /// Woken when `queued` falls to half of `max_queued_bytes`.
    drained: Notify,
    closed: AtomicBool,
    close_reason: Mutex<Option<Error>>,
    closed_tx: watch::Sender<bool>,
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
    pub async fn connect_split<R, W>(
        r: R,
        w: W,
        root: NetRef,
        config: ConnectionConfig,
    ) -> Result<Connection, Error>
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        Self::establish(r, w, root, config, true).await
    }

    /// [`accept`](Connection::accept) over separate read and write halves.
    pub async fn accept_split<R, W>(
        r: R,
        w: W,
        root: NetRef,
        config: ConnectionConfig,
    ) -> Result<Connection, Error>
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        Self::establish(r, w, root, config, false).await
    }

    async fn establish<R, W>(
        r: R,
        mut w: W,
        root: NetRef,
        config: ConnectionConfig,
        connecting: bool,
    ) -> Result<Connection, Error>
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let mut r = tokio::io::BufReader::with_capacity(64 * 1024, r);
        let hello = Hello {
            version: PROTOCOL_VERSION,
            features: config.features.clone(),
            credentials: if connecting {
                config.credentials.clone()
            } else {
                None
            },
            agent: config.agent.clone(),
        };
        let handshake = async {
            if connecting {
                handshake::connect(&mut r, &mut w, &hello)
                    .await
                    .map(|peer| (peer, None))
            } else {
                handshake::accept(&mut r, &mut w, &hello, config.authenticator.as_deref()).await
            }
        };
        let (peer, principal) = tokio::time::timeout(config.handshake_timeout, handshake)
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

        let (out, out_rx) = mpsc::unbounded_channel();
        let (closed_tx, closed_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            id: CONNECTION_IDS.fetch_add(1, Ordering::Relaxed),
            exports: Mutex::new(Exports::new(root.as_object())),
            imports: Mutex::new(Imports::default()),
            questions: Mutex::new(HashMap::new()),
            next_question: AtomicU64::new(1),
            answers: Mutex::new(HashMap::new()),
            pings: Mutex::new(HashMap::new()),
            out,
            queued: AtomicUsize::new(0),
            progress: AtomicU64::new(0),
            drained: Notify::new(),
            closed: AtomicBool::new(false),
            close_reason: Mutex::new(None),
            closed_tx,
            link: OnceLock::new(),
            config,
            peer,
            principal,
        });
        let link = Arc::new(Link {
            shared: shared.clone(),
        });
        let _ = shared.link.set(Arc::downgrade(&link));
        tokio::spawn(io::write_loop(w, out_rx, shared.clone()));
        tokio::spawn(io::read_loop(r, shared.clone(), closed_rx));
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
        self.link.shared.closed.load(Ordering::SeqCst)
    }

    /// Why the connection closed, once it has.
    pub fn close_reason(&self) -> Option<Error> {
        lock(&self.link.shared.close_reason).clone()
    }

    /// Sends a ping and waits for the pong; returns the round-trip time.
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
        let start = tokio::time::Instant::now();
        shared.send(Message::Ping { nonce })?;
        rx.await.map_err(|_| shared.disconnected_error())?;
        Ok(start.elapsed())
    }

    /// Counts of the connection's tables.
    pub fn stats(&self) -> ConnectionStats {
        self.link.shared.stats()
    }

    /// What the peer said about itself in the handshake.
    pub fn peer(&self) -> &Hello {
        &self.link.shared.peer
    }

    /// The principal the peer authenticated as (accepting side with an authenticator).
    pub fn principal(&self) -> Option<&str> {
        self.link.shared.principal.as_deref()
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
            queued_bytes: self.queued.load(Ordering::Relaxed),
        }
    }

    fn check_open(&self) -> Result<(), Error> {
        if self.closed.load(Ordering::SeqCst) {
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
        let deadline = options.deadline.or(self.config.default_deadline);
        let question = self.next_question.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut questions = lock(&self.questions);
            // Checked under the lock that `close` drains, so no question is left behind.
            if let Err(e) = self.check_open() {
                return PendingCall::failed(e);
            }
            questions.insert(question, tx);
        }
        let deadline_ms = deadline.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let msg = Message::Call(Call {
            question,
            target: Target::Export(target),
            method: method.to_owned(),
            args,
            deadline_ms,
        });
        if let Err(e) = self.send(msg) {
            lock(&self.questions).remove(&question);
            return PendingCall::failed(e);
        }
        PendingCall::remote(self.clone(), question, method, rx, deadline)
    }

    /// The caller of `question` gave up: forget it and tell the peer.
    pub(crate) fn cancel_question(&self, question: u64) {
        if lock(&self.questions).remove(&question).is_some() {
            let _ = self.send(Message::Cancel { question });
        }
    }

    /// Encodes `msg` (exporting the objects it carries) and queues it for the writer.
    pub(crate) fn send(&self, mut msg: Message) -> Result<(), Error> {
        self.check_open()?;
        let mut exported = Vec::new();
        // The replaced netrefs stay alive until the frame is queued: dropping a proxy sends
        // a `Release`, which must not overtake the message that sends the object back.
        let mut keep_alive = Vec::new();
        let result = self
            .export_refs(&mut msg, &mut exported, &mut keep_alive)
            .and_then(|()| self.encode_frame(&msg));
        match result {
            Ok(bytes) => {
                self.queued.fetch_add(bytes.len(), Ordering::Relaxed);
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

    fn encode_frame(&self, msg: &Message) -> Result<Vec<u8>, Error> {
        // Most frames are small: one allocation instead of a few reallocations.
        let mut buf = Vec::with_capacity(128);
        let start = frame::begin_frame(&mut buf);
        codec::encode_message_into(msg, &mut buf)?;
        frame::finish_frame(&mut buf, start, self.config.max_frame)?;
        Ok(buf)
    }

    /// Replaces the live netrefs in `msg` by wire references.
    fn export_refs(
        self: &Shared,
        msg: &mut Message,
        exported: &mut Vec<u64>,
        keep_alive: &mut Vec<NetRef>,
    ) -> Result<(), Error> {
        let mut values = msg.values_mut().peekable();
        if values.peek().is_none() {
            return Ok(());
        }
        let mut exports = lock(&self.exports);
        for value in values {
            if !value.has_refs() {
                continue;
            }
            value.visit_refs_mut(&mut |r: &mut Ref| {
                let wire = match r {
                    Ref::Wire(w) => {
                        return Err(Error::bad_argument(format!(
                            "a raw wire reference ({w:?}) cannot be sent on a connection; send a NetRef"
                        )));
                    }
                    Ref::Object(NetRef(Handle::Remote(p))) if std::ptr::eq(Arc::as_ptr(&p.link.shared), self) => {
                        WireRef::Receiver(p.id)
                    }
                    Ref::Object(n) => {
                        let id = exports.export(&n.as_object());
                        if id != ROOT_EXPORT {
                            exported.push(id);
                        }
                        WireRef::Sender(id)
                    }
                };
                if let Ref::Object(n) = std::mem::replace(r, Ref::Wire(wire)) {
                    keep_alive.push(n);
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Replaces the wire references in a received message by netrefs.
    fn import_refs(&self, msg: &mut Message) -> Result<(), Error> {
        let mut releases = Vec::new();
        let mut result = Ok(());
        for value in msg.values_mut() {
            if !value.has_refs() {
                continue;
            }
            result = value.visit_refs_mut(&mut |r: &mut Ref| {
                let netref = match *r {
                    Ref::Wire(WireRef::Sender(id)) => self.proxy_for(id, &mut releases)?,
                    Ref::Wire(WireRef::Receiver(id)) => {
                        let obj = lock(&self.exports).object(id).ok_or_else(|| {
                            Error::protocol(format!("peer sent a reference to export #{id}, which this side never exported"))
                        })?;
                        NetRef::from_object(obj)
                    }
                    Ref::Object(_) => return Err(Error::protocol("decoded message holds a live reference")),
                };
                *r = Ref::Object(netref);
                Ok(())
            });
            if result.is_err() {
                break;
            }
        }
        for (export, count) in releases {
            let _ = self.send(Message::Release { export, count });
        }
        result
    }

    fn proxy_for(&self, id: u64, releases: &mut Vec<(u64, u64)>) -> Result<NetRef, Error> {
        let link = self
            .link
            .get()
            .and_then(Weak::upgrade)
            .ok_or_else(|| Error::disconnected("connection is closing"))?;
        if id == ROOT_EXPORT {
            return Ok(NetRef(Handle::Remote(Arc::new(Proxy { link, id }))));
        }
        let mut imports = lock(&self.imports);
        let received = imports.receive(id);
        if let Some(count) = received.release {
            releases.push((id, count));
        }
        let (proxy, spare_link) = match received.existing {
            Some(p) => (p, Some(link)),
            None => {
                let p = Arc::new(Proxy { link, id });
                imports.insert(id, &p);
                (p, None)
            }
        };
        drop(imports);
        // Dropped outside the lock: a link's drop may close the connection, which locks it.
        drop(spare_link);
        Ok(NetRef(Handle::Remote(proxy)))
    }

    /// The last local handle to a proxy dropped: release what it held.
    pub(crate) fn proxy_dropped(&self, proxy: &Proxy) {
        if self.closed.load(Ordering::SeqCst) {
            return;
        }
        let released = lock(&self.imports).dropped(proxy.id, proxy);
        if let Some(count) = released {
            let _ = self.send(Message::Release {
                export: proxy.id,
                count,
            });
        }
    }

    /// A call from the peer finished (or failed before it started): answer it.
    pub(crate) fn reply(&self, question: u64, result: Result<Value, Error>) {
        let msg = Message::Return(Return { question, result });
        if let Err(e) = self.send(msg) {
            if e.kind() == ErrorKind::Disconnected {
                return;
            }
            // The result could not be sent (too large, not encodable): say so instead.
            let err = Error::new(
                e.kind(),
                format!("the result could not be sent: {}", e.message()),
            );
            let _ = self.send(Message::Return(Return {
                question,
                result: Err(err),
            }));
        }
    }

    /// `n` bytes of queued frames reached the transport.
    pub(crate) fn wrote(&self, n: usize) {
        self.progress.fetch_add(1, Ordering::Relaxed);
        let before = self
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                Some(q.saturating_sub(n))
            })
            .unwrap_or_else(|q| q);
        let low = self.config.max_queued_bytes / 2;
        if before > low && before.saturating_sub(n) <= low {
            self.drained.notify_waiters();
        }
    }

    /// Whether so much waits to be written that the reader should stop taking work from
    /// the peer.
    pub(crate) fn over_high_water(&self) -> bool {
        self.queued.load(Ordering::Relaxed) > self.config.max_queued_bytes
    }

    /// Waits until the queue has drained to half of `max_queued_bytes` (or the writer is
    /// gone).
    pub(crate) async fn drained(&self) {
        let low = self.config.max_queued_bytes / 2;
        loop {
            let notified = self.drained.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.queued.load(Ordering::Relaxed) <= low {
                return;
            }
            notified.await;
        }
    }

    /// Waits until frames have waited a whole `stall_timeout` and the transport took
    /// none of their bytes: the peer has stopped reading. Returns why, as an error.
    pub(crate) async fn stalled(&self) -> Error {
        let sample = || {
            (
                self.progress.load(Ordering::Relaxed),
                self.queued.load(Ordering::Relaxed),
            )
        };
        let mut last = sample();
        loop {
            tokio::time::sleep(self.config.stall_timeout).await;
            let now = sample();
            if last.1 > 0 && now.1 > 0 && now.0 == last.0 {
                return Error::disconnected(format!(
                    "peer stopped reading: nothing was written to it for {:?} while {} bytes waited",
                    self.config.stall_timeout, now.1
                ));
            }
            last = now;
        }
    }

    /// The writer is gone: what it had queued is freed, and a paused reader wakes.
    pub(crate) fn writer_done(&self) {
        self.queued.store(0, Ordering::Relaxed);
        self.drained.notify_waiters();
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
        let questions: Vec<_> = lock(&self.questions).drain().collect();
        for (_, tx) in questions {
            let _ = tx.send(Err(failed.clone()));
        }
        let answers: Vec<_> = lock(&self.answers).drain().collect();
        for (_, handle) in answers {
            handle.abort();
        }
        lock(&self.pings).clear();
        let freed = lock(&self.exports).clear();
        lock(&self.imports).clear();
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
