//! The `exec` capability: the commands the node's operator allow-listed (`[[commands]]`),
//! each run only with argument values the config allows.
//!
//! A command is a fixed program and an argument template whose placeholders take values
//! from a list or matching an anchored pattern. A request becomes an argument vector only
//! if every value passes (and holds no shell metacharacter, whitespace or control
//! character, whatever the pattern says); the program then runs without a shell, with the
//! configured environment only, stdin empty, in a process group of its own that is killed
//! at the command's timeout. Every request is in the audit log ([`crate::audit`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use regex::Regex;
use rustix::process::{Pid, Signal};
use rwc_api::Request;
use rwc_api::capability::exec::{self, CommandInfo, ExecOutput, List, ParamInfo, Run};
use rwc_protocol::object::{Call, Dispatch, MethodTable};
use rwc_protocol::{Error, ErrorKind, Value, to_value};
use serde::Deserialize;
use serde_bytes::ByteBuf;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

use super::Table;
use crate::audit;

/// One `[[commands]]` entry of the node's config.
///
/// ```toml
/// [[commands]]
/// name = "df"
/// program = "/bin/df"
/// args = ["-P", "{path}"]
/// params = { path = ["/", "/var"] }     # a list of allowed values, or a "^regex$" string
/// timeout_ms = 5000
/// max_output_bytes = 1048576
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// What clients and guests call it by; `exec:NAME` grants it.
    pub name: String,
    /// The program: an absolute path (there is no `PATH` lookup).
    pub program: PathBuf,
    /// Its arguments. `{param}` inside one is replaced by that parameter's value, which
    /// stays inside that one argument whatever it holds.
    #[serde(default)]
    pub args: Vec<String>,
    /// What each placeholder takes: a list of values, or a regular expression anchored
    /// `^…$` that the whole value must match.
    #[serde(default)]
    pub params: BTreeMap<String, ParamRule>,
    /// Working directory (default `/`).
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// The command's whole environment: nothing of the node's is passed on.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Deadline in milliseconds (default 10 000): then the command's whole process group
    /// is killed.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Output kept, stdout and stderr together, in bytes (default 1 MiB); the rest is
    /// read and dropped, and the result says so.
    #[serde(default = "default_max_output_bytes")]
    pub max_output_bytes: u64,
}

fn default_timeout_ms() -> u64 {
    10_000
}

fn default_max_output_bytes() -> u64 {
    1 << 20
}

/// The values one placeholder may take.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ParamRule {
    /// Exactly one of these.
    OneOf(Vec<String>),
    /// A `^…$` regular expression the whole value must match.
    Pattern(String),
}

/// The node's commands, checked when the node starts.
pub type Commands = Table<Command>;

impl Table<Command> {
    /// Checks the config: unique names, absolute programs and working directories, every
    /// placeholder a parameter and every parameter used, anchored patterns that compile,
    /// listed values that a request could send.
    pub fn new(configs: &[CommandConfig]) -> Result<Self, String> {
        Self::build(
            "commands",
            configs,
            |c| &c.name,
            |c, _| Command::new(c.clone()),
        )
    }
}

/// Which commands an `exec` object may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Allowed {
    /// All of them (the `exec` grant).
    All,
    /// These (`exec:NAME` grants).
    Only(BTreeSet<String>),
}

impl Allowed {
    fn covers(&self, name: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(names) => names.contains(name),
        }
    }
}

/// The `exec` object a client or guest holds: the node's commands that its grants cover,
/// run on behalf of `principal`.
pub struct ExecCapability {
    commands: Arc<Commands>,
    allowed: Allowed,
    principal: String,
}

impl fmt::Debug for ExecCapability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecCapability")
            .field("allowed", &self.allowed)
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

impl ExecCapability {
    pub(crate) fn new(commands: Arc<Commands>, allowed: Allowed, principal: String) -> Self {
        Self {
            commands,
            allowed,
            principal,
        }
    }

    /// Runs one request, logging it whatever happens.
    async fn run(&self, req: Run) -> Result<ExecOutput, Error> {
        let command = self
            .commands
            .get(&req.name)
            .filter(|_| self.allowed.covers(&req.name));
        let checked = match command {
            Some(c) => c.argv(&req.params).map(|argv| (c, argv)),
            None => Err(Refusal::Unlisted {
                name: req.name.clone(),
            }),
        };
        let (command, argv) = match checked {
            Ok(ok) => ok,
            Err(refusal) => {
                let asked: Vec<String> =
                    req.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
                audit::exec(
                    &self.principal,
                    &req.name,
                    &asked,
                    &format!("denied: {refusal}"),
                );
                return Err(refusal.into());
            }
        };
        match command.run(&argv).await {
            Ok(out) => {
                audit::exec(&self.principal, &req.name, &argv, &describe(&out));
                Ok(out)
            }
            Err(e) => {
                audit::exec(
                    &self.principal,
                    &req.name,
                    &argv,
                    &format!("failed to start: {e}"),
                );
                Err(Error::failed(format!(
                    "the node cannot start command `{}`: {e}",
                    req.name
                )))
            }
        }
    }

    fn list(&self) -> Vec<CommandInfo> {
        self.commands
            .values()
            .filter(|c| self.allowed.covers(&c.config.name))
            .map(Command::info)
            .collect()
    }
}

const METHODS: MethodTable = MethodTable(exec::METHODS);

impl Dispatch for ExecCapability {
    const TYPE_NAME: &'static str = rwc_api::capability::EXEC;
    const METHODS: MethodTable = METHODS;
    // Starting a process is a system call that may take a while: never inline in the
    // connection's reader.
    const RUNS_LONG: bool = true;

    async fn dispatch<'a>(&'a self, call: Call<'a>) -> Result<Value, Error> {
        match call.method {
            Run::METHOD => to_value(&self.run(Run::from_args(call.args)?).await?),
            List::METHOD => to_value(&self.list()),
            other => Err(Self::unknown(other)),
        }
    }
}

fn describe(out: &ExecOutput) -> String {
    let end = match (out.status, out.signal) {
        (Some(s), _) => format!("exit status {s}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => "ended".to_owned(),
    };
    let mut text = if out.timed_out {
        format!("timed out, {end}")
    } else {
        end
    };
    if out.truncated {
        text.push_str(", output truncated");
    }
    text
}

/// One checked command of [`Commands`].
#[derive(Debug)]
pub struct Command {
    config: CommandConfig,
    args: Vec<Vec<Piece>>,
    rules: BTreeMap<String, Rule>,
}

#[derive(Debug)]
enum Piece {
    Text(String),
    Param(String),
}

#[derive(Debug)]
enum Rule {
    OneOf(Vec<String>),
    Pattern(Regex),
}

/// Why a request to run a command is refused: each is a `denied` error saying so.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    /// No command of that name is configured, or none is granted.
    Unlisted { name: String },
    /// A value for a parameter the command does not take.
    ExtraArgument { command: String, param: String },
    /// A parameter without a value.
    Missing { command: String, param: String },
    /// A value holding a character a shell would act on, whitespace or a control
    /// character.
    Metacharacter {
        command: String,
        param: String,
        found: char,
    },
    /// A value outside the parameter's list or pattern.
    NotAllowed {
        command: String,
        param: String,
        value: String,
        allowed: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unlisted { name } => write!(
                f,
                "command `{name}` is not allowed: it is not in this node's allow-list granted to \
                 you (`exec.list()` shows what is)"
            ),
            Self::ExtraArgument { command, param } => {
                write!(f, "command `{command}` takes no argument `{param}`")
            }
            Self::Missing { command, param } => {
                write!(f, "command `{command}` needs a value for `{param}`")
            }
            Self::Metacharacter {
                command,
                param,
                found,
            } => write!(
                f,
                "the value of `{param}` for command `{command}` holds {found:?}, which no value \
                 may hold"
            ),
            Self::NotAllowed {
                command,
                param,
                value,
                allowed,
            } => write!(
                f,
                "value {value:?} of `{param}` is not allowed for command `{command}` ({allowed})"
            ),
        }
    }
}

impl From<Refusal> for Error {
    fn from(r: Refusal) -> Self {
        let kind = match r {
            Refusal::Missing { .. } => ErrorKind::BadArgument,
            _ => ErrorKind::Denied,
        };
        Error::new(kind, r.to_string())
    }
}

/// Characters no value may hold: what a shell acts on, quotes and the escape character.
/// Commands run without a shell, so this is a second wall behind the lists and patterns.
const METACHARACTERS: &[char] = &[
    ';', '&', '|', '$', '`', '<', '>', '(', ')', '{', '}', '[', ']', '*', '?', '!', '~', '#', '\'',
    '"', '\\',
];

fn forbidden_char(value: &str) -> Option<char> {
    value
        .chars()
        .find(|c| METACHARACTERS.contains(c) || c.is_whitespace() || c.is_control())
}

impl Command {
    fn new(config: CommandConfig) -> Result<Self, String> {
        if !config.program.is_absolute() {
            return Err(format!(
                "program {} must be an absolute path (commands run without a PATH lookup)",
                config.program.display()
            ));
        }
        if let Some(cwd) = config.cwd.as_ref().filter(|c| !c.is_absolute()) {
            return Err(format!("cwd {} must be an absolute path", cwd.display()));
        }
        let args = config
            .args
            .iter()
            .map(|a| parse_template(a))
            .collect::<Result<Vec<_>, _>>()?;
        let mut rules = BTreeMap::new();
        for (param, rule) in &config.params {
            rules.insert(param.clone(), Rule::new(param, rule)?);
        }
        let used: BTreeSet<&str> = args
            .iter()
            .flatten()
            .filter_map(|p| match p {
                Piece::Param(n) => Some(n.as_str()),
                Piece::Text(_) => None,
            })
            .collect();
        if let Some(p) = used.iter().find(|p| !rules.contains_key(**p)) {
            return Err(format!("placeholder {{{p}}} has no entry in `params`"));
        }
        if let Some(p) = rules.keys().find(|p| !used.contains(p.as_str())) {
            return Err(format!("parameter `{p}` is used by no argument"));
        }
        Ok(Self {
            config,
            args,
            rules,
        })
    }

    /// The argument vector for these values, or why they are refused.
    fn argv(&self, values: &BTreeMap<String, String>) -> Result<Vec<String>, Refusal> {
        let command = &self.config.name;
        if let Some(extra) = values.keys().find(|k| !self.rules.contains_key(*k)) {
            return Err(Refusal::ExtraArgument {
                command: command.clone(),
                param: extra.clone(),
            });
        }
        for (param, rule) in &self.rules {
            let Some(value) = values.get(param) else {
                return Err(Refusal::Missing {
                    command: command.clone(),
                    param: param.clone(),
                });
            };
            if let Some(found) = forbidden_char(value) {
                return Err(Refusal::Metacharacter {
                    command: command.clone(),
                    param: param.clone(),
                    found,
                });
            }
            if !rule.allows(value) {
                return Err(Refusal::NotAllowed {
                    command: command.clone(),
                    param: param.clone(),
                    value: value.clone(),
                    allowed: rule.describe(),
                });
            }
        }
        Ok(self
            .args
            .iter()
            .map(|pieces| {
                pieces
                    .iter()
                    .map(|p| match p {
                        Piece::Text(t) => t.as_str(),
                        Piece::Param(n) => values.get(n).map_or("", String::as_str),
                    })
                    .collect()
            })
            .collect())
    }

    fn info(&self) -> CommandInfo {
        let c = &self.config;
        CommandInfo {
            name: c.name.clone(),
            program: c.program.display().to_string(),
            args: c.args.clone(),
            params: self
                .rules
                .iter()
                .map(|(name, rule)| {
                    let info = match rule {
                        Rule::OneOf(values) => ParamInfo::OneOf(values.clone()),
                        Rule::Pattern(re) => ParamInfo::Pattern(re.as_str().to_owned()),
                    };
                    (name.clone(), info)
                })
                .collect(),
            timeout_ms: c.timeout_ms,
            max_output_bytes: c.max_output_bytes,
        }
    }

    /// Runs the program with `argv`: no shell, the configured environment only, stdin
    /// empty, in its own process group. At the deadline the whole group is killed; once
    /// the program itself has exited, whatever it left running in its group is killed
    /// too, so the command's pipes close and nothing it started outlives it.
    ///
    /// A process that left the group (`setsid`) escapes the kill; output is read until
    /// the deadline at most, so it cannot hold the call open.
    ///
    /// # Cancel safety
    /// Dropping the future kills the process group.
    async fn run(&self, argv: &[String]) -> std::io::Result<ExecOutput> {
        let c = &self.config;
        let mut child = tokio::process::Command::new(&c.program)
            .args(argv)
            .env_clear()
            .envs(&c.env)
            .current_dir(c.cwd.as_deref().unwrap_or("/".as_ref()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()?;
        let group = GroupKiller(
            child
                .id()
                .and_then(|id| i32::try_from(id).ok())
                .and_then(Pid::from_raw),
        );
        let deadline = Instant::now() + Duration::from_millis(c.timeout_ms);
        let budget = Budget {
            left: AtomicU64::new(c.max_output_bytes),
            truncated: AtomicBool::new(false),
        };
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let (out_pipe, err_pipe) = (child.stdout.take(), child.stderr.take());
        let reading = async {
            tokio::join!(
                drain(out_pipe, &mut stdout, &budget),
                drain(err_pipe, &mut stderr, &budget)
            )
        };
        let waiting = async {
            let exited = tokio::time::timeout_at(deadline, child.wait()).await;
            group.kill();
            match exited {
                Ok(status) => status.map(|s| (s, false)),
                Err(_elapsed) => child.wait().await.map(|s| (s, true)),
            }
        };
        let (waited, _) = tokio::join!(
            waiting,
            tokio::time::timeout_at(deadline + READ_GRACE, reading)
        );
        let (status, timed_out) = waited?;
        Ok(ExecOutput {
            status: status.code(),
            signal: status.signal(),
            stdout: ByteBuf::from(stdout),
            stderr: ByteBuf::from(stderr),
            timed_out,
            truncated: budget.truncated.load(Ordering::Relaxed),
        })
    }
}

impl Rule {
    fn new(param: &str, rule: &ParamRule) -> Result<Self, String> {
        Ok(match rule {
            ParamRule::OneOf(values) => {
                if let Some((v, c)) = values
                    .iter()
                    .find_map(|v| forbidden_char(v).map(|c| (v, c)))
                {
                    return Err(format!(
                        "allowed value {v:?} of `{param}` holds {c:?}, which no request may send"
                    ));
                }
                Rule::OneOf(values.clone())
            }
            ParamRule::Pattern(p) => {
                if !p.starts_with('^') || !p.ends_with('$') {
                    return Err(format!(
                        "the pattern of `{param}` must be anchored, \"^…$\", got {p:?}"
                    ));
                }
                Rule::Pattern(Regex::new(p).map_err(|e| format!("bad pattern for `{param}`: {e}"))?)
            }
        })
    }

    fn allows(&self, value: &str) -> bool {
        match self {
            Rule::OneOf(list) => list.iter().any(|v| v == value),
            Rule::Pattern(re) => re.is_match(value),
        }
    }

    fn describe(&self) -> String {
        match self {
            Rule::OneOf(list) => format!("it must be one of {list:?}"),
            Rule::Pattern(re) => format!("it must match {}", re.as_str()),
        }
    }
}

/// How long after the deadline output is still read: what the killed group wrote last.
const READ_GRACE: Duration = Duration::from_millis(200);

/// Output left to keep, shared by stdout and stderr.
struct Budget {
    left: AtomicU64,
    truncated: AtomicBool,
}

/// Reads `pipe` to its end, keeping what the budget allows.
async fn drain(pipe: Option<impl AsyncRead + Unpin>, into: &mut Vec<u8>, budget: &Budget) {
    let Some(mut pipe) = pipe else { return };
    let mut buf = [0u8; 8192];
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let want = u64::try_from(n).unwrap_or(u64::MAX);
        let before = budget
            .left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                Some(left.saturating_sub(want))
            })
            .unwrap_or(0);
        let granted = before.min(want);
        if granted < want {
            budget.truncated.store(true, Ordering::Relaxed);
        }
        let keep = usize::try_from(granted).map_or(n, |g| g.min(n));
        into.extend_from_slice(&buf[..keep]);
    }
}

/// Kills a process group when told to, and when dropped.
struct GroupKiller(Option<Pid>);

impl GroupKiller {
    fn kill(&self) {
        if let Some(pid) = self.0 {
            // ESRCH: nothing is left in the group.
            let _ = rustix::process::kill_process_group(pid, Signal::KILL);
        }
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An argument template: text and `{name}` placeholders.
fn parse_template(arg: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = arg;
    while let Some(open) = rest.find('{') {
        let (text, after) = rest.split_at(open);
        let close = after
            .find('}')
            .ok_or_else(|| format!("argument {arg:?} has a `{{` without `}}`"))?;
        let name = &after[1..close];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("argument {arg:?} has a bad placeholder {{{name}}}"));
        }
        if text.contains('}') {
            return Err(format!("argument {arg:?} has a `}}` without `{{`"));
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text.to_owned()));
        }
        pieces.push(Piece::Param(name.to_owned()));
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err(format!("argument {arg:?} has a `}}` without `{{`"));
    }
    if !rest.is_empty() || pieces.is_empty() {
        pieces.push(Piece::Text(rest.to_owned()));
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `[[commands]]` of a node config, read as the node reads its config file.
    fn commands(toml_text: &str) -> Result<Commands, String> {
        Commands::new(&crate::NodeConfig::parse(toml_text)?.commands)
    }

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn command<'a>(c: &'a Commands, name: &str) -> &'a Command {
        c.get(name).expect("configured")
    }

    const CONFIG: &str = r#"
[[commands]]
name = "df"
program = "/bin/df"
args = ["-P", "{path}"]
params = { path = ["/", "/var"] }
[[commands]]
name = "status"
program = "/bin/systemctl"
args = ["status", "--unit={unit}"]
params = { unit = "^[a-z0-9@._-]+\\.service$" }
[[commands]]
name = "echo"
program = "/bin/echo"
args = ["{word}"]
params = { word = "^.+$" }
"#;

    #[test]
    fn argv_takes_only_allowed_values() {
        let c = commands(CONFIG).unwrap();
        let df = command(&c, "df");
        assert_eq!(
            df.argv(&values(&[("path", "/var")])).unwrap(),
            ["-P", "/var"]
        );
        assert!(matches!(
            df.argv(&values(&[("path", "/etc")])),
            Err(Refusal::NotAllowed { .. })
        ));
        assert!(matches!(
            df.argv(&values(&[("path", "/"), ("x", "1")])),
            Err(Refusal::ExtraArgument { .. })
        ));
        assert!(matches!(
            df.argv(&values(&[])),
            Err(Refusal::Missing { .. })
        ));
        let st = command(&c, "status");
        assert_eq!(
            st.argv(&values(&[("unit", "getty@tty1.service")])).unwrap(),
            ["status", "--unit=getty@tty1.service"]
        );
        assert!(st.argv(&values(&[("unit", "ssh.socket")])).is_err());
        // A pattern that takes anything still takes no metacharacter.
        let echo = command(&c, "echo");
        for bad in ["; rm -rf /", "$(id)", "`id`", "a\nb", "a b", "x|y", "a\0b"] {
            assert!(
                matches!(
                    echo.argv(&values(&[("word", bad)])),
                    Err(Refusal::Metacharacter { .. })
                ),
                "{bad:?}"
            );
        }
        assert_eq!(echo.argv(&values(&[("word", "plain")])).unwrap(), ["plain"]);
    }

    #[test]
    fn bad_configs_are_refused_with_the_reason() {
        let base = "[[commands]]\nname='x'\nprogram='/bin/df'\n";
        for (bad, why) in [
            (
                "[[commands]]\nname='x'\nprogram='df'\n".to_owned(),
                "absolute",
            ),
            (format!("{base}args=['{{p}}']\n"), "no entry"),
            (format!("{base}params={{p=['a']}}\n"), "used by no"),
            (
                format!("{base}args=['{{p}}']\nparams={{p='[a-z]+'}}\n"),
                "anchored",
            ),
            (
                format!("{base}args=['{{p}}']\nparams={{p='^(a$'}}\n"),
                "bad pattern",
            ),
            (
                format!("{base}args=['{{p}}']\nparams={{p=['a;b']}}\n"),
                "no request",
            ),
            (format!("{base}args=['{{p']\n"), "without"),
            (format!("{base}cwd='tmp'\n"), "cwd"),
            (format!("{base}{base}"), "twice"),
            (
                "[[commands]]\nname='a b'\nprogram='/bin/df'\n".to_owned(),
                "a name",
            ),
        ] {
            let err = commands(&bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn templates_split_into_text_and_placeholders() {
        let p = parse_template("--unit={unit}.x").unwrap();
        assert!(
            matches!(&p[..], [Piece::Text(a), Piece::Param(b), Piece::Text(c)]
            if a == "--unit=" && b == "unit" && c == ".x")
        );
        assert!(parse_template("a}b").is_err());
        assert!(parse_template("{a b}").is_err());
        assert!(matches!(&parse_template("").unwrap()[..], [Piece::Text(t)] if t.is_empty()));
    }
}
