//! The rwc demo: render the Mandelbrot set across several nodes, kill one halfway, finish
//! anyway.
//!
//! It starts N `rwc-node` processes on 127.0.0.1, uploads the `mandelbrot` example guest to
//! each, splits the image into bands of rows and maps the guest's `render` export over them
//! with a [`Pool`]. When half the bands are done it kills one node (SIGKILL, no goodbye):
//! the pool hands that node's unfinished bands to the others. Then it writes a PNG and
//! says which node did what.
//!
//! ```sh
//! scripts/demo                      # builds everything, then runs this
//! cargo run --release -p rwc-client --example mandelbrot -- --nodes 4 --width 4096
//! ```

// Shared with the end-to-end tests, which use all of it.
#[allow(dead_code)]
#[path = "../../tests/src/process.rs"]
mod process;
#[path = "../../examples/mandelbrot/src/tile.rs"]
mod tile;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use process::Listening;
use rwc_client::{MapOptions, MapProgress, Pool, Value, to_value};
use tile::Tile;

/// Render the Mandelbrot set on several rwc nodes, surviving one of them dying.
#[derive(Debug, Parser)]
struct Args {
    /// How many nodes to start.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Image width in pixels.
    #[arg(long, default_value_t = 2048)]
    width: u32,
    /// Image height in pixels.
    #[arg(long, default_value_t = 2048)]
    height: u32,
    /// Most iterations per pixel.
    #[arg(long, default_value_t = 256)]
    max_iter: u32,
    /// Rows per band (one band is one call).
    #[arg(long, default_value_t = 16)]
    rows: u32,
    /// Instances per node (default: the node's CPU count).
    #[arg(long)]
    per_node: Option<usize>,
    /// Don't kill a node halfway.
    #[arg(long)]
    no_kill: bool,
    /// The `rwc-node` executable (default: next to this example's, in target/<profile>/).
    #[arg(long)]
    node_bin: Option<PathBuf>,
    /// The guest module (default: examples/target/wasm32-wasip1/release/mandelbrot.wasm).
    #[arg(long)]
    guest: Option<PathBuf>,
    /// Where to write the image.
    #[arg(long, default_value = "mandelbrot.png")]
    out: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.nodes == 0 || args.width == 0 || args.height == 0 || args.rows == 0 {
        bail!("--nodes, --width, --height and --rows must be at least 1");
    }
    let node_bin = match &args.node_bin {
        Some(p) => p.clone(),
        None => default_node_bin()?,
    };
    let guest_path = args.guest.clone().unwrap_or_else(default_guest);
    let guest = std::fs::read(&guest_path).with_context(|| {
        format!(
            "cannot read the guest {}; build it with `cargo build --release --target \
             wasm32-wasip1 --manifest-path examples/Cargo.toml -p mandelbrot` (scripts/demo does)",
            guest_path.display()
        )
    })?;

    let nodes = Nodes::start(&node_bin, args.nodes)?;
    eprintln!(
        "started {} nodes: {}",
        nodes.addrs.len(),
        nodes.addrs.join(", ")
    );
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let result = runtime.block_on(render(&args, &guest, &nodes));
    drop(nodes);
    result
}

async fn render(args: &Args, guest: &[u8], nodes: &Nodes) -> Result<()> {
    let mut pool = Pool::connect(&nodes.addrs).await?;
    let hash = pool.load(guest).await?;
    eprintln!(
        "loaded the guest ({} bytes, {}) on every node",
        guest.len(),
        &hash[..12]
    );

    let tiles = tiles(args);
    let inputs: Vec<Vec<Value>> = tiles
        .iter()
        .map(|t| to_value(t).map(|v| vec![v]))
        .collect::<Result<_, _>>()?;
    let total = tiles.len();

    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(total as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "[{elapsed_precise}] [{bar:30.green/white}] {pos}/{len} bands {per_sec} {msg}",
        )?
        .progress_chars("=> "),
    );

    // Kill the last node once half the bands are done.
    let victim = (!args.no_kill && nodes.addrs.len() > 1).then(|| nodes.addrs.len() - 1);
    let killed = Arc::new(AtomicBool::new(false));
    let (pb, k, procs) = (bar.clone(), killed.clone(), nodes.procs.clone());
    let victim_addr = victim.map(|v| nodes.addrs[v].clone());
    let options = MapOptions {
        per_node: args.per_node,
        ..MapOptions::default()
    }
    .on_progress(move |p: &MapProgress| {
        pb.set_position(p.done as u64);
        pb.set_message(per_node(p));
        if let (Some(v), Some(addr)) = (victim, &victim_addr)
            && p.done * 2 >= p.total
            && !k.swap(true, Ordering::SeqCst)
        {
            procs[v].kill();
            let line = format!(
                "killed node {addr} at {}/{} bands: its unfinished bands go to the others",
                p.done, p.total
            );
            if pb.is_hidden() {
                eprintln!("{line}");
            } else {
                pb.println(line);
            }
        }
    });

    let started = Instant::now();
    let report = pool.map("render", inputs, options).await?;
    bar.finish_and_clear();
    let elapsed = started.elapsed();

    let (width, height) = (args.width as usize, args.height as usize);
    let mut counts = vec![0u8; width * height];
    let mut failed = Vec::new();
    for (tile, result) in tiles.iter().zip(&report.results) {
        let start = tile.row_start as usize * width;
        let end = tile.row_end as usize * width;
        match result {
            Ok(Value::Bytes(b)) if b.len() == end - start => counts[start..end].copy_from_slice(b),
            Ok(other) => failed.push(format!(
                "rows {}..{}: unexpected result {}",
                tile.row_start,
                tile.row_end,
                other.type_name()
            )),
            Err(e) => failed.push(format!("rows {}..{}: {e}", tile.row_start, tile.row_end)),
        }
    }
    write_png(
        &args.out,
        args.width,
        args.height,
        &colourise(&counts, args.max_iter),
    )?;
    let shown = std::fs::canonicalize(&args.out).unwrap_or_else(|_| args.out.clone());

    println!(
        "rendered {}x{} ({} iterations) as {total} bands on {} nodes in {:.2} s",
        args.width,
        args.height,
        args.max_iter,
        report.nodes.len(),
        elapsed.as_secs_f64()
    );
    for n in &report.nodes {
        match &n.failed {
            Some(e) => println!(
                "  {:<22} {:>4} bands  FAILED: {}: {}",
                n.addr,
                n.done,
                e.kind(),
                e.message()
            ),
            None => println!("  {:<22} {:>4} bands", n.addr, n.done),
        }
    }
    if !failed.is_empty() {
        println!("{} bands failed (left black):", failed.len());
        for f in &failed {
            println!("  {f}");
        }
    }
    println!("wrote {}", shown.display());
    pool.close();
    if failed.is_empty() {
        Ok(())
    } else {
        bail!("{} of {total} bands failed", failed.len())
    }
}

/// The image as bands of `args.rows` rows, over `[-2.2, 0.8] x [-1.5, 1.5]` scaled to the
/// image's aspect ratio.
fn tiles(args: &Args) -> Vec<Tile> {
    let (cx, cy, h) = (-0.7, 0.0, 3.0);
    let w = h * f64::from(args.width) / f64::from(args.height);
    (0..args.height)
        .step_by(args.rows as usize)
        .map(|row_start| Tile {
            width: args.width,
            height: args.height,
            row_start,
            row_end: (row_start + args.rows).min(args.height),
            x_min: cx - w / 2.0,
            x_max: cx + w / 2.0,
            y_min: cy - h / 2.0,
            y_max: cy + h / 2.0,
            max_iter: args.max_iter,
        })
        .collect()
}

/// Per-node counts for the progress bar.
fn per_node(p: &MapProgress) -> String {
    p.nodes
        .iter()
        .map(|n| {
            let port = n.addr.rsplit(':').next().unwrap_or(&n.addr);
            if n.alive {
                format!(":{port} {}", n.done)
            } else {
                format!(":{port} ✗{}", n.done)
            }
        })
        .collect::<Vec<_>>()
        .join("  ")
}

/// Iteration counts → RGB: points inside the set black, the rest along a smooth palette
/// (deep blue far out, through cyan and yellow, to red at the edge of the set).
fn colourise(counts: &[u8], max_iter: u32) -> Vec<u8> {
    let top = max_iter.min(255) as f64;
    let mut rgb = Vec::with_capacity(counts.len() * 3);
    for &n in counts {
        if f64::from(n) >= top {
            rgb.extend_from_slice(&[0, 0, 0]);
            continue;
        }
        // A log scale: most points escape within a few iterations.
        let t = (f64::from(n) + 1.0).ln() / (top + 1.0).ln();
        let u = 1.0 - t;
        // Clamped to 0..=1 first, so the cast cannot truncate.
        #[allow(clippy::cast_possible_truncation)]
        let channel = |v: f64| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        rgb.push(channel(9.0 * u * t * t * t));
        rgb.push(channel(15.0 * u * u * t * t));
        rgb.push(channel(8.5 * u * u * u * t));
    }
    rgb
}

fn write_png(path: &Path, width: u32, height: u32, rgb: &[u8]) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(())
}

/// `rwc-node` next to this executable: target/<profile>/examples/mandelbrot →
/// target/<profile>/rwc-node.
fn default_node_bin() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find this executable's path")?;
    let candidates: Vec<PathBuf> = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|d| d.join("rwc-node"))
        .collect();
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .with_context(|| {
            format!(
                "no rwc-node next to this example (looked at {}); build it with \
                 `cargo build --release -p rwc-node` or pass --node-bin",
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// The guest as `cargo build --release --target wasm32-wasip1 --manifest-path
/// examples/Cargo.toml` leaves it, or as the tests' build script does.
fn default_guest() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let built = workspace.join("examples/target/wasm32-wasip1/release/mandelbrot.wasm");
    let by_tests = workspace.join("target/guests/wasm32-wasip1/release/mandelbrot.wasm");
    if !built.exists() && by_tests.exists() {
        by_tests
    } else {
        built
    }
}

/// The node processes; killed when dropped.
struct Nodes {
    addrs: Vec<String>,
    procs: Arc<Vec<Listening>>,
}

impl Nodes {
    fn start(bin: &Path, n: usize) -> Result<Nodes> {
        let procs = (0..n)
            .map(|_| {
                let mut cmd = Command::new(bin);
                cmd.args(["--listen", "127.0.0.1:0"]);
                Listening::start(cmd).with_context(|| format!("cannot start {}", bin.display()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Nodes {
            addrs: procs.iter().map(|p| p.addr.clone()).collect(),
            procs: Arc::new(procs),
        })
    }
}
