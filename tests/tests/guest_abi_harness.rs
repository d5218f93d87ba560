//! The guest side of the ABI (`docs/abi.md`), checked against a small stand-in host built
//! here on wasmtime, without a node: it implements the `rwc` imports with a handle table
//! of fake netrefs (a callback, a `sys` capability) and calls the guests' exports the way
//! a node does. End-to-end tests through a real node live elsewhere.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use rwc_api::abi::{IMPORT_MODULE, export, import, rich_export_symbol, unpack};
use rwc_protocol::{
    DecodeLimits, Error, ErrorKind, Ref, Value, WireRef, codec, from_value, to_value,
};
use rwc_tests::wordcount::{Point, Record, Shape};
use rwc_tests::{guest_bytes, guests};
use serde_bytes::ByteBuf;
use wasmtime::error::Context as _;
use wasmtime::{
    AsContextMut, Caller, Engine, Instance, Linker, Memory, Module, Result, Store, TypedFunc, bail,
};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;

// ---------------------------------------------------------------------------------------
// The stand-in host.

/// A netref the host hands the guest.
#[derive(Debug, Clone, Copy, PartialEq)]
enum HostObject {
    /// Records its arguments; answers `Unit`.
    Recorder,
    /// Answers `call(i)` by calling the guest's own export `inc(i)` (a nested call).
    Reenter,
    /// The `sys` capability.
    Sys,
    /// A callback whose client has gone: every call fails with `disconnected`.
    Gone,
}

struct Host {
    wasi: WasiP1Ctx,
    handles: Vec<Option<HostObject>>,
    /// Capabilities handed to the instance, by name.
    capabilities: BTreeMap<String, HostObject>,
    /// The encoded result of the last `rwc.call`, until `rwc.take_result`.
    pending: Option<Vec<u8>>,
    /// Every call the guest made: (handle, method, args).
    calls: Vec<(i64, String, Vec<Value>)>,
    released: Vec<i64>,
    panics: Vec<String>,
    memory: Option<Memory>,
    instance: Option<Instance>,
}

struct Guest {
    store: Store<Host>,
    instance: Instance,
}

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(Engine::default)
}

fn module(path: &'static str) -> Module {
    static MODULES: OnceLock<std::sync::Mutex<BTreeMap<&'static str, Module>>> = OnceLock::new();
    let mut modules = MODULES.get_or_init(Default::default).lock().unwrap();
    modules
        .entry(path)
        .or_insert_with(|| Module::new(engine(), guest_bytes(path)).expect("guest compiles"))
        .clone()
}

impl Guest {
    fn new(path: &'static str, capabilities: &[(&str, HostObject)]) -> Result<Guest> {
        let mut linker: Linker<Host> = Linker::new(engine());
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |h: &mut Host| &mut h.wasi)?;
        add_rwc_imports(&mut linker)?;
        let host = Host {
            wasi: WasiCtxBuilder::new().build_p1(),
            handles: Vec::new(),
            capabilities: capabilities
                .iter()
                .map(|(n, o)| ((*n).to_owned(), *o))
                .collect(),
            pending: None,
            calls: Vec::new(),
            released: Vec::new(),
            panics: Vec::new(),
            memory: None,
            instance: None,
        };
        let mut store = Store::new(engine(), host);
        let instance = linker.instantiate(&mut store, &module(path))?;
        let memory = instance
            .get_memory(&mut store, export::MEMORY)
            .context("no memory export")?;
        store.data_mut().memory = Some(memory);
        store.data_mut().instance = Some(instance);
        Ok(Guest { store, instance })
    }

    /// Calls rich export `name` with `args`.
    fn call(&mut self, name: &str, args: Vec<Value>) -> Result<Result<Value, Error>> {
        let f = self
            .instance
            .get_typed_func::<(i32, i32), i64>(&mut self.store, &rich_export_symbol(name))?;
        call_rich(&mut self.store, f, &codec::encode(&args)?)
    }

    /// Calls a method of guest object `id`.
    fn call_object(
        &mut self,
        id: u64,
        method: &str,
        args: Vec<Value>,
    ) -> Result<Result<Value, Error>> {
        let f = self
            .instance
            .get_typed_func::<(i32, i32), i64>(&mut self.store, export::OBJECT_CALL)?;
        call_rich(&mut self.store, f, &codec::encode(&(id, method, args))?)
    }

    fn drop_object(&mut self, id: u64) -> Result<()> {
        let f = self
            .instance
            .get_typed_func::<i64, ()>(&mut self.store, export::OBJECT_DROP)?;
        f.call(&mut self.store, i64::try_from(id)?)
    }

    fn numeric<P: wasmtime::WasmParams, R: wasmtime::WasmResults>(
        &mut self,
        name: &str,
        params: P,
    ) -> Result<R> {
        let f = self
            .instance
            .get_typed_func::<P, R>(&mut self.store, name)?;
        f.call(&mut self.store, params)
    }

    /// Gives the guest a new handle to `object`, as a value.
    fn hand(&mut self, object: HostObject) -> Value {
        let h = new_handle(self.store.data_mut(), object);
        Value::Ref(Ref::Wire(WireRef::Sender(u64::try_from(h).unwrap())))
    }

    fn host(&self) -> &Host {
        self.store.data()
    }

    /// The handles the guest has released so far, in order.
    fn released(&self) -> &[i64] {
        &self.host().released
    }
}

/// What a node does for a rich call: `rwc_alloc`, write, call, unpack, read, `rwc_dealloc`.
fn call_rich(
    mut store: impl AsContextMut<Data = Host>,
    export: TypedFunc<(i32, i32), i64>,
    input: &[u8],
) -> Result<Result<Value, Error>> {
    let memory = store.as_context_mut().data().memory.context("no memory")?;
    let alloc = alloc_fn(&mut store)?;
    let len = i32::try_from(input.len())?;
    let ptr = alloc.call(&mut store, len)?;
    memory.write(&mut store, usize::try_from(ptr.cast_unsigned())?, input)?;
    let (out_ptr, out_len) = unpack(export.call(&mut store, (ptr, len))?);
    let mut out = vec![0u8; usize::try_from(out_len)?];
    memory.read(&store, usize::try_from(out_ptr)?, &mut out)?;
    dealloc_fn(&mut store)?.call(&mut store, (out_ptr.cast_signed(), out_len.cast_signed()))?;
    Ok(codec::decode(&out, DecodeLimits::default())?)
}

fn alloc_fn(store: &mut impl AsContextMut<Data = Host>) -> Result<TypedFunc<i32, i32>> {
    exported_func(store, export::ALLOC)
}

fn dealloc_fn(store: &mut impl AsContextMut<Data = Host>) -> Result<TypedFunc<(i32, i32), ()>> {
    exported_func(store, export::DEALLOC)
}

/// An export of the store's one instance (from the test, or from a host function that
/// calls back into the guest).
fn exported_func<P: wasmtime::WasmParams, R: wasmtime::WasmResults>(
    store: &mut impl AsContextMut<Data = Host>,
    name: &str,
) -> Result<TypedFunc<P, R>> {
    let instance = store
        .as_context_mut()
        .data()
        .instance
        .context("no instance")?;
    instance.get_typed_func::<P, R>(store.as_context_mut(), name)
}

fn new_handle(host: &mut Host, object: HostObject) -> i64 {
    host.handles.push(Some(object));
    i64::try_from(host.handles.len() - 1).unwrap()
}

fn read_guest(caller: &mut Caller<'_, Host>, ptr: i32, len: i32) -> Result<Vec<u8>> {
    let memory = caller.data().memory.context("no memory")?;
    let mut buf = vec![0u8; usize::try_from(len.cast_unsigned())?];
    memory.read(&*caller, usize::try_from(ptr.cast_unsigned())?, &mut buf)?;
    Ok(buf)
}

fn add_rwc_imports(linker: &mut Linker<Host>) -> Result<()> {
    linker.func_wrap(
        IMPORT_MODULE,
        import::CALL,
        |mut caller: Caller<'_, Host>, handle: i64, ptr: i32, len: i32| -> Result<i32> {
            let request = read_guest(&mut caller, ptr, len)?;
            let (method, args): (String, Vec<Value>) =
                codec::decode(&request, DecodeLimits::default())?;
            caller
                .data_mut()
                .calls
                .push((handle, method.clone(), args.clone()));
            let object = usize::try_from(handle)
                .ok()
                .and_then(|h| caller.data().handles.get(h).copied().flatten());
            let result = match object {
                None => Err(Error::bad_argument(format!("stale handle {handle}"))),
                Some(object) => answer(&mut caller, object, &method, args)?,
            };
            let encoded = codec::encode(&result)?;
            let n = i32::try_from(encoded.len())?;
            caller.data_mut().pending = Some(encoded);
            Ok(n)
        },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        import::TAKE_RESULT,
        |mut caller: Caller<'_, Host>, ptr: i32, len: i32| -> Result<()> {
            let pending = caller
                .data_mut()
                .pending
                .take()
                .context("no pending result")?;
            if pending.len() != usize::try_from(len.cast_unsigned())? {
                bail!(
                    "take_result with {len} bytes for a {}-byte result",
                    pending.len()
                );
            }
            let memory = caller.data().memory.context("no memory")?;
            memory.write(&mut caller, usize::try_from(ptr.cast_unsigned())?, &pending)?;
            Ok(())
        },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        import::CAPABILITY,
        |mut caller: Caller<'_, Host>, ptr: i32, len: i32| -> Result<i64> {
            let name = String::from_utf8(read_guest(&mut caller, ptr, len)?)?;
            Ok(match caller.data().capabilities.get(&name).copied() {
                Some(object) => new_handle(caller.data_mut(), object),
                None => -1,
            })
        },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        import::RELEASE,
        |mut caller: Caller<'_, Host>, handle: i64| -> Result<()> {
            let host = caller.data_mut();
            let slot = usize::try_from(handle)
                .ok()
                .and_then(|h| host.handles.get_mut(h))
                .and_then(Option::take);
            if slot.is_none() {
                bail!("guest released handle {handle}, which it does not hold");
            }
            host.released.push(handle);
            Ok(())
        },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        import::PANIC,
        |mut caller: Caller<'_, Host>, ptr: i32, len: i32| -> Result<()> {
            let message = String::from_utf8(read_guest(&mut caller, ptr, len)?)?;
            caller.data_mut().panics.push(message);
            Ok(())
        },
    )?;
    Ok(())
}

/// How the host's fake netrefs answer.
fn answer(
    caller: &mut Caller<'_, Host>,
    object: HostObject,
    method: &str,
    args: Vec<Value>,
) -> Result<Result<Value, Error>> {
    Ok(match (object, method) {
        (HostObject::Recorder, "call") => Ok(Value::Unit),
        (HostObject::Gone, _) => Err(Error::disconnected("the client went away")),
        (HostObject::Reenter, "call") => {
            let inc = caller
                .get_export(&rich_export_symbol("inc"))
                .and_then(|e| e.into_func())
                .context("no rwc_export_inc")?
                .typed::<(i32, i32), i64>(&*caller)?;
            call_rich(&mut *caller, inc, &codec::encode(&args)?)?
        }
        (HostObject::Sys, "hostname") => Ok(Value::from("harness")),
        (HostObject::Sys, "cpu_count") => Ok(Value::U64(2)),
        (HostObject::Sys, "load_average") => Ok(Value::List(vec![Value::F64(0.5); 3])),
        (HostObject::Sys, _) => Ok(Value::from(format!("{method}?"))),
        (_, m) => Err(Error::new(
            ErrorKind::Unimplemented,
            format!("no method {m}"),
        )),
    })
}

fn guest(path: &'static str, capabilities: &[(&str, HostObject)]) -> Guest {
    Guest::new(path, capabilities).unwrap()
}

fn string(s: &str) -> Value {
    Value::from(s)
}

// ---------------------------------------------------------------------------------------
// wordcount: typed values, errors, panics.

#[test]
fn word_count_runs_through_the_abi() {
    let mut g = guest(guests::WORDCOUNT, &[]);
    let counts = g
        .call(
            "word_count",
            vec![string("The cat saw the other cat. THE end!")],
        )
        .unwrap()
        .unwrap();
    let counts: BTreeMap<String, u32> = from_value(counts).unwrap();
    assert_eq!(counts["the"], 3);
    assert_eq!(counts["cat"], 2);
    assert_eq!(counts["end"], 1);
    assert_eq!(counts.len(), 5);
}

#[test]
fn typed_values_round_trip_through_the_guest() {
    let mut g = guest(guests::WORDCOUNT, &[]);
    let record = Record {
        name: "ünïcode ✓".into(),
        count: -42,
        ratio: 0.1,
        flags: vec![true, false],
        tags: BTreeMap::from([("a".into(), 1), ("b".into(), u32::MAX)]),
        shape: Shape::Segment(Point { x: -1, y: 2 }, Point { x: 3, y: -4 }),
        data: ByteBuf::from(vec![0, 1, 2, 255]),
        maybe: None,
        points: vec![Point { x: 0, y: 0 }],
    };
    let back = g
        .call("roundtrip", vec![to_value(&record).unwrap()])
        .unwrap()
        .unwrap();
    assert_eq!(from_value::<Record>(back.clone()).unwrap(), record);
    assert!(
        matches!(back.get("data"), Some(Value::Bytes(_))),
        "{back:?}"
    );

    for shape in [
        Shape::Empty,
        Shape::Circle(1.5),
        Shape::Rect {
            width: 3,
            height: 4,
        },
    ] {
        let back = g
            .call("roundtrip_shape", vec![to_value(&shape).unwrap()])
            .unwrap()
            .unwrap();
        assert_eq!(from_value::<Shape>(back).unwrap(), shape);
    }
    let area = g
        .call(
            "area",
            vec![
                to_value(&Shape::Rect {
                    width: 3,
                    height: 4,
                })
                .unwrap(),
            ],
        )
        .unwrap()
        .unwrap();
    assert_eq!(area, Value::F64(12.0));

    let reversed = g
        .call("reverse_bytes", vec![Value::Bytes(vec![1, 2, 3].into())])
        .unwrap()
        .unwrap();
    assert_eq!(reversed, Value::Bytes(vec![3, 2, 1].into()));

    let v = Value::Map(vec![(
        Value::I64(-1),
        Value::List(vec![Value::Unit, Value::Bool(true)]),
    )]);
    assert_eq!(g.call("echo", vec![v.clone()]).unwrap().unwrap(), v);
}

#[test]
fn guest_errors_and_bad_arguments_come_back_as_errors() {
    let mut g = guest(guests::WORDCOUNT, &[]);
    let err = g
        .call("fail", vec![string("no luck")])
        .unwrap()
        .unwrap_err();
    assert_eq!(err, Error::failed("no luck"));

    let err = g.call("word_count", vec![]).unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadArgument);
    assert_eq!(
        err.message(),
        "`word_count` takes 1 argument (text: String) but was called with 0"
    );
    let err = g
        .call("word_count", vec![Value::U64(3)])
        .unwrap()
        .unwrap_err();
    assert!(
        err.message()
            .starts_with("argument 1 (`text: String`) of `word_count`"),
        "{err}"
    );
    // Still usable afterwards.
    assert!(g.call("word_count", vec![string("x")]).unwrap().is_ok());
}

#[test]
fn a_panic_is_reported_then_traps() {
    let mut g = guest(guests::WORDCOUNT, &[]);
    let err = g
        .call("panic_now", vec![string("the sky fell")])
        .unwrap_err();
    assert!(
        err.downcast_ref::<wasmtime::Trap>().is_some(),
        "expected a trap, got {err:?}"
    );
    let panics = &g.host().panics;
    assert_eq!(panics.len(), 1, "{panics:?}");
    assert!(
        panics[0].starts_with("panicked at wordcount/src/lib.rs:"),
        "{}",
        panics[0]
    );
    assert!(panics[0].ends_with(":\nthe sky fell"), "{}", panics[0]);
}

// ---------------------------------------------------------------------------------------
// counter: guest objects.

fn sender_id(v: &Value) -> u64 {
    match v {
        Value::Ref(Ref::Wire(WireRef::Sender(id))) => *id,
        other => panic!("expected a guest object (Sender ref), got {other:?}"),
    }
}

#[test]
fn guest_objects_live_until_the_node_drops_them() {
    let mut g = guest(guests::COUNTER, &[]);
    let a = sender_id(&g.call("new_counter", vec![Value::I64(5)]).unwrap().unwrap());
    let b = sender_id(
        &g.call("new_counter", vec![Value::I64(100)])
            .unwrap()
            .unwrap(),
    );
    assert_ne!(a, b);
    assert!(a >= 1 && b >= 1, "guest object ids start at 1");
    assert_eq!(g.numeric::<(), i32>("live_counters", ()).unwrap(), 2);
    assert_eq!(g.call("exported", vec![]).unwrap(), Ok(Value::U64(2)));

    assert_eq!(
        g.call_object(a, "incr", vec![Value::I64(2)]).unwrap(),
        Ok(Value::I64(7))
    );
    assert_eq!(g.call_object(a, "get", vec![]).unwrap(), Ok(Value::I64(7)));
    let err = g
        .call_object(a, "incr", vec![Value::I64(i64::MAX)])
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert!(err.message().contains("counter overflow"), "{err}");
    let err = g.call_object(a, "decr", vec![]).unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unimplemented);
    assert!(
        err.message().contains("it has: incr, get, absorb, fork"),
        "{err}"
    );

    // Introspection.
    let methods = g.call_object(a, "rwc.methods", vec![]).unwrap().unwrap();
    let names: Vec<&str> = methods
        .as_list()
        .unwrap()
        .iter()
        .map(|m| m.get("name").and_then(Value::as_str).unwrap())
        .collect();
    assert_eq!(names, ["incr", "get", "absorb", "fork"]);

    // An object passed back to the guest is its own object again.
    let b_back = Value::Ref(Ref::Wire(WireRef::Receiver(b)));
    assert_eq!(
        g.call_object(a, "absorb", vec![b_back]).unwrap(),
        Ok(Value::I64(107))
    );
    // A method returning a new object.
    let c = sender_id(&g.call_object(a, "fork", vec![]).unwrap().unwrap());
    assert_eq!(
        g.call_object(c, "get", vec![]).unwrap(),
        Ok(Value::I64(107))
    );
    assert_eq!(g.numeric::<(), i32>("live_counters", ()).unwrap(), 3);

    g.drop_object(a).unwrap();
    assert_eq!(
        g.numeric::<(), i32>("live_counters", ()).unwrap(),
        2,
        "Drop ran"
    );
    assert_eq!(g.call("live", vec![]).unwrap(), Ok(Value::U64(2)));
    let err = g.call_object(a, "get", vec![]).unwrap().unwrap_err();
    assert!(err.message().contains("does not exist"), "{err}");
    g.drop_object(b).unwrap();
    g.drop_object(c).unwrap();
    assert_eq!(g.numeric::<(), i32>("live_counters", ()).unwrap(), 0);
    assert_eq!(g.call("exported", vec![]).unwrap(), Ok(Value::U64(0)));
}

// ---------------------------------------------------------------------------------------
// progress: calls from the guest to netrefs, nested calls, releases.

/// The `progress` guest, and a handle to `object` to give it.
fn progress_with(object: HostObject) -> (Guest, Value) {
    let mut g = guest(guests::PROGRESS, &[]);
    let handle = g.hand(object);
    (g, handle)
}

#[test]
fn guest_calls_a_callback_and_releases_it() {
    let (mut g, cb) = progress_with(HostObject::Recorder);
    let out = g.call("run", vec![Value::U64(4), cb]).unwrap();
    assert_eq!(out, Ok(Value::U64(4)));
    let percents: Vec<&Value> = g.host().calls.iter().map(|(_, _, args)| &args[0]).collect();
    assert_eq!(
        percents,
        [
            &Value::U64(25),
            &Value::U64(50),
            &Value::U64(75),
            &Value::U64(100)
        ]
    );
    assert!(
        g.host()
            .calls
            .iter()
            .all(|(h, m, _)| *h == 0 && m == "call")
    );
    assert_eq!(g.released(), [0], "the Remote released its handle once");
}

#[test]
fn callback_errors_end_the_guest_call() {
    let (mut g, cb) = progress_with(HostObject::Gone);
    let err = g.call("run", vec![Value::U64(3), cb]).unwrap().unwrap_err();
    assert_eq!(
        err,
        Error::disconnected("the client went away"),
        "kind and message kept"
    );
    assert_eq!(
        g.host().calls.len(),
        1,
        "the first failed call ended the run"
    );
    assert_eq!(g.released(), [0]);
}

#[test]
fn a_callback_can_call_back_into_the_guest() {
    let (mut g, cb) = progress_with(HostObject::Reenter);
    // Each cb.call(i) runs the guest's inc(i) nested inside ping_back: 1 + 2 + 3 + 4.
    let out = g.call("ping_back", vec![Value::U64(4), cb]).unwrap();
    assert_eq!(out, Ok(Value::U64(10)));
    assert_eq!(g.released(), [0]);
}

#[test]
fn a_returned_netref_is_released_only_after_the_node_read_the_result() {
    let (mut g, cb) = progress_with(HostObject::Recorder);
    let back = g.call("hand_back", vec![cb]).unwrap().unwrap();
    assert_eq!(
        back,
        Value::Ref(Ref::Wire(WireRef::Receiver(0))),
        "the node's own handle"
    );
    assert!(
        g.released().is_empty(),
        "still held while the node reads the result"
    );
    g.call("inc", vec![Value::U64(1)]).unwrap().unwrap();
    assert_eq!(
        g.released(),
        [0],
        "released at the next call into the guest"
    );
}

#[test]
fn ignored_netref_arguments_are_released() {
    let mut g = guest(guests::WORDCOUNT, &[]);
    let cb = g.hand(HostObject::Recorder);
    // `echo` takes a raw Value: the handle inside is not claimed by a Remote.
    g.call("echo", vec![cb]).unwrap().unwrap();
    assert_eq!(g.released(), [0]);
}

// ---------------------------------------------------------------------------------------
// sysreport: capabilities.

#[test]
fn capabilities_handed_over_are_reachable() {
    let mut g = guest(guests::SYSREPORT, &[("sys", HostObject::Sys)]);
    let report = g.call("report", vec![]).unwrap().unwrap();
    assert_eq!(report.get("hostname"), Some(&string("harness")));
    assert_eq!(report.get("cpu_count"), Some(&Value::U64(2)));
    assert_eq!(report.get("disk"), Some(&string("disk?")));
    let methods: Vec<&str> = g.host().calls.iter().map(|(_, m, _)| m.as_str()).collect();
    assert_eq!(
        methods,
        rwc_api::capability::sys::report_keys().collect::<Vec<_>>(),
        "the guest asked the capability for each part of its report, in order"
    );
    assert_eq!(
        g.released().len(),
        1,
        "the capability's handle was released"
    );
}

#[test]
fn capabilities_not_handed_over_are_denied() {
    let mut g = guest(guests::SYSREPORT, &[]);
    let err = g.call("report_denied", vec![]).unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Denied);
    assert_eq!(
        err.message(),
        "capability `fs` was not handed to this instance"
    );
    let err = g.call("report", vec![]).unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Denied);
}

// ---------------------------------------------------------------------------------------
// hello.wat: the ABI by hand.

#[test]
fn hand_written_wat_guest_speaks_the_abi() {
    let mut g = guest(guests::HELLO_WAT, &[]);
    assert_eq!(g.call("hello", vec![]).unwrap(), Ok(string("hello")));
    assert_eq!(
        g.call("greet", vec![string("ignored")]).unwrap(),
        Ok(string("hello"))
    );
    let args = vec![Value::U64(1), string("two"), Value::Bytes(vec![3].into())];
    assert_eq!(g.call("args", args.clone()).unwrap(), Ok(Value::List(args)));
    assert_eq!(g.call("fail", vec![]).unwrap(), Err(Error::failed("nope")));
    assert_eq!(g.numeric::<(i32, i32), i32>("add", (2, 40)).unwrap(), 42);
}

#[test]
fn hello_bytes_match_the_abi_doc_example() {
    // docs/abi.md: Ok(Value::String("hello")) is 00 05 05 68 65 6c 6c 6f.
    let bytes = codec::encode(&Ok::<Value, Error>(string("hello"))).unwrap();
    assert_eq!(bytes, [0x00, 0x05, 0x05, 0x68, 0x65, 0x6c, 0x6c, 0x6f]);
}
