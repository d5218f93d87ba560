//! Where a node (or a registry) is, as a user writes it, and how to connect to it: every
//! kind of address is parsed here, in one place, and [`Address::connect`] dials it with
//! the [`ConnectOptions`] (TLS settings, token) the caller holds.
//!
//! | written | transport |
//! |---|---|
//! | `HOST:PORT` (or `tcp://HOST:PORT`) | plain TCP |
//! | `unix:/path` | plain Unix socket |
//! | `tls://HOST:PORT` | TLS over TCP; the node's certificate must be valid for `HOST` |
//! | `tls+unix:/path` | TLS over a Unix socket; the certificate must be valid for `localhost` |
//!
//! ```
//! use rwc_protocol::address::Address;
//!
//! let a: Address = "tls://node1.example.com:18870".parse().unwrap();
//! assert!(a.is_tls());
//! assert_eq!(a.to_string(), "tls://node1.example.com:18870");
//! assert!("tls://node1".parse::<Address>().is_err()); // no port
//! ```

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use tokio::net::{TcpStream, UnixStream};

use crate::connection::{Connection, ConnectionConfig};
use crate::error::{Error, ErrorKind};
use crate::netref::NetRef;
use crate::tls::{self, TlsClientConfig};
use crate::token::Token;
use crate::transport::nodelay;

/// The server name a `tls+unix:` address checks the node's certificate against: a Unix
/// socket has no host name, and `rwc-node gen-cert` always certifies `localhost`.
pub const UNIX_SERVER_NAME: &str = "localhost";

/// A parsed address of an rwc endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Address {
    /// `HOST:PORT`: plain TCP.
    Tcp(String),
    /// `unix:/path`: a plain Unix socket.
    Unix(PathBuf),
    /// `tls://HOST:PORT`: TLS over TCP, checking the certificate against `host`.
    Tls {
        /// The host, as written (`node1.example.com`, `10.0.0.5`, `[::1]`).
        host: String,
        /// The port.
        port: u16,
    },
    /// `tls+unix:/path`: TLS over a Unix socket, checking the certificate against
    /// [`UNIX_SERVER_NAME`].
    TlsUnix(PathBuf),
}

/// How to connect: the TLS settings used for `tls://` addresses, the token presented
/// in the handshake and the options of `ssh` for `ssh://` addresses. One value serves every connection of a client or a pool (and, for a
/// `tls://` node, lets reconnections resume their TLS session).
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// Trust anchors and client certificate for TLS; `None`: the system's trust store and
    /// no client certificate.
    pub tls: Option<TlsClientConfig>,
    /// The token to present; `None`: none.
    pub token: Option<Token>,
    /// Options for `ssh` when dialing an `ssh://` address (`rwc_client::ssh`), each split
    /// at whitespace into words: `"-i /path/key"`, `"-o UserKnownHostsFile=FILE"`.
    pub ssh: Vec<String>,
}

impl ConnectOptions {
    /// No TLS settings (the system's trust store), no token.
    pub fn new() -> Self {
        ConnectOptions::default()
    }

    /// These options with `tls` for `tls://` addresses.
    pub fn with_tls(mut self, tls: TlsClientConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// These options passing `options` to `ssh` for `ssh://` addresses.
    pub fn with_ssh_options(mut self, options: Vec<String>) -> Self {
        self.ssh = options;
        self
    }

    /// These options presenting `token`.
    pub fn with_token(mut self, token: Token) -> Self {
        self.token = Some(token);
        self
    }
}

impl Address {
    /// Whether the address is spoken over TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, Address::Tls { .. } | Address::TlsUnix(_))
    }

    /// Connects, presenting `options.token` and, for a TLS address, checking the node's
    /// certificate with `options.tls`; serves `root` to the peer.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the attempt.
    pub async fn connect(
        &self,
        options: &ConnectOptions,
        root: NetRef,
        mut config: ConnectionConfig,
    ) -> Result<Connection, Error> {
        if let Some(token) = &options.token {
            config.credentials = Some(token.as_bytes().to_vec());
        }
        match self {
            Address::Tcp(addr) => {
                let (r, w) = tcp(addr).await?.into_split();
                Connection::connect_named(r, w, addr.clone(), root, config).await
            }
            Address::Unix(path) => {
                let (r, w) = unix(path).await?.into_split();
                let name = format!("unix:{}", path.display());
                Connection::connect_named(r, w, name, root, config).await
            }
            Address::Tls { host, port } => {
                let authority = format!("{host}:{port}");
                let stream = tcp(&authority).await?;
                let tls = client_tls(options)?;
                tls::connect_connection(stream, &tls, host, authority, root, config).await
            }
            Address::TlsUnix(path) => {
                let stream = unix(path).await?;
                let tls = client_tls(options)?;
                let name = format!("unix:{}", path.display());
                tls::connect_connection(stream, &tls, UNIX_SERVER_NAME, name, root, config).await
            }
        }
    }
}

impl FromStr for Address {
    type Err = Error;

    fn from_str(s: &str) -> Result<Address, Error> {
        let s = s.trim();
        let bad = |why: &str| {
            Error::bad_argument(format!(
                "`{s}` is not an rwc address: {why} (write HOST:PORT, unix:/path, tls://HOST:PORT or tls+unix:/path)"
            ))
        };
        if let Some(path) = s.strip_prefix("tls+unix:") {
            return unix_path(path)
                .map(Address::TlsUnix)
                .ok_or_else(|| bad("no socket path"));
        }
        if let Some(path) = s.strip_prefix("unix:") {
            return unix_path(path)
                .map(Address::Unix)
                .ok_or_else(|| bad("no socket path"));
        }
        if let Some(authority) = s.strip_prefix("tls://") {
            let (host, port) = host_port(authority).map_err(|why| bad(&why))?;
            return Ok(Address::Tls {
                host: host.to_owned(),
                port,
            });
        }
        let authority = s.strip_prefix("tcp://").unwrap_or(s);
        if let Some((scheme, _)) = authority.split_once("://") {
            return Err(bad(&format!("unknown scheme `{scheme}://`")));
        }
        host_port(authority).map_err(|why| bad(&why))?;
        Ok(Address::Tcp(authority.to_owned()))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(a) => f.write_str(a),
            Address::Unix(p) => write!(f, "unix:{}", p.display()),
            Address::Tls { host, port } => write!(f, "tls://{host}:{port}"),
            Address::TlsUnix(p) => write!(f, "tls+unix:{}", p.display()),
        }
    }
}

/// `unix:/path` and `unix:///path` both name `/path`.
fn unix_path(path: &str) -> Option<PathBuf> {
    let path = path.strip_prefix("//").unwrap_or(path);
    (!path.is_empty()).then(|| PathBuf::from(path))
}

/// `host:port`, `[v6]:port`.
fn host_port(authority: &str) -> Result<(&str, u16), String> {
    let (host, port) = authority
        .rsplit_once(':')
        .ok_or_else(|| "no port".to_owned())?;
    if host.is_empty() {
        return Err("no host".to_owned());
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err("an IPv6 host goes in brackets, [::1]:PORT".to_owned());
    }
    let port = port
        .parse()
        .map_err(|_| format!("`{port}` is not a port number"))?;
    Ok((host, port))
}

/// The TLS settings to dial with: the caller's, or the system's trust store.
fn client_tls(options: &ConnectOptions) -> Result<TlsClientConfig, Error> {
    match &options.tls {
        Some(tls) => Ok(tls.clone()),
        None => TlsClientConfig::from_pem(None, None),
    }
}

async fn tcp(addr: &str) -> Result<TcpStream, Error> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| Error::new(ErrorKind::Disconnected, format!("cannot connect: {e}")))?;
    nodelay(&stream)?;
    Ok(stream)
}

async fn unix(path: &std::path::Path) -> Result<UnixStream, Error> {
    UnixStream::connect(path).await.map_err(|e| {
        Error::new(
            ErrorKind::Disconnected,
            format!("cannot connect to {}: {e}", path.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses_and_prints_back() {
        for (text, want) in [
            ("127.0.0.1:18870", Address::Tcp("127.0.0.1:18870".into())),
            ("tcp://node:1", Address::Tcp("node:1".into())),
            ("[::1]:5", Address::Tcp("[::1]:5".into())),
            ("unix:/run/rwc.sock", Address::Unix("/run/rwc.sock".into())),
            (
                "tls://node1.example.com:18870",
                Address::Tls {
                    host: "node1.example.com".into(),
                    port: 18870,
                },
            ),
            (
                "tls://[::1]:18870",
                Address::Tls {
                    host: "[::1]".into(),
                    port: 18870,
                },
            ),
            (
                "tls+unix:/run/rwc.sock",
                Address::TlsUnix("/run/rwc.sock".into()),
            ),
        ] {
            let parsed: Address = text.parse().unwrap();
            assert_eq!(parsed, want, "{text}");
            let printed = parsed.to_string();
            assert_eq!(printed.parse::<Address>().unwrap(), want, "{printed}");
        }
    }

    #[test]
    fn bad_addresses_say_what_is_wrong() {
        for (text, why) in [
            ("node1", "no port"),
            ("tls://node1", "no port"),
            ("tls://:5", "no host"),
            ("node:http", "not a port number"),
            ("::1:5", "brackets"),
            ("ssh2://host:1", "unknown scheme"),
            ("unix:", "no socket path"),
        ] {
            let e = text.parse::<Address>().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BadArgument);
            assert!(e.message().contains(why), "{text}: {e}");
            assert!(e.message().contains("tls://HOST:PORT"), "{text}: {e}");
        }
    }
}
