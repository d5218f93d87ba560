//! Nodes over SSH: `ssh://` addresses against a real `sshd` (Debian's openssh-server)
//! started here on 127.0.0.1 with a generated host key and an authorized key, and
//! `rwc deploy` making a host without `rwc-node` a node.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use rwc_client::ssh::{SshAddress, VERSION};
use rwc_client::{Client, ConnectOptions, Pool, Value};
use support::{Scratch, bin_dir, node_bin, rwc, wat};

const SSHD: &str = "/usr/sbin/sshd";
const INSTALL: &str = "the SSH tests start Debian's sshd and use its ssh client: \
                       apt-get install -y openssh-server openssh-client";

/// An `sshd` on 127.0.0.1 for this test only, killed on drop. Sessions get `HOME` (a
/// scratch directory) and `PATH` from its config, so nothing outside the scratch
/// directory is read or written.
struct Sshd {
    child: Child,
    port: u16,
    dir: PathBuf,
    home: PathBuf,
}

impl Sshd {
    /// Starts one whose sessions have `path` as their `PATH`.
    fn start(dir: &Scratch, path: &str) -> Sshd {
        for tool in [SSHD, "ssh", "ssh-keygen"] {
            let found = Command::new(tool)
                .arg("-V")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok();
            assert!(found, "cannot run {tool}: {INSTALL}");
        }
        let root = dir.path().to_path_buf();
        let home = root.join("home");
        std::fs::create_dir_all(&home).unwrap();
        for key in ["host_key", "client_key"] {
            let status = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(root.join(key))
                .status()
                .unwrap();
            assert!(status.success(), "ssh-keygen failed");
        }
        std::fs::copy(root.join("client_key.pub"), root.join("authorized_keys")).unwrap();
        // sshd wants its privilege separation directory (the package's service makes it).
        if !Path::new("/run/sshd").is_dir() {
            std::fs::create_dir_all("/run/sshd").expect("create /run/sshd for sshd");
        }
        // sshd cannot report a port it picked: take a free one, retry if it is taken.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let config = root.join("sshd_config");
            std::fs::write(
                &config,
                format!(
                    "ListenAddress 127.0.0.1\nPort {port}\nHostKey {r}/host_key\nPidFile none\n\
                     AuthorizedKeysFile {r}/authorized_keys\nPasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
                     PermitRootLogin prohibit-password\nSetEnv HOME={h} PATH={path}\n",
                    r = root.display(),
                    h = home.display(),
                ),
            )
            .unwrap();
            let mut child = Command::new(SSHD)
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {SSHD}: {e}; {INSTALL}"));
            // It says `Server listening on 127.0.0.1 port N.` once it accepts.
            let mut log = BufReader::new(child.stderr.take().unwrap());
            let mut seen = String::new();
            let mut line = String::new();
            while log.read_line(&mut line).unwrap_or(0) > 0 {
                if line.contains("Server listening on") {
                    // Keep draining its log so it never blocks on a full pipe.
                    std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
                    let known = format!(
                        "[127.0.0.1]:{port} {}",
                        std::fs::read_to_string(root.join("host_key.pub")).unwrap()
                    );
                    std::fs::write(root.join("known_hosts"), known).unwrap();
                    return Sshd {
                        child,
                        port,
                        dir: root,
                        home,
                    };
                }
                seen.push_str(&line);
                line.clear();
            }
            let _ = child.wait();
            assert!(
                seen.contains("Address already in use"),
                "sshd did not start:\n{seen}"
            );
        }
        panic!("no free port for sshd after 5 tries");
    }

    fn addr(&self) -> String {
        format!("ssh://127.0.0.1:{}", self.port)
    }

    /// What ssh needs to reach it: the key and the host key, nothing from `~/.ssh`.
    fn options(&self) -> Vec<String> {
        let d = self.dir.display();
        vec![
            format!("-i {d}/client_key"),
            format!("-o UserKnownHostsFile={d}/known_hosts"),
            "-F /dev/null".to_owned(),
        ]
    }

    /// `--ssh-option X` for each of [`options`](Sshd::options).
    fn cli_options(&self) -> Vec<String> {
        self.options()
            .into_iter()
            .flat_map(|o| ["--ssh-option".to_owned(), o])
            .collect()
    }

    fn deployed(&self) -> PathBuf {
        self.home.join(format!(".cache/rwc/rwc-node-{VERSION}"))
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn square_over(addr: &SshAddress, options: &[String]) -> Result<Value, rwc_client::Error> {
    let options = ConnectOptions::new().with_ssh_options(options.to_vec());
    let client = Client::connect_ssh(addr, &options).await?;
    let result = support::square(&client, 7).await;
    client.close();
    result
}

#[tokio::test]
async fn a_call_over_ssh_uses_the_rwc_node_on_the_host_path() {
    let dir = Scratch::new();
    let path = format!("{}:/usr/bin:/bin", bin_dir().display());
    let sshd = Sshd::start(&dir, &path);
    let addr: SshAddress = sshd.addr().parse().unwrap();
    assert_eq!(
        square_over(&addr, &sshd.options()).await.unwrap(),
        Value::I64(49)
    );
    assert!(!sshd.deployed().exists(), "nothing was deployed");

    // The command line and a pool take the address and the options the same way.
    let dir2 = Scratch::new();
    let module = dir2.file("math.wat", wat::MATH);
    let mut args = vec!["call".to_owned(), "--node".to_owned(), sshd.addr(), module];
    args.extend(["sq".to_owned(), "9".to_owned()]);
    args.extend(sshd.cli_options());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = rwc(&args, "");
    assert_eq!((code, out.trim()), (0, "81"), "{err}");

    let options = ConnectOptions::new().with_ssh_options(sshd.options());
    let mut pool = Pool::connect_with([sshd.addr(), sshd.addr()], &options)
        .await
        .unwrap();
    assert_eq!(pool.len(), 1, "one address is one node");
    let rows = support::square_each(&mut pool, 4).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].result.as_ref().unwrap(), &Value::I64(16));
    pool.close();
}

#[tokio::test]
async fn deploy_makes_a_host_without_rwc_node_a_node_and_copies_only_once() {
    let dir = Scratch::new();
    let sshd = Sshd::start(&dir, "/usr/bin:/bin");
    let addr: SshAddress = sshd.addr().parse().unwrap();
    let options = sshd.options();

    // Before: the host has no rwc-node; the error says what to do.
    let e = square_over(&addr, &options).await.unwrap_err();
    assert_eq!(e.kind(), rwc_client::ErrorKind::Disconnected, "{e}");
    let mut info = vec!["info".to_owned(), "--node".to_owned(), sshd.addr()];
    info.extend(sshd.cli_options());
    let info: Vec<&str> = info.iter().map(String::as_str).collect();
    let (code, _, err) = rwc(&info, "");
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains(&format!("was not deployed: run rwc deploy {}", sshd.addr())),
        "{err}"
    );

    let mut args = vec!["deploy".to_owned(), sshd.addr()];
    args.extend(sshd.cli_options());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = rwc(&args, "");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("copied"), "{out}");
    let deployed = sshd.deployed();
    assert_eq!(
        std::fs::read(&deployed).unwrap(),
        std::fs::read(node_bin()).unwrap(),
        "the deployed copy is this machine's rwc-node"
    );
    let copied_at = std::fs::metadata(&deployed).unwrap().modified().unwrap();

    assert_eq!(square_over(&addr, &options).await.unwrap(), Value::I64(49));
    let (code, out, err) = rwc(&info, "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"version\""), "{out}");

    // Again: the checksum matches, nothing is copied.
    let (code, out, err) = rwc(&args, "");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("up to date"), "{out}");
    assert_eq!(
        std::fs::metadata(&deployed).unwrap().modified().unwrap(),
        copied_at
    );
    // No temporary file is left beside it. The directory is also the remote node's default
    // module cache, so the calls above left the module's upload and artifact there.
    let mut names: Vec<String> = std::fs::read_dir(deployed.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let binary = deployed.file_name().unwrap().to_string_lossy().into_owned();
    let is_cache_file = |n: &String| n.ends_with(".upload") || n.ends_with(".cwasm");
    assert!(
        names.iter().all(|n| *n == binary || is_cache_file(n)),
        "only the binary and the module cache: {names:?}"
    );
    assert!(
        names.iter().any(is_cache_file),
        "the node cached the module: {names:?}"
    );
    assert!(!names.iter().any(|n| n.contains(".tmp")), "{names:?}");
}
