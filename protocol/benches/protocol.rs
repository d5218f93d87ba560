//! Latency and throughput of the connection engine over real loopback TCP, next to a raw
//! TCP ping-pong that is the floor.
//!
//! `cargo bench -p rwc-protocol --bench protocol` prints a table and asserts nothing.
//! `RWC_BENCH_QUICK=1` shrinks every iteration count about tenfold (a smoke run).
//!
//! Placement changes round-trip times severalfold on small VMs (a wakeup that crosses cores
//! costs about four times one that stays on a core), so every figure is taken with the raw
//! baseline and rwc placed alike, in each of:
//! - "same thread": client and servers on one `current_thread` runtime;
//! - "2 threads, 1 core": servers on a `current_thread` runtime in their own OS thread, the
//!   client on another, both pinned to CPU 0;
//! - "2 threads, 2 cores": the same threads pinned to CPUs 0 and 1 (with two CPUs or more),
//!   so that every message crosses cores.
//!
//! Each placement also measures TLS (rustls, TLS 1.3, a certificate made for the run): a
//! trivial call and the 64 MiB echo beside the plain ones, and the cost of opening a
//! connection (TCP connect plus handshakes) plain, with a full TLS handshake and with a
//! resumed TLS session.
//!
//! The raw ping-pong, the plain call and the TLS call are timed in interleaved blocks of
//! 100 over three connections open at once: a cross-core round trip on a shared VM drifts
//! by half within a minute, and timing one kind after the other turned that drift into a
//! ratio.
//!
//! Pinning uses `taskset`. Left to itself the OS moves the two threads between these two
//! cases during a run, which makes unpinned figures unrepeatable; without `taskset` the
//! bench falls back to that ("2 threads, unpinned").

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rwc_protocol::listener::Listener;
use rwc_protocol::transport::connect_tcp;
use rwc_protocol::{ConnectionConfig, Error, NetRef, Service, Value, callable, tls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

/// Size of one raw ping-pong message.
const RAW_MSG: usize = 16;
/// Calls kept in flight by the pipelined benchmark.
const IN_FLIGHT: usize = 1000;
/// The pipelined calls are timed in this many rounds.
const PIPELINE_ROUNDS: usize = 5;
/// Callbacks per call in the per-callback mode.
const CALLBACKS_PER_CALL: u64 = 100;

/// Median of a trivial call at most this many times the raw round trip's.
const TARGET_CALL_RATIO: f64 = 1.3;
/// Pipelined calls per second, at least.
const TARGET_PIPELINED_PER_S: f64 = 500_000.0;
/// 64 MiB echo, MB/s counted both ways, at least (plain and TLS).
const TARGET_ECHO_64M_MB_S: f64 = 1000.0;
/// Median of a trivial call over TLS at most this many times the plain call's.
const TARGET_TLS_CALL_RATIO: f64 = 1.2;

#[path = "../tests/common/tls_certs.rs"]
mod tls_certs;

use tls_certs::{client_tls, connect_tls, tls_setup};

/// The same allocator as the `rwc-node` and `rwc` binaries, so bulk figures are what they get
/// (delete these lines to measure the system allocator instead).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// TLS connections the bench server saw resume a session.
static RESUMED: AtomicUsize = AtomicUsize::new(0);
/// TLS connections the bench server accepted.
static ACCEPTED: AtomicUsize = AtomicUsize::new(0);

/// (resumed, accepted) so far, as the bench server counted them.
fn tls_accepts() -> (usize, usize) {
    (
        RESUMED.load(Ordering::Relaxed),
        ACCEPTED.load(Ordering::Relaxed),
    )
}

fn main() {
    let quick = std::env::var("RWC_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let counts = Counts::new(quick);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "rwc-protocol benchmark, 127.0.0.1 TCP (TCP_NODELAY), {cpus} CPUs{}",
        if quick {
            ", QUICK mode (RWC_BENCH_QUICK): ~10x fewer iterations"
        } else {
            ""
        }
    );
    println!("{counts}");
    // The figures are only as good as the machine is quiet: say how busy it was.
    if let Some(busy) = cpu_busy(Duration::from_millis(500)) {
        println!(
            "CPUs busy before the run (other processes): {:.0}%{}",
            busy * 100.0,
            if busy > 0.1 {
                " -- figures will suffer"
            } else {
                ""
            }
        );
    }

    let mut placements = vec![
        Placement::SameThread,
        Placement::TwoThreads { pin: Some((0, 0)) },
    ];
    if cpus >= 2 {
        placements.push(Placement::TwoThreads { pin: Some((0, 1)) });
    }
    let mut columns = Vec::new();
    let mut pinning_failed = false;
    for placement in placements {
        println!("running placement \"{}\"…", placement.name());
        let started = Instant::now();
        match placement.run(&counts) {
            Ok(results) => {
                println!("  done in {:.1} s", started.elapsed().as_secs_f64());
                columns.push((placement, results));
            }
            Err(why) => {
                println!("  skipped: {why}");
                pinning_failed = true;
            }
        }
    }
    if pinning_failed {
        let placement = Placement::TwoThreads { pin: None };
        println!("running placement \"{}\" instead…", placement.name());
        if let Ok(results) = placement.run(&counts) {
            columns.push((placement, results));
        }
    }
    print_report(&counts, &columns);
}

/// The share of all CPUs' time spent busy over `window` (Linux `/proc/stat`).
fn cpu_busy(window: Duration) -> Option<f64> {
    // (busy, total) jiffies since boot; idle and iowait are the idle columns.
    let sample = || -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let fields: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        let total: u64 = fields.iter().take(8).sum();
        let idle = fields.get(3)? + fields.get(4)?;
        Some((total - idle, total))
    };
    let (busy0, total0) = sample()?;
    std::thread::sleep(window);
    let (busy1, total1) = sample()?;
    let total = total1.checked_sub(total0).filter(|&t| t > 0)?;
    Some(busy1.saturating_sub(busy0) as f64 / total as f64)
}

/// How many iterations of each measurement.
struct Counts {
    round_trips: usize,
    pipelined: usize,
    callback_calls: usize,
    callback_multi_calls: usize,
    echo_1m: usize,
    echo_64m: usize,
    connects: usize,
}

impl Counts {
    fn new(quick: bool) -> Self {
        let scale = |n: usize| if quick { (n / 10).max(1) } else { n };
        Counts {
            round_trips: scale(20_000),
            pipelined: scale(200_000),
            callback_calls: scale(10_000),
            callback_multi_calls: scale(200),
            echo_1m: scale(50),
            echo_64m: if quick { 1 } else { 5 },
            connects: scale(200),
        }
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "iterations: {} sequential round trips, {} pipelined calls ({IN_FLIGHT} in flight), \
             {} callback calls, {} calls x {CALLBACKS_PER_CALL} callbacks, {} x 1 MiB echo, {} x 64 MiB echo, \
             {} connects of each kind",
            self.round_trips,
            self.pipelined,
            self.callback_calls,
            self.callback_multi_calls,
            self.echo_1m,
            self.echo_64m,
            self.connects
        )
    }
}

/// Where the client and the servers run.
#[derive(Clone, Copy)]
enum Placement {
    /// One `current_thread` runtime runs everything.
    SameThread,
    /// Servers and client on their own threads, each with a `current_thread` runtime;
    /// optionally pinned to (server CPU, client CPU).
    TwoThreads { pin: Option<(usize, usize)> },
}

impl Placement {
    fn name(&self) -> String {
        match self {
            Placement::SameThread => "same thread".into(),
            Placement::TwoThreads { pin: None } => "2 threads, unpinned".into(),
            Placement::TwoThreads {
                pin: Some((server, client)),
            } if server == client => "2 threads, 1 core".into(),
            Placement::TwoThreads { pin: Some(_) } => "2 threads, 2 cores".into(),
        }
    }

    fn run(&self, counts: &Counts) -> Result<Results, String> {
        match *self {
            Placement::SameThread => Ok(run_same_thread(counts)),
            Placement::TwoThreads { pin } => run_two_threads(counts, pin),
        }
    }
}

/// Figures of one placement.
#[derive(Default)]
struct Results {
    raw: Stats,
    call: Stats,
    pipelined_per_s: f64,
    callback_call: Stats,
    /// Whole calls that each make `CALLBACKS_PER_CALL` callbacks.
    callback_multi: Stats,
    echo_1m: Echo,
    echo_64m: Echo,
    tls_call: Stats,
    tls_echo_64m: Echo,
    connect_plain: Stats,
    connect_tls_full: Stats,
    connect_tls_resumed: Stats,
    /// Connections the server saw resume a session, of those it accepted: with a fresh
    /// client config each time, then with the same one.
    resumed: [(usize, usize); 2],
}

/// Sorted latencies of one measurement.
#[derive(Default)]
struct Stats {
    sorted: Vec<Duration>,
}

impl Stats {
    fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Stats { sorted: samples }
    }

    fn median_us(&self) -> f64 {
        self.percentile_us(50.0)
    }

    fn p99_us(&self) -> f64 {
        self.percentile_us(99.0)
    }

    /// Nearest-rank percentile.
    fn percentile_us(&self, p: f64) -> f64 {
        let Some(last) = self.sorted.len().checked_sub(1) else {
            return f64::NAN;
        };
        #[allow(clippy::cast_possible_truncation)] // non-negative, at most `last`
        let rank = ((p / 100.0) * last as f64).round() as usize;
        us(self.sorted[rank.min(last)])
    }

    fn mean_us(&self) -> f64 {
        let total: Duration = self.sorted.iter().sum();
        us(total) / self.sorted.len() as f64
    }
}

/// Echo throughput.
#[derive(Default)]
struct Echo {
    /// Payload bytes of one call counted both ways (request + reply).
    bytes_both_ways: u64,
    per_call: Stats,
}

impl Echo {
    /// MB/s at the median call time.
    fn mb_per_s(&self) -> f64 {
        self.bytes_both_ways as f64 / self.per_call.median_us()
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

// ---------------------------------------------------------------------------------------
// Placements.

fn current_thread_runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("cannot build a tokio runtime")
}

fn run_same_thread(counts: &Counts) -> Results {
    current_thread_runtime().block_on(async {
        let addrs = start_servers().await;
        run_client(addrs, counts).await
    })
}

fn run_two_threads(counts: &Counts, pin: Option<(usize, usize)>) -> Result<Results, String> {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::Builder::new()
        .name("bench-server".into())
        .spawn(move || {
            if let Some((cpu, _)) = pin
                && let Err(why) = pin_this_thread(cpu)
            {
                let _ = addr_tx.send(Err(why));
                return;
            }
            current_thread_runtime().block_on(async move {
                let _ = addr_tx.send(Ok(start_servers().await));
                let _ = stop_rx.await;
            });
        })
        .map_err(|e| format!("cannot spawn the server thread: {e}"))?;
    let result = match addr_rx.recv() {
        // The client gets its own thread too, so that pinning it leaves `main` alone.
        Ok(Ok(addrs)) => std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    if let Some((_, cpu)) = pin {
                        pin_this_thread(cpu)?;
                    }
                    Ok(current_thread_runtime().block_on(run_client(addrs, counts)))
                })
                .join()
                .unwrap_or_else(|_| Err("the client thread panicked".into()))
        }),
        Ok(Err(why)) => Err(why),
        Err(_) => Err("the server thread failed to start".into()),
    };
    let _ = stop_tx.send(());
    server
        .join()
        .map_err(|_| "the server thread panicked".to_owned())?;
    result
}

/// Pins the calling thread to `cpu` with `taskset` (Linux), which needs no unsafe code.
fn pin_this_thread(cpu: usize) -> Result<(), String> {
    // `/proc/thread-self` links to `<pid>/task/<tid>`.
    let link = std::fs::read_link("/proc/thread-self")
        .map_err(|e| format!("no /proc/thread-self: {e}"))?;
    let tid = link
        .file_name()
        .and_then(|t| t.to_str())
        .ok_or("cannot tell this thread's id")?
        .to_owned();
    let out = std::process::Command::new("taskset")
        .args(["-p", "-c", &cpu.to_string(), &tid])
        .output()
        .map_err(|e| format!("cannot run taskset: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "taskset failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

// ---------------------------------------------------------------------------------------
// Servers.

#[derive(Clone)]
struct Addrs {
    raw: SocketAddr,
    rwc: SocketAddr,
    tls: SocketAddr,
    /// The CA the TLS server's certificate is signed by (PEM).
    ca_pem: Vec<u8>,
}

/// Starts the raw echo server, the rwc server (a [`Listener`], the accept loop a node runs)
/// and the TLS one on the current runtime.
async fn start_servers() -> Addrs {
    let raw = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let rwc = Listener::bind("127.0.0.1:0").await.expect("bind");
    let tls_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (server_tls, ca_pem) = tls_setup();
    let addrs = Addrs {
        raw: raw.local_addr().expect("addr"),
        rwc: rwc.address().parse().expect("a TCP address"),
        tls: tls_listener.local_addr().expect("addr"),
        ca_pem,
    };
    tokio::spawn(async move {
        while let Ok((stream, _)) = tls_listener.accept().await {
            stream.set_nodelay(true).expect("TCP_NODELAY");
            let server_tls = server_tls.clone();
            tokio::spawn(async move {
                let accepted = tls::accept(
                    stream,
                    &server_tls,
                    None,
                    ConnectionConfig::default(),
                    |_| bench_service(),
                )
                .await;
                if let Ok(conn) = accepted {
                    ACCEPTED.fetch_add(1, Ordering::Relaxed);
                    if conn.peer_info().tls_resumed {
                        RESUMED.fetch_add(1, Ordering::Relaxed);
                    }
                    conn.closed().await;
                }
            });
        }
    });
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = raw.accept().await {
            stream.set_nodelay(true).expect("TCP_NODELAY");
            tokio::spawn(async move {
                let mut buf = [0u8; RAW_MSG];
                while stream.read_exact(&mut buf).await.is_ok() {
                    if stream.write_all(&buf).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    tokio::spawn(async move {
        rwc.serve(std::future::pending(), ConnectionConfig::default(), |_| {
            bench_service()
        })
        .await
    });
    addrs
}

/// Times `n` connection openings (TCP connect, every handshake, one call), each closed
/// before the next; `open` makes one.
async fn connects(n: usize, mut open: impl AsyncFnMut() -> rwc_protocol::Connection) -> Stats {
    sequential(n, async || {
        let conn = open().await;
        let sum: u64 = conn.root().call("add", (2, 3)).await.expect("add");
        debug_assert_eq!(sum, 5);
        conn.close();
    })
    .await
}

fn bench_service() -> NetRef {
    Service::new("bench")
        .method("add", |(a, b): (u64, u64)| async move { Ok(a + b) })
        // Raw values: the engine's cost, without a conversion to and from a typed value.
        .raw_method("echo", |_ctx, mut args: Vec<Value>| async move {
            Ok(args.pop().unwrap_or(Value::Unit))
        })
        .method("callbacks", |(cb, times): (NetRef, u64)| async move {
            let mut sum = 0u64;
            for i in 0..times {
                sum += cb.call::<u64>("call", (i,)).await?;
            }
            Ok::<_, Error>(sum)
        })
        .into_object()
}

// ---------------------------------------------------------------------------------------
// Client side. Every measurement warms up with about a tenth of its iterations first.

async fn run_client(addrs: Addrs, counts: &Counts) -> Results {
    let mut raw_stream = TcpStream::connect(addrs.raw)
        .await
        .expect("connect to the raw server");
    raw_stream.set_nodelay(true).expect("TCP_NODELAY");
    let conn = connect_tcp(
        addrs.rwc,
        Service::new("bench-client").into_object(),
        ConnectionConfig::default(),
    )
    .await
    .expect("cannot connect to the bench server");
    let tls = client_tls(&addrs.ca_pem);
    let tls_conn = connect_tls(addrs.tls, &tls).await;
    let root = conn.root();
    let tls_root = tls_conn.root();
    let [raw, call, tls_call] =
        round_trips(&mut raw_stream, &root, &tls_root, counts.round_trips).await;
    let results = Results {
        raw,
        call,
        tls_call,
        pipelined_per_s: pipelined(&root, counts.pipelined).await,
        callback_call: callback_calls(&root, counts.callback_calls, 1).await,
        callback_multi: callback_calls(&root, counts.callback_multi_calls, CALLBACKS_PER_CALL)
            .await,
        echo_1m: echo(&root, 1 << 20, counts.echo_1m).await,
        echo_64m: echo(&root, 64 << 20, counts.echo_64m).await,
        tls_echo_64m: echo(&tls_root, 64 << 20, counts.echo_64m).await,
        ..Results::default()
    };
    conn.close();
    tls_conn.close();
    let plain = async || {
        connect_tcp(
            addrs.rwc,
            Service::new("bench-client").into_object(),
            ConnectionConfig::default(),
        )
        .await
        .expect("connect")
    };
    let connect_plain = connects(counts.connects, plain).await;
    // A fresh client config each time has no session to resume: a full handshake.
    let (r0, a0) = tls_accepts();
    let connect_tls_full = connects(counts.connects, || {
        let fresh = client_tls(&addrs.ca_pem);
        async move { connect_tls(addrs.tls, &fresh).await }
    })
    .await;
    // The same config keeps the session tickets the server sent: resumed, as the server
    // tells.
    let (r1, a1) = tls_accepts();
    let connect_tls_resumed = connects(counts.connects, || connect_tls(addrs.tls, &tls)).await;
    let (r2, a2) = tls_accepts();
    Results {
        connect_plain,
        connect_tls_full,
        connect_tls_resumed,
        resumed: [(r1 - r0, a1 - a0), (r2 - r1, a2 - a1)],
        ..results
    }
}

/// Times `n` sequential runs of `once`, after `n / 10` unrecorded ones.
async fn sequential(n: usize, mut once: impl AsyncFnMut()) -> Stats {
    for _ in 0..(n / 10).max(1) {
        once().await;
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        once().await;
        samples.push(start.elapsed());
    }
    Stats::new(samples)
}

/// Round trips timed in turn, one block of each kind after the other.
const ROUND_TRIP_BLOCK: usize = 100;

/// `n` round trips of each kind: a raw ping-pong on `raw`, a trivial call on `plain` and
/// one on `tls`, timed in interleaved blocks of [`ROUND_TRIP_BLOCK`] so that a slow patch of
/// the machine (another VM on the host, a frequency change) falls on all three alike and
/// their ratios hold. The first block of each is a warm-up.
async fn round_trips(raw: &mut TcpStream, plain: &NetRef, tls: &NetRef, n: usize) -> [Stats; 3] {
    let msg = [7u8; RAW_MSG];
    let mut buf = [0u8; RAW_MSG];
    let mut samples: [Vec<Duration>; 3] = Default::default();
    let blocks = n.div_ceil(ROUND_TRIP_BLOCK);
    for block in 0..=blocks {
        for (kind, kept) in samples.iter_mut().enumerate() {
            for _ in 0..ROUND_TRIP_BLOCK {
                let start = Instant::now();
                match kind {
                    0 => {
                        raw.write_all(&msg).await.expect("raw write");
                        raw.read_exact(&mut buf).await.expect("raw read");
                    }
                    _ => {
                        let root = if kind == 1 { plain } else { tls };
                        let sum: u64 = root.call("add", (2, 3)).await.expect("add");
                        debug_assert_eq!(sum, 5);
                    }
                }
                if block > 0 {
                    kept.push(start.elapsed());
                }
            }
        }
    }
    samples.map(Stats::new)
}

/// Keeps `IN_FLIGHT` calls going until `total` have returned, in `PIPELINE_ROUNDS` rounds;
/// the median round's calls per second (a round disturbed by another process drops out).
async fn pipelined(root: &NetRef, total: usize) -> f64 {
    let run = async |total: usize| {
        let mut in_flight = FuturesUnordered::new();
        let mut started = 0;
        while started < total.min(IN_FLIGHT) {
            in_flight.push(root.call_async("add", (2u64, 3u64)));
            started += 1;
        }
        while let Some(result) = in_flight.next().await {
            result.expect("pipelined add");
            if started < total {
                in_flight.push(root.call_async("add", (2u64, 3u64)));
                started += 1;
            }
        }
    };
    run(total / 10).await;
    let per_round = (total / PIPELINE_ROUNDS).max(1);
    let mut rates = Vec::with_capacity(PIPELINE_ROUNDS);
    for _ in 0..PIPELINE_ROUNDS {
        let start = Instant::now();
        run(per_round).await;
        rates.push(per_round as f64 / start.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

/// Whole calls whose method calls the client's callback `times` times.
async fn callback_calls(root: &NetRef, n: usize, times: u64) -> Stats {
    let cb = callable(|(x,): (u64,)| async move { Ok(x + 1) });
    sequential(n, async || {
        let sum: u64 = root
            .call("callbacks", (cb.clone(), times))
            .await
            .expect("callbacks");
        debug_assert_eq!(sum, times * (times + 1) / 2);
    })
    .await
}

/// Echoes a `size`-byte buffer `n` times, feeding each reply back as the next request so
/// that no copy is made outside the engine.
async fn echo(root: &NetRef, size: usize, n: usize) -> Echo {
    #[allow(clippy::cast_possible_truncation)] // `% 251` fits a byte
    let mut payload = Value::Bytes(
        (0..size)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>()
            .into(),
    );
    payload = root
        .call_value("echo", vec![payload])
        .await
        .expect("echo warm-up");
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        payload = root.call_value("echo", vec![payload]).await.expect("echo");
        samples.push(start.elapsed());
    }
    assert_eq!(
        payload.as_bytes().map(<[u8]>::len),
        Some(size),
        "echo changed the payload"
    );
    Echo {
        bytes_both_ways: 2 * size as u64,
        per_call: Stats::new(samples),
    }
}

// ---------------------------------------------------------------------------------------
// Report.

fn print_report(counts: &Counts, columns: &[(Placement, Results)]) {
    type Cell = fn(&Results) -> String;
    let rows: Vec<(String, Cell)> = vec![
        ("1. raw TCP ping-pong, 16 B (the floor)".into(), |r| {
            latency(&r.raw)
        }),
        ("2. rwc call add(2,3)".into(), |r| latency(&r.call)),
        (
            format!("   call / raw, median (target <= {TARGET_CALL_RATIO}x)"),
            |r| format!("{:.2}x", r.call.median_us() / r.raw.median_us()),
        ),
        (
            format!(
                "3. pipelined add, {IN_FLIGHT} in flight (target >= {TARGET_PIPELINED_PER_S:.0}/s)"
            ),
            |r| format!("{:.0} calls/s", r.pipelined_per_s),
        ),
        ("4. call making 1 callback".into(), |r| {
            latency(&r.callback_call)
        }),
        ("   call with 1 callback / raw, median".into(), |r| {
            format!("{:.2}x", r.callback_call.median_us() / r.raw.median_us())
        }),
        (
            format!("   call making {CALLBACKS_PER_CALL} callbacks"),
            |r| latency(&r.callback_multi),
        ),
        ("   per callback (median / K), / raw".into(), |r| {
            let per = r.callback_multi.median_us() / CALLBACKS_PER_CALL as f64;
            format!("{per:.1} µs, {:.2}x", per / r.raw.median_us())
        }),
        ("5. echo 1 MiB".into(), |r| throughput(&r.echo_1m)),
        (
            format!("   echo 64 MiB (target >= {TARGET_ECHO_64M_MB_S:.0} MB/s)"),
            |r| throughput(&r.echo_64m),
        ),
        ("6. TLS: rwc call add(2,3)".into(), |r| latency(&r.tls_call)),
        (
            format!("   TLS call / plain call, median (target <= {TARGET_TLS_CALL_RATIO}x)"),
            |r| format!("{:.2}x", r.tls_call.median_us() / r.call.median_us()),
        ),
        (
            format!("   TLS echo 64 MiB (target >= {TARGET_ECHO_64M_MB_S:.0} MB/s)"),
            |r| throughput(&r.tls_echo_64m),
        ),
        ("7. connect + handshake + 1 call, plain".into(), |r| {
            latency(&r.connect_plain)
        }),
        ("   TLS, full handshake".into(), |r| {
            latency(&r.connect_tls_full)
        }),
        ("   TLS, resumed session".into(), |r| {
            latency(&r.connect_tls_resumed)
        }),
        ("   sessions resumed: fresh config / same".into(), |r| {
            let [(a, n), (b, m)] = r.resumed;
            format!("{a}/{n} / {b}/{m}")
        }),
    ];
    let headers: Vec<String> = columns.iter().map(|(p, _)| p.name()).collect();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|(_, cell)| columns.iter().map(|(_, r)| cell(r)).collect())
        .collect();
    let w0 = rows
        .iter()
        .map(|(name, _)| name.chars().count())
        .max()
        .unwrap_or(0);
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| {
            cells
                .iter()
                .map(|row| row[i].chars().count())
                .chain([headers[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();

    let mut out = String::new();
    let _ = writeln!(out);
    let _ = write!(out, "{:w0$}", "");
    for (header, w) in headers.iter().zip(&widths) {
        let _ = write!(out, " | {header:w$}");
    }
    let _ = writeln!(out);
    let _ = write!(out, "{:-<w0$}", "");
    for w in &widths {
        let _ = write!(out, "-+-{:-<w$}", "");
    }
    let _ = writeln!(out);
    for ((name, _), row) in rows.iter().zip(&cells) {
        let _ = write!(out, "{name:w0$}");
        for (cell, w) in row.iter().zip(&widths) {
            let _ = write!(out, " | {cell:w$}");
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "latencies: median / p99 / mean in µs, over sequential calls."
    );
    let _ = writeln!(
        out,
        "pipelined: median of {PIPELINE_ROUNDS} rounds. echo: MB/s = 10^6 bytes of payload per second, \
         counted both ways (request + reply = 2 x size per call), at the median time of one call \
         (in parentheses)."
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "verdicts:");
    for (placement, r) in columns {
        let name = placement.name();
        let call_ratio = r.call.median_us() / r.raw.median_us();
        let tls_ratio = r.tls_call.median_us() / r.call.median_us();
        let (echo, tls_echo) = (r.echo_64m.mb_per_s(), r.tls_echo_64m.mb_per_s());
        // (target, figure, verdict)
        let verdicts = [
            (
                format!("call median <= {TARGET_CALL_RATIO}x raw median"),
                format!("{call_ratio:.2}x"),
                verdict_at_most(call_ratio, TARGET_CALL_RATIO),
            ),
            (
                format!("pipelined >= {TARGET_PIPELINED_PER_S:.0} calls/s"),
                format!("{:.0}", r.pipelined_per_s),
                verdict_at_least(r.pipelined_per_s, TARGET_PIPELINED_PER_S),
            ),
            (
                format!("echo 64 MiB >= {TARGET_ECHO_64M_MB_S:.0} MB/s (both ways)"),
                format!("{echo:.0}"),
                verdict_at_least(echo, TARGET_ECHO_64M_MB_S),
            ),
            (
                format!("TLS call median <= {TARGET_TLS_CALL_RATIO}x plain call median"),
                format!("{tls_ratio:.2}x"),
                verdict_at_most(tls_ratio, TARGET_TLS_CALL_RATIO),
            ),
            (
                format!("TLS echo 64 MiB >= {TARGET_ECHO_64M_MB_S:.0} MB/s (both ways)"),
                format!("{tls_echo:.0}"),
                verdict_at_least(tls_echo, TARGET_ECHO_64M_MB_S),
            ),
        ];
        for (target, figure, verdict) in verdicts {
            let _ = writeln!(out, "  [{name}] {target}: {figure} -> {verdict}");
        }
    }
    if counts.echo_64m < 3 {
        let _ = writeln!(out, "(quick mode: few iterations, the figures are noisy)");
    }
    print!("{out}");
}

fn latency(s: &Stats) -> String {
    format!(
        "{:.1} / {:.1} / {:.1} µs",
        s.median_us(),
        s.p99_us(),
        s.mean_us()
    )
}

fn throughput(e: &Echo) -> String {
    format!(
        "{:.0} MB/s ({:.1} ms)",
        e.mb_per_s(),
        e.per_call.median_us() / 1000.0
    )
}

fn verdict_at_most(value: f64, target: f64) -> String {
    if value <= target {
        "met".into()
    } else {
        format!("missed by {:.0}%", (value / target - 1.0) * 100.0)
    }
}

fn verdict_at_least(value: f64, target: f64) -> String {
    if value >= target {
        "met".into()
    } else {
        format!("missed by {:.0}%", (1.0 - value / target) * 100.0)
    }
}
