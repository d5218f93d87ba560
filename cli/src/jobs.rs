//! The NATS commands: `rwc map --nats` (a durable map), `rwc nodes --nats`, `rwc jobs`,
//! `rwc job cancel`.

use std::io::Write;
use std::process::ExitCode;

use rwc_client::nats::{DurableMapOptions, FleetOptions, NatsFleet};
use rwc_client::{Error, Value};
use serde_json::json;

use crate::map::{MapArgs, Printing};

/// The flags of `rwc map` that make it a durable map on NATS.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DurableArgs {
    /// Run a durable map through NATS JetStream (nats://HOST:PORT, comma-separated for a
    /// cluster): inputs go to a work-queue stream that the nodes serving --tag pull from.
    #[arg(long, conflicts_with_all = ["nodes", "registry"])]
    pub nats: Option<String>,
    /// With --nats: the job's name; the same command with the same name resumes it
    /// (default: a fresh name, printed to stderr).
    #[arg(long, requires = "nats")]
    pub job: Option<String>,
    /// With --nats: inputs per task message.
    #[arg(long, requires = "nats", default_value_t = 1)]
    pub batch: usize,
    /// With --nats: keep the job (and its results) in NATS after it ends.
    #[arg(long, requires = "nats")]
    pub keep: bool,
    /// With --nats: replicas of the streams and buckets it makes (3 on a 3-server
    /// cluster).
    #[arg(long, requires = "nats", default_value_t = 1)]
    pub replicas: usize,
}

/// What `rwc job` does.
#[derive(Debug, clap::Subcommand)]
pub enum JobAction {
    /// Delete a job: its queued tasks, its results and its entry (nodes drop its tasks).
    Cancel {
        /// The job's name.
        name: String,
        /// The NATS server(s), nats://HOST:PORT.
        #[arg(long, env = "RWC_NATS")]
        nats: String,
    },
}

/// `rwc map --nats`: the results are printed in input order as they come, every one
/// exactly once, the ones a resumed job already had included.
pub async fn map(a: &MapArgs, module: &[u8], inputs: Vec<Vec<Value>>) -> Result<ExitCode, Error> {
    let d = &a.durable;
    let url = d.nats.as_deref().unwrap_or_default();
    if a.per_node.is_some() {
        return Err(Error::bad_argument(
            "--per-node is for direct maps; a NATS node runs as many tasks as it has slots",
        ));
    }
    let fleet = NatsFleet::connect_with(
        url,
        FleetOptions {
            replicas: d.replicas,
            ..FleetOptions::default()
        },
    )
    .await?;
    let job = match &d.job {
        Some(j) => j.clone(),
        None => {
            let j = fresh_name();
            eprintln!("rwc: job {j} (to resume it, run the same command with --job {j})");
            j
        }
    };
    let tag = a.fleet.tag.clone();
    if fleet
        .nodes(tag.as_deref().or(Some("default")))
        .await?
        .is_empty()
    {
        eprintln!(
            "rwc: no node serves tag {:?} yet; the map waits for one (rwc-node --nats {url}{})",
            tag.as_deref().unwrap_or("default"),
            tag.as_deref()
                .map(|t| format!(" --tag {t}"))
                .unwrap_or_default()
        );
    }
    let printing = Printing::new(inputs.len());
    let mut options = DurableMapOptions::default()
        .job(job)
        .batch(d.batch)
        .on_progress(printing.on_progress())
        .on_result(printing.on_result());
    options.tag = tag;
    options.keep = d.keep;
    options.instance = a.limits.options();
    let report = fleet
        .map_durable(module, &a.export, inputs, options)
        .await?;
    if report.resumed > 0 {
        eprintln!(
            "rwc: resumed job {}: {} inputs already had their result",
            report.job, report.resumed
        );
    }
    printing.finish(&report.map, a.json)
}

/// `rwc nodes --nats`.
pub async fn nodes(url: &str, tag: Option<&str>, json: bool) -> Result<(), Error> {
    let nodes = NatsFleet::connect(url).await?.nodes(tag).await?;
    let mut out = std::io::stdout().lock();
    if json {
        let rows: Vec<_> = nodes
            .iter()
            .map(|n| {
                json!({"addr": n.address, "tags": n.tags, "capacity": n.capacity,
                       "load": n.load, "id": n.id, "version": n.version})
            })
            .collect();
        let _ = writeln!(out, "{}", serde_json::Value::Array(rows));
        return Ok(());
    }
    let rows = nodes.iter().map(|n| {
        let cells = vec![n.capacity.to_string(), n.load.to_string()];
        (n.address.as_str(), cells, n.tags.as_slice())
    });
    crate::commands::print_nodes(&mut out, tag, &[("capacity", 8), ("load", 4)], rows);
    Ok(())
}

/// `rwc jobs`.
pub async fn list(url: &str, json: bool) -> Result<(), Error> {
    let jobs = NatsFleet::connect(url).await?.jobs().await?;
    let mut out = std::io::stdout().lock();
    if json {
        let rows: Vec<_> = jobs
            .iter()
            .map(|j| {
                json!({"job": j.meta.name, "tag": j.meta.tag, "export": j.meta.export,
                       "module": j.meta.module, "done": j.done, "total": j.meta.total,
                       "queued": j.queued, "created_ms": j.meta.created_ms})
            })
            .collect();
        let _ = writeln!(out, "{}", serde_json::Value::Array(rows));
        return Ok(());
    }
    if jobs.is_empty() {
        eprintln!("no jobs");
        return Ok(());
    }
    let width = jobs
        .iter()
        .map(|j| j.meta.name.len())
        .max()
        .unwrap_or(0)
        .max(3);
    let _ = writeln!(
        out,
        "{:width$}  {:>15}  {:>6}  {:>6}  tag / export",
        "job", "done/total", "%", "queued"
    );
    for j in &jobs {
        let pct = if j.meta.total == 0 {
            100.0
        } else {
            j.done as f64 * 100.0 / j.meta.total as f64
        };
        let _ = writeln!(
            out,
            "{:width$}  {:>15}  {:>5.1}%  {:>6}  {} / {}",
            j.meta.name,
            format!("{}/{}", j.done, j.meta.total),
            pct,
            j.queued,
            j.meta.tag,
            j.meta.export
        );
    }
    Ok(())
}

/// `rwc job …`.
pub async fn act(action: JobAction) -> Result<(), Error> {
    match action {
        JobAction::Cancel { name, nats } => {
            if NatsFleet::connect(&nats).await?.cancel(&name).await? {
                eprintln!("cancelled job {name}");
                Ok(())
            } else {
                Err(Error::bad_argument(format!("no job named {name}")))
            }
        }
    }
}

/// `job-<seconds>-<random>`, made here so it can be printed before the map starts.
fn fresh_name() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "job-{}-{:08x}",
        now.as_secs(),
        now.subsec_nanos() ^ std::process::id()
    )
}
