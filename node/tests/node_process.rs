//! The `rwc-node` binary as a user runs it: a real process on 127.0.0.1.

mod common;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::wat;
use rwc_protocol::transport::connect_child;
use rwc_protocol::{Connection, ConnectionConfig, ErrorKind, NetRef, Service, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_rwc-node");

/// Starts `rwc-node --listen 127.0.0.1:0 ARGS…` and reads the address it prints.
async fn spawn(args: &[&str]) -> (Child, String) {
    let (child, addr, _) = spawn_watched(args).await;
    (child, addr)
}

/// Like [`spawn`], also collecting any further stdout lines (there must be none).
async fn spawn_watched(args: &[&str]) -> (Child, String, Arc<Mutex<Vec<String>>>) {
    // A test never writes into the real `~/.cache/rwc`: no cache unless one is chosen.
    let no_cache = !args
        .iter()
        .any(|a| *a == "--cache-dir" || *a == "--no-cache");
    let mut cmd = Command::new(BIN);
    cmd.args(args).args(no_cache.then_some("--no-cache"));
    spawn_command(cmd).await
}

/// Starts `cmd` (`rwc-node` with its arguments) listening on `127.0.0.1:0`, its log
/// discarded.
async fn spawn_command(cmd: Command) -> (Child, String, Arc<Mutex<Vec<String>>>) {
    spawn_logging(cmd, Stdio::null()).await
}

/// [`spawn_command`] with the node's log (stderr) going to `log`.
async fn spawn_logging(mut cmd: Command, log: Stdio) -> (Child, String, Arc<Mutex<Vec<String>>>) {
    let mut child = cmd
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let addr = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    let extra = Arc::new(Mutex::new(Vec::new()));
    let sink = extra.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            sink.lock().unwrap().push(line);
        }
    });
    (child, addr, extra)
}

/// `add(a, b)` of the ADD module, run in a fresh instance by the node.
async fn add(conn: &Connection, module: &NetRef, a: i64, b: i64) -> i64 {
    let args = vec![Value::I64(a), Value::I64(b)];
    let sum = common::run(&conn.root(), module, "add", args)
        .await
        .unwrap();
    sum.as_i64().expect("add returns a number")
}

async fn connect(addr: &str) -> Connection {
    common::try_connect(addr).await.unwrap()
}

async fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap()
}

/// The hash a node names these bytes by.
fn module_hash(bytes: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes.as_bytes()))
}

async fn info_u64(conn: &Connection, key: &str) -> u64 {
    conn.root()
        .call_value("info", vec![])
        .await
        .unwrap()
        .get(key)
        .and_then(Value::as_u64)
        .unwrap()
}

/// Uploads the `add` module to the node at `addr` (a first start, so it compiles once),
/// then stops the node cleanly; returns the module's hash.
async fn upload_then_stop(node: &mut Child, addr: &str) -> String {
    let conn = connect(addr).await;
    let module = common::upload(&conn.root(), wat::ADD.as_bytes())
        .await
        .unwrap();
    let hash: String = module.call("hash", ()).await.unwrap();
    assert_eq!(info_u64(&conn, "compiles").await, 1);
    drop((module, conn));
    assert!(terminate(node).await.success());
    hash
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_node_serves_a_cached_module_without_compiling() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().to_str().unwrap();
    let (mut first, addr) = spawn(&["--cache-dir", cache]).await;
    let hash = upload_then_stop(&mut first, &addr).await;

    let (mut second, addr) = spawn(&["--cache-dir", cache]).await;
    let conn = connect(&addr).await;
    let module: Option<NetRef> = conn.root().call("module", (hash,)).await.unwrap();
    let module = module.expect("the restarted node finds the module in its disk cache");
    assert_eq!(add(&conn, &module, 2, 3).await, 5);
    assert_eq!(
        info_u64(&conn, "compiles").await,
        0,
        "served with no compile"
    );
    assert_eq!(info_u64(&conn, "disk_cache_hits").await, 1);
    drop(conn);
    assert!(terminate(&mut second).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_caches_by_default_so_a_second_start_compiles_nothing() {
    // The default cache, `$XDG_CACHE_HOME/rwc`, with XDG_CACHE_HOME pointed at a scratch
    // directory: no cache flag at all.
    let home = tempfile::tempdir().unwrap();
    let start = || {
        let mut cmd = Command::new(BIN);
        cmd.env("XDG_CACHE_HOME", home.path());
        spawn_command(cmd)
    };
    let (mut first, addr, _) = start().await;
    let hash = upload_then_stop(&mut first, &addr).await;
    let cached: Vec<_> = std::fs::read_dir(home.path().join("rwc"))
        .expect("the node made $XDG_CACHE_HOME/rwc")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        cached
            .iter()
            .any(|f| f.starts_with(&hash) && f.ends_with(".cwasm")),
        "the compiled module is in the default cache: {cached:?}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(home.path().join("rwc"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "only the node's user may write native code there"
        );
    }

    let (mut second, addr, _) = start().await;
    let conn = connect(&addr).await;
    let module: Option<NetRef> = conn.root().call("module", (hash,)).await.unwrap();
    let module = module.expect("the second node finds the module in the default cache");
    assert_eq!(add(&conn, &module, 2, 3).await, 5);
    assert_eq!(info_u64(&conn, "compiles").await, 0, "nothing compiled");
    assert_eq!(info_u64(&conn, "disk_cache_hits").await, 1);
    drop(conn);
    assert!(terminate(&mut second).await.success());

    // `--no-cache`: the same start compiles again, and leaves the cache as it was.
    let mut cmd = Command::new(BIN);
    cmd.env("XDG_CACHE_HOME", home.path()).arg("--no-cache");
    let (mut third, addr, _) = spawn_command(cmd).await;
    let conn = connect(&addr).await;
    let found: Option<NetRef> = conn
        .root()
        .call("module", (module_hash(wat::ADD),))
        .await
        .unwrap();
    assert!(found.is_none(), "a node without a cache has nothing yet");
    let module = common::upload(&conn.root(), wat::ADD.as_bytes())
        .await
        .unwrap();
    assert_eq!(add(&conn, &module, 1, 1).await, 2);
    assert_eq!(info_u64(&conn, "compiles").await, 1);
    assert_eq!(info_u64(&conn, "disk_cache_hits").await, 0);
    drop((module, conn));
    assert!(terminate(&mut third).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_calls_in_flight_finish_then_exits_zero() {
    let (mut child, addr) = spawn(&["--grace-period-secs", "20"]).await;
    let conn = connect(&addr).await;
    let module = common::upload(&conn.root(), wat::PRINT_THEN_SPIN.as_bytes())
        .await
        .unwrap();
    let inst: NetRef = conn
        .root()
        .call("instantiate", (module, Value::Unit))
        .await
        .unwrap();
    let call = tokio::spawn(async move { inst.call::<i32>("run", (1500,)).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    // The call in flight still gets its answer.
    assert_eq!(call.await.unwrap().unwrap(), 7);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    // And nobody new gets in.
    assert!(common::try_connect(&addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_mode_serves_one_connection() {
    let mut cmd = Command::new(BIN);
    cmd.args(["--stdio", "--no-cache"]);
    let (conn, mut child) = connect_child(
        cmd,
        Service::new("t").into_object(),
        ConnectionConfig::default(),
    )
    .await
    .unwrap();
    let module = common::upload(&conn.root(), wat::ADD.as_bytes())
        .await
        .unwrap();
    assert_eq!(add(&conn, &module, 20, 22).await, 42);
    conn.close();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_file_sets_limits_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.toml");
    std::fs::write(&path, "grace_period_secs = 1\n[limits]\ncall_timeout_ms = 300\nmax_instances_per_connection = 3\n").unwrap();
    let (mut child, addr, extra) = spawn_watched(&[
        "--config",
        path.to_str().unwrap(),
        "--max-instances-per-connection",
        "4",
    ])
    .await;
    let conn = connect(&addr).await;
    let info = conn.root().call_value("info", vec![]).await.unwrap();
    let limits = info.get("limits").unwrap();
    assert_eq!(
        limits.get("call_timeout_ms").and_then(Value::as_u64),
        Some(300)
    );
    assert_eq!(
        limits
            .get("max_instances_per_connection")
            .and_then(Value::as_u64),
        Some(4)
    );
    let module = common::upload(&conn.root(), wat::SPIN.as_bytes())
        .await
        .unwrap();
    let start = std::time::Instant::now();
    let e = common::run(&conn.root(), &module, "spin", vec![])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut);
    assert!(start.elapsed() < Duration::from_secs(5));
    drop(conn);
    assert!(terminate(&mut child).await.success());
    assert!(
        extra.lock().unwrap().is_empty(),
        "stdout holds only the `listening on` line: {extra:?}"
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[limits]\ncall_timeout = 1\n").unwrap();
    let out = std::process::Command::new(BIN)
        .args(["--no-cache", "--config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("call_timeout"),
        "names the bad key"
    );
}

/// A node whose log goes to a file writes plain text: no colour escape codes, although
/// nothing set `NO_COLOR`.
#[tokio::test]
async fn a_log_written_to_a_file_has_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.log");
    let mut cmd = Command::new(BIN);
    cmd.args(["--no-cache"])
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info");
    let file = std::fs::File::create(&path).unwrap();
    let (mut child, _addr, _) = spawn_logging(cmd, file.into()).await;
    terminate(&mut child).await;
    let log = std::fs::read_to_string(&path).unwrap();
    assert!(log.contains("rwc-node ready"), "{log}");
    assert!(
        !log.contains('\x1b'),
        "escape codes in the log file: {log:?}"
    );
}
