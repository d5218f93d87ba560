//! Nodes reached over SSH, with nothing but `sshd` on the far side: an address
//! `ssh://[USER@]HOST[:PORT]` runs `ssh … HOST rwc-node --stdio` and speaks rwc over the
//! pipes of that `ssh` process, so no port is opened on the host and the node lives only
//! as long as the connection.
//!
//! On the host, `rwc-node` from its `PATH` is used; if there is none, the copy
//! [`deploy`] put at `~/.cache/rwc/rwc-node-VERSION`. `ssh` runs with `-o BatchMode=yes`
//! (it never prompts) plus the caller's options (`-i KEY`, `-o UserKnownHostsFile=…`).
//!
//! ```
//! use rwc_client::ssh::SshAddress;
//!
//! let a: SshAddress = "ssh://ops@db1.example.com:2222".parse().unwrap();
//! assert_eq!(a.to_string(), "ssh://ops@db1.example.com:2222");
//! assert!("ssh://-oProxyCommand=x".parse::<SshAddress>().is_err());
//! ```

use std::fmt;
use std::path::Path;
use std::process::Stdio;
use std::str::FromStr;

use rwc_protocol::Error;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// The scheme of an SSH address.
pub const SCHEME: &str = "ssh://";

/// This build's version: the deployed copy is `~/.cache/rwc/rwc-node-VERSION`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where [`deploy`] puts `rwc-node` on the host, relative to the remote `$HOME`.
pub fn deployed_path() -> String {
    format!(".cache/rwc/rwc-node-{VERSION}")
}

/// A parsed `ssh://[USER@]HOST[:PORT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshAddress {
    /// The remote user; `None`: ssh's default (the local user, or the ssh config's).
    pub user: Option<String>,
    /// The host, as written (a name, an IPv4 address, or `[v6]` without the brackets).
    pub host: String,
    /// The port; `None`: ssh's default.
    pub port: Option<u16>,
}

impl FromStr for SshAddress {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::bad_argument(format!("bad ssh address {s:?}: {why}"));
        let rest = s
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad("it must start with ssh://"))?;
        let (user, rest) = match rest.rsplit_once('@') {
            Some((u, r)) => (Some(u), r),
            None => (None, rest),
        };
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("an IPv6 host needs its closing ]"))?;
            (host, after.strip_prefix(':'))
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        let port = port
            .map(|p| {
                p.parse::<u16>()
                    .map_err(|_| bad("the port is not a number"))
            })
            .transpose()?;
        // ssh reads a word starting with `-` as an option, and these reach it as words.
        let word = |w: &str, what: &str| {
            if w.is_empty() {
                Err(bad(&format!("no {what}")))
            } else if w.starts_with('-') {
                Err(bad(&format!("a {what} cannot start with '-'")))
            } else if w
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "/@'\"\\`$;&|<>".contains(c))
            {
                Err(bad(&format!(
                    "the {what} holds a character ssh would not take"
                )))
            } else {
                Ok(w.to_owned())
            }
        };
        Ok(SshAddress {
            user: user.map(|u| word(u, "user")).transpose()?,
            host: word(host, "host")?,
            port,
        })
    }
}

impl fmt::Display for SshAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SCHEME)?;
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

/// Whether `addr` is written as an SSH address.
pub fn is_ssh(addr: &str) -> bool {
    addr.starts_with(SCHEME)
}

impl SshAddress {
    /// `ssh -o BatchMode=yes [-p PORT] [-l USER] OPTIONS… HOST REMOTE`: runs `remote` (a
    /// shell command line on the host). Each of `options` is split at whitespace into
    /// words (`"-i /path/key"` is two).
    pub fn command(&self, options: &[String], remote: &str) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(["-o", "BatchMode=yes"]);
        if let Some(port) = self.port {
            cmd.arg("-p").arg(port.to_string());
        }
        if let Some(user) = &self.user {
            cmd.arg("-l").arg(user);
        }
        cmd.args(options.iter().flat_map(|o| o.split_whitespace()));
        cmd.arg(&self.host).arg(remote);
        cmd
    }

    /// The command that starts a node on the host and speaks rwc over its pipes:
    /// `rwc-node --stdio` from the host's `PATH`, else the deployed copy, else a message
    /// on stderr saying to run `rwc deploy`.
    pub fn node_command(&self, options: &[String]) -> Command {
        let remote = format!(
            "if command -v rwc-node >/dev/null 2>&1; then exec rwc-node --stdio; \
             elif [ -x \"$HOME/{path}\" ]; then exec \"$HOME/{path}\" --stdio; \
             else echo 'rwc: rwc-node is not on the PATH of {self} and was not deployed: \
             run rwc deploy {self}' >&2; exit 127; fi",
            path = deployed_path()
        );
        self.command(options, &remote)
    }
}

/// What [`deploy`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deployed {
    /// The host already had this binary (same SHA-256); nothing was copied.
    UpToDate {
        /// Where it is on the host, relative to the remote `$HOME`.
        path: String,
    },
    /// The binary was copied.
    Copied {
        /// Where it is on the host, relative to the remote `$HOME`.
        path: String,
        /// How many bytes were sent.
        bytes: u64,
    },
}

/// Copies the `rwc-node` binary at `binary` to `~/.cache/rwc/rwc-node-VERSION` on the host,
/// unless a file with the same SHA-256 is there already. The copy is written to a
/// temporary name and renamed, so a connection never starts a half-written binary.
///
/// # Cancel safety
/// Dropping the future kills the `ssh` process; the host may keep a temporary file.
pub async fn deploy(
    addr: &SshAddress,
    options: &[String],
    binary: &Path,
) -> Result<Deployed, Error> {
    let bytes = tokio::fs::read(binary)
        .await
        .map_err(|e| Error::bad_argument(format!("cannot read {}: {e}", binary.display())))?;
    let local = hex::encode(Sha256::digest(&bytes));
    let path = deployed_path();
    // `sha256sum` prints nothing (and fails) when there is no copy yet.
    let check = format!("sha256sum \"$HOME/{path}\" 2>/dev/null || true");
    let out = addr
        .command(options, &check)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| ssh_failed(addr, &format!("cannot start ssh: {e}")))?;
    if !out.status.success() {
        return Err(ssh_failed(addr, &String::from_utf8_lossy(&out.stderr)));
    }
    let remote = String::from_utf8_lossy(&out.stdout);
    if remote.split_whitespace().next() == Some(local.as_str()) {
        return Ok(Deployed::UpToDate { path });
    }
    let copy = format!(
        "set -e; mkdir -p \"$HOME/.cache/rwc\"; t=\"$HOME/{path}.tmp.$$\"; \
         cat > \"$t\"; chmod 755 \"$t\"; mv -f \"$t\" \"$HOME/{path}\""
    );
    let mut child = addr
        .command(options, &copy)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ssh_failed(addr, &format!("cannot start ssh: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(&bytes)
            .await
            .map_err(|e| ssh_failed(addr, &format!("sending the binary: {e}")))?;
        // Dropping stdin is the end of the file for `cat`.
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| ssh_failed(addr, &e.to_string()))?;
    if !out.status.success() {
        return Err(ssh_failed(addr, &String::from_utf8_lossy(&out.stderr)));
    }
    Ok(Deployed::Copied {
        path,
        bytes: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
    })
}

fn ssh_failed(addr: &SshAddress, why: &str) -> Error {
    Error::disconnected(format!("ssh to {addr} failed: {}", why.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_print_back() {
        for (s, user, host, port) in [
            ("ssh://h", None, "h", None),
            ("ssh://u@h:22", Some("u"), "h", Some(22)),
            ("ssh://[::1]:2222", None, "::1", Some(2222)),
            ("ssh://root@127.0.0.1", Some("root"), "127.0.0.1", None),
        ] {
            let a: SshAddress = s.parse().unwrap();
            assert_eq!(a.user.as_deref(), user, "{s}");
            assert_eq!(a.host, host, "{s}");
            assert_eq!(a.port, port, "{s}");
            assert_eq!(a.to_string(), s);
        }
        for bad in [
            "h:22",
            "ssh://",
            "ssh://h:port",
            "ssh://-oProxyCommand=sh",
            "ssh://-l@h",
            "ssh://h;rm",
            "ssh://a b",
            "ssh://[::1",
            "ssh://h:70000",
        ] {
            assert!(bad.parse::<SshAddress>().is_err(), "{bad}");
        }
    }
}
