//! `rwc`: use rwc nodes from the command line.
//!
//! A thin layer over `rwc-client`: it parses arguments, prints results (JSON on stdout,
//! progress and messages on stderr) and turns the kind of an error into the exit code.
//! Everything only a binary needs lives here, not in the library: argument parsing,
//! progress bars, the shell, completions, log formatting and the allocator.

mod args;
mod commands;
mod jobs;
mod json;
mod map;
mod progress;
mod shell;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use rwc_client::{Error, ErrorKind};
use tracing_subscriber::EnvFilter;

use crate::args::LimitArgs;

/// Run WebAssembly on rwc nodes.
///
/// Exit codes: 0 success, 1 other failure, 2 usage, 3 disconnected, 4 timed out,
/// 5 denied, 6 trapped or out of fuel, 7 bad argument, 8 unimplemented, 9 overloaded.
#[derive(Debug, Parser)]
#[command(name = "rwc", version)]
struct Cli {
    /// Show the remote trace and causes of errors.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

/// Where a command finds its node.
#[derive(Debug, clap::Args)]
struct NodeArg {
    /// Node address: HOST:PORT or unix:/path.
    #[arg(long, default_value = "127.0.0.1:18870", env = "RWC_NODE")]
    node: String,
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
    /// Arguments, each JSON (a bare word is a string; negative numbers work; put
    /// other arguments starting with `-` after `--`).
    #[arg(allow_negative_numbers = true)]
    args: Vec<String>,
    #[command(flatten)]
    limits: LimitArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Upload MODULE (.wasm or .wat) if the node lacks it, instantiate it, call FUNC with
    /// JSON ARGs and print the result as JSON. Guest output goes to stderr as it happens.
    Call(CallArgs),
    /// Upload MODULE if needed and run FUNC once in a fresh instance (one request; the
    /// instance is freed at once). Prints the result as JSON; guest output goes to stderr.
    Run(CallArgs),
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
        /// The registry's address, HOST:PORT.
        #[arg(long, env = "RWC_REGISTRY", required_unless_present = "nats")]
        registry: Option<String>,
        /// List the nodes registered in NATS instead (nats://HOST:PORT).
        #[arg(long, conflicts_with = "registry")]
        nats: Option<String>,
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
    Registry {
        /// Address to listen on, HOST:PORT (port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:18869")]
        listen: String,
    },
    /// An interactive session with a node: load modules, make instances, call exports,
    /// keep netrefs in variables. Reads commands from stdin (a script works too); type
    /// `help` for the commands.
    Shell {
        /// Node address: HOST:PORT or unix:/path.
        #[arg(env = "RWC_NODE", default_value = "127.0.0.1:18870")]
        node: String,
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
    log_to_stderr();
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

/// Logs go to stderr: errors only, unless `RUST_LOG` asks for more.
fn log_to_stderr() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
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
        _ => 1,
    }
}

async fn run(command: Command, verbose: bool) -> Result<ExitCode, Error> {
    let done = |r: Result<(), Error>| r.map(|()| ExitCode::SUCCESS);
    match command {
        Command::Call(a) => done(commands::call(&a).await),
        Command::Run(a) => done(commands::run(&a).await),
        Command::Info { node } => done(commands::info(&node.node).await),
        Command::Ping {
            node,
            count,
            interval_ms,
        } => done(commands::ping(&node.node, count, interval_ms).await),
        Command::Upload { node, module } => done(commands::upload(&node.node, &module).await),
        Command::Map(a) => map::map(a).await,
        Command::Nodes {
            registry,
            nats,
            tag,
            json,
        } => done(match (nats, registry) {
            (Some(url), _) => jobs::nodes(&url, tag.as_deref(), json).await,
            (None, Some(registry)) => commands::nodes(&registry, tag.as_deref(), json).await,
            (None, None) => Err(Error::bad_argument("give --registry ADDR or --nats URL")),
        }),
        Command::Jobs { nats, json } => done(jobs::list(&nats, json).await),
        Command::Job { action } => done(jobs::act(action).await),
        Command::Registry { listen } => done(commands::registry(&listen).await),
        Command::Shell { node } => shell::run(&node, verbose).await,
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
