//! The root service: the object a connection's `root()` is.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rwc_api::capability::{EXEC, EXEC_PREFIX, FS_PREFIX};
use rwc_api::principal::grant;
use rwc_api::root::{
    self, Capability, Instantiate, ModuleByHash, Run, RunProgram, Upload, UploadStream,
};
use rwc_api::{InstanceOptions, ObjectRef, Request};
use rwc_protocol::object::{Call, Dispatch, MethodTable};
use rwc_protocol::{Connection, Error, ErrorKind, NetRef, Value, to_value};

use super::UploadBudget;
use super::module::{ModuleObject, compile};
use crate::Node;
use crate::capabilities;
use crate::instance::{InstanceObject, instantiate};
use crate::principal::Principal;
use crate::sandbox::LoadedModule;

/// One connection's view of the node: what its principal may do and see.
#[derive(Debug)]
pub struct RootService {
    node: Node,
    principal: Arc<Principal>,
    /// Names this connection in the compile queue, whose turns are fair across them.
    client: u64,
    /// Live instances created through this connection (capped per connection).
    instances: Arc<AtomicUsize>,
    /// Bytes this connection's uploads hold (capped per connection).
    uploads: Arc<UploadBudget>,
}

/// The root of a connection whose principal the node does not know: it refuses every
/// call (a node with `[[principals]]` served without its authenticator).
#[derive(Debug)]
pub struct RefusingRoot {
    principal: Option<String>,
}

const METHODS: MethodTable = MethodTable(root::METHODS);

impl RootService {
    pub(crate) fn new(node: Node, principal: Arc<Principal>) -> Self {
        let inner = &node.inner;
        let client = inner.next_client.fetch_add(1, Ordering::Relaxed);
        let uploads = UploadBudget::new(
            inner.config.limits.max_upload_bytes_in_flight,
            inner.upload_bytes.clone(),
        );
        RootService {
            node,
            principal,
            client,
            instances: Arc::new(AtomicUsize::new(0)),
            uploads,
        }
    }

    pub(crate) fn refusing(principal: Option<&str>) -> RefusingRoot {
        RefusingRoot {
            principal: principal.map(str::to_owned),
        }
    }

    /// The module named `req.hash`, if this principal may see it (one it uploaded): from
    /// memory at once, else from the disk cache on the blocking pool.
    async fn module(&self, req: ModuleByHash) -> Result<Value, Error> {
        let hash = req.hash.to_ascii_lowercase();
        if !self.principal.sees_module(&hash) {
            return Ok(Value::Unit);
        }
        let found = self.node.find_module(&hash).await?;
        Ok(found.map_or(Value::Unit, |m| NetRef::new(ModuleObject::new(m)).into()))
    }

    /// Uploads a whole module in one request; its bytes count as upload bytes in flight
    /// while it compiles.
    async fn upload(&self, req: Upload) -> Result<Value, Error> {
        let bytes = req.bytes.into_vec();
        let _held = self
            .uploads
            .reserve(u64::try_from(bytes.len()).unwrap_or(u64::MAX))?;
        compile(&self.node, &self.principal, self.client, bytes).await
    }

    /// What `info()` answers this connection: the node's, with its principal and its own
    /// usage.
    fn info(&self, connection: Option<&Connection>) -> Result<Value, Error> {
        let mut info = self.node.info_for(&self.principal);
        let mine = &mut info.usage.this_connection;
        if let Some(conn) = connection {
            let stats = conn.stats();
            mine.calls_in_flight = stats.answers;
            mine.request_bytes_in_flight =
                u64::try_from(stats.request_bytes_in_flight).unwrap_or(u64::MAX);
            // The root is always exported while the connection is open.
            mine.netrefs = stats.exports.saturating_sub(1);
        }
        mine.upload_bytes_in_flight = self.uploads.used();
        mine.instances = self.instances.load(Ordering::SeqCst);
        to_value(&info)
    }

    async fn instantiate(&self, req: Instantiate) -> Result<InstanceObject, Error> {
        self.instance_of(req.module, req.options).await
    }

    /// An instance of the module netref `module`, for this connection's principal.
    async fn instance_of(
        &self,
        module: ObjectRef,
        options: InstanceOptions,
    ) -> Result<InstanceObject, Error> {
        let module = module_arg(module)?;
        instantiate(
            &self.node,
            &module,
            options,
            &self.instances,
            &self.principal,
            self.client,
        )
        .await
    }

    async fn run(&self, req: Run) -> Result<Value, Error> {
        let instance = self.instance_of(req.module, req.options).await?;
        let result = instance.invoke(&req.export, req.args, None).await;
        // Nothing else can queue jobs for this instance: closing cannot be refused, and
        // dropping it frees it anyway.
        let _ = instance.close().await;
        result
    }

    async fn run_program(&self, req: RunProgram) -> Result<Value, Error> {
        let instance = self.instance_of(req.module, req.options).await?;
        let result = instance.run_program(None).await;
        // As in `run`: closing cannot be refused here, and dropping frees it anyway.
        let _ = instance.close().await;
        result
    }

    fn capability(&self, req: Capability) -> Result<Value, Error> {
        let name = req.name;
        if name.starts_with(FS_PREFIX) {
            return Err(Error::bad_argument(format!(
                "`{name}` is a directory: it reaches a guest as a WASI preopen; ask for it in \
                 the instance options' capabilities (`--capability {name}`)"
            )));
        }
        let mut resolved = capabilities::resolve(
            &self.node,
            std::slice::from_ref(&name),
            &self.principal,
            None,
        )?;
        // `exec:NAME` is an `exec` object that runs that one command.
        let key = if name.starts_with(EXEC_PREFIX) {
            EXEC
        } else {
            name.as_str()
        };
        Ok(resolved
            .objects
            .remove(key)
            .map_or(Value::Unit, Value::from))
    }
}

/// The module argument: a module netref this node handed out.
fn module_arg(module: ObjectRef) -> Result<Arc<LoadedModule>, Error> {
    module
        .netref()
        .and_then(|r| r.downcast_local::<ModuleObject>())
        .map(|m| m.module().clone())
        .ok_or_else(|| {
            Error::bad_argument(
                "the module argument must be a module netref from this node (from upload or module)",
            )
        })
}

impl Dispatch for RootService {
    const TYPE_NAME: &'static str = "node";
    const METHODS: MethodTable = METHODS;
    const RUNS_LONG: bool = true;

    async fn dispatch<'a>(&'a self, call: Call<'a>) -> Result<Value, Error> {
        let args = call.args;
        let p = &self.principal;
        match call.method {
            Upload::METHOD => {
                p.check(grant::UPLOAD)?;
                self.upload(Upload::from_args(args)?).await
            }
            UploadStream::METHOD => {
                p.check(grant::UPLOAD)?;
                let req = UploadStream::from_args(args)?;
                super::upload::upload_stream(&self.node, p, self.client, &self.uploads, req)
            }
            ModuleByHash::METHOD => self.module(ModuleByHash::from_args(args)?).await,
            Instantiate::METHOD => {
                p.check(grant::INSTANTIATE)?;
                let instance = self.instantiate(Instantiate::from_args(args)?).await?;
                Ok(NetRef::new(instance).into())
            }
            Run::METHOD => {
                p.check(grant::RUN)?;
                self.run(Run::from_args(args)?).await
            }
            RunProgram::METHOD => {
                p.check(grant::RUN)?;
                self.run_program(RunProgram::from_args(args)?).await
            }
            root::Info::METHOD => {
                p.check(grant::INFO)?;
                self.info(call.ctx.connection())
            }
            Capability::METHOD => self.capability(Capability::from_args(args)?),
            other => Err(Self::unknown(other)),
        }
    }
}

impl Dispatch for RefusingRoot {
    const TYPE_NAME: &'static str = "node";
    const METHODS: MethodTable = METHODS;

    async fn dispatch<'a>(&'a self, call: Call<'a>) -> Result<Value, Error> {
        Err(Error::new(
            ErrorKind::Denied,
            format!(
                "`{}` refused: this connection has no principal the node knows ({})",
                call.method,
                self.principal.as_deref().unwrap_or("none")
            ),
        ))
    }
}
