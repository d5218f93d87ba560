//! Overload: load beyond every bound of a node with small limits. Each phase pushes past
//! one bound and checks that the refusals are `overloaded` errors naming it, that nothing
//! hangs (every phase has a deadline) and the node does not crash; then it drops the load
//! and measures how long the node takes to serve a call again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use rwc_client::{Client, Error, ErrorKind, InstanceOptions, NetRef, PendingCall, Value, callable};
use rwc_tests::{guest_bytes, guests};
use tokio::sync::Semaphore;

use crate::Failure;
use crate::node::{Launcher, Node};

/// The node's limits in this scenario, as flags.
const LIMITS: &[(&str, u64)] = &[
    ("max-connections", 40),
    ("max-connections-per-address", 40),
    ("max-calls-in-flight", 16),
    ("max-request-bytes-in-flight", 1 << 20),
    ("max-calls-in-flight-per-principal", 64),
    ("max-queued-jobs-per-instance", 8),
    ("max-upload-bytes-in-flight", 2 << 20),
    ("max-concurrent-compiles", 1),
    ("max-instances", 256),
    ("max-instances-per-connection", 4),
    ("max-concurrent-calls", 200),
    ("max-module-bytes", 1 << 20),
    ("cache-max-bytes", 256 << 10),
];

/// How long one phase may take before it counts as a hang.
const PHASE_DEADLINE: Duration = Duration::from_secs(120);

pub(crate) async fn run(nodes: &Launcher) -> Result<(), Failure> {
    let cache = tempdir()?;
    let mut args: Vec<String> = LIMITS
        .iter()
        .flat_map(|(k, v)| [format!("--{k}"), v.to_string()])
        .collect();
    args.extend(["--cache-dir".to_owned(), cache.display().to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let node = nodes.start(&args)?;
    let o = Overload::new(&node).await?;
    println!("overload: one node with small limits; each phase goes past one of them");
    let mut failures = Vec::new();
    macro_rules! phase {
        ($name:literal, $expect:literal, $body:expr) => {
            match tokio::time::timeout(PHASE_DEADLINE, $body).await {
                Ok(Ok(report)) => {
                    let report: Report = report;
                    if let Err(e) = o.finish($name, $expect, report).await {
                        failures.push(e);
                    }
                }
                Ok(Err(e)) => failures.push(format!("{}: {e}", $name)),
                Err(_) => failures.push(format!("{}: hung for {PHASE_DEADLINE:?}", $name)),
            }
        };
    }
    phase!("connections", "max_connections", o.connections());
    phase!(
        "calls in flight",
        "max_calls_in_flight",
        o.calls_in_flight()
    );
    phase!(
        "calls per principal",
        "max_calls_in_flight_per_principal",
        o.per_principal()
    );
    phase!(
        "request bytes",
        "max_request_bytes_in_flight",
        o.request_bytes()
    );
    phase!(
        "instance job queue",
        "max_queued_jobs_per_instance",
        o.job_queue()
    );
    phase!("upload bytes", "max_upload_bytes_in_flight", o.uploads());
    phase!("instances", "max_instances_per_connection", o.instances());
    if let Err(e) = o.compiles().await {
        failures.push(format!("compiles: {e}"));
    }
    if let Err(e) = o.disk_cache().await {
        failures.push(format!("disk cache: {e}"));
    }
    let _ = std::fs::remove_dir_all(&cache);
    if !node.alive() {
        failures.push("the node crashed".to_owned());
    }
    if failures.is_empty() {
        println!("  the node never hung nor crashed");
        Ok(())
    } else {
        Err(failures.join("; ").into())
    }
}

/// What a phase saw: its attempts and what they ended with.
#[derive(Default)]
struct Report {
    attempts: usize,
    ok: usize,
    /// Refusals (`overloaded`) by the limit they named.
    refused: BTreeMap<String, usize>,
    /// Anything else.
    unexpected: Vec<String>,
}

impl Report {
    /// Counts `outcome`; what it gave, if it succeeded.
    fn record<T>(&mut self, outcome: Result<T, Error>) -> Option<T> {
        self.attempts += 1;
        match outcome {
            Ok(v) => {
                self.ok += 1;
                return Some(v);
            }
            Err(e) if e.kind() == ErrorKind::Overloaded => {
                *self.refused.entry(named_limit(e.message())).or_default() += 1;
            }
            Err(e) => self.unexpected.push(e.to_string()),
        }
        None
    }
}

/// The `[limits]` key an `overloaded` message names in parentheses.
fn named_limit(message: &str) -> String {
    message
        .split('(')
        .skip(1)
        .filter_map(|s| s.split_once(')').map(|(key, _)| key))
        .find(|key| !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        .unwrap_or("(no limit named)")
        .to_owned()
}

struct Overload<'a> {
    node: &'a Node,
    /// A connection kept open throughout, to probe and to read `info`.
    control: Client,
    spin: rwc_client::Module,
    progress: rwc_client::Module,
}

impl<'a> Overload<'a> {
    async fn new(node: &'a Node) -> Result<Overload<'a>, Failure> {
        let control = Client::connect(node.addr()).await?;
        let spin = control.upload(crate::SPIN.as_bytes()).await?;
        let progress = control.upload(&guest_bytes(guests::PROGRESS)).await?;
        Ok(Overload {
            node,
            control,
            spin,
            progress,
        })
    }

    async fn connect(&self) -> Result<Client, Error> {
        Client::connect(self.node.addr()).await
    }

    /// Checks a phase and measures the recovery: how long until a fresh connection's call
    /// succeeds once the load is gone.
    async fn finish(&self, name: &str, expect: &str, report: Report) -> Result<(), String> {
        let dropped = Instant::now();
        let recovered = loop {
            let probe = async {
                let c = self.connect().await?;
                c.info().await
            };
            match probe.await {
                Ok(_) => break dropped.elapsed(),
                Err(_) if dropped.elapsed() < PHASE_DEADLINE => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err(e) => return Err(format!("{name}: never recovered: {e}")),
            }
        };
        let refused: Vec<String> = report
            .refused
            .iter()
            .map(|(k, n)| format!("{n} naming {k}"))
            .collect();
        println!(
            "  {name:<22} {} attempts: {} served, refused: {}; recovered in {:.1} ms",
            report.attempts,
            report.ok,
            if refused.is_empty() {
                "none".to_owned()
            } else {
                refused.join(", ")
            },
            recovered.as_secs_f64() * 1000.0
        );
        if let Some(e) = report.unexpected.first() {
            return Err(format!(
                "{name}: {} unexpected errors, the first: {e}",
                report.unexpected.len()
            ));
        }
        if !report.refused.contains_key(expect) {
            return Err(format!("{name}: no refusal named {expect}"));
        }
        if let Some(n) = report.refused.get("(no limit named)") {
            return Err(format!("{name}: {n} refusals named no limit"));
        }
        Ok(())
    }

    /// 60 connections at once where 40 are allowed (one is the control connection).
    async fn connections(&self) -> Result<Report, Failure> {
        let mut report = Report::default();
        let attempts = join_all((0..60).map(|_| async {
            let c = self.connect().await?;
            c.info().await.map(|_| c)
        }))
        .await;
        let mut held = Vec::new();
        for a in attempts {
            held.extend(report.record(a));
        }
        drop(held);
        self.wait_for(|u| u.usage.connections <= 1).await?;
        Ok(report)
    }

    /// 64 calls at once on one connection where 16 may be in flight: each waits in a
    /// client callback until the phase lets them all go.
    async fn calls_in_flight(&self) -> Result<Report, Failure> {
        let client = self.connect().await?;
        let instance = self.instance(&client, &self.progress).await?;
        let (gate, cb) = gated_callback();
        let calls = (0..64).map(|_| ping_back(&instance, &cb)).collect();
        settle(&[&client], calls, || gate.add_permits(1 << 20)).await
    }

    /// 8 connections × 16 calls where one principal (every connection here is anonymous)
    /// may have 64 in flight.
    async fn per_principal(&self) -> Result<Report, Failure> {
        let (gate, cb) = gated_callback();
        let mut held = Vec::new();
        for _ in 0..8 {
            let client = self.connect().await?;
            let instance = self.instance(&client, &self.progress).await?;
            held.push((client, instance));
        }
        let calls = held
            .iter()
            .flat_map(|(_, instance)| (0..16).map(|_| ping_back(instance, &cb)))
            .collect();
        let clients: Vec<&Client> = held.iter().map(|(c, _)| c).collect();
        settle(&clients, calls, || gate.add_permits(1 << 20)).await
    }

    /// 8 writes of 256 KiB queued behind a busy guest where 1 MiB of requests may be in
    /// flight on a connection.
    async fn request_bytes(&self) -> Result<Report, Failure> {
        let client = self.connect().await?;
        let instance = self.instance(&client, &self.spin).await?;
        let busy = self.busy(&instance).await?;
        let writes = (0..8)
            .map(|_| write_memory(&instance, 0, vec![1; 256 << 10]))
            .collect();
        settle(&[&client], writes, move || drop(busy)).await
    }

    /// 12 jobs behind a busy guest where an instance queues 8.
    async fn job_queue(&self) -> Result<Report, Failure> {
        let client = self.connect().await?;
        let instance = self.instance(&client, &self.spin).await?;
        let busy = self.busy(&instance).await?;
        let jobs = (0..12)
            .map(|i| write_memory(&instance, i * 16, vec![2; 16]))
            .collect();
        settle(&[&client], jobs, move || drop(busy)).await
    }

    /// A fresh instance of `module` on `client`.
    async fn instance(
        &self,
        client: &Client,
        module: &rwc_client::Module,
    ) -> Result<rwc_client::Instance, Failure> {
        let module = client
            .module(module.hash())
            .await?
            .ok_or("the node lost a module")?;
        Ok(client
            .instantiate(&module, InstanceOptions::default())
            .await?)
    }

    /// Starts `spin` on `instance` and waits until the node has queued it: every job after
    /// it waits. Dropping the call stops the guest.
    async fn busy(&self, instance: &rwc_client::Instance) -> Result<PendingCall, Failure> {
        let before = self.control.info().await?.calls;
        let busy = instance.call_async("spin", vec![]);
        self.wait_for(|i| i.calls > before).await?;
        Ok(busy)
    }

    /// Three 1 MiB chunked uploads on one connection where 2 MiB may be held.
    async fn uploads(&self) -> Result<Report, Failure> {
        let client = self.connect().await?;
        let mut report = Report::default();
        let mut held = Vec::new();
        for _ in 0..3 {
            let r = rwc_client::request(
                client.root(),
                &rwc_client::api::root::UploadStream { total_len: 1 << 20 },
            )
            .await;
            held.extend(report.record(r));
        }
        drop(held);
        client.ping().await?;
        self.wait_for(|i| i.usage.upload_bytes_in_flight == 0)
            .await?;
        Ok(report)
    }

    /// Six instances on one connection where 4 are allowed.
    async fn instances(&self) -> Result<Report, Failure> {
        let client = self.connect().await?;
        let module = client
            .module(self.spin.hash())
            .await?
            .ok_or("the node lost a module")?;
        let mut report = Report::default();
        let mut held = Vec::new();
        for _ in 0..6 {
            let made = client
                .instantiate(&module, InstanceOptions::default())
                .await;
            held.extend(report.record(made));
        }
        drop(held);
        client.ping().await?;
        Ok(report)
    }

    /// Four different modules (example guests) from four connections where one compiles
    /// at a time: they queue rather than fail, and no more than one ever runs.
    async fn compiles(&self) -> Result<(), Failure> {
        let guests = [
            guests::WORDCOUNT,
            guests::MANDELBROT,
            guests::SYSREPORT,
            guests::COUNTER,
        ];
        let mut clients = Vec::new();
        for _ in &guests {
            clients.push(self.connect().await?);
        }
        let watching = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let started = Instant::now();
        let uploads = join_all(clients.iter().zip(guests).map(|(c, guest)| {
            let module = guest_bytes(guest);
            async move { c.upload(&module).await }
        }));
        let watch = async {
            let (mut most_running, mut most_queued) = (0, 0);
            while watching.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(info) = self.control.info().await {
                    most_running = most_running.max(info.usage.compiles_running);
                    most_queued = most_queued.max(info.usage.compiles_queued);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (most_running, most_queued)
        };
        let done = async {
            let r = uploads.await;
            watching.store(false, std::sync::atomic::Ordering::Relaxed);
            r
        };
        let (results, (most_running, most_queued)) = tokio::join!(done, watch);
        let failed: Vec<String> = results
            .into_iter()
            .filter_map(Result::err)
            .map(|e| e.to_string())
            .collect();
        println!(
            "  {:<22} 4 modules at once, 1 compile slot: at most {most_running} compiling and \
             {most_queued} queued at a time; all compiled in {:.1} s; {} failed",
            "compiles",
            started.elapsed().as_secs_f64(),
            failed.len()
        );
        if most_running > 1 {
            return Err(format!(
                "{most_running} compilations ran at once, over max_concurrent_compiles = 1"
            )
            .into());
        }
        if let Some(e) = failed.first() {
            return Err(format!("a queued compilation failed: {e}").into());
        }
        Ok(())
    }

    /// 40 small modules into a 256 KiB disk cache.
    async fn disk_cache(&self) -> Result<(), Failure> {
        for n in 0..40 {
            let wat = format!(
                "(module (memory 1) (data (i32.const 0) \"{}\") \
                 (func (export \"f\") (result i32) i32.const {n}))",
                "x".repeat(8192)
            );
            self.control.upload(wat.as_bytes()).await?;
        }
        let usage = self.control.info().await?.usage;
        println!(
            "  {:<22} 40 modules into a {} KiB budget: {} KiB held, {} evicted, {} failed writes",
            "disk cache",
            256,
            usage.cache_disk_bytes / 1024,
            usage.cache_disk_evictions,
            usage.cache_disk_write_failures
        );
        if usage.cache_disk_bytes > 256 << 10 || usage.cache_disk_evictions == 0 {
            return Err("the disk cache went over its budget or evicted nothing".into());
        }
        Ok(())
    }

    /// Polls the control connection's `info` until `f` holds (for at most a phase).
    async fn wait_for(&self, f: impl Fn(&rwc_client::NodeInfo) -> bool) -> Result<(), Failure> {
        let deadline = Instant::now() + PHASE_DEADLINE;
        loop {
            let info = self.control.info().await?;
            if f(&info) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("the node never got there".into());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// A client callback that waits until `gate` lets it through, and the gate.
fn gated_callback() -> (Arc<Semaphore>, NetRef) {
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let cb = callable(move |(i,): (u64,)| {
        let g = g.clone();
        async move {
            let permit = g
                .acquire()
                .await
                .map_err(|e| Error::failed(e.to_string()))?;
            permit.forget();
            Ok(i + 1)
        }
    });
    (gate, cb)
}

/// `ping_back(1, cb)`: the guest calls `cb` once.
fn ping_back(instance: &rwc_client::Instance, cb: &NetRef) -> PendingCall {
    instance.call_async("ping_back", vec![Value::U64(1), Value::from(cb.clone())])
}

fn write_memory(instance: &rwc_client::Instance, offset: u64, bytes: Vec<u8>) -> PendingCall {
    instance.call_async(
        "rwc.write_memory",
        vec![Value::U64(offset), Value::Bytes(bytes.into())],
    )
}

/// Waits until the node has admitted or refused every call sent so far (a ping on each
/// connection is a barrier: once its reply is back, the node has handled everything sent
/// before it, and its refusals, which it sends at once, have arrived), then lets the
/// admitted calls finish with `release` and collects every outcome.
async fn settle(
    clients: &[&Client],
    calls: Vec<PendingCall>,
    release: impl FnOnce(),
) -> Result<Report, Failure> {
    for c in clients {
        c.ping().await?;
    }
    release();
    let mut report = Report::default();
    for outcome in join_all(calls).await {
        let _ = report.record(outcome);
    }
    Ok(report)
}

fn tempdir() -> Result<std::path::PathBuf, Failure> {
    let dir = std::env::temp_dir().join(format!("rwc-stress-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
