//! Host capabilities: objects a node exports under names, granted to clients by the node's
//! config, and handed to guests at instantiation.
//!
//! A guest reaches only what it was handed; a client can hand over only what it was
//! granted (or objects it holds itself).

mod log;
pub(crate) mod sys;

use std::collections::HashMap;

use rwc_protocol::{Error, ErrorKind, NetRef};

pub use self::log::LogCapability;
pub use self::sys::SysCapability;
use crate::instance::output::OutputForwarder;

/// Capabilities this node has.
pub use rwc_api::capability::ALL;

/// Makes the named capability, for a guest whose output goes to `output` (the `log`
/// capability writes there too) or for a client directly.
pub(crate) fn make(name: &str, label: &str, output: Option<&OutputForwarder>) -> Option<NetRef> {
    match name {
        rwc_api::capability::SYS => Some(NetRef::new(SysCapability)),
        rwc_api::capability::LOG => Some(NetRef::new(LogCapability::new(
            label.to_owned(),
            output.cloned(),
        ))),
        _ => None,
    }
}

/// Resolves the capability names a client asked for, checking its grants.
pub(crate) fn resolve(
    names: &[String],
    grants: &[String],
    label: &str,
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
        if !grants.contains(name) {
            return Err(denied(name));
        }
        if let Some(cap) = make(name, label, output) {
            out.insert(name.clone(), cap);
        }
    }
    Ok(out)
}

pub(crate) fn denied(name: &str) -> Error {
    Error::new(
        ErrorKind::Denied,
        format!(
            "capability `{name}` is not granted to this client by the node's config (`grants`)"
        ),
    )
}
