//! The disk cache: compiled artifacts kept across restarts, with the uploads they came
//! from, within a byte budget.
//!
//! This is the only place the node loads native code it did not just compile, and the
//! node's only `unsafe`: those files were written by this node from Wasm it compiled
//! itself. Nothing a client sends is ever deserialized.
//!
//! - **Budget.** The files count against [`SandboxConfig::disk_cache_bytes`]; writing one
//!   first evicts the least recently used modules (all their files) to make room
//!   ([`budget`](super::budget)). Files found at start are indexed oldest first, by
//!   modification time, and leftovers of interrupted writes are removed.
//! - **Atomic writes.** Each file is written to a temporary name, synced, then renamed
//!   into place, so no reader ever sees half a file.
//! - **Integrity.** An artifact file is `ARTIFACT_MAGIC`, the SHA-256 of the wasmtime
//!   artifact, then the artifact; it is read whole, checked, then deserialized from memory
//!   (never mapped, so a later change to the file cannot reach loaded code). A corrupt or
//!   truncated artifact is deleted and the module compiled again, never trusted; an upload
//!   is checked against its hash (its name). Wasmtime's own checks (header, engine
//!   compatibility) still run on top.
//! - **A full disk** (or any failed write) is a logged warning: the module stays in the
//!   memory cache and the node goes on serving it.
//!
//! [`SandboxConfig::disk_cache_bytes`]: crate::sandbox::SandboxConfig::disk_cache_bytes

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

use super::budget::{Budget, TooBig};
use crate::sandbox::compile::is_module_hash;
use crate::sandbox::engine::{self, Metering};
use crate::sandbox::error::error_chain;
use crate::sandbox::{LoadedModule, SandboxError};

/// The first bytes of an artifact file, before the SHA-256 of the artifact.
const ARTIFACT_MAGIC: &[u8; 8] = b"rwc-art1";
/// Length of the header of an artifact file: magic and SHA-256.
const ARTIFACT_HEADER: usize = ARTIFACT_MAGIC.len() + 32;
/// What the temporary name of a file being written contains.
const TMP_MARK: &str = ".tmp";

/// Counts of a disk cache, for `info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiskCacheStats {
    /// Bytes the cache's files take.
    pub bytes: u64,
    /// Modules evicted to stay within the budget.
    pub evictions: u64,
    /// Files found corrupt or truncated (deleted; the module is compiled again).
    pub corrupt: u64,
    /// Writes that failed (a full disk, say); the module stayed in memory.
    pub write_failures: u64,
}

/// Files under `cache_dir`: per module, the upload as `<sha256>.upload` and one
/// compiled artifact per engine as `<sha256>-<engine compat hash>.cwasm` (the
/// fuel-metering one only once it has been compiled).
pub(super) struct DiskCache {
    dir: PathBuf,
    unmetered_compat: String,
    fuel_compat: String,
    budget: Mutex<Budget>,
    corrupt: AtomicU64,
    write_failures: AtomicU64,
}

impl DiskCache {
    /// Opens (creating it if need be) the cache in `dir`, holding at most `max_bytes`.
    pub(super) fn open(
        dir: &Path,
        unmetered: &Engine,
        fuel: &Engine,
        max_bytes: u64,
    ) -> Result<Self, SandboxError> {
        fs::create_dir_all(dir).map_err(|err| {
            SandboxError::Other(format!(
                "cannot create the module cache directory {}: {err}",
                dir.display()
            ))
        })?;
        let cache = Self {
            dir: dir.to_path_buf(),
            unmetered_compat: engine::compatibility_hash(unmetered),
            fuel_compat: engine::compatibility_hash(fuel),
            budget: Mutex::new(Budget::new(max_bytes)),
            corrupt: AtomicU64::new(0),
            write_failures: AtomicU64::new(0),
        };
        cache.index()?;
        Ok(cache)
    }

    pub(super) fn stats(&self) -> DiskCacheStats {
        let budget = self.budget();
        DiskCacheStats {
            bytes: budget.bytes(),
            evictions: budget.evictions(),
            corrupt: self.corrupt.load(Ordering::Relaxed),
            write_failures: self.write_failures.load(Ordering::Relaxed),
        }
    }

    /// Indexes the files already in the directory, oldest first, removes leftovers of
    /// interrupted writes, and evicts what is over the budget.
    fn index(&self) -> Result<(), SandboxError> {
        let entries = fs::read_dir(&self.dir).map_err(|err| {
            SandboxError::Other(format!(
                "cannot read the module cache directory {}: {err}",
                self.dir.display()
            ))
        })?;
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.contains(TMP_MARK) {
                let _ = fs::remove_file(&path);
                continue;
            }
            let Some(hash) = module_of(name) else {
                continue;
            };
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let modified = meta.modified().unwrap_or(std::time::SystemTime::UNIX_EPOCH);
            found.push((modified, hash.to_owned(), path, meta.len()));
        }
        found.sort_by_key(|f| f.0);
        let mut budget = self.budget();
        for (_, hash, path, size) in &found {
            budget.found(hash, path, *size);
        }
        let evicted = budget.trim();
        drop(budget);
        remove_all(&evicted);
        Ok(())
    }

    pub(super) fn artifact_path(&self, hash: &str, metering: Metering) -> PathBuf {
        let compat = match metering {
            Metering::Unmetered => &self.unmetered_compat,
            Metering::Fuel => &self.fuel_compat,
        };
        self.dir.join(format!("{hash}-{compat}.cwasm"))
    }

    pub(super) fn upload_path(&self, hash: &str) -> PathBuf {
        self.dir.join(format!("{hash}.upload"))
    }

    /// The cached upload of module `hash`, if there is one whose SHA-256 is `hash`.
    /// `hash` must already be checked to be a SHA-256 hex string (it becomes a file name).
    pub(super) fn load_upload(&self, hash: &str) -> Option<Box<[u8]>> {
        let path = self.upload_path(hash);
        match fs::read(&path) {
            Ok(bytes) if hex::encode(Sha256::digest(&bytes)) == hash => {
                self.budget().touch(hash);
                Some(bytes.into())
            }
            Ok(_) => {
                tracing::warn!(module = hash, "discarding corrupt {}", path.display());
                self.discard(hash, &path);
                None
            }
            Err(err) => {
                tracing::warn!(
                    module = hash,
                    "cached module has no upload ({err}); ignoring it"
                );
                None
            }
        }
    }

    /// The module `hash` compiled for the `metering` engine, if there is a usable
    /// artifact. `hash` must already be checked to be a SHA-256 hex string.
    #[allow(unsafe_code)]
    pub(super) fn load_artifact(
        &self,
        engine: &Engine,
        metering: Metering,
        hash: &str,
    ) -> Option<Module> {
        let path = self.artifact_path(hash, metering);
        let file = match fs::read(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return None,
            Err(err) => {
                tracing::warn!(module = hash, "cannot read {}: {err}", path.display());
                return None;
            }
        };
        let Some(artifact) = checked_artifact(&file) else {
            tracing::warn!(
                module = hash,
                "discarding corrupt or truncated cached module {} (its checksum does not match);                  compiling it again",
                path.display()
            );
            self.discard(hash, &path);
            return None;
        };
        // SAFETY: `deserialize` trusts its bytes to be a wasmtime artifact. These bytes
        // are what `store_artifact` below wrote, from a module this node compiled itself
        // from Wasm it validated, checked against the SHA-256 written beside them, so a
        // flipped bit or a torn write is caught before this. A client can never place a
        // file here (names are our SHA-256 of its upload, and nothing it sends is written
        // as an artifact), and the directory must be writable only by the node, as
        // `SandboxConfig::cache_dir` documents. wasmtime still checks the artifact's
        // header and engine compatibility. The bytes are copied into fresh code memory,
        // so later changes to the file cannot affect the module.
        match unsafe { Module::deserialize(engine, artifact) } {
            Ok(module) => {
                self.budget().touch(hash);
                Some(module)
            }
            Err(err) => {
                tracing::warn!(
                    module = hash,
                    "discarding unusable cached module {}: {}",
                    path.display(),
                    error_chain(&err)
                );
                self.discard(hash, &path);
                None
            }
        }
    }

    /// Writes a freshly compiled `module` (upload and unmetered artifact) to the cache.
    pub(super) fn store(&self, module: &LoadedModule) {
        // The upload goes first: an artifact is only used with one.
        if self.store_upload(module.hash(), &module.upload) {
            self.store_artifact(module.hash(), Metering::Unmetered, module.module());
        }
    }

    /// Writes the upload of module `hash`; whether that worked. Failures are logged, not
    /// returned: the cache is an optimisation and the module is already usable.
    pub(super) fn store_upload(&self, hash: &str, upload: &[u8]) -> bool {
        self.write(hash, &self.upload_path(hash), &[upload])
    }

    /// Writes the artifact of module `hash` compiled for the `metering` engine, with its
    /// checksum. Failures are logged, not returned.
    pub(super) fn store_artifact(&self, hash: &str, metering: Metering, module: &Module) {
        match module.serialize() {
            Ok(artifact) => {
                let digest = Sha256::digest(&artifact);
                let path = self.artifact_path(hash, metering);
                self.write(hash, &path, &[ARTIFACT_MAGIC, &digest, &artifact]);
            }
            Err(err) => tracing::warn!(
                module = hash,
                "cannot serialize the module for the cache: {}",
                error_chain(&err)
            ),
        }
    }

    /// Writes `parts` as the file `path` of module `hash`, within the budget; whether it
    /// was written.
    fn write(&self, hash: &str, path: &Path, parts: &[&[u8]]) -> bool {
        let size = parts
            .iter()
            .map(|p| u64::try_from(p.len()).unwrap_or(u64::MAX))
            .fold(0u64, u64::saturating_add);
        let evicted = match self.budget().reserve(hash, path, size) {
            Ok(evicted) => evicted,
            Err(TooBig { size, budget }) => {
                tracing::warn!(
                    module = hash,
                    "not caching {} on disk: {size} bytes is over the whole cache budget of                      {budget} bytes (cache_max_bytes)",
                    path.display()
                );
                return false;
            }
        };
        remove_all(&evicted);
        match write_atomically(path, parts) {
            Ok(()) => true,
            Err(err) => {
                self.budget().forget(hash, path);
                self.write_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    module = hash,
                    "cannot write the module cache ({err}); the module stays in memory only"
                );
                false
            }
        }
    }

    /// Deletes a corrupt file of module `hash`.
    fn discard(&self, hash: &str, path: &Path) {
        self.corrupt.fetch_add(1, Ordering::Relaxed);
        let _ = fs::remove_file(path);
        self.budget().forget(hash, path);
    }

    fn budget(&self) -> MutexGuard<'_, Budget> {
        // Every update completes without panicking: a poisoned lock guards a sound index.
        self.budget.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The module hash a cache file name belongs to: `<hash>.upload` or `<hash>-….cwasm`.
fn module_of(name: &str) -> Option<&str> {
    let hash = name.get(..64)?;
    let rest = &name[64..];
    (is_module_hash(hash)
        && (rest == ".upload" || (rest.starts_with('-') && rest.ends_with(".cwasm"))))
    .then_some(hash)
}

/// The wasmtime artifact inside an artifact file, if its header and checksum hold.
fn checked_artifact(file: &[u8]) -> Option<&[u8]> {
    let (header, artifact) = file.split_at_checked(ARTIFACT_HEADER)?;
    let (magic, digest) = header.split_at(ARTIFACT_MAGIC.len());
    (magic == ARTIFACT_MAGIC && Sha256::digest(artifact).as_slice() == digest).then_some(artifact)
}

fn remove_all(paths: &[PathBuf]) {
    for path in paths {
        if let Err(err) = fs::remove_file(path)
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(
                "cannot evict {} from the module cache: {err}",
                path.display()
            );
        }
    }
}

/// Writes `parts` to a temporary file beside `path`, syncs it, then renames it over
/// `path`, so a reader never sees a half-written file. A failed write leaves nothing
/// behind.
fn write_atomically(path: &Path, parts: &[&[u8]]) -> Result<(), String> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(
        "{TMP_MARK}{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let tmp = PathBuf::from(tmp_name);
    let write = || -> std::io::Result<()> {
        let mut file = fs::File::create(&tmp)?;
        for part in parts {
            file.write_all(part)?;
        }
        file.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|err| {
        let _ = fs::remove_file(&tmp);
        format!("{}: {err}", path.display())
    })
}

#[cfg(test)]
mod tests {
    use std::fs;

    use crate::sandbox::SandboxConfig;
    use crate::sandbox::test_support::{ADD, sandbox};

    #[test]
    fn a_corrupt_cached_upload_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let with_cache = || {
            sandbox(SandboxConfig {
                cache_dir: Some(dir.path().to_path_buf()),
                ..SandboxConfig::default()
            })
        };
        let hash = with_cache()
            .load(ADD.as_bytes())
            .unwrap()
            .hash()
            .to_string();
        let upload = dir.path().join(format!("{hash}.upload"));
        assert_eq!(fs::read(&upload).unwrap(), ADD.as_bytes());

        fs::write(&upload, b"(module)").unwrap();
        let sandbox = with_cache();
        assert!(
            sandbox.module(&hash).is_none(),
            "its upload does not match its hash"
        );
        assert!(!upload.exists(), "and is removed");
        // Uploading it again finds the compiled module and restores the upload.
        let module = sandbox.load(ADD.as_bytes()).unwrap();
        assert_eq!(module.hash(), hash);
        let stats = sandbox.stats();
        assert_eq!((stats.compiles, stats.disk_cache_hits), (0, 1));
        assert_eq!(fs::read(&upload).unwrap(), ADD.as_bytes());
    }

    /// A sandbox with its disk cache in `dir`, of `budget` bytes.
    fn cached_in(dir: &std::path::Path, budget: u64) -> crate::sandbox::Sandbox {
        sandbox(SandboxConfig {
            cache_dir: Some(dir.to_path_buf()),
            disk_cache_bytes: budget,
            ..SandboxConfig::default()
        })
    }

    /// Loads `ADD` through a fresh cache in `dir`, leaving its files there; its hash.
    fn add_cached_in(dir: &std::path::Path) -> String {
        cached_in(dir, 1 << 30)
            .load(ADD.as_bytes())
            .unwrap()
            .hash()
            .to_string()
    }

    /// The one artifact file in `dir`.
    fn artifact(dir: &std::path::Path) -> std::path::PathBuf {
        let mut found: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
            .collect();
        assert_eq!(found.len(), 1, "{found:?}");
        found.remove(0)
    }

    #[test]
    fn a_flipped_bit_or_a_torn_artifact_is_detected_and_compiled_again() {
        let dir = tempfile::tempdir().unwrap();
        let hash = add_cached_in(dir.path());
        let path = artifact(dir.path());
        let good = fs::read(&path).unwrap();

        // One bit flipped in the middle of the artifact.
        let mut flipped = good.clone();
        let at = flipped.len() / 2;
        flipped[at] ^= 0x10;
        fs::write(&path, &flipped).unwrap();
        let sandbox = cached_in(dir.path(), 1 << 30);
        assert!(
            sandbox.module(&hash).is_none(),
            "a corrupt artifact is not used"
        );
        assert!(!path.exists(), "and is deleted");
        assert_eq!(sandbox.stats().disk.corrupt, 1);
        // Loading the upload again compiles it and writes a sound artifact.
        let module = sandbox.load(ADD.as_bytes()).unwrap();
        assert_eq!(module.hash(), hash);
        assert_eq!(sandbox.stats().compiles, 1);
        assert_eq!(fs::read(&path).unwrap().len(), good.len());

        // Cut short, as by a crash of a writer that did not rename atomically.
        fs::write(&path, &good[..good.len() / 3]).unwrap();
        let sandbox = cached_in(dir.path(), 1 << 30);
        assert!(sandbox.module(&hash).is_none());
        assert_eq!(sandbox.stats().disk.corrupt, 1);
        sandbox.load(ADD.as_bytes()).unwrap();
        // The sound artifact is used by the next node: no compile.
        let sandbox = cached_in(dir.path(), 1 << 30);
        assert!(sandbox.module(&hash).is_some());
        assert_eq!(
            (sandbox.stats().compiles, sandbox.stats().disk_cache_hits),
            (0, 1)
        );
    }

    #[test]
    fn the_cache_stays_within_its_budget_evicting_the_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let wat = |n: u32| format!("(module (func (export \"f\") (result i32) i32.const {n}))");
        // Measure one module's files, then allow two and a half of them.
        let one = {
            let probe = tempfile::tempdir().unwrap();
            let sandbox = cached_in(probe.path(), 1 << 30);
            sandbox.load(wat(0).as_bytes()).unwrap();
            sandbox.stats().disk.bytes
        };
        let budget = one * 5 / 2;
        let sandbox = cached_in(dir.path(), budget);
        let first = sandbox.load(wat(1).as_bytes()).unwrap().hash().to_owned();
        let second = sandbox.load(wat(2).as_bytes()).unwrap().hash().to_owned();
        drop(sandbox);
        // A restarted node: files are indexed by age; using the first again leaves the
        // second the least recently used.
        let reader = cached_in(dir.path(), budget);
        assert!(reader.module(&first).is_some());
        reader.load(wat(3).as_bytes()).unwrap();
        let stats = reader.stats().disk;
        assert!(stats.bytes <= budget, "{} > {budget}", stats.bytes);
        assert_eq!(stats.evictions, 1);
        assert!(
            !dir.path().join(format!("{second}.upload")).exists(),
            "evicted"
        );
        assert!(dir.path().join(format!("{first}.upload")).exists(), "kept");
    }

    #[test]
    fn leftovers_of_interrupted_writes_are_removed_and_the_budget_enforced_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let hash = add_cached_in(dir.path());
        let leftover = dir.path().join(format!("{hash}.upload.tmp123-ThreadId(7)"));
        fs::write(&leftover, b"half a file").unwrap();
        fs::write(dir.path().join("README"), b"not ours").unwrap();
        let sandbox = cached_in(dir.path(), 1);
        assert!(!leftover.exists());
        assert!(
            dir.path().join("README").exists(),
            "files that are not ours stay"
        );
        assert_eq!(
            sandbox.stats().disk.bytes,
            0,
            "over a 1-byte budget, evicted"
        );
        assert!(sandbox.module(&hash).is_none());
        // A module bigger than the whole budget is served from memory, not cached.
        let module = sandbox.load(ADD.as_bytes()).unwrap();
        assert!(sandbox.module(module.hash()).is_some());
        assert_eq!(sandbox.stats().disk.bytes, 0);
    }
}
