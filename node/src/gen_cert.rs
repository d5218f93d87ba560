//! `rwc-node gen-cert`: a working TLS setup in one command. Writes a CA (`ca.pem`,
//! `ca.key`), a node certificate it signed (`node.pem`, `node.key`) and, for each
//! `--client NAME`, a client certificate (`NAME.pem`, `NAME.key`, subject `CN=NAME`).
//!
//! A CA already in the directory is reused, so running it again with `--client NAME`
//! adds a client to an existing setup; an existing certificate is never overwritten.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// What `gen-cert` was asked for.
#[derive(Debug, clap::Args)]
pub struct GenCert {
    /// Directory to write the files to (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// A name clients reach the node by, for its certificate: a DNS name or an IP address
    /// (repeat for several). localhost, 127.0.0.1 and ::1 are always included.
    #[arg(long = "san", value_name = "NAME")]
    sans: Vec<String>,
    /// Also write a client certificate for NAME (subject CN=NAME; repeat for several):
    /// NAME.pem and NAME.key, for `rwc --tls-cert/--tls-key` and `client_cert = "CN=NAME"`.
    #[arg(long = "client", value_name = "NAME")]
    clients: Vec<String>,
}

/// Names every node certificate carries, so a node is reachable on its own machine (and
/// over `tls+unix:` sockets, which check `localhost`).
const LOCAL_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// How long the CA is valid.
const CA_DAYS: i64 = 3650;
/// How long node and client certificates are valid.
const LEAF_DAYS: i64 = 825;

impl GenCert {
    /// Writes the files; returns what to tell the user.
    pub fn run(&self) -> Result<String, String> {
        let dir = &self.out;
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut report = String::new();
        let (issuer, ca_new) = ca(dir)?;
        let file = |name: &str| dir.join(name);
        report += &if ca_new {
            format!(
                "wrote {} and {} (the CA; keep ca.key private)\n",
                file("ca.pem").display(),
                file("ca.key").display()
            )
        } else {
            format!("reusing the CA in {}\n", file("ca.pem").display())
        };
        let node_pem = file("node.pem");
        if node_pem.exists() {
            if !self.sans.is_empty() {
                return Err(format!(
                    "{} exists: remove node.pem and node.key to make one with other names",
                    node_pem.display()
                ));
            }
            report += &format!("keeping the node certificate {}\n", node_pem.display());
        } else {
            let mut names: Vec<String> = LOCAL_NAMES.iter().map(|n| (*n).to_owned()).collect();
            for san in &self.sans {
                if !names.contains(san) {
                    names.push(san.clone());
                }
            }
            let cn = self.sans.first().map_or("rwc node", String::as_str);
            leaf(
                &issuer,
                dir,
                "node",
                cn,
                names.clone(),
                ExtendedKeyUsagePurpose::ServerAuth,
            )?;
            report += &format!(
                "wrote {} and {}: the node's certificate, for {}\n",
                node_pem.display(),
                file("node.key").display(),
                names.join(", ")
            );
        }
        for client in &self.clients {
            check_client_name(client)?;
            if file(&format!("{client}.pem")).exists() {
                return Err(format!(
                    "{} exists: pick another name or remove it",
                    file(&format!("{client}.pem")).display()
                ));
            }
            leaf(
                &issuer,
                dir,
                client,
                client,
                Vec::new(),
                ExtendedKeyUsagePurpose::ClientAuth,
            )?;
            report += &format!(
                "wrote {} and {}: a client certificate with CN={client} (client_cert = \"CN={client}\")\n",
                file(&format!("{client}.pem")).display(),
                file(&format!("{client}.key")).display()
            );
        }
        let d = dir.display();
        report += &format!(
            "serve:   rwc-node --listen HOST:PORT --tls-cert {d}/node.pem --tls-key {d}/node.key{}\n\
             connect: rwc info --node tls://HOST:PORT --tls-ca {d}/ca.pem{}\n",
            if self.clients.is_empty() {
                String::new()
            } else {
                format!(" --tls-client-ca {d}/ca.pem")
            },
            match self.clients.first() {
                Some(c) => format!(" --tls-cert {d}/{c}.pem --tls-key {d}/{c}.key"),
                None => String::new(),
            }
        );
        Ok(report)
    }
}

/// The CA in `dir`, or a new one written there; whether it is new.
fn ca(dir: &Path) -> Result<(Issuer<'static, KeyPair>, bool), String> {
    let (pem, key) = (dir.join("ca.pem"), dir.join("ca.key"));
    if pem.exists() || key.exists() {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
        };
        let key_pair = KeyPair::from_pem(&read(&key)?)
            .map_err(|e| format!("{} is not a private key: {e}", key.display()))?;
        let issuer = Issuer::from_ca_cert_pem(&read(&pem)?, key_pair)
            .map_err(|e| format!("{} is not a CA certificate: {e}", pem.display()))?;
        return Ok((issuer, false));
    }
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.distinguished_name.push(DnType::CommonName, "rwc CA");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_after = OffsetDateTime::now_utc() + Duration::days(CA_DAYS);
    let key_pair = KeyPair::generate().map_err(|e| format!("cannot make a key: {e}"))?;
    let cert = params
        .self_signed(&key_pair)
        .map_err(|e| format!("cannot make the CA certificate: {e}"))?;
    write(&pem, &cert.pem(), false)?;
    write(&key, &key_pair.serialize_pem(), true)?;
    Ok((Issuer::new(params, key_pair), true))
}

/// Writes `NAME.pem` and `NAME.key`: a certificate for `cn` and `sans`, signed by the CA.
fn leaf(
    issuer: &Issuer<'static, KeyPair>,
    dir: &Path,
    name: &str,
    cn: &str,
    sans: Vec<String>,
    usage: ExtendedKeyUsagePurpose,
) -> Result<(), String> {
    let mut params =
        CertificateParams::new(sans).map_err(|e| format!("not a valid certificate name: {e}"))?;
    params.distinguished_name.push(DnType::CommonName, cn);
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.not_after = OffsetDateTime::now_utc() + Duration::days(LEAF_DAYS);
    let key_pair = KeyPair::generate().map_err(|e| format!("cannot make a key: {e}"))?;
    let cert = params
        .signed_by(&key_pair, issuer)
        .map_err(|e| format!("cannot sign the certificate for {name}: {e}"))?;
    write(&dir.join(format!("{name}.pem")), &cert.pem(), false)?;
    write(
        &dir.join(format!("{name}.key")),
        &key_pair.serialize_pem(),
        true,
    )
}

/// A client's name becomes file names and a CN: letters, digits, `.`, `_`, `-`.
fn check_client_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        return Err(format!(
            "`{name}` cannot name a client: use letters, digits, `.`, `_` and `-`"
        ));
    }
    if matches!(name, "ca" | "node") {
        return Err(format!(
            "`{name}` is the name of a file gen-cert writes for itself"
        ));
    }
    Ok(())
}

/// Writes a new file; a private key only its owner can read.
fn write(path: &Path, text: &str, private: bool) -> Result<(), String> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
