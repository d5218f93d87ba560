//! Sequences of operations on a connection pair over the in-memory transport: objects
//! exported, references sent, echoed back and released, calls, callbacks nested back and
//! forth, calls cancelled or given deadlines, connections closed; and a raw peer on a
//! third connection sending messages with extreme field values. Afterwards every export
//! and import table is empty, no call is pending, no task is left running and every
//! object has been freed.
//!
//! This is the stable-Rust twin of the fuzz target `fuzz/fuzz_targets/session_ops.rs`,
//! which includes this file to call [`run`]: the fuzzer and CI run the same check. Inputs
//! the fuzzer found a bug with are replayed below.
#![allow(dead_code)] // the fuzz target uses `run` only

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use rwc_protocol::codec;
use rwc_protocol::frame;
use rwc_protocol::message::{Call, Message, Return, Target};
use rwc_protocol::{
    CallOptions, Connection, ConnectionConfig, ConnectionStats, Error, ErrorKind, Hello, MAGIC,
    NetRef, PROTOCOL_VERSION, Ref, Service, Value, WireRef, from_value,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

#[path = "common/panics.rs"]
mod panics;
#[path = "common/rng.rs"]
mod rng;
#[path = "common/tally.rs"]
mod tally;
use tally::tally;

/// Most operations taken from one input.
pub const MAX_OPS: usize = 64;

#[test]
fn random_sessions_leave_nothing_behind() {
    let mut total = Summary::default();
    let mut rng = rng::XorShift(0x853c_49e6_748f_ea9b);
    for _ in 0..300 {
        total += run(&rng.bytes(256));
    }
    // The check is only worth something if the sessions did these things.
    assert!(total.identities > 50, "{total:?}");
    assert!(total.nested > 10, "{total:?}");
    assert!(total.timed_out > 5, "{total:?}");
    assert!(total.raw_messages > 100, "{total:?}");
    assert!(total.closed > 10, "{total:?}");
}

/// Found by the random sessions above: `rwc.methods` called on a local netref failed with
/// `unimplemented`, while the same call through a connection answered with the methods.
#[tokio::test]
async fn introspection_answers_alike_on_a_local_netref_and_through_a_connection() {
    let live = Arc::new(AtomicUsize::new(0));
    let state = Arc::new(SideState {
        held: Mutex::new(Vec::new()),
        live: live.clone(),
    });
    let local = object(&state);
    let (client, _server) = rwc_protocol::transport::memory_pair(
        Service::new("client").into_object(),
        local.clone(),
        ConnectionConfig::default(),
    )
    .await
    .unwrap();
    let here = local
        .call_value(rwc_protocol::METHODS_METHOD, vec![])
        .await
        .unwrap();
    let there = client
        .root()
        .call_value(rwc_protocol::METHODS_METHOD, vec![])
        .await
        .unwrap();
    assert_eq!(here, there);
    let names: Vec<String> = from_value::<Vec<rwc_protocol::MethodInfo>>(here)
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert!(names.iter().any(|n| n == "bounce"), "{names:?}");
}

tally! {
    /// What a session did, summed over inputs by the stable test to show that it exercised
    /// something.
    pub struct Summary {
        /// Operations run.
        ops,
        /// References that came back as the very object that was sent.
        identities,
        /// Chains of nested callbacks that returned.
        nested,
        /// Calls that failed with `timed out` at their deadline.
        timed_out,
        /// Messages a raw peer sent.
        raw_messages,
        /// Sessions in which one side closed the connection.
        closed,
    }
}

/// Runs the operations `data` describes on a fresh connection pair, on a runtime whose
/// clock only moves when every task waits (so deadlines are exact and sleeps cost
/// nothing), and checks what must hold afterwards. Panics if anything does not.
pub fn run(data: &[u8]) -> Summary {
    let panics = panics::seen();
    let mut u = Unstructured::new(data);
    let mut ops = Vec::new();
    while !u.is_empty() && ops.len() < MAX_OPS {
        match Op::arbitrary(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime");
    let summary = rt.block_on(session(ops));
    drop(rt);
    panics::assert_none_since(panics, "during the session");
    summary
}

// ---------------------------------------------------------------------------------------
// Operations.

/// Which end of the pair acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    A,
    B,
}

#[derive(Debug)]
enum Op {
    /// One end of the pair does something.
    By(Who, Act),
    /// A raw peer (on a third connection, to B's side) does something.
    Raw(RawOp),
}

/// What one end does.
#[derive(Debug)]
enum Act {
    /// Makes a local object and keeps a handle to it.
    Local,
    /// Asks the peer for a new object (which the peer exports).
    Make,
    /// Sends `copies` references to its handle `item` to the peer in one call; the peer
    /// keeps them.
    Send {
        item: u8,
        copies: u8,
    },
    /// Sends handle `item` to the peer's `echo`, which sends it straight back: it must come
    /// back as the same object.
    Echo {
        item: u8,
    },
    /// Another handle to the object of handle `item`.
    Clone {
        item: u8,
    },
    /// Drops `n` handles, from `item` on.
    Release {
        item: u8,
        n: u8,
    },
    /// Asks the peer to drop `n` of the references it keeps.
    DropHeld {
        n: u8,
    },
    /// A call of `method` on handle `item`.
    Call {
        item: u8,
        method: Method,
    },
    /// Callbacks nested `depth` deep: A calls B, which calls A, which calls B…
    Nested {
        depth: u8,
    },
    /// A slow call to the peer, polled `polls` times, then dropped (cancelled).
    Cancel {
        polls: u8,
    },
    /// A call to the peer's `sleep` for `sleep_ms`, with a timeout.
    Deadline {
        timeout: Timeout,
        sleep_ms: u16,
    },
    Ping,
    Close,
}

#[derive(Debug)]
enum Method {
    Echo(Vec<Value>),
    Fail,
    Unknown(String),
    Sleep(u16),
    Methods,
}

#[derive(Debug, Clone, Copy)]
enum Timeout {
    Millis(u16),
    /// A number of milliseconds too large for any clock.
    Huge(u64),
    Max,
}

impl Timeout {
    fn duration(self) -> Duration {
        match self {
            Timeout::Millis(ms) => Duration::from_millis(ms.into()),
            Timeout::Huge(ms) => Duration::from_millis(ms),
            Timeout::Max => Duration::MAX,
        }
    }
}

#[derive(Debug)]
enum RawOp {
    /// Opens the raw connection with these features (limits among them, or garbage).
    Hello { version: u16, features: Vec<String> },
    /// Sends a message, as it is: nothing checks its ids, counts or limits.
    Send(Message),
    /// Sends a frame whose payload is these bytes.
    Garbage(Vec<u8>),
    /// Sends a frame header announcing `len` bytes, then `head` and no more.
    Oversize { len: u32, head: Vec<u8> },
}

impl<'a> Arbitrary<'a> for Who {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(if u.arbitrary()? { Who::B } else { Who::A })
    }
}

impl<'a> Arbitrary<'a> for Op {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        // Weighted, so that a session does a good deal before one side closes.
        let kind = u.int_in_range(0..=63u8)?;
        if kind > 54 {
            return Ok(Op::Raw(RawOp::arbitrary(u)?));
        }
        // Who acts is drawn before what it does, so an input means what it always did.
        let who = u.arbitrary()?;
        let act = match kind {
            0..=5 => Act::Local,
            6..=11 => Act::Make,
            12..=17 => Act::Send {
                item: u.arbitrary()?,
                copies: u.int_in_range(1..=4)?,
            },
            18..=23 => Act::Echo {
                item: u.arbitrary()?,
            },
            24..=27 => Act::Clone {
                item: u.arbitrary()?,
            },
            28..=33 => Act::Release {
                item: u.arbitrary()?,
                n: u.int_in_range(1..=4)?,
            },
            34..=36 => Act::DropHeld {
                n: u.int_in_range(1..=4)?,
            },
            37..=42 => Act::Call {
                item: u.arbitrary()?,
                method: match u.int_in_range(0..=4u8)? {
                    0 => Method::Echo(values(u, 2, false)?),
                    1 => Method::Fail,
                    2 => Method::Unknown(u.arbitrary()?),
                    // Within the default timeout of 30 s.
                    3 => Method::Sleep(u.int_in_range(0..=20_000)?),
                    _ => Method::Methods,
                },
            },
            43..=45 => Act::Nested {
                depth: u.int_in_range(1..=40)?,
            },
            46..=48 => Act::Cancel {
                polls: u.int_in_range(0..=8)?,
            },
            49..=51 => Act::Deadline {
                timeout: match u.int_in_range(0..=3u8)? {
                    0 | 1 => Timeout::Millis(u.arbitrary()?),
                    2 => Timeout::Huge(u.int_in_range(1u64 << 40..=u64::MAX)?),
                    _ => Timeout::Max,
                },
                sleep_ms: u.arbitrary()?,
            },
            52..=53 => Act::Ping,
            _ => Act::Close,
        };
        Ok(Op::By(who, act))
    }
}

impl<'a> Arbitrary<'a> for RawOp {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u.int_in_range(0..=9u8)? {
            0 => RawOp::Hello {
                version: if u.ratio(7, 8)? {
                    PROTOCOL_VERSION
                } else {
                    u.arbitrary()?
                },
                features: features(u)?,
            },
            1 => RawOp::Garbage(u.arbitrary()?),
            2 => RawOp::Oversize {
                len: u.arbitrary()?,
                head: u.arbitrary()?,
            },
            _ => RawOp::Send(raw_message(u)?),
        })
    }
}

/// Features a raw peer announces: a limits feature with numbers anywhere from 0 to huge,
/// sometimes malformed, and other names.
fn features(u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<String>> {
    let mut out = Vec::new();
    for _ in 0..u.int_in_range(0..=2u8)? {
        out.push(match u.int_in_range(0..=3u8)? {
            0 => u.arbitrary()?,
            _ => {
                let mut limits = String::from("limits:");
                for key in ["frame", "depth", "len", "values"] {
                    if u.arbitrary()? {
                        let n: u64 = match u.int_in_range(0..=2u8)? {
                            0 => u.int_in_range(0..=16)?,
                            1 => u.int_in_range(4096..=1 << 20)?,
                            _ => u.arbitrary()?,
                        };
                        limits.push_str(&format!("{key}={n},"));
                    }
                }
                limits
            }
        });
    }
    Ok(out)
}

/// An id a raw peer uses: mostly small (so that it names something), sometimes extreme.
fn id(u: &mut Unstructured<'_>) -> arbitrary::Result<u64> {
    Ok(match u.int_in_range(0..=7u8)? {
        0 => u64::MAX,
        1 => u.arbitrary()?,
        _ => u.int_in_range(0..=6)?,
    })
}

fn raw_message(u: &mut Unstructured<'_>) -> arbitrary::Result<Message> {
    Ok(match u.int_in_range(0..=7u8)? {
        0..=2 => Message::Call(Call {
            question: id(u)?,
            target: if u.ratio(15, 16)? {
                Target::Export(id(u)?)
            } else {
                Target::Promise {
                    question: id(u)?,
                    path: u.arbitrary()?,
                }
            },
            method: if u.ratio(1, 9)? {
                "nonesuch"
            } else {
                u.choose(&METHODS)?
            }
            .to_owned(),
            args: values(u, 3, true)?,
            deadline_ms: match u.int_in_range(0..=3u8)? {
                0 => None,
                1 => Some(u64::MAX),
                2 => Some(u.arbitrary()?),
                _ => Some(u.int_in_range(0..=20_000)?),
            },
        }),
        3 => Message::Return(Return {
            question: id(u)?,
            result: if u.arbitrary()? {
                Ok(value(u, 3, true)?)
            } else {
                Err(Error::new(ErrorKind::from(u.arbitrary::<u8>()?), "raw"))
            },
        }),
        4 => Message::Cancel { question: id(u)? },
        5 => Message::Release {
            export: id(u)?,
            count: id(u)?,
        },
        6 => Message::Ping { nonce: id(u)? },
        _ => Message::Pong { nonce: id(u)? },
    })
}

fn values(u: &mut Unstructured<'_>, depth: u8, wire_refs: bool) -> arbitrary::Result<Vec<Value>> {
    let n = u.int_in_range(0..=3u8)?;
    (0..n).map(|_| value(u, depth, wire_refs)).collect()
}

/// A small value; with `wire_refs`, references as a raw peer writes them.
fn value(u: &mut Unstructured<'_>, depth: u8, wire_refs: bool) -> arbitrary::Result<Value> {
    let kinds = if depth == 0 { 6 } else { 8 };
    Ok(match u.int_in_range(0..=kinds)? {
        0 => Value::Unit,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::I64(u.arbitrary()?),
        3 => Value::U64(u.arbitrary()?),
        4 => Value::F64(u.arbitrary()?),
        5 => Value::String(u.arbitrary()?),
        6 if wire_refs => Value::Ref(Ref::Wire(if u.arbitrary()? {
            WireRef::Sender(id(u)?)
        } else {
            WireRef::Receiver(id(u)?)
        })),
        6 => Value::Bytes(u.arbitrary::<Vec<u8>>()?.into()),
        7 => Value::List(values(u, depth - 1, wire_refs)?),
        _ => Value::Map(
            (0..u.int_in_range(0..=2u8)?)
                .map(|_| Ok((value(u, 0, wire_refs)?, value(u, depth - 1, wire_refs)?)))
                .collect::<arbitrary::Result<_>>()?,
        ),
    })
}

// ---------------------------------------------------------------------------------------
// The objects both sides serve.

/// One side's objects: what they keep, and how many of them are alive.
struct SideState {
    /// References the peer sent to `hold`.
    held: Mutex<Vec<NetRef>>,
    /// Objects of this session not yet freed (both sides count here).
    live: Arc<AtomicUsize>,
}

/// Counts an object alive until it is freed.
struct Alive(Arc<AtomicUsize>);

impl Alive {
    fn new(live: &Arc<AtomicUsize>) -> Arc<Alive> {
        live.fetch_add(1, Ordering::SeqCst);
        Arc::new(Alive(live.clone()))
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The methods of [`object`], and the introspection method every object has.
const METHODS: [&str; 8] = [
    "echo",
    "hold",
    "drop_held",
    "make",
    "sleep",
    "fail",
    "bounce",
    rwc_protocol::METHODS_METHOD,
];

/// An object with the methods the operations use.
fn object(state: &Arc<SideState>) -> NetRef {
    let alive = Alive::new(&state.live);
    let (hold, drop_held, make) = (state.clone(), state.clone(), state.clone());
    Service::new("session object")
        .raw_method("echo", move |_ctx, args| {
            let _alive = &alive;
            async move { Ok(Value::List(args)) }
        })
        .raw_method("hold", move |_ctx, args| {
            let mut held = hold.held.lock().expect("held");
            for arg in args {
                if let Ok(netref) = from_value::<NetRef>(arg) {
                    held.push(netref);
                }
            }
            async { Ok(Value::Unit) }
        })
        .method("drop_held", move |(n,): (u64,)| {
            let mut held = drop_held.held.lock().expect("held");
            let n = usize::try_from(n).unwrap_or(usize::MAX).min(held.len());
            let dropped: Vec<NetRef> = held.drain(..n).collect();
            drop(held);
            drop(dropped);
            async { Ok(()) }
        })
        .method("make", move |(): ()| {
            let made = object(&make);
            async move { Ok(made) }
        })
        .method("sleep", |(ms,): (u64,)| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(())
        })
        .method("fail", |(): ()| async {
            Err::<(), _>(Error::failed("asked to fail"))
        })
        .method(
            "bounce",
            |(n, there, here): (u64, NetRef, NetRef)| async move {
                if n == 0 {
                    return Ok(0u64);
                }
                // Call back where the call came from, telling it where to call back in turn.
                there
                    .call::<u64>("bounce", (n - 1, here, there.clone()))
                    .await
            },
        )
        .into_object()
}

// ---------------------------------------------------------------------------------------
// The session.

struct Side {
    conn: Connection,
    /// The peer's root.
    peer: NetRef,
    /// This side's own root, as a handle (sent in `bounce`).
    root: NetRef,
    /// Handles the operations work on: local objects and proxies.
    pool: Vec<NetRef>,
    state: Arc<SideState>,
}

struct Raw {
    /// The raw peer's end; `None` once it broke.
    stream: Option<tokio::io::WriteHalf<DuplexStream>>,
    /// B's side of the raw connection, once the handshake is done; `Err` if it failed.
    conn: Option<Result<Connection, Error>>,
    reader: tokio::task::JoinHandle<()>,
}

/// How long anything may take, in the paused clock, before it counts as a hang: far
/// beyond every timeout the operations use.
const HANG: Duration = Duration::from_secs(3600);

async fn session(ops: Vec<Op>) -> Summary {
    let live = Arc::new(AtomicUsize::new(0));
    let state = |live: &Arc<AtomicUsize>| {
        Arc::new(SideState {
            held: Mutex::new(Vec::new()),
            live: live.clone(),
        })
    };
    let (sa, sb) = (state(&live), state(&live));
    let (ra, rb) = (object(&sa), object(&sb));
    let config = ConnectionConfig {
        // Small enough for the raw peer's oversize frames, big enough for any operation.
        max_frame: 64 * 1024,
        ..ConnectionConfig::default()
    };
    let (ta, tb) = tokio::io::duplex(256 * 1024);
    let (ca, cb) = tokio::join!(
        Connection::connect(ta, ra.clone(), config.clone()),
        Connection::accept(tb, rb.clone(), config.clone()),
    );
    let (ca, cb) = (ca.expect("A connects"), cb.expect("B accepts"));
    let mut a = Side {
        peer: ca.root(),
        conn: ca,
        root: ra,
        pool: Vec::new(),
        state: sa,
    };
    let mut b = Side {
        peer: cb.root(),
        conn: cb,
        root: rb,
        pool: Vec::new(),
        state: sb,
    };
    let mut raw: Option<Raw> = None;
    let mut summary = Summary::default();
    let mut closed = false;

    for op in ops {
        summary.ops += 1;
        let outcome = tokio::time::timeout(
            HANG,
            step(
                op,
                &mut a,
                &mut b,
                &mut raw,
                &config,
                &mut closed,
                &mut summary,
            ),
        )
        .await;
        assert!(outcome.is_ok(), "an operation hung");
    }

    // Everything dropped: the tables must empty out.
    let raw_conn = finish_raw(raw).await;
    for side in [&mut a, &mut b] {
        side.pool.clear();
        let held: Vec<NetRef> = side.state.held.lock().expect("held").drain(..).collect();
        drop(held);
    }
    if closed {
        summary.closed += 1;
    } else {
        settle(&a, &b).await;
        for (name, side) in [("A", &a), ("B", &b)] {
            let stats = side.conn.stats();
            let expected = ConnectionStats {
                exports: 1,
                queued_bytes: stats.queued_bytes,
                ..ConnectionStats::default()
            };
            assert_eq!(
                stats, expected,
                "{name}: with every handle dropped only the root stays exported"
            );
        }
    }
    a.conn.close();
    b.conn.close();
    for (name, conn) in [("A", &a.conn), ("B", &b.conn)]
        .into_iter()
        .chain(raw_conn.as_ref().map(|c| ("B's raw peer", c)))
    {
        let closing = tokio::time::timeout(HANG, conn.closed()).await;
        assert!(closing.is_ok(), "{name}: connection did not close");
        let stats = conn.stats();
        assert_eq!(
            stats,
            ConnectionStats {
                queued_bytes: stats.queued_bytes,
                ..ConnectionStats::default()
            },
            "{name}: a closed connection holds nothing"
        );
    }
    let (peers, roots) = ((a.peer, b.peer), (a.root, b.root));
    drop((a.conn, b.conn, raw_conn, peers, roots));
    drop((a.state, b.state));

    // Every task of the connections ends, and every object is freed.
    let metrics = tokio::runtime::Handle::current().metrics();
    let deadline = tokio::time::Instant::now() + HANG;
    while metrics.num_alive_tasks() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(metrics.num_alive_tasks(), 0, "tasks left running");
    assert_eq!(live.load(Ordering::SeqCst), 0, "objects never freed");
    summary
}

/// Pings both ways until the tables of both sides stop changing: releases sent by one
/// side may free objects on the other that hold references in turn.
async fn settle(a: &Side, b: &Side) {
    let mut last = None;
    for _ in 0..16 {
        let (pa, pb) = (a.conn.ping().await, b.conn.ping().await);
        assert!(
            pa.is_ok() && pb.is_ok(),
            "ping failed on an open connection"
        );
        let now = (a.conn.stats(), b.conn.stats());
        if last == Some(now) {
            return;
        }
        last = Some(now);
    }
}

#[allow(clippy::too_many_arguments)]
async fn step(
    op: Op,
    a: &mut Side,
    b: &mut Side,
    raw: &mut Option<Raw>,
    config: &ConnectionConfig,
    closed: &mut bool,
    summary: &mut Summary,
) {
    // A call through the connection: it must succeed while the connection is open, and
    // fail with `disconnected` once it closed.
    let open = !*closed;
    let expect_ok = |what: &str, r: &Result<Value, Error>| {
        if open {
            assert!(r.is_ok(), "{what} failed on an open connection: {r:?}");
        } else {
            expect_kind(what, r, ErrorKind::Disconnected);
        }
    };
    let (who, act) = match op {
        Op::By(who, act) => (who, act),
        Op::Raw(op) => return raw_step(op, raw, b, config, summary).await,
    };
    let me = pick(who, a, b);
    match act {
        Act::Local => {
            let obj = object(&me.state);
            me.pool.push(obj);
        }
        Act::Make => {
            let r = me.peer.call_value("make", vec![]).await;
            expect_ok("make", &r);
            if let Ok(v) = r {
                me.pool.push(from_value(v).expect("make returns a netref"));
            }
        }
        Act::Send { item, copies } => {
            let Some(obj) = nth(&me.pool, item) else {
                return;
            };
            let args = vec![Value::from(obj); copies.into()];
            let r = me.peer.call_value("hold", args).await;
            expect_ok("hold", &r);
        }
        Act::Echo { item } => {
            let Some(obj) = nth(&me.pool, item) else {
                return;
            };
            let r = me.peer.call_value("echo", vec![obj.clone().into()]).await;
            expect_ok("echo", &r);
            if let Ok(v) = r {
                let back: Vec<NetRef> = from_value(v).expect("echo returns what it got");
                let [back] = &back[..] else {
                    panic!("echo of one netref returned {} values", back.len());
                };
                assert!(
                    back.same_object(&obj),
                    "{obj:?} sent and echoed back came back as another object, {back:?}"
                );
                summary.identities += 1;
            }
        }
        Act::Clone { item } => {
            if let Some(obj) = nth(&me.pool, item) {
                me.pool.push(obj);
            }
        }
        Act::Release { item, n } => {
            if !me.pool.is_empty() {
                let at = usize::from(item) % me.pool.len();
                let end = (at + usize::from(n)).min(me.pool.len());
                me.pool.drain(at..end);
            }
        }
        Act::DropHeld { n } => {
            let r = me
                .peer
                .call_value("drop_held", vec![Value::U64(n.into())])
                .await;
            expect_ok("drop_held", &r);
        }
        Act::Call { item, method } => {
            let Some(obj) = nth(&me.pool, item) else {
                return;
            };
            let reachable = obj.is_local() || open;
            let (name, args) = match &method {
                Method::Echo(args) => ("echo", args.clone()),
                Method::Fail => ("fail", vec![]),
                Method::Unknown(name) => (name.as_str(), vec![]),
                Method::Sleep(ms) => ("sleep", vec![Value::U64((*ms).into())]),
                Method::Methods => (rwc_protocol::METHODS_METHOD, vec![]),
            };
            let r = obj.call_value(name, args.clone()).await;
            if !reachable {
                expect_kind("a call on a closed connection", &r, ErrorKind::Disconnected);
                return;
            }
            match method {
                Method::Echo(_) => assert_eq!(r.ok(), Some(Value::List(args)), "echo"),
                Method::Fail => expect_kind("fail", &r, ErrorKind::Failed),
                // A real method without its arguments: any answer will do.
                Method::Unknown(name) if METHODS.contains(&name.as_str()) => {}
                Method::Unknown(name) => expect_kind(&name, &r, ErrorKind::Unimplemented),
                Method::Sleep(_) | Method::Methods => assert!(r.is_ok(), "{name}: {r:?}"),
            }
        }
        Act::Nested { depth } => {
            let r = me
                .peer
                .call_value(
                    "bounce",
                    vec![
                        Value::U64(depth.into()),
                        me.root.clone().into(),
                        me.peer.clone().into(),
                    ],
                )
                .await;
            expect_ok("nested callbacks", &r);
            if r.is_ok() {
                summary.nested += 1;
            }
        }
        Act::Cancel { polls } => {
            let mut call = me.peer.call_async("sleep", (60_000u64,));
            for _ in 0..polls {
                if call.is_ready() {
                    break;
                }
                tokio::task::yield_now().await;
            }
            drop(call);
        }
        Act::Deadline { timeout, sleep_ms } => {
            let r = me
                .peer
                .call_with(
                    "sleep",
                    vec![Value::U64(sleep_ms.into())],
                    CallOptions::timeout(timeout.duration()),
                )
                .await;
            let (sleep, limit) = (Duration::from_millis(sleep_ms.into()), timeout.duration());
            if !open {
                // Its deadline may pass before this side notices that the peer closed.
                match &r {
                    Err(e) if e.kind() == ErrorKind::TimedOut => {}
                    r => expect_kind("a call on a closed connection", r, ErrorKind::Disconnected),
                }
                return;
            }
            match &r {
                Ok(_) => assert!(
                    sleep <= limit,
                    "a call that sleeps {sleep:?} beat its timeout of {limit:?}"
                ),
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
                    assert!(
                        sleep >= limit,
                        "a call that sleeps {sleep:?} timed out at {limit:?}"
                    );
                    summary.timed_out += 1;
                }
            }
        }
        Act::Ping => {
            let r = me.conn.ping().await;
            assert_eq!(r.is_ok(), open, "ping: {r:?}");
        }
        Act::Close => {
            me.conn.close();
            *closed = true;
        }
    }
}

/// The acting side.
fn pick<'s>(who: Who, a: &'s mut Side, b: &'s mut Side) -> &'s mut Side {
    match who {
        Who::A => a,
        Who::B => b,
    }
}

fn nth(pool: &[NetRef], item: u8) -> Option<NetRef> {
    (!pool.is_empty()).then(|| pool[usize::from(item) % pool.len()].clone())
}

fn expect_kind(what: &str, r: &Result<Value, Error>, kind: ErrorKind) {
    match r {
        Err(e) if e.kind() == kind => {}
        other => panic!("{what}: expected a `{kind}` error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// The raw peer.

async fn raw_step(
    op: RawOp,
    raw: &mut Option<Raw>,
    b: &Side,
    config: &ConnectionConfig,
    summary: &mut Summary,
) {
    let hello = match &op {
        RawOp::Hello { version, features } => Some((*version, features.clone())),
        _ => None,
    };
    let peer = match raw {
        Some(peer) => peer,
        None => raw.insert(open_raw(b, config, hello.unwrap_or((PROTOCOL_VERSION, vec![]))).await),
    };
    let bytes = match op {
        RawOp::Hello { .. } => return,
        RawOp::Send(msg) => {
            summary.raw_messages += 1;
            let payload = codec::encode_message(&msg).expect("a raw message encodes");
            frame::frame(&payload, usize::MAX).expect("frames")
        }
        RawOp::Garbage(payload) => frame::frame(&payload, usize::MAX).expect("frames"),
        RawOp::Oversize { len, head } => [&len.to_le_bytes()[..], &head].concat(),
    };
    if let Some(stream) = &mut peer.stream
        && stream.write_all(&bytes).await.is_err()
    {
        peer.stream = None;
    }
}

/// Opens a third connection to B's side, the raw peer doing its end of the handshake by
/// hand.
async fn open_raw(
    b: &Side,
    config: &ConnectionConfig,
    (version, features): (u16, Vec<String>),
) -> Raw {
    let (theirs, mine) = tokio::io::duplex(64 * 1024);
    let accept = tokio::spawn(Connection::accept(theirs, object(&b.state), config.clone()));
    let (mut read, mut write) = tokio::io::split(mine);
    let hello = Hello {
        version,
        features,
        credentials: None,
        agent: "raw session peer".into(),
    };
    let mut bytes = MAGIC.to_vec();
    let payload = codec::encode(&Ok::<_, Error>(hello)).expect("a hello encodes");
    bytes.extend(frame::frame(&payload, usize::MAX).expect("frames"));
    let stream = write.write_all(&bytes).await.ok().map(|()| write);
    // Whatever B sends (its magic, its hello, answers) is read and dropped, so that B never
    // waits on the raw peer.
    let reader = tokio::spawn(async move {
        let mut sink = vec![0u8; 4096];
        while let Ok(n) = read.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    });
    let conn = tokio::time::timeout(HANG, accept)
        .await
        .expect("the handshake hung")
        .expect("the accept task ran");
    Raw {
        stream,
        conn: Some(conn),
        reader,
    }
}

/// The raw peer hangs up; B's side of its connection, if the handshake made one.
async fn finish_raw(raw: Option<Raw>) -> Option<Connection> {
    let Raw {
        stream,
        conn,
        reader,
    } = raw?;
    if let Some(mut stream) = stream {
        let _ = stream.shutdown().await;
    }
    let read_all = tokio::time::timeout(HANG, reader).await;
    assert!(read_all.is_ok(), "B did not close its raw connection");
    conn.and_then(Result::ok)
}
