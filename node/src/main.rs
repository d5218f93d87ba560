//! `rwc-node`: makes this machine a place to run uploaded Wasm.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rwc_node::nats::NatsMember;
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
    /// Directory for the on-disk cache of compiled modules.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
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
    /// Tag to register under (repeat for several), e.g. `--tag gpu --tag eu`; with
    /// --nats, also the tags whose durable maps the node runs.
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Address clients should reach this node at (default: the address it listens on).
    #[arg(long, value_name = "ADDR")]
    advertise: Option<String>,
    /// Seconds the registry keeps the entry without a refresh; the node refreshes every
    /// third of it.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    register_ttl_secs: u64,
    /// Join the NATS JetStream fleet at this URL (nats://HOST:PORT, comma-separated for a
    /// cluster): list the node in its KV bucket, answer the NATS service API, and run the
    /// durable maps of the node's tags (`default` without --tag).
    #[arg(long, value_name = "URL")]
    nats: Option<String>,
    /// Seconds the node's NATS entry lives without a refresh (the bucket's max_age, set
    /// by whoever makes it first); it is refreshed every third of it.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    nats_ttl_secs: Option<u64>,
    /// Seconds a durable-map task may go without a sign of life before NATS gives it to
    /// another node (the consumer's AckWait, set by whoever makes it first).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    nats_ack_wait_secs: Option<u64>,
    /// Times an input is run when its node dies each time; then it gets an error result.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    nats_max_deliver: Option<u32>,
    /// Replicas of the NATS buckets and streams the node makes (3 on a 3-server cluster).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=5))]
    nats_replicas: Option<u64>,
    /// Durable-map tasks run at once (default: the CPU count).
    #[arg(long)]
    nats_slots: Option<usize>,
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
    if args.stdio && (args.register.is_some() || config.nats.url.is_some()) {
        eprintln!(
            "rwc-node: --register and --nats need --listen: a --stdio node has no address to advertise"
        );
        return ExitCode::from(2);
    }
    if (!args.tags.is_empty() || args.advertise.is_some())
        && args.register.is_none()
        && config.nats.url.is_none()
    {
        eprintln!("rwc-node: --tag and --advertise go with --register or --nats");
        return ExitCode::from(2);
    }
    let registry = args.register.clone().map(|registry| Registering {
        registry,
        tags: args.tags.clone(),
        advertise: args.advertise.clone(),
        ttl: Duration::from_secs(args.register_ttl_secs),
    });
    let joining = Joining {
        tags: args.tags.clone(),
        advertise: args.advertise.clone(),
    };
    match runtime.block_on(run(config, args.stdio, registry, joining)) {
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
    let n = &mut c.nats;
    if args.nats.is_some() {
        n.url.clone_from(&args.nats);
    }
    set(&mut n.ttl_secs, args.nats_ttl_secs);
    set(&mut n.ack_wait_secs, args.nats_ack_wait_secs);
    if let Some(v) = args.nats_max_deliver {
        n.max_deliver = v;
    }
    if let Some(v) = args.nats_replicas {
        n.replicas = usize::try_from(v).unwrap_or(1);
    }
    if args.nats_slots.is_some() {
        n.slots = args.nats_slots;
    }
    Ok(c)
}

/// What `--register` and its companions asked for.
struct Registering {
    registry: String,
    tags: Vec<String>,
    advertise: Option<String>,
    ttl: Duration,
}

/// What `--nats` goes with: the tags the node serves, the address it lists.
struct Joining {
    tags: Vec<String>,
    advertise: Option<String>,
}

async fn run(
    config: NodeConfig,
    stdio: bool,
    registering: Option<Registering>,
    joining: Joining,
) -> Result<(), String> {
    let listen = config.listen.clone();
    let nats = config.nats.clone();
    let grace = Duration::from_secs(config.grace_period_secs);
    let node = Node::new(config).map_err(|e| e.to_string())?;
    if stdio {
        return serve_stdio(node).await.map_err(|e| e.to_string());
    }
    let server = Server::bind(node.clone(), &listen)
        .await
        .map_err(|e| e.to_string())?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", server.address()).map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())?;
    }
    tracing::info!(address = server.address(), "rwc-node ready");
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
    let member = match &nats.url {
        Some(_) => {
            let advertise = joining
                .advertise
                .unwrap_or_else(|| server.address().to_owned());
            let member = NatsMember::join(node.clone(), &nats, advertise, joining.tags)
                .await
                .map_err(|e| e.to_string())?;
            Some(std::sync::Arc::new(member))
        }
        None => None,
    };
    let stopping = member.clone();
    server
        .run(async move {
            signal::shutdown().await;
            if let Some(m) = stopping {
                m.stop_taking_work();
            }
        })
        .await;
    if let Some(m) = member {
        m.leave(grace).await;
    }
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
