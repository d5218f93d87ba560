//! Clients that the fault tests kill (SIGKILL) in the middle of something: they print a
//! line once the node is in the state to kill them in, then wait.

use std::io::Write;

use rwc_client::api::root::UploadStream;
use rwc_client::api::upload::Write as Chunk;
use rwc_client::{Client, InstanceOptions, UPLOAD_CHUNK, request};
use serde_bytes::ByteBuf;

use crate::Failure;

/// Starts `spin` (which never returns) on a fresh instance, prints `calling` once the node
/// runs it, and waits.
pub(crate) async fn in_call(node: &str) -> Result<(), Failure> {
    let client = Client::connect(node).await?;
    let module = client.upload(crate::SPIN.as_bytes()).await?;
    let instance = client
        .instantiate(&module, InstanceOptions::default())
        .await?;
    let before = client.info().await?.calls;
    let _call = instance.call_async("spin", vec![]);
    while client.info().await?.calls == before {
        tokio::task::yield_now().await;
    }
    announce("calling")?;
    std::future::pending().await
}

/// Starts a chunked upload of `bytes` bytes, sends half of them, prints `uploading`, and
/// waits.
pub(crate) async fn in_upload(node: &str, bytes: u64) -> Result<(), Failure> {
    let client = Client::connect(node).await?;
    let uploader = request(client.root(), &UploadStream { total_len: bytes })
        .await?
        .into_netref("the uploader")?;
    let half = usize::try_from(bytes / 2)?;
    let mut sent = 0;
    while sent < half {
        let n = UPLOAD_CHUNK.min(half - sent);
        request(
            &uploader,
            &Chunk {
                chunk: ByteBuf::from(vec![b' '; n]),
            },
        )
        .await?;
        sent += n;
    }
    announce("uploading")?;
    std::future::pending().await
}

fn announce(line: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}
