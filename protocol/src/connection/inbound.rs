//! Inbound bounds: how much the peer can make this side hold at once.
//!
//! Every call from the peer that is admitted holds a [`Ticket`] until it has been answered
//! (or cancelled, or the connection closed): one call and the bytes of its request frame.
//! A connection admits at most [`max_calls_in_flight`] calls and
//! [`max_request_bytes_in_flight`] bytes at once; with a [`PrincipalBudget`] (shared by the
//! connections of a server), the calls of all connections of one principal together are
//! bounded too, and so is the number of its connections: one over that is refused in the
//! handshake, right after the peer authenticated. A call over a bound is answered `overloaded` at once, naming the bound; it
//! never waits, so a peer that floods a server is told so instead of hanging.
//!
//! [`max_calls_in_flight`]: super::ConnectionConfig::max_calls_in_flight
//! [`max_request_bytes_in_flight`]: super::ConnectionConfig::max_request_bytes_in_flight

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// Bounds shared by every connection of a server, per principal: how many connections one
/// principal holds open, the calls from all of them in flight at once, and the bytes of
/// their requests.
///
/// Give the same `Arc` to the [`ConnectionConfig`](super::ConnectionConfig) of each
/// connection the server accepts. Connections whose peer did not authenticate count as
/// the principal [`ANONYMOUS`].
#[derive(Debug)]
pub struct PrincipalBudget {
    max_connections: usize,
    max_calls: usize,
    max_bytes: usize,
    /// Each principal's counts, shared by its connections (which take and give back
    /// without this lock).
    shares: Mutex<HashMap<String, Arc<Counts>>>,
}

impl PrincipalBudget {
    /// A budget of `max_connections` connections open, and `max_calls` calls and
    /// `max_bytes` request bytes in flight, per principal.
    pub fn new(max_connections: usize, max_calls: usize, max_bytes: usize) -> Arc<PrincipalBudget> {
        Arc::new(PrincipalBudget {
            max_connections,
            max_calls,
            max_bytes,
            shares: Mutex::new(HashMap::new()),
        })
    }

    /// What `principal` (`None`: [`ANONYMOUS`]) has in flight now.
    pub fn usage(&self, principal: Option<&str>) -> InboundUsage {
        let name = principal.unwrap_or(ANONYMOUS);
        lock(&self.shares)
            .get(name)
            .map(|c| c.now())
            .unwrap_or_default()
    }

    /// The connections `principal` (`None`: [`ANONYMOUS`]) holds open now.
    pub fn connections(&self, principal: Option<&str>) -> usize {
        let name = principal.unwrap_or(ANONYMOUS);
        lock(&self.shares)
            .get(name)
            .map_or(0, |c| c.connections.load(Ordering::Acquire))
    }

    /// The most connections one principal holds open now.
    pub fn busiest_connections(&self) -> usize {
        lock(&self.shares)
            .values()
            .map(|c| c.connections.load(Ordering::Acquire))
            .max()
            .unwrap_or(0)
    }

    /// A place for one more connection of `principal` (`None`: [`ANONYMOUS`]), held until
    /// the [`Seat`] drops; `overloaded`, naming the bound, when it holds
    /// `max_connections_per_principal` already.
    pub(crate) fn seat(self: &Arc<Self>, principal: Option<&str>) -> Result<Seat, Error> {
        let principal = principal.unwrap_or(ANONYMOUS).to_owned();
        let share = self.share(&principal);
        let max = self.max_connections;
        share
            .connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map_err(|open| {
                overloaded(format!(
                    "principal `{principal}` has {open} connections open here, its limit \
                     (max_connections_per_principal); close some or retry later"
                ))
            })?;
        Ok(Seat(Share {
            budget: self.clone(),
            counts: share,
            principal,
        }))
    }

    /// What every principal together has in flight now.
    pub fn total(&self) -> InboundUsage {
        lock(&self.shares)
            .values()
            .map(|c| c.now())
            .fold(InboundUsage::default(), |sum, u| InboundUsage {
                calls: sum.calls.saturating_add(u.calls),
                bytes: sum.bytes.saturating_add(u.bytes),
            })
    }

    /// The counts of `principal`, made on its first connection. (Principals are the
    /// names a server's authenticator gives: a set its configuration bounds.)
    fn share(&self, principal: &str) -> Arc<Counts> {
        lock(&self.shares)
            .entry(principal.to_owned())
            .or_default()
            .clone()
    }
}

/// One principal's place for a connection, taken in the handshake and held by the
/// connection until it closes; dropping it frees the place.
pub(crate) struct Seat(Share);

impl Seat {
    /// The principal's bounds and counts, for the connection's calls.
    pub(crate) fn share(&self) -> Share {
        self.0.clone()
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.0.counts.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

impl fmt::Debug for Seat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Seat")
            .field("principal", &self.0.principal)
            .finish()
    }
}

/// A principal's bounds (the server's budget) and its counts.
#[derive(Clone)]
pub(crate) struct Share {
    budget: Arc<PrincipalBudget>,
    counts: Arc<Counts>,
    principal: String,
}

/// Connections open, calls and request bytes in flight, taken and given back without a
/// lock.
#[derive(Debug, Default)]
struct Counts {
    connections: AtomicUsize,
    calls: AtomicUsize,
    bytes: AtomicUsize,
}

/// Which bound a call would break, and what was in flight.
enum Over {
    Calls(usize),
    Bytes(usize),
}

impl Counts {
    /// Takes a call of `bytes` if both counts stay within their bounds.
    fn take(&self, max_calls: usize, max_bytes: usize, bytes: usize) -> Result<(), Over> {
        self.calls
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                (c < max_calls).then_some(c + 1)
            })
            .map_err(Over::Calls)?;
        self.bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                b.checked_add(bytes).filter(|after| *after <= max_bytes)
            })
            .map_err(|b| {
                self.calls.fetch_sub(1, Ordering::AcqRel);
                Over::Bytes(b)
            })?;
        Ok(())
    }

    fn give(&self, bytes: usize) {
        self.calls.fetch_sub(1, Ordering::AcqRel);
        self.bytes.fetch_sub(bytes, Ordering::AcqRel);
    }

    fn now(&self) -> InboundUsage {
        InboundUsage {
            calls: self.calls.load(Ordering::Acquire),
            bytes: self.bytes.load(Ordering::Acquire),
        }
    }
}

/// One connection's inbound accounting.
pub(crate) struct Inbound {
    max_calls: usize,
    max_bytes: usize,
    own: Counts,
    /// The server's per-principal bounds and this principal's counts.
    shared: Option<Share>,
}

impl Inbound {
    pub(crate) fn new(max_calls: usize, max_bytes: usize, shared: Option<Share>) -> Arc<Inbound> {
        Arc::new(Inbound {
            max_calls,
            max_bytes,
            own: Counts::default(),
            shared,
        })
    }

    /// What this connection has in flight.
    pub(crate) fn usage(&self) -> InboundUsage {
        self.own.now()
    }

    /// Admits a call whose request frame is `bytes` long, or says which bound it breaks
    /// (`overloaded`).
    pub(crate) fn admit(self: &Arc<Self>, bytes: usize) -> Result<Ticket, Error> {
        self.own
            .take(self.max_calls, self.max_bytes, bytes)
            .map_err(|over| match over {
                Over::Calls(calls) => overloaded(format!(
                    "this connection has {calls} calls in flight here, its limit \
                     (max_calls_in_flight); retry when some have returned"
                )),
                Over::Bytes(held) => overloaded(format!(
                    "this connection has {held} bytes of requests in flight here and this \
                     one has {bytes}, over its limit of {} (max_request_bytes_in_flight); \
                     retry when some have returned",
                    self.max_bytes
                )),
            })?;
        if let Some(Share {
            budget,
            counts,
            principal,
        }) = &self.shared
            && let Err(over) = counts.take(budget.max_calls, budget.max_bytes, bytes)
        {
            self.own.give(bytes);
            return Err(match over {
                Over::Calls(calls) => overloaded(format!(
                    "principal `{principal}` has {calls} calls in flight here, its limit \
                     (max_calls_in_flight_per_principal); retry when some have returned"
                )),
                Over::Bytes(held) => overloaded(format!(
                    "principal `{principal}` has {held} bytes of requests in flight here and \
                     this one has {bytes}, over its limit of {} \
                     (max_request_bytes_in_flight_per_principal); retry when some have \
                     returned",
                    budget.max_bytes
                )),
            });
        }
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
        self.inbound.own.give(self.bytes);
        if let Some(Share { counts, .. }) = &self.inbound.shared {
            counts.give(self.bytes);
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
        let inbound = Inbound::new(2, 100, None);
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
        let budget = PrincipalBudget::new(8, 3, 1000);
        let one = Inbound::new(10, 1000, Some(budget.seat(Some("ops")).unwrap().share()));
        let two = Inbound::new(10, 1000, Some(budget.seat(Some("ops")).unwrap().share()));
        let other = Inbound::new(10, 10_000, Some(budget.seat(None).unwrap().share()));
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

    #[test]
    fn a_principal_holds_a_bounded_number_of_connections_and_seats_come_back() {
        let budget = PrincipalBudget::new(2, 10, 1000);
        let first = budget.seat(Some("ops")).unwrap();
        let second = budget.seat(Some("ops")).unwrap();
        let err = budget.seat(Some("ops")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Overloaded);
        assert!(
            err.message().contains("principal `ops` has 2 connections")
                && err.message().contains("(max_connections_per_principal)"),
            "{err}"
        );
        // Other principals, anonymous included, have their own places.
        let anon = budget.seat(None).unwrap();
        assert_eq!(budget.connections(Some("ops")), 2);
        assert_eq!(budget.connections(None), 1);
        assert_eq!(budget.busiest_connections(), 2);
        drop(first);
        assert_eq!(budget.connections(Some("ops")), 1);
        let again = budget.seat(Some("ops")).unwrap();
        drop((second, again, anon));
        assert_eq!(budget.busiest_connections(), 0);
    }
}
