//! Host capabilities: objects a node exports under names, granted to principals by the
//! node's config, and handed to guests at instantiation.
//!
//! A guest reaches only what it was handed; a client can hand over only what it was
//! granted (or objects it holds itself).

mod log;
mod sys;

use std::collections::HashMap;

use rwc_protocol::{Error, NetRef};

pub use self::log::LogCapability;
pub use self::sys::SysCapability;
use crate::Node;
use crate::instance::output::OutputForwarder;
use crate::principal::Principal;

/// Capabilities this node has.
pub use rwc_api::capability::ALL;

/// Makes the named capability, for a guest of `principal` whose output goes to `output`
/// (the `log` capability writes there too) or for a client directly.
pub(crate) fn make(
    node: &Node,
    name: &str,
    principal: &Principal,
    output: Option<&OutputForwarder>,
) -> Option<NetRef> {
    match name {
        rwc_api::capability::SYS => Some(NetRef::new(SysCapability::new(
            node.config().disk_mounts.clone(),
        ))),
        rwc_api::capability::LOG => Some(NetRef::new(LogCapability::new(
            principal.name().to_owned(),
            output.cloned(),
        ))),
        _ => None,
    }
}

/// Resolves the capability names a client asked for, checking its principal's grants.
pub(crate) fn resolve(
    node: &Node,
    names: &[String],
    principal: &Principal,
    output: Option<&OutputForwarder>,
) -> Result<HashMap<String, NetRef>, Error> {
    let mut out = HashMap::new();
    for name in names {
        if !ALL.contains(&name.as_str()) {
            return Err(Error::bad_argument(format!(
                "this node has no capability `{name}` (it has: {})",
                ALL.join(", ")
            )));
        }
        principal.check(name)?;
        if let Some(cap) = make(node, name, principal, output) {
            out.insert(name.clone(), cap);
        }
    }
    Ok(out)
}
