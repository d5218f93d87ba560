//! `rwc exec`: run one allow-listed command of a node directly, as `ssh host CMD` would,
//! but only what the node's config allows.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use rwc_client::{Error, ErrorKind};

/// Runs `name` with `params` on `node`: prints its stdout and stderr as they came, exits
/// with its status (128 + the signal if one ended it). A command killed at its timeout is
/// a `timed out` error (exit code 4) after its output.
pub async fn exec(
    node: &crate::NodeArg,
    name: &str,
    params: &[(String, String)],
) -> Result<ExitCode, Error> {
    let client = crate::commands::connect(node).await?;
    let values: BTreeMap<String, String> = params.iter().cloned().collect();
    let out = client.exec(name, values).await?;
    client.close();
    let written = std::io::stdout()
        .lock()
        .write_all(&out.stdout)
        .and_then(|()| std::io::stdout().lock().flush());
    let _ = std::io::stderr().lock().write_all(&out.stderr);
    written.map_err(|e| Error::failed(format!("cannot write to stdout: {e}")))?;
    if out.truncated {
        eprintln!("rwc: the output of `{name}` was cut at the node's cap for it");
    }
    if out.timed_out {
        return Err(Error::new(
            ErrorKind::TimedOut,
            format!(
                "`{name}` ran past its timeout on the node and was killed with its process group"
            ),
        ));
    }
    Ok(ExitCode::from(match (out.status, out.signal) {
        (Some(status), _) => status_byte(status),
        (None, Some(signal)) => status_byte(128 + signal),
        (None, None) => 1,
    }))
}

/// An exit status as the low byte a shell sees.
pub fn status_byte(status: i32) -> u8 {
    u8::try_from(status.rem_euclid(256)).unwrap_or(1)
}
