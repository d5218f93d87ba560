//! Connection admission: how many connections a server holds at once, in all and per
//! source address, and the refusal a peer over either cap gets before any handshake work.
//!
//! A [`Listener`](crate::listener::Listener) given an [`Admission`] asks it about every
//! stream it accepts. An admitted connection holds an [`Admitted`] until it closes; one
//! over a cap is answered at once with the handshake's refusal (kind `overloaded`, naming
//! the cap), so the peer's `connect` fails with that error instead of a reset.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::{Error, ErrorKind};
use crate::handshake;

/// Refusals being written at once; past this, a refused stream is just closed (a flood
/// must not make the refusals themselves a cost).
const MAX_REFUSING: usize = 64;

/// How long a refused peer is given to read the refusal before its stream is closed.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// Counts of an [`Admission`], for `info` and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct AdmissionUsage {
    /// Connections held now.
    pub open: usize,
    /// The most connections one source address holds now.
    pub busiest_address: usize,
    /// Connections refused since the admission was made.
    pub refused: u64,
}

/// Caps on the connections a server holds: `max_connections` in all and
/// `max_connections_per_address` from one source IP address (Unix sockets count only
/// towards the total).
pub struct Admission {
    max_connections: usize,
    max_per_address: usize,
    state: Mutex<State>,
    refused: AtomicU64,
    refusing: AtomicUsize,
}

#[derive(Default)]
struct State {
    open: usize,
    per_address: HashMap<IpAddr, usize>,
}

impl Admission {
    /// Caps of `max_connections` in all and `max_per_address` per source address.
    pub fn new(max_connections: usize, max_per_address: usize) -> Arc<Admission> {
        Arc::new(Admission {
            max_connections,
            max_per_address,
            state: Mutex::new(State::default()),
            refused: AtomicU64::new(0),
            refusing: AtomicUsize::new(0),
        })
    }

    /// Admits a connection from `address` (`None`: a Unix socket), or says which cap it is
    /// over (`overloaded`). The connection counts until the [`Admitted`] drops.
    pub fn admit(self: &Arc<Self>, address: Option<IpAddr>) -> Result<Admitted, Error> {
        let mut state = self.state();
        if state.open >= self.max_connections {
            drop(state);
            return Err(self.refuse(format!(
                "the server holds {} connections, its limit (max_connections); retry later",
                self.max_connections
            )));
        }
        if let Some(ip) = address {
            let from_ip = state.per_address.get(&ip).copied().unwrap_or(0);
            if from_ip >= self.max_per_address {
                drop(state);
                return Err(self.refuse(format!(
                    "the server holds {from_ip} connections from {ip}, its limit per address \
                     (max_connections_per_address); close some or retry later"
                )));
            }
            *state.per_address.entry(ip).or_insert(0) += 1;
        }
        state.open += 1;
        Ok(Admitted {
            admission: self.clone(),
            address,
        })
    }

    /// Current counts.
    pub fn usage(&self) -> AdmissionUsage {
        let state = self.state();
        AdmissionUsage {
            open: state.open,
            busiest_address: state.per_address.values().copied().max().unwrap_or(0),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }

    fn refuse(&self, message: String) -> Error {
        self.refused.fetch_add(1, Ordering::Relaxed);
        Error::new(ErrorKind::Overloaded, message)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update completes without panicking: a poisoned lock guards sound counts.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Tells the peer on `stream` why it was refused, then closes the stream. Gives up at
    /// once when many refusals are being written already.
    pub(crate) async fn send_refusal<S>(&self, mut stream: S, reason: Error)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if self.refusing.fetch_add(1, Ordering::SeqCst) >= MAX_REFUSING {
            self.refusing.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        let linger = async {
            handshake::refuse(&mut stream, &reason).await?;
            // Closing with the peer's hello unread would reset the connection, and a reset
            // can discard the refusal before the peer reads it: read until the peer, which
            // has the refusal, closes its side.
            stream
                .shutdown()
                .await
                .map_err(|e| Error::failed(e.to_string()))?;
            let mut sink = [0u8; 4096];
            while stream
                .read(&mut sink)
                .await
                .map_err(|e| Error::failed(e.to_string()))?
                > 0
            {}
            Ok::<(), Error>(())
        };
        let _ = tokio::time::timeout(REFUSAL_LINGER, linger).await;
        self.refusing.fetch_sub(1, Ordering::SeqCst);
    }
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission")
            .field("max_connections", &self.max_connections)
            .field("max_per_address", &self.max_per_address)
            .field("usage", &self.usage())
            .finish()
    }
}

/// An admitted connection; dropping it frees its place.
pub struct Admitted {
    admission: Arc<Admission>,
    address: Option<IpAddr>,
}

impl fmt::Debug for Admitted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admitted")
            .field("address", &self.address)
            .finish()
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut state = self.admission.state();
        state.open = state.open.saturating_sub(1);
        if let Some(ip) = self.address
            && let Some(n) = state.per_address.get_mut(&ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                state.per_address.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_in_all_and_per_address_and_places_come_back() {
        let admission = Admission::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = admission.admit(Some(a)).unwrap();
        let _second = admission.admit(Some(a)).unwrap();
        let err = admission.admit(Some(a)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Overloaded);
        assert!(
            err.message().contains("max_connections_per_address")
                && err.message().contains("10.0.0.1"),
            "{err}"
        );
        let _third = admission.admit(Some(b)).unwrap();
        let err = admission.admit(None).unwrap_err();
        assert!(err.message().contains("(max_connections)"), "{err}");
        assert_eq!(
            admission.usage(),
            AdmissionUsage {
                open: 3,
                busiest_address: 2,
                refused: 2
            }
        );
        drop(first);
        let _unix = admission.admit(None).unwrap();
        assert_eq!(admission.usage().open, 3);
        assert_eq!(admission.usage().busiest_address, 1);
    }
}
