//! The root service: the object a connection's `root()` is.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use rwc_api::capability::{EXEC, EXEC_PREFIX, FS_PREFIX};
use rwc_api::principal::grant;
use rwc_api::root::{
    self, Capability, Instantiate, ModuleByHash, Run, RunProgram, Upload, UploadStream,
};
use rwc_api::{InstanceOptions, ObjectRef, Request};
use rwc_protocol::object::{Call, Dispatch, MethodTable};
use rwc_protocol::{Error, ErrorKind, NetRef, Value, to_value};

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
    /// Live instances created through this connection (capped per connection).
    instances: Arc<AtomicUsize>,
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
        RootService {
            node,
            principal,
            instances: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub(crate) fn refusing(principal: Option<&str>) -> RefusingRoot {
        RefusingRoot {
            principal: principal.map(str::to_owned),
        }
    }

    /// The module `hash`, if this principal may see it (one it uploaded).
    fn module(&self, req: ModuleByHash) -> Value {
        let hash = req.hash.to_ascii_lowercase();
        if !self.principal.sees_module(&hash) {
            return Value::Unit;
        }
        match self.node.inner.sandbox.module(&hash) {
            Some(m) => NetRef::new(ModuleObject::new(m)).into(),
            None => Value::Unit,
        }
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
        )
        .await
    }

    async fn run(&self, req: Run) -> Result<Value, Error> {
        let instance = self.instance_of(req.module, req.options).await?;
        let result = instance.invoke(&req.export, req.args, None).await;
        instance.close().await;
        result
    }

    async fn run_program(&self, req: RunProgram) -> Result<Value, Error> {
        let instance = self.instance_of(req.module, req.options).await?;
        let result = instance.run_program(None).await;
        instance.close().await;
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
                let bytes = Upload::from_args(args)?.bytes.into_vec();
                compile(&self.node, p, bytes).await
            }
            UploadStream::METHOD => {
                p.check(grant::UPLOAD)?;
                super::upload::upload_stream(&self.node, p, UploadStream::from_args(args)?)
            }
            ModuleByHash::METHOD => Ok(self.module(ModuleByHash::from_args(args)?)),
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
                to_value(&self.node.info_for(p))
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
