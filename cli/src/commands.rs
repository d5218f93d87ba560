//! The one-node commands (`call`, `run`, `info`, `ping`, `upload`), `exports` (which needs
//! no node) and the registry ones (`nodes`, `registry`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rwc_client::registry::{Access, RegistryClient, RegistryServer, Security};
use rwc_client::{Client, Error, InstanceOptions, Module, OutputHandler, Value};
use rwc_protocol::{TlsServerConfig, signal, token};

use crate::args::{ConnectArgs, call_args, print_result, read_module};
use crate::progress::bytes_bar;
use crate::{CallArgs, NodeArg};

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
    let client = connect(&a.node).await?;
    let module = client.upload_with_progress(&bytes, |_, _| {}).await?;
    let mut options = a.limits.options();
    options.output = Some(OutputHandler::stderr().into());
    Ok((client, module, args, options))
}

/// Connects to the node a command names, with its TLS settings and token.
pub(crate) async fn connect(node: &NodeArg) -> Result<Client, Error> {
    Client::connect_with(&node.node, &node.connect.options()?).await
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
pub async fn info(node: &NodeArg) -> Result<(), Error> {
    let client = connect(node).await?;
    let info = client.info().await?;
    println!("{}", pretty(&info)?);
    client.close();
    Ok(())
}

/// `rwc ping`: round-trip times, then min/avg/max.
pub async fn ping(node: &NodeArg, count: u32, interval_ms: u64) -> Result<(), Error> {
    let count = count.max(1);
    let client = connect(node).await?;
    let node = &node.node;
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
pub async fn upload(node: &NodeArg, module: &Path) -> Result<(), Error> {
    let bytes = read_module(module)?;
    let client = connect(node).await?;
    let node = &node.node;
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
pub async fn nodes(
    registry: &str,
    connect: &ConnectArgs,
    tag: Option<&str>,
    json: bool,
) -> Result<(), Error> {
    let r = RegistryClient::connect_with(registry, &connect.options()?).await?;
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
    let rows = entries.iter().map(|e| {
        let expires = format!("{:.1}s", e.expires_in_secs);
        (e.addr.as_str(), vec![expires], e.tags.as_slice())
    });
    print_nodes(&mut out, tag, &[("expires in", 10)], rows);
    Ok(())
}

/// Writes a node listing, a registry's and NATS' alike: the node column, then each of
/// `columns` (heading, width) right-aligned, then the tags. A row is a node's address, its
/// cells (one per column) and its tags. With no rows it says on stderr that there are no
/// nodes (tagged `tag`).
pub(crate) fn print_nodes<'a>(
    out: &mut impl Write,
    tag: Option<&str>,
    columns: &[(&str, usize)],
    rows: impl Iterator<Item = (&'a str, Vec<String>, &'a [String])>,
) {
    let rows: Vec<_> = rows.collect();
    let Some(width) = rows.iter().map(|(addr, ..)| addr.len().max(4)).max() else {
        eprintln!(
            "no nodes{}",
            tag.map(|t| format!(" tagged {t:?}")).unwrap_or_default()
        );
        return;
    };
    let line = |node: &str, cells: &mut dyn Iterator<Item = &str>, tags: &str| {
        let mut line = format!("{node:width$}");
        for ((_, w), cell) in columns.iter().zip(cells) {
            line.push_str(&format!("  {cell:>w$}"));
        }
        format!("{line}  {tags}")
    };
    let _ = writeln!(
        out,
        "{}",
        line("node", &mut columns.iter().map(|c| c.0), "tags")
    );
    for (addr, cells, tags) in &rows {
        let mut cells = cells.iter().map(String::as_str);
        let _ = writeln!(out, "{}", line(addr, &mut cells, &tags.join(",")));
    }
}

/// What `rwc registry` takes.
#[derive(Debug, clap::Args)]
pub struct RegistryArgs {
    /// Address to listen on, HOST:PORT (port 0 picks a free one). Beyond loopback, a
    /// registry needs --register-token-file (or --insecure).
    #[arg(long, default_value = "127.0.0.1:18869")]
    listen: String,
    /// TLS certificate chain (PEM) to serve with (nodes and clients then use
    /// tls://HOST:PORT); with --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Tokens allowed to register, one per line: only nodes presenting one may register
    /// (`rwc-node --register-token-file`).
    #[arg(long, value_name = "FILE")]
    register_token_file: Option<PathBuf>,
    /// Tokens allowed to list, one per line; without it, listing is open.
    #[arg(long, value_name = "FILE")]
    lookup_token_file: Option<PathBuf>,
    /// Serve a non-loopback address without registration tokens anyway.
    #[arg(long)]
    insecure: bool,
}

/// `rwc registry`: serve a registry until Ctrl-C or SIGTERM.
pub async fn registry(a: &RegistryArgs) -> Result<(), Error> {
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(cert), Some(key)) => Some(TlsServerConfig::from_pem_files(cert, key, None)?),
        _ => None,
    };
    let access = Access {
        register: match &a.register_token_file {
            Some(f) => token::digests_from_file(f)?,
            None => Vec::new(),
        },
        lookup: a
            .lookup_token_file
            .as_deref()
            .map(token::digests_from_file)
            .transpose()?,
    };
    let security = Security {
        access,
        tls,
        insecure: a.insecure,
    };
    let server = RegistryServer::bind_with(&a.listen, security).await?;
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

#[cfg(test)]
mod tests {
    use super::print_nodes;

    fn listing(columns: &[(&str, usize)], rows: &[(&str, Vec<String>, Vec<String>)]) -> String {
        let mut out = Vec::new();
        let rows = rows.iter().map(|(a, c, t)| (*a, c.clone(), t.as_slice()));
        print_nodes(&mut out, None, columns, rows);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_registry_listing_keeps_its_columns() {
        let tags = vec!["cpu".to_owned(), "gpu".to_owned()];
        let rows = [
            ("127.0.0.1:18870", vec!["29.5s".to_owned()], tags),
            ("a:1", vec!["123456789.0s".to_owned()], Vec::new()),
        ];
        assert_eq!(
            listing(&[("expires in", 10)], &rows),
            "node             expires in  tags\n\
             127.0.0.1:18870       29.5s  cpu,gpu\n\
             a:1              123456789.0s  \n"
        );
    }

    #[test]
    fn a_nats_listing_keeps_its_columns_and_a_short_node_column() {
        let rows = [(
            "a:1",
            vec!["8".to_owned(), "12345".to_owned()],
            vec!["x".to_owned()],
        )];
        assert_eq!(
            listing(&[("capacity", 8), ("load", 4)], &rows),
            "node  capacity  load  tags\n\
             a:1          8  12345  x\n"
        );
    }

    #[test]
    fn no_nodes_write_nothing() {
        assert_eq!(listing(&[("load", 4)], &[]), "");
    }
}
