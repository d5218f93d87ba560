//! The node's side of the guest ABI (`docs/abi.md`): buffers in guest memory, values with
//! netrefs turned into handles and back, and the `rwc.*` host imports.
//!
//! Every pointer and length a guest gives is bounds-checked; a guest that breaks the ABI
//! fails its own call with a clear error and the node goes on.

pub(crate) mod handles;

use std::future::Future;
use std::ops::Range;
use std::sync::Arc;

use rwc_api::abi::{
    self, FIRST_OBJECT_ID, IMPORT_MODULE, MAX_PANIC_MESSAGE, NO_CAPABILITY, export, import,
};
use rwc_protocol::codec::bounded::OwnedString;
use rwc_protocol::{Error, ErrorKind, NetRef, Ref, Value, WireRef, codec};
use wasmtime::{
    AsContext, AsContextMut, Caller, Extern, Linker, Memory, Store, StoreContext, StoreContextMut,
    TypedFunc,
};

use crate::instance::{AbiState, GuestProxy, JobQueue, run_nested};
use crate::sandbox::{StoreState, memory_range};

/// Why running guest code through the ABI failed.
pub(crate) enum Fault {
    /// The guest trapped, or wasmtime stopped it (deadline, fuel): mapped by the sandbox.
    Trap(wasmtime::Error),
    /// The guest broke the ABI, or a value could not be converted.
    Abi(Error),
}

impl From<wasmtime::Error> for Fault {
    fn from(e: wasmtime::Error) -> Self {
        Fault::Trap(e)
    }
}

impl From<Error> for Fault {
    fn from(e: Error) -> Self {
        Fault::Abi(e)
    }
}

/// Turns a fault into the shape `Instance::call_with` wants: traps stay wasmtime errors
/// (the sandbox maps them, with deadline and backtrace), everything else is a result.
pub(crate) fn lift<T>(r: Result<T, Fault>) -> wasmtime::Result<Result<T, Error>> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(Fault::Abi(e)) => Ok(Err(e)),
        Err(Fault::Trap(t)) => Err(t),
    }
}

/// Something that holds an instance's store data.
pub(crate) trait HasState {
    fn store_state(&mut self) -> &mut StoreState;
}

impl HasState for Caller<'_, StoreState> {
    fn store_state(&mut self) -> &mut StoreState {
        self.data_mut()
    }
}

impl HasState for Store<StoreState> {
    fn store_state(&mut self) -> &mut StoreState {
        self.data_mut()
    }
}

impl HasState for TopLevel<'_> {
    fn store_state(&mut self) -> &mut StoreState {
        self.store.data_mut()
    }
}

/// A running instance's store and exports, reached from the top level or from inside a
/// host function.
pub(crate) trait GuestCtx: AsContextMut<Data = StoreState> + HasState + Send {
    fn export(&mut self, name: &str) -> Option<Extern>;
}

impl GuestCtx for Caller<'_, StoreState> {
    fn export(&mut self, name: &str) -> Option<Extern> {
        self.get_export(name)
    }
}

/// The top-level view: a store and the instance handle.
pub(crate) struct TopLevel<'a> {
    pub(crate) store: &'a mut Store<StoreState>,
    pub(crate) instance: wasmtime::Instance,
}

impl AsContext for TopLevel<'_> {
    type Data = StoreState;
    fn as_context(&self) -> StoreContext<'_, StoreState> {
        self.store.as_context()
    }
}

impl AsContextMut for TopLevel<'_> {
    fn as_context_mut(&mut self) -> StoreContextMut<'_, StoreState> {
        self.store.as_context_mut()
    }
}

impl GuestCtx for TopLevel<'_> {
    fn export(&mut self, name: &str) -> Option<Extern> {
        self.instance.get_export(&mut *self.store, name)
    }
}

/// The per-instance ABI state, from the store.
pub(crate) fn state<C: HasState + ?Sized>(ctx: &mut C) -> Result<&mut AbiState, Error> {
    ctx.store_state()
        .ext
        .as_mut()
        .and_then(|ext| ext.downcast_mut::<AbiState>())
        .ok_or_else(|| Error::failed("the rwc ABI is not set up for this instance"))
}

/// A call into guest code through the ABI, from the top level or nested in a host call.
pub(crate) enum GuestCall {
    /// The rich export `name`.
    Export { name: String, args: Vec<Value> },
    /// Method `method` of the guest's object `id`.
    Method {
        id: u64,
        method: String,
        args: Vec<Value>,
    },
    /// The node holds no more references to the guest's object `id`.
    Drop { id: u64 },
}

impl GuestCall {
    /// Runs the call in the instance `ctx` reaches.
    pub(crate) async fn run<C: GuestCtx>(self, ctx: &mut C) -> Result<Value, Fault> {
        match self {
            GuestCall::Export { name, args } => call_export(ctx, &name, args).await,
            GuestCall::Method { id, method, args } => call_object(ctx, id, &method, args).await,
            GuestCall::Drop { id } => drop_object(ctx, id).await,
        }
    }
}

/// Calls the rich export `name` with `args`.
async fn call_export<C: GuestCtx>(
    ctx: &mut C,
    name: &str,
    args: Vec<Value>,
) -> Result<Value, Fault> {
    let func = typed::<(i32, i32), i64>(ctx, &abi::rich_export_symbol(name))?;
    let mut args = args;
    to_guest_all(ctx, &mut args)?;
    let (ptr, len) = write_encoded(ctx, &args).await?;
    // The guest has its copy: free ours before it runs.
    drop(args);
    let packed = func.call_async(&mut *ctx, (ptr, len)).await?;
    take_result(ctx, packed).await
}

/// Calls `method` of the guest's object `id`.
async fn call_object<C: GuestCtx>(
    ctx: &mut C,
    id: u64,
    method: &str,
    args: Vec<Value>,
) -> Result<Value, Fault> {
    let func = typed::<(i32, i32), i64>(ctx, export::OBJECT_CALL)?;
    let mut args = args;
    to_guest_all(ctx, &mut args)?;
    let (ptr, len) = write_encoded(ctx, &(id, method, &args)).await?;
    drop(args);
    let packed = func.call_async(&mut *ctx, (ptr, len)).await?;
    take_result(ctx, packed).await
}

/// Tells the guest the node holds no more references to its object `id`, unless a new
/// netref to it was made since the drop was queued.
async fn drop_object<C: GuestCtx>(ctx: &mut C, id: u64) -> Result<Value, Fault> {
    {
        let state = state(ctx)?;
        if state
            .guest_objects
            .get(&id)
            .is_some_and(|w| w.strong_count() > 0)
        {
            return Ok(Value::Unit);
        }
        state.guest_objects.remove(&id);
    }
    if let Some(Extern::Func(f)) = ctx.export(export::OBJECT_DROP) {
        let f = f.typed::<i64, ()>(&*ctx).map_err(|_| {
            Error::bad_argument("guest's rwc_object_drop must take (i64) and return nothing")
        })?;
        let id = i64::try_from(id).map_err(|_| Error::failed("object id overflow"))?;
        f.call_async(&mut *ctx, id).await?;
    }
    Ok(Value::Unit)
}

/// The result of the guest's last `rwc.call`, until `rwc.take_result` copies it in.
pub(crate) struct PendingResult {
    result: Result<Value, Error>,
    /// Its encoded length, which `rwc.call` told the guest.
    len: usize,
}

/// Adds the `rwc.*` imports to the linker every instance is made with.
pub(crate) fn define(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    linker.func_wrap_async(
        IMPORT_MODULE,
        import::CALL,
        |caller: Caller<'_, StoreState>, (handle, ptr, len): (i64, i32, i32)| {
            Box::new(host_call(caller, handle, ptr, len))
                as Box<dyn Future<Output = wasmtime::Result<i32>> + Send + '_>
        },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        import::TAKE_RESULT,
        |mut caller: Caller<'_, StoreState>, ptr: i32, len: i32| {
            let pending = state(&mut caller)
                .map_err(trap)?
                .pending_result
                .take()
                .ok_or_else(|| {
                    wasmtime::Error::msg(
                        "rwc.take_result: no result is pending (call rwc.call first)",
                    )
                })?;
            if usize::try_from(len).ok() != Some(pending.len) {
                return Err(wasmtime::Error::msg(format!(
                    "rwc.take_result: buffer of {len} bytes given for a result of {} bytes",
                    pending.len
                )));
            }
            let memory = memory(&mut caller).map_err(trap)?;
            let range = guest_range(ptr, len, memory.data_size(&caller)).map_err(trap)?;
            // Encoded straight into the guest's buffer: no copy in between.
            codec::encode_into_slice(&pending.result, &mut memory.data_mut(&mut caller)[range])
                .map_err(trap)
        },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        import::CAPABILITY,
        |mut caller: Caller<'_, StoreState>, ptr: i32, len: i32| {
            let name = read_guest(&mut caller, ptr, len).map_err(trap)?;
            let name = String::from_utf8_lossy(&name).into_owned();
            let state = state(&mut caller).map_err(trap)?;
            match state.capabilities.get(&name).cloned() {
                Some(netref) => {
                    let handle = state.handles.insert(netref).map_err(trap)?;
                    i64::try_from(handle).map_err(|_| wasmtime::Error::msg("handle overflow"))
                }
                None => Ok(NO_CAPABILITY),
            }
        },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        import::RELEASE,
        |mut caller: Caller<'_, StoreState>, handle: i64| {
            let released = state(&mut caller)
                .map_err(trap)?
                .handles
                .release(handle)
                .map_err(trap)?;
            // Dropped here, outside any lock: a proxy's drop only queues a release message.
            drop(released);
            Ok(())
        },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        import::PANIC,
        |mut caller: Caller<'_, StoreState>, ptr: i32, len: i32| {
            let len = len.clamp(0, i32::try_from(MAX_PANIC_MESSAGE).unwrap_or(i32::MAX));
            let message = read_guest(&mut caller, ptr, len).map_err(trap)?;
            state(&mut caller).map_err(trap)?.panic =
                Some(String::from_utf8_lossy(&message).into_owned());
            Ok(())
        },
    )?;
    Ok(())
}

/// `rwc.call`: the guest calls a method on a netref it holds. While the call is out, calls
/// into this same instance (e.g. from the client's callback) run nested here.
async fn host_call(
    mut caller: Caller<'_, StoreState>,
    handle: i64,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<i32> {
    let mut result = async {
        let limits = state(&mut caller)?.limits;
        // Decoded straight from guest memory. The method name is read as borrowed data: a
        // length the guest claims is checked against its buffer before anything is
        // allocated.
        let memory = memory(&mut caller)?;
        let range = guest_range(ptr, len, memory.data_size(&caller))?;
        let (OwnedString(method), mut args): (OwnedString, Vec<Value>) =
            codec::decode(&memory.data(&caller)[range], limits).map_err(|e| {
                Error::bad_argument(format!(
                    "rwc.call: malformed request from the guest: {}",
                    e.message()
                ))
            })?;
        from_guest_all(&mut caller, &mut args)?;
        let state = state(&mut caller)?;
        let target = state.handles.get(handle)?;
        let jobs = state.jobs.clone();
        serve_while(&mut caller, &jobs, async move {
            target.call_value(&method, args).await
        })
        .await
    }
    .await;
    if let Ok(v) = &mut result
        && let Err(e) = to_guest(&mut caller, v)
    {
        result = Err(e);
    }
    // Kept as a value until `rwc.take_result` encodes it into the guest's buffer.
    let (result, len) = match codec::encoded_len(&result) {
        Ok(len) => (result, len),
        Err(e) => {
            let result = Err(e);
            let len = codec::encoded_len(&result).map_err(trap)?;
            (result, len)
        }
    };
    let n = i32::try_from(len).map_err(|_| {
        wasmtime::Error::msg(format!(
            "rwc.call: result of {len} bytes is too large for the guest"
        ))
    })?;
    state(&mut caller).map_err(trap)?.pending_result = Some(PendingResult { result, len });
    Ok(n)
}

/// Awaits `fut`, running calls into this instance that arrive meanwhile.
async fn serve_while<F>(
    caller: &mut Caller<'_, StoreState>,
    jobs: &JobQueue,
    fut: F,
) -> Result<Value, Error>
where
    F: Future<Output = Result<Value, Error>> + Send,
{
    let mut fut = std::pin::pin!(fut);
    loop {
        let job = tokio::select! {
            result = &mut fut => return result,
            job = jobs.next() => job,
        };
        match job {
            Some(job) => run_nested(caller, job).await,
            None => return fut.await,
        }
    }
}

fn to_guest_all<C: HasState>(ctx: &mut C, values: &mut [Value]) -> Result<(), Error> {
    values.iter_mut().try_for_each(|v| to_guest(ctx, v))
}

fn from_guest_all<C: HasState>(ctx: &mut C, values: &mut [Value]) -> Result<(), Error> {
    values.iter_mut().try_for_each(|v| from_guest(ctx, v))
}

/// Netrefs → what the guest may see: its own objects as `Receiver`, anything else as a new
/// handle (`Sender`).
fn to_guest<C: HasState>(ctx: &mut C, value: &mut Value) -> Result<(), Error> {
    if !value.has_refs() {
        return Ok(());
    }
    let state = state(ctx)?;
    value.visit_refs_mut(&mut |r: &mut Ref| {
        let wire = match r {
            Ref::Wire(w) => {
                return Err(Error::bad_argument(format!(
                    "raw wire reference {w:?} cannot be given to a guest"
                )));
            }
            Ref::Object(netref) => match netref.downcast_local::<GuestProxy>() {
                Some(g) if g.instance_id() == state.instance_id => WireRef::Receiver(g.id()),
                _ => WireRef::Sender(state.handles.insert(netref.clone())?),
            },
            _ => return Err(Error::bad_argument("unsupported reference")),
        };
        *r = Ref::Wire(wire);
        Ok(())
    })
}

/// What the guest wrote → netrefs: its objects (`Sender`) become guest-object netrefs, handles
/// (`Receiver`) the netrefs they stand for.
fn from_guest<C: HasState>(ctx: &mut C, value: &mut Value) -> Result<(), Error> {
    if !value.has_refs() {
        return Ok(());
    }
    let state = state(ctx)?;
    value.visit_refs_mut(&mut |r: &mut Ref| {
        let netref = match *r {
            Ref::Wire(WireRef::Receiver(h)) => state.handles.get(i64::try_from(h).unwrap_or(-1))?,
            Ref::Wire(WireRef::Sender(id)) => state.guest_object(id)?,
            _ => {
                return Err(Error::bad_argument(
                    "guest values hold only wire references",
                ));
            }
        };
        *r = Ref::Object(netref);
        Ok(())
    })
}

impl AbiState {
    /// The netref for the guest's object `id`: the same one while it lives.
    fn guest_object(&mut self, id: u64) -> Result<NetRef, Error> {
        if id < FIRST_OBJECT_ID {
            return Err(Error::bad_argument(format!(
                "guest object ids start at {FIRST_OBJECT_ID}"
            )));
        }
        if let Some(obj) = self
            .guest_objects
            .get(&id)
            .and_then(std::sync::Weak::upgrade)
        {
            return Ok(NetRef::from_object(obj));
        }
        let jobs = self
            .jobs_tx
            .upgrade()
            .ok_or_else(|| Error::disconnected("the instance is closing"))?;
        let obj = Arc::new(GuestProxy::new(
            self.instance_id,
            id,
            jobs,
            self.exit.clone(),
        ));
        self.guest_objects.insert(id, Arc::downgrade(&obj));
        Ok(NetRef::from_object(obj))
    }
}

/// Encodes `value` straight into a buffer from the guest's `rwc_alloc`: large bytes are
/// copied once, into guest memory, with no encoded copy in between.
async fn write_encoded<C: GuestCtx, T: serde::Serialize + ?Sized>(
    ctx: &mut C,
    value: &T,
) -> Result<(i32, i32), Fault> {
    let size = codec::encoded_len(value)?;
    let len = i32::try_from(size)
        .map_err(|_| Error::bad_argument(format!("{size} bytes do not fit a guest buffer")))?;
    let alloc = typed::<i32, i32>(ctx, export::ALLOC)?;
    let ptr = alloc.call_async(&mut *ctx, len).await?;
    let memory = memory(ctx)?;
    let range = guest_range(ptr, len, memory.data_size(&*ctx)).map_err(|e| {
        Error::bad_argument(format!(
            "guest's rwc_alloc returned a bad buffer: {}",
            e.message()
        ))
    })?;
    codec::encode_into_slice(value, &mut memory.data_mut(&mut *ctx)[range])?;
    Ok((ptr, len))
}

/// Decodes the `Result<Value, Error>` in the guest's packed buffer straight from guest
/// memory (large bytes are copied once, out of it), then hands the buffer back with
/// `rwc_dealloc`.
async fn take_result<C: GuestCtx>(ctx: &mut C, packed: i64) -> Result<Value, Fault> {
    let (ptr, len) = unpack(packed);
    let limits = state(ctx)?.limits;
    let memory = memory(ctx)?;
    let range = guest_range(ptr, len, memory.data_size(&*ctx)).map_err(|e| {
        Error::bad_argument(format!("guest returned a bad buffer: {}", e.message()))
    })?;
    let decoded: Result<Result<Value, Error>, Error> =
        codec::decode(&memory.data(&*ctx)[range], limits).map_err(|e| {
            Error::bad_argument(format!(
                "guest returned a malformed result: {}",
                e.message()
            ))
        });
    let dealloc = typed::<(i32, i32), ()>(ctx, export::DEALLOC)?;
    dealloc.call_async(&mut *ctx, (ptr, len)).await?;
    let mut value = decoded??;
    from_guest(ctx, &mut value)?;
    Ok(value)
}

/// `(ptr << 32) | len` → `(ptr, len)`, as the guest's `i32`s.
fn unpack(packed: i64) -> (i32, i32) {
    let (ptr, len) = abi::unpack(packed);
    (ptr.cast_signed(), len.cast_signed())
}

fn read_guest<C: GuestCtx>(ctx: &mut C, ptr: i32, len: i32) -> Result<Vec<u8>, Error> {
    let memory = memory(ctx)?;
    let range = guest_range(ptr, len, memory.data_size(&*ctx))?;
    Ok(memory.data(&*ctx)[range].to_vec())
}

fn memory<C: GuestCtx>(ctx: &mut C) -> Result<Memory, Error> {
    match ctx.export(export::MEMORY) {
        Some(Extern::Memory(m)) => Ok(m),
        _ => Err(Error::bad_argument(
            "guest exports no `memory`, which the rwc ABI needs",
        )),
    }
}

fn typed<P: wasmtime::WasmParams, R: wasmtime::WasmResults>(
    ctx: &mut impl GuestCtx,
    name: &str,
) -> Result<TypedFunc<P, R>, Error> {
    match ctx.export(name) {
        Some(Extern::Func(f)) => f.typed::<P, R>(&*ctx).map_err(|e| {
            Error::bad_argument(format!(
                "guest export `{name}` has the wrong signature for the rwc ABI: {e}"
            ))
        }),
        _ => Err(Error::new(
            ErrorKind::Unimplemented,
            format!("guest has no export `{name}`"),
        )),
    }
}

/// `ptr..ptr + len` as unsigned 32-bit numbers, if it lies within a memory of `size` bytes.
fn guest_range(ptr: i32, len: i32, size: usize) -> Result<Range<usize>, Error> {
    let (ptr, len) = (
        u64::from(ptr.cast_unsigned()),
        u64::from(len.cast_unsigned()),
    );
    memory_range(ptr, len, size).map_err(|e| Error::bad_argument(e.to_string()))
}

fn trap(e: Error) -> wasmtime::Error {
    wasmtime::Error::msg(e.message().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_ranges_are_checked() {
        assert_eq!(guest_range(0, 10, 10).unwrap(), 0..10);
        assert!(guest_range(1, 10, 10).is_err());
        assert!(
            guest_range(-1, 1, 1 << 20).is_err(),
            "negative pointers are huge unsigned ones"
        );
        assert!(guest_range(5, -1, 1 << 20).is_err());
        assert_eq!(guest_range(10, 0, 10).unwrap(), 10..10);
    }

    #[test]
    fn packed_buffers_unpack() {
        assert_eq!(unpack((16 << 32) | 8), (16, 8));
        let (ptr, len) = unpack(-1);
        assert_eq!(
            (ptr.cast_unsigned(), len.cast_unsigned()),
            (u32::MAX, u32::MAX)
        );
    }
}
