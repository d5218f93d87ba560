//! The node registry's messages: nodes list their address and tags, clients look them up
//! by tag. The server and the client halves are in the `rwc-registry` crate.

use rwc_protocol::Error;
use serde::{Deserialize, Serialize};

use crate::request::requests;

/// Most entries a registry keeps; registering more is refused (`overloaded`).
pub const MAX_ENTRIES: usize = 10_000;
/// Longest TTL an entry may ask for, in seconds (one day).
pub const MAX_TTL_SECS: u64 = 86_400;
/// Longest node address, in bytes.
pub const MAX_ADDR_LEN: usize = 256;
/// Most tags on one entry.
pub const MAX_TAGS: usize = 32;
/// Longest tag, in bytes.
pub const MAX_TAG_LEN: usize = 64;

requests! {
    /// Adds or refreshes the entry of `addr`; it expires `ttl_secs` after the last
    /// refresh.
    Register = "register" -> () { addr: String, tags: Vec<String>, ttl_secs: u64 }
        "(addr, tags, ttl_secs) add or refresh a node; it expires ttl_secs after the last refresh"
    /// Removes the entry of `addr` now; whether there was one.
    Unregister = "unregister" -> bool { addr: String }
        "(addr) remove a node now"
    /// Every live entry, by address.
    List = "list" -> Vec<RegistryEntry> {}
        "() every live node: addr, tags, ttl_secs, expires_in_secs"
    /// The live entries with this tag, by address.
    Lookup = "lookup" -> Vec<RegistryEntry> { tag: String }
        "(tag) the live nodes with this tag"
}

impl Register {
    /// Checks the entry against the registry's bounds, with an error that says which.
    pub fn check(&self) -> Result<(), Error> {
        if self.addr.is_empty() || self.addr.len() > MAX_ADDR_LEN {
            return Err(Error::bad_argument(format!(
                "a node address must be 1 to {MAX_ADDR_LEN} bytes (HOST:PORT)"
            )));
        }
        if self.tags.len() > MAX_TAGS
            || self
                .tags
                .iter()
                .any(|t| t.is_empty() || t.len() > MAX_TAG_LEN)
        {
            return Err(Error::bad_argument(format!(
                "at most {MAX_TAGS} tags of 1 to {MAX_TAG_LEN} bytes each"
            )));
        }
        if !(1..=MAX_TTL_SECS).contains(&self.ttl_secs) {
            return Err(Error::bad_argument(format!(
                "ttl_secs must be 1 to {MAX_TTL_SECS}, got {}",
                self.ttl_secs
            )));
        }
        Ok(())
    }
}

/// A node as the registry lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistryEntry {
    /// Where clients reach the node (`HOST:PORT`).
    pub addr: String,
    /// The tags it registered with.
    pub tags: Vec<String>,
    /// Its time-to-live: how long the entry lasts without a refresh.
    pub ttl_secs: u64,
    /// Seconds until the entry expires unless refreshed.
    pub expires_in_secs: f64,
}
