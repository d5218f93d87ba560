//! Chunked uploads: `upload_stream(total_len)` hands out an uploader object that takes the
//! module in pieces (`write(bytes)`, then `finish()`), so a client can show progress for a
//! big module and the node can refuse one that is too large before any byte arrives.
//!
//! The node never holds more than the announced length, and the announced length is never
//! more than its `max_module_bytes`: a chunk that would go past it is refused.

use std::sync::{Arc, Mutex, PoisonError};

use rwc_api::Request;
use rwc_api::root::UploadStream;
use rwc_api::upload::{self, Finish, Received, Write};
use rwc_protocol::object::{Call, Dispatch, MethodTable};
use rwc_protocol::{Error, ErrorKind, NetRef, Value};

use super::module::compile;
use crate::Node;
use crate::principal::Principal;

/// A module being uploaded in chunks. Dropping the last netref to it frees what it holds.
pub struct Uploader {
    node: Node,
    principal: Arc<Principal>,
    total: u64,
    state: Mutex<State>,
}

enum State {
    Receiving(Vec<u8>),
    Finished,
}

const METHODS: MethodTable = MethodTable(upload::METHODS);

impl std::fmt::Debug for Uploader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploader")
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

/// `upload_stream(total_len)`: an uploader for a module of `total_len` bytes, refused at
/// once (`denied`) if that is over the principal's limit (itself within the node's).
pub(crate) fn upload_stream(
    node: &Node,
    principal: &Arc<Principal>,
    req: UploadStream,
) -> Result<Value, Error> {
    let total = req.total_len;
    check_size(principal, total)?;
    if total == 0 {
        return Err(Error::bad_argument(
            "a module cannot be empty: upload_stream needs its length in bytes",
        ));
    }
    Ok(NetRef::new(Uploader {
        node: node.clone(),
        principal: principal.clone(),
        total,
        state: Mutex::new(State::Receiving(Vec::new())),
    })
    .into())
}

/// Refuses (`denied`) a module of `size` bytes over the principal's `max_module_bytes`.
pub(crate) fn check_size(principal: &Principal, size: u64) -> Result<(), Error> {
    let limit = principal.limits().max_module_bytes;
    if size <= limit {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::Denied,
        format!(
            "module is {size} bytes, over the limit of {limit} bytes for principal `{}`; \
             shrink it (strip debug info, run wasm-opt) or raise the node's --max-module-bytes \
             (or the principal's max_module_bytes)",
            principal.name()
        ),
    ))
}

impl Uploader {
    fn write(&self, chunk: &[u8]) -> Result<u64, Error> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let State::Receiving(buf) = &mut *state else {
            return Err(finished());
        };
        let have = u64::try_from(buf.len()).unwrap_or(u64::MAX);
        let len = u64::try_from(chunk.len()).unwrap_or(u64::MAX);
        let after = have.saturating_add(len);
        if after > self.total {
            return Err(Error::bad_argument(format!(
                "chunk of {len} bytes goes past the announced length: {have} of {} bytes \
                 already received; announce the right length in upload_stream",
                self.total
            )));
        }
        // Grow geometrically but never past the announced length (itself within the
        // node's limit), so a client cannot make the node reserve more than that.
        let want = after.max(have.saturating_mul(2)).min(self.total);
        let extra = usize::try_from(want - have).unwrap_or(chunk.len());
        buf.reserve_exact(extra.max(chunk.len()));
        buf.extend_from_slice(chunk);
        Ok(after)
    }

    fn received(&self) -> u64 {
        match &*self.state.lock().unwrap_or_else(PoisonError::into_inner) {
            State::Receiving(buf) => u64::try_from(buf.len()).unwrap_or(u64::MAX),
            State::Finished => self.total,
        }
    }

    async fn finish(&self) -> Result<Value, Error> {
        let bytes = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            match &*state {
                State::Receiving(buf) if u64::try_from(buf.len()).ok() == Some(self.total) => {}
                State::Receiving(buf) => {
                    return Err(Error::bad_argument(format!(
                        "upload incomplete: {} of {} bytes received; write the rest before finish",
                        buf.len(),
                        self.total
                    )));
                }
                State::Finished => return Err(finished()),
            }
            match std::mem::replace(&mut *state, State::Finished) {
                State::Receiving(buf) => buf,
                State::Finished => return Err(finished()),
            }
        };
        compile(&self.node, &self.principal, bytes).await
    }
}

fn finished() -> Error {
    Error::bad_argument("this upload is finished; start another with upload_stream")
}

impl Dispatch for Uploader {
    const TYPE_NAME: &'static str = "uploader";
    const METHODS: MethodTable = METHODS;

    async fn dispatch<'a>(&'a self, call: Call<'a>) -> Result<Value, Error> {
        match call.method {
            Write::METHOD => self
                .write(&Write::from_args(call.args)?.chunk)
                .map(Value::U64),
            Finish::METHOD => self.finish().await,
            Received::METHOD => Ok(Value::U64(self.received())),
            other => Err(Self::unknown(other)),
        }
    }
}
