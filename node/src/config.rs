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
    /// Directory of the on-disk compiled-module cache. The `rwc-node` binary uses
    /// [`default_cache_dir`] when this is unset (and `no_cache` is not); a node embedded
    /// as a library has no disk cache unless given one.
    pub cache_dir: Option<PathBuf>,
    /// No disk cache at all: every start compiles what it is given again.
    pub no_cache: bool,
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
    /// Membership of a NATS JetStream fleet (`[nats]`, flags `--nats…`).
    pub nats: crate::nats::NatsConfig,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            listen: "127.0.0.1:18870".into(),
            cache_dir: None,
            no_cache: false,
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
            nats: crate::nats::NatsConfig::default(),
        }
    }
}

impl NodeConfig {
    /// Reads a TOML file (see [`parse`](NodeConfig::parse)).
    pub fn from_file(path: &Path) -> Result<NodeConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        NodeConfig::parse(&text).map_err(|e| format!("bad config {}: {e}", path.display()))
    }

    /// Parses TOML text. A key the node does not know is an error naming it, at any
    /// depth: a typo must not silently leave a limit at its default. (Some tables are
    /// shared with what clients decode, which must tolerate new keys, so the check is
    /// made here rather than by the types.)
    pub fn parse(text: &str) -> Result<NodeConfig, String> {
        let de = toml::Deserializer::parse(text).map_err(|e| e.to_string())?;
        let mut unknown = Vec::new();
        let config: NodeConfig = serde_ignored::deserialize(de, |path| {
            unknown.push(path.to_string());
        })
        .map_err(|e| e.to_string())?;
        match unknown.as_slice() {
            [] => Ok(config),
            [key] => Err(format!("unknown key `{key}`")),
            keys => Err(format!("unknown keys `{}`", keys.join("`, `"))),
        }
    }

    /// Puts limits given as 0 meaning "the machine's" at their value
    /// (`max_concurrent_compiles = 0`: the number of CPUs), so `info` shows what is in
    /// force. [`Node::new`](crate::Node::new) does this.
    pub fn resolve(&mut self) {
        let l = &mut self.limits;
        if l.max_concurrent_compiles == 0 {
            l.max_concurrent_compiles =
                std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        }
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
            max_concurrent_compiles: l.max_concurrent_compiles,
            compile_timeout: Duration::from_millis(l.compile_timeout_ms),
            disk_cache_bytes: l.cache_max_bytes,
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
        let c =
            NodeConfig::parse("listen = \"127.0.0.1:0\"\n[limits]\ncall_timeout_ms = 5\n").unwrap();
        assert_eq!(c.listen, "127.0.0.1:0");
        assert_eq!(c.limits.call_timeout_ms, 5);
        assert_eq!(c.limits.memory_bytes, 256 << 20);
        let err = NodeConfig::parse("[limits]\ncall_timeout = 5\n").unwrap_err();
        assert_eq!(err, "unknown key `limits.call_timeout`");
        let err = NodeConfig::parse("listn = \"x\"\n").unwrap_err();
        assert!(err.contains("listn"), "{err}");
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
