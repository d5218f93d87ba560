//! A module netref: a compiled module the node holds, named by its hash.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::request::requests;

requests! {
    /// The module's hash: lowercase hex SHA-256 of the uploaded bytes.
    Hash = "hash" -> String {}
        "() the module's hash: SHA-256 of the uploaded bytes, hex"
    /// Size of the uploaded bytes.
    Size = "size" -> u64 {}
        "() size of the uploaded bytes"
    /// The exports a client can call.
    Exports = "exports" -> Vec<ExportDescription> {}
        "() callable exports with their ABI and signature"
    /// What the module imports.
    Imports = "imports" -> Vec<ImportDescription> {}
        "() what the module imports"
    /// All of the above.
    Info = "info" -> ModuleInfo {}
        "() all of the above"
}

/// An export a client can call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportDescription {
    /// The name to call it by.
    pub name: String,
    /// How it is called.
    pub abi: AbiKind,
    /// Its signature, e.g. `add takes (i32, i32) -> i32`.
    pub signature: String,
}

/// How an export is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AbiKind {
    /// An SDK export (`rwc_export_NAME`): values in and out.
    Rich,
    /// Numbers in and out, any module.
    Numeric,
}

impl AbiKind {
    /// `rich` or `numeric`.
    pub fn as_str(self) -> &'static str {
        match self {
            AbiKind::Rich => "rich",
            AbiKind::Numeric => "numeric",
        }
    }
}

impl fmt::Display for AbiKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something a module imports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportDescription {
    /// The module it is imported from, e.g. `wasi_snapshot_preview1`.
    pub module: String,
    /// The imported item's name.
    pub name: String,
    /// What it is.
    pub kind: ExternKind,
    /// The expected type in WAT-like syntax, e.g. `(func (param i32))`.
    pub signature: String,
}

/// What kind of thing an import or export is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExternKind {
    /// A function.
    Func,
    /// A linear memory.
    Memory,
    /// A table.
    Table,
    /// A global.
    Global,
    /// An exception tag.
    Tag,
}

impl fmt::Display for ExternKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Func => "func",
            Self::Memory => "memory",
            Self::Table => "table",
            Self::Global => "global",
            Self::Tag => "tag",
        })
    }
}

/// A module as a client sees it: all of the above.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleInfo {
    /// Lowercase hex SHA-256 of the upload.
    pub hash: String,
    /// Size of the upload in bytes.
    pub size: u64,
    /// What a client can call.
    pub exports: Vec<ExportDescription>,
    /// What it imports.
    pub imports: Vec<ImportDescription>,
}

/// `add takes (i32, i32) -> i32`: a function's signature as the node words it, in export
/// descriptions and in argument errors.
pub fn signature<P: AsRef<str>, R: AsRef<str>>(name: &str, params: &[P], results: &[R]) -> String {
    let join = |types: &[&str]| types.join(", ");
    let params: Vec<&str> = params.iter().map(AsRef::as_ref).collect();
    let results: Vec<&str> = results.iter().map(AsRef::as_ref).collect();
    let results = match results.as_slice() {
        [one] => (*one).to_owned(),
        many => format!("({})", join(many)),
    };
    format!("{name} takes ({}) -> {results}", join(&params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_read_like_the_docs() {
        assert_eq!(
            signature("add", &["i32", "i32"], &["i32"]),
            "add takes (i32, i32) -> i32"
        );
        assert_eq!(
            signature::<&str, &str>("run", &[], &[]),
            "run takes () -> ()"
        );
        assert_eq!(
            signature("pair", &["f64"], &["i64", "i64"]),
            "pair takes (f64) -> (i64, i64)"
        );
    }
}
