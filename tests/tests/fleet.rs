//! Fleet runs: the same call once on every node (`rwc each`, `Pool::each`), and the
//! administration examples run the way an operator runs them.

mod support;

use std::time::Duration;

use rwc_client::{ErrorKind, Pool, Value};
use rwc_tests::guests;
use serde_json::Value as Json;
use support::{Proc, Scratch, rwc, spawn_node, spawn_nodes, wat};

#[test]
fn each_prints_a_row_per_node_and_fails_naming_the_dead_one() {
    let nodes = spawn_nodes(3);
    let dead = nodes[1].addr.clone();
    nodes[1].kill();
    let list = nodes
        .iter()
        .map(|n| n.addr.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let dir = Scratch::new();
    let module = dir.file("math.wat", wat::MATH);

    let (code, out, err) = rwc(&["each", "--nodes", &list, &module, "sq", "7"], "");
    assert_eq!(code, 3, "disconnected: {out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "a header and one row per node:\n{out}");
    assert!(
        lines[0].starts_with("node") && lines[0].ends_with("result"),
        "{out}"
    );
    // Rows in the order the nodes were given.
    for (line, node) in lines[1..].iter().zip(&nodes) {
        assert!(line.starts_with(&node.addr), "{line}");
        if node.addr == dead {
            assert!(line.contains("error: disconnected"), "{line}");
            assert!(
                line.contains(" - "),
                "no time for a node that did not run: {line}"
            );
        } else {
            assert!(line.ends_with(" 49"), "{line}");
            assert!(line.contains(" ms "), "{line}");
        }
    }
    assert_eq!(
        err.trim(),
        format!("rwc: 1 of 3 nodes failed: {dead}"),
        "stderr names the failed node"
    );

    let (code, out, _) = rwc(
        &["each", "--nodes", &list, &module, "sq", "7", "--json"],
        "",
    );
    assert_eq!(code, 3);
    let rows: Json = serde_json::from_str(&out).expect("one JSON array");
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for row in rows {
        if row["node"] == dead.as_str() {
            assert_eq!(row["error"]["kind"], "disconnected", "{row}");
            assert!(row["time_ms"].is_null(), "{row}");
        } else {
            assert_eq!(row["result"], 49, "{row}");
            assert!(row["time_ms"].as_f64().is_some(), "{row}");
        }
    }

    // All alive: exit 0.
    let alive = format!("{},{}", nodes[0].addr, nodes[2].addr);
    let (code, out, err) = rwc(&["each", "--nodes", &alive, &module, "sq", "3"], "");
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out.lines().filter(|l| l.ends_with(" 9")).count(),
        2,
        "{out}"
    );
}

#[tokio::test]
async fn pool_each_answers_once_per_node() {
    let nodes = spawn_nodes(3);
    nodes[2].kill();
    let mut pool = Pool::connect(nodes.iter().map(|n| n.addr.as_str()))
        .await
        .unwrap();
    let rows = support::square_each(&mut pool, 5).await;
    assert_eq!(rows.len(), 3);
    for row in &rows {
        if row.addr == nodes[2].addr {
            assert_eq!(
                row.result.as_ref().unwrap_err().kind(),
                ErrorKind::Disconnected
            );
            assert!(row.elapsed.is_none());
        } else {
            assert_eq!(row.result.as_ref().unwrap(), &Value::I64(25));
            assert!(row.elapsed.is_some_and(|d| d < Duration::from_secs(60)));
        }
    }
    pool.close();
}

/// A node granting `sys` and the read-only `fs:logs` over `logs`, as the README's fleet
/// section sets them up.
fn report_node(dir: &Scratch, name: &str, log: &str) -> Proc {
    let logs = dir.path().join(name);
    std::fs::create_dir_all(logs.join("old")).unwrap();
    std::fs::write(logs.join("app.log"), log).unwrap();
    std::fs::write(logs.join("old/app.log.1"), "x".repeat(5000)).unwrap();
    std::fs::write(logs.join("small.log"), "ok\n").unwrap();
    let config = dir.file(
        &format!("{name}.toml"),
        format!(
            "grants = [\"sys\", \"fs:logs\"]\n[[dirs]]\nname = \"logs\"\npath = \"{}\"\n\
             guest_path = \"/logs\"\nread_only = true\n",
            logs.display()
        ),
    );
    spawn_node(&["--config", &config])
}

#[test]
fn fleet_report_over_three_nodes() {
    let dir = Scratch::new();
    let nodes: Vec<Proc> = (0..3)
        .map(|i| {
            report_node(
                &dir,
                &format!("n{i}"),
                &format!("start\nERROR disk {i} slow\nfine\nerror: retry {i}\n"),
            )
        })
        .collect();
    let list = nodes
        .iter()
        .map(|n| n.addr.as_str())
        .collect::<Vec<_>>()
        .join(",");
    // `rwc each` of the report over the three nodes, granted `sys` and `extra`.
    let report = |extra: &[&str]| {
        let mut args = vec![
            "each",
            "--nodes",
            &list,
            guests::FLEET_REPORT,
            "report",
            "--capability",
            "sys",
        ];
        args.extend_from_slice(extra);
        rwc(&args, "")
    };
    let (code, out, err) = report(&["--capability", "fs:logs", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let rows: Json = serde_json::from_str(&out).unwrap();
    for (i, row) in rows.as_array().unwrap().iter().enumerate() {
        let r = &row["result"];
        assert_eq!(r["log_files"], 3, "{row}");
        assert_eq!(
            r["largest"][0],
            serde_json::json!(["old/app.log.1", 5000]),
            "{row}"
        );
        assert_eq!(
            r["errors"],
            serde_json::json!([
                format!("app.log:2: ERROR disk {i} slow"),
                format!("app.log:4: error: retry {i}")
            ]),
            "{row}"
        );
        let pct = r["disk_used_pct"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&pct), "{row}");
        assert!(r["host"].as_str().is_some_and(|h| !h.is_empty()), "{row}");
    }
    // The table: one row per node.
    let (code, out, err) = report(&["--capability", "fs:logs"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 4, "{out}");
    // Without the directory granted to the instance, the report says what is missing.
    let (code, out, _) = report(&[]);
    assert_eq!(code, 5, "{out}");
    assert!(out.contains("--capability fs:logs"), "{out}");
}

/// A node granting the read-write `fs:conf` over a directory holding `app.toml`.
fn conf_node(dir: &Scratch, text: &str) -> (Proc, std::path::PathBuf) {
    let conf = dir.path().join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(conf.join("app.toml"), text).unwrap();
    let config = dir.file(
        "node.toml",
        format!(
            "grants = [\"fs:conf\"]\n[[dirs]]\nname = \"conf\"\npath = \"{}\"\n\
             guest_path = \"/conf\"\nread_only = false\n",
            conf.display()
        ),
    );
    (spawn_node(&["--config", &config]), conf)
}

#[test]
fn config_edit_sets_a_key_atomically_and_refuses_a_changed_file() {
    let dir = Scratch::new();
    let original = "# app\nname = \"demo\"\n\n[server]\nhost = \"0.0.0.0\"\nport = 80\n\n[log]\nlevel = \"info\"\n";
    let (node, conf) = conf_node(&dir, original);
    let call = |args: &[&str]| {
        let mut all = vec![
            "call",
            "--node",
            &node.addr,
            guests::CONFIG_EDIT,
            "--capability",
            "fs:conf",
        ];
        all.extend_from_slice(args);
        rwc(&all, "")
    };
    let (code, out, err) = call(&["set", "app.toml", "server.port", "8080"]);
    assert_eq!(code, 0, "{err}");
    let edited: Json = serde_json::from_str(&out).unwrap();
    assert_eq!(
        edited["diff"],
        "--- a/app.toml\n+++ b/app.toml\n@@ -3,7 +3,7 @@\n \n [server]\n host = \"0.0.0.0\"\n-port = 80\n+port = 8080\n \n [log]\n level = \"info\"\n",
        "{out}"
    );
    let now = std::fs::read_to_string(conf.join("app.toml")).unwrap();
    assert_eq!(now, original.replace("port = 80\n", "port = 8080\n"));
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(&conf).unwrap().count(), 1);

    // A new key goes at the end of its table; a new table at the end.
    let (code, _, err) = call(&["set", "app.toml", "log.file", "/var/log/app.log"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = call(&["set", "app.toml", "cache.size", "64"]);
    assert_eq!(code, 0, "{err}");
    let now = std::fs::read_to_string(conf.join("app.toml")).unwrap();
    assert!(
        now.ends_with("level = \"info\"\nfile = \"/var/log/app.log\"\n\n[cache]\nsize = 64\n"),
        "{now}"
    );

    // Read, someone else edits, then set_if with the old version: refused, nothing written.
    let (_, out, _) = call(&["show", "app.toml"]);
    let shown: Json = serde_json::from_str(&out).unwrap();
    let version = shown["version"].as_str().unwrap().to_owned();
    std::fs::write(conf.join("app.toml"), "name = \"changed\"\n").unwrap();
    let (code, out, err) = call(&["set_if", "app.toml", "name", "mine", &version]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("changed since it was read"), "{err}");
    assert_eq!(
        std::fs::read_to_string(conf.join("app.toml")).unwrap(),
        "name = \"changed\"\n"
    );
    // With the current version it goes through.
    let (_, out, _) = call(&["show", "app.toml"]);
    let version = serde_json::from_str::<Json>(&out).unwrap()["version"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, _, err) = call(&["set_if", "app.toml", "name", "mine", &version]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(conf.join("app.toml")).unwrap(),
        "name = \"mine\"\n"
    );
}
