//! Chunked uploads with progress (`Client::upload_with_progress` over the node's
//! `upload_stream`), and the node refusing a module over its size limit before any byte.

mod support;

use std::sync::{Arc, Mutex};

use rwc_client::{Client, ErrorKind, UPLOAD_CHUNK, module_hash};
use support::{spawn_node, wat};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_modules_upload_in_chunks_with_progress_and_only_once() {
    let node = spawn_node(&[]);
    let client = Client::connect(&node.addr).await.unwrap();
    let bytes = wat::big(3 * UPLOAD_CHUNK + 12_345).into_bytes();
    let total = bytes.len() as u64;

    let mut reports = Vec::new();
    let module = client
        .upload_with_progress(&bytes, |sent, t| reports.push((sent, t)))
        .await
        .unwrap();
    assert_eq!(module.hash(), module_hash(&bytes));
    // 0, then one report per chunk: four chunks.
    let sent: Vec<u64> = reports.iter().map(|r| r.0).collect();
    let chunk = UPLOAD_CHUNK as u64;
    assert_eq!(sent, [0, chunk, 2 * chunk, 3 * chunk, total]);
    assert!(reports.iter().all(|r| r.1 == total));

    // The module works.
    let instance = client
        .instantiate(&module, Default::default())
        .await
        .unwrap();
    let one: i32 = instance.call("one", ()).await.unwrap();
    assert_eq!(one, 1);

    // A second upload finds it by hash and sends nothing.
    let mut again = Vec::new();
    client
        .upload_with_progress(&bytes, |s, t| again.push((s, t)))
        .await
        .unwrap();
    assert_eq!(again, [(total, total)]);
    assert_eq!(client.info().await.unwrap().uploads, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_over_the_node_limit_is_refused_before_any_byte() {
    let node = spawn_node(&["--max-module-bytes", "1000000"]);
    let client = Client::connect(&node.addr).await.unwrap();
    let bytes = wat::big(2_000_000).into_bytes();
    let reports = Arc::new(Mutex::new(Vec::new()));
    let seen = reports.clone();
    let err = client
        .upload_with_progress(&bytes, move |s, t| seen.lock().unwrap().push((s, t)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Limit, "{err}");
    assert!(err.message().contains("limit"), "{err}");
    assert!(reports.lock().unwrap().is_empty(), "bytes were sent");

    // A small one still goes through.
    let module = client
        .upload_with_progress(wat::MATH.as_bytes(), |_, _| {})
        .await
        .unwrap();
    assert_eq!(module.hash(), module_hash(wat::MATH.as_bytes()));
}
