//! Serving connections: TCP (with `TCP_NODELAY`), Unix sockets, or one connection over
//! stdio; graceful shutdown.

use std::future::Future;
use std::time::Duration;

use rwc_protocol::transport::{accept_stdio, accept_tcp, accept_unix};
use rwc_protocol::{ConnectionConfig, Error, ErrorKind};
use tokio::net::{TcpListener, UnixListener};
use tokio::task::JoinSet;

use crate::Node;

/// A bound listener, ready to serve.
pub struct Server {
    node: Node,
    listener: Listener,
    address: String,
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, std::path::PathBuf),
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds `addr`: `HOST:PORT` (port 0 picks a free one) or `unix:/path/to/socket`.
    pub async fn bind(node: Node, addr: &str) -> Result<Server, Error> {
        let bind_err = |e: std::io::Error| {
            Error::new(ErrorKind::Failed, format!("cannot listen on {addr}: {e}"))
        };
        let (listener, address) = match addr.strip_prefix("unix:") {
            Some(path) => {
                let path = std::path::PathBuf::from(path);
                // A socket file left by an earlier run would make bind fail.
                if path.exists() {
                    let _ = std::fs::remove_file(&path);
                }
                let l = UnixListener::bind(&path).map_err(bind_err)?;
                (
                    Listener::Unix(l, path.clone()),
                    format!("unix:{}", path.display()),
                )
            }
            None => {
                let l = TcpListener::bind(addr).await.map_err(bind_err)?;
                let local = l.local_addr().map_err(bind_err)?;
                (Listener::Tcp(l), local.to_string())
            }
        };
        Ok(Server {
            node,
            listener,
            address,
        })
    }

    /// The address actually bound (`127.0.0.1:41234`, `unix:/tmp/rwc.sock`).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Serves until `shutdown` completes; then stops accepting, lets calls in flight finish
    /// for up to the grace period, and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut connections = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = accept(&self.listener) => match accepted {
                    Ok(io) => {
                        let node = self.node.clone();
                        connections.spawn(serve_one(node, io));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        tracing::info!("shutting down: no new connections");
        drain(&self.node).await;
        connections.abort_all();
        if let Listener::Unix(_, path) = &self.listener {
            let _ = std::fs::remove_file(path);
        }
    }
}

enum Io {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(l: &Listener) -> std::io::Result<Io> {
    match l {
        Listener::Tcp(l) => l.accept().await.map(|(s, _)| Io::Tcp(s)),
        Listener::Unix(l, _) => l.accept().await.map(|(s, _)| Io::Unix(s)),
    }
}

fn connection_config(node: &Node) -> ConnectionConfig {
    let limits = &node.config().limits;
    ConnectionConfig {
        agent: format!("rwc-node {}", env!("CARGO_PKG_VERSION")),
        max_queued_bytes: usize::try_from(limits.max_queued_bytes).unwrap_or(usize::MAX),
        stall_timeout: Duration::from_millis(limits.stall_timeout_ms),
        ..ConnectionConfig::default()
    }
}

async fn serve_one(node: Node, io: Io) {
    let root = node.root(None);
    let conn = match io {
        Io::Tcp(s) => accept_tcp(s, root, connection_config(&node)).await,
        Io::Unix(s) => accept_unix(s, root, connection_config(&node)).await,
    };
    match conn {
        Ok(conn) => {
            tracing::debug!(connection = conn.id(), peer = %conn.peer().agent, "client connected");
            let reason = conn.closed().await;
            tracing::debug!(connection = conn.id(), %reason, "client gone");
        }
        Err(e) => tracing::info!(error = %e, "handshake failed"),
    }
}

/// Serves one connection over stdin/stdout (`rwc-node --stdio`), until it closes.
pub async fn serve_stdio(node: Node) -> Result<(), Error> {
    let conn = accept_stdio(node.root(None), connection_config(&node)).await?;
    let reason = conn.closed().await;
    tracing::debug!(%reason, "stdio connection closed");
    Ok(())
}

/// Waits until no guest call is running, or the grace period passes.
async fn drain(node: &Node) {
    let grace = Duration::from_secs(node.config().grace_period_secs);
    let max = node.config().limits.max_concurrent_calls;
    let deadline = tokio::time::Instant::now() + grace;
    while node.inner.calls.available_permits() < max {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                running = max - node.inner.calls.available_permits(),
                "grace period over; abandoning calls in flight"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
