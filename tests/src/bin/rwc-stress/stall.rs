//! A peer that stops reading: the latency of everyone else with and without it, and how
//! long the node takes to drop it.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::join_all;
use rwc_client::{Client, InstanceOptions, PendingCall, Service, Value};
use rwc_protocol::{Connection, ConnectionConfig};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpStream;

use crate::Failure;
use crate::node::Launcher;
use crate::stats::Latencies;

/// The node's stall timeout in this scenario.
const STALL: Duration = Duration::from_secs(2);

pub(crate) async fn run(nodes: &Launcher, connections: usize, calls: usize) -> Result<(), Failure> {
    crate::load::check_fd_limit(connections)?;
    let config = std::env::temp_dir().join(format!("rwc-stress-stall-{}.toml", std::process::id()));
    std::fs::write(
        &config,
        format!(
            "[limits]\nstall_timeout_ms = {}\nmax_queued_bytes = {}\n",
            STALL.as_millis(),
            1 << 20
        ),
    )?;
    let node = nodes.start(&["--config", &config.display().to_string()]);
    let _ = std::fs::remove_file(&config);
    let node = node?;

    let control = Client::connect(node.addr()).await?;
    let module = control.upload(crate::SPIN.as_bytes()).await?;
    let mut sessions = Vec::new();
    for _ in 0..connections {
        let client = Client::connect(node.addr()).await?;
        let module = client
            .module(module.hash())
            .await?
            .ok_or("the node lost a module")?;
        let instance = client
            .instantiate(&module, InstanceOptions::default())
            .await?;
        sessions.push((client, instance));
    }
    let mut without = round(&sessions, calls).await?;

    // The stuck peer: asks for 64 MiB of memory reads, then reads nothing.
    let stopped = Arc::new(AtomicBool::new(false));
    let stream = TcpStream::connect(node.addr()).await?;
    stream.set_nodelay(true)?;
    let (r, w) = stream.into_split();
    let stuck = Connection::connect_split(
        StopReading {
            inner: r,
            stopped: stopped.clone(),
        },
        w,
        Service::new("stuck").into_object(),
        ConnectionConfig::default(),
    )
    .await?;
    let module = rwc_client::request(
        &stuck.root(),
        &rwc_client::api::root::ModuleByHash {
            hash: module.hash().to_owned(),
        },
    )
    .await?
    .ok_or("the node lost a module")?;
    let instance = rwc_client::request(
        &stuck.root(),
        &rwc_client::api::root::Instantiate {
            module,
            options: InstanceOptions::default(),
        },
    )
    .await?
    .into_netref("the instance")?;
    let open_before = control.info().await?.usage.connections;
    stopped.store(true, Ordering::SeqCst);
    let since = Instant::now();
    let _asked: Vec<PendingCall> = (0..64)
        .map(|_| {
            instance.call_with(
                "rwc.read_memory",
                vec![Value::U64(0), Value::U64(1 << 20)],
                rwc_protocol::CallOptions::default(),
            )
        })
        .collect();
    let mut with = round(&sessions, calls).await?;
    let during = since.elapsed();

    // The node drops the stuck peer once it has read nothing for the stall timeout.
    let dropped = loop {
        if control.info().await?.usage.connections < open_before {
            break since.elapsed();
        }
        if since.elapsed() > STALL * 10 {
            return Err(format!(
                "the node still held the peer that stopped reading after {:?}",
                since.elapsed()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    without.sort();
    with.sort();
    println!(
        "stuck-reader: {connections} connections x {calls} calls each, before and while a \
         peer that stopped reading waits for 64 MiB of replies"
    );
    println!("  without the stuck peer: {}", without.describe());
    println!(
        "  with the stuck peer:    {} (that round took {:.2} s)",
        with.describe(),
        during.as_secs_f64()
    );
    println!(
        "  the node dropped the stuck peer {:.2} s after it stopped reading (stall timeout {:?})",
        dropped.as_secs_f64(),
        STALL
    );
    drop(stuck);
    if !node.alive() {
        return Err("the node died".into());
    }
    Ok(())
}

/// Every session makes `calls` calls of the numeric export `one`; their latencies.
async fn round(
    sessions: &[(Client, rwc_client::Instance)],
    calls: usize,
) -> Result<Latencies, Failure> {
    let per = join_all(sessions.iter().map(|(_, instance)| async move {
        let mut lat = Latencies::with_capacity(calls);
        for _ in 0..calls {
            let t = Instant::now();
            let one: i64 = instance.call("one", ()).await?;
            if one != 1 {
                return Err::<Latencies, Failure>("`one` did not return 1".into());
            }
            lat.push(t.elapsed());
        }
        Ok(lat)
    }))
    .await;
    let mut all = Latencies::with_capacity(sessions.len() * calls);
    for lat in per {
        all.extend(lat?);
    }
    Ok(all)
}

/// A transport reader that, once `stopped`, never returns another byte: the connection's
/// reader waits forever, as a peer that stopped reading does.
struct StopReading<R> {
    inner: R,
    stopped: Arc<AtomicBool>,
}

impl<R: AsyncRead + Unpin> AsyncRead for StopReading<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.stopped.load(Ordering::SeqCst) {
            return Poll::Pending;
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}
