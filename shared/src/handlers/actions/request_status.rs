//! `request_status`: the job's latest snapshot, for a client that wants to know where a job
//! stands without following it.

use crate::handlers::access::{Caller, accessible_job};
use crate::handlers::errors::ActionError;
use crate::handlers::service::Jobcast;
use crate::protocol::{JobRef, ServerMessage};
use crate::store::Store;

/// Answers `job_status` for a job the caller may see.
pub(in crate::handlers) async fn run<S: Store>(
    service: &Jobcast<S>,
    caller: &Caller,
    JobRef { job_id }: JobRef,
) -> Result<Vec<ServerMessage>, ActionError> {
    let (_, job) = accessible_job(service, caller, &job_id).await?;
    Ok(vec![ServerMessage::JobStatus(job.into())])
}
