//! A guest's object as a netref: calls go to the instance that owns it; dropping the last
//! netref tells the guest to drop the object.

use futures::future::BoxFuture;
use rwc_protocol::{CallContext, Error, MethodInfo, Object, Value};
use tokio::sync::{mpsc, oneshot};

use super::actor::{Job, JobKind};

pub(crate) struct GuestObject {
    instance_id: u64,
    id: u64,
    jobs: mpsc::UnboundedSender<Job>,
}

impl GuestObject {
    pub(crate) fn new(instance_id: u64, id: u64, jobs: mpsc::UnboundedSender<Job>) -> Self {
        GuestObject {
            instance_id,
            id,
            jobs,
        }
    }

    pub(crate) fn instance_id(&self) -> u64 {
        self.instance_id
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}

impl Object for GuestObject {
    fn call<'a>(
        &'a self,
        ctx: CallContext,
        method: &'a str,
        args: Vec<Value>,
    ) -> BoxFuture<'a, Result<Value, Error>> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            kind: JobKind::ObjectCall {
                id: self.id,
                method: method.to_owned(),
                args,
            },
            reply: Some(reply),
            deadline: ctx.deadline(),
        };
        let sent = self.jobs.send(job);
        Box::pin(async move {
            sent.map_err(|_| Error::disconnected("the guest object's instance is closed"))?;
            rx.await.map_err(|_| {
                Error::disconnected("the guest object's instance closed during the call")
            })?
        })
    }

    fn methods(&self) -> Vec<MethodInfo> {
        // Known only to the guest: `rwc.methods` is forwarded to it (see `knows_methods`).
        Vec::new()
    }

    fn knows_methods(&self) -> bool {
        false
    }

    fn type_name(&self) -> &str {
        "guest object"
    }

    fn runs_long(&self) -> bool {
        true
    }
}

impl Drop for GuestObject {
    fn drop(&mut self) {
        let _ = self.jobs.send(Job {
            kind: JobKind::ObjectDrop { id: self.id },
            reply: None,
            deadline: None,
        });
    }
}
