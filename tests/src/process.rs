//! Processes that serve on an address they print: `rwc-node --listen 127.0.0.1:0`, `rwc
//! registry`. The end-to-end tests, the pool benchmark and the Mandelbrot demo start their
//! nodes with this (the last two include this file by path); the benchmarks build their
//! release node with it.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::{Mutex, PoisonError};

/// `cargo build --release -p rwc-node` in `workspace`, for a benchmark; returns the
/// executable's path, beside the running benchmark's own (`target/release/deps/bench-…`
/// → `target/release/rwc-node`).
pub fn build_release_node(workspace: &Path) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "rwc-node"])
        .current_dir(workspace)
        .status()
        .expect("run cargo");
    assert!(status.success(), "cannot build rwc-node");
    let exe = std::env::current_exe().expect("this executable's path");
    let bin = exe
        .ancestors()
        .nth(2)
        .expect("target/release")
        .join("rwc-node");
    assert!(bin.exists(), "{} missing", bin.display());
    bin
}

/// A child process that printed `listening on ADDR`; killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct Listening {
    /// The address it printed.
    pub addr: String,
    child: Mutex<Child>,
}

impl Listening {
    /// Starts `cmd` with stdin closed and stderr discarded, and waits for the `listening on
    /// ADDR` line on its stdout (which is drained afterwards, whatever it prints).
    pub fn start(cmd: Command) -> std::io::Result<Listening> {
        Listening::start_with_stderr(cmd, Stdio::null())
    }

    /// [`start`](Listening::start), sending its stderr (its log) to `stderr`, e.g. a file
    /// a test reads afterwards.
    pub fn start_with_stderr(mut cmd: Command, stderr: Stdio) -> std::io::Result<Listening> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()?;
        let mut lines = BufReader::new(
            child
                .stdout
                .take()
                .ok_or_else(|| std::io::Error::other(format!("{cmd:?} has no stdout")))?,
        );
        let mut first = String::new();
        lines.read_line(&mut first)?;
        let Some(addr) = first.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other(format!(
                "{cmd:?} printed {first:?}, not `listening on ADDR`"
            )));
        };
        let addr = addr.to_owned();
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = lines.read_to_end(&mut sink);
        });
        Ok(Listening {
            addr,
            child: Mutex::new(child),
        })
    }

    /// Kills the process now (no goodbye to anyone), and waits for it.
    pub fn kill(&self) {
        let mut child = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = child.kill();
        let _ = child.wait();
    }

    /// SIGTERM (the process may say goodbye: a node deregisters), then waits for it to
    /// exit. Nothing is sent to a process that has exited already.
    pub fn terminate(&self) {
        let mut child = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        if let Ok(None) = child.try_wait() {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
        }
        let _ = child.wait();
    }

    /// Its stderr, the first time, if it was started with stderr piped.
    pub fn take_stderr(&self) -> Option<ChildStderr> {
        let mut child = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        child.stderr.take()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .id()
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.kill();
    }
}
