//! The disk cache: compiled artifacts kept across restarts, with the uploads they came
//! from.
//!
//! This is the only place the node loads native code it did not just compile, and the
//! node's only `unsafe`: those files were written by this node from Wasm it compiled
//! itself. Nothing a client sends is ever deserialized.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

use crate::sandbox::engine::{self, Metering};
use crate::sandbox::error::error_chain;
use crate::sandbox::{LoadedModule, SandboxError};

/// Files under `cache_dir`: per module, the upload as `<sha256>.upload` and one
/// compiled artifact per engine as `<sha256>-<engine compat hash>.cwasm` (the
/// fuel-metering one only once it has been compiled).
pub(super) struct DiskCache {
    dir: PathBuf,
    unmetered_compat: String,
    fuel_compat: String,
}

impl DiskCache {
    pub(super) fn open(
        dir: &Path,
        unmetered: &Engine,
        fuel: &Engine,
    ) -> Result<Self, SandboxError> {
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
            Ok(bytes) if hex::encode(Sha256::digest(&bytes)) == hash => Some(bytes.into()),
            Ok(_) => {
                tracing::warn!(module = hash, "discarding corrupt {}", path.display());
                let _ = fs::remove_file(&path);
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
        let artifact = self.artifact_path(hash, metering);
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
                    module = hash,
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
    pub(super) fn store(&self, module: &LoadedModule) {
        // The upload goes first: an artifact is only used with one.
        if self.store_upload(module.hash(), &module.upload) {
            self.store_artifact(module.hash(), Metering::Unmetered, module.module());
        }
    }

    /// Writes the upload of module `hash`; whether that worked. Failures are logged, not
    /// returned: the cache is an optimisation and the module is already usable.
    pub(super) fn store_upload(&self, hash: &str, upload: &[u8]) -> bool {
        match write_atomically(&self.upload_path(hash), upload) {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(module = hash, "cannot write the module cache: {err}");
                false
            }
        }
    }

    /// Writes the artifact of module `hash` compiled for the `metering` engine. Failures
    /// are logged, not returned.
    pub(super) fn store_artifact(&self, hash: &str, metering: Metering, module: &Module) {
        let result = module
            .serialize()
            .map_err(|err| error_chain(&err))
            .and_then(|artifact| write_atomically(&self.artifact_path(hash, metering), &artifact));
        if let Err(err) = result {
            tracing::warn!(module = hash, "cannot write the module cache: {err}");
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
}
