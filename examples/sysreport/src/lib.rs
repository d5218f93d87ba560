//! Remote administration with a capability: a report on the node's machine, read through
//! the `sys` capability the node hands to this instance (the guest itself sees nothing of
//! the machine).

use rwc_guest::{Error, Remote, Value, capability, export};
use serde::Serialize;

/// What the `sys` capability says about the node's machine; each field is whatever the
/// node answered.
#[derive(Debug, Serialize)]
pub struct Report {
    pub hostname: Value,
    pub os: Value,
    pub arch: Value,
    pub cpu_count: Value,
    pub uptime_secs: Value,
    pub load_average: Value,
    pub memory: Value,
    pub disk: Value,
}

/// A report on the node's machine. Fails with `denied` if the instance was not handed the
/// `sys` capability.
#[export]
fn report() -> Result<Report, Error> {
    let sys = capability("sys")?;
    let ask = |method: &str| -> Result<Value, Error> { sys.call::<Value>(method, ()) };
    Ok(Report {
        hostname: ask("hostname")?,
        os: ask("os")?,
        arch: ask("arch")?,
        cpu_count: ask("cpu_count")?,
        uptime_secs: ask("uptime_secs")?,
        load_average: ask("load_average")?,
        memory: ask("memory")?,
        disk: ask("disk")?,
    })
}

/// Asks for the `fs` capability, which a default node does not hand out: shows the
/// `denied` error a guest gets (and passes on) for a capability it was not given.
#[export]
fn report_denied() -> Result<String, Error> {
    let fs: Remote = capability("fs")?;
    Ok(format!(
        "the fs capability was handed over (handle {})",
        fs.handle()
    ))
}
