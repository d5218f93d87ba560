//! `rwc-stress`: soak, load and overload scenarios against real `rwc-node` processes on
//! 127.0.0.1, each bounded and stopping by itself; `scripts/stress` runs them (short
//! figures in CI, long ones by hand). Every scenario prints its figures and exits non-zero
//! if what it checks did not hold. The `hang-in-*` subcommands are clients for the fault
//! tests to kill mid-call and mid-upload.
//!
//! The node executable is the `rwc-node` beside this one (`--node-bin` overrides it).

mod hang;
mod load;
mod node;
mod overload;
mod soak;
mod stall;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A module with a busy loop, a quick export and 1 MiB of memory.
pub(crate) const SPIN: &str = r#"(module (memory (export "memory") 16)
  (func (export "spin") (loop $l (br $l)))
  (func (export "one") (result i32) i32.const 1))"#;

/// What went wrong in a scenario, said for a person.
pub(crate) type Failure = Box<dyn std::error::Error + Send + Sync>;

/// Soak, load and overload scenarios against rwc nodes on 127.0.0.1.
#[derive(Debug, Parser)]
#[command(name = "rwc-stress")]
struct Args {
    /// The `rwc-node` executable (default: the one beside this executable).
    #[arg(long, global = true)]
    node_bin: Option<PathBuf>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Netref create/call/drop cycles on one connection: the export tables return to
    /// empty and the node's RSS stays flat.
    SoakNetrefs {
        #[arg(long, default_value_t = 1_000_000)]
        cycles: u64,
    },
    /// Instantiate/call/drop cycles: no live instance left, pool slots all returned, RSS
    /// flat.
    SoakInstances {
        #[arg(long, default_value_t = 100_000)]
        cycles: u64,
    },
    /// Concurrent connections each making mixed calls (host call, guest export,
    /// guest→client callback, netref call) against one node: zero errors, latency
    /// percentiles and the node's RSS.
    Load {
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        #[arg(long, default_value_t = 1000)]
        calls: usize,
    },
    /// Load beyond every bound: `overloaded` naming the bound, no hang, no crash, and the
    /// time to recover once the load drops.
    Overload,
    /// Latency of ordinary connections without and with a peer that stops reading, and
    /// how long the node takes to drop that peer.
    StuckReader {
        #[arg(long, default_value_t = 50)]
        connections: usize,
        #[arg(long, default_value_t = 200)]
        calls: usize,
    },
    /// (For the fault tests.) Starts a call that never returns on the node at `--node`,
    /// prints `calling`, and waits to be killed.
    HangInCall {
        #[arg(long)]
        node: String,
    },
    /// (For the fault tests.) Uploads half of a `--bytes` module to `--node` in chunks,
    /// prints `uploading`, and waits to be killed.
    HangInUpload {
        #[arg(long)]
        node: String,
        #[arg(long, default_value_t = 4 << 20)]
        bytes: u64,
    },
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rwc-stress: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the scenario `args` names; what went wrong is for `main` to print.
fn run(args: Args) -> Result<(), String> {
    let node_bin = args
        .node_bin
        .map_or_else(node::default_bin, Ok)
        .map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let nodes = node::Launcher::new(node_bin);
    let outcome = runtime.block_on(async move {
        match args.scenario {
            Scenario::SoakNetrefs { cycles } => soak::netrefs(&nodes, cycles).await,
            Scenario::SoakInstances { cycles } => soak::instances(&nodes, cycles).await,
            Scenario::Load { connections, calls } => load::run(&nodes, connections, calls).await,
            Scenario::Overload => overload::run(&nodes).await,
            Scenario::StuckReader { connections, calls } => {
                stall::run(&nodes, connections, calls).await
            }
            Scenario::HangInCall { node } => hang::in_call(&node).await,
            Scenario::HangInUpload { node, bytes } => hang::in_upload(&node, bytes).await,
        }
    });
    outcome.map_err(|e| format!("FAILED: {e}"))
}
