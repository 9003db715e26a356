//! `unsubscribe`: the connection stops hearing a job. Unsubscribing from a job not followed
//! is not an error, so a client may repeat it safely.

use crate::handlers::access::Caller;
use crate::handlers::errors::ActionError;
use crate::handlers::service::Jobcast;
use crate::protocol::{JobRef, ServerMessage};
use crate::store::Store;

/// Removes the subscription and answers `unsubscribed`.
pub(in crate::handlers) async fn run<S: Store>(
    service: &Jobcast<S>,
    caller: &Caller,
    JobRef { job_id }: JobRef,
) -> Result<Vec<ServerMessage>, ActionError> {
    service
        .store()
        .delete_subscription(&caller.connection_id, &job_id)
        .await?;
    Ok(vec![ServerMessage::Unsubscribed(JobRef { job_id })])
}
