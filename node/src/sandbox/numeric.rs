//! Calling exports with plain numbers: the Wasm value types, how a dynamic number is given
//! one, and the checks that a call fits the export's signature.

use std::fmt;

use wasmtime::{Func, FuncType, Val, ValType};

use super::{ExternKind, Instance, SandboxError};

/// A numeric Wasm value, as passed to and returned from [`Instance::call`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WasmArg {
    /// A 32-bit integer (Wasm does not say whether it is signed).
    I32(i32),
    /// A 64-bit integer.
    I64(i64),
    /// A 32-bit float.
    F32(f32),
    /// A 64-bit float.
    F64(f64),
}

/// A number as it comes from JSON or a dynamic value, before it is given a Wasm type by
/// [`WasmArg::coerce`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// A signed integer.
    Int(i64),
    /// An unsigned integer (for values above `i64::MAX`).
    UInt(u64),
    /// A float.
    Float(f64),
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(v) => fmt::Display::fmt(v, f),
            Self::UInt(v) => fmt::Display::fmt(v, f),
            // Debug keeps the `.0` of a whole float, so it reads back as a float.
            Self::Float(v) => fmt::Debug::fmt(v, f),
        }
    }
}

impl WasmArg {
    /// The Wasm type of this value.
    pub fn ty(&self) -> ValType {
        match self {
            Self::I32(_) => ValType::I32,
            Self::I64(_) => ValType::I64,
            Self::F32(_) => ValType::F32,
            Self::F64(_) => ValType::F64,
        }
    }

    /// Gives `value` the Wasm type `ty`, if it fits without loss.
    ///
    /// - `i32` takes integers from `i32::MIN` to `u32::MAX` (values above `i32::MAX` are
    ///   their two's-complement bit pattern: Wasm integers have no sign);
    /// - `i64` likewise takes `i64::MIN..=u64::MAX`;
    /// - `f32` and `f64` take floats (an `f64` is rounded to the nearest `f32`, but one
    ///   beyond `f32`'s range is refused) and integers they represent exactly
    ///   (up to 2^24 and 2^53 in magnitude);
    /// - floats are never accepted for integer types.
    pub fn coerce(value: Number, ty: &ValType) -> Result<WasmArg, SandboxError> {
        coerce(value, ty).map_err(SandboxError::BadArgument)
    }

    fn to_val(self) -> Val {
        match self {
            Self::I32(v) => Val::I32(v),
            Self::I64(v) => Val::I64(v),
            Self::F32(v) => Val::F32(v.to_bits()),
            Self::F64(v) => Val::F64(v.to_bits()),
        }
    }

    fn from_val(val: &Val) -> Option<Self> {
        match val {
            Val::I32(v) => Some(Self::I32(*v)),
            Val::I64(v) => Some(Self::I64(*v)),
            Val::F32(bits) => Some(Self::F32(f32::from_bits(*bits))),
            Val::F64(bits) => Some(Self::F64(f64::from_bits(*bits))),
            _ => None,
        }
    }
}

impl Instance {
    /// Calls the exported function `export` with numeric arguments.
    ///
    /// The call runs under the instance's call deadline, with a fresh output budget.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops the guest at its next yield point (at most one epoch
    /// tick away). The instance stays usable, but the guest's own state may be half
    /// updated, as after a trap.
    pub async fn call(
        &mut self,
        export: &str,
        args: &[WasmArg],
    ) -> Result<Vec<WasmArg>, SandboxError> {
        self.call_converted(export, args, |arg, param| {
            if ValType::eq(&arg.ty(), param) {
                Ok(arg.to_val())
            } else {
                Err(Mismatch::Type(arg.ty()))
            }
        })
        .await
    }

    /// Like [`call`](Self::call), but with untyped numbers (from JSON, say), each
    /// converted to its parameter's type by [`WasmArg::coerce`].
    ///
    /// # Cancel safety
    ///
    /// As for [`call`](Self::call).
    pub async fn call_numbers(
        &mut self,
        export: &str,
        args: &[Number],
    ) -> Result<Vec<WasmArg>, SandboxError> {
        self.call_converted(export, args, |arg, param| {
            coerce(*arg, param)
                .map(WasmArg::to_val)
                .map_err(Mismatch::Value)
        })
        .await
    }

    /// Calls the numeric export `export` with `args`, each converted to its parameter's
    /// type by `convert`; a mismatch is a [`SandboxError::BadArgument`] naming the
    /// signature and the argument.
    async fn call_converted<A>(
        &mut self,
        export: &str,
        args: &[A],
        convert: impl Fn(&A, &ValType) -> Result<Val, Mismatch>,
    ) -> Result<Vec<WasmArg>, SandboxError> {
        let (func, ty, params) = self.numeric_func_taking(export, args.len())?;
        let mut vals = Vec::with_capacity(args.len());
        for (i, (arg, param)) in args.iter().zip(&params).enumerate() {
            let n = i + 1;
            let val = convert(arg, param).map_err(|mismatch| {
                let signature = signature(export, &ty);
                SandboxError::BadArgument(match mismatch {
                    // i32, i64, f32 and f64 all take "an".
                    Mismatch::Type(t) => format!("{signature}, got an {t} as argument {n}"),
                    Mismatch::Value(why) => format!("{signature}; argument {n}: {why}"),
                })
            })?;
            vals.push(val);
        }
        self.call_func(func, &ty, vals).await
    }

    /// The numeric export `name`, checked to take `arity` arguments; with its parameter types.
    fn numeric_func_taking(
        &mut self,
        name: &str,
        arity: usize,
    ) -> Result<(Func, FuncType, Vec<ValType>), SandboxError> {
        let (func, ty) = self.numeric_func(name)?;
        let params: Vec<ValType> = ty.params().collect();
        if arity != params.len() {
            return Err(SandboxError::BadArgument(format!(
                "{}, got {}",
                signature(name, &ty),
                count(arity, "argument")
            )));
        }
        Ok((func, ty, params))
    }

    /// The export `name` if it is a function with only numeric parameters and results.
    fn numeric_func(&mut self, name: &str) -> Result<(Func, FuncType), SandboxError> {
        let func = self
            .instance
            .get_func(&mut self.store, name)
            .ok_or_else(|| SandboxError::NoSuchExport {
                name: name.to_string(),
                available: self.export_names(ExternKind::Func),
            })?;
        let ty = func.ty(&self.store);
        let numeric = self
            .module()
            .export(name)
            .is_some_and(|e| e.declared.is_numeric_func());
        if !numeric {
            return Err(SandboxError::BadArgument(format!(
                "{}, which cannot be called with plain numbers: only i32, i64, f32 and f64 \
                 parameters and results are supported",
                signature(name, &ty)
            )));
        }
        Ok((func, ty))
    }

    async fn call_func(
        &mut self,
        func: Func,
        ty: &FuncType,
        params: Vec<Val>,
    ) -> Result<Vec<WasmArg>, SandboxError> {
        let results = vec![Val::I32(0); ty.results().len()];
        let results = self
            .call_with(move |store, _| {
                Box::pin(async move {
                    let mut results = results;
                    func.call_async(store, &params, &mut results).await?;
                    Ok(results)
                })
            })
            .await?;
        results
            .iter()
            .map(|val| {
                WasmArg::from_val(val).ok_or_else(|| {
                    SandboxError::Other(format!("guest returned a non-numeric value {val:?}"))
                })
            })
            .collect()
    }
}

/// Why an argument does not fit its parameter.
enum Mismatch {
    /// A typed argument of another type.
    Type(ValType),
    /// A number that does not convert, and why.
    Value(String),
}

/// `add takes (i32, i32) -> i32`
fn signature(name: &str, ty: &FuncType) -> String {
    let types =
        |it: &mut dyn Iterator<Item = ValType>| it.map(|t| t.to_string()).collect::<Vec<_>>();
    rwc_api::module::signature(name, &types(&mut ty.params()), &types(&mut ty.results()))
}

fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `value` as an `f64`, if it is an integer of magnitude at most `limit` (at most 2^53,
/// so the conversion is exact).
fn exact_integer(value: Number, limit: u64) -> Option<f64> {
    let (magnitude, negative) = match value {
        Number::Int(v) => (v.unsigned_abs(), v < 0),
        Number::UInt(v) => (v, false),
        Number::Float(_) => return None,
    };
    if magnitude > limit.min(F64_EXACT) {
        return None;
    }
    #[allow(clippy::cast_precision_loss)]
    let m = magnitude as f64;
    Some(if negative { -m } else { m })
}

fn inexact(value: Number, ty: &ValType) -> String {
    format!("{value} is not exactly representable as {ty}")
}

/// Largest integer magnitudes `f32` and `f64` represent exactly.
const F32_EXACT: u64 = 1 << 24;
const F64_EXACT: u64 = 1 << 53;

fn coerce(value: Number, ty: &ValType) -> Result<WasmArg, String> {
    let doesnt_fit = || format!("{value} does not fit in {ty}");
    match ty {
        ValType::I32 => {
            let as_i32 = |v: i128| {
                i32::try_from(v).ok().or_else(|| {
                    u32::try_from(v)
                        .ok()
                        .map(|u| i32::from_ne_bytes(u.to_ne_bytes()))
                })
            };
            match value {
                Number::Int(v) => as_i32(v.into()),
                Number::UInt(v) => as_i32(v.into()),
                Number::Float(_) => {
                    return Err(format!("expected an integer for {ty}, got {value}"));
                }
            }
            .map(WasmArg::I32)
            .ok_or_else(doesnt_fit)
        }
        ValType::I64 => match value {
            Number::Int(v) => Ok(WasmArg::I64(v)),
            Number::UInt(v) => Ok(WasmArg::I64(i64::from_ne_bytes(v.to_ne_bytes()))),
            Number::Float(_) => Err(format!("expected an integer for {ty}, got {value}")),
        },
        ValType::F32 => match value {
            Number::Float(v) if v.is_finite() && v.abs() > f64::from(f32::MAX) => Err(doesnt_fit()),
            // Rounding to the nearest f32 is the conversion asked for; out-of-range
            // values were refused above.
            #[allow(clippy::cast_possible_truncation)]
            Number::Float(v) => Ok(WasmArg::F32(v as f32)),
            // Exact: an integer of at most 2^24 in magnitude is an f32 as it is.
            #[allow(clippy::cast_possible_truncation)]
            _ => exact_integer(value, F32_EXACT)
                .map(|f| WasmArg::F32(f as f32))
                .ok_or_else(|| inexact(value, ty)),
        },
        ValType::F64 => match value {
            Number::Float(v) => Ok(WasmArg::F64(v)),
            _ => exact_integer(value, F64_EXACT)
                .map(WasmArg::F64)
                .ok_or_else(|| inexact(value, ty)),
        },
        other => Err(format!("{other} parameters cannot be passed as numbers")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_display_as_they_were_written_and_honour_width() {
        assert_eq!(Number::Int(-5).to_string(), "-5");
        assert_eq!(Number::UInt(u64::MAX).to_string(), "18446744073709551615");
        assert_eq!(
            Number::Float(2.0).to_string(),
            "2.0",
            "a float stays a float"
        );
        assert_eq!(
            format!("{:>4}|{:<3}|", Number::Int(7), Number::UInt(8)),
            "   7|8  |"
        );
        assert_eq!(format!("{:>5}", Number::Float(0.5)), "  0.5");
    }

    #[test]
    fn integers_coerce_within_range() {
        let i32_ = ValType::I32;
        assert_eq!(
            WasmArg::coerce(Number::Int(-5), &i32_).unwrap(),
            WasmArg::I32(-5)
        );
        assert_eq!(
            WasmArg::coerce(Number::UInt(u64::from(u32::MAX)), &i32_).unwrap(),
            WasmArg::I32(-1),
            "u32 values are i32 bit patterns"
        );
        assert!(WasmArg::coerce(Number::Int(1 << 32), &i32_).is_err());
        assert!(WasmArg::coerce(Number::Int(i64::from(i32::MIN) - 1), &i32_).is_err());
        assert!(WasmArg::coerce(Number::Float(1.0), &i32_).is_err());
        assert_eq!(
            WasmArg::coerce(Number::UInt(u64::MAX), &ValType::I64).unwrap(),
            WasmArg::I64(-1)
        );
    }

    #[test]
    fn floats_take_floats_and_exact_integers() {
        assert_eq!(
            WasmArg::coerce(Number::Float(0.5), &ValType::F32).unwrap(),
            WasmArg::F32(0.5)
        );
        assert!(WasmArg::coerce(Number::Float(1e300), &ValType::F32).is_err());
        assert_eq!(
            WasmArg::coerce(Number::Int(-3), &ValType::F64).unwrap(),
            WasmArg::F64(-3.0)
        );
        assert_eq!(
            WasmArg::coerce(Number::UInt(1 << 24), &ValType::F32).unwrap(),
            WasmArg::F32(16_777_216.0)
        );
        assert!(WasmArg::coerce(Number::Int((1 << 24) + 1), &ValType::F32).is_err());
        assert!(WasmArg::coerce(Number::Int((1 << 53) + 1), &ValType::F64).is_err());
        assert_eq!(
            WasmArg::coerce(Number::Float(f64::INFINITY), &ValType::F32).unwrap(),
            WasmArg::F32(f32::INFINITY)
        );
    }

    #[test]
    fn signatures_read_like_the_docs() {
        let ty = FuncType::new(
            &wasmtime::Engine::default(),
            [ValType::I32, ValType::I32],
            [ValType::I32],
        );
        assert_eq!(signature("add", &ty), "add takes (i32, i32) -> i32");
        let ty = FuncType::new(&wasmtime::Engine::default(), [], []);
        assert_eq!(signature("run", &ty), "run takes () -> ()");
    }
}
