//! How sandbox failures reach a caller: as rwc errors whose kind says how to react.

use rwc_protocol::{Error, ErrorKind};

use crate::sandbox::SandboxError;

/// Converts a sandbox error into the error a caller receives, keeping the wasm backtrace.
pub fn to_error(err: SandboxError) -> Error {
    let kind = match &err {
        SandboxError::TooLarge { .. }
        | SandboxError::MemoryLimit { .. }
        | SandboxError::TableLimit { .. } => ErrorKind::Limit,
        SandboxError::Invalid { .. }
        | SandboxError::MissingImport { .. }
        | SandboxError::BadArgument(_) => ErrorKind::BadArgument,
        SandboxError::Unsupported { .. } | SandboxError::NoSuchExport { .. } => {
            ErrorKind::Unimplemented
        }
        SandboxError::TimedOut { .. } | SandboxError::CompileTimedOut { .. } => ErrorKind::TimedOut,
        SandboxError::OutOfFuel { .. } => ErrorKind::OutOfFuel,
        SandboxError::Trap { .. } => ErrorKind::Trapped,
        SandboxError::Overloaded { .. } | SandboxError::PoolExhausted { .. } => {
            ErrorKind::Overloaded
        }
        _ => ErrorKind::Failed,
    };
    let e = Error::new(kind, err.to_string());
    match err.trace() {
        Some(trace) if !trace.is_empty() => e.with_trace(trace),
        _ => e,
    }
}

/// Like [`to_error`], for a trap that followed a guest's panic report: the panic message
/// leads, the trap becomes its cause.
pub fn to_error_with_panic(err: SandboxError, panic: Option<String>) -> Error {
    let e = to_error(err);
    match panic {
        Some(msg) if e.kind() == ErrorKind::Trapped => {
            let mut p = Error::new(ErrorKind::Trapped, format!("guest panicked: {msg}"))
                .with_cause(e.message());
            if let Some(t) = e.trace() {
                p = p.with_trace(t);
            }
            p
        }
        _ => e,
    }
}
