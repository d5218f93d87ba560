//! The node's audit trail: every command run through the `exec` capability and every
//! change a guest makes under a granted directory, with who asked (the principal), what
//! (the command and its arguments, or the operation and guest path) and the outcome.
//!
//! Events go through `tracing` at level INFO with the target [`TARGET`], so an operator
//! reads them in the node's log or picks them out: `RUST_LOG=rwc::audit=info` keeps only
//! them. Refused requests are logged too, with why.

/// The `tracing` target of every audit event.
pub const TARGET: &str = "rwc::audit";

/// An `exec` request: the command, its argument vector (what was asked, if it was refused
/// before one was built) and what became of it.
pub(crate) fn exec(principal: &str, command: &str, argv: &[String], outcome: &str) {
    tracing::info!(
        target: TARGET,
        principal,
        command,
        argv = ?argv,
        outcome,
        "exec"
    );
}

/// A change under a granted directory: the WASI operation (`open_for_write`, `rename`,
/// `unlink`…), the guest path, the second path of a rename or link (the target of a
/// symlink), and the outcome (`ok` or the errno).
pub(crate) fn file(principal: &str, op: &str, path: &str, to: Option<&str>, outcome: &str) {
    tracing::info!(
        target: TARGET,
        principal,
        op,
        path,
        to = to.unwrap_or(""),
        outcome,
        "file change"
    );
}
