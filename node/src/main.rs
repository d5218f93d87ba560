//! `rwc-node`: makes this machine a place to run uploaded Wasm.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rwc_node::server::{Server, serve_stdio};
use rwc_node::{Node, NodeConfig};
use rwc_protocol::signal;
use rwc_registry::Registration;
use tracing_subscriber::EnvFilter;

/// Run uploaded WebAssembly in a sandbox, for rwc clients.
///
/// Every flag has a key of the same name in the TOML config file (limits under `[limits]`);
/// flags win over the file.
#[derive(Debug, Parser)]
#[command(name = "rwc-node", version)]
struct Args {
    /// Address to listen on: HOST:PORT (port 0 picks a free one) or unix:/path.
    #[arg(long)]
    listen: Option<String>,
    /// Serve one connection over stdin/stdout (for inetd, or `ssh host rwc-node --stdio`).
    #[arg(long)]
    stdio: bool,
    /// TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Directory for the on-disk cache of compiled modules (default: $XDG_CACHE_HOME/rwc,
    /// else ~/.cache/rwc).
    #[arg(long, conflicts_with = "no_cache")]
    cache_dir: Option<PathBuf>,
    /// Keep no disk cache: every start compiles its modules again.
    #[arg(long)]
    no_cache: bool,
    /// Seconds calls in flight may take to finish after SIGINT/SIGTERM.
    #[arg(long)]
    grace_period_secs: Option<u64>,
    /// Capability granted to clients (repeat for several; replaces the config's list).
    #[arg(long = "grant")]
    grants: Vec<String>,
    /// Deadline of one call, in milliseconds.
    #[arg(long)]
    call_timeout_ms: Option<u64>,
    /// Memory of one instance, in bytes.
    #[arg(long)]
    memory_bytes: Option<u64>,
    /// Guest output captured per call, in bytes.
    #[arg(long)]
    max_output_bytes: Option<u64>,
    /// Largest module accepted, in bytes.
    #[arg(long)]
    max_module_bytes: Option<u64>,
    /// Most live instances on the node.
    #[arg(long)]
    max_instances: Option<usize>,
    /// Most live instances one connection may hold.
    #[arg(long)]
    max_instances_per_connection: Option<usize>,
    /// Most guest calls running at once.
    #[arg(long)]
    max_concurrent_calls: Option<usize>,
    /// Register with the registry at HOST:PORT (see `rwc registry`) and keep the entry
    /// fresh, so clients find this node with `rwc nodes` or `Pool::from_registry`.
    #[arg(long, value_name = "REGISTRY_ADDR")]
    register: Option<String>,
    /// Tag to register under (repeat for several), e.g. `--tag gpu --tag eu`.
    #[arg(long = "tag", value_name = "TAG", requires = "register")]
    tags: Vec<String>,
    /// Address clients should reach this node at (default: the address it listens on).
    #[arg(long, value_name = "ADDR", requires = "register")]
    advertise: Option<String>,
    /// Seconds the registry keeps the entry without a refresh; the node refreshes every
    /// third of it.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    register_ttl_secs: u64,
}

/// Large messages (a 64 MiB buffer) churn fresh pages under the system allocator; mimalloc
/// reuses them, which roughly doubles bulk throughput (see the protocol benchmark).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rwc-node: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rwc-node: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.stdio && args.register.is_some() {
        eprintln!(
            "rwc-node: --register needs --listen: a --stdio node has no address to advertise"
        );
        return ExitCode::from(2);
    }
    let registry = args.register.clone().map(|registry| Registering {
        registry,
        tags: args.tags.clone(),
        advertise: args.advertise.clone(),
        ttl: Duration::from_secs(args.register_ttl_secs),
    });
    match runtime.block_on(run(config, args.stdio, registry)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rwc-node: {e}");
            ExitCode::FAILURE
        }
    }
}

fn config(args: &Args) -> Result<NodeConfig, String> {
    let mut c = match &args.config {
        Some(path) => NodeConfig::from_file(path)?,
        None => NodeConfig::default(),
    };
    if let Some(v) = &args.listen {
        c.listen.clone_from(v);
    }
    if args.cache_dir.is_some() {
        c.cache_dir.clone_from(&args.cache_dir);
        c.no_cache = false;
    }
    if args.no_cache {
        c.no_cache = true;
    }
    if !c.no_cache && c.cache_dir.is_none() {
        c.cache_dir = default_cache_dir()?;
    }
    if let Some(v) = args.grace_period_secs {
        c.grace_period_secs = v;
    }
    if !args.grants.is_empty() {
        c.grants.clone_from(&args.grants);
    }
    let l = &mut c.limits;
    let set = |slot: &mut u64, v: Option<u64>| {
        if let Some(v) = v {
            *slot = v;
        }
    };
    set(&mut l.call_timeout_ms, args.call_timeout_ms);
    set(&mut l.memory_bytes, args.memory_bytes);
    set(&mut l.max_output_bytes, args.max_output_bytes);
    set(&mut l.max_module_bytes, args.max_module_bytes);
    if let Some(v) = args.max_instances {
        l.max_instances = v;
    }
    if let Some(v) = args.max_instances_per_connection {
        l.max_instances_per_connection = v;
    }
    if let Some(v) = args.max_concurrent_calls {
        l.max_concurrent_calls = v;
    }
    Ok(c)
}

/// The default cache directory, created readable and writable by this user only: its files
/// are loaded as native code. `None` (no disk cache, with a warning) if there is no home.
fn default_cache_dir() -> Result<Option<PathBuf>, String> {
    let Some(dir) = rwc_node::config::default_cache_dir() else {
        tracing::warn!("neither XDG_CACHE_HOME nor HOME is set: running without a disk cache");
        return Ok(None);
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(&dir).map_err(|e| {
        format!(
            "cannot create the module cache {}: {e}; pass --cache-dir DIR or --no-cache",
            dir.display()
        )
    })?;
    Ok(Some(dir))
}

/// What `--register` and its companions asked for.
struct Registering {
    registry: String,
    tags: Vec<String>,
    advertise: Option<String>,
    ttl: Duration,
}

async fn run(
    config: NodeConfig,
    stdio: bool,
    registering: Option<Registering>,
) -> Result<(), String> {
    let listen = config.listen.clone();
    let cache = config.sandbox_config().cache_dir;
    let node = Node::new(config).map_err(|e| e.to_string())?;
    if stdio {
        return serve_stdio(node).await.map_err(|e| e.to_string());
    }
    let server = Server::bind(node, &listen)
        .await
        .map_err(|e| e.to_string())?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", server.address()).map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())?;
    }
    match &cache {
        Some(dir) => {
            tracing::info!(address = server.address(), cache = %dir.display(), "rwc-node ready")
        }
        None => tracing::info!(address = server.address(), cache = "none", "rwc-node ready"),
    }
    let registration = registering.map(|r| {
        let advertise = r.advertise.unwrap_or_else(|| server.address().to_owned());
        if advertise.starts_with("0.0.0.0:") || advertise.starts_with("[::]:") {
            tracing::warn!(
                %advertise,
                "registering a wildcard address clients cannot connect to; pass --advertise HOST:PORT"
            );
        }
        Registration {
            registry: r.registry,
            advertise,
            tags: r.tags,
            ttl: r.ttl,
        }
    });
    let refresher = registration.clone().map(|r| tokio::spawn(r.run()));
    server.run(signal::shutdown()).await;
    if let (Some(task), Some(r)) = (refresher, registration) {
        task.abort();
        // Leave the registry at once rather than after the TTL; a registry that does not
        // answer quickly just lets the entry expire.
        if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(2), r.unregister()).await {
            tracing::debug!(error = %e, "could not unregister");
        }
    }
    Ok(())
}
