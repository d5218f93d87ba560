//! A module netref: a compiled module the node holds, named by its content hash.

use std::sync::Arc;

use rwc_protocol::object::{Call, Dispatch, MethodTable};
use rwc_protocol::{Error, Value, to_value};
use serde::Serialize;

use crate::abi;
use crate::sandbox::{ExternKind, LoadedModule};

/// A module the node has compiled.
#[derive(Debug)]
pub struct ModuleObject {
    module: Arc<LoadedModule>,
}

/// An export as a client sees it.
#[derive(Debug, Serialize)]
pub struct ExportDescription {
    /// Name to call it by.
    pub name: String,
    /// `rich` (SDK export: values in and out) or `numeric` (numbers in and out).
    pub abi: &'static str,
    /// The wasm signature, e.g. `add takes (i32, i32) -> i32`.
    pub signature: String,
}

#[derive(Serialize)]
struct ModuleInfo<'a> {
    hash: &'a str,
    size: u64,
    exports: Vec<ExportDescription>,
    imports: Vec<String>,
}

const METHODS: MethodTable = MethodTable(&[
    (
        "hash",
        "() the module's id: SHA-256 of the uploaded bytes, hex",
    ),
    ("size", "() size of the uploaded bytes"),
    (
        "exports",
        "() callable exports with their ABI and signature",
    ),
    ("imports", "() what the module imports"),
    ("info", "() all of the above"),
]);

impl ModuleObject {
    pub(crate) fn new(module: Arc<LoadedModule>) -> Self {
        ModuleObject { module }
    }

    pub(crate) fn module(&self) -> &Arc<LoadedModule> {
        &self.module
    }

    fn info(&self) -> ModuleInfo<'_> {
        ModuleInfo {
            hash: self.module.id(),
            size: self.module.size(),
            exports: describe_exports(&self.module),
            imports: self
                .module
                .imports()
                .iter()
                .map(|i| format!("{}::{} ({:?})", i.module, i.name, i.kind))
                .collect(),
        }
    }
}

/// The exports a client can call: rich ones by their short name, numeric ones as they are;
/// the ABI's own plumbing is left out.
pub(crate) fn describe_exports(module: &LoadedModule) -> Vec<ExportDescription> {
    let rich = abi::rich_exports(module.exports());
    let mut out: Vec<ExportDescription> = rich
        .iter()
        .map(|name| ExportDescription {
            name: name.clone(),
            abi: "rich",
            signature: format!("{name}(values…) -> value"),
        })
        .collect();
    out.extend(
        module
            .exports()
            .iter()
            .filter(|e| e.kind == ExternKind::Func && e.is_numeric_func())
            .filter(|e| !e.name.starts_with("rwc_") && e.name != "_initialize")
            .map(|e| ExportDescription {
                name: e.name.clone(),
                abi: "numeric",
                signature: numeric_signature(e),
            }),
    );
    out
}

/// `add takes (i32, i32) -> i32`, as the node's argument errors word it.
fn numeric_signature(e: &crate::sandbox::ExportInfo) -> String {
    let results = match e.results.as_slice() {
        [] => "()".to_owned(),
        [one] => one.clone(),
        many => format!("({})", many.join(", ")),
    };
    format!("{} takes ({}) -> {results}", e.name, e.params.join(", "))
}

impl Dispatch for ModuleObject {
    const TYPE_NAME: &'static str = "module";
    const METHODS: MethodTable = METHODS;

    async fn dispatch<'a>(&'a self, call: Call<'a>) -> Result<Value, Error> {
        match call.method {
            "hash" => to_value(self.module.id()),
            "size" => to_value(&self.module.size()),
            "exports" => to_value(&describe_exports(&self.module)),
            "imports" => to_value(&self.info().imports),
            "info" => to_value(&self.info()),
            other => Err(Self::unknown(other)),
        }
    }
}
