//! Liveness: telling a node that hangs (stopped, wedged, behind a dead link that sends no
//! reset) from one that is merely busy, so that a map moves a hung node's inputs to the
//! other nodes after a bounded time instead of waiting out each call's timeout.
//!
//! While a map runs, each node's connection is pinged every quarter of the liveness
//! timeout. A node answers pings from its connection's reader, whatever its guests are
//! doing, so a busy node still answers at once; one that has not answered a ping within
//! the timeout is taken to be hung. Its calls are then abandoned (cancelled on the node,
//! should it ever wake up, and any late result discarded) and their inputs go back to the
//! queue: a hung node's inputs move elsewhere within 1.25 × the timeout.

use std::time::Duration;

use rwc_protocol::{Connection, Error, ErrorKind};

/// The default [`MapOptions::liveness_timeout`](super::MapOptions::liveness_timeout).
pub const DEFAULT_LIVENESS_TIMEOUT: Duration = Duration::from_secs(10);

/// Pings `conn` until a ping goes unanswered for `timeout`; returns the error the node is
/// retired with then. Never returns while the node answers, nor once the connection has
/// closed (the calls on it fail with `disconnected` by themselves).
///
/// # Cancel safety
/// Dropping the future stops the pings; a late pong is ignored.
pub(crate) async fn until_hung(conn: &Connection, timeout: Duration) -> Error {
    let every = (timeout / 4).max(Duration::from_millis(1));
    loop {
        tokio::time::sleep(every).await;
        match tokio::time::timeout(timeout, conn.ping()).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return std::future::pending().await,
            Err(_) => {
                return Error::new(
                    ErrorKind::TimedOut,
                    format!(
                        "the node stopped answering: no reply to a ping within {timeout:?} \
                         (is it stopped or wedged?)"
                    ),
                );
            }
        }
    }
}
