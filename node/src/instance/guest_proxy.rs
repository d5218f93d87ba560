//! [`GuestProxy`]: the node's stand-in for an object a guest handed out (what the guest SDK
//! calls a `GuestObject`), as a netref: calls go to the instance that owns it; dropping the
//! last netref tells the guest to drop the object.

use std::future::Future;

use rwc_protocol::object::{Call, Dispatch, MethodTable};
use rwc_protocol::{Error, Value};
use tokio::sync::oneshot;

use super::actor::{Exit, Job, JobKind};
use super::job_queue::{Jobs, NotQueued};
use crate::abi::GuestCall;

/// A guest's object, reached through its instance.
pub(crate) struct GuestProxy {
    instance_id: u64,
    id: u64,
    jobs: Jobs,
    exit: Exit,
}

/// Who the errors of a guest object's calls are about.
const SUBJECT: &str = "the guest object's instance";

impl GuestProxy {
    pub(crate) fn new(instance_id: u64, id: u64, jobs: Jobs, exit: Exit) -> Self {
        GuestProxy {
            instance_id,
            id,
            jobs,
            exit,
        }
    }

    pub(crate) fn instance_id(&self) -> u64 {
        self.instance_id
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}

/// Every method goes to the guest, `rwc.methods` included: only the guest knows what its
/// object answers.
impl Dispatch for GuestProxy {
    const TYPE_NAME: &'static str = "guest object";
    const METHODS: MethodTable = MethodTable(&[]);
    const RUNS_LONG: bool = true;
    const KNOWS_METHODS: bool = false;

    fn dispatch<'a>(
        &'a self,
        call: Call<'a>,
    ) -> impl Future<Output = Result<Value, Error>> + Send + 'a {
        // Queued now, not when the future is first polled: calls reach the guest in the
        // order they arrived.
        let (reply, rx) = oneshot::channel();
        let job = Job::new(
            JobKind::Object(GuestCall::Method {
                id: self.id,
                method: call.method.to_owned(),
                args: call.args,
            }),
            Some(reply),
            call.ctx.deadline(),
        );
        let sent = self.jobs.send(job);
        async move {
            match sent {
                Ok(()) => {}
                Err(NotQueued::Full(e)) => return Err(e),
                Err(NotQueued::Gone) => return Err(self.exit.gone(SUBJECT).await),
            }
            match rx.await {
                Ok(result) => result,
                Err(_) => Err(self.exit.unanswered(SUBJECT).await),
            }
        }
    }
}

impl Drop for GuestProxy {
    fn drop(&mut self) {
        // Never refused for a full queue (see `job_queue`); if the actor is gone, so is
        // the object.
        let _ = self.jobs.send(Job::new(
            JobKind::Object(GuestCall::Drop { id: self.id }),
            None,
            None,
        ));
    }
}
