//! `rwc`: use rwc nodes from the command line.
//!
//! A thin layer over `rwc-client`: it parses arguments, prints results (JSON on stdout,
//! progress and messages on stderr) and turns the kind of an error into the exit code.
//! Everything only a binary needs lives here, not in the library: argument parsing,
//! progress bars, the shell, completions, log formatting and the allocator.

mod args;
mod commands;
mod deploy;
mod each;
mod exec;
mod jobs;
mod json;
mod map;
mod program;
mod progress;
mod shell;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use rwc_client::{Error, ErrorKind};
use tracing_subscriber::EnvFilter;

use crate::args::{ConnectArgs, LimitArgs};

/// Run WebAssembly on rwc nodes.
///
/// Exit codes: 0 success, 1 other failure, 2 usage, 3 disconnected, 4 timed out,
/// 5 denied, 6 trapped or out of fuel, 7 bad argument, 8 unimplemented, 9 overloaded,
/// 10 limit (memory, table, output or size; the message names the node setting to raise).
#[derive(Debug, Parser)]
#[command(name = "rwc", version)]
struct Cli {
    /// Show the remote trace and causes of errors.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

/// Where a command finds its node, and how it connects.
#[derive(Debug, clap::Args)]
struct NodeArg {
    /// Node address: HOST:PORT, unix:/path, tls://HOST:PORT, tls+unix:/path or
    /// ssh://[USER@]HOST[:PORT].
    #[arg(long, default_value = "127.0.0.1:18870", env = "RWC_NODE")]
    node: String,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// What `call` and `run` take: a node, a module, an export and its arguments.
#[derive(Debug, clap::Args)]
struct CallArgs {
    #[command(flatten)]
    node: NodeArg,
    /// The module file (.wasm or .wat).
    module: PathBuf,
    /// The export to call.
    func: String,
    /// Arguments, each in one of these forms:
    ///   12, -3, 2.5, true, null, [1, 2], {"k": "v"}, '"a string"'   JSON
    ///   word                      a bare word is a string
    ///   @PATH                     the file's contents, as bytes
    ///   @-                        stdin, as bytes
    ///   @text:PATH                the file's contents, as a string (@text:- for stdin)
    ///   {"$bytes": "<base64>"}    bytes, inline
    ///   @@rest                    the string "@rest" (or as JSON: '"@rest"')
    /// Put arguments that start with `-` (other than negative numbers) after `--`.
    #[arg(allow_negative_numbers = true, verbatim_doc_comment)]
    args: Vec<String>,
    #[command(flatten)]
    io: args::CallIo,
    #[command(flatten)]
    limits: LimitArgs,
}

/// What `run` takes: `call`'s arguments with the export optional (without it, MODULE is
/// run as a WASI command program).
#[derive(Debug, clap::Args)]
struct RunArgs {
    #[command(flatten)]
    node: NodeArg,
    /// The module file (.wasm or .wat).
    module: PathBuf,
    /// The export to call. Without one, MODULE runs as a WASI command program (its
    /// `_start`), as `wasmtime run` runs it.
    func: Option<String>,
    /// Arguments of the export, in the forms of `rwc call --help` (JSON, a bare word,
    /// @PATH, @-, @text:PATH, {"$bytes": "<base64>"}, @@rest).
    #[arg(allow_negative_numbers = true)]
    args: Vec<String>,
    /// After `--`: the WASI program's arguments (argv[1]…), or, with an export, more JSON
    /// arguments for it (those starting with `-`).
    #[arg(last = true, value_name = "PROGRAM_ARGS")]
    program_args: Vec<String>,
    /// The WASI program's argv[0] (default: the module's file name).
    #[arg(long, value_name = "NAME", conflicts_with = "func")]
    argv0: Option<String>,
    #[command(flatten)]
    io: args::CallIo,
    #[command(flatten)]
    limits: LimitArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Upload MODULE (.wasm or .wat) if the node lacks it, instantiate it, call FUNC with
    /// ARGs and print the result as JSON (bytes as {"$bytes": "<base64>"}; --out PATH
    /// writes them raw). Guest output goes to stderr as it happens.
    Call(CallArgs),
    /// Upload MODULE if needed and run FUNC once in a fresh instance (one request; the
    /// instance is freed at once). Prints the result as JSON; guest output goes to stderr.
    ///
    /// Without FUNC, MODULE is a WASI command program run as `wasmtime run` runs it:
    /// `rwc run prog.wasm -- ARGS…` calls its `_start` with argv[0] the module's file name
    /// (or --argv0), the guest's stdout on stdout and stderr on stderr byte for byte, and
    /// exits with the program's exit code (`proc_exit(N)` gives N; a trap is still 6).
    /// Nothing else is printed.
    Run(RunArgs),
    /// Run an allow-listed command of the node (`[[commands]]` in its config) as this
    /// client: `rwc exec --node HOST:PORT df path=/`. Prints the command's stdout and
    /// stderr and exits with its status. The sandboxed answer to `ssh host df -P /`: only
    /// the commands and values the node's config allows run (others are `denied`, exit
    /// code 5), without a shell.
    Exec {
        #[command(flatten)]
        node: NodeArg,
        /// The command's name in the node's config.
        name: String,
        /// A value for each of its placeholders.
        #[arg(value_name = "KEY=VALUE", value_parser = crate::args::parse_key_value)]
        params: Vec<(String, String)>,
    },
    /// Call EXPORT once on every node, all at once, and print one row per node: its
    /// address, the time the call took and the result (or the error). With --json, one
    /// JSON array of rows instead. The exit code is non-zero if any node failed, and
    /// stderr names them.
    Each(each::EachArgs),
    /// Copy this machine's `rwc-node` to `~/.cache/rwc/rwc-node-VERSION` on HOST over SSH,
    /// unless the copy there has the same SHA-256. `ssh://` addresses use that copy when
    /// `rwc-node` is not on the host's PATH, so a box with only sshd becomes a node (which
    /// lives as long as each connection).
    Deploy {
        /// The host: ssh://[USER@]HOST[:PORT].
        addr: String,
        /// Options for ssh, e.g. `--ssh-option "-i ~/.ssh/ops"`; each is split at spaces.
        #[arg(long = "ssh-option", value_name = "OPTION", allow_hyphen_values = true)]
        ssh_options: Vec<String>,
        /// The rwc-node binary to copy (default: the one beside rwc, else on the PATH).
        #[arg(long, value_name = "FILE")]
        node_binary: Option<PathBuf>,
    },
    /// List what a client can call in MODULE (.wasm or .wat), one export a line with its
    /// signature and the first line of its doc:
    /// `grep_lines(pattern: String, text: String) -> Vec<(u32, String)>: Lines that match.`
    /// Reads the file; no node is needed.
    Exports {
        /// The module file (.wasm or .wat).
        module: PathBuf,
        /// Print JSON (one array of export descriptions, docs in full) instead.
        #[arg(long)]
        json: bool,
    },
    /// Print the node's info (version, limits, caches, live instances) as JSON.
    Info {
        #[command(flatten)]
        node: NodeArg,
    },
    /// Measure round trips to the node: one line per ping, then min/avg/max.
    Ping {
        #[command(flatten)]
        node: NodeArg,
        /// How many pings.
        #[arg(short, long, default_value_t = 4)]
        count: u32,
        /// Pause between pings, in milliseconds.
        #[arg(long, default_value_t = 200)]
        interval_ms: u64,
    },
    /// Upload MODULE (in 1 MiB chunks, with a progress bar on stderr) unless the node has
    /// it; print its hash.
    Upload {
        #[command(flatten)]
        node: NodeArg,
        /// The module file (.wasm or .wat).
        module: PathBuf,
    },
    /// Call EXPORT once per line of the input file, spread over several nodes.
    ///
    /// Each input line is a JSON array of arguments, or a single JSON value (one
    /// argument); blank lines are skipped. One result per input is printed to stdout, in
    /// input order, each as soon as every earlier one is in, as JSON: the value, or
    /// {"error": {"kind": …, "message": …}}. A progress bar with per-node counts goes to
    /// stderr, then a one-line summary. With --json the summary is the last stdout line
    /// instead: {"summary": {…}}. The exit code is 0 if every input succeeded, else the
    /// code of the first failed input's error.
    Map(map::MapArgs),
    /// List the nodes a registry knows, or those registered in NATS (--nats).
    Nodes {
        /// The registry's address, HOST:PORT or tls://HOST:PORT.
        #[arg(long, env = "RWC_REGISTRY", required_unless_present = "nats")]
        registry: Option<String>,
        /// List the nodes registered in NATS instead (nats://HOST:PORT).
        #[arg(long, conflicts_with = "registry")]
        nats: Option<String>,
        /// TLS settings and token (a lookup token, if the registry's listing is closed).
        #[command(flatten)]
        connect: ConnectArgs,
        /// Only nodes with this tag.
        #[arg(long)]
        tag: Option<String>,
        /// Print JSON (one array) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List the durable maps (jobs) NATS holds, with their progress.
    Jobs {
        /// The NATS server(s), nats://HOST:PORT.
        #[arg(long, env = "RWC_NATS")]
        nats: String,
        /// Print JSON (one array) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Act on one durable map (job).
    Job {
        #[command(subcommand)]
        action: jobs::JobAction,
    },
    /// Run a registry: nodes register with `rwc-node --register ADDR --tag T`, clients
    /// find them with `rwc nodes` or `rwc map --registry`. Prints `listening on ADDR`.
    Registry(commands::RegistryArgs),
    /// An interactive session with a node: load modules, make instances, call exports,
    /// keep netrefs in variables. Reads commands from stdin (a script works too); type
    /// `help` for the commands.
    Shell {
        /// Node address: HOST:PORT, unix:/path, tls://HOST:PORT or tls+unix:/path.
        #[arg(env = "RWC_NODE", default_value = "127.0.0.1:18870")]
        node: String,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Print a shell completion script, e.g. `rwc completions bash > /etc/bash_completion.d/rwc`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Large messages (a 64 MiB buffer) churn fresh pages under the system allocator; mimalloc
/// reuses them, which roughly doubles bulk throughput (see the protocol benchmark).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A registry is a server: its operator wants to see refusals (warnings) and its start.
    let serving = matches!(cli.command, Command::Registry(_));
    log_to_stderr(if serving { "info" } else { "error" });
    if let Command::Completions { shell } = &cli.command {
        clap_complete::generate(*shell, &mut Cli::command(), "rwc", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rwc: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let verbose = cli.verbose;
    let outcome = runtime.block_on(run(cli.command, verbose));
    // Don't wait for calls or reads still running in the background (a shell's stdin).
    runtime.shutdown_background();
    match outcome {
        Ok(code) => code,
        Err(e) => {
            report(&e, verbose);
            ExitCode::from(exit_code(e.kind()))
        }
    }
}

/// Logs go to stderr: from `default` up (`error` for a client command), unless `RUST_LOG`
/// asks otherwise.
fn log_to_stderr(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .init();
}

/// Prints an error as one line (`rwc: timed out: …`), or with its causes and remote trace
/// when verbose.
fn report(e: &Error, verbose: bool) {
    if verbose {
        eprintln!("rwc: {e}");
    } else {
        eprintln!("rwc: {}", one_line(e));
    }
}

/// `kind: message`, for one-line output.
fn one_line(e: &Error) -> String {
    format!("{}: {}", e.kind(), e.message())
}

/// The exit code says what kind of failure it was.
fn exit_code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::Disconnected => 3,
        ErrorKind::TimedOut => 4,
        ErrorKind::Denied => 5,
        ErrorKind::Trapped | ErrorKind::OutOfFuel => 6,
        ErrorKind::BadArgument => 7,
        ErrorKind::Unimplemented => 8,
        ErrorKind::Overloaded => 9,
        ErrorKind::Limit => 10,
        _ => 1,
    }
}

async fn run(command: Command, verbose: bool) -> Result<ExitCode, Error> {
    let done = |r: Result<(), Error>| r.map(|()| ExitCode::SUCCESS);
    match command {
        Command::Call(a) => done(commands::call(&a).await),
        Command::Run(a) => match a.func {
            None if a.io.json_args.is_some() || a.io.out.is_some() => Err(Error::bad_argument(
                "--json-args and --out are for an export's call: a WASI program (no FUNC) reads \
                 its arguments after `--` and writes its own stdout",
            )),
            None => {
                program::run(
                    &a.node,
                    &a.module,
                    a.argv0.as_deref(),
                    &a.program_args,
                    &a.limits,
                )
                .await
            }
            Some(func) => {
                let mut args = a.args;
                args.extend(a.program_args);
                let call = CallArgs {
                    node: a.node,
                    module: a.module,
                    func,
                    args,
                    io: a.io,
                    limits: a.limits,
                };
                done(commands::run(&call).await)
            }
        },
        Command::Exec { node, name, params } => exec::exec(&node, &name, &params).await,
        Command::Each(a) => each::each(a).await,
        Command::Deploy {
            addr,
            ssh_options,
            node_binary,
        } => done(deploy::deploy(&addr, &ssh_options, node_binary.as_deref()).await),
        Command::Exports { module, json } => done(commands::exports(&module, json)),
        Command::Info { node } => done(commands::info(&node).await),
        Command::Ping {
            node,
            count,
            interval_ms,
        } => done(commands::ping(&node, count, interval_ms).await),
        Command::Upload { node, module } => done(commands::upload(&node, &module).await),
        Command::Map(a) => map::map(a).await,
        Command::Nodes {
            registry,
            nats,
            connect,
            tag,
            json,
        } => done(match (nats, registry) {
            (Some(url), _) => jobs::nodes(&url, tag.as_deref(), json).await,
            (None, Some(registry)) => {
                commands::nodes(&registry, &connect, tag.as_deref(), json).await
            }
            (None, None) => Err(Error::bad_argument("give --registry ADDR or --nats URL")),
        }),
        Command::Jobs { nats, json } => done(jobs::list(&nats, json).await),
        Command::Job { action } => done(jobs::act(action).await),
        Command::Registry(a) => done(commands::registry(&a).await),
        Command::Shell { node, connect } => shell::run(&node, &connect.options()?, verbose).await,
        Command::Completions { .. } => Ok(ExitCode::SUCCESS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
