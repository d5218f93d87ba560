//! Rich exports and methods: decoding positional arguments into typed parameters, and
//! turning what the function returned into the `Result<Value, Error>` the node reads.
//!
//! The `export` and `object` attributes generate calls to these (through `__private`).

use std::fmt;
use std::marker::PhantomData;
use std::vec;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_bytes::ByteBuf;

use rwc_protocol::value::Bytes;
use rwc_protocol::{DecodeLimits, Error, ErrorKind, Value, codec, from_value, to_value};

use crate::handles;

/// `rwc_export_NAME`: decodes the arguments, runs `f` (the generated dispatcher), encodes
/// its result. Never fails: every failure is an encoded `Err`.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) fn run_export(input: Vec<u8>, f: fn(Vec<Value>) -> Result<Value, Error>) -> Vec<u8> {
    handles::flush_deferred();
    let mark = handles::mentions_mark();
    let result = decode_input::<Vec<Value>>(input)
        .map_err(|e| {
            Error::protocol(format!(
                "cannot decode the arguments from the node: {}",
                e.message()
            ))
        })
        .and_then(|args| handles::receive_all(args, f));
    let out = encode_result(&result);
    // Handles the result mentions stay held until the next call into the guest: the node
    // reads the result after we return.
    handles::forget_mentions(mark);
    out
}

/// Decodes a buffer the node filled, taking it over: a large bytes value in it stays where
/// it is (a slice of the buffer), and a `Vec<u8>` parameter made from it reuses the buffer
/// (its bytes moved to the front in place) instead of a second allocation and copy.
pub(crate) fn decode_input<T: DeserializeOwned>(input: Vec<u8>) -> Result<T, Error> {
    let input = Bytes::from(input);
    codec::decode_shared(&input, DecodeLimits::default())
    // `input` is dropped here: a bytes value sharing it is then the buffer's only owner.
}

/// Encodes a call's result for the node. An unencodable result becomes an encoded error.
pub(crate) fn encode_result(result: &Result<Value, Error>) -> Vec<u8> {
    codec::encode(result).unwrap_or_else(|e| {
        let err = Error::failed(format!("cannot encode the result: {}", e.message()));
        codec::encode(&Err::<Value, Error>(err)).unwrap_or_else(|_| ENCODE_FAILED.to_vec())
    })
}

/// `Err(Error { kind: failed, message: "cannot encode the result" })`, written out.
const ENCODE_FAILED: &[u8] = b"\x01\x00\x18cannot encode the result\x00\x00\x00";

/// The positional arguments of one call, taken one typed parameter at a time.
#[derive(Debug)]
pub struct Args {
    function: &'static str,
    params: &'static [&'static str],
    values: vec::IntoIter<Value>,
    index: usize,
}

impl Args {
    /// Checks the arity of a call to `function`, whose parameters are `params`
    /// (`"name: Type"` each).
    pub fn new(
        function: &'static str,
        args: Vec<Value>,
        params: &'static [&'static str],
    ) -> Result<Args, Error> {
        if args.len() != params.len() {
            let takes = match params.len() {
                0 => "no arguments".to_owned(),
                1 => format!("1 argument ({})", params[0]),
                n => format!("{n} arguments ({})", params.join(", ")),
            };
            return Err(Error::new(
                ErrorKind::BadArgument,
                format!(
                    "`{function}` takes {takes} but was called with {}",
                    args.len()
                ),
            ));
        }
        Ok(Args {
            function,
            params,
            values: args.into_iter(),
            index: 0,
        })
    }

    /// Converts the next argument to the type of the next parameter.
    #[allow(clippy::should_implement_trait)]
    pub fn next<T: DeserializeOwned>(&mut self) -> Result<T, Error> {
        self.next_with(from_value)
    }

    /// Converts the next argument with `convert`, naming the parameter in its error.
    fn next_with<T>(
        &mut self,
        convert: impl FnOnce(Value) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let index = self.index;
        self.index += 1;
        let param = self.params.get(index).copied().unwrap_or("?");
        let value = self.values.next().ok_or_else(|| {
            Error::bad_argument(format!("`{}` is missing argument `{param}`", self.function))
        })?;
        convert(value).map_err(|e| {
            Error::bad_argument(format!(
                "argument {} (`{param}`) of `{}`: {}",
                index + 1,
                self.function,
                e.message()
            ))
        })
    }
}

/// A parameter of type `T`, for picking how its argument converts: generated code calls
/// `(&Param::<T>::new()).take(&mut args)` with [`TakeBytes`] and [`TakeValue`] in scope,
/// so that byte buffers move out of the argument as they are (autoref specialization)
/// and every other type goes through serde.
#[derive(Debug)]
pub struct Param<T>(PhantomData<T>);

impl<T> Param<T> {
    /// The marker for a parameter of type `T`.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Param(PhantomData)
    }
}

/// The byte-buffer half of [`Param`]: found first, for `Vec<u8>`, `Box<[u8]>` and
/// `ByteBuf`. The bytes of a bytes argument move into the parameter; no copy is made.
pub trait TakeBytes<T> {
    /// Converts the next argument.
    fn take(&self, args: &mut Args) -> Result<T, Error>;
}

impl TakeBytes<Vec<u8>> for Param<Vec<u8>> {
    fn take(&self, args: &mut Args) -> Result<Vec<u8>, Error> {
        args.next_with(Value::into_bytes)
    }
}

impl TakeBytes<Box<[u8]>> for Param<Box<[u8]>> {
    fn take(&self, args: &mut Args) -> Result<Box<[u8]>, Error> {
        args.next_with(Value::into_bytes).map(Vec::into_boxed_slice)
    }
}

impl TakeBytes<ByteBuf> for Param<ByteBuf> {
    fn take(&self, args: &mut Args) -> Result<ByteBuf, Error> {
        args.next_with(Value::into_bytes).map(ByteBuf::from)
    }
}

/// The serde half of [`Param`]: found one autoref later, for any other type.
pub trait TakeValue<T> {
    /// Converts the next argument.
    fn take(&self, args: &mut Args) -> Result<T, Error>;
}

impl<T: DeserializeOwned> TakeValue<T> for &Param<T> {
    fn take(&self, args: &mut Args) -> Result<T, Error> {
        args.next()
    }
}

/// A function's result, for picking how it becomes a value: generated code calls
/// `Ret(v).into_result_value(function)` with [`BytesResult`] and [`SerdeResult`] in
/// scope, so that a byte buffer moves into a bytes value and anything else goes through
/// serde.
#[derive(Debug)]
pub struct Ret<T>(pub T);

/// The byte-buffer half of [`Ret`]: found first.
pub trait BytesResult {
    /// The result as a value.
    fn into_result_value(self, function: &str) -> Result<Value, Error>;
}

impl BytesResult for Ret<Vec<u8>> {
    fn into_result_value(self, _function: &str) -> Result<Value, Error> {
        Ok(Value::Bytes(self.0.into()))
    }
}

impl BytesResult for Ret<Box<[u8]>> {
    fn into_result_value(self, _function: &str) -> Result<Value, Error> {
        Ok(Value::Bytes(self.0.into_vec().into()))
    }
}

impl BytesResult for Ret<ByteBuf> {
    fn into_result_value(self, _function: &str) -> Result<Value, Error> {
        Ok(Value::Bytes(self.0.into_vec().into()))
    }
}

impl BytesResult for Ret<&[u8]> {
    fn into_result_value(self, _function: &str) -> Result<Value, Error> {
        Ok(Value::Bytes(self.0.to_vec().into()))
    }
}

/// The serde half of [`Ret`]: found one autoref later.
pub trait SerdeResult {
    /// The result as a value.
    fn into_result_value(self, function: &str) -> Result<Value, Error>;
}

impl<T: Serialize> SerdeResult for &Ret<T> {
    fn into_result_value(self, function: &str) -> Result<Value, Error> {
        result_value(function, &self.0)
    }
}

/// A function's successful result as a value.
pub fn result_value<T: Serialize + ?Sized>(function: &str, value: &T) -> Result<Value, Error> {
    to_value(value).map_err(|e| {
        Error::failed(format!(
            "the result of `{function}` does not convert to an rwc value: {}",
            e.message()
        ))
    })
}

/// Wraps the error of a function returning `Result<T, E>` to pick how it becomes an
/// [`Error`]: an `rwc_guest::Error` as it is (kind kept), any other `E: Display` as a
/// `failed` error with `e.to_string()`. Generated code calls
/// `(&ErrorWrap(e)).into_rwc_error()` with both traits in scope (autoref specialization).
#[derive(Debug)]
pub struct ErrorWrap<E>(pub E);

/// The rwc-error half of [`ErrorWrap`]: found first, for `E = Error`.
pub trait ViaRwcError {
    /// The error to send back.
    fn into_rwc_error(self) -> Error;
}

impl ViaRwcError for &ErrorWrap<Error> {
    fn into_rwc_error(self) -> Error {
        self.0.clone()
    }
}

/// The `Display` half of [`ErrorWrap`]: found one autoref later, for any `E: Display`.
pub trait ViaDisplay {
    /// The error to send back.
    fn into_rwc_error(self) -> Error;
}

impl<E: fmt::Display> ViaDisplay for &&ErrorWrap<E> {
    fn into_rwc_error(self) -> Error {
        Error::failed(self.0.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> Result<Value, Error> {
        codec::decode(bytes, DecodeLimits::default()).unwrap()
    }

    fn add(args: Vec<Value>) -> Result<Value, Error> {
        let mut args = Args::new("add", args, &["a: u32", "b: u32"])?;
        let a: u32 = args.next()?;
        let b: u32 = args.next()?;
        result_value("add", &(a + b))
    }

    #[test]
    fn export_decodes_arguments_and_encodes_the_result() {
        let input = codec::encode(&vec![Value::U64(2), Value::I64(3)]).unwrap();
        assert_eq!(decode(&run_export(input, add)), Ok(Value::U64(5)));
    }

    #[test]
    fn wrong_arity_names_the_function_and_its_parameters() {
        let input = codec::encode(&vec![Value::U64(2)]).unwrap();
        let err = decode(&run_export(input, add)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadArgument);
        assert_eq!(
            err.message(),
            "`add` takes 2 arguments (a: u32, b: u32) but was called with 1"
        );
        let err = Args::new("f", vec![Value::Unit], &[]).unwrap_err();
        assert_eq!(
            err.message(),
            "`f` takes no arguments but was called with 1"
        );
    }

    #[test]
    fn wrong_type_names_the_argument() {
        let input = codec::encode(&vec![Value::U64(2), Value::from("x")]).unwrap();
        let err = decode(&run_export(input, add)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadArgument);
        assert!(
            err.message()
                .starts_with("argument 2 (`b: u32`) of `add`: "),
            "{err}"
        );
    }

    #[test]
    fn malformed_input_is_a_protocol_error() {
        let err = decode(&run_export(vec![7, 200], add)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol);
    }

    #[test]
    fn error_wrap_keeps_rwc_errors_and_displays_others() {
        let denied = Error::new(ErrorKind::Denied, "no fs");
        let e = (&ErrorWrap(denied.clone())).into_rwc_error();
        assert_eq!(e, denied);
        let e = (&ErrorWrap("disk full".to_string())).into_rwc_error();
        assert_eq!(e, Error::failed("disk full"));
        let io = std::io::Error::other("boom");
        assert_eq!((&ErrorWrap(io)).into_rwc_error(), Error::failed("boom"));
    }

    #[test]
    fn fallback_bytes_decode_as_the_error_they_claim() {
        assert_eq!(
            decode(ENCODE_FAILED),
            Err(Error::failed("cannot encode the result"))
        );
    }
}
