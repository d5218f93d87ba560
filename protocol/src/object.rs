//! Local objects that a peer can call by method name, and easy ways to make them.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::connection::Connection;
use crate::error::{Error, ErrorKind};
use crate::netref::NetRef;
use crate::value::{Value, from_value, to_value};

/// An object that can be called remotely, by method name, with positional [`Value`]
/// arguments.
///
/// Implement it for types with state; use [`Service`] or [`callable`] for closures. A
/// method that panics fails only that call.
pub trait Object: Any + Send + Sync {
    /// Runs `method` with `args`.
    ///
    /// # Cancel safety
    /// The returned future is dropped when the caller cancels or the deadline passes;
    /// implementations must leave the object consistent at every `.await`.
    fn call<'a>(
        &'a self,
        ctx: CallContext,
        method: &'a str,
        args: Vec<Value>,
    ) -> BoxFuture<'a, Result<Value, Error>>;

    /// The methods this object answers (what a peer sees when it asks).
    fn methods(&self) -> Vec<MethodInfo>;

    /// A short name of the object's type, for messages and introspection.
    fn type_name(&self) -> &str {
        "object"
    }

    /// Whether [`methods`](Object::methods) is the whole answer to introspection. Objects
    /// whose methods are known only elsewhere (a proxy, a Wasm guest's object) return
    /// false and receive the `rwc.methods` request as an ordinary call.
    fn knows_methods(&self) -> bool {
        true
    }

    /// Whether calls may run long without yielding (e.g. Wasm execution). The connection
    /// then always runs them as their own task instead of first trying them inline.
    fn runs_long(&self) -> bool {
        false
    }
}

impl fmt::Debug for dyn Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Object({})", self.type_name())
    }
}

/// A method an object answers, as introspection shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct MethodInfo {
    /// The method name.
    pub name: String,
    /// One line on what it does and what it takes.
    pub doc: String,
}

impl MethodInfo {
    /// A method with a doc line.
    pub fn new(name: impl Into<String>, doc: impl Into<String>) -> Self {
        MethodInfo {
            name: name.into(),
            doc: doc.into(),
        }
    }
}

/// What a method knows about the call it is serving.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    pub(crate) connection: Option<Connection>,
    pub(crate) deadline: Option<Instant>,
}

impl CallContext {
    /// A context for calling an object directly, not through a connection.
    pub fn local() -> Self {
        CallContext::default()
    }

    /// The connection the call came in on (`None` for a direct local call).
    pub fn connection(&self) -> Option<&Connection> {
        self.connection.as_ref()
    }

    /// When the caller stops waiting, if it said.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

type Handler =
    dyn Fn(CallContext, Vec<Value>) -> BoxFuture<'static, Result<Value, Error>> + Send + Sync;

/// An object built from closures, one per method.
///
/// Arguments arrive as a tuple: `|(a, b): (u64, u64)| async move { Ok(a + b) }` takes two
/// positional arguments, `|(name,): (String,)| …` one, `|(): ()| …` none.
pub struct Service {
    name: String,
    methods: BTreeMap<String, (String, Arc<Handler>)>,
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service")
            .field("name", &self.name)
            .field("methods", &self.methods.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Service {
    /// An empty service named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Service {
            name: name.into(),
            methods: BTreeMap::new(),
        }
    }

    /// Adds a method with typed arguments and result.
    pub fn method<A, R, F, Fut>(self, name: &str, f: F) -> Self
    where
        A: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, Error>> + Send + 'static,
    {
        self.method_with_context(name, move |_ctx, args: A| f(args))
    }

    /// Adds a method with typed arguments that also sees the [`CallContext`].
    pub fn method_with_context<A, R, F, Fut>(mut self, name: &str, f: F) -> Self
    where
        A: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(CallContext, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, Error>> + Send + 'static,
    {
        let method = name.to_owned();
        let handler =
            move |ctx: CallContext, args: Vec<Value>| -> BoxFuture<'static, Result<Value, Error>> {
                match decode_args::<A>(&method, args) {
                    Ok(a) => {
                        let fut = f(ctx, a);
                        Box::pin(async move { to_value(&fut.await?) })
                    }
                    Err(e) => Box::pin(async move { Err(e) }),
                }
            };
        self.methods
            .insert(name.to_owned(), (String::new(), Arc::new(handler)));
        self
    }

    /// Adds a method that takes and returns raw values.
    pub fn raw_method<F, Fut>(mut self, name: &str, f: F) -> Self
    where
        F: Fn(CallContext, Vec<Value>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, Error>> + Send + 'static,
    {
        let handler =
            move |ctx: CallContext, args: Vec<Value>| -> BoxFuture<'static, Result<Value, Error>> {
                Box::pin(f(ctx, args))
            };
        self.methods
            .insert(name.to_owned(), (String::new(), Arc::new(handler)));
        self
    }

    /// Sets the doc line of the method added last under `name`.
    pub fn doc(mut self, name: &str, doc: &str) -> Self {
        if let Some(m) = self.methods.get_mut(name) {
            m.0 = doc.to_owned();
        }
        self
    }

    /// Makes it an object that can be sent to a peer.
    pub fn into_object(self) -> NetRef {
        NetRef::from_object(Arc::new(self))
    }
}

impl Dispatch for Service {
    const TYPE_NAME: &'static str = "service";
    const METHODS: MethodTable = MethodTable(&[]);

    fn dispatch<'a>(
        &'a self,
        call: Call<'a>,
    ) -> impl Future<Output = Result<Value, Error>> + Send + 'a {
        let Call { ctx, method, args } = call;
        // The handler decodes the arguments now, before the call is polled.
        let handled = self
            .methods
            .get(method)
            .map(|(_, handler)| handler(ctx, args));
        async move {
            match handled {
                Some(fut) => fut.await,
                None => Err(no_such_method(&self.name, method, self.methods.keys())),
            }
        }
    }

    fn listed_methods(&self) -> Vec<MethodInfo> {
        self.methods
            .iter()
            .map(|(name, (doc, _))| MethodInfo::new(name.clone(), doc.clone()))
            .collect()
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// Makes a closure an object with one method, `call`: the usual shape of a callback.
pub fn callable<A, R, F, Fut>(f: F) -> NetRef
where
    A: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    F: Fn(A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, Error>> + Send + 'static,
{
    Service::new("callable").method("call", f).into_object()
}

/// An object written by hand: a type name, a table of methods and one `match` on the method
/// name. Implementing it implements [`Object`]: introspection answers the table, and the
/// connection runs [`dispatch`](Dispatch::dispatch) for every call.
///
/// ```
/// use rwc_protocol::object::{Call, Dispatch, MethodTable};
/// use rwc_protocol::{Error, Value, to_value};
///
/// struct Clock;
///
/// impl Dispatch for Clock {
///     const TYPE_NAME: &'static str = "clock";
///     const METHODS: MethodTable = MethodTable(&[("now", "() seconds since 1970")]);
///
///     async fn dispatch<'a>(&'a self, call: Call<'a>) -> Result<Value, Error> {
///         match call.method {
///             "now" => to_value(&1_700_000_000u64),
///             other => Err(Self::unknown(other)),
///         }
///     }
/// }
/// # let _ = rwc_protocol::NetRef::new(Clock);
/// ```
pub trait Dispatch: Send + Sync + 'static {
    /// The object's type, for messages and introspection.
    const TYPE_NAME: &'static str;
    /// The methods it answers.
    const METHODS: MethodTable;
    /// Whether its calls may run long without yielding ([`Object::runs_long`]).
    const RUNS_LONG: bool = false;
    /// Whether [`listed_methods`](Dispatch::listed_methods) is the whole answer to
    /// introspection ([`Object::knows_methods`]).
    const KNOWS_METHODS: bool = true;

    /// Runs one call.
    ///
    /// # Cancel safety
    /// The future is dropped when the caller cancels or the deadline passes;
    /// implementations must leave the object consistent at every `.await`.
    fn dispatch<'a>(
        &'a self,
        call: Call<'a>,
    ) -> impl Future<Output = Result<Value, Error>> + Send + 'a;

    /// The methods introspection shows: [`METHODS`](Dispatch::METHODS) unless the object
    /// knows more (say, a guest's exports).
    fn listed_methods(&self) -> Vec<MethodInfo> {
        Self::METHODS.infos()
    }

    /// The name [`Object::type_name`] gives: [`TYPE_NAME`](Dispatch::TYPE_NAME) unless
    /// each object has its own.
    fn name(&self) -> &str {
        Self::TYPE_NAME
    }

    /// The `unimplemented` error for a method the object does not have.
    fn unknown(method: &str) -> Error {
        Self::METHODS.unknown(Self::TYPE_NAME, method)
    }
}

impl<T: Dispatch> Object for T {
    fn call<'a>(
        &'a self,
        ctx: CallContext,
        method: &'a str,
        args: Vec<Value>,
    ) -> BoxFuture<'a, Result<Value, Error>> {
        Box::pin(self.dispatch(Call { ctx, method, args }))
    }

    fn methods(&self) -> Vec<MethodInfo> {
        self.listed_methods()
    }

    fn type_name(&self) -> &str {
        self.name()
    }

    fn knows_methods(&self) -> bool {
        T::KNOWS_METHODS
    }

    fn runs_long(&self) -> bool {
        T::RUNS_LONG
    }
}

/// One call to a [`Dispatch`] object: what it came with.
#[derive(Debug)]
pub struct Call<'a> {
    /// The context of the call (its connection and deadline).
    pub ctx: CallContext,
    /// The method asked for.
    pub method: &'a str,
    /// The positional arguments.
    pub args: Vec<Value>,
}

impl Call<'_> {
    /// The arguments as the tuple (or positional struct) the method takes, with a
    /// `bad argument` error naming the method if they do not fit.
    pub fn args<A: DeserializeOwned>(self) -> Result<A, Error> {
        decode_args(self.method, self.args)
    }
}

/// The methods of an object written by hand, as `(name, doc)` pairs: what introspection
/// answers, and what an unknown-method error lists.
#[derive(Debug, Clone, Copy)]
pub struct MethodTable(pub &'static [(&'static str, &'static str)]);

impl MethodTable {
    /// The methods, for [`Object::methods`].
    pub fn infos(&self) -> Vec<MethodInfo> {
        self.0
            .iter()
            .map(|(n, d)| MethodInfo::new(*n, *d))
            .collect()
    }

    /// The `unimplemented` error for `method`, which is not in the table.
    pub fn unknown(&self, type_name: &str, method: &str) -> Error {
        no_such_method(type_name, method, self.0.iter().map(|(n, _)| *n))
    }
}

/// The `unimplemented` error for a missing method, listing what the object has.
pub fn no_such_method<S: AsRef<str>>(
    type_name: &str,
    method: &str,
    available: impl IntoIterator<Item = S>,
) -> Error {
    let names: Vec<String> = available
        .into_iter()
        .map(|s| s.as_ref().to_owned())
        .collect();
    Error::new(
        ErrorKind::Unimplemented,
        format!(
            "{type_name} has no method `{method}` (it has: {})",
            names.join(", ")
        ),
    )
}

/// Converts positional arguments into the tuple a typed method takes.
pub fn decode_args<A: DeserializeOwned>(method: &str, args: Vec<Value>) -> Result<A, Error> {
    from_value(Value::List(args))
        .map_err(|e| Error::bad_argument(format!("bad arguments for `{method}`: {}", e.message())))
}
