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
    /// Directory of the on-disk compiled-module cache; none by default.
    pub cache_dir: Option<PathBuf>,
    /// How long calls in flight may take to finish after SIGINT/SIGTERM, in seconds.
    pub grace_period_secs: u64,
    /// Capabilities granted to clients (and so to the guests they start).
    pub grants: Vec<String>,
    /// Limits.
    pub limits: Limits,
    /// Membership of a NATS JetStream fleet (`[nats]`, flags `--nats…`).
    pub nats: crate::nats::NatsConfig,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            listen: "127.0.0.1:18870".into(),
            cache_dir: None,
            grace_period_secs: 10,
            grants: vec!["sys".into(), "log".into()],
            limits: Limits::default(),
            nats: crate::nats::NatsConfig::default(),
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
            cache_dir: self.cache_dir.clone(),
            epoch_tick: Duration::from_millis(l.epoch_tick_ms.max(1)),
            ..SandboxConfig::default()
        }
    }
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
}
