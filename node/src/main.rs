//! `rwc-node`: makes this machine a place to run uploaded Wasm.

mod bound_flags;
mod gen_cert;

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use rwc_node::nats::NatsMember;
use rwc_node::server::{Server, serve_stdio};
use rwc_node::{Node, NodeConfig};
use rwc_protocol::{ConnectOptions, TlsClientConfig, Token, signal};
use rwc_registry::Registration;
use tracing_subscriber::EnvFilter;

/// Run uploaded WebAssembly in a sandbox, for rwc clients.
///
/// Every flag has a key of the same name in the TOML config file (limits under `[limits]`);
/// flags win over the file. Who may connect, and with what grants, is the file's
/// `[[principals]]`; without any, the node serves only loopback and unix: addresses.
#[derive(Debug, Parser)]
#[command(name = "rwc-node", version, args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    command: Option<Tool>,
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
    /// Tag to register under (repeat for several), e.g. `--tag gpu --tag eu`; with
    /// --nats, also the tags whose durable maps the node runs.
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Address clients should reach this node at (default: the address it listens on,
    /// as tls://HOST:PORT when it serves TLS).
    #[arg(long, value_name = "ADDR")]
    advertise: Option<String>,
    /// Seconds the registry keeps the entry without a refresh; the node refreshes every
    /// third of it.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    register_ttl_secs: u64,
    #[command(flatten)]
    bounds: bound_flags::BoundFlags,
    /// File whose first line is the token the registry accepts registrations with (see
    /// `rwc registry --register-token-file`).
    #[arg(long, value_name = "FILE", requires = "register")]
    register_token_file: Option<PathBuf>,
    /// CA certificate (PEM) to trust for a `tls://` registry (default: the system's).
    #[arg(long, value_name = "FILE", requires = "register")]
    register_tls_ca: Option<PathBuf>,
    /// TLS certificate chain (PEM) to serve with: the node then speaks only TLS, and
    /// clients connect to tls://HOST:PORT.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// CA certificate(s) (PEM): every client must present a certificate it signed.
    #[arg(long, value_name = "FILE")]
    tls_client_ca: Option<PathBuf>,
    /// Serve a non-loopback address even without TLS and principals (logs a warning).
    #[arg(long)]
    insecure: bool,
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

/// Tools beside serving.
#[derive(Debug, Subcommand)]
enum Tool {
    /// Write a CA, a node certificate it signed and client certificates: a working TLS
    /// setup in one command (an existing CA in DIR is reused).
    GenCert(gen_cert::GenCert),
    /// Read a token on stdin and print the config line that lets it in:
    /// `token_sha256 = "…"` (for a `[[principals]]` entry).
    HashToken,
}

/// Large messages (a 64 MiB buffer) churn fresh pages under the system allocator; mimalloc
/// reuses them, which roughly doubles bulk throughput (see the protocol benchmark).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(tool) = &args.command {
        let done = match tool {
            Tool::GenCert(g) => g.run(),
            Tool::HashToken => hash_token(),
        };
        return match done {
            Ok(out) => {
                print!("{out}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("rwc-node: {e}");
                ExitCode::FAILURE
            }
        };
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours for a person at a terminal, not escape codes in a log file or journal.
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
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
    let registry = match registering(&args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rwc-node: {e}");
            return ExitCode::from(2);
        }
    };
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
    args.bounds.apply(l);
    if args.tls_cert.is_some() {
        c.tls_cert.clone_from(&args.tls_cert);
        c.tls_key.clone_from(&args.tls_key);
    }
    if args.tls_client_ca.is_some() {
        c.tls_client_ca.clone_from(&args.tls_client_ca);
    }
    c.insecure |= args.insecure;
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
    options: ConnectOptions,
}

fn registering(args: &Args) -> Result<Option<Registering>, String> {
    let Some(registry) = args.register.clone() else {
        return Ok(None);
    };
    let mut options = ConnectOptions::new();
    if let Some(file) = &args.register_token_file {
        options.token = Some(Token::from_file(file).map_err(|e| e.message().to_owned())?);
    }
    if let Some(ca) = &args.register_tls_ca {
        let tls =
            TlsClientConfig::from_pem_files(Some(ca), None).map_err(|e| e.message().to_owned())?;
        options.tls = Some(tls);
    }
    Ok(Some(Registering {
        registry,
        tags: args.tags.clone(),
        advertise: args.advertise.clone(),
        ttl: Duration::from_secs(args.register_ttl_secs),
        options,
    }))
}

/// `rwc-node hash-token`: the token on stdin → the line for the config file.
fn hash_token() -> Result<String, String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("type the token, then Enter:");
    }
    let mut text = String::new();
    stdin
        .lock()
        .read_line(&mut text)
        .map_err(|e| format!("cannot read the token from stdin: {e}"))?;
    let token = Token::new(text.lines().next().unwrap_or("")).map_err(|_| {
        "no token on stdin: pipe one in, e.g. `rwc-node hash-token < ops.token`".to_owned()
    })?;
    Ok(format!("token_sha256 = \"{}\"\n", token.digest()))
}

/// The address to register for a node bound to `bound`: clients of a TLS node must
/// connect with `tls://` (`tls+unix:`), so that is what the registry hands them.
fn advertised(bound: &str, tls: bool) -> String {
    match (tls, bound.strip_prefix("unix:")) {
        (false, _) => bound.to_owned(),
        (true, Some(path)) => format!("tls+unix:{path}"),
        (true, None) => format!("tls://{bound}"),
    }
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
    let cache = config.sandbox_config().cache_dir;
    let nats = config.nats.clone();
    let grace = Duration::from_secs(config.grace_period_secs);
    let node = Node::new(config).map_err(|e| e.to_string())?;
    if stdio {
        return serve_stdio(node).await.map_err(|e| e.to_string());
    }
    let serves_tls = node.tls().is_some();
    let server = Server::bind(node.clone(), &listen)
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
        let advertise = r
            .advertise
            .unwrap_or_else(|| advertised(server.address(), serves_tls));
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
            options: r.options,
        }
    });
    let refresher = registration.clone().map(|r| tokio::spawn(r.run()));
    let member = match &nats.url {
        Some(_) => {
            let advertise = joining
                .advertise
                .unwrap_or_else(|| advertised(server.address(), serves_tls));
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
