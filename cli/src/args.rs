//! Arguments several commands share, and the parsing of sizes and durations.

use std::path::Path;
use std::time::Duration;

use crate::json::parse_arg;
use rwc_client::{Error, InstanceOptions, Pool, Value};

/// Which nodes a fleet command (`rwc map`, `rwc each`) runs on.
#[derive(Debug, Clone, clap::Args)]
pub struct FleetArgs {
    /// Node addresses, comma-separated (HOST:PORT; a name resolving to several
    /// addresses gives several nodes).
    #[arg(long, value_delimiter = ',', required_unless_present = "registry")]
    pub nodes: Vec<String>,
    /// Take the nodes from this registry instead (see `rwc registry`).
    #[arg(long, conflicts_with = "nodes")]
    pub registry: Option<String>,
    /// With --registry: only nodes with this tag.
    #[arg(long, requires = "registry")]
    pub tag: Option<String>,
}

impl FleetArgs {
    /// Connects to the nodes named, or to those of the registry (with the tag).
    pub async fn connect(&self) -> Result<Pool, Error> {
        match &self.registry {
            Some(r) => Pool::from_registry(r, self.tag.as_deref()).await,
            None => Pool::connect(&self.nodes).await,
        }
    }
}

/// Limits and environment of the instance a command makes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LimitArgs {
    /// Fuel budget of the instance (roughly, Wasm instructions); unmetered if unset.
    #[arg(long)]
    pub fuel: Option<u64>,
    /// Memory cap of the instance: bytes, or with a unit (64KiB, 16MiB, 1GiB).
    #[arg(long, value_parser = parse_size)]
    pub memory: Option<u64>,
    /// Deadline of each call: milliseconds, or with a unit (500ms, 5s, 2m).
    #[arg(long = "timeout", visible_alias = "call-timeout", value_parser = parse_duration)]
    pub call_timeout: Option<Duration>,
    /// Environment variable for the guest, KEY=VALUE (repeat for several).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub env: Vec<(String, String)>,
    /// Command-line argument for the guest (repeat for several; the first is the program name).
    #[arg(
        id = "guest_args",
        long = "arg",
        value_name = "ARG",
        allow_hyphen_values = true
    )]
    pub guest_args: Vec<String>,
    /// Node capability to give the guest: `sys`, `log`, `exec` (or one command, `exec:NAME`),
    /// a directory `fs:NAME` (repeat for several).
    #[arg(long = "capability", value_name = "NAME")]
    pub capabilities: Vec<String>,
}

impl LimitArgs {
    /// The instance options these flags ask for.
    pub fn options(&self) -> InstanceOptions {
        InstanceOptions {
            memory: self.memory,
            fuel: self.fuel,
            call_timeout: self.call_timeout,
            env: self.env.iter().cloned().collect(),
            args: self.guest_args.clone(),
            capabilities: self.capabilities.clone(),
            ..InstanceOptions::default()
        }
    }
}

/// Reads a module file, with an error that names it.
pub fn read_module(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| {
        Error::bad_argument(format!(
            "cannot read module {}: {e}; give the path of a .wasm or .wat file",
            path.display()
        ))
    })
}

/// Each command-line argument as JSON (a bare word is a string).
pub fn parse_args(args: &[String]) -> Result<Vec<Value>, Error> {
    args.iter().map(|a| parse_arg(a)).collect()
}

/// `65536`, `64KiB`, `64K`, `16MiB`, `1GiB` (binary units; `KB`/`MB`/`GB` are decimal).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let (n, unit) = number_and_unit(s, "a size: use bytes or a number with KiB, MiB, GiB")?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => return Err(format!("unknown size unit {other:?}: use KiB, MiB or GiB")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{:?} is too large", s.trim()))
}

/// `1500` (milliseconds), `500ms`, `5s`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = number_and_unit(s, "a duration: use e.g. 500ms, 5s or 2m")?;
    match unit {
        "" | "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" | "min" => n
            .checked_mul(60)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{s:?} is too long")),
        other => Err(format!("unknown duration unit {other:?}: use ms, s or m")),
    }
}

/// `16MiB` → `(16, "MiB")`; `what` says what `s` should have been.
fn number_and_unit<'a>(s: &'a str, what: &str) -> Result<(u64, &'a str), String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n = num.parse().map_err(|_| format!("{s:?} is not {what}"))?;
    Ok((n, unit.trim()))
}

/// `KEY=VALUE`.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_durations_and_pairs() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("2MB"), Ok(2_000_000));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 parsecs").is_err());
        assert_eq!(parse_duration("1500"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
        assert_eq!(
            parse_key_value("A=b=c"),
            Ok(("A".to_owned(), "b=c".to_owned()))
        );
        assert!(parse_key_value("=x").is_err());
    }
}
