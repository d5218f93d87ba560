//! TLS over any transport (TCP, Unix socket): rustls with the *ring* provider, TLS 1.3
//! only, certificates and keys read from PEM files.
//!
//! A node serves TLS with a [`TlsServerConfig`] (its certificate and key, and optionally a
//! CA whose client certificates it requires); a client connects with a
//! [`TlsClientConfig`] (the CA it trusts, or the system's, and optionally its own
//! certificate). The accepting side learns the client certificate's names as a
//! [`TlsIdentity`], which the [`Authenticator`](crate::Authenticator) sees.
//!
//! Every way a TLS connection can fail to open is told apart, on both sides, in words a
//! user can act on: an untrusted certificate, a name mismatch, an expired certificate, a
//! missing client certificate, and a plain rwc peer on one end of a TLS one.
//!
//! Both ends keep the sessions they made, so reconnecting with the same configuration
//! resumes a session (an abbreviated handshake) instead of a full one.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{AlertDescription, CertificateError, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadBuf};
use tokio::time::Instant;

use crate::connection::{Connection, ConnectionConfig};
use crate::error::{Error, ErrorKind};
use crate::handshake::PeerInfo;
use crate::netref::NetRef;

/// What a node needs to serve TLS: its certificate chain and key, and, to require client
/// certificates, the CA that signs them.
#[derive(Clone)]
pub struct TlsServerConfig {
    config: Arc<rustls::ServerConfig>,
    client_auth: bool,
}

/// What a client needs to connect with TLS: the CAs it trusts and, for a node that
/// requires one, its own certificate and key.
#[derive(Clone)]
pub struct TlsClientConfig {
    config: Arc<rustls::ClientConfig>,
}

/// The names in a client certificate that the accepting side verified: the subject's
/// common names and the subject alternative names, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsIdentity {
    /// Subject common names (`CN=`).
    pub common_names: Vec<String>,
    /// DNS-name SANs (`DNS=`).
    pub dns_names: Vec<String>,
    /// URI SANs (`URI=`), e.g. SPIFFE IDs.
    pub uris: Vec<String>,
    /// E-mail SANs (`email=`).
    pub emails: Vec<String>,
}

/// One name a client certificate can carry, written `CN=ops`, `DNS=ops.example.com`,
/// `URI=spiffe://example.com/ops` or `email=ops@example.com` (the prefix is not case
/// sensitive; the name is compared exactly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertName {
    /// The subject's common name.
    CommonName(String),
    /// A DNS-name subject alternative name.
    Dns(String),
    /// A URI subject alternative name.
    Uri(String),
    /// An e-mail subject alternative name.
    Email(String),
}

impl TlsServerConfig {
    /// Reads the certificate chain and key (PEM) and, if given, the CA certificates (PEM)
    /// client certificates must be signed by; with a client CA every client must present
    /// a certificate it signed.
    pub fn from_pem_files(
        cert: &Path,
        key: &Path,
        client_ca: Option<&Path>,
    ) -> Result<TlsServerConfig, Error> {
        let ca = client_ca.map(|p| read_file(p, "client CA")).transpose()?;
        TlsServerConfig::from_pem(
            &read_file(cert, "certificate")?,
            &read_file(key, "key")?,
            ca.as_deref(),
        )
        .map_err(|e| {
            Error::new(
                e.kind(),
                format!(
                    "{} (files {}, {})",
                    e.message(),
                    cert.display(),
                    key.display()
                ),
            )
        })
    }

    /// [`from_pem_files`](TlsServerConfig::from_pem_files) from PEM text in memory.
    pub fn from_pem(
        cert_pem: &[u8],
        key_pem: &[u8],
        client_ca_pem: Option<&[u8]>,
    ) -> Result<TlsServerConfig, Error> {
        let chain = certificates(cert_pem, "certificate")?;
        let key = private_key(key_pem)?;
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| bad_config(format!("TLS: {e}")))?;
        let builder = match client_ca_pem {
            Some(pem) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(roots(pem)?, provider())
                    .build()
                    .map_err(|e| bad_config(format!("TLS: the client CA cannot verify: {e}")))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(chain, key).map_err(|e| {
            bad_config(format!(
                "TLS: the certificate and key do not go together: {e}"
            ))
        })?;
        // Tickets that carry the session, sealed with a key the node rotates every six
        // hours, so a client resumes however many others came since; rustls's default keeps
        // sessions in a cache of 256, which a busy node overflows in seconds.
        config.ticketer = rustls::crypto::ring::Ticketer::new()
            .map_err(|e| bad_config(format!("TLS: cannot make a session ticket key: {e}")))?;
        Ok(TlsServerConfig {
            config: Arc::new(config),
            client_auth: client_ca_pem.is_some(),
        })
    }

    /// Whether every client must present a certificate signed by the client CA.
    pub fn requires_client_cert(&self) -> bool {
        self.client_auth
    }
}

impl TlsClientConfig {
    /// Trusts the CA certificates in the PEM file `ca` (or, without one, the system's trust
    /// store) and, with `identity` (certificate chain and key, PEM files), presents that
    /// certificate to nodes that ask for one.
    pub fn from_pem_files(
        ca: Option<&Path>,
        identity: Option<(&Path, &Path)>,
    ) -> Result<TlsClientConfig, Error> {
        let ca = ca.map(|p| read_file(p, "CA")).transpose()?;
        let identity = identity
            .map(|(c, k)| Ok::<_, Error>((read_file(c, "certificate")?, read_file(k, "key")?)))
            .transpose()?;
        TlsClientConfig::from_pem(
            ca.as_deref(),
            identity.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice())),
        )
    }

    /// [`from_pem_files`](TlsClientConfig::from_pem_files) from PEM text in memory.
    pub fn from_pem(
        ca_pem: Option<&[u8]>,
        identity: Option<(&[u8], &[u8])>,
    ) -> Result<TlsClientConfig, Error> {
        let roots = match ca_pem {
            Some(pem) => roots(pem)?,
            None => system_roots()?,
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| bad_config(format!("TLS: {e}")))?
            .with_root_certificates(roots);
        let config = match identity {
            Some((cert, key)) => builder
                .with_client_auth_cert(certificates(cert, "certificate")?, private_key(key)?)
                .map_err(|e| {
                    bad_config(format!(
                        "TLS: the client certificate and key do not go together: {e}"
                    ))
                })?,
            None => builder.with_no_client_auth(),
        };
        Ok(TlsClientConfig {
            config: Arc::new(config),
        })
    }
}

impl TlsIdentity {
    /// Whether the certificate carries `name`.
    pub fn has(&self, name: &CertName) -> bool {
        let want = name.parts();
        self.names().any(|have| have == want)
    }

    /// Every name as (prefix, name), in the form [`CertName`] parses: the common names,
    /// then the DNS, URI and e-mail SANs.
    fn names(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("CN", &self.common_names),
            ("DNS", &self.dns_names),
            ("URI", &self.uris),
            ("email", &self.emails),
        ]
        .into_iter()
        .flat_map(|(kind, names)| names.iter().map(move |n| (kind, n.as_str())))
    }

    /// Reads the names of a DER certificate that rustls has verified.
    fn of(cert: &CertificateDer<'_>) -> Result<TlsIdentity, Error> {
        let (_, x509) = x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|e| {
            Error::new(
                ErrorKind::Denied,
                format!("cannot read the client certificate: {e}"),
            )
        })?;
        let mut id = TlsIdentity {
            common_names: x509
                .subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok().map(str::to_owned))
                .collect(),
            ..TlsIdentity::default()
        };
        if let Ok(Some(san)) = x509.subject_alternative_name() {
            use x509_parser::extensions::GeneralName;
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(n) => id.dns_names.push((*n).to_owned()),
                    GeneralName::URI(n) => id.uris.push((*n).to_owned()),
                    GeneralName::RFC822Name(n) => id.emails.push((*n).to_owned()),
                    _ => {}
                }
            }
        }
        Ok(id)
    }
}

impl fmt::Display for TlsIdentity {
    /// `CN=ops, DNS=ops.example.com`: every name, in the form [`CertName`] parses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (kind, name)) in self.names().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{kind}={name}")?;
        }
        Ok(())
    }
}

impl FromStr for CertName {
    type Err = String;

    fn from_str(s: &str) -> Result<CertName, String> {
        let (kind, name) = s.split_once('=').ok_or_else(|| {
            format!(
                "`{s}` is not a certificate name: write CN=NAME, DNS=NAME, URI=URI or email=ADDRESS"
            )
        })?;
        let name = name.trim().to_owned();
        if name.is_empty() {
            return Err(format!("`{s}` names nothing after `=`"));
        }
        match kind.trim().to_ascii_lowercase().as_str() {
            "cn" => Ok(CertName::CommonName(name)),
            "dns" => Ok(CertName::Dns(name)),
            "uri" => Ok(CertName::Uri(name)),
            "email" => Ok(CertName::Email(name)),
            other => Err(format!(
                "`{other}=` is not a certificate name kind: use CN=, DNS=, URI= or email="
            )),
        }
    }
}

impl CertName {
    /// The prefix this name is written with (`CN`, `DNS`, `URI` or `email`) and the name.
    fn parts(&self) -> (&'static str, &str) {
        match self {
            CertName::CommonName(n) => ("CN", n),
            CertName::Dns(n) => ("DNS", n),
            CertName::Uri(n) => ("URI", n),
            CertName::Email(n) => ("email", n),
        }
    }
}

impl fmt::Display for CertName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, name) = self.parts();
        write!(f, "{kind}={name}")
    }
}

impl fmt::Debug for TlsServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsServerConfig")
            .field("requires_client_cert", &self.client_auth)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for TlsClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClientConfig")
            .field(
                "client_cert",
                &self.config.client_auth_cert_resolver.has_certs(),
            )
            .finish_non_exhaustive()
    }
}

/// Opens an rwc connection over TLS on `stream` (any transport: TCP, a Unix socket), as
/// the connecting side: checks that the node's certificate is valid for `server_name` (a
/// DNS name or an IP address), presents the client certificate `tls` holds, then runs the
/// rwc handshake. The TLS handshake counts against `config.handshake_timeout` too.
///
/// # Cancel safety
/// Dropping the future abandons the attempt.
pub async fn connect<S>(
    stream: S,
    tls: &TlsClientConfig,
    server_name: &str,
    root: NetRef,
    config: ConnectionConfig,
) -> Result<Connection, Error>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    connect_connection(
        stream,
        tls,
        server_name,
        server_name.to_owned(),
        root,
        config,
    )
    .await
}

/// Accepts an rwc connection over TLS on `stream`, as the accepting side: the TLS
/// handshake (requiring a client certificate if `tls` has a client CA), then the rwc
/// handshake, whose [`Authenticator`](crate::Authenticator) sees `address` and the client
/// certificate's names. `root` makes the root served once the peer is authenticated (see
/// [`Connection::accept_peer`]). Both handshakes together must finish within
/// `config.handshake_timeout`.
///
/// # Cancel safety
/// Dropping the future abandons the handshake and the transport.
pub async fn accept<S>(
    stream: S,
    tls: &TlsServerConfig,
    address: Option<String>,
    mut config: ConnectionConfig,
    root: impl FnOnce(Option<&str>) -> NetRef,
) -> Result<Connection, Error>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let started = Instant::now();
    let (stream, identity, resumed) =
        within(config.handshake_timeout, accept_stream(tls, stream)).await?;
    config.handshake_timeout = config.handshake_timeout.saturating_sub(started.elapsed());
    let (r, w) = tokio::io::split(stream);
    let peer = PeerInfo {
        address,
        tls: identity,
        tls_resumed: resumed,
    };
    Connection::accept_peer(r, w, peer, config, root).await
}

/// [`connect`] naming the node `peer` in messages (`node1:18870`, the address the user
/// gave).
pub(crate) async fn connect_connection<S>(
    stream: S,
    tls: &TlsClientConfig,
    server_name: &str,
    peer: String,
    root: NetRef,
    mut config: ConnectionConfig,
) -> Result<Connection, Error>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let started = Instant::now();
    let stream = within(
        config.handshake_timeout,
        connect_stream(tls, server_name, stream, &peer),
    )
    .await?;
    config.handshake_timeout = config.handshake_timeout.saturating_sub(started.elapsed());
    let (r, w) = tokio::io::split(stream);
    Connection::connect_named(r, w, peer, root, config).await
}

/// A TLS stream over `S`, either side. Reads from `S` go through a buffer: rustls asks
/// for 4 KiB at a time, which would be a system call per 4 KiB of a large message.
type TlsStream<S> = tokio_rustls::TlsStream<FirstByte<BufReader<S>>>;

/// The buffer under rustls's reads (see [`TlsStream`]).
const TLS_READ_BUFFER: usize = 256 << 10;

/// How much encrypted data rustls may hold before a write waits for the socket (rustls's
/// default, 64 KiB, makes a 64 MiB message a thousand write system calls).
const TLS_WRITE_BUFFER: usize = 1 << 20;

/// The transport under rustls: buffered reads, and the first byte remembered.
fn under_tls<S: AsyncRead>(stream: S) -> FirstByte<BufReader<S>> {
    FirstByte::new(BufReader::with_capacity(TLS_READ_BUFFER, stream))
}

/// `handshake` within `limit`, or a `timed out` error.
async fn within<T>(
    limit: Duration,
    handshake: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(limit, handshake).await.map_err(|_| {
        Error::new(
            ErrorKind::TimedOut,
            format!("the TLS handshake did not finish within {limit:?}"),
        )
    })?
}

/// The accepting side's TLS handshake on `stream`. Returns the stream, the client
/// certificate's names if it presented one, and whether the client resumed a session.
async fn accept_stream<S>(
    config: &TlsServerConfig,
    stream: S,
) -> Result<(TlsStream<S>, Option<TlsIdentity>, bool), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(config.config.clone());
    match acceptor.accept(under_tls(stream)).into_fallible().await {
        Ok(mut tls) => {
            let session = &mut tls.get_mut().1;
            session.set_buffer_limit(Some(TLS_WRITE_BUFFER));
            let resumed = session.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
            let identity = match session.peer_certificates().and_then(<[_]>::first) {
                Some(cert) => Some(TlsIdentity::of(cert)?),
                None => None,
            };
            Ok((tokio_rustls::TlsStream::Server(tls), identity, resumed))
        }
        Err((e, io)) => Err(accept_error(&e, io.first)),
    }
}

/// The connecting side's TLS handshake on `stream`, checking that the node's certificate
/// is valid for `server_name`. `peer` is what the user connected to, for messages.
async fn connect_stream<S>(
    config: &TlsClientConfig,
    server_name: &str,
    stream: S,
    peer: &str,
) -> Result<TlsStream<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let name = server_name.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(name.to_owned()).map_err(|e| {
        Error::bad_argument(format!(
            "TLS: `{server_name}` is not a host name or IP address: {e}"
        ))
    })?;
    let connector = tokio_rustls::TlsConnector::from(config.config.clone());
    match connector
        .connect(name, under_tls(stream))
        .into_fallible()
        .await
    {
        Ok(mut tls) => {
            tls.get_mut().1.set_buffer_limit(Some(TLS_WRITE_BUFFER));
            Ok(tokio_rustls::TlsStream::Client(tls))
        }
        Err((e, io)) => Err(connect_error(&e, io.first, server_name, peer)),
    }
}

/// What a TLS failure that surfaces after the handshake means to the connecting side: with
/// TLS 1.3 the node checks a client certificate only after the client has finished its part,
/// so its refusal arrives as an alert on the first read.
pub(crate) fn after_handshake(e: &io::Error) -> Option<Error> {
    match rustls_error(e)? {
        rustls::Error::AlertReceived(alert) => Some(alert_from_node(*alert)),
        other => Some(Error::new(ErrorKind::Disconnected, format!("TLS: {other}"))),
    }
}

/// Whether the first byte a peer sent opens a TLS record (handshake or alert): what a
/// plain rwc endpoint sees when the other end speaks TLS.
pub(crate) fn is_tls_record(first: &[u8]) -> bool {
    matches!(first, [0x15 | 0x16, 0x03, ..] | [0x15 | 0x16])
}

fn accept_error(e: &io::Error, first: Option<u8>) -> Error {
    let Some(err) = rustls_error(e) else {
        return handshake_failed(e);
    };
    match err {
        rustls::Error::InvalidMessage(_) if first == Some(crate::handshake::MAGIC[0]) => {
            Error::new(
                ErrorKind::Protocol,
                "a plain rwc client connected to this TLS listener (it must connect with a tls:// address)",
            )
        }
        rustls::Error::NoCertificatesPresented => denied(
            "the client presented no certificate, and this node requires one (--tls-client-ca)",
        ),
        // A CA of the same name but another key gives a bad signature.
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => denied("the client's certificate is not signed by this node's --tls-client-ca"),
        rustls::Error::InvalidCertificate(c) => certificate_refused("client's", c),
        rustls::Error::AlertReceived(AlertDescription::UnknownCA) => denied(
            "the client does not trust this node's certificate (it needs this node's CA: --tls-ca)",
        ),
        rustls::Error::AlertReceived(AlertDescription::BadCertificate) => denied(
            "the client refused this node's certificate (is the name it connected by among the certificate's names?)",
        ),
        rustls::Error::AlertReceived(AlertDescription::CertificateExpired) => {
            denied("the client refused this node's certificate: it has expired")
        }
        other => handshake_failed(other),
    }
}

fn connect_error(e: &io::Error, first: Option<u8>, server_name: &str, peer: &str) -> Error {
    let Some(err) = rustls_error(e) else {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            return Error::disconnected(
                "the node closed the connection during the TLS handshake (does it serve TLS?)",
            );
        }
        return handshake_failed(e);
    };
    match err {
        rustls::Error::InvalidMessage(_) if first == Some(crate::handshake::MAGIC[0]) => {
            Error::new(
                ErrorKind::Protocol,
                format!("this node speaks plain rwc, not TLS: use {peer} without tls://"),
            )
        }
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => denied(
                "the node's certificate is not signed by a CA this client trusts (give the node's CA with --tls-ca or RWC_TLS_CA)",
            ),
            CertificateError::NotValidForName => {
                denied(format!("the node's certificate is not valid for the name `{server_name}`"))
            }
            CertificateError::NotValidForNameContext { presented, .. } => denied(format!(
                "the node's certificate is not valid for the name `{server_name}` (it is for: {}); connect by one of those names, or give the node a certificate for this one (rwc-node gen-cert --san {server_name})",
                presented.iter().map(|p| presented_name(p)).collect::<Vec<_>>().join(", ")
            )),
            other => certificate_refused("node's", other),
        },
        rustls::Error::AlertReceived(alert) => alert_from_node(*alert),
        other => handshake_failed(other),
    }
}

/// A peer's certificate refused for what both sides word alike (its dates, or a reason
/// not told apart); `whose` is `client's` or `node's`.
fn certificate_refused(whose: &str, c: &CertificateError) -> Error {
    denied(match c {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            format!("the {whose} certificate has expired")
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            format!("the {whose} certificate is not valid yet")
        }
        other => format!("the {whose} certificate is refused: {other}"),
    })
}

/// The handshake refused, saying why.
fn denied(why: impl fmt::Display) -> Error {
    Error::new(ErrorKind::Denied, format!("TLS: {why}"))
}

/// A handshake that failed for a reason with no better words than rustls's or the
/// transport's.
fn handshake_failed(e: impl fmt::Display) -> Error {
    Error::new(
        ErrorKind::Disconnected,
        format!("TLS handshake failed: {e}"),
    )
}

fn alert_from_node(alert: AlertDescription) -> Error {
    let m = match alert {
        AlertDescription::CertificateRequired => {
            "the node requires a client certificate: give one with --tls-cert and --tls-key (or RWC_TLS_CERT and RWC_TLS_KEY)".to_owned()
        }
        // rustls answers a bad signature (a CA of the same name, another key) with
        // `decrypt_error`.
        AlertDescription::UnknownCA | AlertDescription::DecryptError => {
            "the node does not trust this client's certificate (it is not signed by the node's --tls-client-ca)".to_owned()
        }
        AlertDescription::CertificateExpired => {
            "the node refused this client's certificate: it has expired or is not valid yet".to_owned()
        }
        other => format!("the node refused the connection ({other:?})"),
    };
    denied(m)
}

/// `DnsName("localhost")` → `localhost`, `IpAddress(127.0.0.1)` → `127.0.0.1`: the names
/// rustls reports a certificate presents, as a user writes them.
fn presented_name(p: &str) -> String {
    let inner = p
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or(p);
    inner.trim_matches('"').to_owned()
}

fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn bad_config(message: String) -> Error {
    Error::new(ErrorKind::Failed, message)
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| {
        bad_config(format!(
            "TLS: cannot read the {what} file {}: {e}",
            path.display()
        ))
    })
}

fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_config(format!("TLS: the {what} file is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(bad_config(format!(
            "TLS: the {what} file holds no certificate (no BEGIN CERTIFICATE block)"
        )));
    }
    Ok(certs)
}

fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => {
            bad_config("TLS: the key file holds no private key (no BEGIN PRIVATE KEY block)".into())
        }
        e => bad_config(format!("TLS: the key file is not valid PEM: {e}")),
    })
}

fn roots(pem: &[u8]) -> Result<Arc<RootCertStore>, Error> {
    let mut store = RootCertStore::empty();
    for cert in certificates(pem, "CA")? {
        store
            .add(cert)
            .map_err(|e| bad_config(format!("TLS: a CA certificate is not usable: {e}")))?;
    }
    Ok(Arc::new(store))
}

fn system_roots() -> Result<Arc<RootCertStore>, Error> {
    let found = rustls_native_certs::load_native_certs();
    let mut store = RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(bad_config(
            "TLS: no CA to trust: give the node's CA with --tls-ca (or RWC_TLS_CA); this system has no trust store".into(),
        ));
    }
    Ok(Arc::new(store))
}

/// A transport that remembers the first byte it read, so that a failed handshake can tell
/// a plain rwc peer (whose first byte is the rwc magic's) from other garbage.
#[derive(Debug)]
struct FirstByte<S> {
    inner: S,
    first: Option<u8>,
}

impl<S> FirstByte<S> {
    fn new(inner: S) -> Self {
        FirstByte { inner, first: None }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FirstByte<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if this.first.is_none() && buf.filled().len() > before {
            this.first = Some(buf.filled()[before]);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FirstByte<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cert_names_parse_print_and_match_their_own_kind() {
        let id = TlsIdentity {
            common_names: vec!["ops".into()],
            dns_names: vec!["ops.example.com".into()],
            uris: vec!["spiffe://example.com/ops".into()],
            emails: vec!["ops@example.com".into()],
        };
        let written = [
            "CN=ops",
            "DNS=ops.example.com",
            "URI=spiffe://example.com/ops",
            "email=ops@example.com",
        ];
        assert_eq!(id.to_string(), written.join(", "));
        for w in written {
            let name: CertName = w.parse().unwrap();
            assert_eq!(name.to_string(), w);
            assert!(id.has(&name), "{w}");
        }
        // The prefix is not case sensitive, the name is; a name of another kind is not it.
        assert!(id.has(&"cn=ops".parse().unwrap()));
        assert!(!id.has(&"CN=OPS".parse().unwrap()));
        assert!(!id.has(&"DNS=ops".parse().unwrap()));
        assert!(!id.has(&"email=ops.example.com".parse().unwrap()));
    }
}
