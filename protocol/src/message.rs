//! Wire messages, modelled on Cap'n Proto's two-party RPC.
//!
//! The caller picks question ids; the exporter picks export ids. Export id 0 is each side's
//! root object, which always exists and is never released.

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::value::Value;

/// Export id of each side's root object.
pub const ROOT_EXPORT: u64 = 0;

/// One protocol message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// Call `method` on `target` with `args`; answer with a `Return` of the same question.
    Call(Call),
    /// The answer to a call.
    Return(Return),
    /// The caller no longer wants the answer to `question` (dropped, or its deadline passed).
    Cancel {
        /// The question being cancelled.
        question: u64,
    },
    /// The sender drops `count` references to the receiver's export `export`.
    Release {
        /// Export id in the receiver's table.
        export: u64,
        /// How many of the references received so far are released.
        count: u64,
    },
    /// Liveness probe; answered by `Pong` with the same nonce.
    Ping {
        /// Echoed back in the `Pong`.
        nonce: u64,
    },
    /// Answer to `Ping`.
    Pong {
        /// The nonce of the `Ping`.
        nonce: u64,
    },
    /// The sender is closing the connection because of `reason`.
    Abort {
        /// Why.
        reason: Error,
    },
}

/// A call of a method on an object the receiver exports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    /// Caller-chosen id, unique among the caller's calls in flight.
    pub question: u64,
    /// The object called.
    pub target: Target,
    /// The method name.
    #[serde(deserialize_with = "crate::codec::bounded::string")]
    pub method: String,
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Milliseconds the callee has to answer, counted from receipt; `None`: no deadline.
    /// A time too far away for the callee's clock to represent is no deadline either.
    pub deadline_ms: Option<u64>,
}

/// What a call is addressed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// An object in the receiver's export table.
    Export(u64),
    /// The result of a call not yet answered (promise pipelining): the object found by
    /// following `path` (list indices / map keys) into the answer of `question`. Reserved:
    /// this version answers it with `unimplemented`.
    Promise {
        /// The earlier question whose answer is the target.
        question: u64,
        /// Steps into that answer.
        #[serde(deserialize_with = "crate::codec::bounded::strings")]
        path: Vec<String>,
    },
}

/// The answer to a [`Call`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Return {
    /// The question answered.
    pub question: u64,
    /// The result, or the error the call failed with.
    pub result: Result<Value, Error>,
}

impl Message {
    /// The values the message carries (arguments or a result).
    pub fn values(&self) -> &[Value] {
        match self {
            Message::Call(call) => &call.args,
            Message::Return(Return { result: Ok(v), .. }) => std::slice::from_ref(v),
            _ => &[],
        }
    }

    /// The values the message carries, to change them.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Value> {
        let slice: &mut [Value] = match self {
            Message::Call(call) => &mut call.args,
            Message::Return(Return { result: Ok(v), .. }) => std::slice::from_mut(v),
            _ => &mut [],
        };
        slice.iter_mut()
    }
}
