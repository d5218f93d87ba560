//! Turning an upload into native code: WAT to binary, validation, compilation, and
//! pre-linking against the node's host functions.

use std::borrow::Cow;
use std::sync::atomic::Ordering;

use wasmtime::{Engine, Linker, Module, UnknownImportError};

use super::description::describe;
use super::engine::Metering;
use super::error::error_chain;
use super::module::Compiled;
use super::{Sandbox, SandboxError, StoreState};

impl Sandbox {
    /// Validates, compiles and pre-links an upload for one engine; counts a compile.
    pub(super) fn compile_for(
        &self,
        metering: Metering,
        upload: &[u8],
    ) -> Result<Compiled, SandboxError> {
        let side = self.inner.side(metering);
        let module = compile(&side.engine, upload)?;
        self.inner.modules.compiles.fetch_add(1, Ordering::Relaxed);
        prelink(&side.linker, module)
    }
}

/// Whether `hash` looks like a module hash: 64 lowercase hex digits.
pub(super) fn is_module_hash(hash: &str) -> bool {
    hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Parses (WAT), validates and compiles an upload.
pub(super) fn compile(engine: &Engine, bytes: &[u8]) -> Result<Module, SandboxError> {
    let binary: Cow<'_, [u8]> = if bytes.starts_with(b"\0asm") {
        Cow::Borrowed(bytes)
    } else {
        wat::parse_bytes(bytes).map_err(|err| SandboxError::Invalid {
            message: format!("not a Wasm binary (no \\0asm header) and not valid WAT: {err}"),
        })?
    };
    Module::validate(engine, &binary).map_err(|err| SandboxError::Invalid {
        message: error_chain(&err),
    })?;
    // The module is valid, so what is left to fail is this node's configuration (for
    // example a minimum memory over the pool's cap).
    Module::from_binary(engine, &binary).map_err(|err| SandboxError::Unsupported {
        message: error_chain(&err),
    })
}

/// Links a compiled module against the linker of its engine.
pub(super) fn prelink(
    linker: &Linker<StoreState>,
    module: Module,
) -> Result<Compiled, SandboxError> {
    let pre = linker.instantiate_pre(&module).map_err(|err| {
        match err.downcast_ref::<UnknownImportError>() {
            Some(missing) => SandboxError::MissingImport {
                module: missing.module().to_string(),
                name: missing.name().to_string(),
                ty: describe(&missing.ty()).signature,
            },
            None => SandboxError::Unsupported {
                message: error_chain(&err),
            },
        }
    })?;
    let range = module.image_range();
    let size =
        u64::try_from(range.end.addr().saturating_sub(range.start.addr())).unwrap_or(u64::MAX);
    Ok(Compiled { module, pre, size })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::SandboxConfig;
    use crate::sandbox::test_support::{ADD, sandbox};

    #[test]
    fn binary_and_text_both_load_under_their_own_hashes() {
        let sandbox = sandbox(SandboxConfig::default());
        let binary = wat::parse_str(ADD).unwrap();
        let from_text = sandbox.load(ADD.as_bytes()).unwrap();
        let from_binary = sandbox.load(&binary).unwrap();
        assert_ne!(from_text.hash(), from_binary.hash());
        assert_eq!(from_text.exports(), from_binary.exports());
    }

    #[test]
    fn oversized_upload_is_rejected_before_parsing() {
        let sandbox = sandbox(SandboxConfig {
            max_module_bytes: 16,
            ..SandboxConfig::default()
        });
        // Garbage: had it been parsed, this would be `Invalid`.
        let err = sandbox.load(&[0xff; 17]).unwrap_err();
        assert!(
            matches!(
                err,
                SandboxError::TooLarge {
                    size: 17,
                    limit: 16
                }
            ),
            "{err:?}"
        );
        assert_eq!(sandbox.stats().compiles, 0);
    }

    #[test]
    fn garbage_and_bad_wat_are_invalid() {
        let sandbox = sandbox(SandboxConfig::default());
        let err = sandbox.load(b"\0asm\x01\0\0\0\xff").unwrap_err();
        assert!(matches!(err, SandboxError::Invalid { .. }), "{err:?}");
        let err = sandbox.load(b"(module (func (result i32)))").unwrap_err();
        assert!(matches!(err, SandboxError::Invalid { .. }), "{err:?}");
        let err = sandbox.load(b"(module (fnuc))").unwrap_err();
        match err {
            SandboxError::Invalid { message } => assert!(message.contains("WAT"), "{message}"),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn missing_import_is_named() {
        let sandbox = sandbox(SandboxConfig::default());
        let err = sandbox
            .load(br#"(module (import "env" "foo" (func (param i32))))"#)
            .unwrap_err();
        assert!(
            err.to_string().starts_with(
                "module imports env::foo (func (param i32)), which this node does not provide"
            ),
            "{err}"
        );
        assert!(matches!(err, SandboxError::MissingImport { .. }));
    }

    #[test]
    fn memory_over_the_pool_cap_is_unsupported() {
        let sandbox = sandbox(SandboxConfig {
            max_memory: 1 << 20,
            ..SandboxConfig::default()
        });
        // 32 pages = 2 MiB initial memory, over the 1 MiB cap.
        let err = sandbox.load(b"(module (memory 32))").unwrap_err();
        assert!(matches!(err, SandboxError::Unsupported { .. }), "{err:?}");
    }
}
