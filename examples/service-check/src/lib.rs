//! A service check through the `exec` capability: the guest runs two commands the node's
//! operator allow-listed and sums them up. It cannot run anything else, nor choose
//! arguments the allow-list does not name.
//!
//! The node's config defines the commands, e.g.
//!
//! ```toml
//! grants = ["exec"]
//! [[commands]]
//! name = "df"
//! program = "/bin/df"
//! args = ["-P", "{path}"]
//! params = { path = ["/", "/var"] }
//! [[commands]]
//! name = "uptime"
//! program = "/usr/bin/uptime"
//! ```
//!
//! and `rwc call service_check.wasm check --capability exec` answers whether both ran,
//! how full `/` is and the uptime line.

use std::collections::BTreeMap;

use rwc_api::Request;
use rwc_api::capability::exec::{CommandInfo, ExecOutput, List, Run};
use rwc_guest::{Error, capability, export};
use serde::Serialize;

/// The summary.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Whether both commands ran and exited with status 0.
    pub healthy: bool,
    /// Percentage of `/` in use, from `df -P /`.
    pub root_used_pct: Option<u32>,
    /// What `uptime` printed.
    pub uptime: String,
    /// Each command: name, exit status and whether it timed out.
    pub ran: Vec<Ran>,
}

/// One command's outcome.
#[derive(Debug, Serialize)]
pub struct Ran {
    pub name: String,
    pub status: Option<i32>,
    pub timed_out: bool,
}

/// Runs `df` (for `/`) and `uptime` and sums them up.
#[export]
fn check() -> Result<Summary, Error> {
    let df = run("df", &[("path", "/")])?;
    let uptime = run("uptime", &[])?;
    let ok = |o: &ExecOutput| o.status == Some(0) && !o.timed_out;
    Ok(Summary {
        healthy: ok(&df) && ok(&uptime),
        root_used_pct: root_used(&String::from_utf8_lossy(&df.stdout)),
        uptime: String::from_utf8_lossy(&uptime.stdout).trim().to_owned(),
        ran: [("df", &df), ("uptime", &uptime)]
            .into_iter()
            .map(|(name, o)| Ran {
                name: name.to_owned(),
                status: o.status,
                timed_out: o.timed_out,
            })
            .collect(),
    })
}

/// The commands this instance may run (`exec.list()`), by name.
#[export]
fn commands() -> Result<Vec<String>, Error> {
    let exec = capability("exec")?;
    let list: Vec<CommandInfo> = List::reply(exec.call_value(List::METHOD, List {}.to_args()?)?)?;
    Ok(list.into_iter().map(|c| c.name).collect())
}

/// Asks the node to run `name` with a value for each placeholder; a refusal comes back as
/// the node's `denied` error, naming what it refused.
#[export]
fn run_one(name: String, params: BTreeMap<String, String>) -> Result<ExecOutput, Error> {
    let exec = capability("exec")?;
    let req = Run { name, params };
    Run::reply(exec.call_value(Run::METHOD, req.to_args()?)?)
}

fn run(name: &str, params: &[(&str, &str)]) -> Result<ExecOutput, Error> {
    let params = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    run_one(name.to_owned(), params)
}

/// The `Use%` of the last line of `df -P` output.
fn root_used(df: &str) -> Option<u32> {
    df.lines()
        .last()?
        .split_whitespace()
        .find_map(|field| field.strip_suffix('%')?.parse().ok())
}
