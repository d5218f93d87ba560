//! Listening for connections: one TCP or Unix socket, and the accept loop every rwc server
//! (a node, a registry) runs on it: each connection is served its own root object until
//! it closes.

use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::task::JoinSet;

use crate::admission::{Admission, Admitted};
use crate::connection::ConnectionConfig;
use crate::error::{Error, ErrorKind};
use crate::netref::NetRef;
use crate::transport::{accept_tcp, accept_unix};

/// A bound socket: `HOST:PORT` (TCP) or `unix:/path`. A Unix socket's file is removed when
/// the listener drops.
#[derive(Debug)]
pub struct Listener {
    socket: Socket,
    address: String,
    /// Caps on the connections held at once; `None`: no caps.
    admission: Option<Arc<Admission>>,
}

#[derive(Debug)]
enum Socket {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

/// An accepted stream, not yet a connection.
#[derive(Debug)]
enum Accepted {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Listener {
    /// Binds `addr`: `HOST:PORT` (port 0 picks a free one) or `unix:/path/to/socket` (a
    /// socket file left by an earlier run is replaced).
    ///
    /// # Cancel safety
    /// Dropping the future abandons the bind.
    pub async fn bind(addr: &str) -> Result<Listener, Error> {
        let failed = |e: std::io::Error| {
            Error::new(ErrorKind::Failed, format!("cannot listen on {addr}: {e}"))
        };
        let (socket, address) = match addr.strip_prefix("unix:") {
            Some(path) => {
                let path = PathBuf::from(path);
                if path.exists() {
                    let _ = std::fs::remove_file(&path);
                }
                let l = UnixListener::bind(&path).map_err(failed)?;
                let address = format!("unix:{}", path.display());
                (Socket::Unix(l, path), address)
            }
            None => {
                let l = TcpListener::bind(addr).await.map_err(failed)?;
                let address = l.local_addr().map_err(failed)?.to_string();
                (Socket::Tcp(l), address)
            }
        };
        Ok(Listener {
            socket,
            address,
            admission: None,
        })
    }

    /// Caps the connections this listener serves at once: a stream accepted over a cap of
    /// `admission` is refused (`overloaded`, naming the cap) before the handshake.
    #[must_use]
    pub fn with_admission(mut self, admission: Arc<Admission>) -> Listener {
        self.admission = Some(admission);
        self
    }

    /// The address actually bound (`127.0.0.1:41234`, `unix:/tmp/rwc.sock`).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Accepts connections until `shutdown` completes. Each one gets a fresh `root()`
    /// and runs as its own task until it closes; returns the tasks still running then, for
    /// the caller to wait for or abort. A failed accept (out of file descriptors, say) is
    /// logged and retried shortly.
    ///
    /// # Cancel safety
    /// Dropping the future stops accepting and aborts the connections' tasks.
    pub async fn serve(
        &self,
        shutdown: impl Future<Output = ()>,
        config: ConnectionConfig,
        root: impl Fn() -> NetRef,
    ) -> JoinSet<()> {
        let mut connections = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.accept() => match accepted {
                    Ok((stream, from)) => match self.admit(from) {
                        Ok(admitted) => {
                            connections.spawn(serve_one(stream, root(), config.clone(), admitted));
                        }
                        Err((admission, reason)) => {
                            // Debug, not info: a flood would flood the log too; `info` counts refusals.
                            tracing::debug!(peer = ?from, %reason, "connection refused");
                            connections.spawn(async move {
                                match stream {
                                    Accepted::Tcp(s) => admission.send_refusal(s, reason).await,
                                    Accepted::Unix(s) => admission.send_refusal(s, reason).await,
                                }
                            });
                        }
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        connections
    }

    /// The next stream, and the IP address it comes from (`None` for a Unix socket).
    async fn accept(&self) -> std::io::Result<(Accepted, Option<IpAddr>)> {
        match &self.socket {
            Socket::Tcp(l) => l
                .accept()
                .await
                .map(|(s, from)| (Accepted::Tcp(s), Some(from.ip()))),
            Socket::Unix(l, _) => l.accept().await.map(|(s, _)| (Accepted::Unix(s), None)),
        }
    }

    /// Admits a stream from `from`, or gives the refusal to send it.
    fn admit(&self, from: Option<IpAddr>) -> Result<Option<Admitted>, (Arc<Admission>, Error)> {
        match &self.admission {
            None => Ok(None),
            Some(admission) => admission
                .admit(from)
                .map(Some)
                .map_err(|reason| (admission.clone(), reason)),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Socket::Unix(_, path) = &self.socket {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Runs the handshake on `stream`, then serves `root` to the peer until the connection
/// closes.
async fn serve_one(
    stream: Accepted,
    root: NetRef,
    config: ConnectionConfig,
    _admitted: Option<Admitted>,
) {
    let conn = match stream {
        Accepted::Tcp(s) => accept_tcp(s, root, config).await,
        Accepted::Unix(s) => accept_unix(s, root, config).await,
    };
    match conn {
        Ok(conn) => {
            tracing::debug!(connection = conn.id(), peer = %conn.peer().agent, "peer connected");
            let reason = conn.closed().await;
            tracing::debug!(connection = conn.id(), %reason, "peer gone");
        }
        Err(e) => tracing::info!(error = %e, "handshake failed"),
    }
}
