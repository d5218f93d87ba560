//! `rwc each`: the same call once on every node, one row per node.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use rwc_client::{EachResult, Error};
use serde_json::{Value as Json, json};

use crate::args::{FleetArgs, LimitArgs, call_args, read_module};
use crate::json::to_json;

/// What `rwc each` takes.
#[derive(Debug, clap::Args)]
pub struct EachArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// The module file (.wasm or .wat).
    pub module: PathBuf,
    /// The export to call.
    pub export: String,
    /// Arguments, in the forms of `rwc call --help` (JSON, a bare word, @PATH, @-,
    /// @text:PATH, {"$bytes": "<base64>"}, @@rest); put other arguments starting with `-`
    /// after `--`.
    #[arg(allow_negative_numbers = true)]
    pub args: Vec<String>,
    /// Print one JSON array of rows ({"node", "result" or "error", "time_ms"}) instead
    /// of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Runs the call on every node; exits non-zero (the code of the first failure's kind) if
/// any node failed, naming them on stderr.
pub async fn each(a: EachArgs) -> Result<ExitCode, Error> {
    let bytes = read_module(&a.module)?;
    let args = call_args(&a.args, None)?;
    let mut pool = a.fleet.connect().await?;
    // A node that does not take the module gets an error row like any other failure.
    let loaded = pool.load(&bytes).await;
    let mut rows = match loaded {
        Ok(_) => pool.each(&a.export, args, &a.limits.options()).await?,
        Err(e) => pool
            .addresses()
            .into_iter()
            .map(|addr| EachResult {
                addr: addr.to_owned(),
                result: Err(e.clone()),
                elapsed: None,
            })
            .chain(pool.unreachable().iter().map(|(addr, e)| EachResult {
                addr: addr.clone(),
                result: Err(e.clone()),
                elapsed: None,
            }))
            .collect(),
    };
    pool.close();
    // The order the nodes were given in, where a row's node is one of them.
    rows.sort_by_key(|r| {
        a.fleet
            .nodes
            .iter()
            .position(|n| *n == r.addr)
            .unwrap_or(usize::MAX)
    });

    let mut out = std::io::stdout().lock();
    let written = if a.json {
        let list: Vec<Json> = rows.iter().map(json_row).collect();
        writeln!(out, "{}", Json::Array(list))
    } else {
        write_table(&mut out, &rows)
    };
    written
        .and_then(|()| out.flush())
        .map_err(|e| Error::failed(format!("cannot write to stdout: {e}")))?;

    let failed: Vec<&EachResult> = rows.iter().filter(|r| r.result.is_err()).collect();
    let Some(first) = failed.first().and_then(|r| r.result.as_ref().err()) else {
        return Ok(ExitCode::SUCCESS);
    };
    let names: Vec<&str> = failed.iter().map(|r| r.addr.as_str()).collect();
    eprintln!(
        "rwc: {} of {} nodes failed: {}",
        failed.len(),
        rows.len(),
        names.join(", ")
    );
    Ok(ExitCode::from(crate::exit_code(first.kind())))
}

fn json_row(r: &EachResult) -> Json {
    let time_ms = r.elapsed.map(|d| d.as_secs_f64() * 1000.0);
    match &r.result {
        Ok(v) => json!({"node": r.addr, "result": to_json(v), "time_ms": time_ms}),
        Err(e) => json!({
            "node": r.addr,
            "error": {"kind": e.kind().as_str(), "message": e.message()},
            "time_ms": time_ms,
        }),
    }
}

/// `node  time  result`, the result as compact JSON or `error: kind: message`.
fn write_table(out: &mut impl Write, rows: &[EachResult]) -> std::io::Result<()> {
    let width = rows
        .iter()
        .map(|r| r.addr.len())
        .chain([4])
        .max()
        .unwrap_or(4);
    writeln!(out, "{:width$}  {:>10}  result", "node", "time")?;
    for r in rows {
        let time = r.elapsed.map_or_else(
            || "-".to_owned(),
            |d| format!("{:.1} ms", d.as_secs_f64() * 1000.0),
        );
        let result = match &r.result {
            Ok(v) => to_json(v).to_string(),
            Err(e) => format!("error: {}", crate::one_line(e)),
        };
        writeln!(out, "{:width$}  {time:>10}  {result}", r.addr)?;
    }
    Ok(())
}
