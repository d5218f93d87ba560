//! Directories: the node's `[[dirs]]`, granted as `fs:NAME`, reaching a guest as WASI
//! preview 1 preopens at their guest paths.
//!
//! The operator decides which host directories exist and whether each is read-only; a
//! client only names grants, never a host path. wasmtime-wasi enforces the rest: a
//! read-only preopen refuses every change with `EPERM`, and no path (`..`, absolute,
//! through a symlink) leads out of a preopen.

use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use super::Table;
use crate::sandbox::Preopen;

/// One `[[dirs]]` entry of the node's config.
///
/// ```toml
/// [[dirs]]
/// name = "logs"
/// path = "/var/log/app"       # on the node
/// guest_path = "/logs"        # what the guest opens
/// read_only = true
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirConfig {
    /// What grants and requests call it by: `fs:NAME`.
    pub name: String,
    /// The directory on the node: an absolute path.
    pub path: PathBuf,
    /// Where the guest sees it: an absolute path such as `/logs`.
    pub guest_path: String,
    /// Whether every change is refused (default true: read-write must be asked for).
    #[serde(default = "read_only_default")]
    pub read_only: bool,
}

fn read_only_default() -> bool {
    true
}

/// The node's directories, checked when the node starts.
pub type Dirs = Table<DirConfig>;

impl Table<DirConfig> {
    /// Checks the config: unique names and guest paths, absolute host paths that are
    /// directories now, absolute guest paths without `.` or `..`.
    pub fn new(configs: &[DirConfig]) -> Result<Self, String> {
        Self::build(
            "dirs",
            configs,
            |d| &d.name,
            |d, earlier| {
                check(d)?;
                if earlier.values().any(|o| o.guest_path == d.guest_path) {
                    return Err(format!(
                        "guest path {} is already another directory's",
                        d.guest_path
                    ));
                }
                Ok(d.clone())
            },
        )
    }

    /// The preopen of the directory `name`, if the config has it. The guest's file
    /// changes are in the audit log, on behalf of the instance's principal.
    pub(crate) fn preopen(&self, name: &str) -> Option<Preopen> {
        self.get(name).map(|d| Preopen {
            host: d.path.clone(),
            guest: d.guest_path.clone(),
            read_only: d.read_only,
        })
    }
}

fn check(d: &DirConfig) -> Result<(), String> {
    if !d.path.is_absolute() {
        return Err(format!("path {} must be absolute", d.path.display()));
    }
    if !d.path.is_dir() {
        return Err(format!(
            "path {} is not a directory on this machine",
            d.path.display()
        ));
    }
    let guest = Path::new(&d.guest_path);
    let plain = guest
        .components()
        .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if !guest.is_absolute() || !plain || d.guest_path.len() < 2 {
        return Err(format!(
            "guest_path {:?} must be an absolute path below / without `.` or `..`, such as \"/logs\"",
            d.guest_path
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `[[dirs]]` of a node config, read as the node reads its config file.
    fn dirs(toml_text: &str) -> Result<Dirs, String> {
        Dirs::new(&crate::NodeConfig::parse(toml_text)?.dirs)
    }

    #[test]
    fn read_only_unless_asked_and_bad_entries_refused() {
        let tmp = std::env::temp_dir();
        let t = tmp.display();
        let d = dirs(&format!(
            "[[dirs]]\nname='a'\npath='{t}'\nguest_path='/a'\n\
             [[dirs]]\nname='b'\npath='{t}'\nguest_path='/b'\nread_only=false\n"
        ))
        .unwrap();
        assert!(d.preopen("a").unwrap().read_only);
        assert!(!d.preopen("b").unwrap().read_only);
        assert!(d.preopen("c").is_none());
        for (bad, why) in [
            (
                "[[dirs]]\nname='a'\npath='rel'\nguest_path='/a'\n".to_owned(),
                "absolute",
            ),
            (
                format!("[[dirs]]\nname='a'\npath='{t}/no-such-dir-rwc'\nguest_path='/a'\n"),
                "not a directory",
            ),
            (
                format!("[[dirs]]\nname='a'\npath='{t}'\nguest_path='a'\n"),
                "guest_path",
            ),
            (
                format!("[[dirs]]\nname='a'\npath='{t}'\nguest_path='/a/../b'\n"),
                "guest_path",
            ),
            (
                format!("[[dirs]]\nname='a'\npath='{t}'\nguest_path='/'\n"),
                "guest_path",
            ),
            (
                format!(
                    "[[dirs]]\nname='a'\npath='{t}'\nguest_path='/a'\n\
                     [[dirs]]\nname='b'\npath='{t}'\nguest_path='/a'\n"
                ),
                "already",
            ),
            (
                format!(
                    "[[dirs]]\nname='a'\npath='{t}'\nguest_path='/a'\n\
                     [[dirs]]\nname='a'\npath='{t}'\nguest_path='/b'\n"
                ),
                "twice",
            ),
            (
                format!("[[dirs]]\nname='a'\npath='{t}'\nguest_path='/a'\nmode=1\n"),
                "mode",
            ),
        ] {
            let err = dirs(&bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
