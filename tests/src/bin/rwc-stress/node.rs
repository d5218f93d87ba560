//! Node processes for the scenarios, and what the scenarios read about them.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rwc_tests::process::Listening;

use crate::Failure;

/// The `rwc-node` beside this executable.
pub(crate) fn default_bin() -> Result<PathBuf, Failure> {
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .ok_or("this executable is in no directory")?
        .join("rwc-node");
    if !bin.exists() {
        return Err(format!(
            "{} not found: build it (cargo build -p rwc-node) or pass --node-bin",
            bin.display()
        )
        .into());
    }
    Ok(bin)
}

/// Starts nodes from one executable.
pub(crate) struct Launcher {
    bin: PathBuf,
}

impl Launcher {
    pub(crate) fn new(bin: PathBuf) -> Launcher {
        Launcher { bin }
    }

    /// Starts `rwc-node --listen 127.0.0.1:0 ARGS…` and waits until it listens. Unless
    /// `args` choose a cache (`--cache-dir`), the node keeps none: a run never reuses what
    /// an earlier run compiled, nor writes to the user's cache.
    pub(crate) fn start(&self, args: &[&str]) -> Result<Node, Failure> {
        let mut cmd = Command::new(&self.bin);
        cmd.args(["--listen", "127.0.0.1:0"]).args(args);
        if !args
            .iter()
            .any(|a| *a == "--cache-dir" || *a == "--no-cache")
        {
            cmd.arg("--no-cache");
        }
        let proc = Listening::start(cmd)
            .map_err(|e| format!("cannot start {}: {e}", self.bin.display()))?;
        Ok(Node { proc })
    }
}

/// A running node, killed when dropped.
pub(crate) struct Node {
    proc: Listening,
}

impl Node {
    pub(crate) fn addr(&self) -> &str {
        &self.proc.addr
    }

    /// Whether the process is still running (not crashed).
    pub(crate) fn alive(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.proc.pid()))
            .map(|stat| {
                // The state follows the command name in parentheses; a zombie is dead.
                stat.rsplit_once(')')
                    .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(false)
    }

    /// Samples the RSS every `every` on a thread until the returned tracker is finished.
    pub(crate) fn track_rss(&self, every: Duration) -> Result<RssTracker, Failure> {
        let pid = self.proc.pid();
        let start = rss_of(pid)?;
        let state = Arc::new(Mutex::new(RssState {
            start,
            peak: start,
            stop: false,
            samples: vec![start],
        }));
        let s = state.clone();
        let thread = std::thread::spawn(move || {
            loop {
                std::thread::sleep(every);
                let rss = rss_of(pid).unwrap_or(0);
                let mut st = s.lock().unwrap_or_else(PoisonError::into_inner);
                st.peak = st.peak.max(rss);
                st.samples.push(rss);
                if st.stop {
                    break;
                }
            }
        });
        Ok(RssTracker {
            pid,
            state,
            thread: Some(thread),
        })
    }
}

fn rss_of(pid: u32) -> Result<u64, Failure> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or("no VmRSS in /proc/PID/status")?;
    Ok(kb * 1024)
}

struct RssState {
    start: u64,
    peak: u64,
    stop: bool,
    samples: Vec<u64>,
}

/// RSS samples of a node, taken on a thread.
pub(crate) struct RssTracker {
    pid: u32,
    state: Arc<Mutex<RssState>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// RSS at the start, at its peak, at the end, and after the warm-up (the first tenth of
/// the samples).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rss {
    pub(crate) start: u64,
    pub(crate) warm: u64,
    pub(crate) peak: u64,
    pub(crate) end: u64,
}

impl RssTracker {
    /// Stops sampling; takes a last sample.
    pub(crate) fn finish(mut self) -> Result<Rss, Failure> {
        let end = rss_of(self.pid)?;
        {
            let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            st.stop = true;
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let warm = st.samples[st.samples.len() / 10];
        Ok(Rss {
            start: st.start,
            warm,
            peak: st.peak.max(end),
            end,
        })
    }
}

impl Rss {
    /// "start 12.3 MiB, peak …, end …".
    pub(crate) fn describe(&self) -> String {
        format!(
            "start {}, after warm-up {}, peak {}, end {}",
            mib(self.start),
            mib(self.warm),
            mib(self.peak),
            mib(self.end)
        )
    }

    /// Fails if the RSS grew after the warm-up by more than `slack` bytes or a tenth:
    /// what a leak looks like over a long soak.
    pub(crate) fn check_flat(&self, slack: u64) -> Result<(), Failure> {
        let allowed = self.warm + slack.max(self.warm / 10);
        if self.end > allowed {
            return Err(format!(
                "node RSS grew from {} after warm-up to {} at the end: a leak?",
                mib(self.warm),
                mib(self.end)
            )
            .into());
        }
        Ok(())
    }
}

pub(crate) fn mib(bytes: u64) -> String {
    // Display only: the precision an f64 keeps is plenty.
    #[allow(clippy::cast_precision_loss)]
    let m = bytes as f64 / (1024.0 * 1024.0);
    format!("{m:.1} MiB")
}
