//! A CA made for the run and a `localhost` certificate it signed: the TLS settings of a
//! test or bench server, the CA (PEM) its clients trust, and a client's connect.

use std::net::SocketAddr;

use rwc_protocol::{Connection, ConnectionConfig, Service, TlsClientConfig, TlsServerConfig, tls};
use tokio::net::TcpStream;

/// The server's TLS settings and the CA's certificate (PEM).
pub fn tls_setup() -> (TlsServerConfig, Vec<u8>) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("a CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let ca_cert = ca.self_signed(&ca_key).expect("the CA certificate");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("a key");
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("the server certificate");
    let server =
        TlsServerConfig::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes(), None)
            .expect("TLS server settings");
    (server, ca_cert.pem().into_bytes())
}

/// Client settings trusting `ca_pem` only, without a client certificate.
pub fn client_tls(ca_pem: &[u8]) -> TlsClientConfig {
    TlsClientConfig::from_pem(Some(ca_pem), None).expect("TLS client settings")
}

/// Opens an rwc connection over TLS to the `localhost` server at `addr` with `tls`.
pub async fn connect_tls(addr: SocketAddr, tls: &TlsClientConfig) -> Connection {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    tls::connect(
        stream,
        tls,
        "localhost",
        Service::new("tls-client").into_object(),
        ConnectionConfig::default(),
    )
    .await
    .expect("cannot connect to the TLS server")
}
