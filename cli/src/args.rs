//! Arguments several commands share, and the parsing of sizes and durations.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::json::parse_arg;
use rwc_client::discovery::RegistryDiscovery;
use rwc_client::{ConnectOptions, Error, InstanceOptions, Pool, TlsClientConfig, Token, Value};

/// How a command connects to nodes: TLS settings for `tls://` addresses, a token, and
/// options for `ssh` for `ssh://` addresses.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConnectArgs {
    /// CA certificate (PEM) to trust for tls:// nodes (default: the system's trust store).
    #[arg(long, env = "RWC_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for nodes that require one; with --tls-key.
    #[arg(long, env = "RWC_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, env = "RWC_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// File whose first line is the token to present. The token itself can be given in
    /// RWC_TOKEN instead (never on the command line, where `ps` shows it).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// An option for ssh when a node is ssh://[USER@]HOST[:PORT], e.g.
    /// `--ssh-option "-i ~/.ssh/ops"` (split at spaces; repeat for more).
    #[arg(long = "ssh-option", value_name = "OPTION", allow_hyphen_values = true)]
    pub ssh_options: Vec<String>,
}

/// The variable holding a token, for commands given no --token-file.
pub const TOKEN_VAR: &str = "RWC_TOKEN";

impl ConnectArgs {
    /// The options these flags (and RWC_TOKEN) ask for.
    pub fn options(&self) -> Result<ConnectOptions, Error> {
        let mut options = ConnectOptions::new().with_ssh_options(self.ssh_options.clone());
        options.token = token(self.token_file.as_deref(), TOKEN_VAR)?;
        if self.tls_ca.is_some() || self.tls_cert.is_some() {
            let identity = self.tls_cert.as_deref().zip(self.tls_key.as_deref());
            options.tls = Some(TlsClientConfig::from_pem_files(
                self.tls_ca.as_deref(),
                identity,
            )?);
        }
        Ok(options)
    }
}

/// The token in `file`, else in the environment variable `var`, else none.
pub fn token(file: Option<&Path>, var: &str) -> Result<Option<Token>, Error> {
    if let Some(file) = file {
        return Token::from_file(file).map(Some);
    }
    match std::env::var(var) {
        Ok(text) if !text.trim().is_empty() => Token::new(&text).map(Some),
        _ => Ok(None),
    }
}

/// Which nodes a fleet command (`rwc map`, `rwc each`) runs on, and how it connects.
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
    /// With --registry: file whose first line is the registry's lookup token (or the
    /// token in RWC_REGISTRY_TOKEN), if its listing is closed. The nodes get --token-file.
    #[arg(long, value_name = "FILE", requires = "registry")]
    pub registry_token_file: Option<PathBuf>,
    /// TLS settings and token for the nodes (the TLS settings serve the registry too).
    #[command(flatten)]
    pub connect: ConnectArgs,
}

impl FleetArgs {
    /// Connects to the nodes named, or to those of the registry (with the tag).
    pub async fn connect(&self) -> Result<Pool, Error> {
        let options = self.connect.options()?;
        match &self.registry {
            Some(r) => {
                let registry_options = ConnectOptions {
                    tls: options.tls.clone(),
                    token: token(self.registry_token_file.as_deref(), "RWC_REGISTRY_TOKEN")?,
                    ..ConnectOptions::default()
                };
                let source =
                    RegistryDiscovery::new(r, self.tag.as_deref()).with_options(registry_options);
                Pool::from_registry_with(&source, &options).await
            }
            None => Pool::connect_with(&self.nodes, &options).await,
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
