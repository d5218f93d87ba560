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
///
/// Its `Display` is the one line that `rwc exports`, the shell and `info` show:
/// `grep_lines(pattern: String, text: String) -> Vec<(u32, String)>: Lines that match.`
/// for an SDK export (from the signature the SDK recorded in the module), `sq(i64) -> i64`
/// for a numeric one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportDescription {
    /// The name to call it by.
    pub name: String,
    /// How it is called.
    pub abi: AbiKind,
    /// Its signature: `grep_lines(pattern: String, text: String) -> Vec<(u32, String)>` for
    /// an SDK export, `add takes (i32, i32) -> i32` for a numeric one (as the node words
    /// it in argument errors), `hello(values…) -> value` for an SDK export whose module
    /// records no signature.
    pub signature: String,
    /// The parameters, in order; `None` when the module does not say (an SDK export whose
    /// module records no signature).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Vec<ParamDescription>>,
    /// The result type, as the source wrote it (`Vec<u8>`, `i64`); `None` when it returns
    /// nothing, or when the module does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// The doc comment, if the module records one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc: Option<String>,
}

/// A parameter of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamDescription {
    /// Its name, if the module records one (numeric exports have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its type, as the source wrote it (`String`, `Vec<u8>`) or the Wasm type (`i64`).
    #[serde(rename = "type")]
    pub ty: String,
}

/// What the guest SDK records about one rich export, as a line of JSON in the module's
/// [`SIGNATURES_SECTION`](crate::abi::SIGNATURES_SECTION) custom section
/// (`docs/abi.md`): `{"name":"len","params":[{"name":"data","type":"Vec<u8>"}],
/// "result":"u64","doc":"How many bytes."}`. Keys other than `name` may be left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportSignature {
    /// The export's name (what it is called by, without `rwc_export_`).
    pub name: String,
    /// Its parameters, in order.
    #[serde(default)]
    pub params: Vec<ParamDescription>,
    /// Its result type; none if it returns nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Its doc comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc: Option<String>,
}

impl ExportDescription {
    /// An SDK export `name`, with the signature its module recorded, if any.
    pub fn rich(name: &str, recorded: Option<&ExportSignature>) -> ExportDescription {
        let Some(sig) = recorded else {
            return ExportDescription {
                name: name.to_owned(),
                abi: AbiKind::Rich,
                signature: format!("{name}(values…) -> value"),
                params: None,
                result: None,
                doc: None,
            };
        };
        let mut d = ExportDescription {
            name: name.to_owned(),
            abi: AbiKind::Rich,
            signature: String::new(),
            params: Some(sig.params.clone()),
            result: sig.result.clone().filter(|r| r != "()"),
            doc: sig.doc.clone().filter(|d| !d.trim().is_empty()),
        };
        d.signature = d.call_shape();
        d
    }

    /// A numeric export `name` with these Wasm parameter and result types.
    pub fn numeric<P: AsRef<str>, R: AsRef<str>>(
        name: &str,
        params: &[P],
        results: &[R],
    ) -> ExportDescription {
        let result = match results {
            [] => None,
            [one] => Some(one.as_ref().to_owned()),
            many => Some(format!(
                "({})",
                many.iter()
                    .map(AsRef::as_ref)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        };
        ExportDescription {
            name: name.to_owned(),
            abi: AbiKind::Numeric,
            signature: signature(name, params, results),
            params: Some(
                params
                    .iter()
                    .map(|ty| ParamDescription {
                        name: None,
                        ty: ty.as_ref().to_owned(),
                    })
                    .collect(),
            ),
            result,
            doc: None,
        }
    }

    /// The first line of the doc comment, if there is one.
    pub fn summary(&self) -> Option<&str> {
        self.doc
            .as_deref()
            .and_then(|d| d.lines().map(str::trim).find(|l| !l.is_empty()))
    }

    /// `name(a: T, u32) -> R`, or the recorded `signature` when the parameters are not
    /// known.
    fn call_shape(&self) -> String {
        let Some(params) = &self.params else {
            return self.signature.clone();
        };
        let params: Vec<String> = params
            .iter()
            .map(|p| match &p.name {
                Some(name) => format!("{name}: {}", p.ty),
                None => p.ty.clone(),
            })
            .collect();
        let mut shape = format!("{}({})", self.name, params.join(", "));
        if let Some(result) = &self.result {
            shape.push_str(" -> ");
            shape.push_str(result);
        }
        shape
    }
}

impl fmt::Display for ExportDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.call_shape())?;
        match self.summary() {
            Some(summary) => write!(f, ": {summary}"),
            None => Ok(()),
        }
    }
}

/// One export as the module declares it: what [`describe_exports`] filters and describes,
/// read from the binary by the node and by `rwc exports` alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredExport {
    /// Its name in the module (`rwc_export_len`, `sq`, `memory`).
    pub name: String,
    /// What it is.
    pub kind: ExternKind,
    /// A function's parameter types (`"i32"`, `"f64"`, `"(ref null extern)"`…); empty for
    /// other kinds.
    pub params: Vec<String>,
    /// A function's result types; for a global, its value type.
    pub results: Vec<String>,
}

impl DeclaredExport {
    /// Whether this is a function whose parameters and results are all `i32`, `i64`,
    /// `f32` or `f64`: one that can be called with numbers.
    pub fn is_numeric_func(&self) -> bool {
        let numeric = |t: &String| matches!(t.as_str(), "i32" | "i64" | "f32" | "f64");
        self.kind == ExternKind::Func
            && self.params.iter().all(numeric)
            && self.results.iter().all(numeric)
    }

    /// Whether this is what a client may call with numbers: a numeric function
    /// ([`is_numeric_func`](Self::is_numeric_func)) that is not the ABI's own plumbing.
    pub fn is_callable_numeric(&self) -> bool {
        self.is_numeric_func() && !crate::abi::is_plumbing(&self.name)
    }
}

impl AsRef<DeclaredExport> for DeclaredExport {
    fn as_ref(&self) -> &DeclaredExport {
        self
    }
}

/// The exports a client can call, in the module's order: the rich ones (if the module is
/// an SDK module, `docs/abi.md`) by their short name, with the signatures the module
/// records in `signatures`, then the numeric ones. The ABI's plumbing is left out.
/// Exactly these can be called.
pub fn describe_exports<E: AsRef<DeclaredExport>>(
    exports: &[E],
    signatures: &[ExportSignature],
) -> Vec<ExportDescription> {
    let exports = || exports.iter().map(AsRef::as_ref);
    let is_sdk = crate::abi::export::SDK
        .iter()
        .all(|n| exports().any(|e| e.name == *n));
    let rich = exports()
        .filter(|_| is_sdk)
        .filter_map(|e| crate::abi::rich_export_name(&e.name))
        .map(|name| ExportDescription::rich(name, signatures.iter().find(|s| s.name == name)));
    let numeric = exports()
        .filter(|e| e.is_callable_numeric())
        .map(|e| ExportDescription::numeric(&e.name, &e.params, &e.results));
    rich.chain(numeric).collect()
}

/// The records of a [`SIGNATURES_SECTION`](crate::abi::SIGNATURES_SECTION) custom
/// section: one JSON object per line. A line that is not a record is skipped, with what was
/// wrong with it in the second list, so that a broken record costs only its own
/// signature.
#[cfg(feature = "describe")]
pub fn parse_signatures(section: &[u8]) -> (Vec<ExportSignature>, Vec<String>) {
    let mut records = Vec::new();
    let mut problems = Vec::new();
    for line in section.split(|b| *b == b'\n') {
        let line = line.trim_ascii();
        if line.is_empty() || line.iter().all(|b| *b == 0) {
            continue;
        }
        match serde_json::from_slice::<ExportSignature>(line) {
            Ok(record) => records.push(record),
            Err(e) => problems.push(format!("a record that does not parse: {e}")),
        }
    }
    (records, problems)
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

    fn sig(json: &str) -> ExportSignature {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn rich_exports_show_their_recorded_signature_and_doc() {
        let grep = sig(
            r#"{"name":"grep_lines","params":[{"name":"pattern","type":"String"},
            {"name":"text","type":"String"}],"result":"Vec<(u32, String)>",
            "doc":"Lines that match.\n\nMore about it."}"#,
        );
        let d = ExportDescription::rich("grep_lines", Some(&grep));
        assert_eq!(
            d.to_string(),
            "grep_lines(pattern: String, text: String) -> Vec<(u32, String)>: Lines that match."
        );
        assert_eq!(
            d.signature,
            "grep_lines(pattern: String, text: String) -> Vec<(u32, String)>"
        );
        assert_eq!(
            d.doc.as_deref(),
            Some("Lines that match.\n\nMore about it.")
        );
        let unit = sig(r#"{"name":"reset","result":"()"}"#);
        assert_eq!(
            ExportDescription::rich("reset", Some(&unit)).to_string(),
            "reset()"
        );
        let unknown = ExportDescription::rich("hello", None);
        assert_eq!(unknown.to_string(), "hello(values…) -> value");
        assert_eq!(unknown.params, None);
    }

    #[test]
    fn numeric_exports_show_their_wasm_types() {
        let d = ExportDescription::numeric("sq", &["i64"], &["i64"]);
        assert_eq!(d.to_string(), "sq(i64) -> i64");
        assert_eq!(d.signature, "sq takes (i64) -> i64");
        let d = ExportDescription::numeric::<&str, &str>("spin", &[], &[]);
        assert_eq!(d.to_string(), "spin()");
        let d = ExportDescription::numeric("pair", &["f64"], &["i64", "i64"]);
        assert_eq!(d.to_string(), "pair(f64) -> (i64, i64)");
    }

    #[test]
    fn only_callable_exports_are_described() {
        let none: Vec<String> = Vec::new();
        let i32s = vec!["i32".to_owned(), "i32".to_owned()];
        let one = vec!["i64".to_owned()];
        let refs = vec!["externref".to_owned()];
        let export =
            |name: &str, kind, params: &Vec<String>, results: &Vec<String>| DeclaredExport {
                name: name.to_owned(),
                kind,
                params: params.clone(),
                results: results.clone(),
            };
        let exports = [
            export("memory", ExternKind::Memory, &none, &none),
            export("rwc_alloc", ExternKind::Func, &one, &one),
            export("rwc_dealloc", ExternKind::Func, &i32s, &none),
            export("rwc_export_len", ExternKind::Func, &i32s, &one),
            export("rwc_export_hi", ExternKind::Func, &i32s, &one),
            export("_initialize", ExternKind::Func, &none, &none),
            export("sq", ExternKind::Func, &one, &one),
            export("takes_ref", ExternKind::Func, &refs, &none),
        ];
        let recorded = [sig(
            r#"{"name":"len","params":[{"name":"data","type":"Vec<u8>"}],"result":"u64"}"#,
        )];
        let lines: Vec<String> = describe_exports(&exports, &recorded)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            lines,
            [
                "len(data: Vec<u8>) -> u64",
                "hi(values…) -> value",
                "sq(i64) -> i64"
            ]
        );
        // Without the SDK's exports, `rwc_export_*` names are not rich exports.
        let bare = [export("rwc_export_len", ExternKind::Func, &i32s, &one)];
        assert!(describe_exports(&bare, &recorded).is_empty());
    }

    #[cfg(feature = "describe")]
    #[test]
    fn a_signature_section_parses_line_by_line() {
        let section = b"{\"name\":\"a\"}\nnot json\n\n{\"name\":\"b\",\"params\":[{\"name\":\"x\",\"type\":\"u8\"}]}\n\0\0";
        let (records, problems) = parse_signatures(section);
        let names: Vec<&str> = records.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(records[1].params[0].ty, "u8");
        assert_eq!(problems.len(), 1, "{problems:?}");
    }

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
