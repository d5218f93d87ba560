//! `rwc`: use rwc nodes from the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rwc_client::json::{parse_arg, to_json};
use rwc_client::{Client, Error, ErrorKind, InstanceOptions, OutputHandler};

/// Run WebAssembly on rwc nodes.
#[derive(Debug, Parser)]
#[command(name = "rwc", version)]
struct Cli {
    /// Show the remote trace of errors.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Upload MODULE (.wasm or .wat) if the node lacks it, instantiate it, call FUNC with
    /// JSON ARGs and print the result as JSON. Guest output goes to stderr as it happens.
    Call {
        /// Node address: HOST:PORT or unix:/path.
        #[arg(long, default_value = "127.0.0.1:18870", env = "RWC_NODE")]
        node: String,
        /// The module file.
        module: PathBuf,
        /// The export to call.
        func: String,
        /// Arguments, each JSON (a bare word is a string).
        args: Vec<String>,
    },
    /// Print the node's info as JSON.
    Info {
        /// Node address: HOST:PORT or unix:/path.
        #[arg(long, default_value = "127.0.0.1:18870", env = "RWC_NODE")]
        node: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rwc: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if cli.verbose {
                eprintln!("rwc: {e}");
            } else {
                eprintln!("rwc: {}: {}", e.kind(), e.message());
            }
            ExitCode::from(exit_code(e.kind()))
        }
    }
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

async fn run(command: Command) -> Result<(), Error> {
    match command {
        Command::Call {
            node,
            module,
            func,
            args,
        } => {
            let bytes = std::fs::read(&module).map_err(|e| {
                Error::bad_argument(format!("cannot read {}: {e}", module.display()))
            })?;
            let args = args
                .iter()
                .map(|a| parse_arg(a))
                .collect::<Result<Vec<_>, _>>()?;
            let client = Client::connect(&node).await?;
            let module = client.upload(&bytes).await?;
            let options = InstanceOptions {
                output: Some(OutputHandler::stderr()),
                ..InstanceOptions::default()
            };
            let instance = client.instantiate(&module, options).await?;
            let result = instance.call_value(&func, args).await?;
            println!("{}", to_json(&result));
            client.close();
            Ok(())
        }
        Command::Info { node } => {
            let client = Client::connect(&node).await?;
            let info = client.info().await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&to_json(&info)).unwrap_or_default()
            );
            client.close();
            Ok(())
        }
    }
}
