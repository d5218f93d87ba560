//! The `sys` capability: read-only facts about the node's machine.

use std::collections::BTreeMap;
use std::path::Path;

use rwc_api::capability::{self, sys};
use rwc_protocol::object::{Call, Dispatch, MethodTable};
use rwc_protocol::{Error, ErrorKind, Value, to_value};
use serde::Serialize;

use crate::blocking;

/// Hostname, OS, architecture, CPU count, uptime, load average, memory and disk totals.
/// `disk(path)` reports only on the mount points the node's config lists
/// (`disk_mounts`); any other path is `denied`, so a guest cannot probe the file system.
#[derive(Debug)]
pub struct SysCapability {
    disk_mounts: Vec<String>,
}

impl SysCapability {
    /// The capability, reporting on the file systems mounted at `disk_mounts`.
    pub fn new(disk_mounts: Vec<String>) -> Self {
        SysCapability { disk_mounts }
    }
}

/// Statistics of the file system mounted at `path`, if `mounts` (the config's
/// `disk_mounts`) lists it.
fn listed_disk(mounts: &[String], path: &str) -> Result<Disk, Error> {
    let listed = |m: &String| normalized(m) == normalized(path);
    if !mounts.iter().any(listed) {
        let lists = if mounts.is_empty() {
            "none".to_owned()
        } else {
            mounts.join(", ")
        };
        return Err(Error::new(
            ErrorKind::Denied,
            format!(
                "sys.disk: `{path}` is not a mount point this node reports on (its config's `disk_mounts` lists: {lists})"
            ),
        ));
    }
    disk(path)
}

/// `/data/` and `/data` are the same mount point.
fn normalized(path: &str) -> &str {
    match path.trim_end_matches('/') {
        "" => "/",
        p => p,
    }
}

const METHODS: MethodTable = MethodTable(sys::METHODS);

#[derive(Serialize)]
struct Memory {
    total: u64,
    available: u64,
}

#[derive(Serialize)]
struct Disk {
    path: String,
    total: u64,
    free: u64,
}

impl Dispatch for SysCapability {
    const TYPE_NAME: &'static str = capability::SYS;
    const METHODS: MethodTable = METHODS;

    async fn dispatch<'a>(&'a self, call: Call<'a>) -> Result<Value, Error> {
        let method = call.method;
        match method {
            "os" => to_value(std::env::consts::OS),
            "arch" => to_value(std::env::consts::ARCH),
            sys::CPU_COUNT => to_value(&cpu_count()),
            "hostname" | "uptime_secs" | "load_average" | "memory" | "disk" | sys::REPORT => {
                // These read files (`/proc`) or ask the kernel about a file system
                // (`statvfs`, which a hung mount can block forever): never on the task
                // that serves the connection.
                let path = match call.args.first() {
                    Some(Value::String(p)) => p.clone(),
                    _ => "/".to_owned(),
                };
                let method = method.to_owned();
                let mounts = self.disk_mounts.clone();
                let answer = move || query(&method, &path, &mounts);
                blocking::run(&format!("sys.{}", call.method), answer).await?
            }
            other => Err(Self::unknown(other)),
        }
    }
}

/// Answers a method of `sys` that touches the file system; `path` is `disk`'s argument.
fn query(method: &str, path: &str, mounts: &[String]) -> Result<Value, Error> {
    match method {
        "hostname" => to_value(&hostname()),
        "uptime_secs" => to_value(&uptime_secs()?),
        "load_average" => to_value(&load_average()?),
        "memory" => to_value(&memory()?),
        "disk" => to_value(&listed_disk(mounts, path)?),
        sys::REPORT => {
            let mut m = BTreeMap::new();
            m.insert("hostname", to_value(&hostname())?);
            m.insert("os", to_value(std::env::consts::OS)?);
            m.insert("arch", to_value(std::env::consts::ARCH)?);
            m.insert("cpu_count", to_value(&cpu_count())?);
            m.insert("uptime_secs", to_value(&uptime_secs()?)?);
            m.insert("load_average", to_value(&load_average()?)?);
            m.insert("memory", to_value(&memory()?)?);
            // The report includes the root file system if the node reports on it.
            if let Ok(d) = listed_disk(mounts, "/") {
                m.insert("disk", to_value(&d)?);
            }
            to_value(&m)
        }
        other => Err(SysCapability::unknown(other)),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// The CPUs this process may use.
pub(crate) fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

fn proc_file(path: &str) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|e| Error::failed(format!("cannot read {path}: {e}")))
}

fn uptime_secs() -> Result<f64, Error> {
    let text = proc_file("/proc/uptime")?;
    text.split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::failed("cannot parse /proc/uptime"))
}

fn load_average() -> Result<[f64; 3], Error> {
    let text = proc_file("/proc/loadavg")?;
    let mut it = text.split_whitespace().map(str::parse::<f64>);
    match (it.next(), it.next(), it.next()) {
        (Some(Ok(a)), Some(Ok(b)), Some(Ok(c))) => Ok([a, b, c]),
        _ => Err(Error::failed("cannot parse /proc/loadavg")),
    }
}

fn memory() -> Result<Memory, Error> {
    let text = proc_file("/proc/meminfo")?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kb| kb * 1024)
            .ok_or_else(|| Error::failed(format!("cannot find {name} in /proc/meminfo")))
    };
    Ok(Memory {
        total: field("MemTotal:")?,
        available: field("MemAvailable:")?,
    })
}

fn disk(path: &str) -> Result<Disk, Error> {
    let st = rustix::fs::statvfs(Path::new(path))
        .map_err(|e| Error::failed(format!("cannot stat file system of {path}: {e}")))?;
    Ok(Disk {
        path: path.to_owned(),
        total: st.f_blocks.saturating_mul(st.f_frsize),
        free: st.f_bavail.saturating_mul(st.f_frsize),
    })
}

#[cfg(test)]
mod tests {
    use rwc_protocol::{CallContext, Object};

    use super::*;

    #[tokio::test]
    async fn report_has_every_field() {
        let sys = SysCapability::new(vec!["/".to_owned()]);
        let r = sys
            .call(CallContext::local(), "report", vec![])
            .await
            .unwrap();
        for key in sys::report_keys() {
            assert!(r.get(key).is_some(), "missing {key} in {r:?}");
        }
        assert!(
            r.get("memory")
                .and_then(|m| m.get("total"))
                .and_then(Value::as_u64)
                .unwrap()
                > 0
        );
        let err = sys
            .call(CallContext::local(), "reboot", vec![])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), rwc_protocol::ErrorKind::Unimplemented);
    }

    #[tokio::test]
    async fn disk_reports_only_on_listed_mount_points() {
        let sys = SysCapability::new(vec!["/".to_owned()]);
        let root = sys
            .call(CallContext::local(), "disk", vec![Value::from("/")])
            .await
            .unwrap();
        assert!(root.get("total").and_then(Value::as_u64).unwrap() > 0);
        for path in ["/etc", "/proc/self", "/root/.ssh", "relative"] {
            let err = sys
                .call(CallContext::local(), "disk", vec![Value::from(path)])
                .await
                .unwrap_err();
            assert_eq!(err.kind(), rwc_protocol::ErrorKind::Denied, "{path}: {err}");
            assert!(err.message().contains("disk_mounts"), "{err}");
        }
        let none = SysCapability::new(Vec::new());
        let r = none
            .call(CallContext::local(), "report", vec![])
            .await
            .unwrap();
        assert!(r.get("disk").is_none(), "{r:?}");
    }
}
