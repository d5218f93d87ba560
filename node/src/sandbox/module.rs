//! A loaded module: an upload, validated and compiled, ready to instantiate.
//!
//! A module is named by the lowercase hex SHA-256 of the bytes the client uploaded
//! (binary or WAT), so a client can ask whether the node already has it and skip the
//! upload.
//!
//! A module is compiled for the sandbox's unmetered engine when it is loaded, and for
//! the fuel-metering engine only when an instance of it first asks for a fuel budget
//! (fuel checks slow the code down, so nobody pays for them unasked). That second
//! compilation needs the upload, so a [`LoadedModule`] keeps it.

use std::fmt;

use tokio::sync::OnceCell;
use wasmtime::{InstancePre, Module};

use rwc_api::module::{DeclaredExport, ExportSignature};

use super::StoreState;
use super::description::{Described, ExportInfo, ImportInfo, describe};

/// A loaded module, ready to instantiate. Shared (`Arc`) between the cache and the
/// instances made from it; evicting it from the cache does not affect those instances.
pub struct LoadedModule {
    hash: String,
    exports: Vec<ExportInfo>,
    imports: Vec<ImportInfo>,
    /// The signatures the module records for its rich exports (`docs/abi.md`).
    signatures: Vec<ExportSignature>,
    /// The upload (its SHA-256 is `hash`), kept to compile the fuel-metering variant.
    pub(super) upload: Box<[u8]>,
    /// Compiled for the unmetered engine, at load.
    pub(super) unmetered: Compiled,
    /// Compiled for the fuel-metering engine, when an instance first asks for fuel.
    pub(super) fuel: OnceCell<Compiled>,
}

/// A module compiled for one of the sandbox's engines and pre-linked against that
/// engine's linker.
pub(super) struct Compiled {
    pub(super) module: Module,
    pub(super) pre: InstancePre<StoreState>,
    /// Size of the compiled code in bytes.
    pub(super) size: u64,
}

impl LoadedModule {
    /// The module's name: lowercase hex SHA-256 of the uploaded bytes.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The signatures and docs the module records for its rich exports, in the custom
    /// section the guest SDK writes (`docs/abi.md`); empty if it records none.
    pub fn signatures(&self) -> &[ExportSignature] {
        &self.signatures
    }

    /// Size of the upload in bytes.
    pub fn size(&self) -> u64 {
        u64::try_from(self.upload.len()).unwrap_or(u64::MAX)
    }

    /// Size of the compiled code (without fuel metering) in bytes.
    pub fn compiled_size(&self) -> u64 {
        self.unmetered.size
    }

    /// Everything the module exports, in declaration order.
    pub fn exports(&self) -> &[ExportInfo] {
        &self.exports
    }

    /// The export called `name`, if any.
    pub fn export(&self, name: &str) -> Option<&ExportInfo> {
        self.exports.iter().find(|e| e.name() == name)
    }

    /// Everything the module imports, in declaration order.
    pub fn imports(&self) -> &[ImportInfo] {
        &self.imports
    }

    /// The compiled wasmtime module, for the sandbox's unmetered engine
    /// ([`Sandbox::engine`](super::Sandbox::engine)).
    pub fn module(&self) -> &Module {
        &self.unmetered.module
    }

    /// Whether the module has been compiled with fuel metering too.
    pub fn has_fuel_variant(&self) -> bool {
        self.fuel.initialized()
    }

    /// What the memory cache counts for this module: its compiled code (both variants,
    /// once there are two) and the upload.
    pub(super) fn cache_size(&self) -> u64 {
        let fuel = self.fuel.get().map_or(0, |compiled| compiled.size);
        self.unmetered
            .size
            .saturating_add(fuel)
            .saturating_add(self.size())
    }
}

impl fmt::Debug for LoadedModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedModule")
            .field("hash", &self.hash)
            .field("size", &self.size())
            .field("compiled_size", &self.compiled_size())
            .field("has_fuel_variant", &self.has_fuel_variant())
            .field("exports", &self.exports)
            .field("imports", &self.imports)
            .finish_non_exhaustive()
    }
}

impl LoadedModule {
    /// Describes the module compiled as `unmetered`.
    pub(super) fn new(hash: String, upload: Box<[u8]>, unmetered: Compiled) -> Self {
        // The upload was validated and compiled: a section that does not read costs only
        // the signatures, which then show as unknown.
        let signatures = match rwc_api::describe::signatures(&upload) {
            Ok((records, problems)) => {
                for problem in problems {
                    tracing::warn!(module = %hash, %problem, "ignoring a signature record");
                }
                records
            }
            Err(e) => {
                tracing::warn!(module = %hash, error = %e, "cannot read the module's signatures");
                Vec::new()
            }
        };
        let module = &unmetered.module;
        let exports = module
            .exports()
            .map(|export| {
                let Described {
                    kind,
                    params,
                    results,
                    signature,
                } = describe(&export.ty());
                ExportInfo {
                    declared: DeclaredExport {
                        name: export.name().to_string(),
                        kind,
                        params,
                        results,
                    },
                    signature,
                }
            })
            .collect();
        let imports = module
            .imports()
            .map(|import| {
                let described = describe(&import.ty());
                ImportInfo {
                    module: import.module().to_string(),
                    name: import.name().to_string(),
                    kind: described.kind,
                    signature: described.signature,
                }
            })
            .collect();
        Self {
            hash,
            exports,
            imports,
            signatures,
            upload,
            unmetered,
            fuel: OnceCell::new(),
        }
    }
}
