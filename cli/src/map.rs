//! `rwc map`: one call per input line, spread over several nodes.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};

use crate::json::{from_json, to_json};
use rwc_client::{Error, MapOptions, MapProgress, MapReport, Value};
use serde_json::{Value as Json, json};

use crate::args::{FleetArgs, LimitArgs, read_module};
use crate::progress::{map_bar, node_counts};

/// What `rwc map` takes.
#[derive(Debug, clap::Args)]
pub struct MapArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    #[command(flatten)]
    pub durable: crate::jobs::DurableArgs,
    /// The module file (.wasm or .wat).
    pub module: PathBuf,
    /// The export to call.
    pub export: String,
    /// JSON lines file of inputs ("-" for stdin).
    #[arg(long, short)]
    pub input: PathBuf,
    /// Instances per node (default: the node's CPU count, or 2).
    #[arg(long)]
    pub per_node: Option<usize>,
    /// Print the summary as the last stdout line ({"summary": …}).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Runs the map; the exit code is that of the first failed input, if any.
pub async fn map(a: MapArgs) -> Result<ExitCode, Error> {
    let bytes = read_module(&a.module)?;
    let inputs = read_inputs(&a.input)?;
    if a.durable.nats.is_some() {
        return crate::jobs::map(&a, &bytes, inputs).await;
    }
    let mut pool = a.fleet.connect().await?;
    for (addr, e) in pool.unreachable() {
        eprintln!("rwc: left out {addr}: {}", crate::one_line(e));
    }
    pool.load(&bytes).await?;

    let printing = Printing::new(inputs.len());
    let mut options = MapOptions::default()
        .on_progress(printing.on_progress())
        .on_result(printing.on_result());
    options.per_node = a.per_node;
    options.instance = a.limits.options();
    let report = pool.map(&a.export, inputs, options).await;
    pool.close();
    printing.finish(&report?, a.json)
}

/// The progress bar and the in-order printer of a map.
pub(crate) struct Printing {
    bar: indicatif::ProgressBar,
    printer: Arc<Mutex<InOrder>>,
}

impl Printing {
    pub(crate) fn new(total: usize) -> Self {
        Printing {
            bar: map_bar(u64::try_from(total).unwrap_or(u64::MAX)),
            printer: Arc::new(Mutex::new(InOrder::default())),
        }
    }

    /// Moves the bar and shows per-node counts.
    pub(crate) fn on_progress(&self) -> impl Fn(&MapProgress) + Send + Sync + 'static {
        let bar = self.bar.clone();
        move |p| {
            bar.set_position(u64::try_from(p.done).unwrap_or(u64::MAX));
            bar.set_message(node_counts(p));
        }
    }

    /// Prints each result once every earlier one is in.
    pub(crate) fn on_result(
        &self,
    ) -> impl Fn(usize, &Result<Value, Error>) + Send + Sync + 'static {
        let (bar, printer) = (self.bar.clone(), self.printer.clone());
        move |i, r| {
            let mut p = printer.lock().unwrap_or_else(PoisonError::into_inner);
            bar.suspend(|| p.add(i, result_line(r)));
        }
    }

    /// Clears the bar, checks that every result was printed and prints the summary.
    pub(crate) fn finish(self, report: &MapReport, json: bool) -> Result<ExitCode, Error> {
        self.bar.finish_and_clear();
        finish(&self.printer, report, json)
    }
}

/// Checks that every result was printed, prints the summary; the exit code is that of the
/// first failed input, if any.
fn finish(printer: &Mutex<InOrder>, report: &MapReport, json: bool) -> Result<ExitCode, Error> {
    let printed = std::mem::take(&mut *printer.lock().unwrap_or_else(PoisonError::into_inner));
    printed.finish(report.results.len())?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", json!({ "summary": summary(report) })).map_err(stdout_error)?;
    } else {
        eprintln!("{}", summary_line(report));
    }
    out.flush().map_err(stdout_error)?;
    Ok(match report.results.iter().find_map(|r| r.as_ref().err()) {
        Some(e) => ExitCode::from(crate::exit_code(e.kind())),
        None => ExitCode::SUCCESS,
    })
}

fn result_line(r: &Result<Value, Error>) -> Json {
    match r {
        Ok(v) => to_json(v),
        Err(e) => json!({"error": {"kind": e.kind().as_str(), "message": e.message()}}),
    }
}

/// Prints results in input order as soon as every earlier one is in, so a long map
/// streams its output.
#[derive(Default)]
struct InOrder {
    next: usize,
    waiting: BTreeMap<usize, Json>,
    failed: Option<std::io::Error>,
}

impl InOrder {
    fn add(&mut self, i: usize, line: Json) {
        self.waiting.insert(i, line);
        let mut out = std::io::stdout().lock();
        while let Some(line) = self.waiting.remove(&self.next) {
            self.next += 1;
            if self.failed.is_none()
                && let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush())
            {
                self.failed = Some(e);
            }
        }
    }

    /// Checks that all `total` results were printed.
    fn finish(self, total: usize) -> Result<(), Error> {
        if let Some(e) = self.failed {
            return Err(stdout_error(e));
        }
        if self.next != total {
            return Err(Error::failed(format!(
                "printed {} of {total} results; the others never came",
                self.next
            )));
        }
        Ok(())
    }
}

fn stdout_error(e: std::io::Error) -> Error {
    Error::failed(format!("cannot write results to stdout: {e}"))
}

/// Inputs from a JSON lines file: an array is the argument list, anything else one
/// argument. Blank lines are skipped.
pub(crate) fn read_inputs(path: &PathBuf) -> Result<Vec<Vec<Value>>, Error> {
    let read_err = |e: std::io::Error| {
        Error::bad_argument(format!("cannot read inputs from {}: {e}", path.display()))
    };
    let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(path).map_err(read_err)?,
        ))
    };
    let mut inputs = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(read_err)?;
        if line.trim().is_empty() {
            continue;
        }
        let j: Json = serde_json::from_str(&line).map_err(|e| {
            Error::bad_argument(format!(
                "{} line {}: not JSON ({e}); each line is a JSON array of arguments or one JSON value",
                path.display(),
                n + 1
            ))
        })?;
        inputs.push(match j {
            Json::Array(items) => items.iter().map(from_json).collect::<Result<_, _>>()?,
            one => vec![from_json(&one)?],
        });
    }
    Ok(inputs)
}

fn summary(r: &MapReport) -> Json {
    let secs = r.elapsed.as_secs_f64();
    json!({
        "inputs": r.results.len(),
        "succeeded": r.succeeded(),
        "failed": r.failed(),
        "elapsed_secs": secs,
        "per_sec": if secs > 0.0 { r.results.len() as f64 / secs } else { 0.0 },
        "nodes": r.nodes.iter().map(|n| json!({
            "addr": n.addr,
            "instances": n.instances,
            "done": n.done,
            "failed": n.failed.as_ref().map(crate::one_line),
        })).collect::<Vec<_>>(),
    })
}

fn summary_line(r: &MapReport) -> String {
    let secs = r.elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        r.results.len() as f64 / secs
    } else {
        0.0
    };
    let nodes: Vec<String> = r
        .nodes
        .iter()
        .map(|n| match &n.failed {
            Some(e) => format!("{} {} (failed: {})", n.addr, n.done, crate::one_line(e)),
            None => format!("{} {}", n.addr, n.done),
        })
        .collect();
    format!(
        "map: {} inputs ({} ok, {} failed) in {secs:.2} s, {rate:.0}/s; per node: {}",
        r.results.len(),
        r.succeeded(),
        r.failed(),
        nodes.join(", ")
    )
}
