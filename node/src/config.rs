//! The node's configuration: a TOML file, every key also a command-line flag.

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use rwc_api::Limits;
use serde::Deserialize;

use crate::sandbox::SandboxConfig;

/// Everything a node can be told. Missing keys take the defaults shown by
/// `NodeConfig::default()`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Address to listen on (`HOST:PORT`; port 0 picks a free one), or `unix:/path`.
    pub listen: String,
    /// Directory of the on-disk compiled-module cache. The `rwc-node` binary uses
    /// [`default_cache_dir`] when this is unset (and `no_cache` is not); a node embedded
    /// as a library has no disk cache unless given one.
    pub cache_dir: Option<PathBuf>,
    /// No disk cache at all: every start compiles what it is given again.
    pub no_cache: bool,
    /// How long calls in flight may take to finish after SIGINT/SIGTERM, in seconds.
    pub grace_period_secs: u64,
    /// Capabilities granted to clients (and so to the guests they start).
    pub grants: Vec<String>,
    /// Limits.
    pub limits: Limits,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            listen: "127.0.0.1:18870".into(),
            cache_dir: None,
            no_cache: false,
            grace_period_secs: 10,
            grants: vec!["sys".into(), "log".into()],
            limits: Limits::default(),
        }
    }
}

impl NodeConfig {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<NodeConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("bad config {}: {e}", path.display()))
    }

    /// The sandbox settings these limits imply.
    pub fn sandbox_config(&self) -> SandboxConfig {
        let l = &self.limits;
        SandboxConfig {
            max_live_instances: l.max_instances,
            max_memory: l.memory_bytes,
            default_call_timeout: Duration::from_millis(l.call_timeout_ms),
            default_max_output: l.max_output_bytes,
            max_module_bytes: l.max_module_bytes,
            memory_cache_bytes: l.module_cache_bytes,
            memory_cache_modules: l.max_modules,
            cache_dir: if self.no_cache {
                None
            } else {
                self.cache_dir.clone()
            },
            epoch_tick: Duration::from_millis(l.epoch_tick_ms.max(1)),
            ..SandboxConfig::default()
        }
    }
}

/// Where `rwc-node` keeps compiled modules unless told otherwise: `$XDG_CACHE_HOME/rwc`,
/// else `$HOME/.cache/rwc`; `None` if neither variable is set to an absolute path.
pub fn default_cache_dir() -> Option<PathBuf> {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    absolute("XDG_CACHE_HOME")
        .or_else(|| absolute("HOME").map(|home| home.join(".cache")))
        .map(|cache| cache.join("rwc"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_defaults_and_rejects_typos() {
        let c: NodeConfig =
            toml::from_str("listen = \"127.0.0.1:0\"\n[limits]\ncall_timeout_ms = 5\n").unwrap();
        assert_eq!(c.listen, "127.0.0.1:0");
        assert_eq!(c.limits.call_timeout_ms, 5);
        assert_eq!(c.limits.memory_bytes, 256 << 20);
        let err = toml::from_str::<NodeConfig>("[limits]\ncall_timeout = 5\n").unwrap_err();
        assert!(err.to_string().contains("call_timeout"), "{err}");
    }

    #[test]
    fn no_cache_turns_the_disk_cache_off() {
        let c: NodeConfig = toml::from_str("cache_dir = \"/var/cache/rwc\"\n").unwrap();
        assert_eq!(
            c.sandbox_config().cache_dir.as_deref(),
            Some(Path::new("/var/cache/rwc"))
        );
        let c: NodeConfig =
            toml::from_str("cache_dir = \"/var/cache/rwc\"\nno_cache = true\n").unwrap();
        assert_eq!(c.sandbox_config().cache_dir, None);
        // The library's default: no disk cache (the binary fills in its default).
        assert_eq!(NodeConfig::default().sandbox_config().cache_dir, None);
    }
}
