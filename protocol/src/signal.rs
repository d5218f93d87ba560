//! Process signals a server stops on.

/// Completes when this process gets SIGINT or SIGTERM (or, where those cannot be
/// watched, Ctrl-C): what a server passes as its shutdown signal.
///
/// # Cancel safety
/// Dropping the future stops watching; a signal that arrives later is handled by the
/// default action again (SIGINT and SIGTERM end the process).
pub async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
