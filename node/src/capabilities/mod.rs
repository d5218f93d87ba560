//! Host capabilities: what a node hands out under names, granted to principals by the
//! node's config and handed to guests at instantiation.
//!
//! - objects: `sys`, `log`, and `exec` (the allow-listed commands of `[[commands]]`,
//!   granted all at once as `exec` or one by one as `exec:NAME`);
//! - directories: `fs:NAME` (the `[[dirs]]` of the config), which reach the guest as WASI
//!   preopens rather than as an object.
//!
//! A guest reaches only what it was handed; a client can hand over only what it was
//! granted (or objects it holds itself). Every check asks the principal
//! ([`Principal::check`]); `exec` covers every `exec:NAME`.

mod exec;
mod fs;
mod log;
pub(crate) mod sys;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use rwc_api::capability::{EXEC, EXEC_PREFIX, FS_PREFIX, LOG, SYS};
use rwc_protocol::{Error, NetRef};

use self::exec::Allowed;
pub use self::exec::{Command, CommandConfig, Commands, ExecCapability, ParamRule};
pub use self::fs::{DirConfig, Dirs};
pub use self::log::LogCapability;
pub use self::sys::SysCapability;
use crate::Node;
use crate::config::NodeConfig;
use crate::instance::output::OutputForwarder;
use crate::principal::Principal;
use crate::sandbox::Preopen;

/// Capabilities this node has as objects.
pub use rwc_api::capability::ALL;

/// What a node can hand out besides `sys` and `log`: its directories and commands,
/// checked when it starts.
#[derive(Debug, Default)]
pub(crate) struct Host {
    pub(crate) dirs: Dirs,
    pub(crate) commands: Arc<Commands>,
}

impl Host {
    pub(crate) fn new(config: &NodeConfig) -> Result<Self, String> {
        Ok(Host {
            dirs: Dirs::new(&config.dirs)?,
            commands: Arc::new(Commands::new(&config.commands)?),
        })
    }
}

/// The entries of one of the config's tables (`[[dirs]]`, `[[commands]]`) by name,
/// checked when the node starts: [`Dirs`] and [`Commands`].
#[derive(Debug)]
pub struct Table<T> {
    by_name: BTreeMap<String, T>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Self {
            by_name: BTreeMap::new(),
        }
    }
}

impl<T> Table<T> {
    /// The entries of the config's `[[TABLE]]`, each checked and built by `make` (which
    /// sees the entries built so far); a name is letters, digits, `-`, `_` and `.`, given
    /// once. Every error names the table and the entry, as in "[[dirs]] `logs`: path x
    /// must be absolute".
    fn build<C>(
        table: &str,
        configs: &[C],
        name: impl Fn(&C) -> &str,
        mut make: impl FnMut(&C, &Self) -> Result<T, String>,
    ) -> Result<Self, String> {
        let mut built = Self::default();
        for config in configs {
            let name = name(config);
            let plain = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
            let entry = if name.is_empty() || !name.chars().all(plain) {
                Err("a name is letters, digits, `-`, `_` and `.`".to_owned())
            } else {
                make(config, &built)
            }
            .map_err(|e| format!("[[{table}]] `{name}`: {e}"))?;
            if built.by_name.insert(name.to_owned(), entry).is_some() {
                return Err(format!("[[{table}]] `{name}` is defined twice"));
            }
        }
        Ok(built)
    }

    /// Whether an entry is called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// The entries' names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// The entry called `name`.
    fn get(&self, name: &str) -> Option<&T> {
        self.by_name.get(name)
    }

    /// The entries, in the order of their names.
    fn values(&self) -> impl Iterator<Item = &T> {
        self.by_name.values()
    }
}

/// What a client's capability names resolve to: objects by the name the guest looks them
/// up under, and directories to preopen.
#[derive(Debug, Default)]
pub(crate) struct Resolved {
    pub(crate) objects: HashMap<String, NetRef>,
    pub(crate) preopens: Vec<Preopen>,
}

/// Resolves the capability names a client asked for, checking its principal's grants. The
/// objects act for the principal (in the node's log and audit trail); `output` is where
/// the `log` capability writes besides the node's log.
pub(crate) fn resolve(
    node: &Node,
    names: &[String],
    principal: &Principal,
    output: Option<&OutputForwarder>,
) -> Result<Resolved, Error> {
    let host = &node.inner.host;
    let label = principal.name();
    let mut out = Resolved::default();
    let mut exec_all = false;
    let mut exec_some = BTreeSet::new();
    for name in names {
        if let Some(dir) = name.strip_prefix(FS_PREFIX) {
            let preopen = host.dirs.preopen(dir).ok_or_else(|| unknown(host, name))?;
            principal.check(name)?;
            if !out.preopens.iter().any(|p| p.guest == preopen.guest) {
                out.preopens.push(preopen);
            }
        } else if name == EXEC {
            if principal.holds(EXEC) {
                exec_all = true;
            } else {
                let held: Vec<String> = host
                    .commands
                    .names()
                    .filter(|c| principal.holds(&format!("{EXEC_PREFIX}{c}")))
                    .map(str::to_owned)
                    .collect();
                if held.is_empty() {
                    principal.check(EXEC)?;
                }
                exec_some.extend(held);
            }
        } else if let Some(command) = name.strip_prefix(EXEC_PREFIX) {
            if !host.commands.contains(command) {
                return Err(unknown(host, name));
            }
            principal.check(name)?;
            exec_some.insert(command.to_owned());
        } else {
            let object = match name.as_str() {
                SYS => NetRef::new(SysCapability::new(node.config().disk_mounts.clone())),
                LOG => NetRef::new(LogCapability::new(label.to_owned(), output.cloned())),
                _ => return Err(unknown(host, name)),
            };
            principal.check(name)?;
            out.objects.insert(name.clone(), object);
        }
    }
    if exec_all || !exec_some.is_empty() {
        let allowed = if exec_all {
            Allowed::All
        } else {
            Allowed::Only(exec_some)
        };
        let exec = ExecCapability::new(host.commands.clone(), allowed, label.to_owned());
        out.objects.insert(EXEC.to_owned(), NetRef::new(exec));
    }
    Ok(out)
}

/// A capability the node does not have, with what it does have.
fn unknown(host: &Host, name: &str) -> Error {
    let mut has: Vec<String> = ALL.iter().map(|s| (*s).to_owned()).collect();
    has.extend(host.commands.names().map(|c| format!("{EXEC_PREFIX}{c}")));
    has.extend(host.dirs.names().map(|d| format!("{FS_PREFIX}{d}")));
    Error::bad_argument(format!(
        "this node has no capability `{name}` (it has: {})",
        has.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rwc_protocol::ErrorKind;

    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    /// A node with commands `a` and `b` and the directory `logs`, whose anonymous
    /// principal holds `grants`.
    fn node(grants: &[&str]) -> Node {
        let config: NodeConfig = toml::from_str(&format!(
            "grants = {grants:?}\n\
             [[commands]]\nname='a'\nprogram='/bin/true'\n\
             [[commands]]\nname='b'\nprogram='/bin/true'\n\
             [[dirs]]\nname='logs'\npath='{}'\nguest_path='/logs'\n",
            std::env::temp_dir().display()
        ))
        .unwrap();
        Node::new(config).unwrap()
    }

    fn anonymous(node: &Node) -> Arc<Principal> {
        node.inner.principals.get(None).unwrap().clone()
    }

    #[test]
    fn both_tables_refuse_odd_and_repeated_names_naming_table_and_entry() {
        let tmp = std::env::temp_dir();
        let dir = |name: &str, guest: &str| {
            format!(
                "[[dirs]]\nname='{name}'\npath='{}'\nguest_path='{guest}'\n",
                tmp.display()
            )
        };
        let command = |name: &str| format!("[[commands]]\nname='{name}'\nprogram='/bin/true'\n");
        let host = |toml_text: &str| {
            Host::new(&NodeConfig::parse(toml_text).unwrap())
                .map(|_| ())
                .unwrap_err()
        };
        let odd = "a name is letters, digits, `-`, `_` and `.`";
        for (case, toml_text, want) in [
            (
                "dir, space",
                dir("my logs", "/a"),
                format!("[[dirs]] `my logs`: {odd}"),
            ),
            ("dir, empty", dir("", "/a"), format!("[[dirs]] ``: {odd}")),
            (
                "command, slash",
                command("a/b"),
                format!("[[commands]] `a/b`: {odd}"),
            ),
            (
                "dir twice",
                dir("a", "/a") + &dir("a", "/b"),
                "[[dirs]] `a` is defined twice".to_owned(),
            ),
            (
                "command twice",
                command("df") + &command("df"),
                "[[commands]] `df` is defined twice".to_owned(),
            ),
        ] {
            assert_eq!(host(&toml_text), want, "case: {case}");
        }
    }

    #[tokio::test]
    async fn grants_decide_what_resolves() {
        let n = node(&["exec:a", "fs:logs"]);
        let p = anonymous(&n);
        assert!(p.holds("exec:a") && !p.holds("exec:b") && !p.holds("exec"));
        // `exec` asked with only `exec:a` held: an object for `a` alone.
        let r = resolve(&n, &names(&["exec", "fs:logs"]), &p, None).unwrap();
        assert!(r.objects.contains_key("exec"));
        assert_eq!(r.preopens.len(), 1);
        assert_eq!(r.preopens[0].guest, "/logs");
        let denied = resolve(&n, &names(&["exec:b"]), &p, None).unwrap_err();
        assert_eq!(denied.kind(), ErrorKind::Denied);
        assert!(denied.message().contains("exec:b"), "{denied}");
        let err = resolve(&n, &names(&["fs:etc"]), &p, None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadArgument);
        assert!(
            err.message().contains("fs:logs"),
            "lists what exists: {err}"
        );

        let none = node(&[]);
        let err = resolve(&none, &names(&["fs:logs"]), &anonymous(&none), None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Denied);
        let all = node(&["exec"]);
        assert!(anonymous(&all).holds("exec:b"));
    }
}
