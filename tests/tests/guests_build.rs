//! The example guests built by `build.rs` have the shape the ABI (`docs/abi.md`) requires:
//! the SDK's exports, one `rwc_export_NAME` per rich export, and imports only from WASI
//! preview 1 and the node's `rwc` module.

use std::collections::{BTreeMap, BTreeSet};

use rwc_tests::{guest_bytes, guests};
use wasmparser::{ExternalKind, FuncType, Parser, Payload, TypeRef};

/// What every module built with the SDK exports.
const SDK_EXPORTS: &[&str] = &[
    "memory",
    "rwc_alloc",
    "rwc_dealloc",
    "rwc_object_call",
    "rwc_object_drop",
];

/// A module's interface: exports (name -> signature text) and imports (module, name).
struct Shape {
    exports: BTreeMap<String, String>,
    imports: BTreeSet<(String, String)>,
}

impl Shape {
    fn import_modules(&self) -> BTreeSet<&str> {
        self.imports.iter().map(|(m, _)| m.as_str()).collect()
    }

    fn imports_from(&self, module: &str) -> BTreeSet<&str> {
        self.imports
            .iter()
            .filter(|(m, _)| m == module)
            .map(|(_, n)| n.as_str())
            .collect()
    }
}

/// Reads the interface of the module at `path` (binary, or WAT text).
fn shape(path: &str) -> Shape {
    let bytes = guest_bytes(path);
    let bytes = if path.ends_with(".wat") {
        wat::parse_bytes(&bytes)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .into_owned()
    } else {
        bytes
    };
    let mut types: Vec<FuncType> = Vec::new();
    let mut func_types: Vec<u32> = Vec::new();
    let mut exports = Vec::new();
    let mut imports = BTreeSet::new();
    for payload in Parser::new(0).parse_all(&bytes) {
        match payload.unwrap_or_else(|e| panic!("{path} is not valid wasm: {e}")) {
            Payload::TypeSection(r) => {
                types.extend(r.into_iter_err_on_gc_types().map(Result::unwrap));
            }
            Payload::ImportSection(r) => {
                for import in r.into_imports() {
                    let import = import.unwrap();
                    if let TypeRef::Func(t) | TypeRef::FuncExact(t) = import.ty {
                        func_types.push(t);
                    }
                    imports.insert((import.module.to_owned(), import.name.to_owned()));
                }
            }
            Payload::FunctionSection(r) => func_types.extend(r.into_iter().map(Result::unwrap)),
            Payload::ExportSection(r) => exports.extend(r.into_iter().map(Result::unwrap)),
            _ => {}
        }
    }
    let exports = exports
        .into_iter()
        .map(|e| {
            let sig = match e.kind {
                ExternalKind::Func | ExternalKind::FuncExact => {
                    let ty = &types[func_types[e.index as usize] as usize];
                    format!(
                        "{:?} -> {:?}",
                        ty.params()
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>(),
                        ty.results()
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                    )
                }
                other => format!("{other:?}"),
            };
            (e.name.to_owned(), sig)
        })
        .collect();
    Shape { exports, imports }
}

fn assert_exports(shape: &Shape, path: &str, expected: &[&str]) {
    for name in SDK_EXPORTS.iter().chain(expected) {
        assert!(
            shape.exports.contains_key(*name),
            "{path} lacks export `{name}`; it has {:?}",
            shape.exports.keys()
        );
    }
    for module in shape.import_modules() {
        assert!(
            module == "wasi_snapshot_preview1" || module == "rwc",
            "{path} imports from `{module}`, which a node does not provide"
        );
    }
}

/// The signature of an export, as `["i32", "i32"] -> ["i64"]`.
fn signature<'a>(shape: &'a Shape, name: &str) -> &'a str {
    shape
        .exports
        .get(name)
        .unwrap_or_else(|| panic!("no export `{name}`"))
}

#[test]
fn wordcount_has_its_rich_exports() {
    let s = shape(guests::WORDCOUNT);
    assert_exports(
        &s,
        guests::WORDCOUNT,
        &[
            "rwc_export_word_count",
            "rwc_export_echo",
            "rwc_export_roundtrip",
            "rwc_export_roundtrip_shape",
            "rwc_export_reverse_bytes",
            "rwc_export_area",
            "rwc_export_fail",
            "rwc_export_panic_now",
        ],
    );
    assert_eq!(
        signature(&s, "rwc_export_word_count"),
        r#"["i32", "i32"] -> ["i64"]"#
    );
    assert_eq!(signature(&s, "rwc_alloc"), r#"["i32"] -> ["i32"]"#);
    assert_eq!(signature(&s, "rwc_dealloc"), r#"["i32", "i32"] -> []"#);
    assert_eq!(
        signature(&s, "rwc_object_call"),
        r#"["i32", "i32"] -> ["i64"]"#
    );
    assert_eq!(signature(&s, "rwc_object_drop"), r#"["i64"] -> []"#);
    assert_eq!(signature(&s, "memory"), "Memory");
    // A panic is reported to the node before the trap.
    assert!(s.imports_from("rwc").contains("panic"));
}

#[test]
fn counter_has_rich_and_numeric_exports() {
    let s = shape(guests::COUNTER);
    assert_exports(
        &s,
        guests::COUNTER,
        &[
            "rwc_export_new_counter",
            "rwc_export_live",
            "rwc_export_exported",
            "live_counters",
        ],
    );
    assert_eq!(signature(&s, "live_counters"), r#"[] -> ["i32"]"#);
}

#[test]
fn progress_imports_rwc_call() {
    let s = shape(guests::PROGRESS);
    assert_exports(
        &s,
        guests::PROGRESS,
        &[
            "rwc_export_run",
            "rwc_export_ping_back",
            "rwc_export_inc",
            "rwc_export_hand_back",
        ],
    );
    let rwc_imports = s.imports_from("rwc");
    for name in ["call", "take_result", "release"] {
        assert!(rwc_imports.contains(name), "no rwc.{name}: {rwc_imports:?}");
    }
}

#[test]
fn mandelbrot_has_render_and_a_numeric_export() {
    let s = shape(guests::MANDELBROT);
    assert_exports(
        &s,
        guests::MANDELBROT,
        &["rwc_export_render", "mandel_row_sum"],
    );
    assert_eq!(
        signature(&s, "mandel_row_sum"),
        r#"["i32", "i32", "i32", "i32"] -> ["i64"]"#
    );
}

#[test]
fn sysreport_asks_for_capabilities() {
    let s = shape(guests::SYSREPORT);
    assert_exports(
        &s,
        guests::SYSREPORT,
        &["rwc_export_report", "rwc_export_report_denied"],
    );
    assert!(s.imports_from("rwc").contains("capability"));
}

#[test]
fn hello_wat_is_a_minimal_sdk_module() {
    let s = shape(guests::HELLO_WAT);
    for name in [
        "memory",
        "rwc_alloc",
        "rwc_dealloc",
        "rwc_export_hello",
        "rwc_export_greet",
        "rwc_export_args",
        "rwc_export_fail",
        "add",
    ] {
        assert!(s.exports.contains_key(name), "hello.wat lacks `{name}`");
    }
    assert!(s.imports.is_empty());
}
