//! Discovery backends against real sources: the system resolver and a registry on
//! 127.0.0.1.

use std::time::Duration;

use rwc_client::discovery::{Discovery, Dns, NodeAddr, RegistryDiscovery, StaticList};
use rwc_client::registry::{RegistryClient, RegistryServer};
use rwc_client::{ErrorKind, Pool};

fn addrs(nodes: &[NodeAddr]) -> Vec<&str> {
    nodes.iter().map(|n| n.addr.as_str()).collect()
}

#[tokio::test]
async fn a_static_list_is_taken_as_given() {
    let list = StaticList::new(["10.0.0.1:1", " ", "name.invalid:2", "unix:/tmp/x.sock"]);
    let nodes = list.resolve().await.unwrap();
    assert_eq!(
        addrs(&nodes),
        ["10.0.0.1:1", "name.invalid:2", "unix:/tmp/x.sock"]
    );
    assert!(nodes.iter().all(|n| n.tags.is_empty()));
}

#[tokio::test]
async fn dns_gives_every_address_of_a_name_once() {
    let nodes = Dns::new(["localhost:4321", "127.0.0.1:4321", "unix:/tmp/y.sock"])
        .resolve()
        .await
        .unwrap();
    let found = addrs(&nodes);
    assert!(found.contains(&"127.0.0.1:4321"), "{found:?}");
    assert_eq!(
        found.iter().filter(|a| **a == "127.0.0.1:4321").count(),
        1,
        "an address found twice is one node: {found:?}"
    );
    assert_eq!(found.last(), Some(&"unix:/tmp/y.sock"));
    let err = Dns::new(["no-such-host.invalid:1"])
        .resolve()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadArgument, "{err}");
    assert!(err.message().contains("no-such-host.invalid"), "{err}");
}

#[tokio::test]
async fn the_registry_lists_nodes_with_their_tags() {
    let server = RegistryServer::bind("127.0.0.1:0").await.unwrap();
    let addr = server.address().to_owned();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let registry = RegistryClient::connect(&addr).await.unwrap();
    let ttl = Duration::from_secs(60);
    registry
        .register("10.3.0.1:1", &["gpu", "eu"], ttl)
        .await
        .unwrap();
    registry.register("10.3.0.2:1", &["eu"], ttl).await.unwrap();

    let gpu = RegistryDiscovery::new(&addr, Some("gpu"))
        .resolve()
        .await
        .unwrap();
    assert_eq!(
        gpu,
        [NodeAddr {
            addr: "10.3.0.1:1".to_owned(),
            tags: vec!["eu".to_owned(), "gpu".to_owned()],
        }]
    );
    let all = RegistryDiscovery::new(&addr, None).resolve().await.unwrap();
    assert_eq!(addrs(&all), ["10.3.0.1:1", "10.3.0.2:1"]);

    // A pool of what the registry lists under a tag nobody has: a clear error.
    let err = Pool::from_registry(&addr, Some("tpu")).await.unwrap_err();
    assert!(err.message().contains("no node tagged \"tpu\""), "{err}");

    registry.close();
    let _ = stop.send(());
    served.await.unwrap();
    let err = RegistryDiscovery::new(&addr, None)
        .resolve()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Disconnected, "{err}");
}
