//! The `exec` capability: allow-listed commands of the node's config, run by `rwc exec`
//! and by guests, without a shell, with a cleared environment, killed with their children
//! at their timeout, their output capped; everything else `denied`, and all of it in the
//! node's audit log.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rwc_api::capability::exec::{CommandInfo, List, ParamInfo};
use rwc_client::{Client, ErrorKind, InstanceOptions, request};
use rwc_tests::guests;
use serde_json::Value as Json;
use support::{Proc, Scratch, log_line, rwc, spawn_node_logging};

const COMMANDS: &str = r#"
[[commands]]
name = "echo"
program = "/bin/echo"
args = ["{word}"]
params = { word = "^.+$" }
[[commands]]
name = "df"
program = "/bin/df"
args = ["-P", "{path}"]
params = { path = ["/"] }
[[commands]]
name = "uptime"
program = "/usr/bin/uptime"
[[commands]]
name = "env"
program = "/usr/bin/env"
env = { ONLY = "this" }
[[commands]]
name = "status3"
program = "/bin/sh"
args = ["-c", "echo out; echo err >&2; exit 3"]
[[commands]]
name = "hang"
program = "/bin/sh"
args = ["-c", "sleep 300 & echo $!; wait"]
timeout_ms = 300
[[commands]]
name = "flood"
program = "/usr/bin/head"
args = ["-c", "100000", "/dev/zero"]
max_output_bytes = 1000
"#;

/// A node with [`COMMANDS`] and these grants, logging to a file.
struct Fixture {
    _dir: Scratch,
    node: Proc,
    log: PathBuf,
}

fn node_granting(grants: &str) -> Fixture {
    let dir = Scratch::new();
    let config = dir.file("node.toml", format!("grants = {grants}\n{COMMANDS}"));
    let log = dir.path().join("node.log");
    let node = spawn_node_logging(&["--config", &config], &log);
    Fixture {
        _dir: dir,
        node,
        log,
    }
}

fn exec(f: &Fixture, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["exec", "--node", &f.node.addr];
    all.extend_from_slice(args);
    rwc(&all, "")
}

#[test]
fn an_allowed_command_runs_and_exits_with_its_status() {
    let f = node_granting(r#"["exec"]"#);
    let (code, out, err) = exec(&f, &["echo", "word=hello"]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "hello\n", ""));
    let (code, out, err) = exec(&f, &["df", "path=/"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("Filesystem"), "{out}");
    // Its stdout and stderr apart, and its exit status as ours.
    let (code, out, err) = exec(&f, &["status3"]);
    assert_eq!((code, out.as_str(), err.as_str()), (3, "out\n", "err\n"));
    // The environment is the config's, nothing of the node's.
    let (code, out, _) = exec(&f, &["env"]);
    assert_eq!((code, out.as_str()), (0, "ONLY=this\n"));
    log_line(
        &f.log,
        &[
            "rwc::audit",
            "command=\"df\"",
            "argv=[\"-P\", \"/\"]",
            "outcome=\"exit status 0\"",
        ],
        Duration::from_secs(10),
    );
}

#[test]
fn values_outside_the_allow_list_are_denied_naming_what_was_refused() {
    let f = node_granting(r#"["exec"]"#);
    let cases: &[(&[&str], &str)] = &[
        (&["df", "path=/etc"], "\"/etc\" of `path` is not allowed"),
        (&["df", "path=/", "extra=1"], "takes no argument `extra`"),
        (&["rm", "path=/"], "command `rm` is not allowed"),
        (&["echo", "word=; rm -rf /"], "holds ';'"),
        (&["echo", "word=$(id)"], "holds '$'"),
        (&["echo", "word=`id`"], "holds '`'"),
        (&["echo", "word=a\nb"], "holds '\\n'"),
        (&["echo", "word=a b"], "holds ' '"),
    ];
    for (args, why) in cases {
        let (code, out, err) = exec(&f, args);
        assert_eq!(code, 5, "{args:?}: {out}{err}");
        assert!(err.starts_with("rwc: denied: "), "{args:?}: {err}");
        assert!(err.contains(why), "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?} ran: {out}");
    }
    // A missing value is a usage error.
    let (code, _, err) = exec(&f, &["df"]);
    assert_eq!(code, 7, "{err}");
    assert!(err.contains("needs a value for `path`"), "{err}");
    // Refusals are audited with the reason.
    log_line(
        &f.log,
        &[
            "rwc::audit",
            "command=\"rm\"",
            "outcome=\"denied: command `rm` is not allowed",
        ],
        Duration::from_secs(10),
    );
}

#[test]
fn only_granted_commands_run() {
    let f = node_granting(r#"["exec:echo"]"#);
    let (code, out, _) = exec(&f, &["echo", "word=hi"]);
    assert_eq!((code, out.as_str()), (0, "hi\n"));
    let (code, _, err) = exec(&f, &["df", "path=/"]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("command `df` is not allowed"), "{err}");

    let none = node_granting(r#"["sys"]"#);
    let (code, _, err) = exec(&none, &["echo", "word=hi"]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("lacks the grant `exec`"), "{err}");
}

#[test]
fn a_hanging_command_is_killed_with_its_children_at_its_timeout() {
    let f = node_granting(r#"["exec"]"#);
    let started = Instant::now();
    let (code, out, err) = exec(&f, &["hang"]);
    assert_eq!(code, 4, "{out}{err}");
    assert!(err.contains("timed out"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "it was not cut short"
    );
    // The shell printed the pid of the `sleep 300` it started; that child is gone too
    // (or a zombie waiting for init, which is dead all the same).
    let child: u32 = out.trim().parse().unwrap_or_else(|_| panic!("{out:?}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        if stat.is_empty() || stat.contains(") Z ") {
            break;
        }
        assert!(Instant::now() < deadline, "the child survived: {stat}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_output_cap_holds() {
    let f = node_granting(r#"["exec"]"#);
    let (code, out, err) = exec(&f, &["flood"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.len(), 1000, "kept exactly the cap");
    assert!(err.contains("was cut"), "{err}");
}

#[tokio::test]
async fn clients_list_and_guests_run_what_they_are_granted() {
    let f = node_granting(r#"["exec:df", "exec:uptime"]"#);
    let client = Client::connect(&f.node.addr).await.unwrap();
    let exec = client.capability("exec").await.unwrap().unwrap();
    let list: Vec<CommandInfo> = request(&exec, &List {}).await.unwrap();
    let names: Vec<&str> = list.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["df", "uptime"]);
    assert_eq!(
        list[0].params.get("path"),
        Some(&ParamInfo::OneOf(vec!["/".into()]))
    );

    // The service-check example: a guest runs two allow-listed commands and sums up.
    let module = client
        .upload(&rwc_tests::guest_bytes(guests::SERVICE_CHECK))
        .await
        .unwrap();
    let options = InstanceOptions {
        capabilities: vec!["exec".into()],
        ..InstanceOptions::default()
    };
    let instance = client.instantiate(&module, options.clone()).await.unwrap();
    let summary: Json = instance.call("check", ()).await.unwrap();
    assert_eq!(summary["healthy"], Json::Bool(true), "{summary}");
    assert!(summary["root_used_pct"].as_u64().is_some(), "{summary}");
    assert!(
        summary["uptime"]
            .as_str()
            .is_some_and(|u| u.contains("load average")),
        "{summary}"
    );
    let commands: Vec<String> = instance.call("commands", ()).await.unwrap();
    assert_eq!(commands, ["df", "uptime"]);
    // What the guest was not granted is refused to it as to anyone.
    let params = BTreeMap::from([("word".to_owned(), "x".to_owned())]);
    let err = instance
        .call::<Json>("run_one", ("echo", params))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Denied, "{err}");
    assert!(err.message().contains("`echo` is not allowed"), "{err}");

    // Without the capability handed over, the guest has no `exec`.
    let bare = client
        .instantiate(&module, InstanceOptions::default())
        .await
        .unwrap();
    let err = bare.call::<Json>("check", ()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Denied, "{err}");
    client.close();
}

/// Two principals on one node: `ops` holds the command `echo` and the read-write `fs:conf`,
/// `dev` only the root operations. Neither reaches what the other was granted, and the
/// audit trail names who did what.
#[test]
fn a_principal_reaches_only_its_own_grants_and_is_named_in_the_audit() {
    use rwc_protocol::token::Token;
    let dir = Scratch::new();
    let conf = dir.path().join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(conf.join("app.toml"), "port = 80\n").unwrap();
    let digest = |t: &str| Token::new(t).unwrap().digest().to_string();
    let config = dir.file(
        "node.toml",
        format!(
            "{COMMANDS}\n[[dirs]]\nname = \"conf\"\npath = \"{conf}\"\nguest_path = \"/conf\"\n\
             read_only = false\n\
             [[principals]]\nname = \"ops\"\ntoken_sha256 = \"{ops}\"\n\
             grants = [\"upload\", \"instantiate\", \"run\", \"info\", \"exec:echo\", \"fs:conf\"]\n\
             [[principals]]\nname = \"dev\"\ntoken_sha256 = \"{dev}\"\n\
             grants = [\"upload\", \"instantiate\", \"run\", \"info\"]\n",
            conf = conf.display(),
            ops = digest("ops-secret-token"),
            dev = digest("dev-secret-token"),
        ),
    );
    let log = dir.path().join("node.log");
    let node = spawn_node_logging(&["--config", &config], &log);
    let ops = dir.file("ops.token", "ops-secret-token\n");
    let dev = dir.file("dev.token", "dev-secret-token\n");
    let as_ = |token: &str, args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--node", &node.addr, "--token-file", token]);
        rwc(&all, "")
    };

    let (code, out, err) = as_(&ops, &["exec", "echo", "word=hi"]);
    assert_eq!((code, out.as_str()), (0, "hi\n"), "{err}");
    let (code, _, err) = as_(&ops, &["exec", "df", "path=/"]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("command `df` is not allowed"), "{err}");
    let (code, _, err) = as_(&dev, &["exec", "echo", "word=hi"]);
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("principal `dev` lacks the grant `exec"),
        "{err}"
    );
    let line = log_line(
        &log,
        &[
            "rwc::audit",
            "principal=\"ops\"",
            "command=\"echo\"",
            "exit status 0",
        ],
        Duration::from_secs(10),
    );
    assert!(!line.contains("secret"), "no token in the log: {line}");

    // The directory: ops writes through it, dev cannot reach it.
    let edit = |token: &str| {
        as_(
            token,
            &[
                "call",
                guests::CONFIG_EDIT,
                "set",
                "app.toml",
                "port",
                "8080",
                "--capability",
                "fs:conf",
            ],
        )
    };
    let (code, _, err) = edit(&dev);
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("principal `dev` lacks the grant `fs:conf`"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(conf.join("app.toml")).unwrap(),
        "port = 80\n"
    );
    let (code, _, err) = edit(&ops);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(conf.join("app.toml")).unwrap(),
        "port = 8080\n"
    );
    log_line(
        &log,
        &[
            "rwc::audit",
            "principal=\"ops\"",
            "op=\"rename\"",
            "to=\"/conf/app.toml\"",
        ],
        Duration::from_secs(10),
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.lines().any(|l| l.contains("rwc::audit")
            && l.contains("principal=\"dev\"")
            && l.contains("outcome=\"ok\"")),
        "dev changed nothing:\n{text}"
    );
}
