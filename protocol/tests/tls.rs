//! TLS end to end on real sockets: sessions resume, and large messages arrive exact
//! through the buffered transport under rustls.

mod common;
#[path = "common/rng.rs"]
mod rng;

use std::net::SocketAddr;

use common::tls_certs::{client_tls, connect_tls, tls_setup};
use rwc_protocol::{ConnectionConfig, Service, TlsClientConfig, Value, tls};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A TLS server whose every connection reports whether it resumed a session, and serves
/// `echo`. Returns its address, those reports, and the CA to trust.
async fn server() -> (SocketAddr, mpsc::UnboundedReceiver<bool>, Vec<u8>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (server_tls, ca_pem) = tls_setup();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (server_tls, tx) = (server_tls.clone(), tx.clone());
            tokio::spawn(async move {
                let service = || {
                    Service::new("tls-test")
                        .raw_method("echo", |_ctx, mut args: Vec<Value>| async move {
                            Ok(args.pop().unwrap_or(Value::Unit))
                        })
                        .into_object()
                };
                let conn = tls::accept(
                    stream,
                    &server_tls,
                    None,
                    ConnectionConfig::default(),
                    |_| service(),
                )
                .await
                .expect("the TLS accept");
                let _ = tx.send(conn.peer_info().tls_resumed);
                conn.closed().await;
            });
        }
    });
    (addr, rx, ca_pem)
}

/// Connects to `addr` with `config`, waits for the session tickets (they come after the
/// handshake: one call makes sure they have arrived), closes, and returns whether the
/// server saw the connection resume a session.
async fn visit(
    addr: SocketAddr,
    config: &TlsClientConfig,
    resumed: &mut mpsc::UnboundedReceiver<bool>,
) -> bool {
    let conn = connect_tls(addr, config).await;
    let _: Value = conn.root().call("echo", (1u8,)).await.expect("echo");
    conn.close();
    resumed.recv().await.expect("a report")
}

#[tokio::test]
async fn a_second_connection_with_the_same_config_resumes_its_session() {
    let (addr, mut resumed, ca_pem) = server().await;
    let config = client_tls(&ca_pem);
    assert!(!visit(addr, &config, &mut resumed).await, "first: full");
    assert!(
        visit(addr, &config, &mut resumed).await,
        "second, same config: resumed"
    );
    assert!(
        !visit(addr, &client_tls(&ca_pem), &mut resumed).await,
        "a fresh config has no session to resume"
    );
}

/// Clients enough to overflow a server-side session cache have come and gone (rustls's
/// holds 256 sessions, and each client is sent two tickets): a client that connected
/// before them still resumes, since its ticket carries the session itself.
#[tokio::test]
async fn a_session_resumes_after_more_clients_than_a_session_cache_holds() {
    const OTHERS: usize = 150;
    let (addr, mut resumed, ca_pem) = server().await;
    let config = client_tls(&ca_pem);
    assert!(!visit(addr, &config, &mut resumed).await, "first: full");
    for i in 0..OTHERS {
        let fresh = client_tls(&ca_pem);
        assert!(!visit(addr, &fresh, &mut resumed).await, "client {i}: full");
    }
    assert!(
        visit(addr, &config, &mut resumed).await,
        "the first client resumes after {OTHERS} others"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_mib_of_random_bytes_cross_tls_exactly_both_ways() {
    let (addr, _resumed, ca_pem) = server().await;
    let conn = connect_tls(addr, &client_tls(&ca_pem)).await;
    let mut rng = rng::XorShift(7);
    let data: Vec<u8> = (0..16 << 20).map(|_| rng.byte()).collect();
    let back = conn
        .root()
        .call_value("echo", vec![Value::Bytes(data.clone().into())])
        .await
        .expect("echo");
    match back {
        Value::Bytes(b) => assert!(b[..] == data[..], "the echo differs from what was sent"),
        other => panic!("expected bytes, got {other:?}"),
    }
}
