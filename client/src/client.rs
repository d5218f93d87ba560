//! A connection to one node, with typed helpers.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rwc_api::capability::{self, exec::ExecOutput};
use rwc_api::module::ExportDescription;
use rwc_api::{InstanceOptions, NodeInfo, Request, instance, root, upload};
use rwc_protocol::transport::{connect_child, connect_unix};
use rwc_protocol::{
    Address, CallOptions, ConnectOptions, Connection, ConnectionConfig, Error, ErrorKind, NetRef,
    PendingCall, Service, Value,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};
use tokio::process::{Child, Command};

/// A connection to a node.
///
/// # Cancel safety
/// Every async method is cancel safe in the protocol's sense: dropping its future cancels
/// the call on the node, and nothing is left half-done on this side.
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

/// Size of the chunks [`Client::upload_with_progress`] sends.
pub const UPLOAD_CHUNK: usize = 1 << 20;

/// The hash a node names these bytes by: lowercase hex SHA-256.
pub fn module_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Calls `target` with a request of the node's contract ([`rwc_api`]) and converts the
/// reply: `request(instance.netref(), &rwc_api::instance::Fuel {})`.
///
/// # Cancel safety
/// Dropping the future cancels the call on the peer.
pub async fn request<R: Request>(target: &NetRef, req: &R) -> Result<R::Reply, Error> {
    R::reply(target.call_value(R::METHOD, req.to_args()?).await?)
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
    /// Connects to `addr` ([`Address`]: `HOST:PORT`, `unix:/path`, `tls://HOST:PORT`,
    /// `tls+unix:/path`) with no token, trusting the system's CAs for TLS.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the attempt.
    pub async fn connect(addr: &str) -> Result<Client, Error> {
        Client::connect_with(addr, &ConnectOptions::default()).await
    }

    /// Connects to `addr` with `options`: the TLS settings for a `tls://` node (CA, client
    /// certificate), the token to present and the options of `ssh` for an `ssh://` node.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), rwc_client::Error> {
    /// use std::path::Path;
    /// use rwc_client::{Client, ConnectOptions, TlsClientConfig, Token};
    ///
    /// let tls = TlsClientConfig::from_pem_files(Some(Path::new("certs/ca.pem")), None)?;
    /// let token = Token::from_file(Path::new("ops.token"))?;
    /// let options = ConnectOptions::new().with_tls(tls).with_token(token);
    /// let client = Client::connect_with("tls://node1.example.com:18870", &options).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    /// Dropping the future abandons the attempt.
    pub async fn connect_with(addr: &str, options: &ConnectOptions) -> Result<Client, Error> {
        if crate::ssh::is_ssh(addr) {
            return Client::connect_ssh(&addr.parse()?, options).await;
        }
        let address: Address = addr.parse()?;
        let conn = address
            .connect(options, client_root(), config())
            .await
            .map_err(|e| e.in_context(format_args!("cannot reach node at {addr}")))?;
        Ok(Client::from_connection(conn, None))
    }

    /// Connects over a Unix socket.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the attempt.
    pub async fn connect_unix(path: impl AsRef<Path>) -> Result<Client, Error> {
        let conn = connect_unix(path, client_root(), config()).await?;
        Ok(Client::from_connection(conn, None))
    }

    /// Connects to a node over SSH: runs `ssh … HOST rwc-node --stdio` (or the copy
    /// [`ssh::deploy`](crate::ssh::deploy) put there) with `options.ssh` (`"-i KEY"`,
    /// `"-o UserKnownHostsFile=FILE"`) and talks over its pipes, presenting
    /// `options.token`. The remote node lives as long as the connection.
    ///
    /// # Cancel safety
    /// Dropping the future kills `ssh`, which ends the remote node.
    pub async fn connect_ssh(
        addr: &crate::ssh::SshAddress,
        options: &ConnectOptions,
    ) -> Result<Client, Error> {
        let mut config = config();
        if let Some(token) = &options.token {
            config.credentials = Some(token.as_bytes().to_vec());
        }
        let command = addr.node_command(&options.ssh);
        let (conn, child) = connect_child(command, client_root(), config)
            .await
            .map_err(|e| {
                Error::new(
                    e.kind(),
                    format!(
                        "cannot reach node at {addr}: {} (ssh's own message is above)",
                        e.message()
                    ),
                )
            })?;
        Ok(Client::from_connection(conn, Some(child)))
    }

    /// Starts `command` (e.g. `rwc-node --stdio`, or `ssh host rwc-node --stdio`) and talks
    /// over its stdin/stdout. The process is killed when the client drops.
    ///
    /// # Cancel safety
    /// Dropping the future kills the process.
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

    /// The node's info: version, counters, limits.
    ///
    /// # Cancel safety
    /// Dropping the future cancels the request.
    pub async fn info(&self) -> Result<NodeInfo, Error> {
        request(&self.root, &root::Info {}).await
    }

    /// Round-trip time of a ping.
    ///
    /// # Cancel safety
    /// Dropping the future forgets the ping.
    pub async fn ping(&self) -> Result<Duration, Error> {
        self.conn.ping().await
    }

    /// A host capability the node grants this client (`sys`, `log`), or `None` if it
    /// does not.
    ///
    /// # Cancel safety
    /// Dropping the future cancels the request.
    pub async fn capability(&self, name: &str) -> Result<Option<NetRef>, Error> {
        let name = name.to_owned();
        request(&self.root, &root::Capability { name })
            .await?
            .map(|c| c.into_netref("the capability"))
            .transpose()
    }

    /// Makes sure the node has `bytes` as a module: asks by hash first and uploads only if
    /// the node does not have it, in one request (for small modules; see
    /// [`upload_with_progress`](Client::upload_with_progress) for big ones).
    ///
    /// # Cancel safety
    /// Dropping the future cancels the upload; the node keeps nothing of it.
    pub async fn upload(&self, bytes: &[u8]) -> Result<Module, Error> {
        let hash = module_hash(bytes);
        if let Some(m) = self.module(&hash).await? {
            return Ok(m);
        }
        let bytes = ByteBuf::from(bytes);
        let netref = request(&self.root, &root::Upload { bytes })
            .await?
            .into_netref("the uploaded module")?;
        Ok(Module { netref, hash })
    }

    /// Like [`upload`](Client::upload), in chunks of [`UPLOAD_CHUNK`] bytes, calling
    /// `progress(sent, total)` after each one the node has taken (and once with
    /// `sent == total` if the node already has the module). A node refuses a module over
    /// its size limit before any byte is sent.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the upload: the node frees the chunks it holds.
    pub async fn upload_with_progress(
        &self,
        bytes: &[u8],
        mut progress: impl FnMut(u64, u64),
    ) -> Result<Module, Error> {
        let hash = module_hash(bytes);
        let total = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if let Some(m) = self.module(&hash).await? {
            progress(total, total);
            return Ok(m);
        }
        let uploader = match request(&self.root, &root::UploadStream { total_len: total }).await {
            Ok(u) => u.into_netref("the uploader")?,
            // A node without chunked uploads still takes the whole module at once.
            Err(e) if e.kind() == ErrorKind::Unimplemented => {
                progress(0, total);
                let m = self.upload(bytes).await?;
                progress(total, total);
                return Ok(m);
            }
            Err(e) => return Err(e),
        };
        progress(0, total);
        let mut sent = 0u64;
        for chunk in bytes.chunks(UPLOAD_CHUNK) {
            sent += u64::try_from(chunk.len()).unwrap_or(u64::MAX);
            let chunk = ByteBuf::from(chunk);
            request(&uploader, &upload::Write { chunk }).await?;
            progress(sent, total);
        }
        let netref = request(&uploader, &upload::Finish {})
            .await?
            .into_netref("the uploaded module")?;
        Ok(Module { netref, hash })
    }

    /// The module with this hash, if the node has it.
    ///
    /// # Cancel safety
    /// Dropping the future cancels the request.
    pub async fn module(&self, hash: &str) -> Result<Option<Module>, Error> {
        let hash = hash.to_owned();
        let found = request(&self.root, &root::ModuleByHash { hash: hash.clone() }).await?;
        found
            .map(|m| {
                let netref = m.into_netref("the module")?;
                Ok(Module { netref, hash })
            })
            .transpose()
    }

    /// A new instance of `module`.
    ///
    /// # Cancel safety
    /// Dropping the future cancels the request; an instance the node made anyway is freed
    /// when its netref arrives and is dropped.
    pub async fn instantiate(
        &self,
        module: &Module,
        options: InstanceOptions,
    ) -> Result<Instance, Error> {
        let req = root::Instantiate {
            module: module.netref.clone().into(),
            options,
        };
        let netref = request(&self.root, &req)
            .await?
            .into_netref("the instance")?;
        Ok(Instance { netref })
    }

    /// Instantiates, calls `export`, drops the instance: one request.
    ///
    /// # Cancel safety
    /// Dropping the future cancels the call; the node stops the guest at its next yield
    /// point and frees the instance.
    pub async fn run(
        &self,
        module: &Module,
        export: &str,
        args: Vec<Value>,
        options: InstanceOptions,
    ) -> Result<Value, Error> {
        let req = root::Run {
            module: module.netref.clone().into(),
            export: export.to_owned(),
            args,
            options,
        };
        request(&self.root, &req).await
    }

    /// Runs `module` as a WASI command program (its `_start`) in a fresh instance, as
    /// `wasmtime run` does, and returns its exit status: 0 if `_start` returned, N if it
    /// called `proc_exit(N)`. Its stdout and stderr go to `options.output` as written; a
    /// trap is an error.
    ///
    /// # Cancel safety
    /// Dropping the future cancels the run; the node stops the guest at its next yield
    /// point and frees the instance.
    pub async fn run_program(
        &self,
        module: &Module,
        options: InstanceOptions,
    ) -> Result<i32, Error> {
        let req = root::RunProgram {
            module: module.netref.clone().into(),
            options,
        };
        Ok(request(&self.root, &req).await?.status)
    }

    /// Runs the allow-listed command `name` of the node's config with these placeholder
    /// values (`exec.run`), as this client's principal: its exit status, output and
    /// whether it timed out. A command or value the node's allow-list does not grant is a
    /// `denied` error saying what was refused.
    ///
    /// # Cancel safety
    /// Dropping the future cancels the call; the node kills the command's process group.
    pub async fn exec(
        &self,
        name: &str,
        params: BTreeMap<String, String>,
    ) -> Result<ExecOutput, Error> {
        let exec = self.capability(capability::EXEC).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::Denied,
                "the node grants this client no `exec` capability",
            )
        })?;
        let req = capability::exec::Run {
            name: name.to_owned(),
            params,
        };
        request(&exec, &req).await
    }

    /// Closes the connection; the node frees this client's instances.
    pub fn close(&self) {
        self.conn.close();
    }
}

impl Module {
    /// The module's hash: lowercase hex SHA-256 of its bytes.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The module's netref (hash, size, exports, imports, info).
    pub fn netref(&self) -> &NetRef {
        &self.netref
    }

    /// Callable exports: name, ABI (`rich` or `numeric`) and signature.
    ///
    /// # Cancel safety
    /// Dropping the future cancels the request.
    pub async fn exports(&self) -> Result<Vec<ExportDescription>, Error> {
        request(&self.netref, &rwc_api::module::Exports {}).await
    }
}

impl Instance {
    /// The instance behind a netref a node handed out (from `instantiate`, or returned by
    /// a guest).
    pub fn from_netref(netref: NetRef) -> Instance {
        Instance { netref }
    }

    /// Calls `export` with `args` (a tuple), converting the result.
    ///
    /// # Cancel safety
    /// Dropping the future cancels the call: the guest stops at its next yield point.
    pub async fn call<R: DeserializeOwned>(
        &self,
        export: &str,
        args: impl Serialize,
    ) -> Result<R, Error> {
        self.netref.call(export, args).await
    }

    /// Calls `export` with positional values.
    ///
    /// # Cancel safety
    /// Dropping the future cancels the call.
    pub async fn call_value(&self, export: &str, args: Vec<Value>) -> Result<Value, Error> {
        self.netref.call_value(export, args).await
    }

    /// Starts a call and returns at once: the [`PendingCall`] can be polled, awaited with a
    /// timeout, or given a callback. Several calls may be queued on one instance; it runs
    /// them one at a time, in order.
    pub fn call_async(&self, export: &str, args: Vec<Value>) -> PendingCall {
        self.netref.call_with(export, args, CallOptions::default())
    }

    /// The instance's netref, to pass to other calls.
    pub fn netref(&self) -> &NetRef {
        &self.netref
    }

    /// Callable exports.
    ///
    /// # Cancel safety
    /// Dropping the future cancels the request.
    pub async fn exports(&self) -> Result<Vec<ExportDescription>, Error> {
        request(&self.netref, &instance::Exports {}).await
    }

    /// Bytes of the guest's linear memory.
    ///
    /// # Cancel safety
    /// Dropping the future cancels the request.
    pub async fn read_memory(&self, offset: u64, len: u64) -> Result<Vec<u8>, Error> {
        let bytes = request(&self.netref, &instance::ReadMemory { offset, len }).await?;
        Ok(bytes.into_vec())
    }

    /// Writes into the guest's linear memory.
    ///
    /// # Cancel safety
    /// Dropping the future cancels the request; the write may or may not have happened.
    pub async fn write_memory(&self, offset: u64, bytes: &[u8]) -> Result<(), Error> {
        let bytes = ByteBuf::from(bytes);
        request(&self.netref, &instance::WriteMemory { offset, bytes }).await
    }

    /// Frees the instance on the node now (later calls fail).
    ///
    /// # Cancel safety
    /// Dropping the future abandons the request; the instance is still freed when the
    /// last handle to it drops.
    pub async fn close(&self) -> Result<(), Error> {
        match request(&self.netref, &instance::Close {}).await {
            Err(e) if e.kind() == ErrorKind::Disconnected => Ok(()),
            other => other,
        }
    }
}
