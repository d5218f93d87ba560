//! [`Request`]: a method, its arguments and its reply, as one type.

use rwc_protocol::{Error, Value, from_value, to_value};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A method call both sides know: its name, its positional arguments (the struct's fields,
/// in declaration order) and the type of its reply.
///
/// A request is sent as positional arguments so that a peer can call the method by hand
/// (`call $root module "3bc6…"` in the shell) and an argument that is left off at the end
/// takes its default.
pub trait Request: Serialize + DeserializeOwned {
    /// The method's name.
    const METHOD: &'static str;
    /// What the method returns.
    type Reply: Serialize + DeserializeOwned;

    /// The positional arguments of the call.
    fn to_args(&self) -> Result<Vec<Value>, Error> {
        Ok(match to_value(self)? {
            Value::Map(fields) => fields.into_iter().map(|(_, v)| v).collect(),
            Value::Unit => Vec::new(),
            other => vec![other],
        })
    }

    /// The request from the positional arguments of a call, or a `bad argument` error
    /// naming the method.
    fn from_args(args: Vec<Value>) -> Result<Self, Error> {
        from_value(Value::List(args)).map_err(|e| {
            Error::bad_argument(format!(
                "bad arguments for `{}`: {}",
                Self::METHOD,
                e.message()
            ))
        })
    }

    /// The reply, from the value a call returned.
    fn reply(value: Value) -> Result<Self::Reply, Error> {
        from_value(value)
    }
}

/// Declares the requests of one object: `Name = "method" -> Reply { fields } "help"`,
/// each a struct with its [`Request`] impl, and the object's `METHODS` table (name and
/// help line of each, in order), which is what introspection lists.
macro_rules! requests {
    ($(
        $(#[$meta:meta])*
        $name:ident = $method:literal -> $reply:ty {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty ),* $(,)?
        } $help:literal
    )*) => {
        $(
            $(#[$meta])*
            #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
            pub struct $name {
                $( $(#[$fmeta])* pub $field: $ty, )*
            }

            impl $crate::Request for $name {
                const METHOD: &'static str = $method;
                type Reply = $reply;
            }
        )*

        /// These methods as introspection lists them: each name with what it takes and
        /// does.
        pub const METHODS: &[(&str, &str)] = &[$(($method, $help)),*];
    };
}

pub(crate) use requests;

/// Deserializes a value that may be left out as unit: unit is the default.
pub(crate) fn unit_or_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}
