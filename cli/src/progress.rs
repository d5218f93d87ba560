//! Progress bars on stderr (drawn only when stderr is a terminal; the commands print a
//! one-line summary either way).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use rwc_client::MapProgress;

/// A bar counting bytes, for uploads.
pub fn bytes_bar(total: u64) -> ProgressBar {
    let bar = new_bar(
        total,
        "{prefix} [{bar:40.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    );
    bar.set_prefix("uploading");
    bar
}

/// A bar counting inputs, for maps; its message shows per-node counts.
pub fn map_bar(total: u64) -> ProgressBar {
    new_bar(
        total,
        "[{elapsed_precise}] [{bar:30.green/white}] {pos}/{len} {per_sec} {msg}",
    )
}

/// Per-node counts for a map bar: `127.0.0.1:4001 340  127.0.0.1:4002 ✗ 120`.
pub fn node_counts(p: &MapProgress) -> String {
    p.nodes
        .iter()
        .map(|n| {
            if n.alive {
                format!("{} {}", n.addr, n.done)
            } else {
                format!("{} ✗ {}", n.addr, n.done)
            }
        })
        .collect::<Vec<_>>()
        .join("  ")
}

/// A bar drawn with `template`, or a hidden one if stderr is not a terminal.
fn new_bar(total: u64, template: &str) -> ProgressBar {
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}
