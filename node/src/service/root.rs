//! The root service: the object a connection's `root()` is.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use rwc_protocol::object::{Call, Dispatch, MethodTable, decode_args};
use rwc_protocol::{Error, NetRef, Value, to_value};
use serde_bytes::ByteBuf;

use super::module::ModuleObject;
use super::options::Options;
use crate::Node;
use crate::capabilities;
use crate::error::to_error;
use crate::instance::{InstanceObject, instantiate};

/// One connection's view of the node.
#[derive(Debug)]
pub struct RootService {
    node: Node,
    principal: Option<String>,
    /// Live instances created through this connection (capped per connection).
    instances: Arc<AtomicUsize>,
}

const METHODS: MethodTable = MethodTable(&[
    (
        "upload",
        "(bytes) upload a Wasm binary or WAT text; returns the module",
    ),
    (
        "upload_stream",
        "(total_len) an uploader: write(bytes) chunks, then finish() returns the module",
    ),
    (
        "module",
        "(hash) the module with this SHA-256 if the node has it, else unit",
    ),
    (
        "instantiate",
        "(module, options?) a new instance of the module",
    ),
    (
        "run",
        "(module, export, args, options?) instantiate, call, drop: one request",
    ),
    ("info", "() version, limits, caches, live instances, uptime"),
    (
        "capability",
        "(name) a host capability granted to this client",
    ),
]);

impl RootService {
    pub(crate) fn new(node: Node, principal: Option<String>) -> Self {
        RootService {
            node,
            principal,
            instances: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn label(&self) -> String {
        self.principal
            .clone()
            .unwrap_or_else(|| "anonymous".to_owned())
    }

    async fn upload(&self, args: Vec<Value>) -> Result<Value, Error> {
        let (bytes,): (ByteBuf,) = decode_args("upload", args)?;
        self.node
            .inner
            .uploads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sandbox = self.node.inner.sandbox.clone();
        // Compiling is CPU-bound: keep it off the threads that serve connections.
        let module = tokio::task::spawn_blocking(move || sandbox.load(&bytes))
            .await
            .map_err(|e| Error::failed(format!("compile task failed: {e}")))?
            .map_err(to_error)?;
        Ok(NetRef::new(ModuleObject::new(module)).into())
    }

    fn module(&self, args: Vec<Value>) -> Result<Value, Error> {
        let (hash,): (String,) = decode_args("module", args)?;
        Ok(
            match self.node.inner.sandbox.module(&hash.to_ascii_lowercase()) {
                Some(m) => NetRef::new(ModuleObject::new(m)).into(),
                None => Value::Unit,
            },
        )
    }

    async fn instantiate(&self, args: Vec<Value>) -> Result<InstanceObject, Error> {
        let mut args = args.into_iter();
        let module = module_arg(args.next())?;
        let options = Options::from_value(args.next().unwrap_or(Value::Unit))?;
        instantiate(&self.node, &module, options, &self.instances, &self.label()).await
    }

    async fn run(&self, args: Vec<Value>) -> Result<Value, Error> {
        let mut it = args.into_iter();
        let (module, export, call_args, options) = (it.next(), it.next(), it.next(), it.next());
        let module = module_arg(module)?;
        let Some(Value::String(export)) = export else {
            return Err(Error::bad_argument(
                "run takes (module, export name, [args], options?)",
            ));
        };
        let call_args = match call_args {
            Some(Value::List(a)) => a,
            None | Some(Value::Unit) => Vec::new(),
            Some(other) => vec![other],
        };
        let options = Options::from_value(options.unwrap_or(Value::Unit))?;
        let instance =
            instantiate(&self.node, &module, options, &self.instances, &self.label()).await?;
        let result = instance.invoke(&export, call_args, None).await;
        instance.close().await;
        result
    }

    fn capability(&self, args: Vec<Value>) -> Result<Value, Error> {
        let (name,): (String,) = decode_args("capability", args)?;
        let grants = &self.node.inner.config.grants;
        Ok(
            capabilities::resolve(std::slice::from_ref(&name), grants, &self.label(), None)?
                .remove(&name)
                .map_or(Value::Unit, Value::from),
        )
    }
}

/// The module argument: a module netref this node handed out.
fn module_arg(v: Option<Value>) -> Result<Arc<crate::sandbox::LoadedModule>, Error> {
    match v {
        Some(Value::Ref(rwc_protocol::Ref::Object(r))) => r.downcast_local::<ModuleObject>().map(|m| m.module().clone()).ok_or_else(|| {
            Error::bad_argument("the module argument must be a module netref from this node (from upload or module)")
        }),
        Some(other) => Err(Error::bad_argument(format!(
            "expected a module netref (from upload or module), got a {}",
            other.type_name()
        ))),
        None => Err(Error::bad_argument("missing the module argument")),
    }
}

impl Dispatch for RootService {
    const TYPE_NAME: &'static str = "node";
    const METHODS: MethodTable = METHODS;
    const RUNS_LONG: bool = true;

    async fn dispatch<'a>(&'a self, call: Call<'a>) -> Result<Value, Error> {
        let args = call.args;
        match call.method {
            "upload" => self.upload(args).await,
            "upload_stream" => super::upload::upload_stream(&self.node, args),
            "module" => self.module(args),
            "instantiate" => Ok(NetRef::new(self.instantiate(args).await?).into()),
            "run" => self.run(args).await,
            "info" => to_value(&self.node.info()),
            "capability" => self.capability(args),
            other => Err(Self::unknown(other)),
        }
    }
}
