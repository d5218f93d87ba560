//! Ordinary WASI command programs, in C (wasi-libc) and in Rust (`std`), run with
//! `rwc run` as `wasmtime run` runs them: stdout and stderr byte for byte, the exit code of
//! `proc_exit`, and directories the node's config grants (`[[dirs]]`, `fs:NAME`) as
//! preopens, with read-only enforced and no way out.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rwc_tests::guests;
use support::{Proc, Scratch, log_line, rwc, rwc_at, rwc_bin, spawn_node, spawn_node_logging, wat};

/// The two builds of `examples/wasi-fs`: (language, module).
const PROGRAMS: [(&str, &str); 2] = [("C", guests::WASI_FS_C), ("Rust", guests::WASI_FS_RS)];

/// A node whose config grants three directories: `data` (read-write, empty), `logs`
/// (read-only: `hello.txt`, `sub/a.txt`) and `esc` (read-write, with symlinks pointing out
/// of it at `secret.txt` beside it), plus one it does not grant (`hidden`).
struct Fixture {
    dir: Scratch,
    node: Proc,
    log: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = Scratch::new();
        let root = dir.path();
        for d in ["data", "logs/sub", "esc", "hidden"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("logs/hello.txt"), "hello\n").unwrap();
        std::fs::write(root.join("logs/sub/a.txt"), "a\n").unwrap();
        std::fs::write(root.join("secret.txt"), "secret\n").unwrap();
        std::os::unix::fs::symlink("../secret.txt", root.join("esc/out-rel")).unwrap();
        std::os::unix::fs::symlink(root.join("secret.txt"), root.join("esc/out-abs")).unwrap();
        let r = root.display();
        let config = dir.file(
            "node.toml",
            format!(
                r#"grants = ["fs:data", "fs:logs", "fs:esc"]
[[dirs]]
name = "data"
path = "{r}/data"
guest_path = "/data"
read_only = false
[[dirs]]
name = "logs"
path = "{r}/logs"
guest_path = "/logs"
read_only = true
[[dirs]]
name = "esc"
path = "{r}/esc"
guest_path = "/esc"
read_only = false
[[dirs]]
name = "hidden"
path = "{r}/hidden"
guest_path = "/hidden"
"#
            ),
        );
        let log = root.join("node.log");
        let node = spawn_node_logging(&["--config", &config], &log);
        Fixture { dir, node, log }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `rwc run MODULE FLAGS… -- ARGS…`: (exit code, stdout, stderr).
    fn run(&self, module: &str, flags: &[&str], args: &[&str]) -> (i32, String, String) {
        let mut all = vec!["run", "--node", &self.node.addr, module];
        all.extend_from_slice(flags);
        all.push("--");
        all.extend_from_slice(args);
        rwc(&all, "")
    }

    /// Runs `wasi-fs MODE PATHS…` of both [`PROGRAMS`] with `flags`, each checked with
    /// [`assert_passed`] and its count of checks (`oks`: C's, then Rust's); `after` runs
    /// after each, given the language.
    fn run_both(
        &self,
        flags: &[&str],
        mode: &str,
        paths: &[&str],
        oks: [usize; 2],
        mut after: impl FnMut(&str),
    ) {
        for ((lang, module), oks) in PROGRAMS.into_iter().zip(oks) {
            let args: Vec<&str> = [mode].into_iter().chain(paths.iter().copied()).collect();
            let result = self.run(module, flags, &args);
            assert_passed(&format!("{lang} {mode}"), &result, oks);
            after(lang);
        }
    }

    /// Waits for the node's audit log line with all of `fields`; returns it.
    fn audited(&self, fields: &[&str]) -> String {
        let needles: Vec<&str> = ["rwc::audit"]
            .into_iter()
            .chain(fields.iter().copied())
            .collect();
        log_line(&self.log, &needles, Duration::from_secs(10))
    }
}

/// The program's checks passed: exit 0, `0 failures` last, no FAIL line, and `oks`
/// checks ran (a check that did not run is noticed).
fn assert_passed(what: &str, (code, out, err): &(i32, String, String), oks: usize) {
    assert!(!out.contains("FAIL"), "{what}:\n{out}{err}");
    assert_eq!(
        out.lines().last(),
        Some("0 failures"),
        "{what}:\n{out}{err}"
    );
    assert_eq!(*code, 0, "{what}:\n{out}{err}");
    let ran = out.lines().filter(|l| l.starts_with("ok ")).count();
    assert_eq!(ran, oks, "{what}: checks that ran:\n{out}");
}

#[test]
fn stdout_is_captured_by_a_shell_redirect_and_exit_33_is_the_exit_code() {
    let node = spawn_node(&[]);
    let dir = Scratch::new();
    for (lang, module) in PROGRAMS {
        let out = dir.path().join(format!("{lang}.out"));
        let err = dir.path().join(format!("{lang}.err"));
        let status = Command::new("sh")
            .arg("-c")
            .arg(r#""$RWC" run --node "$NODE" "$MODULE" -- exit > "$OUT" 2> "$ERR""#)
            .env("RWC", rwc_bin())
            .env("NODE", &node.addr)
            .env("MODULE", module)
            .env("OUT", &out)
            .env("ERR", &err)
            .status()
            .expect("run sh");
        assert_eq!(status.code(), Some(33), "{lang}: {status}");
        // Byte for byte, a non-UTF-8 byte and a NUL included, and nothing else: no JSON.
        assert_eq!(
            std::fs::read(&out).unwrap(),
            b"out\n\xff\x00",
            "{lang} stdout"
        );
        assert_eq!(std::fs::read(&err).unwrap(), b"err\n", "{lang} stderr");
    }
}

#[test]
fn argv0_is_the_file_name_unless_given_and_env_reaches_the_program() {
    let node = spawn_node(&[]);
    for (lang, module) in PROGRAMS {
        let name = Path::new(module).file_name().unwrap().to_str().unwrap();
        // An unknown mode prints the usage with argv[0], exit 100.
        let (code, out, err) = rwc_at("run", &node.addr, &[module, "--", "bogus"]);
        assert_eq!(code, 100, "{lang}: {out}{err}");
        assert!(err.starts_with(&format!("usage: {name} ")), "{lang}: {err}");
        assert!(out.is_empty(), "{lang}: {out}");
        let (code, _, err) = rwc_at(
            "run",
            &node.addr,
            &[module, "--argv0", "probe", "--", "bogus"],
        );
        assert_eq!(code, 100, "{lang}: {err}");
        assert!(err.starts_with("usage: probe "), "{lang}: {err}");

        let (code, out, err) = rwc_at(
            "run",
            &node.addr,
            &[module, "--env", "COLOR=blue", "--", "env", "COLOR"],
        );
        assert_eq!((code, out.as_str()), (0, "COLOR=blue\n"), "{lang}: {err}");
        let (_, out, _) = rwc_at("run", &node.addr, &[module, "--", "env", "HOME"]);
        assert_eq!(
            out, "HOME unset\n",
            "{lang}: nothing of the node's environment"
        );
    }
}

#[test]
fn a_trap_is_exit_6_with_a_message_and_a_module_without_start_is_refused() {
    let node = spawn_node(&[]);
    let dir = Scratch::new();
    let trap = dir.file(
        "trap.wat",
        r#"(module (func (export "_start") unreachable))"#,
    );
    let (code, out, err) = rwc_at("run", &node.addr, &[&trap]);
    assert_eq!(code, 6, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.starts_with("rwc: trapped: "), "{err}");
    assert!(err.contains("unreachable"), "{err}");

    let math = dir.file("math.wat", wat::MATH);
    let (code, _, err) = rwc_at("run", &node.addr, &[&math]);
    assert_eq!(code, 8, "{err}");
    assert!(err.contains("no `_start`") && err.contains("sq"), "{err}");
    // With an export, `run` keeps printing the result as JSON.
    let (code, out, err) = rwc_at("run", &node.addr, &[&math, "sq", "7"]);
    assert_eq!((code, out.trim()), (0, "49"), "{err}");
}

#[test]
fn the_file_api_works_in_a_read_write_grant_and_writes_are_audited() {
    let f = Fixture::new();
    f.run_both(
        &["--capability", "fs:data"],
        "rw",
        &["/data"],
        [69, 29],
        |lang| {
            // The program cleaned up after itself, on the host too.
            let left: Vec<_> = std::fs::read_dir(f.root().join("data")).unwrap().collect();
            assert!(left.is_empty(), "{lang}: {left:?}");
        },
    );
    // Each change through the read-write grant is in the node's audit log.
    let line = f.audited(&[
        "op=\"open_for_write\"",
        "path=\"/data/f.txt\"",
        "outcome=\"ok\"",
    ]);
    assert!(line.contains("principal="), "{line}");
    f.audited(&[
        "op=\"rename\"",
        "path=\"/data/g.txt\"",
        "to=\"/data/f.txt\"",
    ]);
    f.audited(&["op=\"unlink\"", "path=\"/data/sub2/inner.txt\""]);
}

#[test]
fn a_read_only_grant_reads_and_refuses_every_change() {
    let f = Fixture::new();
    f.run_both(
        &["--capability", "fs:logs"],
        "ro",
        &["/logs"],
        [22, 17],
        |_| {},
    );
    assert_eq!(
        std::fs::read_to_string(f.root().join("logs/hello.txt")).unwrap(),
        "hello\n"
    );
    let names: Vec<_> = std::fs::read_dir(f.root().join("logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "nothing was created: {names:?}");
    // Refused attempts are audited too.
    f.audited(&["path=\"/logs/hello.txt\"", "outcome=\"EPERM\""]);
}

#[test]
fn dot_dot_absolute_symlink_and_hard_link_escapes_fail() {
    let f = Fixture::new();
    let flags = ["--capability", "fs:esc", "--capability", "fs:logs"];
    f.run_both(&flags, "escape", &["/esc", "/logs"], [21, 11], |_| {
        // Clean for the next program: what the C one made inside its own directory.
        for made in ["mine", "x"] {
            let p = f.root().join("esc").join(made);
            let _ = std::fs::remove_file(&p).or_else(|_| std::fs::remove_dir(&p));
        }
    });
    assert_eq!(
        std::fs::read_to_string(f.root().join("secret.txt")).unwrap(),
        "secret\n"
    );
    assert!(!f.root().join("planted.txt").exists());
    assert_eq!(
        std::fs::read_to_string(f.root().join("logs/hello.txt")).unwrap(),
        "hello\n"
    );
}

#[test]
fn without_a_grant_there_is_no_directory() {
    let f = Fixture::new();
    // Nothing asked: the guest sees no preopen at all.
    f.run_both(&[], "none", &["/logs"], [3, 2], |_| {});
    // A directory the config has but does not grant: denied, exit code 5, nothing runs.
    let (code, out, err) = f.run(
        guests::WASI_FS_C,
        &["--capability", "fs:hidden"],
        &["none", "/hidden"],
    );
    assert_eq!(code, 5, "{out}{err}");
    assert!(err.contains("lacks the grant `fs:hidden`"), "{err}");
    assert!(out.is_empty(), "{out}");
    // A directory the node does not have: bad argument, listing the ones it has. The
    // client names grants, never host paths.
    let (code, _, err) = f.run(
        guests::WASI_FS_C,
        &["--capability", "fs:/etc"],
        &["none", "/etc"],
    );
    assert_eq!(code, 7, "{err}");
    assert!(err.contains("fs:data") && err.contains("fs:logs"), "{err}");
}
