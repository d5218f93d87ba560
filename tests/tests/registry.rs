//! Discovery: the registry's register/list/lookup, expiry of entries that stop being
//! refreshed, and nodes that register themselves (`rwc-node --register`).

mod support;

use std::time::Duration;

use rwc_client::registry::{RegistryClient, RegistryServer};
use rwc_client::{ErrorKind, MapOptions, Pool, Value};
use support::{eventually, spawn_node, spawn_registry, wat};

/// A registry in this process, on an ephemeral port.
async fn registry() -> (String, tokio::sync::oneshot::Sender<()>) {
    let server = RegistryServer::bind("127.0.0.1:0").await.unwrap();
    let addr = server.address().to_owned();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

fn addrs(entries: &[rwc_client::registry::RegistryEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.addr.as_str()).collect()
}

#[tokio::test]
async fn register_list_and_lookup_by_tag() {
    let (addr, _stop) = registry().await;
    let r = RegistryClient::connect(&addr).await.unwrap();
    let ttl = Duration::from_secs(60);
    r.register("10.1.0.1:18870", &["cpu", "eu"], ttl)
        .await
        .unwrap();
    r.register("10.1.0.2:18870", &["gpu", "eu"], ttl)
        .await
        .unwrap();
    r.register("10.1.0.3:18870", &[], ttl).await.unwrap();

    let all = r.list().await.unwrap();
    assert_eq!(
        addrs(&all),
        ["10.1.0.1:18870", "10.1.0.2:18870", "10.1.0.3:18870"]
    );
    assert_eq!(all[0].tags, ["cpu", "eu"]);
    assert_eq!(all[0].ttl_secs, 60);
    assert!(all[0].expires_in_secs > 30.0);
    assert_eq!(
        addrs(&r.lookup("eu").await.unwrap()),
        ["10.1.0.1:18870", "10.1.0.2:18870"]
    );
    assert_eq!(addrs(&r.lookup("gpu").await.unwrap()), ["10.1.0.2:18870"]);
    assert!(r.lookup("tpu").await.unwrap().is_empty());

    // Registering again refreshes and replaces the tags; it does not add an entry.
    r.register("10.1.0.2:18870", &["cpu"], ttl).await.unwrap();
    assert_eq!(r.list().await.unwrap().len(), 3);
    assert!(r.lookup("gpu").await.unwrap().is_empty());
    assert_eq!(r.lookup("cpu").await.unwrap().len(), 2);

    assert!(r.unregister("10.1.0.3:18870").await.unwrap());
    assert_eq!(r.list().await.unwrap().len(), 2);

    // Bad entries are refused with a reason.
    // A TTL under a second is rounded up to one.
    r.register("10.1.0.9:1", &["x"], Duration::ZERO)
        .await
        .unwrap();
    let e = r.register(&"x".repeat(1000), &[], ttl).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadArgument, "{e}");
}

#[tokio::test]
async fn entries_expire_when_not_refreshed() {
    let (addr, _stop) = registry().await;
    let r = RegistryClient::connect(&addr).await.unwrap();
    r.register("10.2.0.1:1", &["t"], Duration::from_secs(1))
        .await
        .unwrap();
    r.register("10.2.0.2:1", &["t"], Duration::from_secs(3))
        .await
        .unwrap();
    assert_eq!(r.lookup("t").await.unwrap().len(), 2);

    // The second is refreshed well within its TTL; the first is not refreshed at all.
    let refresher = {
        let addr = addr.clone();
        tokio::spawn(async move {
            let r = RegistryClient::connect(&addr).await.unwrap();
            loop {
                tokio::time::sleep(Duration::from_millis(300)).await;
                r.register("10.2.0.2:1", &["t"], Duration::from_secs(3))
                    .await
                    .unwrap();
            }
        })
    };
    eventually(
        Duration::from_secs(20),
        "the unrefreshed entry expires",
        async || addrs(&r.lookup("t").await.unwrap()) == ["10.2.0.2:1"],
    )
    .await;
    refresher.abort();
    eventually(
        Duration::from_secs(20),
        "the entry expires once refreshes stop",
        async || r.list().await.unwrap().is_empty(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_register_themselves_and_a_pool_finds_them_by_tag() {
    let registry = spawn_registry();
    let a = spawn_node(&[
        "--register",
        &registry.addr,
        "--tag",
        "math",
        "--tag",
        "eu",
        "--register-ttl-secs",
        "3",
    ]);
    let b = spawn_node(&[
        "--register",
        &registry.addr,
        "--tag",
        "math",
        "--register-ttl-secs",
        "3",
    ]);
    let _other = spawn_node(&["--register", &registry.addr, "--tag", "other"]);
    let r = RegistryClient::connect(&registry.addr).await.unwrap();
    let mut want = vec![a.addr.clone(), b.addr.clone()];
    want.sort();
    eventually(Duration::from_secs(20), "both nodes register", async || {
        addrs(&r.lookup("math").await.unwrap()) == want
    })
    .await;
    // Past the 3 s TTL, they are still listed: they refresh (every second).
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(addrs(&r.lookup("math").await.unwrap()), want);

    let mut pool = Pool::from_registry(&registry.addr, Some("math"))
        .await
        .unwrap();
    assert_eq!(pool.len(), 2);
    pool.load(wat::MATH.as_bytes()).await.unwrap();
    let inputs: Vec<Vec<Value>> = (0..100).map(|i| vec![Value::I64(i)]).collect();
    let report = pool.map("sq", inputs, MapOptions::default()).await.unwrap();
    assert_eq!(report.succeeded(), 100);
    pool.close();

    // A node killed outright cannot unregister: its entry goes when refreshes stop.
    b.kill();
    eventually(
        Duration::from_secs(20),
        "the killed node's entry expires",
        async || addrs(&r.lookup("math").await.unwrap()) == [a.addr.as_str()],
    )
    .await;

    let err = Pool::from_registry(&registry.addr, Some("nothing"))
        .await
        .unwrap_err();
    assert!(err.message().contains("--register"), "{err}");
}
