//! The node's side of the guest ABI under a guest that does whatever its input says: the
//! guest in `guests/abi_fuzz.wat` interprets a byte program and hands the node the
//! pointers, lengths, handles and encoded values the program chooses, through every ABI
//! entry point, while a client callback calls back into the guest's objects. Whatever the
//! program, the node never panics and always answers, with a value or an error; and once
//! the client drops the instance, the instance is freed and the node holds nothing of the
//! client any more.
//!
//! This is the stable-Rust twin of the fuzz target `fuzz/fuzz_targets/guest_abi.rs`, which
//! includes this file to call [`Harness::run`]: the fuzzer and CI run the same check.
//! Programs the fuzzer found a bug with are replayed below.
#![allow(dead_code)] // the fuzz target uses `Harness` only

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rwc_api::{InstanceOptions, ObjectRef, Request, root};
use rwc_node::{Node, NodeConfig};
use rwc_protocol::transport::memory_pair;
use rwc_protocol::{
    CallOptions, Connection, ConnectionConfig, ConnectionStats, Error, ErrorKind, NetRef, Ref,
    Service, Value, from_value,
};
use serde_bytes::ByteBuf;

#[path = "../../protocol/tests/common/panics.rs"]
mod panics;
#[path = "../../protocol/tests/common/rng.rs"]
mod rng;
use rng::XorShift;

/// The guest: one module for every program.
pub const GUEST: &str = include_str!("guests/abi_fuzz.wat");

/// Fuel of one instance: enough for any program of a few KiB, and an endless loop runs
/// out of it in about a millisecond.
const FUEL: u64 = 2_000_000;

/// How long the node may take to answer before it counts as a hang. Every call into the
/// guest has a deadline of [`CALL_TIMEOUT`], far below it.
const HANG: Duration = Duration::from_secs(60);
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

#[test]
fn random_programs_get_an_answer_and_leave_nothing_behind() {
    let harness = Harness::new();
    let mut rng = XorShift(0x6a09_e667_f3bc_c908);
    let mut total = Outcome::default();
    for _ in 0..400 {
        total += harness.run(&program(&mut rng));
    }
    // The check is only worth something if the programs got this far.
    assert!(total.ok > 20, "{total:?}");
    assert!(total.trapped > 20, "{total:?}");
    assert!(total.bad_argument > 20, "{total:?}");
    assert!(total.callbacks > 20, "{total:?}");
    assert!(total.guest_objects > 5, "{total:?}");
}

#[test]
fn the_guest_parses() {
    wat::parse_str(GUEST).expect("guests/abi_fuzz.wat is valid WAT");
}

/// What the programs of a run did, summed by the stable test to show what it exercised.
#[derive(Debug, Default, Clone, Copy)]
pub struct Outcome {
    /// `run` answered with a value.
    pub ok: usize,
    /// `run` failed because the guest trapped (or ran out of fuel or time).
    pub trapped: usize,
    /// `run` failed because the guest broke the ABI.
    pub bad_argument: usize,
    /// `run` failed otherwise.
    pub other_errors: usize,
    /// Calls the guest made to the client's callback object.
    pub callbacks: usize,
    /// Guest objects the client got and called.
    pub guest_objects: usize,
}

impl std::ops::AddAssign for Outcome {
    fn add_assign(&mut self, o: Outcome) {
        self.ok += o.ok;
        self.trapped += o.trapped;
        self.bad_argument += o.bad_argument;
        self.other_errors += o.other_errors;
        self.callbacks += o.callbacks;
        self.guest_objects += o.guest_objects;
    }
}

/// A node in this process, a client connected to it over the in-memory transport, and the
/// guest uploaded once.
#[derive(Debug)]
pub struct Harness {
    rt: tokio::runtime::Runtime,
    node: Node,
    client: Connection,
    server: Connection,
    module: NetRef,
    callback: NetRef,
    /// What the callback object keeps (`hold`) until the end of the program.
    held: Arc<Mutex<Vec<NetRef>>>,
    /// Calls the callback object got during the program.
    calls: Arc<Mutex<usize>>,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// Starts the node and uploads the guest.
    pub fn new() -> Harness {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let node = Node::new(NodeConfig::default()).expect("a node");
        let held = Arc::new(Mutex::new(Vec::new()));
        let calls = Arc::new(Mutex::new(0));
        let callback = callback_object(&held, &calls);
        let (client, server, module) = rt.block_on(async {
            let (client, server) = memory_pair(
                Service::new("fuzz client").into_object(),
                node.root(None),
                ConnectionConfig::default(),
            )
            .await
            .expect("connected to the node");
            let upload = root::Upload {
                bytes: ByteBuf::from(GUEST.as_bytes()),
            };
            let module: NetRef = client
                .root()
                .call(root::Upload::METHOD, upload.to_args().expect("args"))
                .await
                .expect("the node takes the guest");
            (client, server, module)
        });
        Harness {
            rt,
            node,
            client,
            server,
            module,
            callback,
            held,
            calls,
        }
    }

    /// Runs `program` in a new instance, then drops it. Panics if the node panicked (even
    /// a panic it caught), did not answer, or kept anything once the instance was dropped.
    pub fn run(&self, program: &[u8]) -> Outcome {
        let panics = panics::seen();
        let outcome = self.rt.block_on(async {
            tokio::time::timeout(HANG, self.session(program))
                .await
                .unwrap_or_else(|_| panic!("the node did not answer within {HANG:?}"))
        });
        panics::assert_none_since(panics, "while the node ran the program");
        outcome
    }

    async fn session(&self, program: &[u8]) -> Outcome {
        *self.calls.lock().expect("calls") = 0;
        let mut outcome = Outcome::default();
        let instance = self.instantiate().await;
        let result = instance
            .call_value("run", vec![Value::Bytes(program.to_vec().into())])
            .await;
        match &result {
            Ok(value) => {
                outcome.ok += 1;
                // The guest's objects in the result: each call goes on with the program.
                for object in netrefs(value).into_iter().take(4) {
                    outcome.guest_objects += 1;
                    let _answered = object
                        .call_with("m", vec![], CallOptions::timeout(CALL_TIMEOUT))
                        .await;
                }
            }
            Err(e) => match e.kind() {
                ErrorKind::Trapped | ErrorKind::TimedOut | ErrorKind::OutOfFuel => {
                    outcome.trapped += 1;
                }
                ErrorKind::BadArgument => outcome.bad_argument += 1,
                _ => outcome.other_errors += 1,
            },
        }
        drop(result);
        drop(instance);
        let held: Vec<NetRef> = self.held.lock().expect("held").drain(..).collect();
        drop(held);
        outcome.callbacks = *self.calls.lock().expect("calls");
        self.settle().await;
        outcome
    }

    async fn instantiate(&self) -> NetRef {
        let options = InstanceOptions {
            memory: Some(4 << 20),
            fuel: Some(FUEL),
            call_timeout: Some(CALL_TIMEOUT),
            capabilities: vec!["sys".into(), "log".into()],
            objects: BTreeMap::from([("cb".to_owned(), ObjectRef::from(self.callback.clone()))]),
            ..InstanceOptions::default()
        };
        let request = root::Instantiate {
            module: self.module.clone().into(),
            options,
        };
        self.client
            .root()
            .call(root::Instantiate::METHOD, request.to_args().expect("args"))
            .await
            .expect("the node instantiates the guest")
    }

    /// Waits until the node has freed the instance and released what it held of the
    /// client: the client exports only its root again, and each side holds no more than
    /// the module (which the harness keeps for the next program).
    async fn settle(&self) {
        let start = tokio::time::Instant::now();
        loop {
            let pinged = (self.client.ping().await, self.server.ping().await);
            assert!(
                pinged.0.is_ok() && pinged.1.is_ok(),
                "the connection to the node broke: {pinged:?}"
            );
            let (client, server) = (self.client.stats(), self.server.stats());
            let settled = self.node.stats().live_instances == 0
                && same_tables(
                    client,
                    ConnectionStats {
                        exports: 1,
                        imports: 1,
                        ..ConnectionStats::default()
                    },
                )
                && same_tables(
                    server,
                    ConnectionStats {
                        exports: 2,
                        ..ConnectionStats::default()
                    },
                );
            if settled {
                return;
            }
            assert!(
                start.elapsed() < HANG,
                "the node kept something after the instance was dropped: {} live instances, \
                 client {client:?}, node {server:?}",
                self.node.stats().live_instances
            );
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
    }
}

/// Whether the tables (not the bytes in flight) are those expected.
fn same_tables(stats: ConnectionStats, expected: ConnectionStats) -> bool {
    ConnectionStats {
        queued_bytes: 0,
        ..stats
    } == expected
}

/// The client's object handed to the guest as `cb`.
fn callback_object(held: &Arc<Mutex<Vec<NetRef>>>, calls: &Arc<Mutex<usize>>) -> NetRef {
    let counted = |calls: &Arc<Mutex<usize>>| {
        let calls = calls.clone();
        move || *calls.lock().expect("calls") += 1
    };
    let (echo, call, hold, fail) = (
        counted(calls),
        counted(calls),
        counted(calls),
        counted(calls),
    );
    let held = held.clone();
    Service::new("fuzz callback")
        .raw_method("echo", move |_ctx, args| {
            echo();
            async move { Ok(Value::List(args)) }
        })
        .raw_method("call", move |_ctx, args| {
            call();
            // Calls the first object among the arguments: a guest object's call goes back
            // into the guest, nested inside its `rwc.call`.
            let target = args.iter().flat_map(netrefs).next();
            async move {
                match target {
                    Some(t) => {
                        t.call_with("m", vec![], CallOptions::timeout(CALL_TIMEOUT))
                            .await
                    }
                    None => Err(Error::bad_argument("call: no object among the arguments")),
                }
            }
        })
        .raw_method("hold", move |_ctx, args| {
            hold();
            held.lock()
                .expect("held")
                .extend(args.iter().flat_map(netrefs));
            async { Ok(Value::Unit) }
        })
        .raw_method("fail", move |_ctx, _args| {
            fail();
            async { Err(Error::failed("the callback was asked to fail")) }
        })
        .into_object()
}

/// The netrefs inside a value.
fn netrefs(value: &Value) -> Vec<NetRef> {
    let mut out = Vec::new();
    let mut value = value.clone();
    let _ = value.visit_refs_mut(&mut |r: &mut Ref| {
        if let Ok(n) = from_value::<NetRef>(Value::Ref(r.clone())) {
            out.push(n);
        }
        Ok::<(), ()>(())
    });
    out
}

// ---------------------------------------------------------------------------------------
// Random programs for the stable test: operations of the guest's language (see the top of
// guests/abi_fuzz.wat) with operands that mostly make sense, so that programs get past
// their first call. The fuzzer needs none of this: it learns the language from coverage.

fn program(rng: &mut XorShift) -> Vec<u8> {
    // Most programs first look up a capability (`cb`, the client's object, most often):
    // the handle the calls use.
    let mut p = match rng.below(4) {
        0 => vec![],
        1 => vec![9, 0],
        _ => vec![9, 2],
    };
    for _ in 0..rng.below(12) + 1 {
        // Calls (op 4) are the point: as likely as all the rest together.
        let op = if rng.below(2) == 0 { 4 } else { rng.below(21) };
        p.push(u8::try_from(op).expect("an op"));
        match op {
            // A buffer: mostly in memory, sometimes anywhere.
            0 | 7 | 12 => {
                let (ptr, len) = if rng.below(4) == 0 {
                    (rng.next_u32(), rng.next_u32())
                } else {
                    (65_536 + rng.next_u32() % 4096, rng.next_u32() % 64)
                };
                p.extend(ptr.to_le_bytes());
                p.extend(len.to_le_bytes());
            }
            1 => {
                let bytes = encoded_result(rng);
                p.extend(u16::try_from(bytes.len()).expect("short").to_le_bytes());
                p.extend(bytes);
            }
            3 => {
                p.push(handle(rng));
                let request = [&[4][..], b"echo", &[1, 3, 7]].concat();
                p.extend(u16::try_from(request.len()).expect("short").to_le_bytes());
                p.extend(request);
            }
            4 => {
                p.push(handle(rng));
                p.push(rng.byte());
            }
            5 | 11 => {
                p.extend(u64::from(handle(rng)).to_le_bytes());
                if op == 5 {
                    p.extend((65_536 + rng.next_u32() % 4096).to_le_bytes());
                    p.extend((rng.next_u32() % 32).to_le_bytes());
                }
            }
            8 => {
                p.push(3);
                p.extend(if rng.below(2) == 0 { b"sys" } else { b"cbx" });
            }
            9 => p.push(rng.byte()),
            10 => p.push(handle(rng)),
            15 => {
                // Mostly back to fresh memory, so that the program goes on.
                p.push(if rng.below(3) == 0 { rng.byte() } else { 0 });
                p.extend(rng.next_u32().to_le_bytes());
            }
            16 => p.push(rng.byte() % 4),
            17 => {
                p.extend((65_536 + rng.next_u32() % 8192).to_le_bytes());
                p.push(4);
                p.extend(rng.next_u32().to_le_bytes());
            }
            20 => p.push(rng.byte()),
            // 2, 6, 13, 14, 18, 19: no operands. Loops and traps are rarer than the rest.
            13 | 14 | 19 if rng.below(3) != 0 => {
                p.pop();
            }
            _ => {}
        }
    }
    p
}

/// A handle operand: the register mostly, else a small number.
fn handle(rng: &mut XorShift) -> u8 {
    if rng.below(3) == 0 {
        rng.byte() % 4
    } else {
        255
    }
}

/// An encoded `Result<Value, Error>`, sound or damaged.
fn encoded_result(rng: &mut XorShift) -> Vec<u8> {
    let mut bytes = match rng.below(4) {
        // Ok(a guest object): Ok, Ref tag 9, Sender 0, the id.
        0 => vec![0, 9, 0, 1 + rng.byte() % 8],
        // Ok(a node handle, sent back): Receiver 1.
        1 => vec![0, 9, 1, rng.byte() % 4],
        // Err(failed "x").
        2 => vec![1, 0, 1, b'x', 0, 0, 0],
        // Ok(list of a string).
        _ => vec![0, 7, 1, 5, 2, b'h', b'i'],
    };
    if rng.below(4) == 0 {
        let at = rng.below(bytes.len());
        bytes[at] = rng.byte();
    }
    bytes
}
