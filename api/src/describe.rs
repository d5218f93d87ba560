//! What a module file says about itself, read with no node: its callable exports with their
//! signatures (what `rwc exports FILE` prints), and the signatures an SDK module records
//! (what a node reads from an upload). Behind the `describe` feature: it parses Wasm.

use std::borrow::Cow;
use std::fmt;

use wasmparser::{CompositeInnerType, ExternalKind, FuncType, Parser, Payload, TypeRef};

use crate::abi::SIGNATURES_SECTION;
use crate::module::{
    DeclaredExport, ExportDescription, ExportSignature, ExternKind, describe_exports,
    parse_signatures,
};

/// Why a module could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DescribeError(String);

impl fmt::Display for DescribeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DescribeError {}

/// The exports a client can call in `module` (a Wasm binary or WAT text), described as a
/// node describes them: the same filter ([`describe_exports`]), the same signatures.
pub fn exports(module: &[u8]) -> Result<Vec<ExportDescription>, DescribeError> {
    let binary = binary(module)?;
    let read = read(&binary)?;
    Ok(describe_exports(&read.exports, &read.signatures))
}

/// The signatures `module` (a Wasm binary or WAT text) records in its
/// [`SIGNATURES_SECTION`], and what was wrong with the records that could not be read.
pub fn signatures(module: &[u8]) -> Result<(Vec<ExportSignature>, Vec<String>), DescribeError> {
    let binary = binary(module)?;
    let mut records = Vec::new();
    let mut problems = Vec::new();
    for payload in Parser::new(0).parse_all(&binary) {
        if let Payload::CustomSection(section) = payload.map_err(malformed)?
            && section.name() == SIGNATURES_SECTION
        {
            let (r, p) = parse_signatures(section.data());
            records.extend(r);
            problems.extend(p);
        }
    }
    Ok((records, problems))
}

struct Read {
    exports: Vec<DeclaredExport>,
    signatures: Vec<ExportSignature>,
}

/// The binary form of `module`: itself, or its WAT text parsed.
fn binary(module: &[u8]) -> Result<Cow<'_, [u8]>, DescribeError> {
    if module.starts_with(b"\0asm") {
        Ok(Cow::Borrowed(module))
    } else {
        wat::parse_bytes(module).map_err(|e| {
            DescribeError(format!(
                "not a Wasm binary (no \\0asm header) and not valid WAT: {e}"
            ))
        })
    }
}

fn malformed(e: wasmparser::BinaryReaderError) -> DescribeError {
    DescribeError(format!("not a valid Wasm module: {e}"))
}

fn read(binary: &[u8]) -> Result<Read, DescribeError> {
    // Function types by type index (`None` for the other kinds of type), and the type of
    // each function by function index: imported ones first.
    let mut types: Vec<Option<FuncType>> = Vec::new();
    let mut func_types: Vec<u32> = Vec::new();
    let mut raw_exports = Vec::new();
    let mut signatures = Vec::new();
    for payload in Parser::new(0).parse_all(binary) {
        match payload.map_err(malformed)? {
            Payload::TypeSection(r) => {
                for group in r {
                    for sub in group.map_err(malformed)?.into_types() {
                        types.push(match sub.composite_type.inner {
                            CompositeInnerType::Func(f) => Some(f),
                            _ => None,
                        });
                    }
                }
            }
            Payload::ImportSection(r) => {
                for import in r.into_imports() {
                    if let TypeRef::Func(t) | TypeRef::FuncExact(t) = import.map_err(malformed)?.ty
                    {
                        func_types.push(t);
                    }
                }
            }
            Payload::FunctionSection(r) => {
                for t in r {
                    func_types.push(t.map_err(malformed)?);
                }
            }
            Payload::ExportSection(r) => {
                for e in r {
                    let e = e.map_err(malformed)?;
                    raw_exports.push((e.name.to_owned(), e.kind, e.index));
                }
            }
            Payload::CustomSection(section) if section.name() == SIGNATURES_SECTION => {
                signatures.extend(parse_signatures(section.data()).0);
            }
            _ => {}
        }
    }
    let exports = raw_exports
        .into_iter()
        .map(|(name, kind, index)| {
            let (kind, params, results) = match kind {
                ExternalKind::Func | ExternalKind::FuncExact => {
                    let ty = usize::try_from(index)
                        .ok()
                        .and_then(|i| func_types.get(i))
                        .and_then(|t| usize::try_from(*t).ok())
                        .and_then(|t| types.get(t))
                        .and_then(Option::as_ref)
                        .ok_or_else(|| {
                            DescribeError(format!("export `{name}` names a function with no type"))
                        })?;
                    let names = |tys: &[wasmparser::ValType]| {
                        tys.iter().map(ToString::to_string).collect::<Vec<_>>()
                    };
                    (ExternKind::Func, names(ty.params()), names(ty.results()))
                }
                ExternalKind::Memory => (ExternKind::Memory, Vec::new(), Vec::new()),
                ExternalKind::Table => (ExternKind::Table, Vec::new(), Vec::new()),
                ExternalKind::Global => (ExternKind::Global, Vec::new(), Vec::new()),
                ExternalKind::Tag => (ExternKind::Tag, Vec::new(), Vec::new()),
            };
            Ok(DeclaredExport {
                name,
                kind,
                params,
                results,
            })
        })
        .collect::<Result<Vec<_>, DescribeError>>()?;
    Ok(Read {
        exports,
        signatures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SQ: &str = r#"(module
        (func (export "sq") (param i64) (result i64) local.get 0 local.get 0 i64.mul)
        (func (export "spin") (loop $l (br $l)))
        (memory (export "mem") 1))"#;

    #[test]
    fn a_raw_module_shows_its_numeric_signatures() {
        let lines: Vec<String> = exports(SQ.as_bytes())
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(lines, ["sq(i64) -> i64", "spin()"]);
        let binary = wat::parse_str(SQ).unwrap();
        assert_eq!(exports(&binary).unwrap(), exports(SQ.as_bytes()).unwrap());
    }

    #[test]
    fn an_sdk_module_shows_what_it_records() {
        let module = r#"(module
            (import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))
            (memory (export "memory") 1)
            (func (export "rwc_alloc") (param i32) (result i32) i32.const 0)
            (func (export "rwc_dealloc") (param i32 i32))
            (func (export "rwc_export_len") (param i32 i32) (result i64) i64.const 0)
            (@custom "rwc.exports" "{\"name\":\"len\",\"params\":[{\"name\":\"data\",\"type\":\"Vec<u8>\"}],\"result\":\"u64\",\"doc\":\"How many bytes.\"}\n"))"#;
        let lines: Vec<String> = exports(module.as_bytes())
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(lines, ["len(data: Vec<u8>) -> u64: How many bytes."]);
        let (records, problems) = signatures(module.as_bytes()).unwrap();
        assert_eq!(records.len(), 1);
        assert!(problems.is_empty());
    }

    #[test]
    fn garbage_is_an_error_that_says_so() {
        let e = exports(b"\0asm\x01\0\0\0\x01\xff").unwrap_err();
        assert!(e.to_string().contains("not a valid Wasm module"), "{e}");
        let e = exports(b"(module").unwrap_err();
        assert!(e.to_string().contains("not valid WAT"), "{e}");
    }
}
