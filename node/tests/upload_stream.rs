//! The root's `upload_stream`: a module in chunks, checked against the announced length
//! and the node's size limit as the chunks arrive.

mod common;

use common::{TestNode, wat};
use rwc_node::NodeConfig;
use rwc_protocol::{ErrorKind, NetRef};
use serde_bytes::ByteBuf;

#[tokio::test]
async fn chunks_make_a_module() {
    let node = TestNode::start().await;
    let client = node.client().await;
    let bytes = wat::ADD.as_bytes();
    let up: NetRef = client
        .root
        .call("upload_stream", (bytes.len() as u64,))
        .await
        .unwrap();
    let (a, b) = bytes.split_at(10);
    let n: u64 = up.call("write", (ByteBuf::from(a),)).await.unwrap();
    assert_eq!(n, 10);
    let n: u64 = up.call("write", (ByteBuf::from(b),)).await.unwrap();
    assert_eq!(n, bytes.len() as u64);
    let module: NetRef = up.call("finish", ()).await.unwrap();
    let hash: String = module.call("hash", ()).await.unwrap();
    assert_eq!(hash, rwc_client_hash(bytes));
    let instance = client
        .instantiate(&module, rwc_protocol::Value::Unit)
        .await
        .unwrap();
    let sum: i32 = instance.call("add", (2, 3)).await.unwrap();
    assert_eq!(sum, 5);
    // Finished means finished.
    let e = up
        .call::<u64>("write", (ByteBuf::from(&b"x"[..]),))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadArgument, "{e}");
}

#[tokio::test]
async fn lengths_are_enforced_as_chunks_arrive() {
    let mut config = NodeConfig::default();
    config.limits.max_module_bytes = 1000;
    let node = TestNode::start_with(config).await;
    let client = node.client().await;

    // Over the limit: refused before any byte.
    let e = client
        .root
        .call::<NetRef>("upload_stream", (1001u64,))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Limit, "{e}");
    assert!(e.message().contains("1000"), "{e}");

    // More than announced: the chunk is refused, and nothing past it is kept.
    let up: NetRef = client.root.call("upload_stream", (8u64,)).await.unwrap();
    let e = write(&up, 9).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadArgument, "{e}");
    let received: u64 = up.call("received", ()).await.unwrap();
    assert_eq!(received, 0);

    // Fewer than announced: finish says what is missing.
    write(&up, 4).await.unwrap();
    let e = finish_fails(&up, ErrorKind::BadArgument).await;
    assert!(e.message().contains("4 of 8"), "{e}");

    // Garbage of the right length is not a module.
    write(&up, 4).await.unwrap();
    finish_fails(&up, ErrorKind::BadArgument).await;
}

/// The id a node gives bytes: hex SHA-256 (as `rwc_client::module_hash`, which the node's
/// tests cannot use).
fn rwc_client_hash(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Sends `len` zero bytes to the uploader; the bytes it holds then.
async fn write(up: &NetRef, len: usize) -> Result<u64, rwc_protocol::Error> {
    up.call("write", (ByteBuf::from(vec![0u8; len]),)).await
}

/// `finish()` fails, with an error of `kind`.
async fn finish_fails(up: &NetRef, kind: ErrorKind) -> rwc_protocol::Error {
    let e = up.call::<NetRef>("finish", ()).await.unwrap_err();
    assert_eq!(e.kind(), kind, "{e}");
    e
}
