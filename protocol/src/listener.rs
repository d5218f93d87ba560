//! Listening for connections: one TCP or Unix socket, plain or TLS, and the accept loop
//! every rwc server (a node, a registry) runs on it: each connection is served its own
//! root object, made for the principal it authenticated as, until it closes.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::task::JoinSet;

use crate::connection::{Connection, ConnectionConfig};
use crate::error::{Error, ErrorKind};
use crate::handshake::PeerInfo;
use crate::netref::NetRef;
use crate::tls::{self, TlsServerConfig};
use crate::transport::nodelay;

/// A bound socket: `HOST:PORT` (TCP) or `unix:/path`. A Unix socket's file is removed when
/// the listener drops.
#[derive(Debug)]
pub struct Listener {
    socket: Socket,
    address: String,
    tls: Option<TlsServerConfig>,
}

#[derive(Debug)]
enum Socket {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

/// An accepted stream, not yet a connection.
#[derive(Debug)]
enum Accepted {
    Tcp(TcpStream, SocketAddr),
    Unix(UnixStream),
}

/// Makes the root object of a connection for the principal it authenticated as.
type RootFor = Arc<dyn Fn(Option<&str>) -> NetRef + Send + Sync>;

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
            tls: None,
        })
    }

    /// Serves TLS with `tls` on this socket: every connection opens with a TLS handshake
    /// (which must finish, with the rwc handshake, within the connection config's
    /// `handshake_timeout`).
    pub fn with_tls(mut self, tls: TlsServerConfig) -> Listener {
        self.tls = Some(tls);
        self
    }

    /// Whether only this machine can connect: a Unix socket, or TCP on a loopback address
    /// (`127.0.0.1`, `::1`; not `0.0.0.0`). A server beyond loopback should speak TLS and
    /// authenticate its peers.
    pub fn is_loopback(&self) -> bool {
        match &self.socket {
            Socket::Unix(..) => true,
            Socket::Tcp(l) => l.local_addr().is_ok_and(|a| a.ip().is_loopback()),
        }
    }

    /// The TLS settings this listener serves with, if it serves TLS.
    pub fn tls(&self) -> Option<&TlsServerConfig> {
        self.tls.as_ref()
    }

    /// The address actually bound (`127.0.0.1:41234`, `unix:/tmp/rwc.sock`).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Accepts connections until `shutdown` completes. Each one runs as its own task until
    /// it closes, served a fresh root made by `root` for the principal the connection's
    /// [`Authenticator`](crate::Authenticator) named (`None` without one); returns the
    /// tasks still running then, for the caller to wait for or abort. A failed accept (out
    /// of file descriptors, say) is logged and retried shortly; a failed or refused
    /// handshake is logged with the peer's address.
    ///
    /// # Cancel safety
    /// Dropping the future stops accepting and aborts the connections' tasks.
    pub async fn serve(
        &self,
        shutdown: impl Future<Output = ()>,
        config: ConnectionConfig,
        root: impl Fn(Option<&str>) -> NetRef + Send + Sync + 'static,
    ) -> JoinSet<()> {
        let root: RootFor = Arc::new(root);
        let mut connections = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.accept() => match accepted {
                    Ok(stream) => {
                        let (address, tls) = (self.peer_address(&stream), self.tls.clone());
                        let serving = serve_one(stream, address, tls, root.clone(), config.clone());
                        connections.spawn(serving);
                    }
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

    async fn accept(&self) -> std::io::Result<Accepted> {
        match &self.socket {
            Socket::Tcp(l) => l.accept().await.map(|(s, a)| Accepted::Tcp(s, a)),
            Socket::Unix(l, _) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
        }
    }

    /// Who connected, for the authenticator and the logs: a TCP peer's address; for a Unix
    /// socket (whose clients have no address), the socket's.
    fn peer_address(&self, stream: &Accepted) -> String {
        match stream {
            Accepted::Tcp(_, addr) => addr.to_string(),
            Accepted::Unix(_) => self.address.clone(),
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

/// Runs the handshakes on `stream` (TLS, if `tls`, then rwc), then serves the root made
/// for its principal until the connection closes.
async fn serve_one(
    stream: Accepted,
    address: String,
    tls: Option<TlsServerConfig>,
    root: RootFor,
    config: ConnectionConfig,
) {
    let make_root = |principal: Option<&str>| root(principal);
    let conn = match (stream, &tls) {
        (Accepted::Tcp(s, _), None) => match nodelay(&s) {
            Ok(()) => {
                let (r, w) = s.into_split();
                let peer = PeerInfo::at(address.clone());
                Connection::accept_peer(r, w, peer, config, make_root).await
            }
            Err(e) => Err(e),
        },
        (Accepted::Unix(s), None) => {
            let (r, w) = s.into_split();
            let peer = PeerInfo::at(address.clone());
            Connection::accept_peer(r, w, peer, config, make_root).await
        }
        (Accepted::Tcp(s, _), Some(tls)) => match nodelay(&s) {
            Ok(()) => tls::accept(s, tls, Some(address.clone()), config, make_root).await,
            Err(e) => Err(e),
        },
        (Accepted::Unix(s), Some(tls)) => {
            tls::accept(s, tls, Some(address.clone()), config, make_root).await
        }
    };
    match conn {
        Ok(conn) => {
            tracing::debug!(
                connection = conn.id(),
                peer = %address,
                agent = %conn.peer().agent,
                principal = conn.principal().unwrap_or("-"),
                "peer connected"
            );
            let reason = conn.closed().await;
            tracing::debug!(connection = conn.id(), %reason, "peer gone");
        }
        Err(e) => tracing::info!(peer = %address, error = %e, "handshake failed"),
    }
}
