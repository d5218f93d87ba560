//! Uploaded modules: validation, compilation, and the memory and disk caches.
//!
//! A module is named by the lowercase hex SHA-256 of the bytes the client uploaded
//! (binary or WAT), so a client can ask whether the node already has it and skip the
//! upload. Compiled modules are kept in an LRU memory cache bounded by size and count,
//! and, with a `cache_dir`, serialized to disk so a restarted node does not compile them
//! again.
//!
//! A module is compiled for the sandbox's unmetered engine when it is loaded, and for
//! the fuel-metering engine only when an instance of it first asks for a fuel budget
//! (fuel checks slow the code down, so nobody pays for them unasked). That second
//! compilation needs the upload, so a [`LoadedModule`] keeps it, and the disk cache keeps
//! it beside the compiled artifacts.
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
use tokio::sync::OnceCell;
use wasmtime::{Engine, ExternType, InstancePre, Linker, Module, UnknownImportError};

use super::engine::{self, Metering};
use super::error::error_chain;
use super::{Sandbox, SandboxConfig, SandboxError, StoreState};

/// A loaded module, ready to instantiate. Shared (`Arc`) between the cache and the
/// instances made from it; evicting it from the cache does not affect those instances.
pub struct LoadedModule {
    id: String,
    exports: Vec<ExportInfo>,
    imports: Vec<ImportInfo>,
    /// The upload (its SHA-256 is `id`), kept to compile the fuel-metering variant.
    upload: Box<[u8]>,
    /// Compiled for the unmetered engine, at load.
    unmetered: Compiled,
    /// Compiled for the fuel-metering engine, when an instance first asks for fuel.
    fuel: OnceCell<Compiled>,
}

/// A module compiled for one of the sandbox's engines and pre-linked against that
/// engine's linker.
struct Compiled {
    module: Module,
    pre: InstancePre<StoreState>,
    /// Size of the compiled code in bytes.
    size: u64,
}

impl LoadedModule {
    /// The module's name: lowercase hex SHA-256 of the uploaded bytes.
    pub fn id(&self) -> &str {
        &self.id
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
        self.exports.iter().find(|e| e.name == name)
    }

    /// Everything the module imports, in declaration order.
    pub fn imports(&self) -> &[ImportInfo] {
        &self.imports
    }

    /// The compiled wasmtime module, for the sandbox's unmetered engine
    /// ([`Sandbox::engine`]).
    pub fn module(&self) -> &Module {
        &self.unmetered.module
    }

    /// Whether the module has been compiled with fuel metering too.
    pub fn has_fuel_variant(&self) -> bool {
        self.fuel.initialized()
    }

    /// What the memory cache counts for this module: its compiled code (both variants,
    /// once there are two) and the upload.
    fn cache_size(&self) -> u64 {
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
            .field("id", &self.id)
            .field("size", &self.size())
            .field("compiled_size", &self.compiled_size())
            .field("has_fuel_variant", &self.has_fuel_variant())
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
        if let Some(module) = self.load_from_disk(&id, Some(bytes)) {
            return Ok(module);
        }

        let unmetered = self.compile_for(Metering::Unmetered, bytes)?;
        let loaded = Arc::new(LoadedModule::new(id, bytes.into(), unmetered));
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
        self.load_from_disk(id, None)
    }

    /// The module pre-linked for the engine `metering` picks. The first time fuel
    /// metering is asked for, this compiles the module for the metering engine (or finds
    /// it in the disk cache), on a blocking thread; concurrent callers wait for that one
    /// compilation.
    pub(crate) async fn instance_pre(
        &self,
        module: &Arc<LoadedModule>,
        metering: Metering,
    ) -> Result<InstancePre<StoreState>, SandboxError> {
        let compiled = match metering {
            Metering::Unmetered => &module.unmetered,
            Metering::Fuel => {
                let compiled = module
                    .fuel
                    .get_or_try_init(|| self.fuel_variant(module))
                    .await?;
                // The module grew: let the memory cache account for it.
                self.inner.modules.memory().resize(module);
                compiled
            }
        };
        Ok(compiled.pre.clone())
    }

    /// Compiles `module` for the fuel-metering engine, or loads that from the disk cache.
    async fn fuel_variant(&self, module: &Arc<LoadedModule>) -> Result<Compiled, SandboxError> {
        let sandbox = self.clone();
        let module = Arc::clone(module);
        // If the caller gives up, the compilation still finishes (and reaches the disk
        // cache); the next caller starts another.
        tokio::task::spawn_blocking(move || {
            let cache = &sandbox.inner.modules;
            if let Some(disk) = &cache.disk {
                let side = sandbox.inner.side(Metering::Fuel);
                if let Some(artifact) =
                    disk.load_artifact(&side.engine, Metering::Fuel, module.id())
                {
                    match prelink(&side.linker, artifact) {
                        Ok(compiled) => {
                            cache.disk_cache_hits.fetch_add(1, Ordering::Relaxed);
                            return Ok(compiled);
                        }
                        Err(err) => tracing::warn!(
                            module = module.id(),
                            "cached fuel-metered module no longer links: {err}"
                        ),
                    }
                }
            }
            let compiled = sandbox.compile_for(Metering::Fuel, &module.upload)?;
            if let Some(disk) = &cache.disk {
                disk.store_artifact(module.id(), Metering::Fuel, &compiled.module);
            }
            Ok(compiled)
        })
        .await
        .map_err(|err| {
            SandboxError::Other(format!(
                "compiling the module with fuel metering failed: {err}"
            ))
        })?
    }

    /// Validates, compiles and pre-links an upload for one engine; counts a compile.
    fn compile_for(&self, metering: Metering, upload: &[u8]) -> Result<Compiled, SandboxError> {
        let side = self.inner.side(metering);
        let module = compile(&side.engine, upload)?;
        self.inner.modules.compiles.fetch_add(1, Ordering::Relaxed);
        prelink(&side.linker, module)
    }

    /// The module `id` from the disk cache, if it has the unmetered artifact and the
    /// upload (`upload` if the caller has it, else the cached copy).
    fn load_from_disk(&self, id: &str, upload: Option<&[u8]>) -> Option<Arc<LoadedModule>> {
        let cache = &self.inner.modules;
        let disk = cache.disk.as_ref()?;
        if !disk.artifact_path(id, Metering::Unmetered).exists() {
            return None;
        }
        let upload: Box<[u8]> = match upload {
            Some(bytes) => {
                if !disk.upload_path(id).exists() {
                    disk.store_upload(id, bytes);
                }
                bytes.into()
            }
            None => disk.load_upload(id)?,
        };
        let side = self.inner.side(Metering::Unmetered);
        let artifact = disk.load_artifact(&side.engine, Metering::Unmetered, id)?;
        match prelink(&side.linker, artifact) {
            Ok(unmetered) => {
                cache.disk_cache_hits.fetch_add(1, Ordering::Relaxed);
                let loaded = LoadedModule::new(id.to_string(), upload, unmetered);
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
    /// `unmetered` and `fuel` are the sandbox's engines, whose compatibility hashes keep
    /// their artifacts apart in the disk cache.
    pub(crate) fn new(
        config: &SandboxConfig,
        unmetered: &Engine,
        fuel: &Engine,
    ) -> Result<Self, SandboxError> {
        let disk = match &config.cache_dir {
            Some(dir) => Some(DiskCache::open(dir, unmetered, fuel)?),
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

/// Least-recently-used modules, bounded by total size ([`LoadedModule::cache_size`]) and
/// by count.
struct MemoryCache {
    entries: HashMap<String, CacheEntry>,
    /// Use stamp → id, oldest first.
    order: BTreeMap<u64, String>,
    next_stamp: u64,
    bytes: u64,
    max_bytes: u64,
    max_modules: usize,
}

struct CacheEntry {
    module: Arc<LoadedModule>,
    /// Last use.
    stamp: u64,
    /// What the entry adds to `MemoryCache::bytes`.
    bytes: u64,
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
        let entry = self.entries.get_mut(id)?;
        self.order.remove(&entry.stamp);
        entry.stamp = stamp;
        self.order.insert(stamp, id.to_string());
        self.next_stamp += 1;
        Some(Arc::clone(&entry.module))
    }

    /// Inserts `module` and evicts the least recently used modules over budget. Returns
    /// the cached module for that id: an earlier one if two loads raced.
    fn insert(&mut self, module: Arc<LoadedModule>) -> Arc<LoadedModule> {
        if let Some(existing) = self.get(module.id()) {
            return existing;
        }
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        let bytes = module.cache_size();
        self.bytes = self.bytes.saturating_add(bytes);
        self.order.insert(stamp, module.id().to_string());
        self.entries.insert(
            module.id().to_string(),
            CacheEntry {
                module: Arc::clone(&module),
                stamp,
                bytes,
            },
        );
        self.evict_over_budget();
        module
    }

    /// Counts `module` at its current size, if it is the one cached under its id (it may
    /// have been evicted, or replaced after an eviction), and evicts over budget.
    fn resize(&mut self, module: &Arc<LoadedModule>) {
        let Some(entry) = self.entries.get_mut(module.id()) else {
            return;
        };
        if !Arc::ptr_eq(&entry.module, module) {
            return;
        }
        let bytes = module.cache_size();
        self.bytes = self.bytes.saturating_sub(entry.bytes).saturating_add(bytes);
        entry.bytes = bytes;
        self.evict_over_budget();
    }

    fn evict_over_budget(&mut self) {
        while self.bytes > self.max_bytes || self.entries.len() > self.max_modules {
            let Some((_, id)) = self.order.pop_first() else {
                break;
            };
            if let Some(evicted) = self.entries.remove(&id) {
                self.bytes = self.bytes.saturating_sub(evicted.bytes);
            }
        }
    }
}

/// Files under `cache_dir`: per module, the upload as `<sha256>.upload` and one
/// compiled artifact per engine as `<sha256>-<engine compat hash>.cwasm` (the
/// fuel-metering one only once it has been compiled).
struct DiskCache {
    dir: PathBuf,
    unmetered_compat: String,
    fuel_compat: String,
}

impl DiskCache {
    fn open(dir: &Path, unmetered: &Engine, fuel: &Engine) -> Result<Self, SandboxError> {
        fs::create_dir_all(dir).map_err(|err| {
            SandboxError::Other(format!(
                "cannot create the module cache directory {}: {err}",
                dir.display()
            ))
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            unmetered_compat: engine::compatibility_hash(unmetered),
            fuel_compat: engine::compatibility_hash(fuel),
        })
    }

    fn artifact_path(&self, id: &str, metering: Metering) -> PathBuf {
        let compat = match metering {
            Metering::Unmetered => &self.unmetered_compat,
            Metering::Fuel => &self.fuel_compat,
        };
        self.dir.join(format!("{id}-{compat}.cwasm"))
    }

    fn upload_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.upload"))
    }

    /// The cached upload of module `id`, if there is one whose SHA-256 is `id`.
    /// `id` must already be checked to be a SHA-256 hex string (it becomes a file name).
    fn load_upload(&self, id: &str) -> Option<Box<[u8]>> {
        let path = self.upload_path(id);
        match fs::read(&path) {
            Ok(bytes) if hex::encode(Sha256::digest(&bytes)) == id => Some(bytes.into()),
            Ok(_) => {
                tracing::warn!(module = id, "discarding corrupt {}", path.display());
                let _ = fs::remove_file(&path);
                None
            }
            Err(err) => {
                tracing::warn!(
                    module = id,
                    "cached module has no upload ({err}); ignoring it"
                );
                None
            }
        }
    }

    /// The module `id` compiled for the `metering` engine, if there is a usable
    /// artifact. `id` must already be checked to be a SHA-256 hex string.
    #[allow(unsafe_code)]
    fn load_artifact(&self, engine: &Engine, metering: Metering, id: &str) -> Option<Module> {
        let artifact = self.artifact_path(id, metering);
        if !artifact.exists() {
            return None;
        }
        // SAFETY: `deserialize_file` maps the file as native code and trusts it to be a
        // wasmtime artifact. Artifacts in `cache_dir` are written only by
        // `store_artifact` below, from modules this node compiled itself from Wasm it
        // validated; a client can never place a file here (names are our SHA-256 of its
        // upload, and nothing it sends is written as an artifact). The directory must be
        // writable only by the node, as `SandboxConfig::cache_dir` documents. wasmtime
        // still checks the artifact's header and engine compatibility.
        match unsafe { Module::deserialize_file(engine, &artifact) } {
            Ok(module) => Some(module),
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

    /// Writes a freshly compiled `module` (upload and unmetered artifact) to the cache.
    fn store(&self, module: &LoadedModule) {
        // The upload goes first: an artifact is only used with one.
        if self.store_upload(module.id(), &module.upload) {
            self.store_artifact(module.id(), Metering::Unmetered, module.module());
        }
    }

    /// Writes the upload of module `id`; whether that worked. Failures are logged, not
    /// returned: the cache is an optimisation and the module is already usable.
    fn store_upload(&self, id: &str, upload: &[u8]) -> bool {
        match write_atomically(&self.upload_path(id), upload) {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(module = id, "cannot write the module cache: {err}");
                false
            }
        }
    }

    /// Writes the artifact of module `id` compiled for the `metering` engine. Failures
    /// are logged, not returned.
    fn store_artifact(&self, id: &str, metering: Metering, module: &Module) {
        let result = module
            .serialize()
            .map_err(|err| error_chain(&err))
            .and_then(|artifact| write_atomically(&self.artifact_path(id, metering), &artifact));
        if let Err(err) = result {
            tracing::warn!(module = id, "cannot write the module cache: {err}");
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

/// Links a compiled module against the linker of its engine.
fn prelink(linker: &Linker<StoreState>, module: Module) -> Result<Compiled, SandboxError> {
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

impl LoadedModule {
    /// Describes the module compiled as `unmetered`.
    fn new(id: String, upload: Box<[u8]>, unmetered: Compiled) -> Self {
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
        Self {
            id,
            exports,
            imports,
            upload,
            unmetered,
            fuel: OnceCell::new(),
        }
    }
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

    #[tokio::test]
    async fn the_fuel_variant_counts_against_the_memory_budget() {
        let sandbox = sandbox(SandboxConfig::default());
        let module = sandbox.load(ADD.as_bytes()).unwrap();
        let before = sandbox.stats().cached_bytes;
        assert_eq!(before, module.compiled_size() + module.size());
        let opts = crate::sandbox::InstanceOptions {
            fuel: Some(10),
            ..Default::default()
        };
        let instance = sandbox.instantiate(&module, opts).await.unwrap();
        assert_eq!(instance.fuel_remaining(), Some(10));
        let after = sandbox.stats().cached_bytes;
        assert!(after > before, "{after} > {before}");
        assert_eq!(after, module.cache_size());
    }

    #[test]
    fn a_corrupt_cached_upload_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let with_cache = || {
            sandbox(SandboxConfig {
                cache_dir: Some(dir.path().to_path_buf()),
                ..SandboxConfig::default()
            })
        };
        let id = with_cache().load(ADD.as_bytes()).unwrap().id().to_string();
        let upload = dir.path().join(format!("{id}.upload"));
        assert_eq!(fs::read(&upload).unwrap(), ADD.as_bytes());

        fs::write(&upload, b"(module)").unwrap();
        let sandbox = with_cache();
        assert!(
            sandbox.module(&id).is_none(),
            "its upload does not match its id"
        );
        assert!(!upload.exists(), "and is removed");
        // Uploading it again finds the compiled module and restores the upload.
        let module = sandbox.load(ADD.as_bytes()).unwrap();
        assert_eq!(module.id(), id);
        let stats = sandbox.stats();
        assert_eq!((stats.compiles, stats.disk_cache_hits), (0, 1));
        assert_eq!(fs::read(&upload).unwrap(), ADD.as_bytes());
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
