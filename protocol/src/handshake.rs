//! The handshake: magic bytes, protocol version, optional credentials, feature lists.
//!
//! The connecting side writes the magic and its [`Hello`]; the accepting side checks both,
//! asks its [`Authenticator`] about the credentials, and answers with the magic and either
//! its own `Hello` or the reason it refuses. One round trip; a peer that is not rwc, or
//! speaks another version, or announces limits that make no sense, gets a clear error on
//! both sides.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::PROTOCOL_VERSION;
use crate::codec;
use crate::connection::{ConnectionLimits, PrincipalBudget, Seat};
use crate::error::{Error, ErrorKind};
use crate::frame;
use crate::tls::{self, TlsIdentity};
use crate::value::DecodeLimits;

/// The first bytes of every rwc connection, in each direction.
pub const MAGIC: [u8; 8] = *b"\x89RWC\r\n\x1a\n";

/// Largest handshake frame accepted.
const MAX_HELLO: usize = 64 * 1024;

/// The first byte of a TLS handshake record (a client's first message).
const HANDSHAKE_RECORD: u8 = 0x16;

/// What a plain node says when a TLS client connects (its log, and the client's error if
/// it reads it).
const TLS_CLIENT: &str = "the peer started a TLS handshake, but this node serves plain rwc: \
     connect without tls://, or give the node --tls-cert and --tls-key";

/// What a plain client sees from a TLS node (rewritten with the node's address).
const TLS_SERVER: &str = "this node speaks TLS: use a tls:// address";

/// What each side says about itself when the connection opens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Protocol version ([`PROTOCOL_VERSION`]).
    pub version: u16,
    /// Optional features this side supports; unknown ones are ignored. The connection
    /// announces its limits here as `limits:frame=…,depth=…,len=…,values=…` (see
    /// [`ConnectionLimits`]).
    #[serde(deserialize_with = "crate::codec::bounded::strings")]
    pub features: Vec<String>,
    /// Credentials for the accepting side (a token); `None` when anonymous.
    #[serde(deserialize_with = "crate::codec::bounded::opt_bytes")]
    pub credentials: Option<Vec<u8>>,
    /// Free-form description of the software ("rwc-node 0.1.0").
    #[serde(deserialize_with = "crate::codec::bounded::string")]
    pub agent: String,
}

/// What the accepting side knows of a connecting peer when it authenticates it: where it
/// connected from and, over TLS, the names in the client certificate it presented.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's address (`127.0.0.1:53012`, `unix:/run/rwc.sock`), where the transport
    /// has one.
    pub address: Option<String>,
    /// The verified names of the peer's client certificate, if it presented one over TLS.
    pub tls: Option<TlsIdentity>,
    /// Whether the peer resumed an earlier TLS session (an abbreviated handshake) rather
    /// than making a full one; `false` without TLS.
    pub tls_resumed: bool,
}

impl PeerInfo {
    /// A peer at `address`, without a client certificate.
    pub fn at(address: impl Into<String>) -> PeerInfo {
        PeerInfo {
            address: Some(address.into()),
            tls: None,
            tls_resumed: false,
        }
    }
}

impl fmt::Display for PeerInfo {
    /// The address, or `an unknown peer`; for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.address.as_deref().unwrap_or("an unknown peer"))
    }
}

/// Decides whether a connecting peer may use this side.
pub trait Authenticator: Send + Sync + 'static {
    /// Checks the peer: the `credentials` it presented in the handshake (a token, `None`
    /// when it sent none) and what the transport tells of it (address, TLS client
    /// certificate). Returns the principal's name, or a `denied` error that is sent to the
    /// peer, which then gets no object at all. An implementation logs what it refuses
    /// (with the peer's address, never the credentials).
    fn authenticate(&self, peer: &PeerInfo, credentials: Option<&[u8]>) -> Result<String, Error>;
}

/// The connecting side of the handshake. Returns the acceptor's `Hello`.
/// `peer` names the node for messages (`127.0.0.1:18870`), where the transport knows it.
pub(crate) async fn connect<R, W>(
    r: &mut R,
    w: &mut W,
    hello: &Hello,
    peer: Option<&str>,
) -> Result<Hello, Error>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    write_hello(w, &Ok::<_, Error>(hello.clone())).await?;
    let theirs = read_hello(r).await.map_err(|e| {
        if e.kind() == ErrorKind::Protocol && e.message() == TLS_SERVER {
            let to = peer.map_or_else(|| "a tls:// address".to_owned(), |p| format!("tls://{p}"));
            Error::protocol(format!("this node speaks TLS: use {to}"))
        } else {
            e
        }
    })?;
    check_hello(&theirs)?;
    Ok(theirs)
}

/// The accepting side of the handshake. Returns the connector's `Hello`, its principal,
/// and (with a `budget`) the principal's place for this connection: a principal that holds
/// its most connections already is refused here, before it gets an object.
pub(crate) async fn accept<R, W>(
    r: &mut R,
    w: &mut W,
    hello: &Hello,
    auth: Option<&dyn Authenticator>,
    peer: &PeerInfo,
    budget: Option<&Arc<PrincipalBudget>>,
) -> Result<(Hello, Option<String>, Option<Seat>), Error>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let theirs = match read_hello(r).await {
        Ok(theirs) => theirs,
        Err(e) => {
            if e.kind() == ErrorKind::Protocol && e.message() == TLS_CLIENT {
                // A TLS client: answer with the magic, which its TLS stack reads as a
                // record no TLS server sends, and so can tell it reached a plain node.
                let _ = write_hello(w, &Err::<Hello, _>(e.clone())).await;
            }
            return Err(e);
        }
    };
    let verdict = check_hello(&theirs)
        .and_then(|()| match auth {
            Some(auth) => auth
                .authenticate(peer, theirs.credentials.as_deref())
                .map(Some),
            None => Ok(None),
        })
        .and_then(|principal| {
            let seat = budget
                .map(|budget| budget.seat(principal.as_deref()))
                .transpose()?;
            Ok((principal, seat))
        });
    match verdict {
        Ok((principal, seat)) => {
            write_hello(w, &Ok::<_, Error>(hello.clone())).await?;
            Ok((theirs, principal, seat))
        }
        Err(e) => {
            // Tell the peer why; it gets no object at all.
            let _ = write_hello(w, &Err::<Hello, _>(e.clone())).await;
            Err(e)
        }
    }
}

/// Refuses a connecting peer without reading what it sent: writes the magic and `reason`
/// in the place of this side's `Hello`, so the peer's `connect` fails with `reason`.
pub(crate) async fn refuse<W: AsyncWrite + Unpin>(w: &mut W, reason: &Error) -> Result<(), Error> {
    write_hello(w, &Err::<Hello, _>(reason.clone())).await
}

/// Reads the peer's magic and its `Hello` (or, from an acceptor, the reason it refuses).
async fn read_hello<R: AsyncRead + Unpin>(r: &mut R) -> Result<Hello, Error> {
    read_magic(r).await?;
    let payload = frame::read_frame(r, MAX_HELLO)
        .await?
        .ok_or_else(|| Error::disconnected("peer closed the connection during the handshake"))?;
    let theirs: Result<Hello, Error> = codec::decode(&payload, DecodeLimits::default())?;
    theirs.map_err(Error::into_remote)
}

/// Checks the peer's version and that the limits it announces make sense.
fn check_hello(theirs: &Hello) -> Result<(), Error> {
    if theirs.version != PROTOCOL_VERSION {
        return Err(Error::protocol(format!(
            "peer speaks rwc protocol version {}, this side speaks version {PROTOCOL_VERSION}; upgrade the older side",
            theirs.version
        )));
    }
    ConnectionLimits::from_features(&theirs.features).map(drop)
}

async fn write_hello<W: AsyncWrite + Unpin>(
    w: &mut W,
    hello: &Result<Hello, Error>,
) -> Result<(), Error> {
    let payload = codec::encode(hello)?;
    let mut bytes = MAGIC.to_vec();
    bytes.extend(frame::frame(&payload, MAX_HELLO)?);
    w.write_all(&bytes).await.map_err(io_err)?;
    w.flush().await.map_err(io_err)
}

async fn read_magic<R: AsyncRead + Unpin>(r: &mut R) -> Result<(), Error> {
    let mut got = [0u8; MAGIC.len()];
    let mut n = 0;
    while n < got.len() {
        let k = r.read(&mut got[n..]).await.map_err(io_err)?;
        if k == 0 {
            return Err(Error::disconnected(
                "peer closed the connection during the handshake (is it an rwc node?)",
            ));
        }
        if got[n..n + k] != MAGIC[n..n + k] {
            if tls::is_tls_record(&got[..n + k]) {
                // A handshake record from a client, an alert from a server.
                return Err(Error::protocol(if got[0] == HANDSHAKE_RECORD {
                    TLS_CLIENT
                } else {
                    TLS_SERVER
                }));
            }
            return Err(Error::protocol(format!(
                "peer is not speaking rwc: expected the rwc magic bytes, got {:?}",
                String::from_utf8_lossy(&got[..n + k])
            )));
        }
        n += k;
    }
    Ok(())
}

/// An I/O error during the handshake. Over TLS it may be the node refusing this client's
/// certificate, which TLS 1.3 tells only after the client's side of the TLS handshake.
fn io_err(e: std::io::Error) -> Error {
    tls::after_handshake(&e)
        .unwrap_or_else(|| Error::new(ErrorKind::Disconnected, format!("handshake failed: {e}")))
}
