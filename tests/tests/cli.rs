//! The `rwc` command line as a person or a script uses it: output on stdout, one-line
//! errors on stderr, exit codes by kind of failure.

mod support;

use rwc_client::module_hash;
use serde_json::Value as Json;
use support::{Scratch, assert_exit, rwc, rwc_at, spawn_node, spawn_registry, wat};

#[test]
fn call_prints_the_result_as_json() {
    let node = spawn_node(&[]);
    let dir = Scratch::new();
    let module = dir.file("math.wat", wat::MATH);
    let (code, out, err) = rwc_at("call", &node.addr, &[&module, "sq", "12"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "144");

    // A missing export: one clear line, exit code 8 (unimplemented).
    let (code, out, err) = rwc_at("call", &node.addr, &[&module, "nope"]);
    assert_eq!(code, 8, "{out}{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("no export named `nope`"), "{err}");
    assert!(err.contains("sq"), "the error lists what exists: {err}");
}

#[test]
fn run_with_fuel_stops_a_runaway_guest() {
    let node = spawn_node(&[]);
    let dir = Scratch::new();
    let module = dir.file("math.wat", wat::MATH);
    let (code, out, err) = rwc_at(
        "run",
        &node.addr,
        &[&module, "work", "3", "10", "--fuel", "1000000"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "9");

    let err = assert_exit(
        rwc_at("run", &node.addr, &[&module, "spin", "--fuel", "100000"]),
        6,
        "out of fuel",
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // -v adds the details; a deadline gives `timed out` (4).
    assert_exit(
        rwc_at("run", &node.addr, &[&module, "spin", "--timeout", "200ms"]),
        4,
        "timed out",
    );
    assert_exit(
        rwc(
            &[
                "-v",
                "run",
                "--node",
                &node.addr,
                &module,
                "sq_or_trap13",
                "13",
            ],
            "",
        ),
        6,
        "remote trace",
    );
}

#[test]
fn info_ping_and_upload() {
    let node = spawn_node(&[]);
    let (code, out, err) = rwc(&["info", "--node", &node.addr], "");
    assert_eq!(code, 0, "{err}");
    let info: Json = serde_json::from_str(&out).unwrap();
    assert!(info["version"].is_string(), "{info}");
    assert!(info["limits"]["max_module_bytes"].is_u64(), "{info}");

    let (code, out, err) = rwc_at("ping", &node.addr, &["--count", "3", "--interval-ms", "1"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    for (i, line) in lines[..3].iter().enumerate() {
        assert!(line.starts_with(&format!("ping {}", i + 1)), "{line}");
        assert!(line.contains("time=") && line.ends_with(" ms"), "{line}");
    }
    assert!(
        lines[3].starts_with("3 pings: min/avg/max = "),
        "{}",
        lines[3]
    );

    let dir = Scratch::new();
    let big = wat::big(2_500_000);
    let module = dir.file("big.wat", &big);
    let (code, out, err) = rwc_at("upload", &node.addr, &[&module]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), module_hash(big.as_bytes()));
    assert!(
        err.contains("uploaded"),
        "a summary line even without a terminal: {err}"
    );
    let (code, out, err) = rwc_at("upload", &node.addr, &[&module]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), module_hash(big.as_bytes()));
    assert!(err.contains("already has"), "{err}");

    let (code, _, err) = rwc(&["info", "--node", "127.0.0.1:1"], "");
    assert_eq!(code, 3, "an unreachable node is `disconnected`: {err}");
    assert_exit(
        rwc_at("upload", &node.addr, &["/no/such.wasm"]),
        7,
        "/no/such.wasm",
    );
}

#[test]
fn map_over_two_nodes_prints_results_in_input_order() {
    let a = spawn_node(&[]);
    let b = spawn_node(&[]);
    let dir = Scratch::new();
    let module = dir.file("math.wat", wat::MATH);
    // Arrays are argument lists; a bare value is one argument; blank lines are skipped.
    let mut lines: Vec<String> = (0..200).map(|i| format!("[{i}]")).collect();
    lines[7] = "7".to_owned();
    lines.insert(50, String::new());
    let input = dir.file("in.jsonl", lines.join("\n"));
    let nodes = format!("{},{}", a.addr, b.addr);

    let (code, out, err) = rwc(
        &["map", "--nodes", &nodes, &module, "sq", "--input", &input],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let results: Vec<i64> = out.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(results, (0..200).map(|i| i * i).collect::<Vec<i64>>());
    assert!(err.contains("200 inputs (200 ok, 0 failed)"), "{err}");
    assert!(err.contains(&a.addr) && err.contains(&b.addr), "{err}");

    // A guest error is that input's line; the exit code says it was a trap; --json puts
    // the summary last on stdout.
    let (code, out, err) = rwc(
        &[
            "map",
            "--nodes",
            &nodes,
            &module,
            "sq_or_trap13",
            "--input",
            &input,
            "--json",
            "--per-node",
            "1",
        ],
        "",
    );
    assert_eq!(code, 6, "{err}");
    let lines: Vec<Json> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 201);
    assert_eq!(lines[12], 144);
    assert_eq!(lines[13]["error"]["kind"], "trapped", "{}", lines[13]);
    assert_eq!(lines[14], 196);
    let summary = &lines[200]["summary"];
    assert_eq!(summary["inputs"], 200);
    assert_eq!(summary["failed"], 1);
    let done: u64 = summary["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["done"].as_u64().unwrap())
        .sum();
    assert_eq!(done, 200);

    let bad = dir.file("bad.jsonl", "[1]\n{oops\n");
    assert_exit(
        rwc(
            &["map", "--nodes", &nodes, &module, "sq", "--input", &bad],
            "",
        ),
        7,
        "line 2",
    );
}

#[test]
fn nodes_lists_what_the_registry_knows() {
    let registry = spawn_registry();
    let node = spawn_node(&["--register", &registry.addr, "--tag", "cli"]);
    let mut listed = Json::Null;
    for _ in 0..200 {
        let (code, out, err) = rwc(
            &[
                "nodes",
                "--registry",
                &registry.addr,
                "--tag",
                "cli",
                "--json",
            ],
            "",
        );
        assert_eq!(code, 0, "{err}");
        listed = serde_json::from_str(&out).unwrap();
        if listed.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(listed[0]["addr"], node.addr.as_str(), "{listed}");
    assert_eq!(listed[0]["tags"][0], "cli");
    let (code, out, _) = rwc(&["nodes", "--registry", &registry.addr], "");
    assert_eq!(code, 0);
    assert!(out.contains(&node.addr), "{out}");
}

#[test]
fn a_scripted_shell_session() {
    let node = spawn_node(&[]);
    let dir = Scratch::new();
    let module = dir.file("math.wat", wat::MATH);
    let script = format!(
        "# comments and blank lines are skipped\n\
         \n\
         load {module}\n\
         new $m1 {{\"fuel\": 10000000}}\n\
         call $i1 sq 12\n\
         set $x = call $i1 sq 3\n\
         call $i1 sq $x\n\
         set $two = new $m1\n\
         call $two work $x 10\n\
         exports $i1\n\
         vars\n\
         call $root instantiate $m1\n\
         set $three = $_\n\
         call $three sq 7\n\
         call $i1 nope\n\
         call $i1 sq 4\n\
         quit\n\
         call $i1 sq 5\n"
    );
    let (code, out, err) = rwc(&["shell", &node.addr], &script);
    let lines: Vec<&str> = out.lines().collect();
    let hash = module_hash(wat::MATH.as_bytes());
    assert_eq!(lines[0], format!("$m1 = module {hash}"), "{out}");
    assert_eq!(
        lines[1],
        format!("$i1 = instance of module {}", &hash[..12])
    );
    assert_eq!(lines[2], "144");
    assert_eq!(lines[3], "$x = 9");
    assert_eq!(lines[4], "81");
    assert!(lines[5].starts_with("$two = instance of module"), "{out}");
    assert_eq!(lines[6], "81");
    assert!(out.contains("sq_or_trap13"), "exports are listed: {out}");
    assert!(out.contains("$x        9"), "vars are listed: {out}");
    // A netref passed as an argument (the module, to the node's own `instantiate`), the
    // instance it returns kept from `$_` and called.
    assert!(out.contains("netref, in $_"), "{out}");
    assert!(out.contains("$three = netref"), "{out}");
    assert!(out.contains("\n49\n"), "{out}");
    assert_eq!(
        lines.last(),
        Some(&"16"),
        "the session goes on after an error: {out}"
    );
    assert!(!out.contains("25"), "nothing runs after quit: {out}");
    assert!(
        !out.contains("rwc>"),
        "no prompt when stdin is not a terminal: {out}"
    );
    // The failed command printed one line, and the script's exit code is its kind's.
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: unimplemented:"), "{err}");
    assert_eq!(code, 8);
}

#[test]
fn every_command_has_help_and_completions_exist() {
    for cmd in [
        "call",
        "run",
        "info",
        "ping",
        "upload",
        "map",
        "nodes",
        "registry",
        "shell",
        "completions",
    ] {
        let (code, out, err) = rwc(&[cmd, "--help"], "");
        assert_eq!(code, 0, "{cmd} --help: {err}");
        assert!(out.contains("Usage: rwc"), "{cmd} --help: {out}");
    }
    let (code, out, _) = rwc(&["completions", "bash"], "");
    assert_eq!(code, 0);
    assert!(out.contains("_rwc"), "{}", &out[..out.len().min(200)]);
    let (code, _, err) = rwc(&["frobnicate"], "");
    assert_eq!(code, 2, "usage errors exit 2: {err}");
}

#[test]
fn map_prints_each_result_once_the_ones_before_it_are_in() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    const BUSY: &str = r#"(module
      (func (export "busy") (param $n i64) (result i64)
        (loop $l
          (local.set $n (i64.sub (local.get $n) (i64.const 1)))
          (br_if $l (i64.gt_s (local.get $n) (i64.const 0))))
        (i64.const 7)))"#;
    let node = spawn_node(&[]);
    let dir = Scratch::new();
    let module = dir.file("busy.wat", BUSY);
    // 20 inputs that finish at once, then one that spins for seconds.
    let mut lines: Vec<String> = (0..20).map(|_| "[1]".to_owned()).collect();
    lines.push("[4000000000]".to_owned());
    let input = dir.file("in.jsonl", lines.join("\n"));

    let (mut child, mut out) = support::spawn_piped(
        Command::new(support::rwc_bin())
            .args([
                "map", "--nodes", &node.addr, &module, "busy", "--input", &input,
            ])
            .stderr(Stdio::null()),
    );
    let mut line = String::new();
    for i in 0..20 {
        line.clear();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "7", "result {i}");
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first 20 results were printed while the last input was still running"
    );
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "7");
    assert!(child.wait().unwrap().success());
}
