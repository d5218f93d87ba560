//! A fleet report: what an operator asks of every machine, from a guest that sees only what
//! it is given. With the `sys` capability and the read-only directory `fs:logs` (at
//! `/logs`), `report()` returns the node's disk usage, the 10 largest files under the log
//! directory and the last lines that mention "error".
//!
//! ```sh
//! rwc each --nodes A,B,C fleet_report.wasm report --capability sys --capability fs:logs
//! ```

use std::collections::VecDeque;
use std::fs;
use std::path::Path;

use rwc_guest::{Error, ErrorKind, capability, export};
use serde::{Deserialize, Serialize};

/// Where the `fs:logs` grant appears in the guest.
const LOG_DIR: &str = "/logs";
/// How many of the largest files, and of the last error lines, are reported.
const TOP: usize = 10;
const LAST_ERRORS: usize = 5;

/// One node's answer.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The node's host name.
    pub host: String,
    /// Percentage of the node's root file system in use.
    pub disk_used_pct: f64,
    /// Free bytes on it.
    pub disk_free: u64,
    /// Files under the log directory.
    pub log_files: usize,
    /// The largest of them: path under the log directory and size in bytes.
    pub largest: Vec<(String, u64)>,
    /// The last lines that mention "error" (any case), as `file:line: text`.
    pub errors: Vec<String>,
}

/// The `sys` capability's `disk()` answer.
#[derive(Debug, Deserialize)]
struct Disk {
    total: u64,
    free: u64,
}

/// The report for this node. Fails with `denied` if the instance lacks `sys`, and says
/// which grant is missing if `/logs` is not there.
#[export]
fn report() -> Result<Report, Error> {
    let sys = capability("sys")?;
    let host: String = sys.call("hostname", ())?;
    let disk: Disk = sys.call("disk", ("/",))?;
    let mut files = Vec::new();
    walk(Path::new(LOG_DIR), &mut files).map_err(|e| {
        Error::new(
            ErrorKind::Denied,
            format!("cannot read {LOG_DIR} ({e}): instantiate with `--capability fs:logs`"),
        )
    })?;
    let mut errors = VecDeque::new();
    // Oldest first by name, so "last" means the end of the newest file.
    files.sort();
    for (path, _) in &files {
        let Ok(text) = fs::read(path) else { continue };
        let text = String::from_utf8_lossy(&text);
        for (n, line) in text.lines().enumerate() {
            if line.to_ascii_lowercase().contains("error") {
                if errors.len() == LAST_ERRORS {
                    errors.pop_front();
                }
                errors.push_back(format!("{}:{}: {}", short(path), n + 1, line.trim()));
            }
        }
    }
    let log_files = files.len();
    files.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    files.truncate(TOP);
    let used = disk.total.saturating_sub(disk.free);
    Ok(Report {
        host,
        disk_used_pct: if disk.total == 0 {
            0.0
        } else {
            (used as f64 * 1000.0 / disk.total as f64).round() / 10.0
        },
        disk_free: disk.free,
        log_files,
        largest: files.into_iter().map(|(p, size)| (short(&p), size)).collect(),
        errors: errors.into(),
    })
}

/// Every regular file below `dir`, with its size (symlinks are not followed).
fn walk(dir: &Path, out: &mut Vec<(String, u64)>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            walk(&path, out)?;
        } else if kind.is_file() {
            out.push((path.to_string_lossy().into_owned(), entry.metadata()?.len()));
        }
    }
    Ok(())
}

/// A path relative to the log directory.
fn short(path: &str) -> String {
    path.strip_prefix(LOG_DIR)
        .map(|p| p.trim_start_matches('/'))
        .unwrap_or(path)
        .to_owned()
}
