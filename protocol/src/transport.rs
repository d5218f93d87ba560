//! Transports: TCP (with `TCP_NODELAY`), Unix sockets, a child process's stdio, this
//! process's stdio, and an in-memory pair for tests.

use std::path::Path;
use std::process::Stdio;

use tokio::net::{TcpStream, ToSocketAddrs, UnixStream};
use tokio::process::{Child, Command};

use crate::connection::{Connection, ConnectionConfig};
use crate::error::{Error, ErrorKind};
use crate::netref::NetRef;

/// Connects over TCP, serving `root` to the peer.
///
/// # Cancel safety
/// Dropping the future abandons the attempt.
pub async fn connect_tcp(
    addr: impl ToSocketAddrs,
    root: NetRef,
    config: ConnectionConfig,
) -> Result<Connection, Error> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| Error::new(ErrorKind::Disconnected, format!("cannot connect: {e}")))?;
    tcp(stream, root, config, true).await
}

/// Serves an accepted TCP stream.
///
/// # Cancel safety
/// Dropping the future abandons the handshake.
pub async fn accept_tcp(
    stream: TcpStream,
    root: NetRef,
    config: ConnectionConfig,
) -> Result<Connection, Error> {
    tcp(stream, root, config, false).await
}

async fn tcp(
    stream: TcpStream,
    root: NetRef,
    config: ConnectionConfig,
    connecting: bool,
) -> Result<Connection, Error> {
    nodelay(&stream)?;
    let (r, w) = stream.into_split();
    if connecting {
        Connection::connect_split(r, w, root, config).await
    } else {
        Connection::accept_split(r, w, root, config).await
    }
}

/// Sets `TCP_NODELAY`: calls are small writes that must never wait for Nagle's algorithm.
pub(crate) fn nodelay(stream: &TcpStream) -> Result<(), Error> {
    stream.set_nodelay(true).map_err(|e| {
        Error::new(
            ErrorKind::Disconnected,
            format!("cannot set TCP_NODELAY: {e}"),
        )
    })
}

/// Connects over a Unix socket.
///
/// # Cancel safety
/// Dropping the future abandons the attempt.
pub async fn connect_unix(
    path: impl AsRef<Path>,
    root: NetRef,
    config: ConnectionConfig,
) -> Result<Connection, Error> {
    let path = path.as_ref();
    let stream = UnixStream::connect(path).await.map_err(|e| {
        Error::new(
            ErrorKind::Disconnected,
            format!("cannot connect to {}: {e}", path.display()),
        )
    })?;
    let (r, w) = stream.into_split();
    Connection::connect_split(r, w, root, config).await
}

/// Serves an accepted Unix socket stream.
///
/// # Cancel safety
/// Dropping the future abandons the handshake.
pub async fn accept_unix(
    stream: UnixStream,
    root: NetRef,
    config: ConnectionConfig,
) -> Result<Connection, Error> {
    let (r, w) = stream.into_split();
    Connection::accept_split(r, w, root, config).await
}

/// Spawns `command` (e.g. `rwc-node --stdio`, or `ssh host rwc-node --stdio`) and connects
/// over its stdin and stdout; its stderr is inherited. The child is killed when the
/// returned `Child` is dropped.
///
/// # Cancel safety
/// Dropping the future kills the child.
pub async fn connect_child(
    mut command: Command,
    root: NetRef,
    config: ConnectionConfig,
) -> Result<(Connection, Child), Error> {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|e| {
        Error::new(
            ErrorKind::Disconnected,
            format!("cannot start {command:?}: {e}"),
        )
    })?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(Error::disconnected(
            "child process has no stdin/stdout pipes",
        ));
    };
    let conn = Connection::connect_split(stdout, stdin, root, config).await?;
    Ok((conn, child))
}

/// Serves one connection over this process's stdin and stdout (`rwc-node --stdio`).
///
/// # Cancel safety
/// Dropping the future abandons the handshake.
pub async fn accept_stdio(root: NetRef, config: ConnectionConfig) -> Result<Connection, Error> {
    Connection::accept_split(tokio::io::stdin(), tokio::io::stdout(), root, config).await
}

/// Two connected ends in memory: `(connecting side, accepting side)`.
pub async fn memory_pair(
    connecting_root: NetRef,
    accepting_root: NetRef,
    config: ConnectionConfig,
) -> Result<(Connection, Connection), Error> {
    let (a, b) = tokio::io::duplex(256 * 1024);
    let (c, s) = tokio::join!(
        Connection::connect(a, connecting_root, config.clone()),
        Connection::accept(b, accepting_root, config),
    );
    Ok((c?, s?))
}
