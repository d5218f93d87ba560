//! What the end-to-end tests share: the `rwc-node` and `rwc` executables (built once per
//! test process), nodes and registries as real processes on 127.0.0.1, scratch files and
//! WAT modules that need no guest SDK.
#![allow(dead_code)]

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The directory holding the workspace's executables for this profile
/// (`target/debug`), after making sure `rwc-node` and `rwc` there are up to date.
///
/// The test executable lives in `target/<profile>/deps`; the binaries one level up. They
/// belong to other packages, so cargo does not build them for this one: the first call
/// runs `cargo build --workspace --bins --tests`, which keeps a stale binary from being
/// tested. It selects what `cargo test --workspace` selects, so it resolves dependency
/// features the same way and is a no-op after that command; a narrower selection such
/// as `-p rwc-node` would unify features differently and rebuild wasmtime a second time.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test executable has a path");
        let deps = exe.parent().expect("the test executable is in a directory");
        let dir = deps
            .parent()
            .expect("deps/ is in the profile directory")
            .to_path_buf();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("tests/ is in the workspace");
        let mut build = Command::new(cargo);
        build
            .args(["build", "--workspace", "--bins", "--tests"])
            .current_dir(workspace);
        if dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build
            .status()
            .expect("cannot run cargo to build the workspace's executables");
        assert!(
            status.success(),
            "`cargo build --workspace --bins --tests` failed"
        );
        for name in ["rwc-node", "rwc"] {
            assert!(
                dir.join(name).exists(),
                "{} missing after the build",
                dir.join(name).display()
            );
        }
        dir
    })
}

/// Path of the `rwc-node` executable.
pub fn node_bin() -> PathBuf {
    bin_dir().join("rwc-node")
}

/// Path of the `rwc` executable.
pub fn rwc_bin() -> PathBuf {
    bin_dir().join("rwc")
}

/// Path of the `rwc-stress` executable (its `hang-in-*` clients are killed by the fault
/// tests).
pub fn stress_bin() -> PathBuf {
    bin_dir().join("rwc-stress")
}

/// A node or a registry process, killed on drop.
pub type Proc = rwc_tests::process::Listening;

/// Starts `rwc-node --listen 127.0.0.1:0 ARGS…` and waits for its address. Unless `args`
/// choose a cache (`--cache-dir`), the node keeps none (`--no-cache`): a test never writes
/// into the real `~/.cache/rwc`.
pub fn spawn_node(args: &[&str]) -> Proc {
    spawn_listening(node_command(args))
}

/// The command [`spawn_node`] runs, to start it another way (with an environment).
pub fn node_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(node_bin());
    cmd.args(["--listen", "127.0.0.1:0"]).args(args);
    if !args
        .iter()
        .any(|a| *a == "--cache-dir" || *a == "--no-cache")
    {
        cmd.arg("--no-cache");
    }
    cmd
}

/// Starts `rwc-node --listen 127.0.0.1:0 ARGS…` with its log (stderr, without colours)
/// written to the file `log`, and waits for its address.
pub fn spawn_node_logging(args: &[&str], log: &Path) -> Proc {
    let mut cmd = node_command(args);
    cmd.env("NO_COLOR", "1").env_remove("RUST_LOG");
    let file = std::fs::File::create(log).expect("create the node's log file");
    let what = format!("{cmd:?}");
    Proc::start_with_stderr(cmd, Stdio::from(file))
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"))
}

/// Waits until the file `log` has a line holding every one of `needles`; returns it.
/// Panics after `limit` with the log so far.
pub fn log_line(log: &Path, needles: &[&str], limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no line with {needles:?} in {} within {limit:?}:\n{text}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `n` nodes.
pub fn spawn_nodes(n: usize) -> Vec<Proc> {
    (0..n).map(|_| spawn_node(&[])).collect()
}

/// Starts `rwc registry --listen 127.0.0.1:0` and waits for its address.
pub fn spawn_registry() -> Proc {
    let mut cmd = Command::new(rwc_bin());
    cmd.args(["registry", "--listen", "127.0.0.1:0"]);
    spawn_listening(cmd)
}

/// Starts a node or registry from `cmd` (see [`node_command`]) and waits for its address.
pub fn spawn_listening(cmd: Command) -> Proc {
    let what = format!("{cmd:?}");
    Proc::start(cmd).unwrap_or_else(|e| panic!("cannot start {what}: {e}"))
}

/// Runs `rwc ARGS…` with `stdin` as its input; returns (exit code, stdout, stderr).
pub fn rwc(args: &[&str], stdin: &str) -> (i32, String, String) {
    let (code, out, err) = rwc_bytes(args, stdin.as_bytes());
    (code, String::from_utf8_lossy(&out).into_owned(), err)
}

/// Asserts that a run ([`rwc`], [`rwc_at`]…) exited with `code` and said `needle` on
/// stderr; returns its stderr.
pub fn assert_exit((got, _, err): (i32, String, String), code: i32, needle: &str) -> String {
    assert_eq!(
        got, code,
        "the exit code of a run that should say {needle:?}: {err}"
    );
    assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    err
}

/// Runs `rwc COMMAND --node NODE ARGS…` with nothing on stdin: [`rwc`] for the commands
/// that talk to one node (`call`, `run`, `info`, `ping`…).
pub fn rwc_at(command: &str, node: &str, args: &[&str]) -> (i32, String, String) {
    rwc(&at(command, node, args), "")
}

/// Like [`rwc_at`], with `stdin` as its input (bytes) and stdout as bytes.
pub fn rwc_bytes_at(
    command: &str,
    node: &str,
    args: &[&str],
    stdin: &[u8],
) -> (i32, Vec<u8>, String) {
    rwc_bytes(&at(command, node, args), stdin)
}

/// `COMMAND --node NODE ARGS…`.
fn at<'a>(command: &'a str, node: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec![command, "--node", node];
    all.extend_from_slice(args);
    all
}

/// Like [`rwc`], with bytes in and stdout as bytes.
pub fn rwc_bytes(args: &[&str], stdin: &[u8]) -> (i32, Vec<u8>, String) {
    run_bytes(&rwc_bin(), args, stdin)
}

/// Runs `bin ARGS…` to completion with `stdin` as its input; returns (exit code, stdout,
/// stderr).
pub fn run(bin: &Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    let (code, out, err) = run_bytes(bin, args, stdin.as_bytes());
    (code, String::from_utf8_lossy(&out).into_owned(), err)
}

/// Like [`run`], with bytes in and stdout as bytes.
pub fn run_bytes(bin: &Path, args: &[&str], stdin: &[u8]) -> (i32, Vec<u8>, String) {
    use std::io::Write;
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let mut input = child.stdin.take().expect("stdin is piped");
    let bytes = stdin.to_owned();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&bytes);
    });
    let out = child.wait_with_output().expect("wait for the process");
    let _ = writer.join();
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts `cmd` with stdin closed and stdout piped (stderr as `cmd` has it): the child and
/// its stdout, to read line by line.
pub fn spawn_piped(cmd: &mut Command) -> (Child, BufReader<ChildStdout>) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", cmd.get_program().display()));
    let out = BufReader::new(child.stdout.take().expect("stdout is piped"));
    (child, out)
}

/// A scratch directory, removed on drop.
#[derive(Debug)]
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new() -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rwc-tests-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create a scratch directory");
        Scratch(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The path of `name` in the directory, as a string (nothing is written).
    pub fn join(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }

    /// Writes `name` and returns its path as a string.
    pub fn file(&self, name: &str, contents: impl AsRef<[u8]>) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write a scratch file");
        path.to_string_lossy().into_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `f` until it is true; panics with `what` after `limit`.
pub async fn eventually(limit: Duration, what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f().await {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `sq(n)` of [`wat::MATH`] on the node of `client`, in a fresh instance (the module is
/// uploaded if the node lacks it).
pub async fn square(
    client: &rwc_client::Client,
    n: i64,
) -> Result<rwc_client::Value, rwc_client::Error> {
    let module = client.upload(wat::MATH.as_bytes()).await?;
    let args = vec![rwc_client::Value::I64(n)];
    let options = rwc_client::InstanceOptions::default();
    client.run(&module, "sq", args, options).await
}

/// `sq(n)` of [`wat::MATH`] on every node of `pool` ([`Pool::each`]), after loading it.
///
/// [`Pool::each`]: rwc_client::Pool::each
pub async fn square_each(pool: &mut rwc_client::Pool, n: i64) -> Vec<rwc_client::EachResult> {
    pool.load(wat::MATH.as_bytes()).await.unwrap();
    let args = vec![rwc_client::Value::I64(n)];
    let options = rwc_client::InstanceOptions::default();
    pool.each("sq", args, &options).await.unwrap()
}

/// WAT modules: numeric exports only, so they need no guest SDK.
pub mod wat {
    /// `sq(n) = n * n`; `sq_or_trap13(n)` traps for 13; `work(n, spins)` counts down
    /// `spins` then returns `n * n`; `spin()` never returns.
    pub const MATH: &str = r#"(module
      (func (export "sq") (param i64) (result i64) local.get 0 local.get 0 i64.mul)
      (func (export "sq_or_trap13") (param i64) (result i64)
        (if (i64.eq (local.get 0) (i64.const 13)) (then unreachable))
        local.get 0 local.get 0 i64.mul)
      (func (export "work") (param $n i64) (param $spins i64) (result i64)
        (block $done (loop $l
          (br_if $done (i64.eqz (local.get $spins)))
          (local.set $spins (i64.sub (local.get $spins) (i64.const 1)))
          (br $l)))
        local.get $n local.get $n i64.mul)
      (func (export "spin") (loop $l (br $l))))"#;

    /// A valid module of about `len` bytes of WAT text (a big data segment).
    pub fn big(len: usize) -> String {
        let mut s = String::with_capacity(len + 100);
        s.push_str(r#"(module (memory 64) (data (i32.const 0) ""#);
        while s.len() < len {
            s.push_str("rwc rwc rwc ");
        }
        s.push_str(r#"") (func (export "one") (result i32) i32.const 1))"#);
        s
    }
}
