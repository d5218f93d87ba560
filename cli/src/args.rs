//! Arguments several commands share, and the parsing of sizes and durations.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::json::{from_json, parse_arg, to_json};
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
    /// addresses gives several nodes). One of --nodes, --registry (or, for `rwc map`,
    /// --nats) is needed.
    #[arg(long, value_delimiter = ',')]
    pub nodes: Vec<String>,
    /// Take the nodes from this registry instead (see `rwc registry`).
    #[arg(long, conflicts_with = "nodes")]
    pub registry: Option<String>,
    /// With --registry: only nodes with this tag. With `rwc map --nats`: the tag of the
    /// nodes that run the map (default: `default`, what nodes started without --tag
    /// serve).
    #[arg(long)]
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
        if self.nodes.is_empty() && self.registry.is_none() {
            return Err(Error::bad_argument(
                "which nodes? give --nodes HOST:PORT,… or --registry ADDR (or, for rwc map, --nats URL)",
            ));
        }
        if self.tag.is_some() && self.registry.is_none() {
            return Err(Error::bad_argument(
                "--tag goes with --registry (or, for rwc map, --nats)",
            ));
        }
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

/// Where `call` and `run` take their arguments from besides ARGS, and where the result
/// goes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CallIo {
    /// Read the whole argument list from FILE (`-`: stdin) instead of ARGS: a JSON array,
    /// one element per argument ({"$bytes": "<base64>"} for bytes).
    #[arg(long, value_name = "FILE", conflicts_with = "args")]
    pub json_args: Option<PathBuf>,
    /// Write the result to PATH (`-`: stdout) instead of printing it as JSON: raw bytes if
    /// the result is bytes, else its JSON.
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
}

/// The arguments of a call: each of `args` in one of the forms of `rwc call --help`, or
/// the JSON array in the `--json-args` file.
pub fn call_args(args: &[String], json_args: Option<&Path>) -> Result<Vec<Value>, Error> {
    let mut stdin = Stdin::default();
    if let Some(path) = json_args {
        let text =
            String::from_utf8(read_input(path, &mut stdin, "--json-args")?).map_err(|_| {
                Error::bad_argument(format!("--json-args {}: not UTF-8 text", path.display()))
            })?;
        return match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Array(items)) => items.iter().map(from_json).collect(),
            Ok(_) => Err(Error::bad_argument(format!(
                "--json-args {}: the file must hold a JSON array, one element per argument",
                path.display()
            ))),
            Err(e) => Err(Error::bad_argument(format!(
                "--json-args {}: not JSON: {e}",
                path.display()
            ))),
        };
    }
    args.iter().map(|a| call_arg(a, &mut stdin)).collect()
}

/// One argument: `@PATH` (the file's bytes), `@-` (stdin's bytes), `@text:PATH` (the
/// file as a string; `@text:-` for stdin), `@@…` (the string `@…`), else JSON, a bare
/// word being a string.
fn call_arg(arg: &str, stdin: &mut Stdin) -> Result<Value, Error> {
    let Some(rest) = arg.strip_prefix('@') else {
        return parse_arg(arg);
    };
    if let Some(literal) = rest.strip_prefix('@') {
        return Ok(Value::String(format!("@{literal}")));
    }
    if let Some(path) = rest.strip_prefix("text:") {
        let bytes = read_input(Path::new(path), stdin, arg)?;
        return String::from_utf8(bytes).map(Value::String).map_err(|_| {
            Error::bad_argument(format!(
                "{arg}: not UTF-8 text; pass it as bytes with @{path}"
            ))
        });
    }
    if rest.is_empty() {
        return Err(Error::bad_argument(
            "`@` needs a path: @FILE for a file's bytes, @- for stdin, @text:FILE for text \
             (and @@… for a string that starts with @)",
        ));
    }
    read_input(Path::new(rest), stdin, arg).map(|b| Value::Bytes(b.into()))
}

/// Reads `path` whole, `-` being stdin, with errors that name `what` (the argument).
fn read_input(path: &Path, stdin: &mut Stdin, what: &str) -> Result<Vec<u8>, Error> {
    if path == Path::new("-") {
        return stdin.read(what);
    }
    std::fs::read(path)
        .map_err(|e| Error::bad_argument(format!("{what}: cannot read {}: {e}", path.display())))
}

/// Stdin, which one argument at most may read.
#[derive(Default)]
struct Stdin {
    taken_by: Option<String>,
}

impl Stdin {
    fn read(&mut self, what: &str) -> Result<Vec<u8>, Error> {
        if let Some(first) = &self.taken_by {
            return Err(Error::bad_argument(format!(
                "{what}: stdin is already read by {first}; only one argument can come from it"
            )));
        }
        self.taken_by = Some(what.to_owned());
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut bytes)
            .map_err(|e| Error::bad_argument(format!("{what}: cannot read stdin: {e}")))?;
        Ok(bytes)
    }
}

/// Prints a call's result: as JSON on stdout, or to `--out` (raw if it is bytes).
pub fn print_result(result: &Value, out: Option<&Path>) -> Result<(), Error> {
    let Some(path) = out else {
        println!("{}", to_json(result));
        return Ok(());
    };
    let bytes = match result {
        Value::Bytes(b) => b.clone(),
        other => format!("{}\n", to_json(other)).into_bytes().into(),
    };
    let written = if path == Path::new("-") {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(&bytes).and_then(|()| stdout.flush())
    } else {
        std::fs::write(path, &bytes)
    };
    written.map_err(|e| Error::failed(format!("--out {}: cannot write: {e}", path.display())))
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
    fn argument_forms() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data.bin");
        std::fs::write(&data, [0u8, 159, 255]).unwrap();
        let text = dir.path().join("doc.json");
        std::fs::write(&text, r#"{"a": 1}"#).unwrap();
        let arg = |s: String| call_arg(&s, &mut Stdin::default());
        assert_eq!(
            arg(format!("@{}", data.display())).unwrap(),
            Value::Bytes(vec![0, 159, 255].into())
        );
        assert_eq!(
            arg(format!("@text:{}", text.display())).unwrap(),
            Value::from(r#"{"a": 1}"#)
        );
        let e = arg(format!("@text:{}", data.display())).unwrap_err();
        assert!(
            e.message()
                .contains("not UTF-8 text; pass it as bytes with @"),
            "{e}"
        );
        assert_eq!(arg("@@home".into()).unwrap(), Value::from("@home"));
        assert_eq!(arg(r#""@home""#.into()).unwrap(), Value::from("@home"));
        assert_eq!(arg("12".into()).unwrap(), Value::U64(12));
        let e = arg("@".into()).unwrap_err();
        assert!(e.message().contains("@FILE"), "{e}");
        let e = arg("@/no/such/file".into()).unwrap_err();
        assert_eq!(e.kind(), rwc_client::ErrorKind::BadArgument);
        assert!(
            e.message()
                .starts_with("@/no/such/file: cannot read /no/such/file"),
            "{e}"
        );
    }

    #[test]
    fn stdin_is_read_by_one_argument_at_most() {
        let mut stdin = Stdin {
            taken_by: Some("@-".to_owned()),
        };
        let e = call_arg("@text:-", &mut stdin).unwrap_err();
        assert!(e.message().contains("already read by @-"), "{e}");
    }

    #[test]
    fn json_args_files_hold_an_array() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("args.json");
        std::fs::write(&list, r#"["a", 2, {"$bytes": "AAE="}]"#).unwrap();
        assert_eq!(
            call_args(&[], Some(&list)).unwrap(),
            [
                Value::from("a"),
                Value::U64(2),
                Value::Bytes(vec![0, 1].into())
            ]
        );
        std::fs::write(&list, r#"{"a": 1}"#).unwrap();
        let e = call_args(&[], Some(&list)).unwrap_err();
        assert!(e.message().contains("must hold a JSON array"), "{e}");
    }

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
