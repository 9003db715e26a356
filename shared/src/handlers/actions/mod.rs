//! One file per client action, each taking its parsed request to its effect and answering
//! the replies to post (`subscribe` posts its own, since replayed events must follow them).

pub(super) mod cancel_job;
pub(super) mod ping;
mod replay;
pub(super) mod request_status;
pub(super) mod subscribe;
pub(super) mod unsubscribe;
