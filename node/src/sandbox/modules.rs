//! Uploaded modules: validation, compilation, and the memory and disk caches.
//!
//! A module is named by the lowercase hex SHA-256 of the bytes the client uploaded
//! (binary or WAT), so a client can ask whether the node already has it and skip the
//! upload. Compiled modules are kept in an LRU memory cache bounded by compiled size and
//! count, and, with a `cache_dir`, serialized to disk so a restarted node does not
//! compile them again.
//!
//! The disk cache is the only place the node loads native code it did not just compile:
//! those files were written by this node from Wasm it compiled itself. Nothing a client
//! sends is ever deserialized.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sha2::{Digest, Sha256};
use wasmtime::{Engine, ExternType, InstancePre, Linker, Module, UnknownImportError};

use super::error::error_chain;
use super::{Sandbox, SandboxConfig, SandboxError, StoreState, engine};

/// A compiled module, ready to instantiate. Shared (`Arc`) between the cache and the
/// instances made from it; evicting it from the cache does not affect those instances.
pub struct LoadedModule {
    id: String,
    size: u64,
    compiled_size: u64,
    exports: Vec<ExportInfo>,
    imports: Vec<ImportInfo>,
    module: Module,
    pre: InstancePre<StoreState>,
}

impl LoadedModule {
    /// The module's name: lowercase hex SHA-256 of the uploaded bytes.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Size of the upload in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Size of the compiled code in bytes (what the memory cache budget counts).
    pub fn compiled_size(&self) -> u64 {
        self.compiled_size
    }

    /// Everything the module exports, in declaration order.
    pub fn exports(&self) -> &[ExportInfo] {
        &self.exports
    }

    /// The export called `name`, if any.
    pub fn export(&self, name: &str) -> Option<&ExportInfo> {
        self.exports.iter().find(|e| e.name == name)
    }

    /// Everything the module imports, in declaration order.
    pub fn imports(&self) -> &[ImportInfo] {
        &self.imports
    }

    /// The compiled wasmtime module.
    pub fn module(&self) -> &Module {
        &self.module
    }

    /// The module pre-linked against the sandbox's linker.
    pub(crate) fn instance_pre(&self) -> &InstancePre<StoreState> {
        &self.pre
    }
}

impl fmt::Debug for LoadedModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedModule")
            .field("id", &self.id)
            .field("size", &self.size)
            .field("compiled_size", &self.compiled_size)
            .field("exports", &self.exports)
            .field("imports", &self.imports)
            .finish_non_exhaustive()
    }
}

/// What kind of thing an import or export is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExternKind {
    /// A function.
    Func,
    /// A linear memory.
    Memory,
    /// A table.
    Table,
    /// A global.
    Global,
    /// An exception tag.
    Tag,
}

impl fmt::Display for ExternKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Func => "func",
            Self::Memory => "memory",
            Self::Table => "table",
            Self::Global => "global",
            Self::Tag => "tag",
        })
    }
}

/// One export of a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportInfo {
    /// The export's name.
    pub name: String,
    /// What it is.
    pub kind: ExternKind,
    /// Parameter types of a function (`"i32"`, `"f64"`, `"(ref null extern)"`…); empty
    /// for other kinds.
    pub params: Vec<String>,
    /// Result types of a function; for a global, its value type.
    pub results: Vec<String>,
    /// The whole type in WAT-like syntax, e.g. `(func (param i32 i32) (result i32))`.
    pub signature: String,
}

impl ExportInfo {
    /// Whether this is a function [`Instance::call`](super::Instance::call) can call:
    /// all its parameters and results are `i32`, `i64`, `f32` or `f64`.
    pub fn is_numeric_func(&self) -> bool {
        let numeric = |t: &String| matches!(t.as_str(), "i32" | "i64" | "f32" | "f64");
        self.kind == ExternKind::Func
            && self.params.iter().all(numeric)
            && self.results.iter().all(numeric)
    }
}

/// One import of a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportInfo {
    /// The module it is imported from, e.g. `wasi_snapshot_preview1`.
    pub module: String,
    /// The imported item's name.
    pub name: String,
    /// What it is.
    pub kind: ExternKind,
    /// The expected type in WAT-like syntax.
    pub signature: String,
}

impl Sandbox {
    /// Loads an uploaded module (Wasm binary or WAT text): checks its size, then returns
    /// the cached compiled module for the same bytes or validates, compiles and caches it.
    ///
    /// Compiling is CPU-bound and can take a while for big modules: from async code, call
    /// this through `tokio::task::spawn_blocking`.
    pub fn load(&self, bytes: &[u8]) -> Result<Arc<LoadedModule>, SandboxError> {
        let cache = &self.inner.modules;
        let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if size > cache.max_module_bytes {
            return Err(SandboxError::TooLarge {
                size,
                limit: cache.max_module_bytes,
            });
        }
        let id = hex::encode(Sha256::digest(bytes));

        if let Some(module) = cache.memory().get(&id) {
            cache.memory_cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(module);
        }
        if let Some(module) = self.load_from_disk(&id) {
            return Ok(module);
        }

        let module = compile(&self.inner.engine, bytes)?;
        cache.compiles.fetch_add(1, Ordering::Relaxed);
        let loaded = Arc::new(link(&self.inner.linker, id, size, module)?);
        if let Some(disk) = &cache.disk {
            disk.store(&loaded);
        }
        Ok(cache.memory().insert(loaded))
    }

    /// The module named `id` if the node has it, in memory or in the disk cache.
    ///
    /// `id` usually comes from a client; anything that is not a SHA-256 hex string is
    /// simply not found.
    pub fn module(&self, id: &str) -> Option<Arc<LoadedModule>> {
        if !is_module_id(id) {
            return None;
        }
        let cache = &self.inner.modules;
        if let Some(module) = cache.memory().get(id) {
            cache.memory_cache_hits.fetch_add(1, Ordering::Relaxed);
            return Some(module);
        }
        self.load_from_disk(id)
    }

    fn load_from_disk(&self, id: &str) -> Option<Arc<LoadedModule>> {
        let cache = &self.inner.modules;
        let (module, size) = cache.disk.as_ref()?.load(&self.inner.engine, id)?;
        match link(&self.inner.linker, id.to_string(), size, module) {
            Ok(loaded) => {
                cache.disk_cache_hits.fetch_add(1, Ordering::Relaxed);
                Some(cache.memory().insert(Arc::new(loaded)))
            }
            Err(err) => {
                // Only possible if the node's host functions changed since the artifact
                // was written; compiling again gives the client the proper error.
                tracing::warn!(module = id, "cached module no longer links: {err}");
                None
            }
        }
    }
}

/// Caches and counters of a sandbox.
pub(crate) struct ModuleCache {
    max_module_bytes: u64,
    memory: Mutex<MemoryCache>,
    disk: Option<DiskCache>,
    compiles: AtomicU64,
    disk_cache_hits: AtomicU64,
    memory_cache_hits: AtomicU64,
}

/// Snapshot of [`ModuleCache`] counters.
pub(crate) struct CacheStats {
    pub(crate) compiles: u64,
    pub(crate) disk_cache_hits: u64,
    pub(crate) memory_cache_hits: u64,
    pub(crate) cached_modules: usize,
    pub(crate) cached_bytes: u64,
}

impl ModuleCache {
    pub(crate) fn new(config: &SandboxConfig, engine: &Engine) -> Result<Self, SandboxError> {
        let disk = match &config.cache_dir {
            Some(dir) => Some(DiskCache::open(dir, engine)?),
            None => None,
        };
        Ok(Self {
            max_module_bytes: config.max_module_bytes,
            memory: Mutex::new(MemoryCache::new(
                config.memory_cache_bytes,
                config.memory_cache_modules,
            )),
            disk,
            compiles: AtomicU64::new(0),
            disk_cache_hits: AtomicU64::new(0),
            memory_cache_hits: AtomicU64::new(0),
        })
    }

    pub(crate) fn stats(&self) -> CacheStats {
        let memory = self.memory();
        CacheStats {
            compiles: self.compiles.load(Ordering::Relaxed),
            disk_cache_hits: self.disk_cache_hits.load(Ordering::Relaxed),
            memory_cache_hits: self.memory_cache_hits.load(Ordering::Relaxed),
            cached_modules: memory.entries.len(),
            cached_bytes: memory.bytes,
        }
    }

    fn memory(&self) -> MutexGuard<'_, MemoryCache> {
        // Every update of the cache completes without panicking, so a poisoned lock
        // still guards a consistent cache.
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Least-recently-used modules, bounded by total compiled size and by count.
struct MemoryCache {
    entries: HashMap<String, (Arc<LoadedModule>, u64)>,
    /// Use stamp → id, oldest first.
    order: BTreeMap<u64, String>,
    next_stamp: u64,
    bytes: u64,
    max_bytes: u64,
    max_modules: usize,
}

impl MemoryCache {
    fn new(max_bytes: u64, max_modules: usize) -> Self {
        Self {
            entries: HashMap::new(),
            order: BTreeMap::new(),
            next_stamp: 0,
            bytes: 0,
            max_bytes,
            max_modules,
        }
    }

    fn get(&mut self, id: &str) -> Option<Arc<LoadedModule>> {
        let stamp = self.next_stamp;
        let (module, used) = self.entries.get_mut(id)?;
        self.order.remove(used);
        *used = stamp;
        self.order.insert(stamp, id.to_string());
        self.next_stamp += 1;
        Some(Arc::clone(module))
    }

    /// Inserts `module` and evicts the least recently used modules over budget. Returns
    /// the cached module for that id: an earlier one if two loads raced.
    fn insert(&mut self, module: Arc<LoadedModule>) -> Arc<LoadedModule> {
        if let Some(existing) = self.get(module.id()) {
            return existing;
        }
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        self.bytes = self.bytes.saturating_add(module.compiled_size());
        self.order.insert(stamp, module.id().to_string());
        self.entries
            .insert(module.id().to_string(), (Arc::clone(&module), stamp));
        while self.bytes > self.max_bytes || self.entries.len() > self.max_modules {
            let Some((_, id)) = self.order.pop_first() else {
                break;
            };
            if let Some((evicted, _)) = self.entries.remove(&id) {
                self.bytes = self.bytes.saturating_sub(evicted.compiled_size());
            }
        }
        module
    }
}

/// Compiled artifacts under `cache_dir`, one `<sha256>-<engine compat hash>.cwasm` per
/// module plus a `.size` file holding the upload's size.
struct DiskCache {
    dir: PathBuf,
    compat: String,
}

impl DiskCache {
    fn open(dir: &Path, engine: &Engine) -> Result<Self, SandboxError> {
        fs::create_dir_all(dir).map_err(|err| {
            SandboxError::Other(format!(
                "cannot create the module cache directory {}: {err}",
                dir.display()
            ))
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            compat: engine::compatibility_hash(engine),
        })
    }

    fn artifact_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}-{}.cwasm", self.compat))
    }

    fn size_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}-{}.size", self.compat))
    }

    /// The cached module `id` and its upload size, if there is a usable artifact.
    /// `id` must already be checked to be a SHA-256 hex string (it becomes a file name).
    #[allow(unsafe_code)]
    fn load(&self, engine: &Engine, id: &str) -> Option<(Module, u64)> {
        let artifact = self.artifact_path(id);
        if !artifact.exists() {
            return None;
        }
        let size = fs::read_to_string(self.size_path(id))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok());
        let Some(size) = size else {
            tracing::warn!(module = id, "cached module has no size record; ignoring it");
            return None;
        };
        // SAFETY: `deserialize_file` maps the file as native code and trusts it to be a
        // wasmtime artifact. Files in `cache_dir` are written only by `store` below, from
        // modules this node compiled itself from Wasm it validated; a client can never
        // place a file here (names are our SHA-256 of its upload, and nothing it sends is
        // written as an artifact). The directory must be writable only by the node, as
        // `SandboxConfig::cache_dir` documents. wasmtime still checks the artifact's
        // header and engine compatibility.
        match unsafe { Module::deserialize_file(engine, &artifact) } {
            Ok(module) => Some((module, size)),
            Err(err) => {
                tracing::warn!(
                    module = id,
                    "discarding unusable cached module {}: {}",
                    artifact.display(),
                    error_chain(&err)
                );
                let _ = fs::remove_file(&artifact);
                None
            }
        }
    }

    /// Writes `module` to the cache. Failures are logged, not returned: the cache is an
    /// optimisation and the module is already usable.
    fn store(&self, module: &LoadedModule) {
        let result = module
            .module()
            .serialize()
            .map_err(|err| error_chain(&err))
            .and_then(|artifact| {
                // The size record goes first: an artifact is only used with one.
                write_atomically(
                    &self.size_path(module.id()),
                    module.size().to_string().as_bytes(),
                )?;
                write_atomically(&self.artifact_path(module.id()), &artifact)
            });
        if let Err(err) = result {
            tracing::warn!(module = module.id(), "cannot write the module cache: {err}");
        }
    }
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`, so a
/// reader never sees a half-written file.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(
        ".tmp{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let tmp = PathBuf::from(tmp_name);
    let write = || -> std::io::Result<()> {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|err| {
        let _ = fs::remove_file(&tmp);
        format!("{}: {err}", path.display())
    })
}

/// Whether `id` looks like a module id: 64 lowercase hex digits.
fn is_module_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Parses (WAT), validates and compiles an upload.
fn compile(engine: &Engine, bytes: &[u8]) -> Result<Module, SandboxError> {
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

/// Links a compiled module against the sandbox's linker and describes it.
fn link(
    linker: &Linker<StoreState>,
    id: String,
    size: u64,
    module: Module,
) -> Result<LoadedModule, SandboxError> {
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
                name: export.name().to_string(),
                kind,
                params,
                results,
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
    let range = module.image_range();
    let compiled_size =
        u64::try_from(range.end.addr().saturating_sub(range.start.addr())).unwrap_or(u64::MAX);
    Ok(LoadedModule {
        id,
        size,
        compiled_size,
        exports,
        imports,
        module,
        pre,
    })
}

struct Described {
    kind: ExternKind,
    params: Vec<String>,
    results: Vec<String>,
    signature: String,
}

/// Describes an extern type in WAT-like syntax.
fn describe(ty: &ExternType) -> Described {
    let limits = |min: u64, max: Option<u64>| match max {
        Some(max) => format!("{min} {max}"),
        None => min.to_string(),
    };
    let func = |f: &wasmtime::FuncType, keyword: &str| {
        let params: Vec<String> = f.params().map(|t| t.to_string()).collect();
        let results: Vec<String> = f.results().map(|t| t.to_string()).collect();
        let mut signature = format!("({keyword}");
        if !params.is_empty() {
            signature.push_str(&format!(" (param {})", params.join(" ")));
        }
        if !results.is_empty() {
            signature.push_str(&format!(" (result {})", results.join(" ")));
        }
        signature.push(')');
        (params, results, signature)
    };
    match ty {
        ExternType::Func(f) => {
            let (params, results, signature) = func(f, "func");
            Described {
                kind: ExternKind::Func,
                params,
                results,
                signature,
            }
        }
        ExternType::Memory(m) => {
            let index = if m.is_64() { "i64 " } else { "" };
            let shared = if m.is_shared() { " shared" } else { "" };
            Described {
                kind: ExternKind::Memory,
                params: Vec::new(),
                results: Vec::new(),
                signature: format!(
                    "(memory {index}{}{shared})",
                    limits(m.minimum(), m.maximum())
                ),
            }
        }
        ExternType::Table(t) => {
            let index = if t.is_64() { "i64 " } else { "" };
            Described {
                kind: ExternKind::Table,
                params: Vec::new(),
                results: Vec::new(),
                signature: format!(
                    "(table {index}{} {})",
                    limits(t.minimum(), t.maximum()),
                    t.element()
                ),
            }
        }
        ExternType::Global(g) => {
            let content = g.content().to_string();
            let signature = match g.mutability() {
                wasmtime::Mutability::Var => format!("(global (mut {content}))"),
                wasmtime::Mutability::Const => format!("(global {content})"),
            };
            Described {
                kind: ExternKind::Global,
                params: Vec::new(),
                results: vec![content],
                signature,
            }
        }
        ExternType::Tag(t) => {
            let (params, results, signature) = func(t.ty(), "tag");
            Described {
                kind: ExternKind::Tag,
                params,
                results,
                signature,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox(config: SandboxConfig) -> Sandbox {
        Sandbox::new(SandboxConfig {
            max_live_instances: 2,
            ..config
        })
        .unwrap()
    }

    const ADD: &str = r#"(module
        (memory (export "memory") 1)
        (global (export "counter") (mut i64) (i64.const 0))
        (func $add (export "add") (param i32 i32) (result i32)
            local.get 0 local.get 1 i32.add)
        (func (export "scale") (param f64) (result f64)
            local.get 0 f64.const 2 f64.mul))"#;

    #[test]
    fn id_is_sha256_of_the_upload_and_stable() {
        let sandbox = sandbox(SandboxConfig::default());
        let module = sandbox.load(ADD.as_bytes()).unwrap();
        assert_eq!(module.id(), hex::encode(Sha256::digest(ADD.as_bytes())));
        assert_eq!(module.size(), u64::try_from(ADD.len()).unwrap());
        assert!(module.compiled_size() > 0);

        let again = sandbox.load(ADD.as_bytes()).unwrap();
        assert!(Arc::ptr_eq(&module, &again));
        let stats = sandbox.stats();
        assert_eq!((stats.compiles, stats.memory_cache_hits), (1, 1));
        assert!(Arc::ptr_eq(&sandbox.module(module.id()).unwrap(), &module));
    }

    #[test]
    fn binary_and_text_both_load_under_their_own_ids() {
        let sandbox = sandbox(SandboxConfig::default());
        let binary = wat::parse_str(ADD).unwrap();
        let from_text = sandbox.load(ADD.as_bytes()).unwrap();
        let from_binary = sandbox.load(&binary).unwrap();
        assert_ne!(from_text.id(), from_binary.id());
        assert_eq!(from_text.exports(), from_binary.exports());
    }

    #[test]
    fn exports_are_listed_with_signatures() {
        let sandbox = sandbox(SandboxConfig::default());
        let module = sandbox.load(ADD.as_bytes()).unwrap();
        let names: Vec<_> = module.exports().iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["memory", "counter", "add", "scale"]);

        let add = module.export("add").unwrap();
        assert_eq!(add.kind, ExternKind::Func);
        assert_eq!(add.params, ["i32", "i32"]);
        assert_eq!(add.results, ["i32"]);
        assert_eq!(add.signature, "(func (param i32 i32) (result i32))");
        assert!(add.is_numeric_func());

        let memory = module.export("memory").unwrap();
        assert_eq!(memory.kind, ExternKind::Memory);
        assert_eq!(memory.signature, "(memory 1)");
        assert!(!memory.is_numeric_func());

        let counter = module.export("counter").unwrap();
        assert_eq!(counter.signature, "(global (mut i64))");
        assert!(module.imports().is_empty());
    }

    #[test]
    fn imports_are_listed() {
        let sandbox = sandbox(SandboxConfig::default());
        let module = sandbox
            .load(
                br#"(module (import "wasi_snapshot_preview1" "proc_exit"
                        (func (param i32))))"#,
            )
            .unwrap();
        assert_eq!(
            module.imports(),
            [ImportInfo {
                module: "wasi_snapshot_preview1".to_string(),
                name: "proc_exit".to_string(),
                kind: ExternKind::Func,
                signature: "(func (param i32))".to_string(),
            }]
        );
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

    #[test]
    fn lru_evicts_by_count_and_reloads() {
        let sandbox = sandbox(SandboxConfig {
            memory_cache_modules: 2,
            ..SandboxConfig::default()
        });
        let wat = |n: u32| format!("(module (func (export \"f\") (result i32) i32.const {n}))");
        let first = sandbox.load(wat(1).as_bytes()).unwrap();
        sandbox.load(wat(2).as_bytes()).unwrap();
        // Touch the first so the second is the least recently used.
        assert!(sandbox.module(first.id()).is_some());
        sandbox.load(wat(3).as_bytes()).unwrap();
        assert_eq!(sandbox.stats().cached_modules, 2);
        assert!(sandbox.module(first.id()).is_some());
        let second_id = hex::encode(Sha256::digest(wat(2).as_bytes()));
        assert!(sandbox.module(&second_id).is_none(), "evicted");
        // An evicted module can be loaded again.
        sandbox.load(wat(2).as_bytes()).unwrap();
        assert_eq!(sandbox.stats().compiles, 4);
    }

    #[test]
    fn lru_evicts_by_compiled_size() {
        let sandbox = sandbox(SandboxConfig {
            memory_cache_bytes: 1,
            ..SandboxConfig::default()
        });
        let module = sandbox.load(ADD.as_bytes()).unwrap();
        // Over budget on its own: returned, but not kept.
        assert_eq!(sandbox.stats().cached_modules, 0);
        assert_eq!(sandbox.stats().cached_bytes, 0);
        assert!(sandbox.module(module.id()).is_none());
    }

    #[test]
    fn module_ids_are_checked_before_touching_the_disk() {
        assert!(is_module_id(&"ab".repeat(32)));
        assert!(!is_module_id(&"AB".repeat(32)));
        assert!(!is_module_id("../../etc/passwd"));
        let dir = tempfile::tempdir().unwrap();
        let sandbox = sandbox(SandboxConfig {
            cache_dir: Some(dir.path().to_path_buf()),
            ..SandboxConfig::default()
        });
        assert!(sandbox.module("../../etc/passwd").is_none());
        assert!(sandbox.module(&"0".repeat(64)).is_none());
    }
}
