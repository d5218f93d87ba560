//! Real `nats-server` processes with JetStream for the NATS tests and benchmark: on
//! 127.0.0.1, on ports the server picks (route ports picked here for a cluster), each with
//! a store directory of its own that is removed when the server is dropped.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// How to get the server where it is missing.
pub const INSTALL_HINT: &str = "install it: apt-get install -y nats-server";

/// One nats-server process (killed, and its store removed, on drop).
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    /// `nats://127.0.0.1:PORT`.
    pub url: String,
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    owns_dir: bool,
}

impl NatsServer {
    /// Starts a single server with JetStream (file store) and waits until it is ready.
    ///
    /// # Panics
    /// If `nats-server` is not installed (saying how to install it) or does not start.
    pub fn start() -> NatsServer {
        NatsServer::spawn(scratch_dir("single"), None, Vec::new(), true)
    }

    /// Kills the server (SIGKILL: no goodbye, as a crash) and starts it again on the same
    /// port and store directory; returns when it is ready.
    pub fn restart(&mut self) {
        self.kill();
        let mut again =
            NatsServer::spawn(self.dir.clone(), Some(self.port), self.extra.clone(), false);
        self.child = again.child.take();
    }

    /// Kills the server now (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn spawn(dir: PathBuf, port: Option<u16>, extra: Vec<String>, owns_dir: bool) -> NatsServer {
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot make {}: {e}", dir.display()));
        let mut cmd = Command::new("nats-server");
        cmd.args(["-a", "127.0.0.1", "-p"])
            .arg(port.map_or_else(|| "-1".to_owned(), |p| p.to_string()))
            .args(["-js", "-sd"])
            .arg(&dir)
            .args(&extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!("nats-server is not installed; {INSTALL_HINT}")
            }
            Err(e) => panic!("cannot start nats-server: {e}"),
        };
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stderr).lines();
            let mut port = None;
            for line in lines.by_ref().map_while(Result::ok) {
                if let Some(p) = line.split("Listening for client connections on ").nth(1) {
                    port = p
                        .rsplit(':')
                        .next()
                        .and_then(|p| p.trim().parse::<u16>().ok());
                }
                if line.contains("Server is ready") {
                    let _ = tx.send(port.ok_or_else(|| "no client port in its log".to_owned()));
                    break;
                }
                if line.contains("[FTL]") || line.contains("[ERR]") && port.is_none() {
                    let _ = tx.send(Err(line));
                    break;
                }
            }
            // Keep reading so the server never blocks on a full pipe.
            for _ in lines {}
        });
        let port = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(p)) => p,
            Ok(Err(why)) => {
                let _ = child.kill();
                panic!("nats-server did not start: {why}")
            }
            Err(_) => {
                let _ = child.kill();
                panic!("nats-server did not say it was ready within 30 s")
            }
        };
        NatsServer {
            child: Some(child),
            url: format!("nats://127.0.0.1:{port}"),
            port,
            dir,
            extra,
            owns_dir,
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A JetStream cluster of three servers on 127.0.0.1.
#[derive(Debug)]
pub struct NatsCluster {
    /// The servers, by name `n1`, `n2`, `n3` (index 0, 1, 2); `None` once killed.
    pub servers: Vec<Option<NatsServer>>,
    /// Every server's URL, comma-separated: what clients and nodes are given.
    pub url: String,
}

impl NatsCluster {
    /// Starts three servers routed to each other and waits until each is ready (the
    /// JetStream meta leader may take some seconds more: retry the first stream).
    pub fn start() -> NatsCluster {
        let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let route_urls = routes
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let base = scratch_dir("cluster");
        // Each waits for its routes before it is ready: start them side by side.
        let handles: Vec<_> = (0..3)
            .map(|i| {
                let extra = vec![
                    "--name".to_owned(),
                    format!("n{}", i + 1),
                    "--cluster_name".to_owned(),
                    "rwc-test".to_owned(),
                    "--cluster".to_owned(),
                    format!("nats://127.0.0.1:{}", routes[i]),
                    "--routes".to_owned(),
                    route_urls.clone(),
                ];
                let dir = base.join(format!("n{}", i + 1));
                std::thread::spawn(move || NatsServer::spawn(dir, None, extra, true))
            })
            .collect();
        let servers: Vec<Option<NatsServer>> = handles
            .into_iter()
            .map(|h| Some(h.join().expect("a cluster server started")))
            .collect();
        let url = servers
            .iter()
            .flatten()
            .map(|s| s.url.clone())
            .collect::<Vec<_>>()
            .join(",");
        NatsCluster { servers, url }
    }

    /// Kills the server named `name` (`n1`…), as a crash.
    pub fn kill(&mut self, name: &str) {
        let index = name
            .trim_start_matches('n')
            .parse::<usize>()
            .ok()
            .and_then(|n| n.checked_sub(1))
            .unwrap_or_else(|| panic!("no cluster server named {name:?}"));
        if let Some(mut s) = self.servers.get_mut(index).and_then(Option::take) {
            s.kill();
        }
    }
}

/// A port free now (the OS picks it; a small race until the server binds it).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// A fresh directory under the system's temp directory.
fn scratch_dir(what: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "rwc-nats-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}
