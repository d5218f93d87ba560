//! The node's configuration: a TOML file, every key also a command-line flag.

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use rwc_api::Limits;
use serde::Deserialize;

use crate::capabilities::{CommandConfig, DirConfig};
pub use crate::principal::PrincipalConfig;
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
    /// Capabilities granted to clients (and so to the guests they start): `sys`, `log`,
    /// `exec` (every command) or `exec:NAME`, `fs:NAME` (a directory).
    pub grants: Vec<String>,
    /// Directories a guest can be given (`[[dirs]]`, granted as `fs:NAME`).
    pub dirs: Vec<DirConfig>,
    /// Allow-listed commands (`[[commands]]`, granted as `exec:NAME` or all as `exec`).
    pub commands: Vec<CommandConfig>,
    /// Limits.
    pub limits: Limits,
    /// TLS certificate chain (PEM) to serve with, with `tls_key`: the node then speaks
    /// only TLS (`tls://HOST:PORT` on the client side).
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// CA certificate(s) (PEM): every client must present a certificate it signed.
    pub tls_client_ca: Option<PathBuf>,
    /// Serve on a non-loopback address without TLS and principals anyway (with a warning).
    pub insecure: bool,
    /// Who may connect, each with its own grants and limits. None: one anonymous
    /// principal with the root operations and `grants`, on loopback and Unix addresses
    /// only.
    pub principals: Vec<PrincipalConfig>,
    /// The mount points `sys.disk(path)` may report on; any other path is `denied`.
    pub disk_mounts: Vec<String>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            listen: "127.0.0.1:18870".into(),
            cache_dir: None,
            grace_period_secs: 10,
            grants: vec!["sys".into(), "log".into()],
            dirs: Vec::new(),
            commands: Vec::new(),
            limits: Limits::default(),
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            insecure: false,
            principals: Vec::new(),
            disk_mounts: vec!["/".into()],
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

    #[test]
    fn principals_read_as_the_docs_write_them() {
        let c: NodeConfig = toml::from_str(
            r#"
tls_cert = "node.pem"
tls_key = "node.key"
disk_mounts = ["/", "/data"]

[[principals]]
name = "ops"
token_sha256 = "1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0"
grants = ["upload", "instantiate", "run", "info", "sys", "log"]
[principals.limits]
memory_bytes = 67108864
max_instances = 8

[[principals]]
name = "ci"
client_cert = "CN=ci"
grants = ["run"]
"#,
        )
        .unwrap();
        assert_eq!(c.principals.len(), 2);
        assert_eq!(c.principals[0].name, "ops");
        assert_eq!(c.principals[0].limits.max_instances, Some(8));
        assert_eq!(c.principals[1].client_cert.as_deref(), Some("CN=ci"));
        assert_eq!(c.disk_mounts, ["/", "/data"]);
        let err = toml::from_str::<NodeConfig>("[[principals]]\nname = \"a\"\ntoken = \"x\"\n")
            .unwrap_err();
        assert!(err.to_string().contains("token"), "{err}");
    }
}
