//! Upload bytes in flight: what one connection's uploads hold on the node until their
//! module is compiled (a chunked upload its announced length from `upload_stream` on; a
//! whole-module `upload` its bytes while it compiles), within
//! [`max_upload_bytes_in_flight`](rwc_api::Limits::max_upload_bytes_in_flight).
//!
//! An upload over the limit is refused `overloaded` before any of its bytes are taken; a
//! connection that closes (or a client killed mid-upload) frees what its uploads held, as
//! its uploaders are dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rwc_protocol::{Error, ErrorKind};

/// One connection's upload bytes, counted node-wide too.
#[derive(Debug)]
pub(crate) struct UploadBudget {
    max: u64,
    used: AtomicU64,
    node: Arc<AtomicU64>,
}

/// Bytes reserved for one upload; dropping it gives them back.
#[derive(Debug)]
pub(crate) struct UploadReservation {
    budget: Arc<UploadBudget>,
    bytes: u64,
}

impl UploadBudget {
    /// A budget of `max` bytes, counted in `node` as well.
    pub(crate) fn new(max: u64, node: Arc<AtomicU64>) -> Arc<UploadBudget> {
        Arc::new(UploadBudget {
            max,
            used: AtomicU64::new(0),
            node,
        })
    }

    /// Bytes held now.
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// Reserves `bytes` for an upload, or says why not (`overloaded`).
    pub(crate) fn reserve(self: &Arc<Self>, bytes: u64) -> Result<UploadReservation, Error> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|after| *after <= self.max)
            })
            .map_err(|used| {
                Error::new(
                    ErrorKind::Overloaded,
                    format!(
                        "this connection's uploads hold {used} bytes and this one needs {bytes}, \
                         over its limit of {} bytes (max_upload_bytes_in_flight); finish or \
                         drop the other uploads first",
                        self.max
                    ),
                )
            })?;
        self.node.fetch_add(bytes, Ordering::AcqRel);
        Ok(UploadReservation {
            budget: self.clone(),
            bytes,
        })
    }
}

impl Drop for UploadReservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
        self.budget.node.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_are_refused_past_the_limit_and_give_back_what_they_held() {
        let node = Arc::new(AtomicU64::new(0));
        let one = UploadBudget::new(100, node.clone());
        let two = UploadBudget::new(100, node.clone());
        let a = one.reserve(70).unwrap();
        let err = one.reserve(31).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Overloaded);
        assert!(
            err.message().contains("max_upload_bytes_in_flight"),
            "{err}"
        );
        let b = two.reserve(100).unwrap();
        assert_eq!((one.used(), node.load(Ordering::Acquire)), (70, 170));
        drop((a, b));
        assert_eq!(
            (one.used(), two.used(), node.load(Ordering::Acquire)),
            (0, 0, 0)
        );
        assert!(one.reserve(u64::MAX).is_err(), "no overflow");
    }
}
