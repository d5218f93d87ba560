//! The host capabilities a node can hand to guests: their names and methods.

/// Read-only facts about the node's machine.
pub const SYS: &str = "sys";
/// Log lines to the node's log and to the caller's output.
pub const LOG: &str = "log";
/// Allow-listed commands of the node's config ([`exec`]). As a grant, `exec` is every
/// command and `exec:NAME` one of them; a client may ask for either.
pub const EXEC: &str = "exec";
/// Every capability a node has as an object. Directories are granted too (`fs:NAME`,
/// [`FS_PREFIX`]), but reach the guest as WASI preopens, not as an object.
pub const ALL: &[&str] = &[SYS, LOG, EXEC];

/// `fs:NAME` grants, and asks for, the directory `NAME` of the node's config: the guest
/// sees it as a WASI preopen at the directory's guest path.
pub const FS_PREFIX: &str = "fs:";
/// `exec:NAME` grants, and asks for, the one command `NAME` of the node's config.
pub const EXEC_PREFIX: &str = "exec:";

/// The `sys` capability.
pub mod sys {
    /// Its methods, as introspection lists them.
    pub const METHODS: &[(&str, &str)] = &[
        ("hostname", "the machine's host name"),
        ("os", "operating system (linux, macos, …)"),
        ("arch", "CPU architecture (x86_64, aarch64, …)"),
        (CPU_COUNT, "CPUs available to the node"),
        ("uptime_secs", "seconds since the machine booted"),
        ("load_average", "1, 5 and 15 minute load averages"),
        ("memory", "total and available memory in bytes"),
        (
            "disk",
            "(path?) total and free bytes of the file system mounted at path (default /), one the node's disk_mounts lists",
        ),
        (REPORT, "all of the above in one map"),
    ];

    /// `cpu_count()`: CPUs available to the node (what a pool sizes itself by).
    pub const CPU_COUNT: &str = "cpu_count";
    /// `report()`: every other method's answer in one map, under the method's name.
    pub const REPORT: &str = "report";

    /// The keys of `report()`: every method but `report` itself, in the table's order.
    pub fn report_keys() -> impl Iterator<Item = &'static str> {
        METHODS
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| *name != REPORT)
    }
}

/// The `log` capability: one method per level, each `(message, fields?)`.
pub mod log {
    const DOC: &str = "(message, fields?): log a line at this level";

    /// Its methods (the levels), as introspection lists them.
    pub const METHODS: &[(&str, &str)] = &[
        ("error", DOC),
        ("warn", DOC),
        ("info", DOC),
        ("debug", DOC),
        ("trace", DOC),
    ];
}

/// The `exec` capability: run a command of the node's allow-list (`[[commands]]`).
///
/// Commands run without a shell, with only the environment the node's config gives them,
/// killed with their whole process group at their timeout, their output capped. A request
/// the allow-list does not cover (an unlisted command, a value outside its list or pattern,
/// a shell metacharacter, an argument the command does not take) is `denied`, naming what
/// was refused.
pub mod exec {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};
    use serde_bytes::ByteBuf;

    use crate::request::{requests, unit_or_default};

    requests! {
        /// Runs the command `name` with a value for each of its placeholders.
        Run = "run" -> ExecOutput {
            name: String,
            #[serde(default, deserialize_with = "unit_or_default")]
            params: BTreeMap<String, String>,
        }
        "(name, {placeholder: value}) run an allow-listed command; {status, stdout, stderr, timed_out}"

        /// The commands this capability may run.
        List = "list" -> Vec<CommandInfo> {}
            "() the commands granted: name, program, arguments and what each placeholder takes"
    }

    /// What running a command gave.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ExecOutput {
        /// Its exit status; `None` when a signal ended it (as at its timeout).
        pub status: Option<i32>,
        /// The signal that ended it, if one did.
        #[serde(default)]
        pub signal: Option<i32>,
        /// What it wrote to stdout (up to the command's output cap, with stderr).
        pub stdout: ByteBuf,
        /// What it wrote to stderr.
        pub stderr: ByteBuf,
        /// Whether it was killed, with its process group, at its timeout.
        pub timed_out: bool,
        /// Whether output past the command's cap was dropped.
        #[serde(default)]
        pub truncated: bool,
    }

    /// One command of the allow-list, as `list()` shows it.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct CommandInfo {
        /// What it is called by.
        pub name: String,
        /// The program's path on the node.
        pub program: String,
        /// Its argument template (`{placeholder}` where a value goes).
        pub args: Vec<String>,
        /// Each placeholder and what it takes.
        pub params: BTreeMap<String, ParamInfo>,
        /// Deadline, in milliseconds.
        pub timeout_ms: u64,
        /// Output kept, stdout and stderr together, in bytes.
        pub max_output_bytes: u64,
    }

    /// What one placeholder takes.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum ParamInfo {
        /// One of these values.
        OneOf(Vec<String>),
        /// A value matching this `^…$` regular expression.
        Pattern(String),
    }
}
