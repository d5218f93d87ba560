//! Errors are data: what a remote call fails with, as it travels on the wire.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What kind of failure an [`Error`] is: tells the caller how to react.
///
/// The kind travels on the wire as a number; a kind this build does not know decodes as
/// [`ErrorKind::Failed`], so new kinds can be added without breaking old peers.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "u8", from = "u8")]
pub enum ErrorKind {
    /// The call ran and failed (the remote method returned an error).
    Failed,
    /// The call's deadline passed before it returned.
    TimedOut,
    /// The call was cancelled (its future was dropped, or the peer cancelled it).
    Cancelled,
    /// The connection is closed, or closed while the call was in flight.
    Disconnected,
    /// The caller is not allowed to do this: a capability, directory or command it was
    /// not granted. (Going over a size or resource limit is [`ErrorKind::Limit`].)
    Denied,
    /// The peer is at a capacity limit; retrying later or elsewhere may work.
    Overloaded,
    /// The target object has no such method, or the feature is not implemented.
    Unimplemented,
    /// A Wasm guest trapped (unreachable, out-of-bounds access, stack overflow…).
    Trapped,
    /// A Wasm guest used up its fuel budget.
    OutOfFuel,
    /// The arguments did not fit what the method takes (arity, types).
    BadArgument,
    /// The peer broke the protocol (malformed frame, unknown reference, limits exceeded).
    Protocol,
    /// A request or a guest went over a limit: memory, table, output or size, or asked
    /// for more than the node allows. The message names the limit and how to raise it.
    Limit,
}

impl ErrorKind {
    /// A short lower-case name, as used in messages and by the CLI (`timed out`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Failed => "failed",
            ErrorKind::TimedOut => "timed out",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Disconnected => "disconnected",
            ErrorKind::Denied => "denied",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::Unimplemented => "unimplemented",
            ErrorKind::Trapped => "trapped",
            ErrorKind::OutOfFuel => "out of fuel",
            ErrorKind::BadArgument => "bad argument",
            ErrorKind::Protocol => "protocol error",
            ErrorKind::Limit => "limit",
        }
    }
}

impl From<ErrorKind> for u8 {
    fn from(kind: ErrorKind) -> u8 {
        match kind {
            ErrorKind::Failed => 0,
            ErrorKind::TimedOut => 1,
            ErrorKind::Cancelled => 2,
            ErrorKind::Disconnected => 3,
            ErrorKind::Denied => 4,
            ErrorKind::Overloaded => 5,
            ErrorKind::Unimplemented => 6,
            ErrorKind::Trapped => 7,
            ErrorKind::OutOfFuel => 8,
            ErrorKind::BadArgument => 9,
            ErrorKind::Protocol => 10,
            ErrorKind::Limit => 11,
        }
    }
}

impl From<u8> for ErrorKind {
    /// Unknown numbers (kinds added by a newer peer) become [`ErrorKind::Failed`].
    fn from(n: u8) -> ErrorKind {
        match n {
            1 => ErrorKind::TimedOut,
            2 => ErrorKind::Cancelled,
            3 => ErrorKind::Disconnected,
            4 => ErrorKind::Denied,
            5 => ErrorKind::Overloaded,
            6 => ErrorKind::Unimplemented,
            7 => ErrorKind::Trapped,
            8 => ErrorKind::OutOfFuel,
            9 => ErrorKind::BadArgument,
            10 => ErrorKind::Protocol,
            11 => ErrorKind::Limit,
            _ => ErrorKind::Failed,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error from rwc: raised locally or received from the peer.
///
/// It carries a [`kind`](Error::kind) that says how to react, a message, the chain of
/// causes (outermost first after the message) and, for errors raised remotely, the remote
/// trace (a Wasm backtrace, a host error chain). `Display` shows all of it, so a user who
/// prints the error sees where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Error {
    kind: ErrorKind,
    #[serde(deserialize_with = "crate::codec::bounded::string")]
    message: String,
    #[serde(deserialize_with = "crate::codec::bounded::strings")]
    causes: Vec<String>,
    #[serde(deserialize_with = "crate::codec::bounded::opt_string")]
    trace: Option<String>,
    remote: bool,
}

impl Error {
    /// A new error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            causes: Vec::new(),
            trace: None,
            remote: false,
        }
    }

    /// An error of the same kind with `context` before its message (`cannot reach node at
    /// ADDR: connection refused`). It is a new local error: causes and trace stay behind.
    pub fn in_context(&self, context: impl fmt::Display) -> Self {
        Error::new(self.kind, format!("{context}: {}", self.message))
    }

    /// A [`ErrorKind::Failed`] error: the usual error of a method.
    pub fn failed(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Failed, message)
    }

    /// A [`ErrorKind::Protocol`] error: the peer sent something that breaks the protocol.
    pub fn protocol(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Protocol, message)
    }

    /// A [`ErrorKind::BadArgument`] error.
    pub fn bad_argument(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::BadArgument, message)
    }

    /// A [`ErrorKind::Disconnected`] error.
    pub fn disconnected(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Disconnected, message)
    }

    /// Build an error from any `std::error::Error`, keeping its source chain as causes.
    pub fn from_std(kind: ErrorKind, err: &(dyn std::error::Error + 'static)) -> Self {
        let mut e = Error::new(kind, err.to_string());
        let mut source = err.source();
        while let Some(s) = source {
            e.causes.push(s.to_string());
            source = s.source();
        }
        e
    }

    /// Add a cause below the ones already recorded.
    pub fn with_cause(mut self, cause: impl Into<String>) -> Self {
        self.causes.push(cause.into());
        self
    }

    /// Attach a trace (a Wasm backtrace, a host error chain).
    pub fn with_trace(mut self, trace: impl Into<String>) -> Self {
        self.trace = Some(trace.into());
        self
    }

    /// How to react to this error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The top-level message, without kind, causes or trace.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The causes below the message, outermost first.
    pub fn causes(&self) -> &[String] {
        &self.causes
    }

    /// The trace recorded where the error was raised, if any.
    pub fn trace(&self) -> Option<&str> {
        self.trace.as_deref()
    }

    /// Whether this error was raised by the peer (it came back in a `Return`).
    pub fn is_remote(&self) -> bool {
        self.remote
    }

    /// Mark an error as having come from the peer.
    pub fn into_remote(mut self) -> Self {
        self.remote = true;
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.remote {
            write!(f, "remote error ({}): {}", self.kind, self.message)?;
        } else {
            write!(f, "{}: {}", self.kind, self.message)?;
        }
        for cause in &self.causes {
            write!(f, "\n  caused by: {cause}")?;
        }
        if let Some(trace) = &self.trace {
            write!(f, "\n  remote trace:")?;
            for line in trace.lines() {
                write!(f, "\n    {line}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// The result of an rwc operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_shows_kind_causes_and_trace() {
        let e = Error::new(ErrorKind::Trapped, "wasm trap: unreachable")
            .with_cause("in export `run`")
            .with_trace("0: guest::f\n1: guest::run")
            .into_remote();
        let s = e.to_string();
        assert!(
            s.starts_with("remote error (trapped): wasm trap: unreachable"),
            "{s}"
        );
        assert!(s.contains("caused by: in export `run`"), "{s}");
        assert!(s.contains("    0: guest::f\n    1: guest::run"), "{s}");
    }

    #[test]
    fn every_kind_keeps_its_number_and_name() {
        let kinds = [
            (ErrorKind::Failed, "failed"),
            (ErrorKind::TimedOut, "timed out"),
            (ErrorKind::Cancelled, "cancelled"),
            (ErrorKind::Disconnected, "disconnected"),
            (ErrorKind::Denied, "denied"),
            (ErrorKind::Overloaded, "overloaded"),
            (ErrorKind::Unimplemented, "unimplemented"),
            (ErrorKind::Trapped, "trapped"),
            (ErrorKind::OutOfFuel, "out of fuel"),
            (ErrorKind::BadArgument, "bad argument"),
            (ErrorKind::Protocol, "protocol error"),
            (ErrorKind::Limit, "limit"),
        ];
        for (number, (kind, name)) in kinds.into_iter().enumerate() {
            assert_eq!(usize::from(u8::from(kind)), number, "{kind}");
            assert_eq!(ErrorKind::from(u8::from(kind)), kind);
            assert_eq!(kind.to_string(), name);
        }
        // A kind from a newer peer reads as `failed`.
        assert_eq!(ErrorKind::from(200), ErrorKind::Failed);
    }

    #[test]
    fn from_std_keeps_source_chain() {
        let io = std::io::Error::other("disk on fire");
        let e = Error::from_std(ErrorKind::Failed, &io);
        assert_eq!(e.message(), "disk on fire");
        assert_eq!(e.kind(), ErrorKind::Failed);
    }
}
