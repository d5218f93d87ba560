//! Durable maps through NATS JetStream, with real nats-server and rwc-node processes: every
//! input answered exactly once and in input order, through a node SIGKILLed mid-map, a
//! client SIGKILLed mid-map and resumed, a NATS server restart, the loss of the stream
//! leader of a 3-server cluster, and an input that kills its node every time.

mod nats_support;
mod support;

use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::time::Duration;

use nats_support::{
    ACK_WAIT_SECS, NatsCluster, NatsNode, NatsServer, calls_served, fleet, numbers, spawn_map,
};
use rwc_client::nats::{DurableMapOptions, DurableReport, FleetOptions, NatsFleet};
use rwc_client::{ErrorKind, Value};
use support::{Scratch, wat};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// A durable map running in a task of its own.
type RunningMap = JoinHandle<Result<DurableReport, rwc_client::Error>>;

/// Inputs `0..n` as argument lists.
fn inputs(n: i64) -> Vec<Vec<Value>> {
    (0..n).map(|i| vec![Value::I64(i)]).collect()
}

/// Inputs of `work(n, spins)`: each takes a moment, so a map is still running when a test
/// breaks something.
fn slow_inputs(n: i64, spins: i64) -> Vec<Vec<Value>> {
    (0..n)
        .map(|i| vec![Value::I64(i), Value::I64(spins)])
        .collect()
}

/// Runs a durable map of `work` over `inputs` in a task of its own.
fn spawn_work(
    fleet: &NatsFleet,
    inputs: Vec<Vec<Value>>,
    options: DurableMapOptions,
) -> RunningMap {
    let fleet = fleet.clone();
    tokio::spawn(async move {
        fleet
            .map_durable(wat::MATH.as_bytes(), "work", inputs, options)
            .await
    })
}

/// A durable map of `export` of `wat::MATH` over `inputs`; its results may be errors.
async fn map_math(
    fleet: &NatsFleet,
    export: &str,
    inputs: Vec<Vec<Value>>,
    options: DurableMapOptions,
) -> DurableReport {
    let module = wat::MATH.as_bytes();
    let report = fleet.map_durable(module, export, inputs, options).await;
    report.expect("the map runs")
}

/// Every result is `i * i`, in input order.
fn assert_squares(results: &[Result<Value, rwc_client::Error>]) {
    for (i, r) in results.iter().enumerate() {
        let i = i64::try_from(i).unwrap();
        assert_eq!(
            r.as_ref().ok(),
            Some(&Value::I64(i * i)),
            "input {i}: {r:?}"
        );
    }
}

/// [`spawn_work`], returning once `at` results are in: the map, still running.
async fn spawn_work_past(
    fleet: &NatsFleet,
    inputs: Vec<Vec<Value>>,
    options: DurableMapOptions,
    at: usize,
) -> RunningMap {
    let barrier = Arc::new(Notify::new());
    let reached = barrier.clone();
    let options = options.on_progress(move |p| {
        if p.done == at {
            reached.notify_one();
        }
    });
    let map = spawn_work(fleet, inputs, options);
    barrier.notified().await;
    map
}

/// The report of `map`, which must end within `limit`; `what` says what was to end.
async fn ended(map: RunningMap, limit: Duration, what: &str) -> DurableReport {
    tokio::time::timeout(limit, map)
        .await
        .expect(what)
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_inputs_over_three_nodes_each_answered_once_in_order() {
    let server = NatsServer::start();
    let nodes = NatsNode::start_many(&server.url, 3, &["--tag", "sq"]);
    let fleet = fleet(&server.url).await;
    let options = DurableMapOptions::default().job("ten-k").tag("sq");
    let report = map_math(&fleet, "sq", inputs(10_000), options).await;
    assert_eq!(report.map.results.len(), 10_000);
    assert_squares(&report.map.results);
    assert_eq!(report.published, 10_000, "one task message per input");
    let per_node: usize = report.map.nodes.iter().map(|n| n.done).sum();
    assert_eq!(per_node, 10_000, "{:?}", report.map.nodes);
    for node in &nodes {
        let did = report.map.nodes.iter().find(|n| n.addr == node.addr);
        assert!(
            did.is_some_and(|n| n.done > 0),
            "{} did nothing: {:?}",
            node.addr,
            report.map.nodes
        );
    }
    // Nothing failed, so nothing ran twice: the nodes served exactly one call per input.
    let mut calls = 0;
    for node in &nodes {
        calls += calls_served(&node.addr).await;
    }
    assert_eq!(calls, 10_000);
    // A finished map deletes its job.
    assert!(fleet.jobs().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_at_30_percent_loses_no_input() {
    let server = NatsServer::start();
    let nodes = NatsNode::start_many(&server.url, 3, &[]);
    let fleet = fleet(&server.url).await;
    let options = DurableMapOptions::default().job("kill-node");
    let map = spawn_work_past(&fleet, slow_inputs(1000, 200_000), options, 300).await;
    nodes[0].kill();
    let report = map.await.unwrap().unwrap();
    assert_squares(&report.map.results);
    let killed = report.map.nodes.iter().find(|n| n.addr == nodes[0].addr);
    let others: usize = report
        .map
        .nodes
        .iter()
        .filter(|n| n.addr != nodes[0].addr)
        .map(|n| n.done)
        .sum();
    assert_eq!(killed.map_or(0, |n| n.done) + others, 1000);
    assert!(
        others > 700 - 300,
        "the live nodes did the rest: {:?}",
        report.map.nodes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_killed_at_half_resumes_with_the_same_job_name() {
    let server = NatsServer::start();
    let nodes = NatsNode::start_many(&server.url, 2, &[]);
    let scratch = Scratch::new();
    let module = scratch.file("math.wat", wat::MATH);
    let n = 2000;
    let input = scratch.file(
        "inputs.jsonl",
        (0..n)
            .map(|i| format!("[{i}, 100000]\n"))
            .collect::<String>(),
    );
    let args = [
        "--nats",
        &server.url,
        "--job",
        "resume-me",
        &module,
        "work",
        "--input",
        &input,
    ];
    // First run: read half the results, then SIGKILL the client.
    let mut first = spawn_map(&args);
    let mut out = BufReader::new(first.stdout.take().unwrap());
    let mut printed = Vec::new();
    while printed.len() < n / 2 {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "rwc map ended early");
        printed.push(line.trim().to_owned());
    }
    first.kill().unwrap();
    first.wait().unwrap();
    for (i, line) in printed.iter().enumerate() {
        assert_eq!(line, &(i * i).to_string());
    }
    // The job is still there, part done, while nobody watches it.
    let jobs = fleet(&server.url).await.jobs().await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].meta.name, "resume-me");
    assert!(jobs[0].done >= u64::try_from(n / 2).unwrap());

    // Second run, same command: every result once, in order, none run again.
    let second = spawn_map(&args).wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{stderr}");
    let lines: Vec<&str> = std::str::from_utf8(&second.stdout)
        .unwrap()
        .lines()
        .collect();
    assert_eq!(lines.len(), n, "{stderr}");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(*line, (i * i).to_string(), "line {i}");
    }
    assert!(stderr.contains("resumed job resume-me"), "{stderr}");
    let mut calls = 0;
    for node in &nodes {
        calls += calls_served(&node.addr).await;
    }
    assert_eq!(
        calls,
        u64::try_from(n).unwrap(),
        "answered inputs are not run again"
    );
    assert!(fleet(&server.url).await.jobs().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_server_restart_mid_map_loses_no_input() {
    let mut server = NatsServer::start();
    let _nodes = NatsNode::start_many(&server.url, 2, &[]);
    let fleet = fleet(&server.url).await;
    let options = DurableMapOptions::default().job("restart");
    let map = spawn_work_past(&fleet, slow_inputs(1000, 100_000), options, 300).await;
    let _server = tokio::task::spawn_blocking(move || {
        server.restart();
        server
    })
    .await
    .expect("the server restarts");
    let what = "the map finishes after the restart";
    let report = ended(map, Duration::from_secs(90), what).await;
    assert_squares(&report.map.results);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_survives_losing_the_stream_leader() {
    let mut cluster = NatsCluster::start();
    let options = FleetOptions {
        replicas: 3,
        ..FleetOptions::default()
    };
    // The meta leader is elected some seconds after the servers are up.
    let fleet = {
        let mut tries = 0;
        loop {
            let attempt = async {
                let f = NatsFleet::connect_with(&cluster.url, options.clone()).await?;
                f.fleet().tasks().await?;
                f.fleet().results().await?;
                Ok::<_, rwc_client::Error>(f)
            };
            match attempt.await {
                Ok(f) => break f,
                Err(e) => {
                    tries += 1;
                    assert!(tries < 60, "JetStream never came up on the cluster: {e}");
                }
            }
        }
    };
    let _nodes = NatsNode::start_many(&cluster.url, 2, &["--nats-replicas", "3"]);
    let options = DurableMapOptions::default().job("leader");
    let map = spawn_work_past(&fleet, slow_inputs(800, 100_000), options, 200).await;
    let mut tasks = fleet.fleet().tasks().await.unwrap();
    let leader = tasks
        .info()
        .await
        .unwrap()
        .cluster
        .clone()
        .and_then(|c| c.leader)
        .expect("the tasks stream has a leader");
    cluster.kill(&leader);
    let what = "the map finishes after the leader is lost";
    let report = ended(map, Duration::from_secs(120), what).await;
    assert_squares(&report.map.results);
    // Right after the election a lookup can still time out on a loaded machine: ask
    // again until the cluster answers (within 60 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let new_leader = loop {
        let asked = async {
            let mut tasks = fleet.fleet().tasks().await?;
            let info = tasks
                .info()
                .await
                .map_err(|e| rwc_client::Error::failed(e.to_string()))?;
            Ok::<_, rwc_client::Error>(info.cluster.clone().and_then(|c| c.leader))
        };
        match asked.await {
            Ok(leader) => break leader,
            Err(e) => assert!(
                std::time::Instant::now() < deadline,
                "the cluster never answered about the tasks stream: {e}"
            ),
        }
    };
    assert!(
        new_leader.is_some_and(|l| l != leader),
        "a new leader took over"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_that_kills_its_node_every_time_stops_after_max_deliver() {
    let server = NatsServer::start();
    let nodes = NatsNode::start_many(&server.url, 3, &["--nats-max-deliver", "2"]);
    let fleet = fleet(&server.url).await;
    // Input 7 runs for ever (well past the test): each node that starts it is killed.
    let mut inputs = slow_inputs(20, 0);
    inputs[7] = vec![Value::I64(7), Value::I64(i64::MAX)];
    let map = spawn_work(&fleet, inputs, DurableMapOptions::default().job("poison"));
    let marker = "first=7 ";
    let mut killed = Vec::new();
    let mut killed_at: Option<std::time::Instant> = None;
    for delivery in 1..=2 {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let victim = loop {
            if let Some(n) = nodes
                .iter()
                .position(|n| !killed.contains(&n.addr) && n.logged(marker))
            {
                break n;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "delivery {delivery} of input 7 never started"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        if let Some(at) = killed_at {
            // A figure for the report, not a check: AckWait is ACK_WAIT_SECS here.
            eprintln!(
                "input 7 started again on another node {:?} after its node was SIGKILLed \
                 (AckWait {ACK_WAIT_SECS} s)",
                at.elapsed()
            );
        }
        nodes[victim].kill();
        killed_at = Some(std::time::Instant::now());
        killed.push(nodes[victim].addr.clone());
    }
    let report = ended(map, Duration::from_secs(60), "the map ends").await;
    for (i, r) in report.map.results.iter().enumerate() {
        if i == 7 {
            let e = r.as_ref().expect_err("input 7 has an error result");
            assert_eq!(e.kind(), ErrorKind::Failed);
            assert!(
                e.message()
                    .contains("gave up on this input after 2 attempts"),
                "{e}"
            );
        } else {
            let i = i64::try_from(i).unwrap();
            assert_eq!(r.as_ref().ok(), Some(&Value::I64(i * i)), "input {i}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deterministic_failures_are_results_and_netrefs_are_refused() {
    let server = NatsServer::start();
    let node = NatsNode::start(&server.url, &[]);
    let fleet = fleet(&server.url).await;
    let options = DurableMapOptions::default();
    let report = map_math(&fleet, "sq_or_trap13", inputs(20), options).await;
    for (i, r) in report.map.results.iter().enumerate() {
        if i == 13 {
            assert_eq!(r.as_ref().unwrap_err().kind(), ErrorKind::Trapped);
        } else {
            assert!(r.is_ok(), "input {i}: {r:?}");
        }
    }
    // A trap is a result: it ran once, not once per delivery.
    assert_eq!(calls_served(&node.addr).await, 20);

    let callback = rwc_client::callable(|(): ()| async { Ok(()) });
    let err = fleet
        .map_durable(
            wat::MATH.as_bytes(),
            "sq",
            vec![vec![Value::from(callback)]],
            DurableMapOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadArgument);
    assert!(err.message().contains("netref"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_listed_and_cancelled() {
    let server = NatsServer::start();
    let scratch = Scratch::new();
    let module = scratch.file("math.wat", wat::MATH);
    let input = scratch.file("inputs.jsonl", numbers(50));
    // No node serves tag "nobody": the map waits, and its job stays queued.
    let mut waiting = spawn_map(&[
        "--nats",
        &server.url,
        "--tag",
        "nobody",
        "--job",
        "stuck",
        &module,
        "sq",
        "--input",
        &input,
    ]);
    let fleet = fleet(&server.url).await;
    support::eventually(
        Duration::from_secs(20),
        "the job is listed with its tasks",
        async || {
            fleet
                .jobs()
                .await
                .is_ok_and(|j| j.len() == 1 && j[0].queued == 50)
        },
    )
    .await;
    let (code, out, err) = support::rwc(&["jobs", "--nats", &server.url], "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("stuck") && out.contains("0/50"), "{out}");
    let (code, _, err) = support::rwc(&["job", "cancel", "stuck", "--nats", &server.url], "");
    assert_eq!(code, 0, "{err}");
    assert!(fleet.jobs().await.unwrap().is_empty());
    let tasks = fleet.fleet().tasks().await.unwrap();
    let mut tasks = tasks;
    assert_eq!(
        tasks.info().await.unwrap().state.messages,
        0,
        "its tasks are purged"
    );
    let (code, _, err) = support::rwc(&["job", "cancel", "stuck", "--nats", &server.url], "");
    assert_eq!(
        code, 7,
        "cancelling a job that is gone is a bad argument: {err}"
    );
    waiting.kill().unwrap();
    waiting.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_tasks_run_under_the_principal_the_node_names() {
    let server = NatsServer::start();
    let scratch = Scratch::new();
    let ops = r#"
[[principals]]
name = "ops"
token_sha256 = "1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0"
grants = ["upload", "instantiate", "run", "info"]
[principals.limits]
memory_bytes = 33554432
"#;
    // NATS tells the node nothing of who published a task: with principals, the node must
    // say whose grants and limits the tasks get, or it does not join.
    let unnamed = scratch.file("unnamed.toml", ops);
    let refused = std::process::Command::new(support::node_bin())
        .args(["--listen", "127.0.0.1:0", "--nats", &server.url])
        .args(["--config", &unnamed])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run rwc-node");
    assert!(
        !refused.status.success(),
        "a node naming no principal joined"
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("set [nats] principal = \"NAME\""),
        "stderr: {stderr}"
    );

    let named = scratch.file(
        "named.toml",
        format!("{ops}\n[nats]\nprincipal = \"ops\"\n"),
    );
    let _node = NatsNode::start(&server.url, &["--config", &named]);
    let fleet = fleet(&server.url).await;
    let with_memory = |bytes: u64| {
        let mut options = DurableMapOptions::default();
        options.instance.memory = Some(bytes);
        options
    };
    // Within `ops`' 32 MiB: runs.
    let report = map_math(&fleet, "sq", inputs(5), with_memory(16 << 20)).await;
    assert_squares(&report.map.results);
    // Above it (the node's own cap is 256 MiB): every input's result is the limit error
    // naming `ops`.
    let report = map_math(&fleet, "sq", inputs(3), with_memory(64 << 20)).await;
    for r in &report.map.results {
        let e = r.as_ref().expect_err("over the principal's memory cap");
        assert_eq!(e.kind(), ErrorKind::Limit, "{e}");
        assert!(e.message().contains("principal `ops`"), "{e}");
    }
}
