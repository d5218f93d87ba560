//! [`InstanceOptions`]: how a client asks for an instance.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ObjectRef;

/// What a client may ask of a new instance. Every key is optional; what is left out takes
/// the node's defaults, and the node caps what it is asked for at its own [limits].
///
/// These are the keys a person types in `rwc shell` (`new $m {"fuel": 1000000}`), so an
/// unknown key is an error that names it and lists the valid ones. `timeout_ms` (for
/// `call_timeout_ms`) and `grant` (for `objects`) are accepted under their old names.
///
/// [limits]: crate::Limits
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InstanceOptions {
    /// Linear memory cap, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    /// Fuel budget for the instance's whole life (roughly, Wasm instructions); unmetered
    /// if unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// Wall-clock deadline of each call into the instance (`call_timeout_ms` on the
    /// wire).
    #[serde(
        rename = "call_timeout_ms",
        alias = "timeout_ms",
        with = "millis",
        skip_serializing_if = "Option::is_none"
    )]
    pub call_timeout: Option<Duration>,
    /// Guest output captured per call, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output: Option<u64>,
    /// WASI environment variables.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// WASI command-line arguments (`argv[0]` included).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Host capabilities of the node to hand to the guest, by name (`sys`, `log`); the
    /// node's config must grant them to the client.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// Objects of the client handed to the guest, by the name the guest looks them up
    /// under (as it looks up capabilities).
    #[serde(alias = "grant", skip_serializing_if = "BTreeMap::is_empty")]
    pub objects: BTreeMap<String, ObjectRef>,
    /// Where the guest's stdout, stderr and log lines go while it runs: an object with a
    /// `write(stream, bytes)` method ([`output::Write`](crate::output::Write)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<ObjectRef>,
}

/// `Option<Duration>` as whole milliseconds.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}
