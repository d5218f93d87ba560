//! The security suite: real `rwc-node` processes serving TLS on 127.0.0.1 with the
//! certificates `rwc-node gen-cert` writes, principals proven by tokens (hashed by
//! `rwc-node hash-token`) and client certificates, driven by the `rwc` command line.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use std::time::{Duration, Instant};

use rwc_client::discovery::RegistryDiscovery;
use rwc_client::registry::RegistryClient;
use rwc_client::{
    Client, ConnectOptions, ErrorKind, InstanceOptions, MapOptions, Pool, TlsClientConfig, Token,
    Value,
};
use support::{Proc, Scratch, eventually, node_bin, rwc_at, rwc_bin, wat};

/// The token of the principal `ops` (all grants).
const OPS_TOKEN: &str = "ops-secret-4b1d9e0c";
/// The token of the principal `reader` (`run` and `info` only: no `upload`).
const READER_TOKEN: &str = "reader-secret-77aa31f2";
/// The token of the principal `dev` (all grants, like `ops`, but another principal).
const DEV_TOKEN: &str = "dev-secret-0f9c2d11";
/// The token nodes register with.
const REGISTER_TOKEN: &str = "register-secret-5e6f";

/// Runs `rwc-node ARGS…` to completion with `stdin`; returns (exit code, stdout, stderr).
fn node_tool(args: &[&str], stdin: &str) -> (i32, String, String) {
    support::run(&node_bin(), args, stdin)
}

/// `rwc-node gen-cert --out DIR ARGS…`, which must succeed.
fn gen_cert(dir: &Path, args: &[&str]) {
    let out = dir.to_string_lossy();
    let mut all = vec!["gen-cert", "--out", &out];
    all.extend_from_slice(args);
    let (code, stdout, err) = node_tool(&all, "");
    assert_eq!(code, 0, "gen-cert failed: {stdout}{err}");
}

/// The `token_sha256 = "…"` line `rwc-node hash-token` prints for `token`.
fn hash_token(token: &str) -> String {
    let (code, out, err) = node_tool(&["hash-token"], &format!("{token}\n"));
    assert_eq!(code, 0, "hash-token failed: {err}");
    let line = out.trim().to_owned();
    assert!(line.starts_with("token_sha256 = \""), "{line}");
    assert!(
        !line.contains(token),
        "the line holds only the digest: {line}"
    );
    line
}

/// A TLS setup in a scratch directory: CA, node certificate, a client certificate `ops`,
/// the token files and a config with the principals `ops`, `reader` and `certops`.
struct Setup {
    dir: Scratch,
}

impl Setup {
    fn new() -> Setup {
        let dir = Scratch::new();
        gen_cert(dir.path(), &["--client", "certops"]);
        dir.file("ops.token", format!("{OPS_TOKEN}\n"));
        dir.file("reader.token", format!("{READER_TOKEN}\n"));
        dir.file("wrong.token", "not-a-token-anyone-has\n");
        dir.file("register.token", format!("{REGISTER_TOKEN}\n"));
        let config = format!(
            r#"
[[principals]]
name = "ops"
{}
grants = ["upload", "instantiate", "run", "info", "sys", "log"]

[[principals]]
name = "reader"
{}
grants = ["run", "info"]

[[principals]]
name = "dev"
{}
grants = ["upload", "instantiate", "run", "info"]
"#,
            hash_token(OPS_TOKEN),
            hash_token(READER_TOKEN),
            hash_token(DEV_TOKEN)
        );
        dir.file("node.toml", &config);
        // A principal proven by a client certificate needs a node that verifies them.
        dir.file(
            "node-certs.toml",
            format!(
                r#"{config}
[[principals]]
name = "certops"
client_cert = "CN=certops"
grants = ["upload", "instantiate", "run", "info"]
"#
            ),
        );
        Setup { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    /// `rwc COMMAND --node tls://ADDR --tls-ca CA FLAGS…`: [`rwc_at`] to the TLS `node`,
    /// trusting the CA of this setup.
    fn rwc_tls(&self, command: &str, node: &Proc, flags: &[&str]) -> (i32, String, String) {
        let ca = self.path("ca.pem");
        let mut args = vec!["--tls-ca", &ca];
        args.extend_from_slice(flags);
        rwc_at(command, &tls(node), &args)
    }

    /// Starts a TLS node with the principals, its log going to `node.log`; with
    /// `client_ca`, it requires client certificates signed by the CA and knows `certops`.
    fn node(&self, client_ca: bool) -> Proc {
        let (config, extra) = if client_ca {
            (
                "node-certs.toml",
                vec!["--tls-client-ca".to_owned(), self.path("ca.pem")],
            )
        } else {
            ("node.toml", Vec::new())
        };
        let mut cmd = self.node_command("127.0.0.1:0", Some(config));
        cmd.args(extra).env("RUST_LOG", "debug");
        self.start_logged(cmd, "node.log", "start a TLS node")
    }

    /// `rwc-node --no-cache --listen LISTEN`; with `config` (a file of the setup), that
    /// config and the setup's node certificate and key: a TLS node with principals.
    fn node_command(&self, listen: &str, config: Option<&str>) -> Command {
        let mut cmd = Command::new(node_bin());
        cmd.args(["--no-cache", "--listen", listen]);
        if let Some(config) = config {
            cmd.args(["--config", &self.path(config)])
                .args(["--tls-cert", &self.path("node.pem")])
                .args(["--tls-key", &self.path("node.key")]);
        }
        cmd
    }

    /// Starts `cmd`, its stderr going to the setup's file `log`; `what` says what failed.
    fn start_logged(&self, cmd: Command, log: &str, what: &str) -> Proc {
        let log = std::fs::File::create(self.dir.path().join(log)).expect("a log file");
        Proc::start_with_stderr(cmd, Stdio::from(log)).expect(what)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("node.log")).unwrap_or_default()
    }

    /// The node's log once it holds `text` (the node writes it after the client has
    /// already seen the refusal), or as it is after 10 s.
    fn log_with(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if log.contains(text) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Asserts that an `rwc` run was denied (exit code 5) saying `needle`; `what` names the
/// case.
fn assert_denied((code, _, err): &(i32, String, String), needle: &str, what: &str) {
    assert_eq!(*code, 5, "{what}: {err}");
    assert!(err.contains(needle), "{what}: {err}");
}

/// `tls://ADDR` for a node that printed `listening on ADDR`.
fn tls(node: &Proc) -> String {
    format!("tls://{}", node.addr)
}

#[test]
fn tls_with_a_trusted_ca_and_a_token_calls_and_each_tls_failure_is_distinct() {
    let s = Setup::new();
    let node = s.node(false);
    let module = s.dir.file("math.wat", wat::MATH);
    let ca = s.path("ca.pem");
    let token = s.path("ops.token");
    let call = |node_addr: &str, ca: &str| {
        rwc_at(
            "call",
            node_addr,
            &["--tls-ca", ca, "--token-file", &token, &module, "sq", "12"],
        )
    };

    // The CA gen-cert wrote is trusted: the call works.
    let (code, out, err) = call(&tls(&node), &ca);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "144");

    // A CA the node's certificate is not signed by: untrusted, exit code 5 (denied).
    let other = Scratch::new();
    gen_cert(other.path(), &[]);
    let other_ca = other.path().join("ca.pem").to_string_lossy().into_owned();
    let untrusted = call(&tls(&node), &other_ca);
    assert_denied(
        &untrusted,
        "not signed by a CA this client trusts",
        "untrusted",
    );

    // The plain protocol to a TLS node: told to use tls://.
    let (code, _, err) = call(&node.addr, &ca);
    assert_ne!(code, 0);
    assert!(
        err.contains("speaks TLS") && err.contains("tls://"),
        "plain to TLS: {err}"
    );
    let log = s.log_with("plain rwc client");
    assert!(
        log.contains("plain rwc client"),
        "the node logs the plain client: {log}"
    );

    // TLS to a plain node: told to drop tls://.
    let plain = support::spawn_node(&[]);
    let (code, _, err) = call(&tls(&plain), &ca);
    assert_ne!(code, 0);
    assert!(
        err.contains("speaks plain rwc, not TLS"),
        "TLS to plain: {err}"
    );
}

#[test]
fn a_certificate_for_other_names_is_a_name_mismatch() {
    // The node certificate names localhost, 127.0.0.1 and ::1; 127.0.0.2 is loopback too
    // but not among them.
    let s = Setup::new();
    let cmd = s.node_command("127.0.0.2:0", Some("node.toml"));
    let node = s.start_logged(cmd, "node.log", "start a TLS node");
    let result = s.rwc_tls("info", &node, &["--token-file", &s.path("ops.token")]);
    assert_denied(
        &result,
        "not valid for the name `127.0.0.2`",
        "name mismatch",
    );
    let err = &result.2;
    assert!(
        err.contains("127.0.0.1"),
        "it says which names it is for: {err}"
    );
}

#[test]
fn tokens_right_wrong_and_missing() {
    let s = Setup::new();
    let node = s.node(false);
    let ca = s.path("ca.pem");
    let addr = tls(&node);
    let info = |token_file: Option<&str>| {
        let mut args = vec!["info", "--node", &addr, "--tls-ca", &ca];
        let path;
        if let Some(f) = token_file {
            path = s.path(f);
            args.extend_from_slice(&["--token-file", &path]);
        }
        // `rwc` inherits the environment: make sure no RWC_TOKEN there helps.
        let out = Command::new(support::rwc_bin())
            .args(&args)
            .env_remove("RWC_TOKEN")
            .output()
            .expect("run rwc");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (code, out, err) = info(Some("ops.token"));
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("info is JSON");
    assert_eq!(json["principal"]["name"], "ops", "{out}");

    for (file, what) in [(Some("wrong.token"), "wrong"), (None, "missing")] {
        assert_denied(
            &info(file),
            "authentication failed",
            &format!("{what} token"),
        );
    }

    // RWC_TOKEN holds the token itself.
    let out = Command::new(support::rwc_bin())
        .args(["info", "--node", &tls(&node), "--tls-ca", &ca])
        .env("RWC_TOKEN", READER_TOKEN)
        .output()
        .expect("run rwc");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("info is JSON");
    assert_eq!(json["principal"]["name"], "reader");

    let log = s.log_with("refused a connection: authentication failed");
    assert!(
        log.contains("refused a connection: authentication failed"),
        "refusals are logged: {log}"
    );
    assert!(log.contains("127.0.0.1"), "with the peer address: {log}");
    for token in [OPS_TOKEN, READER_TOKEN, "not-a-token-anyone-has"] {
        assert!(!log.contains(token), "the node log holds a token: {log}");
    }
}

#[test]
fn a_principal_without_upload_is_denied_naming_the_grant() {
    let s = Setup::new();
    let node = s.node(false);
    let module = s.dir.file("math.wat", wat::MATH);
    let flags = ["--token-file", &s.path("reader.token"), &module];
    let denied = s.rwc_tls("upload", &node, &flags);
    assert_denied(&denied, "`upload`", "names the missing grant");
}

#[test]
fn client_certificates_are_required_and_prove_a_principal() {
    let s = Setup::new();
    let node = s.node(true);
    let module = s.dir.file("math.wat", wat::MATH);
    let without = s.rwc_tls("info", &node, &["--token-file", &s.path("ops.token")]);
    assert_denied(
        &without,
        "requires a client certificate",
        "missing client certificate",
    );

    let (code, out, err) = s.rwc_tls(
        "call",
        &node,
        &[
            "--tls-cert",
            &s.path("certops.pem"),
            "--tls-key",
            &s.path("certops.key"),
            &module,
            "sq",
            "7",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "49");

    // A certificate signed by another CA is refused.
    let other = Scratch::new();
    gen_cert(other.path(), &["--client", "certops"]);
    let other_cert = s.rwc_tls(
        "info",
        &node,
        &[
            "--tls-cert",
            &other.path().join("certops.pem").to_string_lossy(),
            "--tls-key",
            &other.path().join("certops.key").to_string_lossy(),
        ],
    );
    let needle = "does not trust this client's certificate";
    assert_denied(&other_cert, needle, "a certificate of another CA");
}

#[test]
fn beyond_loopback_a_node_needs_tls_and_principals_or_insecure() {
    let out = Command::new(node_bin())
        .args(["--listen", "0.0.0.0:0"])
        .stdin(Stdio::null())
        .output()
        .expect("run rwc-node");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to serve"), "{err}");
    assert!(
        err.contains("TLS") && err.contains("principal"),
        "names what is missing: {err}"
    );
    assert!(err.contains("--insecure"), "{err}");

    let s = Setup::new();
    let mut cmd = s.node_command("0.0.0.0:0", None);
    cmd.arg("--insecure");
    let node = s.start_logged(cmd, "node.log", "--insecure starts");
    assert!(node.addr.starts_with("0.0.0.0:"), "{}", node.addr);
    let port = node.addr.trim_start_matches("0.0.0.0:");
    let (code, _, err) = rwc_at("ping", &format!("127.0.0.1:{port}"), &["--count", "1"]);
    assert_eq!(code, 0, "{err}");
    node.kill();
    assert!(s.log().contains("--insecure"), "it warns: {}", s.log());

    // With TLS and principals, a non-loopback address is fine.
    let cmd = s.node_command("0.0.0.0:0", Some("node.toml"));
    s.start_logged(cmd, "node.log", "a secured node starts");
}

impl Setup {
    /// What a Rust client connects with: the setup's CA and the token `token`.
    fn options(&self, token: &str) -> ConnectOptions {
        let ca = self.dir.path().join("ca.pem");
        let tls = TlsClientConfig::from_pem_files(Some(&ca), None).expect("the CA reads");
        ConnectOptions::new()
            .with_tls(tls)
            .with_token(Token::new(token).expect("a token"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_sees_only_its_own_modules_and_limits() {
    let s = Setup::new();
    let node = s.node(false);
    let ops = Client::connect_with(&tls(&node), &s.options(OPS_TOKEN))
        .await
        .expect("ops connects");
    let dev = Client::connect_with(&tls(&node), &s.options(DEV_TOKEN))
        .await
        .expect("dev connects");
    let module = ops.upload(wat::MATH.as_bytes()).await.expect("ops uploads");
    let hash = module.hash().to_owned();
    assert!(ops.module(&hash).await.expect("ops asks").is_some());
    // dev never uploaded it: for dev it does not exist, whoever else did.
    assert!(
        dev.module(&hash).await.expect("dev asks").is_none(),
        "dev reaches a module only ops uploaded"
    );
    // Uploading it itself makes it dev's too (the compiled code may be shared).
    let mine = dev.upload(wat::MATH.as_bytes()).await.expect("dev uploads");
    assert_eq!(mine.hash(), hash);
    let instance = dev
        .instantiate(&mine, InstanceOptions::default())
        .await
        .expect("dev instantiates");
    let nine: i64 = instance
        .call("sq", vec![Value::I64(3)])
        .await
        .expect("call");
    assert_eq!(nine, 9);

    // info tells each its own principal and limits.
    let info = dev.info().await.expect("info");
    let me = info.principal.expect("info names the caller");
    assert_eq!(me.name, "dev");
    assert!(me.grants.iter().any(|g| g == "upload"), "{:?}", me.grants);
    assert!(!me.grants.iter().any(|g| g == "sys"), "{:?}", me.grants);
    assert_eq!(me.limits.memory_bytes, info.limits.memory_bytes);
    ops.close();
    dev.close();
}

#[test]
fn an_expired_client_certificate_is_refused_as_expired() {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair};
    let s = Setup::new();
    let node = s.node(true);
    let read = |name: &str| std::fs::read_to_string(s.path(name)).expect("read");
    let ca_key = KeyPair::from_pem(&read("ca.key")).expect("the CA key");
    let issuer = Issuer::from_ca_cert_pem(&read("ca.pem"), ca_key).expect("the CA");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "certops");
    params.use_authority_key_identifier_extension = true;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(30);
    params.not_after = now - time::Duration::days(1);
    let key = KeyPair::generate().expect("a key");
    let cert = params.signed_by(&key, &issuer).expect("sign");
    let cert_file = s.dir.file("expired.pem", cert.pem());
    let key_file = s.dir.file("expired.key", key.serialize_pem());
    let flags = ["--tls-cert", &cert_file, "--tls-key", &key_file];
    let expired = s.rwc_tls("info", &node, &flags);
    assert_denied(&expired, "expired", "expired certificate");
    let log = s.log_with("the client's certificate has expired");
    assert!(
        log.contains("the client's certificate has expired"),
        "the node logs why: {log}"
    );
}

#[tokio::test]
async fn a_handshake_that_never_completes_is_dropped_within_the_timeout() {
    use tokio::io::AsyncReadExt;
    let s = Setup::new();
    let node = s.node(false);
    let mut stream = tokio::net::TcpStream::connect(&node.addr)
        .await
        .expect("connect");
    let started = Instant::now();
    // Send nothing: the node's handshake timeout (10 s) must close the connection.
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf))
        .await
        .expect("the node drops a silent peer within 30 s");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "closed, not answered: {read:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "dropped after {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_admits_only_token_holders_and_a_pool_reaches_its_tls_nodes() {
    let s = Setup::new();
    s.dir
        .file("registry.tokens", format!("# nodes\n{REGISTER_TOKEN}\n"));
    let registry_log = std::fs::File::create(s.dir.path().join("registry.log")).expect("log");
    let mut cmd = Command::new(rwc_bin());
    cmd.args(["registry", "--listen", "127.0.0.1:0"])
        .args([
            "--tls-cert",
            &s.path("node.pem"),
            "--tls-key",
            &s.path("node.key"),
        ])
        .args(["--register-token-file", &s.path("registry.tokens")]);
    let registry = Proc::start_with_stderr(cmd, Stdio::from(registry_log)).expect("registry");
    let registry_addr = format!("tls://{}", registry.addr);

    // A client without a registration token cannot register.
    let reader = RegistryClient::connect_with(&registry_addr, &{
        let mut o = s.options(OPS_TOKEN);
        o.token = None;
        o
    })
    .await
    .expect("listing is open");
    let err = reader
        .register("10.9.9.9:1", &["math"], Duration::from_secs(30))
        .await
        .expect_err("registering without a token");
    assert_eq!(err.kind(), ErrorKind::Denied, "{err}");
    // Nor with a wrong one: refused in the handshake.
    let err = RegistryClient::connect_with(&registry_addr, &s.options("not-the-token"))
        .await
        .expect_err("a wrong token");
    assert_eq!(err.kind(), ErrorKind::Denied, "{err}");

    // A node with the token registers (as tls://…); one without is refused, and says so.
    let register = |token: Option<&str>, log: &str| {
        let mut cmd = s.node_command("127.0.0.1:0", Some("node.toml"));
        cmd.args(["--register", &registry_addr, "--tag", "math"])
            .args(["--register-tls-ca", &s.path("ca.pem")])
            .args(["--register-ttl-secs", "3"]);
        if let Some(t) = token {
            cmd.args(["--register-token-file", &s.path(t)]);
        }
        s.start_logged(cmd, log, "a node")
    };
    let admitted = register(Some("register.token"), "admitted.log");
    let refused = register(None, "refused.log");
    let want = vec![format!("tls://{}", admitted.addr)];
    eventually(
        Duration::from_secs(20),
        "the node with the token registers",
        async || {
            reader
                .lookup("math")
                .await
                .is_ok_and(|e| e.iter().map(|e| e.addr.clone()).collect::<Vec<_>>() == want)
        },
    )
    .await;
    let read = |name: &str| std::fs::read_to_string(s.dir.path().join(name)).unwrap_or_default();
    eventually(
        Duration::from_secs(20),
        "the refused node logs it",
        async || read("refused.log").contains("cannot register"),
    )
    .await;
    eventually(
        Duration::from_secs(20),
        "the registry logs it",
        async || read("registry.log").contains("refused"),
    )
    .await;
    let listed = reader.lookup("math").await.expect("lookup");
    assert!(
        !listed.iter().any(|e| e.addr.contains(&refused.addr)),
        "the refused node is listed: {listed:?}"
    );

    // A pool from the registry reaches the TLS node with its own TLS settings and token.
    let options = s.options(OPS_TOKEN);
    let mut registry_options = options.clone();
    registry_options.token = None;
    let source =
        RegistryDiscovery::new(&registry_addr, Some("math")).with_options(registry_options);
    let mut pool = Pool::from_registry_with(&source, &options)
        .await
        .expect("a pool over TLS");
    assert_eq!(pool.len(), 1);
    pool.load(wat::MATH.as_bytes()).await.expect("load");
    let inputs: Vec<Vec<Value>> = (0..20).map(|i| vec![Value::I64(i)]).collect();
    let report = pool
        .map("sq", inputs, MapOptions::default())
        .await
        .expect("map");
    assert_eq!(report.succeeded(), 20);
    pool.close();
    for log in ["admitted.log", "refused.log", "registry.log"] {
        assert!(!read(log).contains(REGISTER_TOKEN), "{log} holds the token");
    }
}

/// Netref ids are per connection: a peer of principal `dev` that names, by raw id, the
/// objects `ops` holds (its module and instance are exports 1 and 2 of *its* connection)
/// reaches nothing; it loses its own connection, and `ops` keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_principals_instances_cannot_be_reached_by_netref_id() {
    use rwc_protocol::message::{Call, Message, Target};
    use rwc_protocol::{DecodeLimits, Error, Hello, MAGIC, PROTOCOL_VERSION, codec, frame};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let s = Setup::new();
    // Plain TCP on loopback (a node with principals needs no TLS there), so that the
    // hostile peer below can speak the wire protocol by hand.
    let mut cmd = Command::new(node_bin());
    cmd.args(["--no-cache", "--listen", "127.0.0.1:0"])
        .args(["--config", &s.path("node.toml")]);
    let node = Proc::start(cmd).expect("start a node with principals");
    let ops_options = ConnectOptions::new().with_token(Token::new(OPS_TOKEN).expect("a token"));
    let ops = Client::connect_with(&node.addr, &ops_options)
        .await
        .expect("ops connects");
    let module = ops.upload(wat::MATH.as_bytes()).await.expect("ops uploads");
    let instance = ops
        .instantiate(&module, InstanceOptions::default())
        .await
        .expect("ops instantiates");
    let nine: i64 = instance.call("sq", vec![Value::I64(3)]).await.expect("sq");
    assert_eq!(nine, 9);

    for id in 1..=8u64 {
        // A peer of `dev` with a good token, which then names export `id`.
        let mut raw = tokio::net::TcpStream::connect(&node.addr)
            .await
            .expect("connect");
        let hello = Hello {
            version: PROTOCOL_VERSION,
            features: Vec::new(),
            credentials: Some(DEV_TOKEN.as_bytes().to_vec()),
            agent: "hostile test peer".into(),
        };
        let mut bytes = MAGIC.to_vec();
        let payload = codec::encode(&Ok::<_, Error>(hello)).expect("encode");
        bytes.extend(frame::frame(&payload, 1 << 16).expect("frame"));
        raw.write_all(&bytes).await.expect("send the hello");
        let mut magic = [0u8; 8];
        raw.read_exact(&mut magic).await.expect("the node's magic");
        let reply = frame::read_frame(&mut raw, 1 << 16)
            .await
            .expect("read")
            .expect("the node's hello");
        let theirs: Result<Hello, Error> =
            codec::decode(&reply, DecodeLimits::default()).expect("decode");
        theirs.expect("dev's token is accepted");
        let call = Message::Call(Call {
            question: 1,
            target: Target::Export(id),
            method: "call".into(),
            args: vec![Value::from("sq"), Value::List(vec![Value::I64(5)])],
            deadline_ms: None,
        });
        let frame =
            frame::frame(&codec::encode_message(&call).expect("encode"), 1 << 20).expect("frame");
        raw.write_all(&frame).await.expect("send the call");
        // Whatever comes back is never an answer from ops's objects: the node closes this
        // connection (export `id` was never exported to it), or answers with an error.
        let answered = tokio::time::timeout(Duration::from_secs(10), async {
            while let Ok(Some(bytes)) = frame::read_frame(&mut raw, 1 << 20).await {
                if let Ok(Message::Return(ret)) =
                    codec::decode_message(&bytes, DecodeLimits::default())
                    && ret.question == 1
                {
                    return Some(ret.result);
                }
            }
            None
        })
        .await
        .expect("the node answers or closes within 10 s");
        if let Some(result) = answered {
            let e = result.expect_err("dev reached an export it was never given");
            assert_ne!(
                e.kind(),
                ErrorKind::Unimplemented,
                "export {id} exists for dev: {e}"
            );
        }
    }
    // ops's objects are untouched.
    let sixteen: i64 = instance
        .call("sq", vec![Value::I64(4)])
        .await
        .expect("sq again");
    assert_eq!(sixteen, 16);
    ops.close();
}
