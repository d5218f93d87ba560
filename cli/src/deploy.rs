//! `rwc deploy ssh://HOST`: make a bare Linux box a node by copying this machine's
//! `rwc-node` to it.

use std::path::{Path, PathBuf};

use rwc_client::Error;
use rwc_client::ssh::{Deployed, SshAddress, deploy as deploy_to};

/// Copies `binary` (default: the `rwc-node` beside this `rwc`, else the one on the
/// `PATH`) to the host unless it has it already; says which on stdout.
pub async fn deploy(addr: &str, ssh: &[String], binary: Option<&Path>) -> Result<(), Error> {
    let addr: SshAddress = addr.parse()?;
    let binary = match binary {
        Some(b) => b.to_owned(),
        None => local_node()?,
    };
    match deploy_to(&addr, ssh, &binary).await? {
        Deployed::UpToDate { path } => println!("{addr}: ~/{path} is up to date"),
        Deployed::Copied { path, bytes } => {
            println!(
                "{addr}: copied {} to ~/{path} ({bytes} bytes)",
                binary.display()
            );
        }
    }
    Ok(())
}

/// The `rwc-node` beside the running `rwc`, else the first on the `PATH`.
fn local_node() -> Result<PathBuf, Error> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("rwc-node")));
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("rwc-node"));
    beside
        .into_iter()
        .chain(on_path)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::bad_argument(
                "no rwc-node beside rwc nor on the PATH: give one with --node-binary",
            )
        })
}
