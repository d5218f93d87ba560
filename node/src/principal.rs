//! Principals: who may use the node, proven how, granted what, within which limits.
//!
//! The node's config names its principals (`[[principals]]`), each proven by a token
//! (the config keeps its SHA-256, `token_sha256`) or a client certificate name
//! (`client_cert = "CN=ops"`), or both (then both are required). A connection that
//! proves none is refused in the handshake (`denied`, "authentication failed") and gets
//! no object. A node without `[[principals]]` has one principal, `anonymous`, granted the
//! root operations and the node's `grants`; it serves only loopback and Unix-socket
//! clients (see [`crate::server::Server::bind`]).
//!
//! Each principal has its own grants ([`Principal::check`] is the one check every
//! operation and capability goes through), its own limits (capped by the node's), and
//! sees only the instances and modules it made itself.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, PoisonError};

use rwc_api::principal::{ANONYMOUS, grant};
use rwc_api::{EffectiveLimits, Limits, PrincipalInfo, PrincipalLimits};
use rwc_protocol::{Authenticator, CertName, Error, ErrorKind, PeerInfo, TokenDigest};
use serde::Deserialize;
use tokio::sync::Semaphore;

use crate::instance::Slot;

/// One `[[principals]]` entry of the node's config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrincipalConfig {
    /// The principal's name, as logs and `info()` show it.
    pub name: String,
    /// SHA-256 of its token, 64 hex digits (`rwc-node hash-token` prints the line).
    pub token_sha256: Option<String>,
    /// A name its client certificate must carry: `CN=NAME`, `DNS=NAME`, `URI=URI` or
    /// `email=ADDRESS` (needs the node's `tls_client_ca`).
    pub client_cert: Option<String>,
    /// What it may do: root operations (`upload`, `instantiate`, `run`, `info`) and
    /// capabilities (`sys`, `log`).
    pub grants: Vec<String>,
    /// Its own limits, each capped by the node's `[limits]`.
    pub limits: PrincipalLimits,
}

/// Every principal of a node; checks connecting peers ([`Authenticator`]).
#[derive(Debug)]
pub struct Principals {
    /// In config order; a node without `[[principals]]` has only the anonymous one.
    all: Vec<Arc<Principal>>,
    anonymous: bool,
}

/// A principal: its grants, its limits, and what it holds on the node.
#[derive(Debug)]
pub struct Principal {
    name: String,
    grants: BTreeSet<String>,
    /// Its token's digest and the name its client certificate must carry; neither only
    /// for the anonymous principal (a `[[principals]]` entry must give one).
    token: Option<TokenDigest>,
    cert: Option<CertName>,
    limits: EffectiveLimits,
    /// Live instances, over all the principal's connections.
    instances: Arc<AtomicUsize>,
    /// Guest calls running, over all its connections.
    calls: Arc<Semaphore>,
    /// Hashes of the modules it uploaded (a named principal sees only these).
    modules: Mutex<HashSet<String>>,
}

/// Whether `name` is something a principal can be granted. One place decides, so new
/// kinds of grant are added here.
pub fn is_known_grant(name: &str) -> bool {
    use rwc_api::capability::{EXEC_PREFIX, FS_PREFIX};
    let named = |prefix: &str| name.strip_prefix(prefix).is_some_and(|n| !n.is_empty());
    grant::ROOT_OPERATIONS.contains(&name)
        || rwc_api::capability::ALL.contains(&name)
        || named(FS_PREFIX)
        || named(EXEC_PREFIX)
}

impl Principals {
    /// The principals `config` names (or the anonymous one if it names none), checked:
    /// unique names, a valid way to prove each, known grants. `grants` are the node's
    /// global grants (the anonymous principal's capabilities), `limits` the node's;
    /// `client_ca` whether the node verifies client certificates.
    pub fn new(
        config: &[PrincipalConfig],
        grants: &[String],
        limits: &Limits,
        client_ca: bool,
    ) -> Result<Principals, String> {
        if config.is_empty() {
            let mut all: BTreeSet<String> = grant::ROOT_OPERATIONS
                .iter()
                .map(|g| (*g).to_owned())
                .collect();
            all.extend(grants.iter().cloned());
            let principal = Principal::new(
                ANONYMOUS.to_owned(),
                all,
                None,
                None,
                effective(&PrincipalLimits::default(), limits),
            );
            return Ok(Principals {
                all: vec![Arc::new(principal)],
                anonymous: true,
            });
        }
        let mut all: Vec<Arc<Principal>> = Vec::new();
        for entry in config {
            let p = Principal::from_config(entry, limits, client_ca)?;
            if all.iter().any(|q| q.name == p.name) {
                return Err(format!("two [[principals]] are named `{}`", p.name));
            }
            if let Some(q) = all.iter().find(|q| q.token.is_some() && q.token == p.token) {
                return Err(format!(
                    "principals `{}` and `{}` have the same token_sha256: give each its own token",
                    q.name, p.name
                ));
            }
            if let Some(q) = all
                .iter()
                .find(|q| q.token.is_none() && p.token.is_none() && q.cert == p.cert)
            {
                return Err(format!(
                    "principals `{}` and `{}` are both proven by client_cert = \"{}\" alone: a certificate could not tell them apart",
                    q.name,
                    p.name,
                    p.cert.as_ref().map(ToString::to_string).unwrap_or_default()
                ));
            }
            all.push(Arc::new(p));
        }
        Ok(Principals {
            all,
            anonymous: false,
        })
    }

    /// Whether this is a node without `[[principals]]` (one anonymous principal).
    pub fn is_anonymous(&self) -> bool {
        self.anonymous
    }

    /// The principal named `name`; `None` names the anonymous one (if the node has it).
    pub fn get(&self, name: Option<&str>) -> Option<&Arc<Principal>> {
        match name {
            Some(name) => self.all.iter().find(|p| p.name == name),
            None if self.anonymous => self.all.first(),
            None => None,
        }
    }

    /// Who `peer` is: the principal its token and certificate prove, if any.
    fn identify(&self, peer: &PeerInfo, token: Option<&[u8]>) -> Result<&Arc<Principal>, Refusal> {
        if self.anonymous {
            // A token or certificate proves nothing more on a node without principals.
            return self.all.first().ok_or(Refusal::NoPrincipal);
        }
        match token {
            Some(token) => {
                // Compare with every principal's digest, so the time taken does not tell
                // which one (if any) matched.
                let found = self
                    .all
                    .iter()
                    .map(|p| p.token.is_some_and(|d| d.matches(token)))
                    .collect::<Vec<bool>>();
                let p = found
                    .iter()
                    .position(|&m| m)
                    .map(|i| &self.all[i])
                    .ok_or(Refusal::UnknownToken)?;
                match &p.cert {
                    Some(name) if !peer.tls.as_ref().is_some_and(|id| id.has(name)) => Err(
                        Refusal::CertificateMissing(p.name.clone(), name.to_string()),
                    ),
                    _ => Ok(p),
                }
            }
            None => {
                let Some(id) = &peer.tls else {
                    return Err(Refusal::NothingPresented);
                };
                self.all
                    .iter()
                    .find(|p| p.token.is_none() && p.cert.as_ref().is_some_and(|n| id.has(n)))
                    .ok_or_else(|| Refusal::UnknownCertificate(id.to_string()))
            }
        }
    }
}

/// Why a peer was refused; logged (never the token), while the peer is told only that
/// authentication failed.
#[derive(Debug)]
enum Refusal {
    NoPrincipal,
    NothingPresented,
    UnknownToken,
    UnknownCertificate(String),
    CertificateMissing(String, String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NoPrincipal => f.write_str("the node has no principal"),
            Refusal::NothingPresented => {
                f.write_str("the peer presented neither a token nor a client certificate")
            }
            Refusal::UnknownToken => f.write_str("its token matches no principal"),
            Refusal::UnknownCertificate(names) => {
                write!(f, "its client certificate ({names}) matches no principal")
            }
            Refusal::CertificateMissing(_, want) => write!(
                f,
                "its token is right, but the principal also needs a client certificate with {want}"
            ),
        }
    }
}

impl Authenticator for Principals {
    fn authenticate(&self, peer: &PeerInfo, credentials: Option<&[u8]>) -> Result<String, Error> {
        match self.identify(peer, credentials) {
            Ok(p) => {
                tracing::debug!(peer = %peer, principal = %p.name, "authenticated");
                Ok(p.name.clone())
            }
            Err(why) => {
                match &why {
                    Refusal::CertificateMissing(name, _) => {
                        tracing::warn!(peer = %peer, principal = %name, reason = %why, "refused a connection: authentication failed");
                    }
                    _ => {
                        tracing::warn!(peer = %peer, reason = %why, "refused a connection: authentication failed");
                    }
                }
                Err(Error::new(ErrorKind::Denied, "authentication failed"))
            }
        }
    }
}

impl Principal {
    fn new(
        name: String,
        grants: BTreeSet<String>,
        token: Option<TokenDigest>,
        cert: Option<CertName>,
        limits: EffectiveLimits,
    ) -> Principal {
        Principal {
            calls: Arc::new(Semaphore::new(limits.max_concurrent_calls)),
            name,
            grants,
            token,
            cert,
            limits,
            instances: Arc::new(AtomicUsize::new(0)),
            modules: Mutex::new(HashSet::new()),
        }
    }

    fn from_config(
        entry: &PrincipalConfig,
        limits: &Limits,
        client_ca: bool,
    ) -> Result<Principal, String> {
        let name = entry.name.trim();
        if name.is_empty() {
            return Err("a [[principals]] entry has no name".to_owned());
        }
        let context = |e: String| format!("principal `{name}`: {e}");
        let token = entry
            .token_sha256
            .as_deref()
            .map(str::parse::<TokenDigest>)
            .transpose()
            .map_err(context)?;
        let cert = entry
            .client_cert
            .as_deref()
            .map(str::parse::<CertName>)
            .transpose()
            .map_err(|e| context(format!("client_cert: {e}")))?;
        if token.is_none() && cert.is_none() {
            return Err(context(
                "give it token_sha256 = \"…\" (from `rwc-node hash-token`) or client_cert = \"CN=…\""
                    .to_owned(),
            ));
        }
        if cert.is_some() && !client_ca {
            return Err(context(
                "it is proven by a client certificate, but the node verifies none: give the node --tls-client-ca (tls_client_ca)"
                    .to_owned(),
            ));
        }
        let mut grants = BTreeSet::new();
        for g in &entry.grants {
            if !is_known_grant(g) {
                return Err(context(format!(
                    "unknown grant `{g}` (grants are {}, the capabilities {}, fs:DIR and exec:COMMAND)",
                    grant::ROOT_OPERATIONS.join(", "),
                    rwc_api::capability::ALL.join(", ")
                )));
            }
            grants.insert(g.clone());
        }
        Ok(Principal::new(
            name.to_owned(),
            grants,
            token,
            cert,
            effective(&entry.limits, limits),
        ))
    }

    /// The principal's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether it is the anonymous principal of a node without `[[principals]]`: the only
    /// one proven by nothing ([`from_config`](Self::from_config) refuses such an entry).
    fn is_anonymous(&self) -> bool {
        self.token.is_none() && self.cert.is_none()
    }

    /// Whether the principal holds `grant`. `exec` covers every `exec:NAME`.
    pub fn holds(&self, grant: &str) -> bool {
        use rwc_api::capability::{EXEC, EXEC_PREFIX};
        self.grants.contains(grant)
            || (grant.starts_with(EXEC_PREFIX) && self.grants.contains(EXEC))
    }

    /// The grant check: `Ok` if the principal holds `grant` (a root operation or a
    /// capability), else a `denied` error naming it.
    pub fn check(&self, grant: &str) -> Result<(), Error> {
        if self.holds(grant) {
            return Ok(());
        }
        let how = if self.is_anonymous() {
            "add it to the node's `grants`"
        } else {
            "add it to the principal's `grants` in the node's config"
        };
        Err(Error::new(
            ErrorKind::Denied,
            format!(
                "principal `{}` lacks the grant `{grant}` ({how})",
                self.name
            ),
        ))
    }

    /// The limits it runs under.
    pub fn limits(&self) -> &EffectiveLimits {
        &self.limits
    }

    /// What `info()` tells it about itself.
    pub fn info(&self) -> PrincipalInfo {
        PrincipalInfo {
            name: self.name.clone(),
            grants: self.grants.iter().cloned().collect(),
            limits: self.limits.clone(),
        }
    }

    /// Whether it may find the module `hash`: one it uploaded (the anonymous principal,
    /// alone on its node, sees every module the node holds).
    pub(crate) fn sees_module(&self, hash: &str) -> bool {
        self.is_anonymous()
            || self
                .modules
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(hash)
    }

    /// Records that it uploaded the module `hash`.
    pub(crate) fn uploaded(&self, hash: &str) {
        self.modules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(hash.to_owned());
    }

    /// Takes one of its instance slots, or says it holds its limit.
    pub(crate) fn take_instance(&self) -> Result<Slot, Error> {
        let max = self.limits.max_instances;
        Slot::take(&self.instances, max).ok_or_else(|| {
            Error::new(
                ErrorKind::Overloaded,
                format!(
                    "principal `{}` holds {max} live instances, its limit; drop or close some first",
                    self.name
                ),
            )
        })
    }

    /// Takes one of its call slots for the call's length, or says it runs its limit.
    pub(crate) fn take_call(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Error> {
        self.calls.clone().try_acquire_owned().map_err(|_| {
            Error::new(
                ErrorKind::Overloaded,
                format!(
                    "principal `{}` is running {} guest calls, its limit; retry later",
                    self.name, self.limits.max_concurrent_calls
                ),
            )
        })
    }
}

/// A principal's limits, each capped by the node's.
pub(crate) fn effective(own: &PrincipalLimits, node: &Limits) -> EffectiveLimits {
    let cap = |own: Option<u64>, node: u64| own.map_or(node, |v| v.min(node));
    let cap_count = |own: Option<usize>, node: usize| own.map_or(node, |v| v.min(node));
    EffectiveLimits {
        memory_bytes: cap(own.memory_bytes, node.memory_bytes),
        fuel: own.fuel,
        call_timeout_ms: cap(own.call_timeout_ms, node.call_timeout_ms),
        max_instances: cap_count(own.max_instances, node.max_instances),
        max_concurrent_calls: cap_count(own.max_concurrent_calls, node.max_concurrent_calls),
        max_module_bytes: cap(own.max_module_bytes, node.max_module_bytes),
    }
}

#[cfg(test)]
mod tests {
    use rwc_protocol::TlsIdentity;

    use super::*;

    fn entry(
        name: &str,
        token: Option<&str>,
        cert: Option<&str>,
        grants: &[&str],
    ) -> PrincipalConfig {
        PrincipalConfig {
            name: name.to_owned(),
            token_sha256: token.map(|t| TokenDigest::of(t.as_bytes()).to_string()),
            client_cert: cert.map(str::to_owned),
            grants: grants.iter().map(|g| (*g).to_owned()).collect(),
            limits: PrincipalLimits::default(),
        }
    }

    fn cert(cn: &str) -> PeerInfo {
        PeerInfo {
            address: Some("127.0.0.1:1".to_owned()),
            tls: Some(TlsIdentity {
                common_names: vec![cn.to_owned()],
                ..TlsIdentity::default()
            }),
            tls_resumed: false,
        }
    }

    #[test]
    fn tokens_and_certificates_prove_principals() {
        let ps = Principals::new(
            &[
                entry("ops", Some("ops-token"), None, &["run"]),
                entry("ci", None, Some("CN=ci"), &["upload"]),
                entry("both", Some("both-token"), Some("CN=both"), &[]),
            ],
            &[],
            &Limits::default(),
            true,
        )
        .unwrap();
        let plain = PeerInfo::at("127.0.0.1:1");
        let who =
            |peer: &PeerInfo, token: Option<&str>| ps.authenticate(peer, token.map(str::as_bytes));
        assert_eq!(who(&plain, Some("ops-token")).unwrap(), "ops");
        assert_eq!(who(&cert("ci"), None).unwrap(), "ci");
        assert_eq!(who(&cert("both"), Some("both-token")).unwrap(), "both");
        for (peer, token) in [
            (&plain, Some("wrong")),
            (&plain, None),
            (&cert("stranger"), None),
            (&plain, Some("both-token")),
            (&cert("ci"), Some("both-token")),
        ] {
            let e = who(peer, token).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Denied);
            assert_eq!(e.message(), "authentication failed");
        }
    }

    #[test]
    fn grants_and_limits_are_per_principal() {
        let mut ops = entry("ops", Some("t"), None, &["run", "sys"]);
        ops.limits.memory_bytes = Some(1 << 20);
        ops.limits.max_instances = Some(100_000);
        let ps = Principals::new(&[ops], &[], &Limits::default(), false).unwrap();
        let p = ps.get(Some("ops")).unwrap();
        assert!(p.check("run").is_ok());
        let e = p.check("upload").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Denied);
        assert!(e.message().contains("lacks the grant `upload`"), "{e}");
        assert_eq!(p.limits().memory_bytes, 1 << 20);
        // Capped by the node's.
        assert_eq!(p.limits().max_instances, Limits::default().max_instances);
        assert!(
            ps.get(None).is_none(),
            "a node with principals has no anonymous one"
        );
    }

    #[test]
    fn without_principals_anonymous_has_the_root_operations_and_global_grants() {
        let ps = Principals::new(&[], &["sys".to_owned()], &Limits::default(), false).unwrap();
        assert!(ps.is_anonymous());
        let p = ps.get(None).unwrap();
        for g in ["upload", "instantiate", "run", "info", "sys"] {
            assert!(p.check(g).is_ok(), "{g}");
        }
        assert!(p.check("log").is_err());
        assert_eq!(
            ps.authenticate(&PeerInfo::at("unix:/x"), None).unwrap(),
            ANONYMOUS
        );
    }

    #[test]
    fn bad_principals_are_refused_with_what_to_fix() {
        let limits = Limits::default();
        for (entries, want, ca) in [
            (vec![entry("", Some("t"), None, &[])], "no name", false),
            (vec![entry("a", None, None, &[])], "token_sha256", false),
            (
                vec![entry("a", Some("t"), None, &["uplod"])],
                "unknown grant `uplod`",
                false,
            ),
            (
                vec![entry("a", None, Some("CN=a"), &[])],
                "--tls-client-ca",
                false,
            ),
            (
                vec![entry("a", None, Some("cn:a"), &[])],
                "client_cert",
                true,
            ),
            (
                vec![
                    entry("a", Some("t"), None, &[]),
                    entry("a", Some("u"), None, &[]),
                ],
                "two [[principals]] are named `a`",
                false,
            ),
            (
                vec![
                    entry("a", Some("t"), None, &[]),
                    entry("b", Some("t"), None, &[]),
                ],
                "same token_sha256",
                false,
            ),
            (
                vec![
                    entry("a", None, Some("CN=x"), &[]),
                    entry("b", None, Some("CN=x"), &[]),
                ],
                "could not tell them apart",
                true,
            ),
        ] {
            let e = Principals::new(&entries, &[], &limits, ca).unwrap_err();
            assert!(e.contains(want), "{e} (wanted {want})");
        }
        let mut bad = entry("a", None, None, &[]);
        bad.token_sha256 = Some("abc".to_owned());
        let e = Principals::new(&[bad], &[], &limits, false).unwrap_err();
        assert!(e.contains("64 hex digits"), "{e}");
    }
}
