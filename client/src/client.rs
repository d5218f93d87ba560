//! A connection to one node, with typed helpers.

use std::path::Path;
use std::time::Duration;

use rwc_protocol::transport::{connect_child, connect_tcp, connect_unix};
use rwc_protocol::{
    Connection, ConnectionConfig, Error, ErrorKind, NetRef, Service, Value, from_value,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};
use tokio::process::{Child, Command};

use crate::options::InstanceOptions;

/// A connection to a node.
///
/// Every async method is cancel safe in the protocol's sense: dropping its future cancels
/// the call on the node.
#[derive(Debug)]
pub struct Client {
    conn: Connection,
    root: NetRef,
    _child: Option<Child>,
}

/// A module the node holds, named by the SHA-256 of its bytes.
#[derive(Debug, Clone)]
pub struct Module {
    netref: NetRef,
    hash: String,
}

/// A live instance on a node; dropping every handle to it frees it there.
#[derive(Debug, Clone)]
pub struct Instance {
    netref: NetRef,
}

/// The id a node gives these bytes: lowercase hex SHA-256.
pub fn module_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn config() -> ConnectionConfig {
    ConnectionConfig {
        agent: format!("rwc-client {}", env!("CARGO_PKG_VERSION")),
        ..ConnectionConfig::default()
    }
}

/// Callbacks the node may call on this client are exported through its root; the root
/// itself offers nothing.
fn client_root() -> NetRef {
    Service::new("rwc-client").into_object()
}

impl Client {
    /// Connects to `addr`: `HOST:PORT`, or `unix:/path/to/socket`.
    pub async fn connect(addr: &str) -> Result<Client, Error> {
        let conn = match addr.strip_prefix("unix:") {
            Some(path) => connect_unix(path, client_root(), config()).await,
            None => connect_tcp(addr, client_root(), config()).await,
        }
        .map_err(|e| {
            Error::new(
                e.kind(),
                format!("cannot reach node at {addr}: {}", e.message()),
            )
        })?;
        Ok(Client::from_connection(conn, None))
    }

    /// Connects over a Unix socket.
    pub async fn connect_unix(path: impl AsRef<Path>) -> Result<Client, Error> {
        let conn = connect_unix(path, client_root(), config()).await?;
        Ok(Client::from_connection(conn, None))
    }

    /// Starts `command` (e.g. `rwc-node --stdio`, or `ssh host rwc-node --stdio`) and talks
    /// over its stdin/stdout. The process is killed when the client drops.
    pub async fn connect_stdio(command: Command) -> Result<Client, Error> {
        let (conn, child) = connect_child(command, client_root(), config()).await?;
        Ok(Client::from_connection(conn, Some(child)))
    }

    fn from_connection(conn: Connection, child: Option<Child>) -> Client {
        let root = conn.root();
        Client {
            conn,
            root,
            _child: child,
        }
    }

    /// The node's root service.
    pub fn root(&self) -> &NetRef {
        &self.root
    }

    /// The underlying connection.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The node's info (version, limits, caches, live instances, uptime), as a value.
    pub async fn info(&self) -> Result<Value, Error> {
        self.root.call_value("info", vec![]).await
    }

    /// Round-trip time of a ping.
    pub async fn ping(&self) -> Result<Duration, Error> {
        self.conn.ping().await
    }

    /// Makes sure the node has `bytes` as a module: asks by hash first and uploads only if
    /// the node does not have it.
    pub async fn upload(&self, bytes: &[u8]) -> Result<Module, Error> {
        let hash = module_hash(bytes);
        if let Some(m) = self.module(&hash).await? {
            return Ok(m);
        }
        let netref: NetRef = self.root.call("upload", (ByteBuf::from(bytes),)).await?;
        Ok(Module { netref, hash })
    }

    /// The module with this hash, if the node has it.
    pub async fn module(&self, hash: &str) -> Result<Option<Module>, Error> {
        let found: Option<NetRef> = self.root.call("module", (hash,)).await?;
        Ok(found.map(|netref| Module {
            netref,
            hash: hash.to_owned(),
        }))
    }

    /// A new instance of `module`.
    pub async fn instantiate(
        &self,
        module: &Module,
        options: InstanceOptions,
    ) -> Result<Instance, Error> {
        let netref: NetRef = self
            .root
            .call_value(
                "instantiate",
                vec![module.netref.clone().into(), options.to_value()],
            )
            .await
            .and_then(from_value)?;
        Ok(Instance { netref })
    }

    /// Instantiates, calls `export`, drops the instance: one request.
    pub async fn run(
        &self,
        module: &Module,
        export: &str,
        args: Vec<Value>,
        options: InstanceOptions,
    ) -> Result<Value, Error> {
        self.root
            .call_value(
                "run",
                vec![
                    module.netref.clone().into(),
                    Value::from(export),
                    Value::List(args),
                    options.to_value(),
                ],
            )
            .await
    }

    /// Closes the connection; the node frees this client's instances.
    pub fn close(&self) {
        self.conn.close();
    }
}

impl Module {
    /// The module's id.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The module's netref (hash, size, exports, imports, info).
    pub fn netref(&self) -> &NetRef {
        &self.netref
    }

    /// Callable exports: name, ABI (`rich` or `numeric`) and signature.
    pub async fn exports(&self) -> Result<Value, Error> {
        self.netref.call_value("exports", vec![]).await
    }
}

impl Instance {
    /// Calls `export` with `args` (a tuple), converting the result.
    pub async fn call<R: DeserializeOwned>(
        &self,
        export: &str,
        args: impl Serialize,
    ) -> Result<R, Error> {
        self.netref.call(export, args).await
    }

    /// Calls `export` with positional values.
    pub async fn call_value(&self, export: &str, args: Vec<Value>) -> Result<Value, Error> {
        self.netref.call_value(export, args).await
    }

    /// The instance's netref, to pass to other calls.
    pub fn netref(&self) -> &NetRef {
        &self.netref
    }

    /// Callable exports.
    pub async fn exports(&self) -> Result<Value, Error> {
        self.netref.call_value("rwc.exports", vec![]).await
    }

    /// Bytes of the guest's linear memory.
    pub async fn read_memory(&self, offset: u64, len: u64) -> Result<Vec<u8>, Error> {
        let b: ByteBuf = self.netref.call("rwc.read_memory", (offset, len)).await?;
        Ok(b.into_vec())
    }

    /// Writes into the guest's linear memory.
    pub async fn write_memory(&self, offset: u64, bytes: &[u8]) -> Result<(), Error> {
        self.netref
            .call("rwc.write_memory", (offset, ByteBuf::from(bytes)))
            .await
    }

    /// Frees the instance on the node now.
    pub async fn close(&self) -> Result<(), Error> {
        match self.netref.call::<()>("rwc.close", ()).await {
            Err(e) if e.kind() == ErrorKind::Disconnected => Ok(()),
            other => other,
        }
    }
}
