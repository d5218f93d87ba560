//! Inbound bounds: how much the peer can make this side hold at once.
//!
//! Every call from the peer that is admitted holds a [`Ticket`] until it has been answered
//! (or cancelled, or the connection closed): one call and the bytes of its request frame.
//! A connection admits at most [`max_calls_in_flight`] calls and
//! [`max_request_bytes_in_flight`] bytes at once; with a [`PrincipalBudget`] (shared by the
//! connections of a server), the calls of all connections of one principal together are
//! bounded too. A call over a bound is answered `overloaded` at once, naming the bound; it
//! never waits, so a peer that floods a server is told so instead of hanging.
//!
//! [`max_calls_in_flight`]: super::ConnectionConfig::max_calls_in_flight
//! [`max_request_bytes_in_flight`]: super::ConnectionConfig::max_request_bytes_in_flight

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use super::lock;
use crate::error::{Error, ErrorKind};

/// The principal a connection is accounted to when its peer did not authenticate.
pub const ANONYMOUS: &str = "anonymous";

/// What is in flight: calls, and the bytes of their requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboundUsage {
    /// Calls admitted and not yet answered.
    pub calls: usize,
    /// Bytes of their request frames.
    pub bytes: usize,
}

/// Bounds shared by every connection of a server, per principal: the calls from all
/// connections of one principal in flight at once, and the bytes of their requests.
///
/// Give the same `Arc` to the [`ConnectionConfig`](super::ConnectionConfig) of each
/// connection the server accepts. Connections whose peer did not authenticate count as
/// the principal [`ANONYMOUS`].
pub struct PrincipalBudget {
    max_calls: usize,
    max_bytes: usize,
    usage: Mutex<HashMap<String, InboundUsage>>,
}

impl PrincipalBudget {
    /// A budget of `max_calls` calls and `max_bytes` request bytes in flight per
    /// principal.
    pub fn new(max_calls: usize, max_bytes: usize) -> Arc<PrincipalBudget> {
        Arc::new(PrincipalBudget {
            max_calls,
            max_bytes,
            usage: Mutex::new(HashMap::new()),
        })
    }

    /// What `principal` (`None`: [`ANONYMOUS`]) has in flight now.
    pub fn usage(&self, principal: Option<&str>) -> InboundUsage {
        let name = principal.unwrap_or(ANONYMOUS);
        lock(&self.usage).get(name).copied().unwrap_or_default()
    }

    /// What every principal together has in flight now.
    pub fn total(&self) -> InboundUsage {
        lock(&self.usage)
            .values()
            .fold(InboundUsage::default(), |sum, u| InboundUsage {
                calls: sum.calls.saturating_add(u.calls),
                bytes: sum.bytes.saturating_add(u.bytes),
            })
    }

    fn charge(&self, principal: &str, bytes: usize) -> Result<(), Error> {
        let mut usage = lock(&self.usage);
        let now = usage.get(principal).copied().unwrap_or_default();
        if now.calls >= self.max_calls {
            return Err(overloaded(format!(
                "principal `{principal}` has {} calls in flight here, its limit \
                 (max_calls_in_flight_per_principal); retry when some have returned",
                now.calls
            )));
        }
        if now.bytes.saturating_add(bytes) > self.max_bytes {
            return Err(overloaded(format!(
                "principal `{principal}` has {} bytes of requests in flight here and this one \
                 has {bytes}, over its limit of {} (max_request_bytes_in_flight_per_principal); \
                 retry when some have returned",
                now.bytes, self.max_bytes
            )));
        }
        let entry = usage.entry(principal.to_owned()).or_default();
        entry.calls += 1;
        entry.bytes += bytes;
        Ok(())
    }

    fn refund(&self, principal: &str, bytes: usize) {
        let mut usage = lock(&self.usage);
        if let Some(entry) = usage.get_mut(principal) {
            entry.calls = entry.calls.saturating_sub(1);
            entry.bytes = entry.bytes.saturating_sub(bytes);
            if entry.calls == 0 {
                usage.remove(principal);
            }
        }
    }
}

impl fmt::Debug for PrincipalBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrincipalBudget")
            .field("max_calls", &self.max_calls)
            .field("max_bytes", &self.max_bytes)
            .field("total", &self.total())
            .finish()
    }
}

/// One connection's inbound accounting.
pub(crate) struct Inbound {
    max_calls: usize,
    max_bytes: usize,
    usage: Mutex<InboundUsage>,
    principal: String,
    shared: Option<Arc<PrincipalBudget>>,
}

impl Inbound {
    pub(crate) fn new(
        max_calls: usize,
        max_bytes: usize,
        principal: Option<&str>,
        shared: Option<Arc<PrincipalBudget>>,
    ) -> Arc<Inbound> {
        Arc::new(Inbound {
            max_calls,
            max_bytes,
            usage: Mutex::new(InboundUsage::default()),
            principal: principal.unwrap_or(ANONYMOUS).to_owned(),
            shared,
        })
    }

    /// What this connection has in flight.
    pub(crate) fn usage(&self) -> InboundUsage {
        *lock(&self.usage)
    }

    /// Admits a call whose request frame is `bytes` long, or says which bound it breaks
    /// (`overloaded`).
    pub(crate) fn admit(self: &Arc<Self>, bytes: usize) -> Result<Ticket, Error> {
        let mut usage = lock(&self.usage);
        if usage.calls >= self.max_calls {
            return Err(overloaded(format!(
                "this connection has {} calls in flight here, its limit (max_calls_in_flight); \
                 retry when some have returned",
                usage.calls
            )));
        }
        if usage.bytes.saturating_add(bytes) > self.max_bytes {
            return Err(overloaded(format!(
                "this connection has {} bytes of requests in flight here and this one has \
                 {bytes}, over its limit of {} (max_request_bytes_in_flight); retry when some \
                 have returned",
                usage.bytes, self.max_bytes
            )));
        }
        if let Some(shared) = &self.shared {
            shared.charge(&self.principal, bytes)?;
        }
        usage.calls += 1;
        usage.bytes += bytes;
        Ok(Ticket {
            inbound: self.clone(),
            bytes,
        })
    }
}

/// A call admitted by [`Inbound::admit`]; dropping it gives its share back.
pub(crate) struct Ticket {
    inbound: Arc<Inbound>,
    bytes: usize,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let inbound = &self.inbound;
        {
            let mut usage = lock(&inbound.usage);
            usage.calls = usage.calls.saturating_sub(1);
            usage.bytes = usage.bytes.saturating_sub(self.bytes);
        }
        if let Some(shared) = &inbound.shared {
            shared.refund(&inbound.principal, self.bytes);
        }
    }
}

fn overloaded(message: String) -> Error {
    Error::new(ErrorKind::Overloaded, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_admits_up_to_its_bounds_and_tickets_give_back() {
        let inbound = Inbound::new(2, 100, None, None);
        let a = inbound.admit(60).unwrap();
        let err = inbound.admit(41).err().unwrap();
        assert_eq!(err.kind(), ErrorKind::Overloaded);
        assert!(
            err.message().contains("max_request_bytes_in_flight"),
            "{err}"
        );
        let b = inbound.admit(40).unwrap();
        let err = inbound.admit(0).err().unwrap();
        assert!(err.message().contains("max_calls_in_flight"), "{err}");
        assert_eq!(
            inbound.usage(),
            InboundUsage {
                calls: 2,
                bytes: 100
            }
        );
        drop((a, b));
        assert_eq!(inbound.usage(), InboundUsage::default());
        drop(inbound.admit(100).unwrap());
    }

    #[test]
    fn connections_of_one_principal_share_its_budget() {
        let budget = PrincipalBudget::new(3, 1000);
        let one = Inbound::new(10, 1000, Some("ops"), Some(budget.clone()));
        let two = Inbound::new(10, 1000, Some("ops"), Some(budget.clone()));
        let other = Inbound::new(10, 10_000, None, Some(budget.clone()));
        let held = [
            one.admit(1).unwrap(),
            two.admit(1).unwrap(),
            one.admit(1).unwrap(),
        ];
        let err = two.admit(1).err().unwrap();
        assert_eq!(err.kind(), ErrorKind::Overloaded);
        assert!(
            err.message().contains("principal `ops`")
                && err.message().contains("max_calls_in_flight_per_principal"),
            "{err}"
        );
        assert_eq!(two.usage().calls, 1, "a refused call is not counted");
        // Another principal (anonymous) is not affected.
        let anon = other.admit(900).unwrap();
        assert_eq!(budget.usage(None).bytes, 900);
        assert_eq!(budget.usage(Some("ops")).calls, 3);
        assert_eq!(budget.total().calls, 4);
        let err = other.admit(101).err().unwrap();
        assert!(
            err.message()
                .contains("max_request_bytes_in_flight_per_principal"),
            "{err}"
        );
        drop(held);
        drop(anon);
        assert_eq!(budget.total(), InboundUsage::default());
    }
}
