//! Netrefs crossing the connection: live netrefs become wire references as a message is
//! sent, and wire references become netrefs as one is received.
//!
//! Identity is kept along any chain of connections. A proxy sent back to the connection it
//! came from goes as the peer's own export ([`WireRef::Receiver`]), and arrives there as the
//! peer's own object. A reference the peer sends back to us names our export; if that
//! export is a proxy we forwarded (an object of a third party), the proxy itself comes
//! back, not a local object wrapping it: so A→B→C→B→A gives B its own proxy and A its own
//! object, and no call ever detours through a forwarder.

use std::sync::{Arc, Weak};

use super::{Shared, lock};
use crate::error::Error;
use crate::message::{Message, ROOT_EXPORT};
use crate::netref::{Handle, NetRef, Proxy};
use crate::value::{Ref, Value, WireRef};

impl Shared {
    /// Replaces the live netrefs in `msg` by wire references. Every object exported
    /// (other than the root) is pushed to `exported`, and every netref replaced to
    /// `keep_alive`, for the caller to undo or drop once the message is queued.
    pub(crate) fn export_refs(
        &self,
        msg: &mut Message,
        exported: &mut Vec<u64>,
        keep_alive: &mut Vec<NetRef>,
    ) -> Result<(), Error> {
        let mut exports = lock(&self.exports);
        for value in msg.values_mut() {
            value.visit_refs_mut(&mut |r: &mut Ref| {
                let wire = match r {
                    Ref::Wire(w) => {
                        return Err(Error::bad_argument(format!(
                            "a raw wire reference ({w:?}) cannot be sent on a connection; send a NetRef"
                        )));
                    }
                    Ref::Object(NetRef(Handle::Remote(p)))
                        if std::ptr::eq(Arc::as_ptr(&p.link.shared), self) =>
                    {
                        WireRef::Receiver(p.id)
                    }
                    Ref::Object(n) => {
                        let id = exports.export(&n.as_object());
                        if id != ROOT_EXPORT {
                            exported.push(id);
                        }
                        WireRef::Sender(id)
                    }
                };
                if let Ref::Object(n) = std::mem::replace(r, Ref::Wire(wire)) {
                    keep_alive.push(n);
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Replaces the wire references in a received message by netrefs.
    pub(crate) fn import_refs(&self, msg: &mut Message) -> Result<(), Error> {
        let mut releases = Vec::new();
        let result = msg
            .values_mut()
            .filter(|v| v.has_refs())
            .try_for_each(|value: &mut Value| {
                value.visit_refs_mut(&mut |r: &mut Ref| {
                    let netref = match *r {
                        Ref::Wire(WireRef::Sender(id)) => self.proxy_for(id, &mut releases)?,
                        Ref::Wire(WireRef::Receiver(id)) => self.own_export(id)?,
                        Ref::Object(_) => {
                            return Err(Error::protocol("decoded message holds a live reference"));
                        }
                    };
                    *r = Ref::Object(netref);
                    Ok(())
                })
            });
        for (export, count) in releases {
            let _ = self.send(Message::Release { export, count });
        }
        result
    }

    /// Our export `id`, sent back by the peer: the object itself, which for a proxy we
    /// forwarded is that proxy ([`NetRef::from_object`] unwraps it).
    fn own_export(&self, id: u64) -> Result<NetRef, Error> {
        let obj = lock(&self.exports).object(id).ok_or_else(|| {
            Error::protocol(format!(
                "peer sent a reference to export #{id}, which this side never exported"
            ))
        })?;
        Ok(NetRef::from_object(obj))
    }

    /// The proxy to the peer's export `id`: the one already held, or a new one.
    fn proxy_for(&self, id: u64, releases: &mut Vec<(u64, u64)>) -> Result<NetRef, Error> {
        let link = self
            .link
            .get()
            .and_then(Weak::upgrade)
            .ok_or_else(|| Error::disconnected("connection is closing"))?;
        if id == ROOT_EXPORT {
            return Ok(NetRef(Handle::Remote(Arc::new(Proxy { link, id }))));
        }
        let mut imports = lock(&self.imports);
        let received = imports.receive(id)?;
        if let Some(count) = received.release {
            releases.push((id, count));
        }
        let (proxy, spare_link) = match received.existing {
            Some(p) => (p, Some(link)),
            None => {
                let p = Arc::new(Proxy { link, id });
                imports.insert(id, &p);
                (p, None)
            }
        };
        drop(imports);
        // Dropped outside the lock: a link's drop may close the connection, which locks it.
        drop(spare_link);
        Ok(NetRef(Handle::Remote(proxy)))
    }

    /// The last local handle to a proxy dropped: release what it held.
    pub(crate) fn proxy_dropped(&self, proxy: &Proxy) {
        if self.is_closed() {
            return;
        }
        let released = lock(&self.imports).dropped(proxy.id, proxy);
        if let Some(count) = released {
            let _ = self.send(Message::Release {
                export: proxy.id,
                count,
            });
        }
    }
}
