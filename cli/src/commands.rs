//! The one-node commands (`call`, `run`, `info`, `ping`, `upload`), `exports` (which needs
//! no node) and the registry ones (`nodes`, `registry`).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use rwc_client::registry::{RegistryClient, RegistryServer};
use rwc_client::{Client, Error, InstanceOptions, Module, OutputHandler, Value};
use rwc_protocol::signal;

use crate::CallArgs;
use crate::args::{call_args, print_result, read_module};
use crate::progress::bytes_bar;

/// `rwc call`: upload if needed, instantiate, call, print the result.
pub async fn call(a: &CallArgs) -> Result<(), Error> {
    let (client, module, args, options) = prepare(a).await?;
    let instance = client.instantiate(&module, options).await?;
    let result = instance.call_value(&a.func, args).await?;
    client.close();
    print_result(&result, a.io.out.as_deref())
}

/// `rwc run`: upload if needed, then one `run` request (instantiate, call, free).
pub async fn run(a: &CallArgs) -> Result<(), Error> {
    let (client, module, args, options) = prepare(a).await?;
    let result = client.run(&module, &a.func, args, options).await?;
    client.close();
    print_result(&result, a.io.out.as_deref())
}

/// What `call` and `run` start with: the arguments parsed, the node holding the module
/// (uploaded in chunks if it lacks it), and the instance options with the guest's output
/// going to stderr.
async fn prepare(a: &CallArgs) -> Result<(Client, Module, Vec<Value>, InstanceOptions), Error> {
    let bytes = read_module(&a.module)?;
    let args = call_args(&a.args, a.io.json_args.as_deref())?;
    let client = Client::connect(&a.node.node).await?;
    let module = client.upload_with_progress(&bytes, |_, _| {}).await?;
    let mut options = a.limits.options();
    options.output = Some(OutputHandler::stderr().into());
    Ok((client, module, args, options))
}

/// `rwc exports`: the callable exports of a module file, read locally.
pub fn exports(module: &Path, json: bool) -> Result<(), Error> {
    let bytes = read_module(module)?;
    let exports = rwc_api::describe::exports(&bytes)
        .map_err(|e| Error::bad_argument(format!("{}: {e}", module.display())))?;
    if json {
        let text = serde_json::to_string_pretty(&exports)
            .map_err(|e| Error::failed(format!("cannot print the exports: {e}")))?;
        println!("{text}");
        return Ok(());
    }
    if exports.is_empty() {
        eprintln!(
            "{} exports nothing a client can call (no numeric functions, no rich exports)",
            module.display()
        );
    }
    for e in &exports {
        println!("{e}");
    }
    Ok(())
}

/// `rwc info`: the node's info as pretty JSON.
pub async fn info(node: &str) -> Result<(), Error> {
    let client = Client::connect(node).await?;
    let info = client.info().await?;
    println!("{}", pretty(&info)?);
    client.close();
    Ok(())
}

/// `rwc ping`: round-trip times, then min/avg/max.
pub async fn ping(node: &str, count: u32, interval_ms: u64) -> Result<(), Error> {
    let count = count.max(1);
    let client = Client::connect(node).await?;
    let mut times = Vec::new();
    for seq in 1..=count {
        let rtt = client.ping().await?;
        println!("ping {seq} to {node}: time={:.3} ms", ms(rtt));
        times.push(rtt);
        if seq < count {
            tokio::time::sleep(Duration::from_millis(interval_ms)).await;
        }
    }
    client.close();
    let min = times.iter().min().copied().unwrap_or_default();
    let max = times.iter().max().copied().unwrap_or_default();
    let avg = times.iter().sum::<Duration>() / u32::try_from(times.len()).unwrap_or(1);
    println!(
        "{} pings: min/avg/max = {:.3}/{:.3}/{:.3} ms",
        times.len(),
        ms(min),
        ms(avg),
        ms(max)
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `rwc upload`: chunked upload with a progress bar; prints the hash.
pub async fn upload(node: &str, module: &Path) -> Result<(), Error> {
    let bytes = read_module(module)?;
    let client = Client::connect(node).await?;
    let bar = bytes_bar(u64::try_from(bytes.len()).unwrap_or(u64::MAX));
    let started = std::time::Instant::now();
    // The node already has the module when the first report is "all sent".
    let mut first = None;
    let result = client
        .upload_with_progress(&bytes, |sent, total| {
            first.get_or_insert(sent == total);
            bar.set_position(sent);
        })
        .await;
    bar.finish_and_clear();
    let module = result?;
    let size = bytes.len();
    if first == Some(true) {
        eprintln!("{node} already has {} ({size} bytes)", module.hash());
    } else {
        eprintln!(
            "uploaded {size} bytes to {node} in {:.2} s",
            started.elapsed().as_secs_f64()
        );
    }
    println!("{}", module.hash());
    client.close();
    Ok(())
}

/// `rwc nodes`: what a registry lists.
pub async fn nodes(registry: &str, tag: Option<&str>, json: bool) -> Result<(), Error> {
    let r = RegistryClient::connect(registry).await?;
    let entries = match tag {
        Some(t) => r.lookup(t).await?,
        None => r.list().await?,
    };
    r.close();
    let mut out = std::io::stdout().lock();
    if json {
        let text = serde_json::to_string(&entries)
            .map_err(|e| Error::failed(format!("cannot print the listing: {e}")))?;
        let _ = writeln!(out, "{text}");
        return Ok(());
    }
    if entries.is_empty() {
        eprintln!(
            "no nodes{}",
            tag.map(|t| format!(" tagged {t:?}")).unwrap_or_default()
        );
        return Ok(());
    }
    let width = entries
        .iter()
        .map(|e| e.addr.len())
        .max()
        .unwrap_or(0)
        .max(4);
    let _ = writeln!(out, "{:width$}  {:>10}  tags", "node", "expires in");
    for e in &entries {
        let _ = writeln!(
            out,
            "{:width$}  {:>9.1}s  {}",
            e.addr,
            e.expires_in_secs,
            e.tags.join(",")
        );
    }
    Ok(())
}

/// `rwc registry`: serve a registry until Ctrl-C or SIGTERM.
pub async fn registry(listen: &str) -> Result<(), Error> {
    let server = RegistryServer::bind(listen).await?;
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {}", server.address());
        let _ = out.flush();
    }
    server.run(signal::shutdown()).await;
    Ok(())
}

/// A reply as pretty JSON, for a person to read.
pub fn pretty(reply: &impl serde::Serialize) -> Result<String, Error> {
    serde_json::to_string_pretty(reply)
        .map_err(|e| Error::failed(format!("cannot print the reply as JSON: {e}")))
}
