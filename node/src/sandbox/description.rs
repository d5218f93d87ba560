//! What a module exports and imports, described in WAT-like syntax: what the node tells
//! clients about a module and how it words errors about one.

use wasmtime::ExternType;

use rwc_api::module::DeclaredExport;
pub use rwc_api::module::ExternKind;

/// One export of a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportInfo {
    /// Its name, kind and types, as [`rwc_api::module::describe_exports`] reads them.
    pub declared: DeclaredExport,
    /// The whole type in WAT-like syntax, e.g. `(func (param i32 i32) (result i32))`.
    pub signature: String,
}

impl ExportInfo {
    /// The export's name in the module.
    pub fn name(&self) -> &str {
        &self.declared.name
    }
}

impl AsRef<DeclaredExport> for ExportInfo {
    fn as_ref(&self) -> &DeclaredExport {
        &self.declared
    }
}

/// One import of a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportInfo {
    /// The module it is imported from, e.g. `wasi_snapshot_preview1`.
    pub module: String,
    /// The imported item's name.
    pub name: String,
    /// What it is.
    pub kind: ExternKind,
    /// The expected type in WAT-like syntax.
    pub signature: String,
}

/// An extern type, described.
pub(super) struct Described {
    pub(super) kind: ExternKind,
    pub(super) params: Vec<String>,
    pub(super) results: Vec<String>,
    pub(super) signature: String,
}

/// Describes an extern type in WAT-like syntax.
pub(super) fn describe(ty: &ExternType) -> Described {
    let limits = |min: u64, max: Option<u64>| match max {
        Some(max) => format!("{min} {max}"),
        None => min.to_string(),
    };
    let func = |f: &wasmtime::FuncType, keyword: &str| {
        let params: Vec<String> = f.params().map(|t| t.to_string()).collect();
        let results: Vec<String> = f.results().map(|t| t.to_string()).collect();
        let mut signature = format!("({keyword}");
        if !params.is_empty() {
            signature.push_str(&format!(" (param {})", params.join(" ")));
        }
        if !results.is_empty() {
            signature.push_str(&format!(" (result {})", results.join(" ")));
        }
        signature.push(')');
        (params, results, signature)
    };
    match ty {
        ExternType::Func(f) => {
            let (params, results, signature) = func(f, "func");
            Described {
                kind: ExternKind::Func,
                params,
                results,
                signature,
            }
        }
        ExternType::Memory(m) => {
            let index = if m.is_64() { "i64 " } else { "" };
            let shared = if m.is_shared() { " shared" } else { "" };
            Described {
                kind: ExternKind::Memory,
                params: Vec::new(),
                results: Vec::new(),
                signature: format!(
                    "(memory {index}{}{shared})",
                    limits(m.minimum(), m.maximum())
                ),
            }
        }
        ExternType::Table(t) => {
            let index = if t.is_64() { "i64 " } else { "" };
            Described {
                kind: ExternKind::Table,
                params: Vec::new(),
                results: Vec::new(),
                signature: format!(
                    "(table {index}{} {})",
                    limits(t.minimum(), t.maximum()),
                    t.element()
                ),
            }
        }
        ExternType::Global(g) => {
            let content = g.content().to_string();
            let signature = match g.mutability() {
                wasmtime::Mutability::Var => format!("(global (mut {content}))"),
                wasmtime::Mutability::Const => format!("(global {content})"),
            };
            Described {
                kind: ExternKind::Global,
                params: Vec::new(),
                results: vec![content],
                signature,
            }
        }
        ExternType::Tag(t) => {
            let (params, results, signature) = func(t.ty(), "tag");
            Described {
                kind: ExternKind::Tag,
                params,
                results,
                signature,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::SandboxConfig;
    use crate::sandbox::test_support::{sandbox, with_add};

    #[test]
    fn exports_are_listed_with_signatures() {
        let (_sandbox, module) = with_add();
        let names: Vec<_> = module.exports().iter().map(ExportInfo::name).collect();
        assert_eq!(names, ["memory", "counter", "add", "scale"]);

        let add = module.export("add").unwrap();
        assert_eq!(add.declared.kind, ExternKind::Func);
        assert_eq!(add.declared.params, ["i32", "i32"]);
        assert_eq!(add.declared.results, ["i32"]);
        assert_eq!(add.signature, "(func (param i32 i32) (result i32))");
        assert!(add.declared.is_numeric_func());

        let memory = module.export("memory").unwrap();
        assert_eq!(memory.declared.kind, ExternKind::Memory);
        assert_eq!(memory.signature, "(memory 1)");
        assert!(!memory.declared.is_numeric_func());

        let counter = module.export("counter").unwrap();
        assert_eq!(counter.signature, "(global (mut i64))");
        assert!(module.imports().is_empty());
    }

    #[test]
    fn imports_are_listed() {
        let sandbox = sandbox(SandboxConfig::default());
        let module = sandbox
            .load(
                br#"(module (import "wasi_snapshot_preview1" "proc_exit"
                        (func (param i32))))"#,
            )
            .unwrap();
        assert_eq!(
            module.imports(),
            [ImportInfo {
                module: "wasi_snapshot_preview1".to_string(),
                name: "proc_exit".to_string(),
                kind: ExternKind::Func,
                signature: "(func (param i32))".to_string(),
            }]
        );
    }
}
