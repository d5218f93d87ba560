//! [`SandboxError`]: everything that can go wrong loading a module or running a guest.
//!
//! Each variant is a distinct reaction for the caller (shrink the module, fix the
//! arguments, raise a limit, retry later…), so the RPC layer can map them onto
//! `RemoteError` kinds without parsing messages. Guest traces (wasm backtraces) travel in
//! a separate `trace` field so they can be shown or dropped independently of the message.

use std::fmt;
use std::time::Duration;

use wasmtime::{Trap, WasmBacktrace};
use wasmtime_wasi::I32Exit;

/// An error from the sandbox: a rejected module, a bad call, or a guest that failed.
#[non_exhaustive]
#[derive(Debug, Clone, thiserror::Error)]
pub enum SandboxError {
    /// The uploaded module is bigger than the node accepts; it was not parsed.
    #[error(
        "module is {size} bytes, over this node's limit of {limit} bytes; \
         shrink it (strip debug info, run wasm-opt) or raise the node's max module size"
    )]
    TooLarge {
        /// Size of the upload in bytes.
        size: u64,
        /// The node's `max_module_bytes`.
        limit: u64,
    },

    /// The upload is neither a valid Wasm binary nor valid WAT text.
    #[error("not a valid Wasm module: {message}")]
    Invalid {
        /// The parser's or validator's message.
        message: String,
    },

    /// The module is valid Wasm but this node's configuration cannot run it (for example
    /// its initial memory is larger than the node's memory cap, or it defines more than
    /// one memory), or it imports something with a type the node does not match.
    #[error("this node cannot run the module: {message}")]
    Unsupported {
        /// What wasmtime objected to.
        message: String,
    },

    /// The module imports something the node does not provide.
    #[error(
        "module imports {module}::{name} {ty}, which this node does not provide; \
         a guest may only import WASI preview 1 (wasi_snapshot_preview1) and the node's host functions"
    )]
    MissingImport {
        /// Import module name (the part before `::`).
        module: String,
        /// Import field name.
        name: String,
        /// The import's type in WAT-like syntax, e.g. `(func (param i32))`.
        ty: String,
    },

    /// The instance has no export with this name (or it is not of the kind needed).
    #[error("{}", no_such_export(.name, .available))]
    NoSuchExport {
        /// The name asked for.
        name: String,
        /// What the module does export, so the caller can spot a typo.
        available: Vec<String>,
    },

    /// The arguments do not fit the export's signature, or a memory range is out of bounds.
    #[error("{0}")]
    BadArgument(String),

    /// The call ran past its call timeout (its wall-clock deadline) and was stopped.
    #[error(
        "call ran past its call timeout of {}; raise --timeout (call_timeout_ms), up to \
         the node's limit",
        human_duration(*.call_timeout)
    )]
    TimedOut {
        /// The call timeout that was exceeded.
        call_timeout: Duration,
        /// Wasm backtrace at the point the guest was stopped (may be empty).
        trace: String,
    },

    /// Compiling the module took longer than the node's compile deadline; the node gave
    /// up on it.
    #[error(
        "compiling module {} took longer than this node's compile deadline of {} \
         (compile_timeout_ms); split the module up, or raise the node's --compile-timeout-ms",
        short_hash(.hash),
        human_duration(*.timeout)
    )]
    CompileTimedOut {
        /// The module's hash.
        hash: String,
        /// The deadline that passed.
        timeout: Duration,
    },

    /// The guest used up its fuel budget.
    #[error(
        "guest ran out of fuel (its instruction budget); raise the instance's fuel budget \
         or give it less work per call"
    )]
    OutOfFuel {
        /// Wasm backtrace at the point fuel ran out.
        trace: String,
    },

    /// The guest tried to grow (or start with) more memory than its limit allows.
    #[error(
        "guest needs {requested} bytes of linear memory, over its limit of {limit} bytes; \
         raise the instance's memory limit (the `memory` instance option, `rwc --memory`), \
         up to the node's cap (`memory_bytes` in its [limits], `rwc-node --memory-bytes`)"
    )]
    MemoryLimit {
        /// Bytes the guest asked for.
        requested: u64,
        /// The instance's memory limit in bytes.
        limit: u64,
        /// Wasm backtrace at the failing `memory.grow` (empty at instantiation).
        trace: String,
    },

    /// The guest tried to grow (or start with) a table larger than the node allows.
    #[error(
        "guest needs a table of {requested} elements, over this node's limit of {limit} \
         elements"
    )]
    TableLimit {
        /// Elements the guest asked for.
        requested: u64,
        /// The node's table limit.
        limit: u64,
        /// Wasm backtrace at the failing `table.grow` (empty at instantiation).
        trace: String,
    },

    /// The guest trapped: `unreachable`, stack overflow, out-of-bounds access, a host
    /// function rejecting a malformed guest buffer, …
    #[error("guest trapped: {message}")]
    Trap {
        /// What happened, including the trap code.
        message: String,
        /// Wasm backtrace at the trap.
        trace: String,
    },

    /// The node is at its limit of live instances.
    #[error(
        "node is at its limit of {limit} live instances (max_instances); retry later, drop \
         unused instances, or raise the node's max live instances"
    )]
    Overloaded {
        /// The node's `max_live_instances`.
        limit: usize,
    },

    /// A pool the engine allocates from at instantiation or at each (nested) call ran out:
    /// fiber stacks, memories, tables. Every running call, and every call nested inside
    /// one (a client callback calling back into the guest), takes a fiber stack; the pools
    /// are sized from `max_instances`.
    #[error(
        "too many guest calls running or nested at once for the node's engine: {message}; \
         its pools are sized by its limit (max_instances); retry later"
    )]
    PoolExhausted {
        /// wasmtime's message, naming the pool.
        message: String,
    },

    /// The guest called WASI `proc_exit` with this status.
    #[error("guest exited with status {0}")]
    Exit(i32),

    /// Anything else (I/O on the node, an internal wasmtime error).
    #[error("{0}")]
    Other(String),
}

impl SandboxError {
    /// The wasm backtrace attached to a guest failure, if there is a non-empty one.
    pub fn trace(&self) -> Option<&str> {
        let trace = match self {
            Self::TimedOut { trace, .. }
            | Self::OutOfFuel { trace }
            | Self::MemoryLimit { trace, .. }
            | Self::TableLimit { trace, .. }
            | Self::Trap { trace, .. } => trace,
            _ => return None,
        };
        (!trace.is_empty()).then_some(trace.as_str())
    }

    /// Maps an error raised while guest code ran (instantiation or a call).
    ///
    /// `call_timeout` is the timeout the execution ran under, for the message of a timeout.
    pub(crate) fn from_execution(err: wasmtime::Error, call_timeout: Duration) -> Self {
        if let Some(exit) = err.downcast_ref::<I32Exit>() {
            return Self::Exit(exit.0);
        }
        let trace = err
            .downcast_ref::<WasmBacktrace>()
            .map(|bt| bt.to_string())
            .unwrap_or_default();
        if let Some(pool) = err.downcast_ref::<wasmtime::PoolConcurrencyLimitError>() {
            return Self::PoolExhausted {
                message: pool.to_string(),
            };
        }
        if let Some(&LimitExceeded {
            what,
            requested,
            limit,
        }) = err.downcast_ref::<LimitExceeded>()
        {
            return match what {
                Growable::Memory => Self::MemoryLimit {
                    requested,
                    limit,
                    trace,
                },
                Growable::Table => Self::TableLimit {
                    requested,
                    limit,
                    trace,
                },
            };
        }
        match err.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => Self::TimedOut {
                call_timeout,
                trace,
            },
            Some(Trap::OutOfFuel) => Self::OutOfFuel { trace },
            Some(trap) => Self::Trap {
                message: describe_trap(*trap),
                trace,
            },
            // A host function (WASI) failed the call, e.g. a guest pointer out of bounds:
            // from the guest's point of view that is a trap.
            None => Self::Trap {
                message: error_chain(&err),
                trace,
            },
        }
    }
}

/// The first 12 hex digits of a module hash, as messages show it.
fn short_hash(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// Raised by the store's resource limiter when a guest asks for more memory, or a larger
/// table, than its limit. A typed error (rather than wasmtime's `trap_on_grow_failure`
/// message) so that it maps to [`SandboxError::MemoryLimit`] or
/// [`SandboxError::TableLimit`] without string matching.
#[derive(Debug)]
pub(crate) struct LimitExceeded {
    pub(crate) what: Growable,
    pub(crate) requested: u64,
    pub(crate) limit: u64,
}

/// What a guest grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Growable {
    /// A linear memory, in bytes.
    Memory,
    /// A table, in elements.
    Table,
}

impl fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, unit) = match self.what {
            Growable::Memory => ("memory", "bytes"),
            Growable::Table => ("table", "elements"),
        };
        write!(
            f,
            "{what} of {} {unit} requested, over the limit of {} {unit}",
            self.requested, self.limit
        )
    }
}

impl std::error::Error for LimitExceeded {}

/// The error's messages joined by `: `, leaving out the wasm backtrace (which travels
/// separately as a trace).
pub(crate) fn error_chain(err: &wasmtime::Error) -> String {
    // The backtrace is attached as a context layer; `WasmBacktrace` is not an
    // `std::error::Error`, so that layer is recognised by its text.
    let trace = err.downcast_ref::<WasmBacktrace>().map(|bt| bt.to_string());
    err.chain()
        .map(|e| e.to_string())
        .filter(|message| Some(message) != trace.as_ref())
        .collect::<Vec<_>>()
        .join(": ")
}

/// A trap's message with its code, phrased so the likely cause is obvious.
fn describe_trap(trap: Trap) -> String {
    match trap {
        Trap::StackOverflow => {
            "stack overflow (wasm trap: call stack exhausted); look for unbounded recursion"
                .to_string()
        }
        Trap::UnreachableCodeReached => {
            "unreachable executed (wasm trap: unreachable); the guest hit `unreachable` \
             or panicked"
                .to_string()
        }
        Trap::MemoryOutOfBounds => {
            "out-of-bounds memory access (wasm trap: memory out of bounds)".to_string()
        }
        other => format!("{other} (trap code {other:?})"),
    }
}

fn no_such_export(name: &str, available: &[String]) -> String {
    if available.is_empty() {
        format!("module has no export named `{name}` (it exports nothing)")
    } else {
        format!(
            "module has no export named `{name}`; it exports: {}",
            available.join(", ")
        )
    }
}

/// `30s`, `200ms`, `1.5s`: how timeouts are written in messages.
pub(crate) fn human_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_message_is_actionable() {
        let err = SandboxError::TimedOut {
            call_timeout: Duration::from_secs(30),
            trace: String::new(),
        };
        assert_eq!(
            err.to_string(),
            "call ran past its call timeout of 30s; raise --timeout (call_timeout_ms), up to \
             the node's limit"
        );
        assert_eq!(err.trace(), None);
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_millis(200)), "200ms");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.500s");
        assert_eq!(human_duration(Duration::from_secs(5)), "5s");
    }

    #[test]
    fn table_limit_is_recognised() {
        let err = SandboxError::from_execution(
            LimitExceeded {
                what: Growable::Table,
                requested: 30_000,
                limit: 20_000,
            }
            .into(),
            Duration::from_secs(1),
        );
        assert!(
            matches!(
                err,
                SandboxError::TableLimit {
                    requested: 30_000,
                    limit: 20_000,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn exit_and_memory_limit_are_recognised() {
        let err = SandboxError::from_execution(I32Exit(3).into(), Duration::from_secs(1));
        assert!(matches!(err, SandboxError::Exit(3)), "{err:?}");

        let err = SandboxError::from_execution(
            LimitExceeded {
                what: Growable::Memory,
                requested: 2 << 20,
                limit: 1 << 20,
            }
            .into(),
            Duration::from_secs(1),
        );
        let SandboxError::MemoryLimit {
            requested, limit, ..
        } = err
        else {
            panic!("expected MemoryLimit, got {err:?}");
        };
        assert_eq!((requested, limit), (2 << 20, 1 << 20));
    }

    #[test]
    fn trap_codes_map_to_variants() {
        let timeout = Duration::from_millis(200);
        let err = SandboxError::from_execution(Trap::Interrupt.into(), timeout);
        assert!(matches!(err, SandboxError::TimedOut { call_timeout: t, .. } if t == timeout));
        let err = SandboxError::from_execution(Trap::OutOfFuel.into(), timeout);
        assert!(matches!(err, SandboxError::OutOfFuel { .. }));
        let err = SandboxError::from_execution(Trap::StackOverflow.into(), timeout);
        match err {
            SandboxError::Trap { message, .. } => assert!(message.contains("stack overflow")),
            other => panic!("expected a trap, got {other:?}"),
        }
    }
}
