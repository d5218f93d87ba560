//! Discovery through NATS, with real nats-server and rwc-node processes: nodes register
//! with their tags and answer the NATS service API, a SIGKILLed node drops out within its
//! TTL, a node that shuts down deregisters at once, and a pool follows the bucket.

mod nats_support;
mod support;

use std::time::{Duration, Instant};

use nats_support::{NatsNode, NatsServer, TTL_SECS, fleet};
use rwc_client::discovery::Discovery;
use rwc_client::nats::NatsDiscovery;
use rwc_client::{ConnectOptions, Token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_register_with_their_tags_and_answer_the_service_api() {
    let server = NatsServer::start();
    let gpu = NatsNode::start(&server.url, &["--tag", "gpu", "--tag", "eu"]);
    let plain = NatsNode::start(&server.url, &[]);
    let fleet = fleet(&server.url).await;

    let all = fleet.nodes(None).await.unwrap();
    let mut addrs: Vec<&str> = all.iter().map(|n| n.address.as_str()).collect();
    addrs.sort_unstable();
    let mut expected = vec![gpu.addr.as_str(), plain.addr.as_str()];
    expected.sort_unstable();
    assert_eq!(addrs, expected);
    let tagged = fleet.nodes(Some("gpu")).await.unwrap();
    assert_eq!(tagged.len(), 1);
    assert_eq!(tagged[0].address, gpu.addr);
    assert_eq!(tagged[0].tags, ["gpu", "eu"]);
    assert!(tagged[0].capacity >= 1);
    let untagged = fleet.nodes(Some("default")).await.unwrap();
    assert_eq!(untagged.len(), 1);
    assert_eq!(untagged[0].address, plain.addr);

    // The Discovery backend lists the same.
    let found = NatsDiscovery::new(&server.url, Some("eu"))
        .resolve()
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].addr, gpu.addr);

    // Standard NATS tooling sees them: the service API's PING and INFO.
    let client = fleet.fleet().client().clone();
    let reply_to = client.new_inbox();
    let mut inbox = client.subscribe(reply_to.clone()).await.unwrap();
    client
        .publish_with_reply("$SRV.PING.rwc-node", reply_to, "".into())
        .await
        .unwrap();
    let mut pongs = Vec::new();
    while pongs.len() < 2 {
        let msg =
            tokio::time::timeout(Duration::from_secs(5), futures::StreamExt::next(&mut inbox))
                .await
                .expect("both nodes answer $SRV.PING")
                .unwrap();
        let reply: serde_json::Value = serde_json::from_slice(&msg.payload).unwrap();
        assert_eq!(reply["name"], "rwc-node");
        pongs.push(reply["metadata"]["address"].as_str().unwrap().to_owned());
    }
    pongs.sort();
    assert_eq!(pongs, expected);
    let info = client
        .request("$SRV.INFO.rwc-node", "".into())
        .await
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.payload).unwrap();
    assert_eq!(info["type"], "io.nats.micro.v1.info_response");

    // And the CLI.
    let (code, out, err) = support::rwc(&["nodes", "--nats", &server.url, "--tag", "gpu"], "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&gpu.addr) && out.contains("gpu,eu"), "{out}");
    assert!(!out.contains(&plain.addr), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_drops_out_within_its_ttl() {
    let server = NatsServer::start();
    let node = NatsNode::start(&server.url, &[]);
    let fleet = fleet(&server.url).await;
    assert_eq!(fleet.nodes(None).await.unwrap().len(), 1);
    node.kill();
    let killed = Instant::now();
    let ttl = Duration::from_secs(TTL_SECS.parse().unwrap());
    // The server expires entries a little after max_age; allow it one more TTL.
    support::eventually(
        2 * ttl + Duration::from_secs(1),
        "the entry expires",
        async || fleet.nodes(None).await.is_ok_and(|n| n.is_empty()),
    )
    .await;
    assert!(
        killed.elapsed() >= ttl / 2,
        "it stayed listed for part of its TTL at least"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_shuts_down_deregisters_at_once() {
    let server = NatsServer::start();
    let leaving = NatsNode::start(&server.url, &[]);
    let staying = NatsNode::start(&server.url, &[]);
    let fleet = fleet(&server.url).await;
    assert_eq!(fleet.nodes(None).await.unwrap().len(), 2);
    let stopped = Instant::now();
    leaving.terminate();
    let left = fleet.nodes(None).await.unwrap();
    assert!(stopped.elapsed() < Duration::from_secs(TTL_SECS.parse().unwrap()));
    assert_eq!(left.len(), 1, "gone before its TTL could pass: {left:?}");
    assert_eq!(left[0].address, staying.addr);
    assert!(leaving.logged("left the nodes bucket"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_from_nats_takes_in_nodes_that_join_and_retires_those_that_leave() {
    joins_and_leaves(&[], &ConnectOptions::default()).await;
}

/// The same with nodes that want a token: the pool presents it to the node that joins
/// mid-map too, or that node could not take part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_from_nats_gives_its_token_to_the_nodes_that_join() {
    use sha2::{Digest, Sha256};

    let token = "nats-pool-token";
    let scratch = support::Scratch::new();
    let config = scratch.file(
        "node.toml",
        format!(
            "[[principals]]\nname = \"ops\"\ntoken_sha256 = \"{}\"\n\
             grants = [\"upload\", \"instantiate\", \"run\", \"info\"]\n\n\
             [nats]\nprincipal = \"ops\"\n",
            hex::encode(Sha256::digest(token))
        ),
    );
    let options = ConnectOptions::new().with_token(Token::new(token).unwrap());
    joins_and_leaves(&["--config", &config], &options).await;
}

/// A pool from NATS, with `options`, over nodes started with `node_args`: a node that
/// joins mid-map gets work, one killed mid-map is retired, every input is answered.
async fn joins_and_leaves(node_args: &[&str], connect: &ConnectOptions) {
    use std::sync::Arc;

    use rwc_client::{MapOptions, Pool, Value};
    use tokio::sync::Notify;

    let server = NatsServer::start();
    let first = NatsNode::start(&server.url, node_args);
    let leaving = NatsNode::start(&server.url, node_args);
    let mut pool = Pool::from_nats_with(&server.url, None, connect)
        .await
        .unwrap();
    assert_eq!(pool.len(), 2);
    pool.load(support::wat::MATH.as_bytes()).await.unwrap();
    let n = 3000i64;
    let inputs: Vec<Vec<Value>> = (0..n)
        .map(|i| vec![Value::I64(i), Value::I64(200_000)])
        .collect();
    let started = Arc::new(Notify::new());
    let barrier = started.clone();
    let options = MapOptions::default().on_progress(move |p| {
        if p.done == 100 {
            barrier.notify_one();
        }
    });
    let map = pool.map("work", inputs, options);
    let url = server.url.clone();
    let changes = async {
        started.notified().await;
        let args: Vec<String> = node_args.iter().map(|a| (*a).to_owned()).collect();
        let joined = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            NatsNode::start(&url, &args)
        })
        .await
        .unwrap();
        // The pool connects to it and hands it work while the map runs.
        support::eventually(
            Duration::from_secs(30),
            "the new node gets work",
            async || nats_support::calls_served_with(&joined.addr, connect).await > 0,
        )
        .await;
        leaving.kill();
        joined
    };
    let (report, joined) = tokio::join!(map, changes);
    let report = report.unwrap();
    for (i, r) in report.results.iter().enumerate() {
        let i = i64::try_from(i).unwrap();
        assert_eq!(r.as_ref().ok(), Some(&Value::I64(i * i)), "input {i}");
    }
    let by_addr = |a: &str| report.nodes.iter().find(|n| n.addr == a);
    assert!(
        by_addr(&joined.addr).is_some_and(|n| n.done > 0),
        "{:?}",
        report.nodes
    );
    assert!(by_addr(&first.addr).is_some_and(|n| n.failed.is_none()));
    assert!(
        by_addr(&leaving.addr).is_some_and(|n| n.failed.is_some()),
        "the killed node is retired: {:?}",
        report.nodes
    );
    pool.close();
}
