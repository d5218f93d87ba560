//! A real TCP server on 127.0.0.1 for the protocol tests, a relay to put between a client
//! and it, and raw peers that speak the wire protocol by hand.
#![allow(dead_code)]

pub mod raw;
pub mod relay;
pub mod tls_certs;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rwc_protocol::transport::{accept_tcp, connect_tcp};
use rwc_protocol::{Connection, ConnectionConfig, Error, NetRef, Service};
use tokio::net::TcpListener;

/// A server whose every connection serves a root made by `make_root`; keeps the
/// server-side connections so tests can look at their tables.
pub struct Server {
    pub addr: SocketAddr,
    pub connections: Arc<Mutex<Vec<Connection>>>,
}

impl Server {
    pub async fn start(make_root: impl Fn() -> NetRef + Send + Sync + 'static) -> Server {
        Self::start_with(ConnectionConfig::default(), make_root).await
    }

    pub async fn start_with(
        config: ConnectionConfig,
        make_root: impl Fn() -> NetRef + Send + Sync + 'static,
    ) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(Mutex::new(Vec::new()));
        let conns = connections.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                let root = make_root();
                let conns = conns.clone();
                let config = config.clone();
                tokio::spawn(async move {
                    if let Ok(conn) = accept_tcp(stream, root, config).await {
                        conns.lock().unwrap().push(conn);
                    }
                });
            }
        });
        Server { addr, connections }
    }

    pub async fn connect(&self) -> Connection {
        self.connect_with(Service::new("client").into_object())
            .await
    }

    pub async fn connect_with(&self, root: NetRef) -> Connection {
        self.connect_with_config(root, ConnectionConfig::default())
            .await
    }

    pub async fn connect_with_config(&self, root: NetRef, config: ConnectionConfig) -> Connection {
        connect_tcp(self.addr, root, config).await.unwrap()
    }

    /// The server side of the n-th connection, once it exists.
    pub async fn server_side(&self, n: usize) -> Connection {
        eventually(|| async { self.connections.lock().unwrap().get(n).cloned() }).await
    }
}

/// The default configuration with a frame limit of `max_frame` bytes.
pub fn max_frame(max_frame: usize) -> ConnectionConfig {
    ConnectionConfig {
        max_frame,
        ..ConnectionConfig::default()
    }
}

/// Polls `f` until it gives `Some`, for at most 10 s.
pub async fn eventually<T, F, Fut>(f: F) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A calculator service used by many tests.
pub fn calc() -> NetRef {
    Service::new("calc")
        .method("add", |(a, b): (u64, u64)| async move { Ok(a + b) })
        .method("echo", |(v,): (rwc_protocol::Value,)| async move { Ok(v) })
        .method("fail", |(): ()| async move {
            Err::<(), _>(Error::failed("it broke").with_trace("frame 0: fail\nframe 1: caller"))
        })
        .into_object()
}
