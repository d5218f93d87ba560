//! `Client::connect_stdio`: a node as a child process, spoken to over its pipes (how
//! `ssh host rwc-node --stdio` works).

mod support;

use rwc_client::{Client, InstanceOptions, Value};
use support::{node_bin, square, wat};
use tokio::process::Command;

#[tokio::test]
async fn a_child_node_over_stdio_runs_modules() {
    let mut cmd = Command::new(node_bin());
    cmd.args(["--stdio", "--no-cache"]).env("RUST_LOG", "warn");
    let client = Client::connect_stdio(cmd).await.unwrap();
    assert!(client.connection().peer().agent.starts_with("rwc-node"));
    let module = client.upload(wat::MATH.as_bytes()).await.unwrap();
    let instance = client
        .instantiate(&module, InstanceOptions::default())
        .await
        .unwrap();
    let sq: i64 = instance.call("sq", (12i64,)).await.unwrap();
    assert_eq!(sq, 144);
    assert_eq!(square(&client, 5).await.unwrap(), Value::I64(25));
    assert!(client.ping().await.is_ok());
    client.close();
}
