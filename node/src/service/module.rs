//! A module netref: a compiled module the node holds, named by its hash; and what a client
//! is told about a module (its callable exports, its imports).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use rwc_api::Request;
use rwc_api::module::{self, ExportDescription, ImportDescription, ModuleInfo};
use rwc_protocol::object::{Call, Dispatch, MethodTable};
use rwc_protocol::{Error, NetRef, Value, to_value};

use crate::Node;
use crate::error::to_error;
use crate::principal::Principal;
use crate::sandbox::{ExportInfo, LoadedModule};

/// A module the node has compiled.
#[derive(Debug)]
pub struct ModuleObject {
    module: Arc<LoadedModule>,
}

const METHODS: MethodTable = MethodTable(module::METHODS);

impl ModuleObject {
    pub(crate) fn new(module: Arc<LoadedModule>) -> Self {
        ModuleObject { module }
    }

    pub(crate) fn module(&self) -> &Arc<LoadedModule> {
        &self.module
    }

    fn info(&self) -> ModuleInfo {
        ModuleInfo {
            hash: self.module.hash().to_owned(),
            size: self.module.size(),
            exports: describe_exports(&self.module),
            imports: describe_imports(&self.module),
        }
    }
}

/// Compiles an upload of `principal` through the compile queue, on a turn of `client`
/// (off the threads that serve connections), and hands out the module, which the
/// principal may then find by hash: what `upload` and an uploader's `finish` both end
/// with. The compiled-code cache is the node's, so a module another principal uploaded
/// already compiles nothing.
pub(crate) async fn compile(
    node: &Node,
    principal: &Principal,
    client: u64,
    bytes: Vec<u8>,
) -> Result<Value, Error> {
    super::upload::check_size(principal, u64::try_from(bytes.len()).unwrap_or(u64::MAX))?;
    node.inner.uploads.fetch_add(1, Ordering::Relaxed);
    let module = node
        .inner
        .sandbox
        .load_queued(bytes, client)
        .await
        .map_err(to_error)?;
    principal.uploaded(module.hash());
    Ok(NetRef::new(ModuleObject::new(module)).into())
}

/// The exports a client can call: rich ones by their short name, with the signatures the
/// module records, then the numeric ones; the ABI's own plumbing (`rwc_*`, `_initialize`)
/// is left out. Exactly these can be called.
pub(crate) fn describe_exports(module: &LoadedModule) -> Vec<ExportDescription> {
    module::describe_exports(module.exports(), module.signatures())
}

/// Whether a client may call `export` with numbers: a numeric function that is not ABI
/// plumbing.
pub(crate) fn is_callable_numeric(export: &ExportInfo) -> bool {
    export.declared.is_callable_numeric()
}

fn describe_imports(module: &LoadedModule) -> Vec<ImportDescription> {
    module
        .imports()
        .iter()
        .map(|i| ImportDescription {
            module: i.module.clone(),
            name: i.name.clone(),
            kind: i.kind,
            signature: i.signature.clone(),
        })
        .collect()
}

impl Dispatch for ModuleObject {
    const TYPE_NAME: &'static str = "module";
    const METHODS: MethodTable = METHODS;

    async fn dispatch<'a>(&'a self, call: Call<'a>) -> Result<Value, Error> {
        match call.method {
            module::Hash::METHOD => to_value(self.module.hash()),
            module::Size::METHOD => to_value(&self.module.size()),
            module::Exports::METHOD => to_value(&describe_exports(&self.module)),
            module::Imports::METHOD => to_value(&describe_imports(&self.module)),
            module::Info::METHOD => to_value(&self.info()),
            other => Err(Self::unknown(other)),
        }
    }
}
