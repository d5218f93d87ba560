//! The `rwc` command line with bytes and files: `@FILE`, `@-`, `@text:FILE`, `@@`,
//! `--json-args`, `--out`; `rwc exports` on module files with no node; and limits, which
//! have their own exit code.

mod support;

use base64::Engine;
use rwc_tests::{guests, random_bytes};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use support::{Scratch, assert_exit, rwc, rwc_at, rwc_bytes_at, spawn_node, wat};

const LOG: &str = "INFO start\nERROR disk full\nINFO ok\nWARN slow @user\nERROR again\n";

/// A node whose disk cache holds the compiled loggrep guest. A debug-build node takes tens
/// of seconds to compile it on a loaded machine, so the tests that call it share one cache
/// (under the target directory; keyed by module and engine) and compile it once, one test
/// at a time, instead of once per test side by side.
fn loggrep_node() -> support::Proc {
    static COMPILING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli_bytes-cache");
    let cache = cache.to_str().expect("a UTF-8 target directory");
    let _one_at_a_time = COMPILING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let node = spawn_node(&["--cache-dir", cache]);
    let (code, _, err) = rwc_at("upload", &node.addr, &[guests::LOGGREP]);
    assert_eq!(code, 0, "upload loggrep: {err}");
    node
}

#[test]
fn files_and_stdin_are_arguments_and_bytes_results_can_be_written_raw() {
    let node = spawn_node(&[]);
    let dir = Scratch::new();
    // Bigger than a command line may be (ARG_MAX per argument is 128 KiB on Linux).
    let data = random_bytes(300_000, 7);
    let file = dir.file("data.bin", &data);
    let at_file = format!("@{file}");
    // `rwc call` of the blob guest, which must succeed: its stdout.
    let call_blob = |args: &[&str]| {
        let mut all = vec![guests::BLOB];
        all.extend_from_slice(args);
        let (code, out, err) = rwc_at("call", &node.addr, &all);
        assert_eq!(code, 0, "call {args:?}: {err}");
        out
    };

    assert_eq!(call_blob(&["len", &at_file]).trim(), "300000");

    // --out writes a bytes result raw.
    let digest = dir.join("digest.bin");
    let out = call_blob(&["sha256", &at_file, "--out", &digest]);
    assert!(out.is_empty(), "nothing on stdout with --out: {out}");
    assert_eq!(
        std::fs::read(&digest).unwrap(),
        Sha256::digest(&data).to_vec()
    );

    // @- reads stdin as bytes; `--out -` writes raw bytes to stdout.
    let (code, out, err) = rwc_bytes_at(
        "run",
        &node.addr,
        &[guests::BLOB, "echo", "@-", "--out", "-"],
        &data,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out == data, "stdin came back changed");

    // Without --out, bytes print as JSON base64.
    let small = &data[..1000];
    let (code, out, err) = rwc_bytes_at("call", &node.addr, &[guests::BLOB, "echo", "@-"], small);
    assert_eq!(code, 0, "{err}");
    let json: Json = serde_json::from_slice(&out).unwrap();
    let b64 = json["$bytes"]
        .as_str()
        .expect("bytes print as {\"$bytes\": …}");
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
        small
    );

    // A result that is not bytes goes to --out as JSON.
    let count = dir.join("count.json");
    call_blob(&["len", &at_file, "--out", &count]);
    assert_eq!(std::fs::read_to_string(&count).unwrap(), "300000\n");
}

#[test]
fn text_files_json_args_and_literal_at_signs() {
    let node = loggrep_node();
    let dir = Scratch::new();
    let log = dir.file("app.log", LOG);

    let (code, out, err) = rwc_at(
        "call",
        &node.addr,
        &[
            guests::LOGGREP,
            "grep_lines",
            "ERROR",
            &format!("@text:{log}"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let lines: Json = serde_json::from_str(&out).unwrap();
    assert_eq!(
        lines,
        serde_json::json!([[2, "ERROR disk full"], [5, "ERROR again"]])
    );

    // `@text:-`: stdin as a string. `@@user` is the string "@user", not a file.
    let (code, out, err) = rwc(
        &[
            "call",
            "--node",
            &node.addr,
            guests::LOGGREP,
            "grep_lines",
            "@@user",
            "@text:-",
        ],
        LOG,
    );
    assert_eq!(code, 0, "{err}");
    let lines: Json = serde_json::from_str(&out).unwrap();
    assert_eq!(lines, serde_json::json!([[4, "WARN slow @user"]]));

    // Bytes in, bytes out, written raw.
    let errors = dir.join("errors.log");
    let (code, _, err) = rwc_at(
        "call",
        &node.addr,
        &[
            guests::LOGGREP,
            "grep",
            "^ERROR",
            &format!("@{log}"),
            "--out",
            &errors,
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(&errors).unwrap(),
        "ERROR disk full\nERROR again\n"
    );

    // The whole argument list from a JSON file.
    let b64 = base64::engine::general_purpose::STANDARD.encode(LOG);
    let list = dir.file(
        "args.json",
        format!(r#"["^(ERROR|WARN)", {{"$bytes": "{b64}"}}]"#),
    );
    let (code, out, err) = rwc_at(
        "call",
        &node.addr,
        &[guests::LOGGREP, "count", "--json-args", &list],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "3");
    let (code, _, err) = rwc_at(
        "call",
        &node.addr,
        &[guests::LOGGREP, "count", "x", "--json-args", &list],
    );
    assert_eq!(
        code, 2,
        "ARGS and --json-args together are a usage error: {err}"
    );
}

#[test]
fn bad_byte_arguments_say_how_to_pass_bytes() {
    let node = spawn_node(&[]);
    // A bare word where bytes are wanted: refused, not hashed as text.
    let (code, out, err) = rwc_at("call", &node.addr, &[guests::BLOB, "sha256", "data.bin"]);
    assert_eq!(code, 7, "bad argument: {out}{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("expected bytes, found string"), "{err}");
    assert!(
        err.contains("`@FILE`") && err.contains(r#"{"$bytes": "<base64>"}"#),
        "{err}"
    );

    assert_exit(
        rwc_at(
            "call",
            &node.addr,
            &[guests::BLOB, "sha256", "@/no/such/file"],
        ),
        7,
        "cannot read /no/such/file",
    );
    assert_exit(
        rwc(
            &[
                "call",
                "--node",
                &node.addr,
                guests::LOGGREP,
                "count",
                "@-",
                "@-",
            ],
            "x",
        ),
        7,
        "stdin is already read by @-",
    );
}

#[test]
fn exports_lists_signatures_and_docs_from_the_file_alone() {
    // No node at all: RWC_NODE points nowhere and nothing is listening.
    let run = |args: &[&str]| {
        let mut all = vec!["exports"];
        all.extend_from_slice(args);
        rwc(&all, "")
    };
    let (code, out, err) = run(&[guests::LOGGREP]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines.contains(
            &"grep_lines(pattern: String, text: String) -> Vec<(u32, String)>: Lines that match."
        ),
        "{out}"
    );
    assert!(
        lines.contains(&"grep(pattern: String, data: Vec<u8>) -> Vec<u8>: The lines of `data` that `pattern` matches, as bytes, each ending in a newline."),
        "{out}"
    );
    assert!(
        lines.contains(&"count(pattern: String, data: Vec<u8>) -> u64: How many lines of `data` `pattern` matches."),
        "{out}"
    );
    assert_eq!(lines.len(), 3, "only the callable exports: {out}");

    let (code, out, err) = run(&[guests::BLOB, "--json"]);
    assert_eq!(code, 0, "{err}");
    let list: Json = serde_json::from_str(&out).unwrap();
    let len = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "len")
        .expect("len is listed");
    assert_eq!(len["abi"], "rich");
    assert_eq!(
        len["params"],
        serde_json::json!([{"name": "data", "type": "Vec<u8>"}])
    );
    assert_eq!(len["result"], "u64");
    assert_eq!(len["doc"], "How many bytes `data` holds.");

    // A raw WAT module: its numeric signatures.
    let dir = Scratch::new();
    let math = dir.file("math.wat", wat::MATH);
    let (code, out, err) = run(&[&math]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "sq(i64) -> i64",
            "sq_or_trap13(i64) -> i64",
            "work(i64, i64) -> i64",
            "spin()"
        ]
    );

    let garbage = dir.file("garbage.wasm", b"\0asm\x01\0\0\0\x01\xff");
    assert_exit(run(&[&garbage]), 7, "not a valid Wasm module");
}

#[test]
fn the_shell_and_the_node_describe_exports_the_same_way() {
    let node = loggrep_node();
    let script = format!("load {}\nexports $m1\ncall $m1 info\n", guests::LOGGREP);
    let (code, out, err) = rwc(&["shell", &node.addr], &script);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "  grep_lines(pattern: String, text: String) -> Vec<(u32, String)>: Lines that match."
        ),
        "{out}"
    );
    // `info` is the module's description as JSON, one line: the same docs and types.
    let info: Json = out
        .lines()
        .find_map(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| panic!("no JSON line for `info`: {out}"));
    let grep_lines = info["exports"]
        .as_array()
        .and_then(|all| all.iter().find(|e| e["name"] == "grep_lines"))
        .unwrap_or_else(|| panic!("info lists grep_lines: {info}"));
    assert_eq!(
        grep_lines["signature"],
        "grep_lines(pattern: String, text: String) -> Vec<(u32, String)>"
    );
    let doc = grep_lines["doc"].as_str().unwrap_or_default();
    assert!(
        doc.starts_with("Lines that match.\n\nEach line of `text`"),
        "{doc}"
    );
}

#[test]
fn limits_have_their_own_kind_and_exit_code() {
    let node = spawn_node(&[]);
    let dir = Scratch::new();
    let math = dir.file("math.wat", wat::MATH);

    // Asking for more than the node's cap: an error naming the cap and its setting.
    let (code, out, err) = rwc_at("call", &node.addr, &[&math, "sq", "3", "--memory", "1GiB"]);
    assert_eq!(code, 10, "limit: {out}{err}");
    assert!(err.starts_with("rwc: limit: "), "{err}");
    assert!(
        err.contains("1073741824") && err.contains("268435456"),
        "{err}"
    );
    assert!(
        err.contains("memory_bytes") && err.contains("rwc-node --memory-bytes"),
        "{err}"
    );

    // A guest that grows past its memory: `limit` too, not `denied`.
    let grow = dir.file(
        "grow.wat",
        r#"(module (memory 1)
          (func (export "grow") (result i32) (local $r i32)
            (loop $l (local.set $r (memory.grow (i32.const 16)))
              (br_if $l (i32.ne (local.get $r) (i32.const -1))))
            (local.get $r)))"#,
    );
    let err = assert_exit(
        rwc_at("run", &node.addr, &[&grow, "grow", "--memory", "4MiB"]),
        10,
        "rwc: limit: guest needs",
    );
    assert!(err.contains("--memory"), "says how to raise it: {err}");

    // A module over the node's size limit.
    let small = spawn_node(&["--max-module-bytes", "1000"]);
    let big = dir.file("big.wat", wat::big(5000));
    assert_exit(
        rwc_at("upload", &small.addr, &[&big]),
        10,
        "--max-module-bytes",
    );

    // A capability that was not handed over stays `denied` (5).
    assert_exit(
        rwc_at("call", &node.addr, &[guests::SYSREPORT, "report"]),
        5,
        "rwc: denied:",
    );
}
