//! The host capabilities a node can hand to guests: their names and methods.

/// Read-only facts about the node's machine.
pub const SYS: &str = "sys";
/// Log lines to the node's log and to the caller's output.
pub const LOG: &str = "log";
/// Every capability a node has.
pub const ALL: &[&str] = &[SYS, LOG];

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
