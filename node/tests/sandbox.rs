//! The sandbox against real wasmtime: calls, limits, traps, output, caches, concurrency.
//! Guests are WAT written inline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rwc_node::sandbox::{
    ExportInfo, Instance, InstanceOptions, LoadedModule, Number, OutputSink, Sandbox,
    SandboxConfig, SandboxError, Stream, WasmArg,
};

/// A small sandbox: tests run in parallel, each with its own engine.
fn sandbox() -> Sandbox {
    Sandbox::new(config()).expect("sandbox")
}

/// A sandbox whose disk cache is `dir`.
fn cached(dir: &std::path::Path) -> Sandbox {
    Sandbox::new(SandboxConfig {
        cache_dir: Some(dir.to_path_buf()),
        ..config()
    })
    .expect("sandbox")
}

/// A sandbox with room for `instances` live instances.
fn sandbox_with_room(instances: usize) -> Sandbox {
    Sandbox::new(SandboxConfig {
        max_live_instances: instances,
        ..SandboxConfig::default()
    })
    .expect("sandbox")
}

fn config() -> SandboxConfig {
    SandboxConfig {
        max_live_instances: 8,
        ..SandboxConfig::default()
    }
}

/// Options with a linear memory limit of `bytes`.
fn memory(bytes: u64) -> InstanceOptions {
    InstanceOptions {
        memory_limit: Some(bytes),
        ..InstanceOptions::default()
    }
}

fn timeout(d: Duration) -> InstanceOptions {
    InstanceOptions {
        call_timeout: Some(d),
        ..InstanceOptions::default()
    }
}

/// An instance of `module` with the default options.
async fn plain(sandbox: &Sandbox, module: &Arc<LoadedModule>) -> Instance {
    sandbox
        .instantiate(module, InstanceOptions::default())
        .await
        .unwrap()
}

/// The message and trace of a trap, or a failure saying what came instead.
fn trap(err: &SandboxError) -> (&str, &str) {
    match err {
        SandboxError::Trap { message, trace } => (message, trace),
        other => panic!("expected a trap, got {other:?}"),
    }
}

/// Loads `wat` and instantiates it with `options`; the module is kept alive beside it.
async fn load_and_instantiate(
    sandbox: &Sandbox,
    wat: &str,
    options: InstanceOptions,
) -> (Arc<LoadedModule>, Instance) {
    let module = sandbox.load(wat.as_bytes()).unwrap();
    let instance = sandbox.instantiate(&module, options).await.unwrap();
    (module, instance)
}

/// Calls `export` without arguments in a default instance of `wat`, in a sandbox of its
/// own; the call must fail: its error.
async fn failure_of(wat: &str, export: &str) -> SandboxError {
    let sandbox = sandbox();
    let (_module, mut instance) =
        load_and_instantiate(&sandbox, wat, InstanceOptions::default()).await;
    match instance.call(export, &[]).await {
        Ok(results) => panic!("`{export}` returned {results:?} instead of failing"),
        Err(err) => err,
    }
}

const ADD: &str = r#"(module
    (memory (export "memory") 1)
    (func $add (export "add") (param i32 i32) (result i32)
        local.get 0 local.get 1 i32.add)
    (func (export "half") (param f64) (result f64)
        local.get 0 f64.const 0.5 f64.mul)
    (func (export "byte_at") (param i32) (result i32)
        local.get 0 i32.load8_u))"#;

const SPIN: &str = r#"(module
    (func $spin (export "spin") (loop $forever (br $forever))))"#;

/// What stops a call of `spin`, which loops for ever.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// The call timeout: `TimedOut`.
    Deadline,
    /// The fuel budget: `OutOfFuel`.
    Fuel,
}

/// Calls `spin` on `instance`, which `stop` must end: the error.
async fn spin_until(instance: &mut Instance, stop: Stop) -> SandboxError {
    let err = instance.call("spin", &[]).await.unwrap_err();
    let stopped = match stop {
        Stop::Deadline => matches!(err, SandboxError::TimedOut { .. }),
        Stop::Fuel => matches!(err, SandboxError::OutOfFuel { .. }),
    };
    assert!(stopped, "expected the {stop:?} to stop `spin`, got {err:?}");
    err
}

#[tokio::test]
async fn add_returns_the_sum() {
    let sandbox = sandbox();
    let (_module, mut instance) =
        load_and_instantiate(&sandbox, ADD, InstanceOptions::default()).await;
    let sum = instance
        .call("add", &[WasmArg::I32(40), WasmArg::I32(2)])
        .await
        .unwrap();
    assert_eq!(sum, vec![WasmArg::I32(42)]);
    let half = instance
        .call_numbers("half", &[Number::Int(3)])
        .await
        .unwrap();
    assert_eq!(half, vec![WasmArg::F64(1.5)]);

    let names: Vec<_> = instance.exports().iter().map(ExportInfo::name).collect();
    assert_eq!(names, ["memory", "add", "half", "byte_at"]);
}

#[tokio::test]
async fn bad_arguments_name_the_signature() {
    let sandbox = sandbox();
    let (_module, mut instance) =
        load_and_instantiate(&sandbox, ADD, InstanceOptions::default()).await;

    let err = instance.call("add", &[WasmArg::I32(1)]).await.unwrap_err();
    assert!(matches!(err, SandboxError::BadArgument(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "add takes (i32, i32) -> i32, got 1 argument"
    );

    let err = instance
        .call("add", &[WasmArg::I32(1), WasmArg::F64(2.0)])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "add takes (i32, i32) -> i32, got an f64 as argument 2"
    );

    let err = instance
        .call_numbers("add", &[Number::Int(1), Number::Int(1 << 40)])
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("add takes (i32, i32) -> i32; argument 2: 1099511627776"),
        "{err}"
    );

    let err = instance.call("sub", &[]).await.unwrap_err();
    assert!(matches!(err, SandboxError::NoSuchExport { .. }), "{err:?}");
    assert!(err.to_string().contains("add, half, byte_at"), "{err}");

    // The instance is still fine after refusing those calls.
    let sum = instance
        .call("add", &[WasmArg::I32(1), WasmArg::I32(1)])
        .await
        .unwrap();
    assert_eq!(sum, vec![WasmArg::I32(2)]);
}

#[tokio::test]
async fn memory_can_be_read_and_written_within_bounds() {
    let sandbox = sandbox();
    let (_module, mut instance) =
        load_and_instantiate(&sandbox, ADD, InstanceOptions::default()).await;
    instance.write_memory(100, &[7, 8, 9]).unwrap();
    assert_eq!(instance.read_memory(100, 3).unwrap(), [7, 8, 9]);
    let seen = instance
        .call("byte_at", &[WasmArg::I32(101)])
        .await
        .unwrap();
    assert_eq!(seen, vec![WasmArg::I32(8)], "the guest sees the write");

    let err = instance.read_memory(65_535, 2).unwrap_err();
    assert!(matches!(err, SandboxError::BadArgument(_)), "{err:?}");
    assert!(instance.write_memory(u64::MAX, &[1]).is_err());

    let spin = sandbox.load(SPIN.as_bytes()).unwrap();
    let mut no_memory = plain(&sandbox, &spin).await;
    let err = no_memory.read_memory(0, 1).unwrap_err();
    assert!(matches!(err, SandboxError::NoSuchExport { .. }), "{err:?}");
}

#[tokio::test]
async fn infinite_loop_times_out_at_its_deadline() {
    let sandbox = sandbox();
    let (_module, mut instance) =
        load_and_instantiate(&sandbox, SPIN, timeout(Duration::from_millis(200))).await;
    let start = std::time::Instant::now();
    let err = spin_until(&mut instance, Stop::Deadline).await;
    let elapsed = start.elapsed();
    let SandboxError::TimedOut {
        call_timeout,
        trace,
    } = &err
    else {
        unreachable!("spin_until checked the kind")
    };
    assert_eq!(*call_timeout, Duration::from_millis(200));
    assert!(trace.contains("spin"), "{trace}");
    assert_eq!(
        err.to_string(),
        "call ran past its call timeout of 200ms; raise --timeout (call_timeout_ms), up to \
         the node's limit"
    );
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");

    // A timed-out instance can be called again, with a fresh deadline.
    spin_until(&mut instance, Stop::Deadline).await;
}

#[tokio::test]
async fn deadlines_hold_after_the_sandbox_is_dropped() {
    let sandbox = sandbox();
    let (module, mut instance) =
        load_and_instantiate(&sandbox, SPIN, timeout(Duration::from_millis(100))).await;
    drop(module);
    drop(sandbox);
    spin_until(&mut instance, Stop::Deadline).await;
}

#[tokio::test]
async fn fuel_budget_stops_an_infinite_loop() {
    let sandbox = sandbox();
    let (module, mut instance) = load_and_instantiate(&sandbox, SPIN, fuel(100_000)).await;
    assert_eq!(instance.fuel_remaining(), Some(100_000));
    let err = spin_until(&mut instance, Stop::Fuel).await;
    assert!(err.trace().is_some_and(|t| t.contains("spin")), "{err:?}");
    assert_eq!(instance.fuel_remaining(), Some(0));

    // Unmetered instances report no budget.
    let plain = plain(&sandbox, &module).await;
    assert_eq!(plain.fuel_remaining(), None);
}

fn fuel(budget: u64) -> InstanceOptions {
    InstanceOptions {
        fuel: Some(budget),
        ..timeout(Duration::from_secs(60))
    }
}

#[tokio::test]
async fn instances_without_fuel_run_code_without_fuel_checks() {
    let sandbox = sandbox();
    let (module, mut instance) =
        load_and_instantiate(&sandbox, ADD, InstanceOptions::default()).await;
    assert_eq!(instance.fuel_remaining(), None);
    let sum = instance
        .call("add", &[WasmArg::I32(1), WasmArg::I32(2)])
        .await
        .unwrap();
    assert_eq!(sum, vec![WasmArg::I32(3)]);
    // Compiled once, for the engine without fuel: nothing asked for the metered variant.
    assert_eq!(sandbox.stats().compiles, 1);
    assert!(!module.has_fuel_variant());
    assert!(
        wasmtime::Engine::same(module.module().engine(), sandbox.engine()),
        "the module is compiled for the sandbox's unmetered engine"
    );
    assert!(
        instance.store().get_fuel().is_err(),
        "the instance's engine does not meter fuel at all"
    );

    // Its code counts no fuel, so it cannot be given a budget later.
    let err = instance.set_fuel(Some(1_000)).unwrap_err();
    assert!(
        err.to_string().contains("created without a fuel budget"),
        "{err}"
    );
    assert!(matches!(err, SandboxError::BadArgument(_)), "{err:?}");
    instance.set_fuel(None).unwrap();
    assert_eq!(instance.fuel_remaining(), None);
}

#[tokio::test]
async fn fuel_variant_is_compiled_once_on_demand() {
    let sandbox = sandbox();
    let module = sandbox.load(SPIN.as_bytes()).unwrap();
    assert_eq!(sandbox.stats().compiles, 1);

    let mut first = sandbox.instantiate(&module, fuel(100_000)).await.unwrap();
    assert_eq!(
        sandbox.stats().compiles,
        2,
        "the metered variant is compiled"
    );
    assert!(module.has_fuel_variant());
    let mut second = sandbox.instantiate(&module, fuel(50_000)).await.unwrap();
    assert_eq!(sandbox.stats().compiles, 2, "and compiled only once");

    for (instance, budget) in [(&mut first, 100_000), (&mut second, 50_000)] {
        assert_eq!(instance.fuel_remaining(), Some(budget));
        spin_until(instance, Stop::Fuel).await;
        assert_eq!(instance.fuel_remaining(), Some(0));
    }

    // A metered instance can be refuelled, or let run without a budget.
    first.set_fuel(Some(10)).unwrap();
    assert_eq!(first.fuel_remaining(), Some(10));
    first.set_fuel(None).unwrap();
    assert_eq!(first.fuel_remaining(), None);

    // Instances without a budget still run the unmetered code.
    let plain = plain(&sandbox, &module).await;
    assert_eq!(plain.fuel_remaining(), None);
    assert!(plain.store().get_fuel().is_err());
    assert_eq!(sandbox.stats().compiles, 2);
}

#[tokio::test]
async fn concurrent_first_fuel_instances_share_one_compile() {
    let sandbox = sandbox();
    let module = sandbox.load(SPIN.as_bytes()).unwrap();
    let (a, b, c) = tokio::join!(
        sandbox.instantiate(&module, fuel(10)),
        sandbox.instantiate(&module, fuel(20)),
        sandbox.instantiate(&module, fuel(30)),
    );
    let fuels: Vec<_> = [a, b, c]
        .into_iter()
        .map(|i| i.unwrap().fuel_remaining())
        .collect();
    assert_eq!(fuels, [Some(10), Some(20), Some(30)]);
    assert_eq!(sandbox.stats().compiles, 2);
}

#[tokio::test]
async fn metered_instances_still_time_out() {
    // The metered engine's epoch must advance too.
    let sandbox = sandbox();
    let options = InstanceOptions {
        fuel: Some(u64::MAX / 2),
        ..timeout(Duration::from_millis(200))
    };
    let (_module, mut instance) = load_and_instantiate(&sandbox, SPIN, options).await;
    let start = std::time::Instant::now();
    spin_until(&mut instance, Stop::Deadline).await;
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn metered_and_unmetered_instances_share_the_live_limit() {
    let sandbox = sandbox_with_room(2);
    let module = sandbox.load(ADD.as_bytes()).unwrap();
    let metered = sandbox.instantiate(&module, fuel(1_000)).await.unwrap();
    let plain = plain(&sandbox, &module).await;
    assert_eq!(sandbox.stats().live_instances, 2);
    for opts in [fuel(1_000), InstanceOptions::default()] {
        let err = sandbox.instantiate(&module, opts).await.unwrap_err();
        assert!(
            matches!(err, SandboxError::Overloaded { limit: 2 }),
            "{err:?}"
        );
    }
    drop(plain);
    // Either pool has room for every instance the limit allows.
    let metered_too = sandbox.instantiate(&module, fuel(1_000)).await.unwrap();
    drop((metered, metered_too));
    assert_eq!(sandbox.stats().live_instances, 0);
}

const GROW_BOMB: &str = r#"(module
                (memory 1)
                (func (export "bomb")
                    (loop $more
                        (br_if $more (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))))"#;

#[tokio::test]
async fn memory_grow_over_the_limit_is_a_memory_limit_error() {
    let sandbox = sandbox();
    // Grows by 1 MiB (16 pages) until memory.grow fails.
    let module = sandbox.load(GROW_BOMB.as_bytes()).unwrap();
    let mut instance = sandbox
        .instantiate(&module, memory(16 << 20))
        .await
        .unwrap();
    let err = instance.call("bomb", &[]).await.unwrap_err();
    match &err {
        SandboxError::MemoryLimit {
            requested, limit, ..
        } => {
            assert_eq!(*limit, 16 << 20);
            assert!(*requested > 16 << 20);
        }
        other => panic!("expected MemoryLimit, got {other:?}"),
    }
    assert!(
        err.to_string()
            .contains("raise the instance's memory limit")
    );
}

#[tokio::test]
async fn initial_memory_over_the_limit_fails_instantiation() {
    let sandbox = sandbox();
    // 32 pages = 2 MiB.
    let module = sandbox.load(b"(module (memory 32))").unwrap();
    let err = sandbox
        .instantiate(&module, memory(1 << 20))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SandboxError::MemoryLimit {
                requested: 2097152,
                limit: 1048576,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(sandbox.stats().live_instances, 0);
}

#[tokio::test]
async fn unbounded_recursion_is_a_stack_overflow_trap() {
    let err = failure_of(
        r#"(module (func $recurse (export "recurse") (call $recurse)))"#,
        "recurse",
    )
    .await;
    let (message, _) = trap(&err);
    assert!(message.contains("stack overflow"), "{message}");
}

const UNREACHABLE: &str = r#"(module
                (func $inner_fails unreachable)
                (func $outer_calls (export "boom") (call $inner_fails)))"#;

#[tokio::test]
async fn unreachable_traps_with_a_named_backtrace() {
    let err = failure_of(UNREACHABLE, "boom").await;
    let (message, trace) = trap(&err);
    assert!(message.contains("unreachable"), "{message}");
    assert!(trace.contains("inner_fails"), "{trace}");
    assert!(trace.contains("outer_calls"), "{trace}");
}

const PROC_EXIT: &str = r#"(module
                (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
                (memory (export "memory") 1)
                (func (export "quit") (call $exit (i32.const 3))))"#;

#[tokio::test]
async fn proc_exit_is_an_exit() {
    let err = failure_of(PROC_EXIT, "quit").await;
    assert!(matches!(err, SandboxError::Exit(3)), "{err:?}");
}

const ENV_COUNT: &str = r#"(module
                (import "wasi_snapshot_preview1" "environ_sizes_get"
                    (func $sizes (param i32 i32) (result i32)))
                (memory (export "memory") 1)
                (func (export "env_count") (result i32)
                    (drop (call $sizes (i32.const 0) (i32.const 4)))
                    (i32.load (i32.const 0))))"#;

#[tokio::test]
async fn guest_sees_only_the_env_it_was_given() {
    let sandbox = sandbox();
    let module = sandbox.load(ENV_COUNT.as_bytes()).unwrap();
    let mut bare = plain(&sandbox, &module).await;
    assert_eq!(
        bare.call("env_count", &[]).await.unwrap(),
        vec![WasmArg::I32(0)]
    );
    let mut given = sandbox
        .instantiate(
            &module,
            InstanceOptions {
                env: vec![("A".into(), "1".into()), ("B".into(), "2".into())],
                ..InstanceOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        given.call("env_count", &[]).await.unwrap(),
        vec![WasmArg::I32(2)]
    );
}

/// Writes "hello from the guest\n" to stdout, then spins until its deadline.
const HELLO_THEN_SPIN: &str = r#"(module
    (import "wasi_snapshot_preview1" "fd_write"
        (func $fd_write (param i32 i32 i32 i32) (result i32)))
    (memory (export "memory") 1)
    (data (i32.const 16) "hello from the guest\n")
    (func (export "hello_then_spin")
        (i32.store (i32.const 0) (i32.const 16))
        (i32.store (i32.const 4) (i32.const 21))
        (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
        (loop $forever (br $forever))))"#;

#[tokio::test]
async fn stdout_reaches_the_sink_while_the_guest_runs() {
    let sandbox = sandbox();
    let module = sandbox.load(HELLO_THEN_SPIN.as_bytes()).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let sink = OutputSink::new(move |stream, bytes| {
        let _ = tx.send((stream, bytes.to_vec()));
    });
    let mut instance = sandbox
        .instantiate(
            &module,
            InstanceOptions {
                output: Some(sink),
                ..timeout(Duration::from_secs(20))
            },
        )
        .await
        .unwrap();
    let call = tokio::spawn(async move { instance.call("hello_then_spin", &[]).await });

    let (stream, bytes) = tokio::time::timeout(Duration::from_secs(15), rx.recv())
        .await
        .expect("output arrives long before the deadline")
        .expect("sink alive");
    assert_eq!(stream, Stream::Stdout);
    assert_eq!(bytes, b"hello from the guest\n");
    assert!(
        !call.is_finished(),
        "the output arrived while the guest was still running"
    );
    call.abort();
}

const FLOOD: &str = r#"(module
                (import "wasi_snapshot_preview1" "fd_write"
                    (func $fd_write (param i32 i32 i32 i32) (result i32)))
                (memory (export "memory") 2)
                (func (export "flood") (param $n i32) (local $i i32)
                    (memory.fill (i32.const 65536) (i32.const 120) (i32.const 65536))
                    (i32.store (i32.const 0) (i32.const 65536))
                    (i32.store (i32.const 4) (i32.const 65536))
                    (block $done
                        (loop $again
                            (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
                            (drop (call $fd_write
                                (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
                            (local.set $i (i32.add (local.get $i) (i32.const 1)))
                            (br $again)))))"#;

#[tokio::test]
async fn output_flood_is_capped_and_not_buffered() {
    let sandbox = sandbox();
    // Writes a 64 KiB buffer of 'x' to stdout `n` times.
    let module = sandbox.load(FLOOD.as_bytes()).unwrap();
    let delivered = Arc::new(AtomicU64::new(0));
    let tail = Arc::new(Mutex::new(Vec::new()));
    let sink = {
        let delivered = Arc::clone(&delivered);
        let tail = Arc::clone(&tail);
        OutputSink::new(move |_, bytes| {
            delivered.fetch_add(u64::try_from(bytes.len()).unwrap(), Ordering::Relaxed);
            *tail.lock().unwrap() = bytes.to_vec();
        })
    };
    let mut instance = sandbox
        .instantiate(
            &module,
            InstanceOptions {
                max_output: Some(1 << 20),
                output: Some(sink),
                ..timeout(Duration::from_secs(120))
            },
        )
        .await
        .unwrap();

    let rss_before = resident_bytes();
    // 1600 × 64 KiB = 100 MiB.
    instance.call("flood", &[WasmArg::I32(1600)]).await.unwrap();
    let rss_after = resident_bytes();

    let marker = b"\n[rwc: output truncated after 1048576 bytes]\n";
    let delivered = delivered.load(Ordering::Relaxed);
    assert_eq!(
        delivered,
        (1 << 20) + u64::try_from(marker.len()).unwrap(),
        "exactly the cap, then the marker"
    );
    assert_eq!(tail.lock().unwrap().as_slice(), marker);
    assert_eq!(instance.output().written(), 100 << 20);
    assert!(instance.output().truncated());
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        // Buffering the flood would add 100 MiB; allow for other tests' noise.
        assert!(
            after.saturating_sub(before) < 48 << 20,
            "resident memory grew from {before} to {after}"
        );
    }

    // The next call gets a fresh budget.
    instance.call("flood", &[WasmArg::I32(1)]).await.unwrap();
    assert!(!instance.output().truncated());
}

/// Resident set size from /proc, where there is one.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[tokio::test]
async fn disk_cache_survives_a_new_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let with_cache = || cached(dir.path());

    let first = with_cache();
    let id = first.load(ADD.as_bytes()).unwrap().hash().to_string();
    assert_eq!(first.stats().compiles, 1);
    drop(first);

    let second = with_cache();
    let module = second.load(ADD.as_bytes()).unwrap();
    let stats = second.stats();
    assert_eq!((stats.compiles, stats.disk_cache_hits), (0, 1));
    assert_eq!(module.size(), u64::try_from(ADD.len()).unwrap());
    let mut instance = plain(&second, &module).await;
    let sum = instance
        .call("add", &[WasmArg::I32(2), WasmArg::I32(2)])
        .await
        .unwrap();
    assert_eq!(sum, vec![WasmArg::I32(4)]);

    // A module only on disk is found by id alone.
    let third = with_cache();
    let module = third.module(&id).expect("found on disk");
    assert_eq!(module.hash(), id);
    assert_eq!(module.size(), u64::try_from(ADD.len()).unwrap());
    assert_eq!(third.stats().compiles, 0);
}

#[tokio::test]
async fn disk_cache_keeps_both_variants() {
    let dir = tempfile::tempdir().unwrap();
    let with_cache = || cached(dir.path());
    let artifacts = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "cwasm"))
            .collect::<Vec<_>>()
    };
    async fn out_of_fuel(sandbox: &Sandbox, module: &Arc<rwc_node::sandbox::LoadedModule>) {
        let mut instance = sandbox.instantiate(module, fuel(1_000)).await.unwrap();
        spin_until(&mut instance, Stop::Fuel).await;
    }

    let first = with_cache();
    let module = first.load(SPIN.as_bytes()).unwrap();
    let id = module.hash().to_string();
    let unmetered_artifact = match artifacts().as_slice() {
        [only] => only.clone(),
        other => panic!("expected only the unmetered artifact, found {other:?}"),
    };
    out_of_fuel(&first, &module).await;
    assert_eq!(first.stats().compiles, 2);
    let metered_artifact = match artifacts().as_slice() {
        [a, b] if *a == unmetered_artifact => b.clone(),
        [a, b] if *b == unmetered_artifact => a.clone(),
        other => panic!("expected one artifact per engine, found {other:?}"),
    };
    drop((module, first));

    // After a restart both variants come from disk.
    let second = with_cache();
    let module = second.load(SPIN.as_bytes()).unwrap();
    assert_eq!(second.stats().disk_cache_hits, 1);
    out_of_fuel(&second, &module).await;
    let stats = second.stats();
    assert_eq!((stats.compiles, stats.disk_cache_hits), (0, 2));
    let plain = plain(&second, &module).await;
    assert_eq!(plain.fuel_remaining(), None);
    drop((plain, module, second));

    // Likewise for a module found by id alone, without its upload at hand.
    let third = with_cache();
    let module = third.module(&id).expect("found on disk");
    out_of_fuel(&third, &module).await;
    let stats = third.stats();
    assert_eq!((stats.compiles, stats.disk_cache_hits), (0, 2));
    drop((module, third));

    // Without the metered artifact, it is compiled again from the cached upload.
    std::fs::remove_file(&metered_artifact).unwrap();
    let fourth = with_cache();
    let module = fourth.module(&id).expect("found on disk");
    out_of_fuel(&fourth, &module).await;
    let stats = fourth.stats();
    assert_eq!((stats.compiles, stats.disk_cache_hits), (1, 1));
    assert!(metered_artifact.exists(), "written again");
}

#[tokio::test]
async fn live_instances_are_counted_and_capped() {
    let sandbox = sandbox_with_room(2);
    let module = sandbox.load(ADD.as_bytes()).unwrap();
    let a = plain(&sandbox, &module).await;
    let b = plain(&sandbox, &module).await;
    assert_eq!(sandbox.stats().live_instances, 2);
    let err = sandbox
        .instantiate(&module, InstanceOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, SandboxError::Overloaded { limit: 2 }),
        "{err:?}"
    );
    drop(a);
    assert_eq!(sandbox.stats().live_instances, 1);
    let c = plain(&sandbox, &module).await;
    drop((b, c));
    assert_eq!(sandbox.stats().live_instances, 0);
}

/// While one guest spins, 20 calls on another instance all finish long before the
/// spinner's deadline.
async fn busy_guest_does_not_stall_others() {
    let sandbox = sandbox();
    let spin = sandbox.load(SPIN.as_bytes()).unwrap();
    let add = sandbox.load(ADD.as_bytes()).unwrap();
    let mut spinner = sandbox
        .instantiate(&spin, timeout(Duration::from_secs(5)))
        .await
        .unwrap();
    let mut adder = plain(&sandbox, &add).await;

    let spinning = tokio::spawn(async move {
        let result = spinner.call("spin", &[]).await;
        (result, tokio::time::Instant::now())
    });
    // Let the spinner get going before the other calls start.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let adding = tokio::spawn(async move {
        for i in 0..20 {
            let sum = adder
                .call("add", &[WasmArg::I32(i), WasmArg::I32(1)])
                .await
                .unwrap();
            assert_eq!(sum, vec![WasmArg::I32(i + 1)]);
        }
        tokio::time::Instant::now()
    });

    let adds_done = adding.await.unwrap();
    let (spin_result, spin_done) = spinning.await.unwrap();
    assert!(
        matches!(spin_result, Err(SandboxError::TimedOut { .. })),
        "{spin_result:?}"
    );
    assert!(adds_done < spin_done, "the adds waited for the spinner");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_guest_does_not_stall_others_multi_thread() {
    busy_guest_does_not_stall_others().await;
}

/// On a single thread only the guest's epoch yields let the other calls run.
#[tokio::test(flavor = "current_thread")]
async fn busy_guest_yields_on_a_single_thread() {
    busy_guest_does_not_stall_others().await;
}
