//! `rwc run MODULE [-- ARGS...]` without an export: a WASI command program, run the way
//! `wasmtime run` runs it.

use std::path::Path;
use std::process::ExitCode;

use rwc_client::{Error, OutputHandler};

use crate::args::{LimitArgs, read_module};

/// Runs `module`'s `_start` on `node`: the guest's stdout on stdout and its stderr on
/// stderr, byte for byte as written; `argv[0]` is `argv0` or the module's file name; the
/// exit code is the program's (`proc_exit(N)` gives N). Nothing else is printed.
pub async fn run(
    node: &crate::NodeArg,
    module: &Path,
    argv0: Option<&str>,
    args: &[String],
    limits: &LimitArgs,
) -> Result<ExitCode, Error> {
    if !limits.guest_args.is_empty() {
        return Err(Error::bad_argument(
            "a WASI program takes its arguments after `--` (`rwc run prog.wasm -- ARGS`); \
             argv[0] is the module's file name unless --argv0 is given",
        ));
    }
    let bytes = read_module(module)?;
    let client = crate::commands::connect(node).await?;
    let uploaded = client.upload_with_progress(&bytes, |_, _| {}).await?;
    let mut options = limits.options();
    let argv0 = argv0.map_or_else(
        || {
            module.file_name().map_or_else(
                || module.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            )
        },
        str::to_owned,
    );
    options.args = std::iter::once(argv0).chain(args.iter().cloned()).collect();
    options.output = Some(OutputHandler::terminal().into());
    let status = client.run_program(&uploaded, options).await?;
    client.close();
    Ok(ExitCode::from(crate::exec::status_byte(status)))
}
